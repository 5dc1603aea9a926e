"""The shared ground of every spec: strict models, identifiers that are safe as file names and C# names, bounds."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from ..documents import plain_data_problem
from ..errors import SpecError

ALGORITHMS = ("PPO", "SAC", "POCA")

_CSHARP_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_CSHARP_KEYWORDS = frozenset(
    "abstract as base bool break byte case catch char checked class const continue decimal default delegate do "
    "double else enum event explicit extern false finally fixed float for foreach goto if implicit in int "
    "interface internal is lock long namespace new null object operator out override params private protected "
    "public readonly ref return sbyte sealed short sizeof stackalloc static string struct switch this throw true "
    "try typeof uint ulong unchecked unsafe ushort using virtual void volatile while".split()
)


def _check_identifier(value: str, what: str) -> str:
    if not _CSHARP_IDENT.match(value) or value in _CSHARP_KEYWORDS:
        raise ValueError(
            f"{what} {value!r} must be a C# identifier (letters, digits, underscore; not starting with a digit; "
            f"no spaces, dots or path separators), because the Agent class and files are named after it; "
            f"for example {re.sub(r'[^A-Za-z0-9_]', '', value.title()) or 'MyAgent'!r}"
        )
    return value


def _check_safe_id(value: str, what: str) -> str:
    if not _SAFE_ID.match(value) or len(value) > 100:
        raise ValueError(
            f"{what} {value!r} may only contain letters, digits, '.', '_' and '-' (at most 100, not starting "
            f"with '.' or '-'), because directories are named after it"
        )
    return value


def _plain(value: Any) -> Any:
    problem = plain_data_problem(value)
    if problem:
        raise ValueError(problem.replace("(top level): ", ""))
    return value


PlainDict = Annotated[dict[str, Any], AfterValidator(_plain)]
"""A free-form mapping (metadata, trainer hyperparameters) that holds JSON's kinds of values only."""


class _Model(BaseModel):
    # NaN and infinities are refused in every float field: they pass range checks and fail an hour later
    model_config = ConfigDict(extra="forbid", validate_assignment=True, str_strip_whitespace=True,
                              allow_inf_nan=False, use_attribute_docstrings=True)


LIMITS = {"max_steps": 10**10, "num_envs": 64, "seed": 2**31 - 1, "bc_updates": 10**6, "agents_per_env": 1024,
          "summary_freq": 10**9, "checkpoint_interval": 10**10, "keep_checkpoints": 1000, "time_horizon": 10**6}
MAX_SECONDS = 366 * 86400.0  # a timeout, deadline or backoff beyond a year is a typo


def format_validation_error(err: ValidationError, source: str | None = None) -> str:
    """One line per problem, naming the field path, so the user knows exactly what to change."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see `unity-mlops train --help`)"
        elif e["type"] == "missing":
            msg = "required field is missing"
        lines.append(f"  {loc}: {msg}")
    where = f" in {source}" if source else ""
    return f"invalid {err.title}{where}:\n" + "\n".join(lines)


def parse_model(model: type[_Model], data: dict[str, Any], source: str | None = None) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, source)) from None
