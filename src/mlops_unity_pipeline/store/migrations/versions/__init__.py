"""Migration scripts, oldest first (Alembic loads them by their `revision`; this file it skips)."""
