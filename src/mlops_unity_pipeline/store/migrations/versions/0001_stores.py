"""The stores: registry versions, aliases, the append-only ledger, freezes, incidents, Vertex AI links, scheduler
schedules and runs, webhook deliveries.

Also adopts an embedded SQLite store made before migrations existed: its tables are kept, and the columns later
releases added (`versions.run_key`, `runs.restarts`, the deliveries' lease) are added where missing.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

Text, Int, Real = sa.Text, sa.Integer, sa.Float


def _tables() -> dict[str, list]:
    return {
        "versions": [
            sa.Column("version", Text, primary_key=True), sa.Column("asset_name", Text, nullable=False),
            sa.Column("asset_id", Text, nullable=False), sa.Column("behavior_name", Text, nullable=False),
            sa.Column("run_number", Int, nullable=False), sa.Column("job_id", Text, nullable=False),
            sa.Column("created_at", Text, nullable=False), sa.Column("model_sha256", Text, nullable=False),
            sa.Column("model_file", Text, nullable=False), sa.Column("files_json", Text, nullable=False),
            sa.Column("metrics_json", Text, nullable=False), sa.Column("lineage_json", Text, nullable=False),
            sa.Column("run_key", Text), sa.UniqueConstraint("asset_name", "run_number"),
        ],
        "aliases": [
            sa.Column("asset_name", Text, primary_key=True), sa.Column("alias", Text, primary_key=True),
            sa.Column("version", Text, nullable=False), sa.Column("updated_at", Text, nullable=False),
        ],
        "ledger": [
            sa.Column("seq", Int, primary_key=True, autoincrement=True), sa.Column("at", Text, nullable=False),
            sa.Column("actor", Text, nullable=False), sa.Column("asset_name", Text, nullable=False),
            sa.Column("action", Text, nullable=False), sa.Column("alias", Text), sa.Column("from_version", Text),
            sa.Column("to_version", Text), sa.Column("evidence_json", Text, nullable=False),
            sa.Column("reason", Text, nullable=False),
        ],
        "freezes": [
            sa.Column("asset_name", Text, primary_key=True), sa.Column("reason", Text, nullable=False),
            sa.Column("since", Text, nullable=False), sa.Column("actor", Text, nullable=False),
        ],
        "incidents": [
            sa.Column("id", Int, primary_key=True, autoincrement=True), sa.Column("asset_name", Text, nullable=False),
            sa.Column("failed_version", Text, nullable=False), sa.Column("restored_version", Text),
            sa.Column("metrics_json", Text, nullable=False), sa.Column("reason", Text, nullable=False),
            sa.Column("corrective_action", Text, nullable=False), sa.Column("opened_at", Text, nullable=False),
            sa.Column("actor", Text, nullable=False),
        ],
        "vertex_models": [
            sa.Column("asset_name", Text, primary_key=True), sa.Column("resource_name", Text, nullable=False),
        ],
        "vertex_versions": [
            sa.Column("version", Text, primary_key=True), sa.Column("resource_name", Text, nullable=False),
            sa.Column("version_id", Text, nullable=False), sa.Column("artifact_uri", Text, nullable=False),
        ],
        "schedules": [
            sa.Column("schedule_id", Text, primary_key=True), sa.Column("spec_json", Text, nullable=False),
            sa.Column("paused", Int, nullable=False, server_default="0"), sa.Column("last_fire", Text),
            sa.Column("next_fire", Text), sa.Column("updated_at", Text, nullable=False),
        ],
        "runs": [
            sa.Column("run_key", Text, primary_key=True), sa.Column("schedule_id", Text, nullable=False),
            sa.Column("asset_id", Text, nullable=False), sa.Column("slot", Text, nullable=False),
            sa.Column("job_id", Text, nullable=False), sa.Column("status", Text, nullable=False),
            sa.Column("attempts", Int, nullable=False, server_default="0"),
            sa.Column("restarts", Int, nullable=False, server_default="0"),
            sa.Column("not_before", Text, nullable=False), sa.Column("created_at", Text, nullable=False),
            sa.Column("started_at", Text), sa.Column("finished_at", Text), sa.Column("model_version", Text),
            sa.Column("error", Text),
        ],
        "deliveries": [
            sa.Column("id", Text, primary_key=True), sa.Column("endpoint", Text, primary_key=True),
            sa.Column("event_type", Text, nullable=False), sa.Column("body", Text, nullable=False),
            sa.Column("created_at", Real, nullable=False), sa.Column("status", Text, nullable=False),
            sa.Column("attempts", Int, nullable=False, server_default="0"),
            sa.Column("next_attempt", Real, nullable=False), sa.Column("last_error", Text),
            sa.Column("delivered_at", Real), sa.Column("lease_owner", Text), sa.Column("lease_until", Real),
        ],
    }


INDEXES = [
    ("versions_by_run", "versions", ["run_key"], {"unique": True, "sqlite_where": sa.text("run_key IS NOT NULL"),
                                                  "postgresql_where": sa.text("run_key IS NOT NULL")}),
    ("runs_by_status", "runs", ["status", "not_before"], {}),
    ("runs_by_schedule", "runs", ["schedule_id", "slot"], {}),
    ("deliveries_due", "deliveries", ["status", "next_attempt"], {}),
]

APPEND_ONLY_SQLITE = [
    "CREATE TRIGGER IF NOT EXISTS ledger_append_only_update BEFORE UPDATE ON ledger "
    "BEGIN SELECT RAISE(ABORT, 'the promotion ledger is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS ledger_append_only_delete BEFORE DELETE ON ledger "
    "BEGIN SELECT RAISE(ABORT, 'the promotion ledger is append-only'); END",
]
APPEND_ONLY_POSTGRESQL = [
    "CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'the promotion ledger is append-only'; END $$",
    "CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger "
    "FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()",
]


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    existing = set(inspector.get_table_names())
    for name, columns in _tables().items():
        if name not in existing:
            kwargs = {"sqlite_autoincrement": True} if name in ("ledger", "incidents") else {}
            op.create_table(name, *columns, **kwargs)
            continue
        have = {c["name"] for c in inspector.get_columns(name)}  # a store from before migrations: adopt it
        for column in columns:
            if isinstance(column, sa.Column) and column.name not in have:
                op.add_column(name, column)
    indexed = {ix["name"] for table in ("versions", "runs", "deliveries") for ix in inspector.get_indexes(table)} \
        if existing else set()
    for name, table, cols, kwargs in INDEXES:
        if name not in indexed:
            op.create_index(name, table, cols, **kwargs)
    for statement in APPEND_ONLY_SQLITE if bind.dialect.name == "sqlite" else APPEND_ONLY_POSTGRESQL:
        op.execute(statement)


def downgrade() -> None:
    raise RuntimeError("the stores' history is append-only: restore a backup instead of downgrading")
