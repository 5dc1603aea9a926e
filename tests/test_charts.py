"""Chart axes: tick labels are monotonic, keep their sign, differ from each other and cover the data, for values
around zero, flat series, tiny ranges on large values and extreme magnitudes (the run page once showed
`0.005614, .0006549, 0.004304, 0.009263, -0.01422` and `2.841, 2.841`)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import SETTINGS
from mlops_unity_pipeline.ui.charts import Chart, Series, labels, render, ticks


def check_axis(lo: float, hi: float) -> list[str]:
    values = ticks(lo, hi)
    texts = labels(values)
    read = [float(t.replace(",", "")) for t in texts]
    assert read == sorted(read) and len(set(texts)) == len(texts), texts
    assert all((r > 0) == (v > 0) and (r < 0) == (v < 0) for r, v in zip(read, values, strict=True)), texts
    step = values[1] - values[0]
    assert values[0] <= lo + step * 1e-9 and values[-1] >= hi - step * 1e-9, (lo, hi, values)
    assert 3 <= len(values) <= 8
    return texts


@pytest.mark.parametrize("lo, hi", [
    (-0.01422, 0.009263), (0.0006549, 0.005614), (2.841, 2.841), (2.841, 2.8411), (-3.0, -3.0), (0.0, 0.0),
    (0.0, 1e-7), (-5e9, 3e9), (1000.0, 100_000.0), (-1e-12, 1e-12), (123456789.0, 123456789.5),
    (99999999999.0625, 100000000001.0625),  # the locator stops a hair short of the data up there
])
def test_tick_labels_are_monotonic_signed_and_distinct(lo, hi):
    check_axis(lo, hi)


def test_values_around_zero_keep_their_sign():
    texts = check_axis(-0.01422, 0.009263)
    assert texts[0].startswith("-") and "0.00" in texts and not any(t.startswith(".") for t in texts)


@SETTINGS
@given(a=st.floats(-1e12, 1e12, allow_nan=False), width=st.floats(0, 1e6, allow_nan=False))
def test_any_range(a, width):
    check_axis(a, a + width)


def test_the_svg_prints_those_labels_with_room_for_them():
    svg = render(Chart("Losses/Policy Loss", [Series("loss", [(0, 0.005614), (1000, 0.0006549), (2000, 0.004304),
                                                                (3000, 0.009263), (4000, -0.01422)])]))
    printed = re.findall(r'text-anchor="end" class="tick">([^<]+)<', svg)
    assert printed[:4] == labels(ticks(-0.01422, 0.009263))
    left = int(re.search(r'<line x1="(\d+)"', svg).group(1))
    assert left >= 7 * max(len(t) for t in printed), "the longest label fits left of the plot"
