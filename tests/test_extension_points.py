"""The "where to change what" of docs/explanation/architecture.md, proven: each extension is made the documented way,
in this file only, and works end to end: a registry backend chosen by URI, an event listener and a new event type,
an archetype, a CLI command group, a trainer."""

from __future__ import annotations

import argparse
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from sqlalchemy import text

from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, UnityAssetSpec, UnityMLOpsOrchestrator
from mlops_unity_pipeline.behavior import ARCHETYPES, Archetype, TaskParameters, TrainerDefaults, build_behavior
from mlops_unity_pipeline.behavior.archetypes import register_archetype
from mlops_unity_pipeline.behavior.simulator import Simulator
from mlops_unity_pipeline.events import EVENT_CLASSES, Event, JobCompleted, JobStarted, ModelRegistered
from mlops_unity_pipeline.registry.base import ModelVersion, RegistrationRequest
from mlops_unity_pipeline.registry.ledger import Ledger
from mlops_unity_pipeline.registry.local import LocalModelRegistry
from mlops_unity_pipeline.registry.uri import _BACKENDS, open_registry, register_backend

FAST = RLTrainingConfig(trainer="fast", max_steps=2048, checkpoint_interval=1024, summary_freq=1024,
                        hyperparameters={"buffer_size": 1024, "batch_size": 256})
ASSET = UnityAssetSpec(asset_id="ext-1", name="ExtAgent", description="Reach target position")


class AuditedRegistry(LocalModelRegistry):
    """A toy backend: the local store, plus an audit table of every registration (what a deployment might add)."""

    def register(self, request: RegistrationRequest) -> ModelVersion:
        version = super().register(request)
        with self.db.write("registry") as conn:  # the registry's database, in one transaction
            conn.execute(text("CREATE TABLE IF NOT EXISTS audit (version TEXT, run_key TEXT)"))
            conn.execute(text("INSERT INTO audit VALUES (:v, :k)"), {"v": version.version, "k": request.run_key})
        return version


@pytest.fixture
def audited_backend():
    register_backend("audited", lambda uri, _root: AuditedRegistry(uri.split("://", 1)[1]))
    yield
    _BACKENDS.pop("audited")


def test_a_registry_backend_is_chosen_by_uri_and_a_listener_sees_the_typed_events(tmp_path, audited_backend):
    store = tmp_path / "audited-store"
    orch = UnityMLOpsOrchestrator(tmp_path / "runs", evaluation_episodes=20, show_progress=False)
    seen: list[Event] = []
    orch.events.subscribe(seen.append)
    job = TrainingJob(job_id="ext", asset_spec=ASSET, rl_config=FAST, registry=f"audited://{store}")
    result = orch.execute_training_job_sync(job)
    assert result.succeeded, (result.failed_stage, result.error, result.log_tail)
    with sqlite3.connect(store / "registry.db") as conn:
        assert conn.execute("SELECT version, run_key FROM audit").fetchall() == [(result.model_version, "ext#1")]
    assert not (tmp_path / "runs" / "_registry" / "registry.db").exists(), "the default registry was not used"
    assert [type(e) for e in seen] == [JobStarted, ModelRegistered, JobCompleted]
    done = seen[-1]
    assert isinstance(done, JobCompleted) and done.model_version == result.model_version
    assert done.text().startswith(f"Training job ext completed: model {result.model_version}")
    assert isinstance(open_registry(f"audited://{store}"), AuditedRegistry)
    with pytest.raises(Exception, match="no registry backend for nosuch"):
        open_registry("nosuch://x")


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


def test_an_archetype_is_one_object_registered_in_one_place(tmp_path):
    from mlops_unity_pipeline.generate.base import TemplateGenerator
    from mlops_unity_pipeline.trainer.config import behavior_settings

    collect = Archetype(
        "collect", "Pick up the coin, then reach the target; touching an obstacle fails.", ("collect", "coin"),
        {"raycast": 6, "velocity": 2, "target": 2}, TaskParameters(num_obstacles=1, max_steps=250),
        trainer=TrainerDefaults(ppo={"buffer_size": 3072}, hidden_units=64, time_horizon=96))
    register_archetype(collect)
    try:
        d = build_behavior(behavior_name="Collector", description="Collect the coin near the obstacle")
        assert d.archetype == "collect" and d.params.max_steps == 250 and d.observation_size == 10
        settings = behavior_settings(d, RLTrainingConfig(max_steps=10_000))
        assert settings["hyperparameters"]["buffer_size"] == 3072
        assert settings["network_settings"]["hidden_units"] == 64 and settings["time_horizon"] == 96
        spec = UnityAssetSpec(asset_id="c1", name="Collector", description="Collect the coin near the obstacle")
        out = TemplateGenerator().generate(spec, d, RLTrainingConfig(max_steps=10_000), tmp_path / "gen")
        assert collect.summary in out.agent_source.read_text()
        sim = Simulator(d, num_agents=8, seed=1)
        obs = sim.reset(np.ones(8, bool))
        assert obs.shape == (8, 10)
        assert sim.step(np.zeros((8, 2), np.float32)).obs.shape == (8, 10)
        with pytest.raises(Exception, match="waypoint_progress' only exists for patrol"):
            build_behavior(behavior_name="C", description="collect", observation_space={"waypoint_progress": 1})
    finally:
        ARCHETYPES.pop("collect")


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


def test_a_trainer_is_registered_under_the_name_configs_use(tmp_path):
    from mlops_unity_pipeline.specs import TRAINERS
    from mlops_unity_pipeline.trainer.select import TRAINERS as REGISTERED
    from mlops_unity_pipeline.trainer.select import select_trainer

    assert set(REGISTERED) == set(TRAINERS), "every trainer a config may name is registered"
    assert select_trainer("fast").needs_player is False and select_trainer("mlagents").needs_player is True
    with pytest.raises(Exception, match="unknown trainer"):
        select_trainer("nosuch")


def test_the_ledger_is_reached_through_the_registry_interface(tmp_path):
    reg = open_registry(tmp_path / "reg")
    assert isinstance(reg.ledger, Ledger) and reg.ledger is reg.ledger
    assert reg.ledger.aliases("Nothing") == {}
    assert isinstance(Path(reg.root), Path)
