"""What of a scheduler config is a credential, and where it goes in Kubernetes: Secret keys, never a ConfigMap.

A webhook URL with a password or a token becomes a key of the webhooks Secret (the config names it in `url_env`), the
database URL a key of the database Secret, and any other string that carries one (a registry or artifact URI,
metadata) stops the rendering with the field named. Secrets are rendered with their keys only; the operator fills
them (`kubectl create secret generic ... --from-literal=KEY=...`), so no credential is written to a rendered file.
"""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from ..redaction import url_secrets
from ..scheduler.config import SchedulerConfig
from ..webhooks.endpoint import redact_url

SECRETS = {"database": "unity-mlops-database", "storage": "unity-mlops-storage", "webhooks": "unity-mlops-webhooks"}
DATABASE_KEY = "UNITY_MLOPS_DATABASE_URL"


def secret_keys(cfg: SchedulerConfig) -> dict[str, str]:
    """The webhooks Secret's keys, each with the config field whose value belongs there: every `secret_env`, and a
    `UNITY_MLOPS_WEBHOOK_URL_<i>` for each URL that carries credentials."""
    keys = {w.secret_env: f"webhooks[{i}].secret_env" for i, w in enumerate(cfg.webhooks) if w.secret_env}
    for i, w in enumerate(cfg.webhooks):
        if w.url and url_secrets(w.url):
            keys[f"UNITY_MLOPS_WEBHOOK_URL_{i}"] = f"webhooks[{i}].url"
        elif w.url_env:
            keys[w.url_env] = f"webhooks[{i}].url_env"
    return dict(sorted(keys.items()))


def config_without_credentials(cfg: SchedulerConfig) -> dict[str, Any]:
    """The config as it goes into a ConfigMap: credentials moved to Secret keys (see `secret_keys`), the database
    URL left to its Secret; a credential anywhere else is refused, naming the field."""
    data = cfg.model_dump(mode="json", exclude_none=True)
    data.pop("database", None)  # UNITY_MLOPS_DATABASE_URL from the database Secret
    for i, hook in enumerate(data.get("webhooks", [])):
        if hook.get("url") and url_secrets(hook["url"]):
            hook.setdefault("name", redact_url(hook["url"]))  # the outbox's reference stays what it was
            hook["url_env"] = f"UNITY_MLOPS_WEBHOOK_URL_{i}"
            del hook["url"]
    found = _credentials(data)
    if found:
        raise UserError(f"{', '.join(found)} carries a credential, which would land in a ConfigMap",
                        hint="leave passwords and tokens out of URIs in the config: the database URL goes in "
                             "`database:` (rendered into its Secret), a PostgreSQL password can come from PGPASSWORD")
    return data


def _credentials(value: Any, where: str = "") -> list[str]:
    if isinstance(value, str):
        return [where] if url_secrets(value) else []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _credentials(v, f"{where}.{k}" if where else str(k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _credentials(v, f"{where}[{i}]")]
    return []


def secret_env(name: str, secret: str, key: str | None = None) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key or name}}}
