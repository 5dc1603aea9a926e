"""The control-plane event log in the database (beyond one machine): one row per event, its canonical line as the
file log writes it (so the same strict parser and hash chain check it), append-only by trigger."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "control_events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("line", sa.Text, nullable=False),
        sa.Column("idempotency_key", sa.Text, unique=True),
    )
    if op.get_bind().dialect.name == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER control_events_append_only_{event.lower()} BEFORE {event} ON control_events "
                       "BEGIN SELECT RAISE(ABORT, 'the control-plane event log is append-only'); END")
    else:
        op.execute("CREATE OR REPLACE FUNCTION control_events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN RAISE EXCEPTION 'the control-plane event log is append-only'; END $$")
        op.execute("CREATE TRIGGER control_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON control_events "
                   "FOR EACH STATEMENT EXECUTE FUNCTION control_events_append_only()")


def downgrade() -> None:
    raise RuntimeError("the event log is append-only: restore a backup instead of downgrading")
