"""Secrets stay in memory: child processes get an allow-listed environment, and text that leaves the process
(log tails in results, webhook bodies) has every known secret value replaced.

A secret value is known when it is (a) the value of an environment variable whose name says it is one (`*SECRET*`,
`*TOKEN*`, `*PASSWORD*`, ...), (b) the credentials or query values of a URL held in the environment (e.g.
`WEBHOOK_URL=https://user:pass@host/x?token=...`), or (c) registered at run time (a webhook secret read from the
variable a config names).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

from . import settings

MASK = "***"
_SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSW|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL|AUTH", re.I)
_MIN_LEN = 4  # shorter values would mask ordinary words

# What a trainer process may inherit: the system basics, locale, thread and BLAS settings, GPU selection.
_ALLOWED = {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP", "TERM", "SHELL",
            "DISPLAY", "LD_LIBRARY_PATH", "SSL_CERT_FILE", "SSL_CERT_DIR", "PYTHONUNBUFFERED", "PYTHONHASHSEED",
            "PYTHONDONTWRITEBYTECODE", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES"}
_ALLOWED_PREFIXES = ("LC_", "XDG_", "OPENBLAS_", "MKL_", "NVIDIA_")

_registered: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """A secret learnt at run time (not from a self-describing variable), e.g. a configured webhook secret."""
    if value and len(value) >= _MIN_LEN:
        with _lock:
            _registered.add(value)
            if value.startswith("whsec_"):
                _registered.add(value[6:])


_SECRET_PARAM = re.compile(r"token|key|secret|sig|pass|auth|code|credential", re.I)


def url_secrets(value: str) -> set[str]:
    """The password of a URL, and the values of query parameters named like secrets (`token=`, `sig=`, `key=`...),
    plus the whole URL when it carries either. Other query values (`debug=true`) are not secrets."""
    if "://" not in value:
        return set()
    try:
        parts = urlsplit(value.strip())
        found = {parts.password or "", unquote(parts.password or "")}
        if parts.username and parts.password:
            found.add(f"{parts.username}:{parts.password}")
        found |= {v for k, v in parse_qsl(parts.query) if _SECRET_PARAM.search(k)}
        if {f for f in found if f}:
            found.add(value.strip())
    except ValueError:
        return set()
    return {s for s in found if len(s) >= _MIN_LEN}


def secret_values(env: Mapping[str, str] | None = None) -> set[str]:
    env = settings.environ() if env is None else env
    found: set[str] = set()
    for name, value in env.items():
        if not value:
            continue
        if _SECRET_NAME.search(name) and len(value) >= _MIN_LEN:
            found.add(value)
            if value.startswith("whsec_"):
                found.add(value[6:])
        found |= url_secrets(value)
    with _lock:
        found |= _registered
    return found


def redact(text: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """`text` with every known secret value masked (longest first, so a URL goes before its password)."""
    if not text:
        return text
    for value in sorted(secret_values(env), key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text


def redact_data(data):
    """Recursively redact the strings of a JSON-like value (webhook payloads)."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {k: redact_data(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [redact_data(v) for v in data]
    return data


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a trainer (and the player it starts) runs with: an allow-list, never the product's
    credentials (`WEBHOOK_*`, cloud credentials, database URLs)."""
    env = {k: v for k, v in settings.environ().items()
           if (k in _ALLOWED or k.startswith(_ALLOWED_PREFIXES)) and not _SECRET_NAME.search(k)}
    env.setdefault("PYTHONUNBUFFERED", "1")
    if extra:
        env.update(extra)
    return env
