"""Alembic migrations for every store (one history for SQLite and PostgreSQL), run without an alembic.ini."""

from __future__ import annotations

from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


def config(db: Any) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["database"] = db
    return cfg


def upgrade(db: Any, revision: str = "head") -> None:
    import logging

    logging.getLogger("alembic").setLevel(logging.WARNING)  # before alembic's import, which logs its plugins
    from alembic import command

    command.upgrade(config(db), revision)


def head() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(config(None)).get_current_head()
