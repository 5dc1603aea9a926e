"""The registry contract (`registry.base.ModelRegistry`), run against every backend: the embedded SQLite store, the
same store indexed in PostgreSQL, Vertex AI (the SDK against its wire-level test endpoint, GCS emulator for the
files) and a third party's backend with its own store (tests/thirdparty/jsonreg_plugin.py, installed by entry
point). As in APScheduler's job-store tests and MLflow's AbstractStore: a new backend is added to `BACKENDS` and
must pass all of it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mlops_unity_pipeline.behavior import build_behavior
from mlops_unity_pipeline.registry.base import RegistrationRequest, RegistryError, VersionNotFound
from mlops_unity_pipeline.registry.uri import open_registry
from onnx_policies import linear_policy
from plugin_package import PluginPackage

BACKENDS = ["sqlite", "postgresql", "vertex", "jsonreg"]
NAV = build_behavior(behavior_name="Nav", archetype="navigation")


@pytest.fixture(params=BACKENDS)
def registry(request, tmp_path):
    if request.param == "sqlite":
        yield open_registry(tmp_path / "reg")
    elif request.param == "postgresql":
        yield open_registry(tmp_path / "reg", database=request.getfixturevalue("pg_database"))
    elif request.param == "vertex":
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        from fake_vertex import FakeVertex
        from mlops_unity_pipeline.registry import LocalModelRegistry
        from mlops_unity_pipeline.registry.vertex import VertexModelRegistry

        request.getfixturevalue("gcs")
        fake = FakeVertex(pending_polls=1)  # every upload is a long-running operation polled once
        client = storage.Client(project="test-proj", credentials=AnonymousCredentials())
        yield VertexModelRegistry("test-proj", "us-central1", "gs://unity-models", LocalModelRegistry(tmp_path / "reg"),
                                  api_endpoint=fake.endpoint, credentials=AnonymousCredentials(), storage_client=client)
        fake.stop()
    else:
        pkg = PluginPackage(tmp_path / "site", "jsonreg-plugin", {"jsonreg_plugin": (
            Path(__file__).with_name("thirdparty") / "jsonreg_plugin.py").read_text()},
            {"unity_mlops.registries": {"jsonreg": "jsonreg_plugin:open_json"}}).install()
        yield open_registry(f"jsonreg://{tmp_path / 'json-store'}")
        pkg.uninstall()


def request_for(tmp_path: Path, name: str, run_key: str | None = None, asset: str = "Nav",
                bias: tuple[float, float] = (1.0, 0.0)) -> RegistrationRequest:
    model = linear_policy(tmp_path / f"{name}.onnx", 12, None, bias)
    behavior = tmp_path / f"{name}-behavior.json"
    behavior.write_text(NAV.to_json())
    return RegistrationRequest("nav-1", asset, "Nav", f"job-{name}", model, files={"behavior.json": behavior},
                               metrics={"evaluation": {"model": {"success_rate": 0.5}}}, git_sha="abc1234",
                               run_key=run_key)


def test_a_version_is_what_was_registered_and_runs_register_once(registry, tmp_path):
    req = request_for(tmp_path, "a", run_key="job-a#1")
    first = registry.register(req)
    assert first.version.startswith("unity-nav-") and first.version.endswith("-abc1234-v001")
    again = registry.register(req)  # the same run retried: the same version, no second one
    assert again.version == first.version and registry.find_run("job-a#1").version == first.version
    got = registry.get(first.version)
    assert (got.asset_name, got.asset_id, got.behavior_name, got.job_id, got.run_key) == \
           ("nav", "nav-1", "Nav", "job-a", "job-a#1")
    assert got.model_sha256 == hashlib.sha256(req.model_path.read_bytes()).hexdigest()
    assert got.metrics["evaluation"]["model"]["success_rate"] == 0.5 and "behavior.json" in got.files
    second = registry.register(request_for(tmp_path, "b", run_key="job-b#1", bias=(0.0, 1.0)))
    assert second.run_number == first.run_number + 1 and registry.find_run("nobody#1") is None
    assert [v.version for v in registry.list("nav")] == [first.version, second.version]
    assert registry.assets() == [("nav", 2)]
    page, total = registry.page("nav", 1, 0)
    assert total == 2 and [v.version for v in page] == [second.version]
    assert registry.metric_series("nav", ("evaluation", "model", "success_rate")) == [(1, 0.5), (2, 0.5)]
    listed, total = registry.versions_page(1, 1)  # the paginated listing of every asset (CLI `models list`)
    assert total == 2 and [v.version for v in listed] == [second.version]
    assert registry.has_asset("nav") and not registry.has_asset("nobody")
    assert registry.asset_of_id("nav-1") == "nav" and registry.asset_of_id("nobody") is None


def test_aliases_resolve_through_the_ledger_and_unknown_names_are_version_not_found(registry, tmp_path):
    v = registry.register(request_for(tmp_path, "a"))
    with pytest.raises(VersionNotFound):
        registry.get("unity-nav-20200101-abc1234-v999")
    with pytest.raises(VersionNotFound, match="has no 'staging' alias"):
        registry.resolve("nav@staging")
    registry.ledger.move_alias("nav", "staging", v.version, action="promote", reason="conformance")
    registry.mirror_alias(v.version, "staging")
    assert registry.resolve("nav@staging").version == v.version
    assert registry.resolve("nav-1@staging").version == v.version, "the asset by its id too"
    assert [e.action for e in registry.ledger.history("nav")] == ["promote"]


def test_a_refused_registration_leaves_nothing(registry, tmp_path):
    with pytest.raises(RegistryError, match="not found"):
        registry.register(RegistrationRequest("a", "A", "A", "j", tmp_path / "missing.onnx"))
    assert registry.list() == []


def test_the_versions_of_one_run_are_registered_together(registry, tmp_path):
    done = registry.register_many([request_for(tmp_path, "x", run_key="job#1/x", asset="Runner"),
                                   request_for(tmp_path, "y", run_key="job#1/y", asset="Chaser")])
    assert sorted(v.asset_name for v in done) == ["chaser", "runner"]
    assert {registry.find_run(k).version for k in ("job#1/x", "job#1/y")} == {v.version for v in done}
