"""The one way files are replaced durably (`durable.replacing`): whole or not at all, racing writers included."""

import stat
import threading

import pytest

from mlops_unity_pipeline.durable import replacing


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "deep" / "state.json"
    with replacing(path) as fh:
        fh.write(b"old")
    with pytest.raises(RuntimeError), replacing(path) as fh:
        fh.write(b"half of the new")
        raise RuntimeError("the writer died")
    assert path.read_bytes() == b"old"
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]


def test_the_mode_holds_from_the_file_s_creation(tmp_path):
    with replacing(tmp_path / "secret", mode=0o600) as fh:
        fh.write(b"x")
    with replacing(tmp_path / "blob", mode=0o444) as fh:  # read-only files are written through their descriptor
        fh.write(b"y")
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "blob").stat().st_mode) == 0o444


def test_racing_writers_leave_one_whole_version(tmp_path):
    path = tmp_path / "shared.bin"
    contents = [bytes([i]) * 200_000 for i in range(8)]
    barrier = threading.Barrier(len(contents))
    errors = []

    def writer(data: bytes) -> None:
        try:
            barrier.wait(30)
            for _ in range(20):
                with replacing(path) as fh:
                    fh.write(data)
        except Exception as exc:  # shown by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(c,)) for c in contents]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and path.read_bytes() in contents
    assert [p.name for p in tmp_path.iterdir()] == ["shared.bin"]
