"""`.demo` readers that cannot crash: thousands of corrupted copies of real Unity demos (byte flips, truncations,
insertions, overwritten runs) give a demonstration or one `DemoError` that names the file — never another
exception, never a hang or a huge allocation. `UNITY_MLOPS_FUZZ_EXAMPLES` sets how many (default 300 here; the
issue's long run used 10,000)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import OPS, SETTINGS, mutate
from mlops_unity_pipeline.demos.demofile import DemoError, read_demo

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "mlagents-samples" / "demos"
if not SAMPLES.exists():
    SAMPLES = Path(os.environ.get("UNITY_MLOPS_SAMPLES", "/work/shared/mlagents-samples")) / "demos"
NAMES = ("ExpertBasic.demo", "test.demo", "testdcvis.demo", "Expert3DBall.demo")
ORIGINALS = {n: (SAMPLES / n).read_bytes()[:60_000] for n in NAMES if (SAMPLES / n).exists()}
SCRATCH = Path(tempfile.mkdtemp(prefix="unity-mlops-fuzz-"))


def _read(data: bytes) -> None:
    path = SCRATCH / "fuzzed.demo"
    path.write_bytes(data)
    try:
        read_demo(path)
    except DemoError as exc:
        assert str(path) in str(exc), f"the error must name the file: {exc}"


@SETTINGS
@given(name=st.sampled_from(sorted(ORIGINALS)), ops=OPS)
def test_corrupted_unity_demos_give_a_demo_or_one_clear_error(name, ops):
    _read(mutate(ORIGINALS[name], ops))


@pytest.mark.parametrize("name", sorted(ORIGINALS))
def test_the_issues_reproducers(name):
    data = bytearray(ORIGINALS[name])
    flipped = bytearray(data)
    flipped[1] = 0x0A  # a varint field becomes length-delimited
    with pytest.raises(DemoError, match=name):
        read_demo(_write(bytes(flipped), name))
    zero_len = bytearray(data)
    zero_len[33] = 0  # the brain parameters' length
    with pytest.raises(DemoError, match=name):
        read_demo(_write(bytes(zero_len), name))


def test_an_all_zero_file_is_not_an_empty_demo(tmp_path):
    p = tmp_path / "zeros.demo"
    p.write_bytes(bytes(200))
    with pytest.raises(DemoError, match="no valid demonstration header"):
        read_demo(p)


def _write(data: bytes, name: str = "x.demo") -> Path:
    path = SCRATCH / name
    path.write_bytes(data)
    return path
