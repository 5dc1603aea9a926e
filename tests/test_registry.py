import os
import stat

import pytest

from mlops_unity_pipeline.registry import (
    LocalModelRegistry,
    RegistrationRequest,
    RegistryError,
    VersionNotFound,
)
from mlops_unity_pipeline.registry.base import VERSION_RE
from racing import race


def _request(samples, asset="SimpleAgent", **kw):
    return RegistrationRequest(asset_id="a-1", asset_name=asset, behavior_name=asset, job_id="job-1",
                               model_path=samples / "onnx" / "3DBall.onnx", git_sha="abc1234", **kw)


def test_versions_are_numbered_per_asset_and_immutable(tmp_path, samples, database):
    reg = LocalModelRegistry(tmp_path / "reg", database)
    v1 = reg.register(_request(samples, metrics={"x": 1}))
    v2 = reg.register(_request(samples))
    w1 = reg.register(_request(samples, asset="Patrol_Bot"))
    assert v1.version.endswith("-abc1234-v001") and v2.version.endswith("-v002")
    assert w1.version.startswith("unity-patrol-bot-") and w1.version.endswith("-v001")
    for v in (v1, v2, w1):
        assert VERSION_RE.match(v.version), v.version
        assert v.model_path.is_file() and v.model_path.name == f"{v.behavior_name}.onnx"
        assert not os.stat(v.model_path).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert reg.get(v1.version).metrics == {"x": 1}
    assert [v.version for v in reg.list("SimpleAgent")] == [v1.version, v2.version]
    assert v1.model_sha256 == v2.model_sha256  # same blob stored once
    with pytest.raises(VersionNotFound):
        reg.get("unity-nope-20260101-nogit-v001")


def test_registry_write_error_leaves_nothing(tmp_path, samples):
    blocker = tmp_path / "reg"
    blocker.write_text("not a directory")
    with pytest.raises(RegistryError):
        LocalModelRegistry(blocker).register(_request(samples))
    reg = LocalModelRegistry(tmp_path / "ok")
    with pytest.raises(RegistryError, match="not found"):
        reg.register(RegistrationRequest("a", "A", "A", "j", tmp_path / "missing.onnx"))
    assert reg.list() == []


def _register_many(root, model, n, database=None):
    reg = LocalModelRegistry(root, database)
    return [reg.register(RegistrationRequest("a", "Racer", "Racer", "j", model, git_sha="1234567")).run_number
            for _ in range(n)]


def test_concurrent_registrations_get_distinct_numbers(tmp_path, samples, database):
    args = (tmp_path / "reg", samples / "onnx" / "Basic.onnx", 5, database)
    numbers = sorted(n for out in race(_register_many, [args] * 3) for n in out)
    assert numbers == list(range(1, 16))


def _register_run(root, model, run_key, database=None):
    reg = LocalModelRegistry(root, database)
    return reg.register(RegistrationRequest("a", "Racer", "Racer", "j", model, git_sha="1234567",
                                            run_key=run_key)).version


def test_a_run_registers_one_version_even_when_retries_race(tmp_path, samples, database):
    """Four processes register the same run at once (a restarted job racing its predecessor): one version."""
    got = set(race(_register_run, [(tmp_path / "reg", samples / "onnx" / "Basic.onnx", "s|slot|a", database)] * 4))
    reg = LocalModelRegistry(tmp_path / "reg", database)
    assert len(got) == 1 and len(reg.list()) == 1
    assert reg.find_run("s|slot|a").version == got.pop() and reg.find_run("other") is None
    other = reg.register(_request(samples, run_key="s|slot2|a"))  # another run: the next version
    assert other.run_number == 1 and other.asset_name == "simpleagent"


def test_registries_made_before_run_keys_are_migrated(tmp_path, samples):
    import sqlite3

    root = tmp_path / "reg"
    root.mkdir()
    with sqlite3.connect(root / "registry.db") as conn:  # the schema of earlier releases
        conn.execute("CREATE TABLE versions (version TEXT PRIMARY KEY, asset_name TEXT NOT NULL, asset_id TEXT NOT "
                     "NULL, behavior_name TEXT NOT NULL, run_number INTEGER NOT NULL, job_id TEXT NOT NULL, "
                     "created_at TEXT NOT NULL, model_sha256 TEXT NOT NULL, model_file TEXT NOT NULL, files_json TEXT "
                     "NOT NULL, metrics_json TEXT NOT NULL, lineage_json TEXT NOT NULL, UNIQUE (asset_name, "
                     "run_number))")
    reg = LocalModelRegistry(root)
    v = reg.register(_request(samples, run_key="k1"))
    assert reg.register(_request(samples, run_key="k1")).version == v.version and len(reg.list()) == 1


def test_threads_of_one_process_registering_the_same_files_at_once(tmp_path, samples):
    """Parallel sweep trials share a process and often a file (the same behavior.json): each gets its version."""
    import threading

    reg = LocalModelRegistry(tmp_path / "reg")
    shared = tmp_path / "behavior.json"
    shared.write_text("{}")
    barrier, out, errors = threading.Barrier(8), [], []

    def one(i):
        barrier.wait()
        try:
            out.append(reg.register(_request(samples, files={"behavior.json": shared}, run_key=f"t{i}")).run_number)
        except Exception as exc:  # collected: the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and sorted(out) == list(range(1, 9))


def test_the_hot_read_of_an_alias_answers_as_the_registry_does(tmp_path, samples, database):
    """`models path NAME@ALIAS` reads the alias in one query on the database's own driver (registry/lookup.py). It
    must answer the common case itself, and leave every other case — the asset by id, a missing alias, a version's
    full name, files not on this machine, a schema not at this release's revision, another backend — to the
    registry, whose answer (or error) is then the command's."""
    import shutil
    import subprocess
    import sys

    from mlops_unity_pipeline.registry.lookup import model_path

    root = tmp_path / "reg"
    reg = LocalModelRegistry(root, database)
    a1, a2 = reg.register(_request(samples)), reg.register(_request(samples))
    b1 = reg.register(RegistrationRequest(asset_id="b-7", asset_name="Patrol_Bot", behavior_name="Patrol",
                                          job_id="job-2", model_path=samples / "onnx" / "3DBall.onnx",
                                          git_sha="abc1234"))
    for asset, alias, v in (("SimpleAgent", "production", a1), ("simpleagent", "staging", a2),
                            ("patrol-bot", "production", b1)):
        reg.ledger.move_alias(asset, alias, v.version, action="promote", reason="hot read")

    def registry_says(ref):
        try:
            return reg.resolve(ref).model_path
        except VersionNotFound:
            return None

    refs = ["simpleagent@production", "SimpleAgent@staging", "simpleagent:production", "Patrol_Bot@production",
            "b-7@production", "patrol-bot@staging", "nobody@production", a1.version, "simpleagent@", "@production",
            "simpleagent@production@x", "simpleagent@Production"]
    answered = {}
    for ref in refs:
        fast = model_path(str(root), tmp_path / "unused", database, ref)
        assert fast is None or fast == registry_says(ref), ref
        if fast is not None:
            answered[ref] = fast
    assert answered == {"simpleagent@production": a1.model_path, "SimpleAgent@staging": a2.model_path,
                        "simpleagent:production": a1.model_path, "Patrol_Bot@production": b1.model_path}
    assert model_path(f"vertex://p/r?local={root}", root, database, "simpleagent@production") is None

    env = {k: v for k, v in os.environ.items() if k != "UNITY_MLOPS_DATABASE_URL"}
    env.update({"UNITY_MLOPS_DATABASE_URL": database} if database else {})

    def cli_path(ref):
        r = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "models", "path", ref, "--registry",
                            str(root)], capture_output=True, text=True, env=env, timeout=120)
        return r.returncode, r.stdout.strip(), r.stderr

    assert cli_path("simpleagent@production") == (0, str(a1.model_path), "")
    assert cli_path("b-7@production") == (0, str(b1.model_path), ""), "the asset by id: the registry's answer"
    rc, out, err = cli_path("simpleagent@nothing")
    assert (rc, out) == (2, "") and "has no 'nothing' alias" in err and "Traceback" not in err

    # the version's files gone from this machine: not the hot read's to say
    shutil.move(a1.model_path.parent, tmp_path / "moved")
    assert model_path(str(root), tmp_path, database, "simpleagent@production") is None
    assert cli_path("simpleagent@production") == (0, str(a1.model_path), "")
    shutil.move(tmp_path / "moved", a1.model_path.parent)
    assert model_path(str(root), tmp_path, database, "simpleagent@production") == a1.model_path

    # a schema this release did not make: the registry decides (it migrates SQLite, refuses PostgreSQL)
    reg.db.execute("UPDATE alembic_version SET version_num = '0002'", name="registry")
    assert model_path(str(root), tmp_path, database, "simpleagent@production") is None
