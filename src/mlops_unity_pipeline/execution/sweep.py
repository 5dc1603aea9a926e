"""`unity-mlops sweep`: a small hyperparameter search, each trial a job submitted to an executor (local or Ray).

A trial is the base job with some settings replaced: a name that is a field of `rl_config` (`max_steps`,
`time_horizon`, `seed`...) sets that field; `network.<key>` sets `network_settings`; any other name sets
`hyperparameters` (`learning_rate`, `batch_size`, `beta`...). A grid runs every combination; `--random N` draws N
of them (values may then be ranges `lo..hi`, drawn log-uniformly when both ends are positive and a decade or more
apart, else uniformly). Every trial is a normal job (its own id, run key, version, curves in TensorBoard), so a
sweep is resumable like any job: re-running it continues unfinished trials and registers nothing twice.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from dataclasses import dataclass
from typing import Any

from ..errors import UserError
from ..specs import RLTrainingConfig, TrainingJob, TrainingResult
from .base import Executor

MAX_TRIALS = 1000
FIELDS = set(RLTrainingConfig.model_fields) - {"hyperparameters", "network_settings"}


@dataclass(frozen=True)
class Axis:
    name: str
    values: tuple[Any, ...] = ()
    low: float | None = None  # a range, for random search
    high: float | None = None

    def draw(self, rng: random.Random) -> Any:
        if self.values:
            return rng.choice(self.values)
        assert self.low is not None and self.high is not None
        if self.low > 0 and self.high / self.low >= 10:
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return rng.uniform(self.low, self.high)


def _value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_axis(text: str) -> Axis:
    """`name=v1,v2,...` or `name=lo..hi`."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not name or not rest.strip():
        raise UserError(f"--param {text!r}: expected NAME=V1,V2,... or NAME=LOW..HIGH",
                        hint="for example --param learning_rate=3e-4,1e-3 --param batch_size=128,256")
    if ".." in rest:
        lo, hi = (_value(x.strip()) for x in rest.split("..", 1))
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in (lo, hi)) or lo >= hi:
            raise UserError(f"--param {text!r}: a range needs two finite numbers, low < high")
        return Axis(name, low=float(lo), high=float(hi))
    values = tuple(_value(v.strip()) for v in rest.split(",") if v.strip())
    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
        raise UserError(f"--param {text!r}: values must be finite")
    return Axis(name, values)


@dataclass(frozen=True)
class Trial:
    job: TrainingJob
    settings: dict[str, Any]


def plan(base: TrainingJob, axes: list[Axis], random_trials: int | None = None, seed: int = 0) -> list[Trial]:
    """The trials, in a stable order (so a re-run names them the same)."""
    if not axes:
        raise UserError("a sweep needs at least one --param")
    if len({a.name for a in axes}) != len(axes):
        raise UserError("each --param name may appear once")
    if random_trials is None:
        if any(not a.values for a in axes):
            raise UserError("ranges (LOW..HIGH) need random search", hint="add --random N")
        combos = [dict(zip([a.name for a in axes], c, strict=True))
                  for c in itertools.product(*(a.values for a in axes))]
    else:
        rng = random.Random(seed)
        combos = [{a.name: a.draw(rng) for a in axes} for _ in range(random_trials)]
    if not 1 <= len(combos) <= MAX_TRIALS:
        raise UserError(f"the sweep has {len(combos)} trials; between 1 and {MAX_TRIALS} are allowed")
    return [_trial(base, i, combo) for i, combo in enumerate(combos, 1)]


def _trial(base: TrainingJob, index: int, settings: dict[str, Any]) -> Trial:
    cfg = base.rl_config.model_dump()
    for name, value in settings.items():
        if name in FIELDS:
            cfg[name] = value
        elif name.startswith("network."):
            cfg["network_settings"] = {**cfg["network_settings"], name.split(".", 1)[1]: value}
        else:
            cfg["hyperparameters"] = {**cfg["hyperparameters"], name: value}
    try:
        rl = RLTrainingConfig.model_validate(cfg)
    except ValueError as exc:
        raise UserError(f"trial {index} ({settings}): {exc}") from None
    try:
        job = TrainingJob.model_validate({**base.model_dump(), "job_id": f"{base.job_id}-sweep-{index:03d}",
                                          "rl_config": rl.model_dump()})
    except ValueError as exc:
        raise UserError(f"trial {index}: {exc}") from None
    return Trial(job, settings)


async def run(executor: Executor, trials: list[Trial], parallel: int, on_result=None) -> list[TrainingResult]:
    """Every trial through `executor`, at most `parallel` at a time; results in trial order."""
    gate = asyncio.Semaphore(max(1, parallel))

    async def one(trial: Trial) -> TrainingResult:
        async with gate:
            result = await executor.run(trial.job, f"sweep|{trial.job.job_id}")
        if on_result is not None:
            on_result(trial, result)
        return result

    return list(await asyncio.gather(*(one(t) for t in trials)))


def score(result: TrainingResult) -> tuple[float, float]:
    """Evaluated success first, then mean reward: what promotion gates compare too. The evaluation is the one the
    trial's job made: on the build for a Unity build (reward alone where the build records no success)."""
    ev = (result.metrics.get("evaluation") or {}).get("model") or {}
    if not result.succeeded:
        return (-2.0, -math.inf)
    success = ev.get("success_rate")
    reward = ev.get("mean_reward")
    return (-1.0 if success is None else float(success), -math.inf if reward is None else float(reward))


def table(trials: list[Trial], results: list[TrainingResult]) -> list[dict[str, Any]]:
    """Best first."""
    rows = []
    for trial, result in sorted(zip(trials, results, strict=True), key=lambda p: score(p[1]), reverse=True):
        ev = (result.metrics.get("evaluation") or {}).get("model") or {}
        where = ((result.metrics.get("evaluation") or {}).get("environment") or {}).get("kind")
        rows.append({"job_id": trial.job.job_id, "status": result.status, "model_version": result.model_version,
                     "success_rate": ev.get("success_rate"), "mean_reward": ev.get("mean_reward"),
                     "evaluated_on": where,
                     "settings": trial.settings, "error": result.error})
    return rows
