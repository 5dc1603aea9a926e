"""Extending the product the documented way (docs/how-to/extending.md), proven end to end. Each extension is a third
party's package — its modules in `tests/thirdparty/` and entry points in a `*.dist-info` directory, installed as
pip would — and nothing of the product is edited or patched:

* an archetype with a new observation kind (one module, two entry points): chosen from a description, trained,
  evaluated and registered, its generated C# compiled and run in lockstep with the simulator, its headless player
  built with the plugin inside;
* a registry backend with its own store (one module, one entry point): a job registers in it, the CLI lists it,
  governance promotes in it;
* a trainer, a listener, a new event type, a CLI command group.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, UnityAssetSpec, UnityMLOpsOrchestrator, plugins
from mlops_unity_pipeline.behavior import build_behavior
from mlops_unity_pipeline.events import EVENT_CLASSES, Event, JobCompleted, JobStarted, ModelRegistered
from mlops_unity_pipeline.registry.ledger import Ledger
from mlops_unity_pipeline.registry.uri import open_registry
from plugin_package import PluginPackage

THIRDPARTY = Path(__file__).with_name("thirdparty")
FAST = RLTrainingConfig(trainer="fast", max_steps=2048, checkpoint_interval=1024, summary_freq=1024,
                        hyperparameters={"buffer_size": 1024, "batch_size": 256})
ASSET = UnityAssetSpec(asset_id="ext-1", name="ExtAgent", description="Reach target position")


def package(tmp_path: Path, name: str, modules: list[str], entry_points: dict[str, dict[str, str]]) -> PluginPackage:
    return PluginPackage(tmp_path / "site", name, {m: (THIRDPARTY / f"{m}.py").read_text() for m in modules},
                         entry_points)


@pytest.fixture
def sprint(tmp_path):
    pkg = package(tmp_path, "sprint-plugin", ["sprint_plugin"],
                  {"unity_mlops.observations": {"heading": "sprint_plugin:HEADING"},
                   "unity_mlops.archetypes": {"sprint": "sprint_plugin:SPRINT"}}).install()
    yield pkg
    pkg.uninstall()


def test_an_archetype_with_a_new_observation_kind_is_one_module_and_two_entry_points(sprint, tmp_path):
    listed = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "plugins", "--json"], capture_output=True,
                            text=True, timeout=120, env=sprint.env())
    assert listed.returncode == 0, listed.stderr
    rows = {(r["family"], r["name"]): r for r in json.loads(listed.stdout)}
    assert rows["archetypes", "sprint"]["package"] == "sprint-plugin" and rows["archetypes", "sprint"]["status"] == "ok"
    assert rows["observations", "heading"]["package"] == "sprint-plugin"
    assert rows["trainers", "fast"]["package"] == "unity-mlops", "the product's own, registered the same way"

    d = build_behavior(behavior_name="Dasher", description="Sprint to the target")
    assert d.archetype == "sprint" and [c.key for c in d.observations] == ["heading", "velocity", "target"]
    with pytest.raises(Exception, match="'heading' only exists for sprint"):
        build_behavior(behavior_name="X", description="reach the target", observation_space={"heading": 2})

    orch = UnityMLOpsOrchestrator(tmp_path / "runs", evaluation_episodes=50, show_progress=False)
    spec = UnityAssetSpec(asset_id="dash-1", name="Dasher", description="Sprint to the target")
    result = orch.execute_training_job_sync(TrainingJob(job_id="dash", asset_spec=spec, rl_config=FAST))
    assert result.succeeded, (result.failed_stage, result.error)
    agent = (tmp_path / "runs" / "dash" / "generated" / "DasherAgent.cs").read_text()
    assert "// heading: the unit velocity in the goal frame" in agent

    from test_csharp_agents import arena_script, compare, compile_agent, play

    commands, expected = arena_script(d, 1_500, seed=2)  # the C# and the simulator agree on the new kind too
    compare(expected, play(compile_agent(d, tmp_path / "cs"), "arena", d, commands))


@pytest.mark.trainer
def test_the_headless_player_of_a_plugin_archetype_carries_the_plugin(sprint, tmp_path, trainer_env):
    from mlops_unity_pipeline.build.headless import build_headless_player
    from mlops_unity_pipeline.evaluation.build_env import BuildEnvironment
    from mlops_unity_pipeline.evaluation.environments import SimulatorEnvironment
    from mlops_unity_pipeline.evaluation.evaluate import evaluate_model
    from onnx_policies import make_policy

    d = build_behavior(behavior_name="Dasher", description="Sprint to the target")
    exe = build_headless_player(d, tmp_path / "build" / "Dasher", trainer_env.python, 16)
    assert (exe.parent / "lib" / "sprint_plugin.py").is_file()
    assert json.loads((exe.parent / "player.json").read_text())["plugins"] == ["sprint_plugin"]
    model = make_policy(tmp_path / "Dasher.onnx", [(d.observation_size,)], continuous=2)
    with BuildEnvironment(exe, kind="headless-player", envs=1) as env:
        on_build, _ = evaluate_model(model, env, "Dasher", 32)
    in_sim, _ = evaluate_model(model, SimulatorEnvironment(d), "Dasher", 32)
    assert on_build.episodes == in_sim.episodes == 32


@pytest.fixture
def jsonreg(tmp_path):
    pkg = package(tmp_path, "jsonreg-plugin", ["jsonreg_plugin"],
                  {"unity_mlops.registries": {"jsonreg": "jsonreg_plugin:open_json"}}).install()
    yield pkg
    pkg.uninstall()


def test_a_registry_backend_with_its_own_store_is_one_module_and_one_entry_point(jsonreg, tmp_path):
    store = tmp_path / "json-store"
    orch = UnityMLOpsOrchestrator(tmp_path / "runs", evaluation_episodes=20, show_progress=False)
    seen: list[Event] = []
    orch.events.subscribe(seen.append)
    job = TrainingJob(job_id="ext", asset_spec=ASSET, rl_config=FAST, registry=f"jsonreg://{store}")
    result = orch.execute_training_job_sync(job)
    assert result.succeeded, (result.failed_stage, result.error, result.log_tail)
    rows = json.loads((store / "versions.json").read_text())
    assert [(r["version"], r["run_key"]) for r in rows] == [(result.model_version, "ext#1")]
    assert not (tmp_path / "runs" / "_registry" / "registry.db").exists(), "the default registry was not used"
    assert [type(e) for e in seen] == [JobStarted, ModelRegistered, JobCompleted]

    listed = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "models", "list", "--json", "--registry",
                             f"jsonreg://{store}"], capture_output=True, text=True, timeout=120, env=jsonreg.env())
    assert listed.returncode == 0, listed.stderr
    assert [v["version"] for v in json.loads(listed.stdout)] == [result.model_version]
    promoted = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "models", "promote",
                               result.model_version, "--to", "staging", "--registry", f"jsonreg://{store}"],
                              capture_output=True, text=True, timeout=300, env=jsonreg.env())
    assert promoted.returncode == 0, promoted.stderr
    assert open_registry(f"jsonreg://{store}").ledger.aliases("extagent") == {"staging": result.model_version}
    with pytest.raises(Exception, match="no registry backend for nosuch"):
        open_registry("nosuch://x")


def test_a_trainer_and_a_listener_are_entry_points(tmp_path):
    pkg = PluginPackage(tmp_path / "site", "steady-plugin", {"steady_plugin": '''
        from mlops_unity_pipeline.trainer.fast_trainer import FastTrainer

        HEARD = []

        class SteadyTrainer(FastTrainer):
            """The fast trainer, under another name: what a team's own trainer plugs into."""
            name = "steady"

        def remember(event):
            HEARD.append(event.type)
    '''}, {"unity_mlops.trainers": {"steady": "steady_plugin:SteadyTrainer"},
           "unity_mlops.listeners": {"remember": "steady_plugin:remember"}}).install()
    try:
        from mlops_unity_pipeline.trainer.select import select_trainer

        assert select_trainer("steady").name == "steady" and "steady" in plugins.names("trainers")
        orch = UnityMLOpsOrchestrator(tmp_path / "runs", evaluation_episodes=20, show_progress=False)
        cfg = FAST.model_copy(update={"trainer": "steady"})
        result = orch.execute_training_job_sync(TrainingJob(job_id="steady", asset_spec=ASSET, rl_config=cfg))
        assert result.succeeded, (result.failed_stage, result.error)
        assert sys.modules["steady_plugin"].HEARD == ["job.started", "model.registered", "job.completed"]
        with pytest.raises(Exception, match="trainer 'nosuch' is not installed; installed: fast, mlagents, steady"):
            RLTrainingConfig(trainer="nosuch")
    finally:
        pkg.uninstall()


def test_a_broken_plugin_is_one_clear_error_naming_its_package(tmp_path):
    pkg = PluginPackage(tmp_path / "site", "broken-plugin", {"broken_plugin": "import nonexistent_module\n",
                                                             "shapeless_plugin": "NOT_A_TRAINER = 3\n"},
                        {"unity_mlops.trainers": {"broken": "broken_plugin:Trainer",
                                                  "shapeless": "shapeless_plugin:NOT_A_TRAINER"}}).install()
    try:
        with pytest.raises(plugins.PluginError, match=r"broken_plugin:Trainer \(from broken-plugin\) does not load: "
                                                      "ModuleNotFoundError"):
            plugins.load("trainers", "broken")
        with pytest.raises(plugins.PluginError, match="has no name, needs_player, checker_python, train"):
            plugins.load("trainers", "shapeless")
        listed = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "plugins", "--family", "trainers"],
                                capture_output=True, text=True, timeout=120, env=pkg.env())
        assert listed.returncode == 1 and "BROKEN" in listed.stdout and "Traceback" not in listed.stderr
    finally:
        pkg.uninstall()


def test_a_new_event_type_reaches_listeners_and_the_webhook_outbox_with_its_own_text(tmp_path):
    from mlops_unity_pipeline.events import EventBus
    from mlops_unity_pipeline.webhooks import Endpoint, WebhookOutbox

    @dataclass(frozen=True, kw_only=True)
    class ModelExported(Event):
        type: ClassVar[str] = "model.exported"
        version: str = ""
        target: str = ""

        def text(self) -> str:
            return f"Model {self.version} exported to {self.target}"

    try:
        bus = EventBus()
        got: list[Event] = []
        bus.subscribe(got.append, types=["model.exported"])
        outbox = WebhookOutbox(tmp_path / "webhooks.db", [Endpoint("http://127.0.0.1:9/hook")])
        bus.subscribe(outbox)
        bus.publish(JobStarted(job_id="other"))  # filtered out by the first listener
        bus.publish(ModelExported(version="v7", target="sentis", key="export-v7"))
        bus.publish(ModelExported(version="v7", target="sentis", key="export-v7"))  # same key: one message
        assert [e.type for e in got] == ["model.exported", "model.exported"]
        with sqlite3.connect(tmp_path / "webhooks.db") as conn:
            bodies = [json.loads(b) for (b,) in conn.execute(
                "SELECT body FROM deliveries WHERE event_type='model.exported'")]
        assert len(bodies) == 1
        assert bodies[0]["text"] == "Model v7 exported to sentis"
        assert bodies[0]["data"] == {"version": "v7", "target": "sentis"}
        outbox.close(0.1)
        with pytest.raises(ValueError, match="unknown event types"):
            bus.subscribe(got.append, types=["model.exportd"])
    finally:
        EVENT_CLASSES.pop("model.exported", None)


def test_a_cli_command_group_is_one_module_with_its_parser_and_handlers(capsys):
    from mlops_unity_pipeline import cli

    class Hello:  # what a module `cli/hello.py` would hold
        @staticmethod
        def register(sub: argparse._SubParsersAction) -> None:
            p = sub.add_parser("hello", help="say hello", description="Say hello to someone.")
            p.add_argument("--name", required=True)
            p.set_defaults(func=lambda args: print(f"hello {args.name}") or 0)

    assert cli.main(["hello", "--name", "unity"], groups=(*cli.GROUPS, Hello)) == 0
    assert capsys.readouterr().out == "hello unity\n"
    assert "hello" in cli.build_parser((*cli.GROUPS, Hello)).format_help()
    with pytest.raises(SystemExit):  # the shipped command line does not have it
        cli.build_parser().parse_args(["hello", "--name", "x"])


def test_the_ledger_is_reached_through_the_registry_interface(tmp_path):
    reg = open_registry(tmp_path / "reg")
    assert isinstance(reg.ledger, Ledger) and reg.ledger is reg.ledger
    assert reg.ledger.aliases("Nothing") == {}
    assert isinstance(Path(reg.root), Path)
    assert shutil.which("mcs"), "the C# compiler the generated Agents are checked with"


@pytest.fixture
def annotate(tmp_path):
    pkg = package(tmp_path, "annotate-plugin", ["annotate_plugin"],
                  {"unity_mlops.actions": {"annotate": "annotate_plugin:ANNOTATE"}}).install()
    yield pkg
    pkg.uninstall()
    EVENT_CLASSES.pop("model.annotated", None)


def test_an_action_is_a_command_a_dashboard_form_and_an_mcp_tool_and_its_events_reach_webhooks(
        annotate, tmp_path, monkeypatch):
    """(d) one module and one entry point give `models annotate`, the asset page's form and the MCP tool; (b) its
    `model.annotated` event and governance's own `model.promoted` reach a signed webhook receiver."""
    import re

    import anyio
    import yaml
    from mcp import Client
    from starlette.testclient import TestClient

    from mlops_unity_pipeline.app import App
    from mlops_unity_pipeline.app.actions import PipelineActions
    from mlops_unity_pipeline.controlplane import ControlPlaneRuntime
    from mlops_unity_pipeline.controlplane.bundle_schemas import BundleError
    from mlops_unity_pipeline.controlplane.keys import generate
    from mlops_unity_pipeline.controlplane.mcp_server import build_server
    from mlops_unity_pipeline.controlplane.runtime import DEFAULT_BUNDLE
    from mlops_unity_pipeline.ui.auth import create_token
    from mlops_unity_pipeline.ui.server import create_app
    from test_mcp import registered_version
    from test_webhooks import SECRET, Receiver

    workspace = tmp_path / "runs"
    version = registered_version(workspace / "_registry", tmp_path)
    rx = Receiver()
    monkeypatch.setenv("WEBHOOK_URL", rx.url)
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("UNITY_MLOPS_ACTOR", "agent")
    env = {**annotate.env(), "WEBHOOK_URL": rx.url, "WEBHOOK_SECRET": SECRET, "UNITY_MLOPS_ACTOR": "ana"}
    apps: list[App] = []
    try:
        def cli(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "models", *args, "--workspace",
                                   str(workspace)], capture_output=True, text=True, timeout=300, env=env)

        assert "annotate" in cli("--help").stdout
        noted = cli("annotate", version, "--note", "jumps too early")
        assert noted.returncode == 0 and noted.stdout.strip() == f"nav {version}: noted", noted.stderr
        refused = cli("annotate", "unity-nope-v001", "--note", "x")
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        assert cli("promote", version, "--to", "staging").returncode == 0

        apps.append(App(workspace=str(workspace)))
        client = TestClient(create_app(apps[-1]))  # the dashboard, signed in as bob
        client.post("/login", data={"token": create_token(workspace / "_state" / "ui-tokens", "bob")})
        page = client.get("/models/nav").text
        assert 'data-action="model.annotate"' in page and 'aria-label="note"' in page
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
        done = client.post("/models/nav/act", data={"action": "annotate", "version": version,
                                                    "note": "fine after retrain", "csrf": csrf})
        assert done.status_code == 200 and "noted" in done.text

        bundle = tmp_path / "bundle"  # the bundle is the policy: the tool exists once the operator lists it
        shutil.copytree(DEFAULT_BUNDLE.parent, bundle)
        data = yaml.safe_load((bundle / "bundle.yaml").read_text())
        entry = {"id": "model.annotate", "description": "Write a note on a version.",
                 "annotations": {"destructiveHint": False, "readOnlyHint": False}}
        data["api_surface"]["tools"].append({"name": "notes", "actions": [entry]})
        (bundle / "bundle.yaml").write_text(yaml.safe_dump(data))
        monkeypatch.setenv("UNITY_MLOPS_IDENTITY_KEY", str(generate(tmp_path / "keys", "agent")[0]))
        with pytest.raises(BundleError, match="'model.annotate' has no schema"):  # fail closed: not by default
            unchecked = ControlPlaneRuntime(bundle / "bundle.yaml", events_path=tmp_path / "unused.jsonl")
            unchecked.load_bundle()
            unchecked.compile_schemas()
        entry["schema"] = "installed"  # the operator's explicit choice: the schema the installed package brings
        (bundle / "bundle.yaml").write_text(yaml.safe_dump(data))
        rt = ControlPlaneRuntime(bundle / "bundle.yaml", events_path=tmp_path / "events.jsonl")
        rt.load_bundle()
        rt.compile_schemas()

        async def agent():
            actions = PipelineActions(rt, workspace)
            apps.append(actions.app)
            async with Client(build_server(rt, actions), raise_exceptions=True) as c:
                tools = {t.name: t for t in (await c.list_tools()).tools}
                assert tools["model.annotate"].input_schema["required"] == ["version", "note"]
                bad = await c.call_tool("model.annotate", {"version": version})
                assert bad.is_error and "'note' is a required property" in bad.content[0].text
                halted = await c.call_tool("model.annotate", {"version": version, "note": "agent: looks stable"})
                assert halted.structured_content["missing"] == ["guardrails_ok"]  # the bundle's guardrails hold
                rt.assert_fact("guardrails_ok")
                ok = await c.call_tool("model.annotate", {"version": version, "note": "agent: looks stable"})
                assert not ok.is_error, ok.content[0].text

        anyio.run(agent)
        notes = [json.loads(line) for line in (workspace / "_notes.jsonl").read_text().splitlines()]
        assert [(n["note"], n["actor"]) for n in notes] == [("jumps too early", "ana"), ("fine after retrain", "bob"),
                                                            ("agent: looks stable", "agent")]
        apps.append(App(workspace=str(workspace)))
        apps[-1].bus().flush(30.0)
        got = sorted((m["type"], m["data"].get("note", m["data"].get("alias"))) for m in rx.received)
        assert got == [("model.annotated", "agent: looks stable"), ("model.annotated", "fine after retrain"),
                       ("model.annotated", "jumps too early"), ("model.promoted", "staging")], rx.received
    finally:
        for app in apps:  # their webhook senders stop with them
            app.bus().close(5.0)
        rx.stop()
