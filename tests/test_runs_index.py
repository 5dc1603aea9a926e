"""The runs index: the pipeline writes a run's row at each transition, in the workspace's SQLite file or the shared
PostgreSQL database; the dashboard pages read it in SQL (filters, sorts, pages agree with the same query done in
Python over the rows); `db reindex` rebuilds it from the folders, and the rebuilt index equals the live one."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import asdict

import pytest

from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, UnityAssetSpec, UnityMLOpsOrchestrator
from mlops_unity_pipeline.pipeline.runindex import SORTS, RunTable
from mlops_unity_pipeline.pipeline.summary import RunSummary, summarize

FAST = RLTrainingConfig(trainer="fast", max_steps=2048, checkpoint_interval=1024, summary_freq=1024,
                        hyperparameters={"buffer_size": 1024, "batch_size": 256})


def test_the_pipeline_writes_the_rows_and_reindex_rebuilds_the_same(tmp_path, database):
    ws = tmp_path / "runs"
    orch = UnityMLOpsOrchestrator(ws, evaluation_episodes=20, show_progress=False, database=database)
    spec = UnityAssetSpec(asset_id="idx-1", name="IdxAgent", description="Reach target position")
    ok = orch.execute_training_job_sync(TrainingJob(job_id="idx-ok", asset_spec=spec, rl_config=FAST))
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    bad = orch.execute_training_job_sync(TrainingJob(job_id="idx-bad", asset_spec=spec, rl_config=FAST,
                                                     registry=str(blocker / "reg")))
    assert ok.succeeded and not bad.succeeded
    table = RunTable.for_paths(orch.paths)
    live = {r.job_id: r for r in table.query(limit=100)[0]}
    assert live["idx-ok"].status == "completed" and live["idx-ok"].model_version == ok.model_version
    assert live["idx-ok"].success is not None and (live["idx-ok"].trainer, live["idx-ok"].asset) == ("fast", "IdxAgent")
    assert live["idx-bad"].status == "failed" and live["idx-bad"].stage == "register"
    assert live == {d.name: summarize(d) for d in (ws / "idx-ok", ws / "idx-bad")}, "the row is the folder's summary"

    env = {**os.environ, "UNITY_MLOPS_DATABASE_URL": database} if database else \
        {k: v for k, v in os.environ.items() if k != "UNITY_MLOPS_DATABASE_URL"}
    with table.db.write("runs") as conn:  # an index that drifted: a stale row, a missing one
        from sqlalchemy import text

        conn.execute(text("UPDATE job_runs SET status = 'running' WHERE job_id = 'idx-ok'"))
        conn.execute(text("DELETE FROM job_runs WHERE job_id = 'idx-bad'"))
    r = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "db", "reindex", "--all", "--workspace",
                        str(ws)], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0 and "2 run(s)" in r.stdout, r.stderr
    assert {x.job_id: x for x in table.query(limit=100)[0]} == live


def _rows(n: int, seed: int) -> list[RunSummary]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        status = rng.choice(["completed", "failed", "running", "cancelled"])
        out.append(RunSummary(
            job_id=f"job-{i:05d}", status=status, trainer=rng.choice(["fast", "mlagents"]),
            steps=rng.choice([None, rng.randrange(0, 10**6)]), max_steps=10**6,
            success=rng.choice([None, 0.0, 0.5, round(rng.random(), 3)]),
            reward=rng.choice([None, round(rng.uniform(-1, 1), 4)]),
            duration_s=rng.choice([None, round(rng.uniform(1, 900), 2)]),
            started_at=f"2026-12-{rng.randrange(1, 8):02d}T{rng.randrange(24):02d}:00:00+00:00",
            asset=rng.choice(["NavAgent", "Racer", "Chaser_1", "100%Bot"])))
    return out


def _expected(rows, text, status, sort, descending, offset, limit):
    sel = [r for r in rows if (not text or text.lower() in r.job_id.lower() or text.lower() in r.asset.lower())
           and (not status or r.status == status)]
    present = sorted((r for r in sel if getattr(r, sort) is not None), key=lambda r: (getattr(r, sort), r.job_id),
                     reverse=descending)
    missing = sorted((r for r in sel if getattr(r, sort) is None), key=lambda r: r.job_id, reverse=descending)
    ordered = present + missing
    return [r.job_id for r in ordered[offset:offset + limit]], len(ordered)


def test_pages_filters_and_sorts_in_sql_agree_with_python(tmp_path, database):
    table = RunTable(database or tmp_path / "runs.db")
    rows = _rows(600, seed=3)
    with table.db.write("runs") as conn:
        for r in rows:
            table._upsert(conn, {**asdict(r), "attempt": 1, "updated_at": ""})
    rng = random.Random(4)
    for _ in range(40):
        args = dict(text=rng.choice(["", "job-001", "RACER", "_1", "100%", "nobody"]),
                    status=rng.choice(["", "completed", "running"]), sort=rng.choice(SORTS),
                    descending=rng.random() < 0.5, offset=rng.choice([0, 50, 590]), limit=rng.choice([1, 50]))
        got, total = table.query(text_=args["text"], status=args["status"], sort=args["sort"],
                                 descending=args["descending"], offset=args["offset"], limit=args["limit"])
        assert ([r.job_id for r in got], total) == _expected(rows, **args), args


@pytest.mark.parametrize("hostile", ["%", "_", "\\", "' OR 1=1 --", "x" * 10_000])
def test_a_hostile_filter_is_a_literal(tmp_path, hostile):
    table = RunTable(tmp_path / "runs.db")
    with table.db.write("runs") as conn:
        for r in _rows(20, seed=1):
            table._upsert(conn, {**asdict(r), "attempt": 1, "updated_at": ""})
    got, total = table.query(text_=hostile)
    assert total == sum(hostile.lower() in r.job_id.lower() or hostile.lower() in r.asset.lower()
                        for r in _rows(20, seed=1))
