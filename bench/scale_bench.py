"""A team's scale on one control plane: 100,000 runs, 1,000,000 model versions over 1,000 assets, 10,000 schedules,
on the embedded SQLite stores and on PostgreSQL.

The stores are filled in bulk (rows inserted directly, in large transactions: a real job's summary, its model and
its metrics repeated with new ids), then every read goes through the product's code: each dashboard page asked of a
real server on 127.0.0.1 (the first request and the median and worst of ten more), `unity-mlops models path
NAME@ALIAS` as a whole CLI process (median of five), and the scheduler's tick over 10,000 schedules (median of 20,
nothing due, then one with 10 schedules due). Budgets: pages < 300 ms median, the CLI < 0.3 s, a tick < 100 ms.

    python bench/scale_bench.py [--runs 100000] [--versions 1000000] [--assets 1000] [--schedules 10000]
                                [--db sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import uvicorn
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, UnityAssetSpec, UnityMLOpsOrchestrator  # noqa: E402
from mlops_unity_pipeline.app import App  # noqa: E402
from mlops_unity_pipeline.pipeline.runindex import RunTable  # noqa: E402
from mlops_unity_pipeline.pipeline.summary import summarize  # noqa: E402
from mlops_unity_pipeline.registry.local import _INSERT, LocalModelRegistry  # noqa: E402
from mlops_unity_pipeline.scheduler.scheduler import TrainingScheduler, _Schedule  # noqa: E402
from mlops_unity_pipeline.scheduler.triggers import CronTrigger  # noqa: E402
from mlops_unity_pipeline.specs import TrainingSchedule  # noqa: E402
from mlops_unity_pipeline.ui.server import create_app  # noqa: E402

ASSET = UnityAssetSpec(asset_id="nav-001", name="NavAgent", description="Reach the target position")
PAGE_BUDGET_MS, CLI_BUDGET_S, TICK_BUDGET_MS = 300.0, 0.3, 100.0
CHUNK = 20_000


def _chunks(rows, size=CHUNK):
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


def fill(ws: Path, database: str | None, n_runs: int, n_versions: int, n_assets: int, n_schedules: int) -> dict:
    orch = UnityMLOpsOrchestrator(ws, evaluation_episodes=20, show_progress=False, database=database)
    cfg = RLTrainingConfig(trainer="fast", max_steps=4096, summary_freq=1024,
                           hyperparameters={"buffer_size": 1024, "batch_size": 256})
    seed = orch.execute_training_job_sync(TrainingJob(job_id="seed-run", asset_spec=ASSET, rl_config=cfg))
    assert seed.succeeded, seed.error
    t0 = time.perf_counter()
    base = asdict(summarize(ws / "seed-run"))
    statuses = ["completed"] * 8 + ["failed", "cancelled"]
    runs = [{**base, "job_id": f"run-{i:06d}", "status": statuses[i % 10], "success": (i % 97) / 96,
             "reward": (i % 89) / 88 - 0.5, "duration_s": 60.0 + i % 600, "asset": f"Asset{i % n_assets:04d}",
             "started_at": (datetime(2026, 9, 1, tzinfo=timezone.utc) + timedelta(minutes=i)).isoformat(),
             "attempt": 1, "updated_at": ""} for i in range(n_runs - 1)]
    table = RunTable.for_paths(orch.paths)
    names = [*base, "attempt", "updated_at"]
    for chunk in _chunks(runs):
        with table.db.write("runs") as conn:
            conn.execute(text(f"INSERT INTO job_runs ({', '.join(names)}) VALUES "
                              f"({', '.join(':' + n for n in names)})"), chunk)
    for i in (1, 2):  # the runs the compare page opens have their folders (the bulk rows have none)
        shutil.copytree(ws / "seed-run", ws / f"run-{i:06d}")
    fill_runs = time.perf_counter() - t0

    t0 = time.perf_counter()
    registry = orch.registry if isinstance(orch.registry, LocalModelRegistry) else \
        LocalModelRegistry(ws / "_registry", database)
    seed_version = registry.get(seed.model_version)
    per_asset = max(1, n_versions // n_assets)
    rows = []
    for a in range(n_assets):
        for n in range(1, per_asset + 1):
            rows.append({"version": f"unity-asset{a:04d}-20261207-abc1234-v{n:06d}", "asset_name": f"asset{a:04d}",
                         "asset_id": f"asset-{a:04d}", "behavior_name": "NavAgent", "run_number": n,
                         "job_id": f"run-{(a * per_asset + n) % n_runs:06d}", "created_at": seed_version.created_at,
                         "model_sha256": seed_version.model_sha256, "model_file": seed_version.model_path.name,
                         "files_json": "{}", "metrics_json": json.dumps(
                             {"evaluation": {"model": {"success_rate": (n % 97) / 96, "mean_reward": 1.0}}}),
                         "lineage_json": "{}", "run_key": f"bulk|{a}|{n}"})
    for chunk in _chunks(rows):
        with registry.db.write("registry") as conn:
            conn.execute(text(_INSERT), chunk)
    now = datetime.now(timezone.utc).isoformat()
    with registry.db.write("registry") as conn:  # the per-asset counts registration keeps beside the versions
        conn.execute(text("UPDATE registry_assets SET versions = versions + :n WHERE asset_name = :a"),
                     [{"a": f"asset{a:04d}", "n": per_asset} for a in range(n_assets)])
        conn.execute(text("INSERT INTO registry_assets (asset_name, versions) SELECT :a, :n WHERE NOT EXISTS "
                          "(SELECT 1 FROM registry_assets WHERE asset_name = :a)"),
                     [{"a": f"asset{a:04d}", "n": per_asset} for a in range(n_assets)])
    with registry.db.write("registry") as conn:
        conn.execute(text("INSERT INTO aliases (asset_name, alias, version, updated_at) VALUES (:a, 'production', "
                          ":v, :t)"), [{"a": f"asset{a:04d}", "v": f"unity-asset{a:04d}-20261207-abc1234-v"
                                        f"{per_asset:06d}", "t": now} for a in range(n_assets)])
    mid = n_assets // 2
    target = f"unity-asset{mid:04d}-20261207-abc1234-v{per_asset:06d}"  # the CLI's NAME@ALIAS resolves to it
    (registry.models / target).mkdir(parents=True, exist_ok=True)
    os.link(seed_version.model_path, registry.models / target / seed_version.model_path.name)
    fill_versions = time.perf_counter() - t0

    t0 = time.perf_counter()
    scheduler = TrainingScheduler(orch, max_concurrent_jobs=0)  # ticks record due runs, never start them
    spec = TrainingSchedule(schedule_id="s", cron_expression="0 3 * * *", asset_specs=[ASSET], rl_config=cfg)
    later = (datetime.now(timezone.utc) + timedelta(hours=6)).isoformat()
    sched_rows = []
    for i in range(n_schedules):
        s = spec.model_copy(update={"schedule_id": f"sched-{i:05d}", "cron_expression": f"{i % 60} {i % 24} * * *"})
        scheduler.schedules[s.schedule_id] = _Schedule(s, CronTrigger(s.cron_expression, s.timezone))
        sched_rows.append({"id": s.schedule_id, "spec": json.dumps(s.model_dump(mode="json"), sort_keys=True),
                           "last": now, "next": later, "at": now})
    for chunk in _chunks(sched_rows):
        with scheduler.store.db.write("scheduler") as conn:
            conn.execute(text("INSERT INTO schedules (schedule_id, spec_json, paused, last_fire, next_fire, "
                              "updated_at) VALUES (:id, :spec, 0, :last, :next, :at)"), chunk)
    fill_schedules = time.perf_counter() - t0
    print(f"filled: {n_runs} runs {fill_runs:.0f} s, {len(rows)} versions {fill_versions:.0f} s, {n_schedules} "
          f"schedules {fill_schedules:.0f} s", flush=True)
    return {"scheduler": scheduler, "target": target, "per_asset": per_asset, "asset": f"asset{mid:04d}"}


def pages(ws: Path, asset: str, per_asset: int, repeats: int) -> list[tuple]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    web = create_app(App(workspace=str(ws)))  # the shared database, if any, from UNITY_MLOPS_DATABASE_URL
    server = uvicorn.Server(uvicorn.Config(web, log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    time.sleep(3.0)  # the server warms up in the background at start (a visitor arrives later)
    urls = ["/", "/?sort=success&desc=1&page=100", "/?q=run-0999&status=completed", "/?sort=duration_s&page=1000",
            "/runs/seed-run", "/compare?run=seed-run&run=run-000001&run=run-000002", "/models", "/models?page=10",
            f"/models/{asset}", f"/models/{asset}?page={max(0, per_asset // 50 - 1)}", "/schedules",
            "/schedules?page=150", "/webhooks"]
    out = []
    with httpx.Client(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=120) as client:
        for url in urls:
            times = []
            for _ in range(repeats + 1):
                t0 = time.perf_counter()
                r = client.get(url)
                times.append(1000 * (time.perf_counter() - t0))
                assert r.status_code == 200, (url, r.status_code, r.text[:300])
            out.append((url, times[0], statistics.median(times[1:]), max(times[1:])))
    server.should_exit = True
    return out


def floor(driver: str, runs: int = 5) -> tuple[float, float]:
    """The same machine's floor, measured beside the CLI: a bare interpreter, and one that imports the database's
    driver (all that `models path` needs of a database: it reads the alias without SQLAlchemy, registry/lookup.py)."""
    out = []
    for code in ("pass", f"import {driver}"):
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            times.append(time.perf_counter() - t0)
        out.append(statistics.median(times))
    return out[0], out[1]


def cli_path(ws: Path, database: str | None, asset: str, runs: int = 5) -> tuple[float, str]:
    # as installed (pip writes bytecode at install): the first run writes it, the median is over the next ones
    env = {k: v for k, v in os.environ.items() if k not in ("UNITY_MLOPS_DATABASE_URL", "PYTHONDONTWRITEBYTECODE")}
    if database:
        env["UNITY_MLOPS_DATABASE_URL"] = database
    times, out = [], ""
    for _ in range(runs + 1):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "models", "path", f"{asset}@production",
                            "--workspace", str(ws)], capture_output=True, text=True, env=env, timeout=120)
        times.append(time.perf_counter() - t0)
        assert r.returncode == 0, r.stderr
        out = r.stdout.strip()
    return statistics.median(times[1:]), out


def ticks(scheduler: TrainingScheduler, repeats: int = 20) -> tuple[float, float, int]:
    idle = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        asyncio.run(scheduler.tick())
        idle.append(1000 * (time.perf_counter() - t0))
    due = [f"sched-{i:05d}" for i in range(0, 10_000, 1000)][:10]
    past = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
    for sid in due:
        scheduler.store.db.execute("UPDATE schedules SET next_fire = :p WHERE schedule_id = :s", {"p": past, "s": sid},
                                   name="scheduler")
    t0 = time.perf_counter()
    asyncio.run(scheduler.tick())
    busy = 1000 * (time.perf_counter() - t0)
    return statistics.median(idle), busy, len(due)


def run(kind: str, args: argparse.Namespace) -> dict:
    pg = None
    database = None
    if kind == "postgresql":
        from mlops_unity_pipeline.store import open_database
        from servers import Postgres

        pg = Postgres().start()
        database = pg.create_database()
        open_database(database).upgrade()
        os.environ["UNITY_MLOPS_DATABASE_URL"] = database
    else:
        os.environ.pop("UNITY_MLOPS_DATABASE_URL", None)
    try:
        with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
            ws = Path(tmp) / "runs"
            filled = fill(ws, database, args.runs, args.versions, args.assets, args.schedules)
            rows = pages(ws, filled["asset"], filled["per_asset"], args.repeats)
            cli_s, printed = cli_path(ws, database, filled["asset"])
            bare_s, driver_s = floor("psycopg" if database else "sqlite3")
            assert printed.endswith(f"{filled['target']}/{Path(printed).name}"), printed
            idle_ms, busy_ms, n_due = ticks(filled["scheduler"])
            filled["scheduler"].store.release()
            return {"kind": kind, "pages": rows, "cli_s": cli_s, "bare_s": bare_s, "driver_s": driver_s,
                    "tick_idle_ms": idle_ms, "tick_due_ms": busy_ms,
                    "due": n_due}
    finally:
        os.environ.pop("UNITY_MLOPS_DATABASE_URL", None)
        if pg is not None:
            pg.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--versions", type=int, default=1_000_000)
    ap.add_argument("--assets", type=int, default=1_000)
    ap.add_argument("--schedules", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--db", default="sqlite,postgresql")
    args = ap.parse_args()
    print(f"{platform.node()}: {os.cpu_count()} cores; {args.runs} runs, {args.versions} versions over "
          f"{args.assets} assets, {args.schedules} schedules", flush=True)
    results = [run(kind, args) for kind in args.db.split(",")]
    kinds = [r["kind"] for r in results]
    print("\n| page | " + " | ".join(f"{k}: first / median / worst" for k in kinds) + " |")
    print("|---|" + "---:|" * len(kinds))
    for i, (url, *_rest) in enumerate(results[0]["pages"]):
        cells = [f"{r['pages'][i][1]:.0f} / **{r['pages'][i][2]:.0f}** / {r['pages'][i][3]:.0f} ms" for r in results]
        print(f"| `{url}` | " + " | ".join(cells) + " |")
    print(f"| `unity-mlops models path asset{args.assets // 2:04d}@production` (whole process, median of 5) | "
          + " | ".join(f"{r['cli_s']:.2f} s" for r in results) + " |")
    print("| floor: `python -c pass` / `python -c 'import DRIVER'` (sqlite3, psycopg; median of 5, same machine) | "
          + " | ".join(f"{r['bare_s']:.2f} s / {r['driver_s']:.2f} s" for r in results) + " |")
    print(f"| scheduler tick, {args.schedules} schedules, none due (median of 20) | "
          + " | ".join(f"{r['tick_idle_ms']:.1f} ms" for r in results) + " |")
    print(f"| scheduler tick, {results[0]['due']} due (they fire: runs recorded) | "
          + " | ".join(f"{r['tick_due_ms']:.1f} ms" for r in results) + " |")
    slow = [f"{r['kind']} {url}" for r in results for url, _, median, _ in r["pages"] if median > PAGE_BUDGET_MS]
    slow += [f"{r['kind']} CLI" for r in results if r["cli_s"] > CLI_BUDGET_S]
    slow += [f"{r['kind']} tick" for r in results if max(r["tick_idle_ms"], r["tick_due_ms"]) > TICK_BUDGET_MS]
    print(f"\nwithin budget (pages {PAGE_BUDGET_MS:.0f} ms median, CLI {CLI_BUDGET_S} s, tick "
          f"{TICK_BUDGET_MS:.0f} ms): " + ("yes" if not slow else "NO: " + ", ".join(slow)))


if __name__ == "__main__":
    main()
