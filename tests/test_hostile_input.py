"""User mistakes meet one error path: one block naming every problem with its field (and a suggestion for a
near-miss key), exit code 2, nothing written; NaN, infinities, negative durations and absurd sizes are refused at
the spec; duplicate keys are errors; a closed pipe ends a command quietly."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mlops_unity_pipeline.errors import SpecError
from mlops_unity_pipeline.scheduler.config import load_scheduler_config
from mlops_unity_pipeline.specs import load_job


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_an_invalid_behaviour_is_one_block_with_every_problem_exit_2_and_nothing_written(tmp_path):
    (tmp_path / "job.yaml").write_text(
        "job_id: bad\nasset_spec: {asset_id: a, name: Bad, description: reach, archetype: flying,\n"
        "  observation_space: {velocty: 2, raycast: 500}}\nrl_config: {max_steps: 1000}\n")
    r = cli("train", "job.yaml", "--workspace", str(tmp_path / "runs"), cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    for words in ("archetype 'flying' is unknown", "did you mean 'velocity'", "between 1 and 64 rays"):
        assert words in r.stderr, r.stderr
    assert r.stderr.count("archetype 'flying'") == 1, "said once"
    assert "artifacts kept" not in r.stderr and sorted(p.name for p in tmp_path.iterdir()) == ["job.yaml"]


@pytest.mark.parametrize("field, value", [
    ("timeout_s", ".nan"), ("timeout_s", "-5"), ("timeout_s", ".inf"),
    ("rl_config.seed", "1e30"), ("rl_config.time_scale", ".inf"), ("rl_config.max_steps", str(10**30)),
    ("rl_config.num_envs", str(10**30)), ("rl_config.seed", "-1"),
])
def test_values_that_used_to_pass_and_fail_later_are_refused_at_the_spec(tmp_path, field, value):
    top, _, sub = field.partition(".")
    body = f"rl_config: {{{sub}: {value}}}\n" if sub else f"{top}: {value}\n"
    (tmp_path / "job.yaml").write_text("job_id: j\nasset_spec: {asset_id: a, name: A}\n" + body)
    with pytest.raises(SpecError, match=(sub or top)):
        load_job(tmp_path / "job.yaml")


@pytest.mark.parametrize("field, value", [
    ("jitter_s", ".nan"), ("retry_backoff_s", ".inf"), ("starting_deadline_s", "-5"), ("job_timeout_s", ".inf"),
    ("max_retries", "1000000"),
])
def test_schedule_numbers_are_finite_and_bounded(tmp_path, field, value):
    (tmp_path / "s.yaml").write_text(f"schedules:\n  - schedule_id: s\n    cron_expression: '0 2 * * *'\n"
                                     f"    asset_specs: [{{asset_id: a, name: A}}]\n    {field}: {value}\n")
    with pytest.raises(SpecError, match=field):
        load_scheduler_config(tmp_path / "s.yaml")


def test_duplicate_keys_are_errors(tmp_path):
    (tmp_path / "job.yaml").write_text("job_id: j\nasset_spec: {asset_id: a, name: A}\njob_id: k\n")
    r = cli("train", "job.yaml", "--workspace", str(tmp_path / "runs"), cwd=tmp_path)
    assert r.returncode == 2 and "duplicate key 'job_id'" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "job.json").write_text('{"job_id": "j", "job_id": "k", "asset_spec": {"asset_id": "a", "name": "A"}}')
    with pytest.raises(SpecError, match="duplicate key 'job_id'"):
        load_job(tmp_path / "job.json")


BOMB = "{a: &a [x, x, x, x, x, x, x, x, x], b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a], " \
       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b], d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c], " \
       "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d], f: [*e, *e, *e, *e, *e, *e, *e, *e, *e]}"


@pytest.mark.parametrize("value, words", [
    ("{x: !!binary /w==}", "metadata.x: a !!binary value"), ("{x: !!set {a, b}}", "metadata.x: a !!set"),
    ("{x: 2024-01-01}", "metadata.x: a date"), ("{x: !!timestamp 2024-01-01T10:00:00Z}", "metadata.x: a datetime"),
    ("{x: .nan}", "metadata.x: nan"),
    ("{x: [1, -.inf]}", "metadata.x[1]: -inf"), ("{1: x}", "the key 1 must be text"),
    ("{? [a]: x}", "a mapping key must be text"), ("&a {x: *a}", "recursive"), (BOMB, "more than 100,000 values"),
    ("{x: !!python/object:os.system {}}", "could not determine a constructor"),
])
def test_yaml_values_that_are_not_plain_data_are_one_clear_error_and_nothing_written(tmp_path, value, words):
    """`!!binary` metadata used to end in UnicodeDecodeError while writing job.json, after runs/<job> was made."""
    (tmp_path / "job.yaml").write_text(f"job_id: j\nasset_spec: {{asset_id: a, name: A, metadata: {value}}}\n")
    r = cli("train", "job.yaml", "--workspace", str(tmp_path / "runs"), cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "job.yaml" in r.stderr and words in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) <= 4, r.stderr
    assert not (tmp_path / "runs").exists()


def test_binary_values_are_refused_through_the_python_api_too():
    from pydantic import ValidationError

    from mlops_unity_pipeline.specs import RLTrainingConfig, UnityAssetSpec

    with pytest.raises(ValidationError, match="(?s)metadata.*x: a !!binary value"):
        UnityAssetSpec(asset_id="a", name="A", metadata={"x": b"\xff"})
    with pytest.raises(ValidationError, match="not a finite number"):
        RLTrainingConfig(hyperparameters={"learning_rate": float("nan")})


def test_yaml_merge_keys_still_work_and_explicit_keys_override_them(tmp_path):
    from mlops_unity_pipeline.specs import load_document

    (tmp_path / "m.yaml").write_text("d: &d {a: 1, b: 2}\nx:\n  <<: *d\n  b: 3\n")
    assert load_document(tmp_path / "m.yaml") == {"d": {"a": 1, "b": 2}, "x": {"a": 1, "b": 3}}


def test_a_closed_pipe_ends_quietly(tmp_path, samples):
    from mlops_unity_pipeline.registry import LocalModelRegistry, RegistrationRequest

    reg = LocalModelRegistry(tmp_path / "reg")
    for _ in range(40):
        reg.register(RegistrationRequest("a", "Piped", "Piped", "j", samples / "onnx" / "3DBall.onnx"))
    for reader in ("head -1", "true"):  # `true` never reads: every write meets a closed pipe
        r = subprocess.run(f"{sys.executable} -m mlops_unity_pipeline models --registry {tmp_path / 'reg'} list "
                           f"| {reader}", shell=True, capture_output=True, text=True, timeout=120)
        assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr


def test_the_seed_scheduler_script_against_a_held_store_is_one_clear_error(tmp_path):
    import fcntl
    import os
    from pathlib import Path

    state = tmp_path / "runs" / "_state"
    state.mkdir(parents=True)
    fd = os.open(state / "scheduler.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another scheduler holds the store
    try:
        script = Path(__file__).resolve().parents[1] / "scripts" / "scheduler_24x7.py"
        r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    finally:
        os.close(fd)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: another scheduler") and "fix:" in r.stderr
    assert list((state).iterdir()) == [state / "scheduler.lock"], "nothing written into the held store"


def test_demos_show_names_the_bad_file_in_a_directory_and_both_parts_of_a_hybrid_spec(tmp_path, samples):
    import numpy as np

    from mlops_unity_pipeline.demos.demofile import write_demo

    n = 5
    write_demo(tmp_path / "hybrid.demo", "Hyb", np.zeros((n, 4), np.float32), np.zeros((n, 2), np.float32),
               np.zeros(n, np.float32), np.array([0, 0, 0, 0, 1], bool), continuous=2, branches=(3,))
    r = cli("demos", "show", str(tmp_path / "hybrid.demo"), cwd=tmp_path)
    assert r.returncode == 0 and "actions continuous 2 + discrete [3]" in r.stdout, r.stdout + r.stderr
    (tmp_path / "good.demo").write_bytes((samples / "demos" / "ExpertBasic.demo").read_bytes())
    data = bytearray((samples / "demos" / "ExpertBasic.demo").read_bytes())
    data[1] = 0x0A
    (tmp_path / "broken.demo").write_bytes(bytes(data))
    r = cli("demos", "show", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 2 and "broken.demo" in r.stderr and "Traceback" not in r.stderr
