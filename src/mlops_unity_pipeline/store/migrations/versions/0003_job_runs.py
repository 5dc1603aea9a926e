"""Scale. The schedules due now are found by an index (a scheduler's tick looks only at what is due, not at
10,000 schedules). The runs index: one row per job run folder, written by the pipeline at each state transition
it persists, so the dashboard and the CLI list, filter and sort runs in SQL instead of reading every folder.
Derived data: `unity-mlops db reindex` rebuilds it from the folders."""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"

SORTS = ("started_at", "status", "trainer", "steps", "success", "reward", "duration_s", "asset")


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("job_id", sa.Text, primary_key=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("stage", sa.Text),
        sa.Column("trainer", sa.Text, nullable=False, server_default="mlagents"),
        sa.Column("steps", sa.BigInteger),
        sa.Column("max_steps", sa.BigInteger),
        sa.Column("success", sa.Float),
        sa.Column("reward", sa.Float),
        sa.Column("duration_s", sa.Float),
        sa.Column("started_at", sa.Text, nullable=False, server_default=""),
        sa.Column("asset", sa.Text, nullable=False, server_default=""),
        sa.Column("model_version", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("evaluated_on", sa.Text),
        sa.Column("attempt", sa.Integer),
        sa.Column("updated_at", sa.Text, nullable=False, server_default=""),
    )
    for column in SORTS:  # each sort, alone and within a status filter; job_id breaks ties
        op.create_index(f"job_runs_by_{column}", "job_runs", [column, "job_id"])
        if column != "status":
            op.create_index(f"job_runs_by_status_{column}", "job_runs", ["status", column, "job_id"])


    op.create_index("schedules_due", "schedules", ["paused", "next_fire"])
    # the registry's assets and how many versions each has, kept with the versions (the models page lists 1,000
    # assets without counting a million rows)
    op.create_table("registry_assets", sa.Column("asset_name", sa.Text, primary_key=True),
                    sa.Column("versions", sa.BigInteger, nullable=False))
    op.execute("INSERT INTO registry_assets (asset_name, versions) SELECT asset_name, COUNT(*) FROM versions "
               "GROUP BY asset_name")


def downgrade() -> None:
    op.drop_table("registry_assets")
    op.drop_index("schedules_due", "schedules")
    op.drop_table("job_runs")
