"""Property-based fuzzing of every other input kind (hypothesis, deterministic): ONNX files, job and scheduler YAML,
spec dicts, cron strings and control-plane tool payloads. Each asserts that only the product's error types escape
and that an accepted input works; `UNITY_MLOPS_FUZZ_EXAMPLES` sets how many per kind (300 here; the long run
10,000), and `UNITY_MLOPS_FUZZ_REPORT=FILE` writes the counts (accepted / clear errors) there."""

from __future__ import annotations

import atexit
import json
import os
import tempfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import OPS, SETTINGS, mutate
from mlops_unity_pipeline.errors import SpecError
from mlops_unity_pipeline.specs import TrainingSchedule, UnityAssetSpec, load_job, parse_model

SCRATCH = Path(tempfile.mkdtemp(prefix="unity-mlops-fuzz-"))
COUNTS: dict[str, Counter] = {}
ROOT = Path(__file__).resolve().parents[1]


def count(kind: str, outcome: str) -> None:
    COUNTS.setdefault(kind, Counter())[outcome] += 1


@atexit.register
def _report() -> None:
    if os.environ.get("UNITY_MLOPS_FUZZ_REPORT") and COUNTS:
        Path(os.environ["UNITY_MLOPS_FUZZ_REPORT"]).write_text(json.dumps(COUNTS, indent=2))


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(10**31), 10**31), st.floats(allow_nan=True),
                    st.text(max_size=40))
JSONISH = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                       max_leaves=12)


@SETTINGS
@given(ops=OPS)
def test_onnx_files(ops, samples):
    from mlops_unity_pipeline.evaluation.onnx_policy import ContractError, OnnxPolicy

    path = SCRATCH / "fuzzed.onnx"
    path.write_bytes(mutate((samples / "onnx" / "3DBall.onnx").read_bytes(), ops))
    try:
        policy = OnnxPolicy(path)
    except ContractError as exc:
        assert str(path) in str(exc)
        count("onnx", "clear error")
        return
    count("onnx", "accepted")
    policy.not_evaluable()


JOB_TEXT = (ROOT / "examples" / "navigation_job.yaml").read_bytes()


@SETTINGS
@given(ops=OPS, extra=st.dictionaries(st.sampled_from(["job_id", "asset_spec", "rl_config", "timeout_s", "vertex",
                                                       "bogus"]), JSONISH, max_size=2))
def test_job_files(ops, extra):
    path = SCRATCH / "job.yaml"
    text = mutate(JOB_TEXT, ops)
    if extra:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError:
            doc = None
        if isinstance(doc, dict):
            text = yaml.safe_dump({**doc, **extra}).encode()
    path.write_bytes(text)
    load_job_and_write_it(path, "job file")


def load_job_and_write_it(path: Path, kind: str) -> None:
    """An accepted job must also survive what the orchestrator does first: job.json and the lineage's hashes."""
    try:
        job = load_job(path)
    except SpecError as exc:
        assert str(path) in str(exc) or "job.yaml" in str(exc), exc
        count(kind, "clear error")
        return
    json.dumps(job.model_dump(mode="json"), allow_nan=False)
    count(kind, "accepted")


# YAML's own features, which byte mutations of a plain file almost never produce: tags that build non-text values,
# anchors and aliases (recursive ones too), merge keys, flow and block collections, sexagesimal and special floats
YAML_VALUES = st.sampled_from([
    "!!binary /w==", "!!binary gICA", "!!set {a, b}", "!!omap [a: 1, b: 2]", "!!pairs [a: 1, a: 2]",
    "2024-01-01", "2024-01-01 10:00:00", "!!timestamp 2001-12-14t21:59:43.10-05:00", "!!float .nan", ".inf",
    "-.Inf", "!!int 1_000", "12:30:00", "0x1F", "0o17", "!!str 1", "!!null ''", "!!bool yes", "~", "''", "1e400",
    "!!python/object:os.system {}", "!!python/name:os.system", "!custom 1", "&a [*a]", "&a {k: *a}",
    "{<<: {a: 1}, b: 2}", "{? [a, b]: c}", "{1: a, 2: b}", "{null: x}", "{true: x}", "[1, [2, [3, [4]]]]",
    "\"\\xff\\u0000\"", "'" + "x" * 5000 + "'", "|\n  multi\n  line", ">-\n  folded",
])


@SETTINGS
@given(where=st.sampled_from(["asset_spec.metadata.k", "asset_spec.description", "asset_spec.observation_space",
                              "rl_config.hyperparameters", "rl_config.hyperparameters.beta", "rl_config.seed",
                              "rl_config.network_settings.hidden_units", "timeout_s", "bogus"]),
       value=YAML_VALUES, extra=JSONISH)
def test_job_files_with_yaml_tags_aliases_and_non_text_scalars(where, value, extra):
    doc = yaml.safe_load(JOB_TEXT)
    *parents, leaf = where.split(".")
    node = doc
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = "@@VALUE@@"
    doc["asset_spec"].setdefault("metadata", {})["other"] = extra
    text = yaml.safe_dump(doc).replace("'@@VALUE@@'", value.replace("\n", "\n" + " " * 4))
    path = SCRATCH / "job.yaml"
    path.write_text(text)
    load_job_and_write_it(path, "job file (YAML tags, aliases)")


SPEC_VALUES = {
    "asset_type": st.sampled_from(["behavior", "npc", ""]) | JSONISH,
    "description": st.sampled_from(["reach the target", "avoid obstacles", "patrol waypoints"]) | st.text(max_size=80),
    "observation_space": st.dictionaries(st.sampled_from(["raycast", "velocity", "target", "rays", "lidar",
                                                          "position", "waypoint_progress"]),
                                         st.integers(-3, 100), max_size=4) | JSONISH,
    "action_space": st.fixed_dictionaries({"type": st.sampled_from(["continuous", "discrete", "x"])},
                                          optional={"size": st.integers(-1, 6),
                                                    "branches": st.lists(st.integers(-1, 6), max_size=3)}) | JSONISH,
    "archetype": st.sampled_from(["navigation", "patrol", "reach-target", "flying"]) | JSONISH,
    "name": st.sampled_from(["Agent", "Nav_Bot", "1bad", "class"]) | JSONISH,
}


@SETTINGS
@given(data=st.fixed_dictionaries({"asset_id": st.just("a")}, optional=SPEC_VALUES).map(
    lambda d: {"name": "Agent", **d}))
def test_spec_dicts(data):
    try:
        parse_model(UnityAssetSpec, data, "spec")
        count("spec dict", "accepted")
    except SpecError as exc:
        assert "spec" in str(exc)
        count("spec dict", "clear error")


CRON_FIELD = st.one_of(st.just("*"), st.integers(-2, 70).map(str), st.text("0123456789*/,-LW#?", max_size=6),
                       st.sampled_from(["MON", "jan", "*/0", "1-0", "L", "31", "30", "29"]))


@SETTINGS
@given(expr=st.one_of(st.lists(CRON_FIELD, min_size=1, max_size=7).map(" ".join), st.text(max_size=30),
                      st.sampled_from(["@hourly", "@daily", "@weekly", "@yearly", "@reboot", "@every 5m"])),
       tz=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Mars/Olympus", ""]))
def test_cron_strings(expr, tz):
    from pydantic import ValidationError

    from mlops_unity_pipeline.scheduler.triggers import CronTrigger

    try:
        s = TrainingSchedule(schedule_id="s", cron_expression=expr, timezone=tz, asset_specs=[{"asset_id": "a",
                                                                                               "name": "A"}])
    except ValidationError:
        count("cron", "clear error")
        return
    count("cron", "accepted")
    CronTrigger(s.cron_expression, s.timezone).next_after(datetime(2026, 1, 1, tzinfo=timezone.utc))  # it works


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    from mlops_unity_pipeline.controlplane import ControlPlaneRuntime
    from mlops_unity_pipeline.controlplane.runtime import DEFAULT_BUNDLE

    rt = ControlPlaneRuntime(DEFAULT_BUNDLE, None, tmp_path_factory.mktemp("cp") / "events.jsonl")
    rt.load_bundle()
    rt.compile_schemas()
    return rt


VERSION = "unity-nav-20261123-abc1234-v001"
PAYLOADS = st.one_of(
    JSONISH,
    st.fixed_dictionaries({"version": st.sampled_from([VERSION, "v1", ""]) | JSONISH,
                           "to": st.sampled_from(["staging", "production", "prod"]) | JSONISH},
                          optional={"reason": st.text(max_size=30) | JSONISH, "x": JSONISH}),
    st.fixed_dictionaries({"schedule_id": st.sampled_from(["nightly", "x" * 300]) | JSONISH,
                           "paused": st.booleans() | JSONISH}),
)


@SETTINGS
@given(action=st.sampled_from(["model.promote", "model.rollback", "model.freeze", "model.register",
                               "schedule.pause", "approval.grant", "training.run_job"]), payload=PAYLOADS)
def test_tool_payloads(action, payload, plane):
    errors = plane.validate_tool_input(action, payload)
    assert all(isinstance(e, str) and len(e) < 2000 for e in errors)
    count("tool payload", "clear error" if errors else "accepted")
    if errors:  # a rejected call is a HALT decision, logged small
        d = plane.gate(action, payload)
        assert not d.allowed
