"""Dashboard page times with big stores: 1,000 runs in the workspace and 10,000 versions in the registry.

One real job (trainer 'fast') is trained; its folder is replicated into 1,000 runs (their ids and seeds changed,
every file real), and its model is registered 10,000 times through the registry's own `register` (one asset, the
worst case for the asset page and its lineage chart). Then a real server on 127.0.0.1 is asked for every page:
the first request (cold caches) and the median and worst of ten more.

    python bench/ui_bench.py [--runs 1000] [--versions 10000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, UnityAssetSpec, UnityMLOpsOrchestrator
from mlops_unity_pipeline.app import App
from mlops_unity_pipeline.registry.base import RegistrationRequest
from mlops_unity_pipeline.registry.local import LocalModelRegistry
from mlops_unity_pipeline.ui.server import create_app

ASSET = UnityAssetSpec(asset_id="nav-001", name="NavAgent", description="Reach the target position")
BUDGET_MS = 300.0


def populate(ws: Path, runs: int, versions: int) -> None:
    orch = UnityMLOpsOrchestrator(ws, evaluation_episodes=30, show_progress=False)
    cfg = RLTrainingConfig(trainer="fast", max_steps=4096, summary_freq=1024,
                           hyperparameters={"buffer_size": 1024, "batch_size": 256})
    seed = orch.execute_training_job_sync(TrainingJob(job_id="seed-run", asset_spec=ASSET, rl_config=cfg))
    assert seed.succeeded, seed.error
    t0 = time.perf_counter()
    for i in range(runs - 1):
        dst = ws / f"run-{i:05d}"
        shutil.copytree(ws / "seed-run", dst)
        job = json.loads((dst / "job.json").read_text())
        job["job_id"], job["rl_config"]["seed"] = dst.name, i
        (dst / "job.json").write_text(json.dumps(job))
    print(f"{runs} runs in the workspace ({time.perf_counter() - t0:.1f} s to copy)")
    registry = LocalModelRegistry(ws / "_registry")
    model = Path(seed.trained_model_path)
    t0 = time.perf_counter()
    for i in range(versions - 1):
        registry.register(RegistrationRequest(
            asset_id="nav-001", asset_name="NavAgent", behavior_name="NavAgent", job_id=f"run-{i % runs:05d}",
            model_path=model, metrics={"evaluation": {"model": {"success_rate": (i % 97) / 96,
                                                                "mean_reward": 1.0}}},
            git_sha="abc1234", run_key=f"bench-{i}"))
    print(f"{versions} versions in the registry ({time.perf_counter() - t0:.1f} s to register)")


def measure(base: str, pages: list[str], repeats: int) -> list[tuple[str, float, float, float]]:
    out = []
    with httpx.Client(base_url=base, timeout=60) as client:
        for page in pages:
            times = []
            for _ in range(repeats + 1):
                t0 = time.perf_counter()
                r = client.get(page)
                times.append(1000 * (time.perf_counter() - t0))
                assert r.status_code == 200, (page, r.status_code, r.text[:300])
            out.append((page, times[0], statistics.median(times[1:]), max(times[1:])))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--versions", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ui-bench-") as tmp:
        ws = Path(tmp) / "runs"
        populate(ws, args.runs, args.versions)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        web = create_app(App(workspace=str(ws)))
        server = uvicorn.Server(uvicorn.Config(web, log_level="warning"))
        threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        time.sleep(5.0)  # the server warms its caches in the background at start (a visitor arrives later)
        pages = ["/", "/?sort=success&desc=1&page=10", "/?q=run-009&status=completed",
                 f"/runs/run-{args.runs // 2:05d}",
                 "/compare?run=run-00001&run=run-00002&run=run-00003", "/models", "/models/navagent",
                 f"/models/navagent?page={args.versions // 100}", "/schedules", "/webhooks", "/control-plane"]
        rows = measure(f"http://127.0.0.1:{sock.getsockname()[1]}", pages, args.repeats)
        server.should_exit = True
    print(f"\n| page | first request | median of {args.repeats} | worst of {args.repeats} |\n|---|---:|---:|---:|")
    for page, first, median, worst in rows:
        print(f"| `{page}` | {first:.0f} ms | {median:.0f} ms | {worst:.0f} ms |")
    slow = [p for p, _, median, _ in rows if median > BUDGET_MS]
    print(f"\nall pages under {BUDGET_MS:.0f} ms (median): {'yes' if not slow else 'NO: ' + ', '.join(slow)}")


if __name__ == "__main__":
    main()
