"""The command line as a user meets it: help everywhere, clear errors, no tracebacks for mistakes."""

import argparse
import json
import subprocess
import sys

import pytest

from mlops_unity_pipeline.cli import build_parser

COMMANDS = [[], ["train"], ["trainer"], ["trainer", "setup"], ["trainer", "check"], ["behavior"],
            ["behavior", "show"], ["generate"], ["build"], ["evaluate"], ["models"], ["models", "list"],
            ["models", "show"], ["models", "path"]]


def cli(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*command, "--help"])
    assert exit_.value.code == 0
    assert "usage: unity-mlops" in capsys.readouterr().out


def test_bad_job_file_is_a_clear_error_without_traceback(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text("job_id: j\nasset_spec: {asset_id: a, name: My Agent}\nrl_config: {algorithm: DQN, max_steps: 0}\n")
    r = cli("train", str(job), "--workspace", str(tmp_path / "runs"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    for words in ("asset_spec.name", "C# identifier", "rl_config.algorithm", "PPO, SAC", "rl_config.max_steps"):
        assert words in r.stderr
    assert not (tmp_path / "runs").exists(), "nothing is written for an invalid job"


def test_trainer_check_names_what_is_missing(tmp_path):
    r = cli("trainer", "check", "--path", str(tmp_path / "nowhere"))
    assert r.returncode == 3 and "does not exist" in r.stderr and "unity-mlops trainer setup" in r.stderr


def test_behavior_show_and_generate(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("asset_id: a\nname: Guard\ndescription: Patrol between waypoints\n")
    r = cli("behavior", "show", str(spec))
    assert r.returncode == 0 and json.loads(r.stdout)["archetype"] == "patrol"
    r = cli("generate", str(spec), "--out", str(tmp_path / "gen"))
    assert r.returncode == 0
    assert (tmp_path / "gen" / "GuardAgent.cs").is_file() and (tmp_path / "gen" / "trainer_config.yaml").is_file()


def test_evaluate_rejects_a_model_for_another_behavior(tmp_path, samples):
    spec = tmp_path / "spec.yaml"
    spec.write_text("asset_id: a\nname: Runner\ndescription: reach the target\n")
    r = cli("evaluate", str(samples / "onnx" / "3DBall.onnx"), "--spec", str(spec))
    assert r.returncode == 2 and "does not fit behavior Runner" in r.stderr and "Traceback" not in r.stderr


def test_models_commands_on_an_empty_registry(tmp_path):
    r = cli("models", "--registry", str(tmp_path / "reg"), "list")
    assert r.returncode == 0 and "no models registered" in r.stdout
    r = cli("models", "--registry", str(tmp_path / "reg"), "show", "unity-x-20260101-nogit-v001")
    assert r.returncode == 2 and "not found" in r.stderr and "models list" in r.stderr


def test_no_library_log_line_reaches_the_console_on_a_new_workspace(tmp_path):
    """The first registration migrates a new store; alembic used to print its plugin set-up in the middle of the
    job's lines. At the default level the console holds the product's own lines (the job's log) and its progress."""
    job = tmp_path / "job.yaml"
    job.write_text("job_id: quiet\nasset_spec: {asset_id: q, name: Quiet, description: reach the target}\n"
                   "rl_config: {trainer: fast, max_steps: 3000}\n")
    r = cli("train", str(job), "--workspace", str(tmp_path / "runs"))
    assert r.returncode == 0, r.stderr
    logged = {line.split(None, 3)[3] for line in
              (tmp_path / "runs" / "quiet" / "logs" / "pipeline.log").read_text().splitlines()}
    progress = ("train Quiet (fast) ", "evaluate Quiet on the simulator ")
    console = [line for line in r.stderr.splitlines() if not line.startswith(progress)]
    assert console and set(console) <= logged, set(console) - logged
    assert (tmp_path / "runs" / "_registry" / "registry.db").is_file(), "the store was created and migrated"


def test_each_command_is_built_by_the_group_that_owns_it():
    """A command builds only its own group's parsers (a short command starts faster): the map says which."""
    from mlops_unity_pipeline import cli

    owners = {}
    for group in cli.GROUPS:
        sub = next(a for a in build_parser((group,))._actions if isinstance(a, argparse._SubParsersAction))
        owners.update({name: group for name in sub.choices})
    assert owners == cli.OWNER
