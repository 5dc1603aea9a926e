"""A short run of the chaos harness (bench/chaos.py) with real processes: a kill -9 at each point of a scheduled run,
a webhook receiver outage with three concurrent senders, and three ML-Agents jobs started at the same instant
beside a port thief. The figures in docs/benchmarks/chaos.md come from the long run of the same harness."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.trainer, pytest.mark.usefixtures("clean_build_env")]


def test_chaos_harness_short_run(tmp_path, trainer_env):
    out = tmp_path / "chaos.json"
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "chaos.py"), "--kills", "7", "--kill-steps", "12000",
                        "--outage", "4", "--events", "6", "--retry-schedule", "0.5,1,2,4,8", "--mlagents-jobs", "3",
                        "--mlagents-steps", "2000", "--json", str(out)], capture_output=True, text=True, cwd=tmp_path,
                       timeout=1500)
    assert out.exists(), r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())
    kill, outage, ports = res["kill"], res["outage"], res["ports"]
    assert {t["point"] for t in kill["trials"]} == {"generate", "build", "train", "trained", "registered", "finished",
                                                    "after"}
    assert kill["lost_runs"] == kill["duplicate_runs"] == kill["duplicate_versions"] == kill["trained_twice"] == 0, kill
    assert kill["versions"] == kill["runs"] == 7
    assert kill["train_kills_resumed"] == kill["train_kills"], kill
    assert outage["delivered"] == outage["events"] and outage["duplicate_ids"] == 0, outage
    assert ports["port_failures"] == 0 and ports["completed"] == ports["jobs"] == 3, ports
    assert res["ok"] and r.returncode == 0, r.stdout[-3000:]
