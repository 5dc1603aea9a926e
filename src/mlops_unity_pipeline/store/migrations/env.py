"""Alembic's entry point: migrate the `Database` handed over in the config, in one serialized transaction.

The transaction is the store's write lock (`BEGIN IMMEDIATE` on SQLite, an advisory lock on PostgreSQL), so two
processes that start on a new store at once migrate it once: the second finds it at head.
"""

from alembic import context

db = context.config.attributes["database"]
with db.engine.connect() as conn:
    if db.is_sqlite:
        conn.info["begin"] = "BEGIN IMMEDIATE"
    with conn.begin():
        if not db.is_sqlite:
            from mlops_unity_pipeline.store.database import lock_key

            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({lock_key('migrations')})")
        context.configure(connection=conn, transactional_ddl=True)
        context.run_migrations()
