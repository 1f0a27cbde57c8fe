"""The benchmark helper runs and reports positive timings (their values are not asserted)."""

from __future__ import annotations

import pytest

from compat_mindspore.bench import StepTiming, measure_step_ratio

pytestmark = pytest.mark.mindspore


def test_measure_step_ratio_runs(reference):
    timing = measure_step_ratio(mode="graph", steps=1, warmup=1, repeats=1)
    assert isinstance(timing, StepTiming) and timing.compat_mode == "graph"
    assert min(timing.reference_step_s, timing.compat_step_s, timing.reference_update_mask_s,
               timing.compat_update_mask_s) > 0
    assert timing.step_ratio > 0 and timing.update_mask_ratio > 0


def test_measure_step_ratio_rejects_unknown_modes():
    with pytest.raises(ValueError, match="mode"):
        measure_step_ratio(mode="eager")


def test_tutorial_speedup_runs_and_is_registered(reference):
    from compat_mindspore.bench import FIGURES
    from compat_mindspore.bench_tutorial import measure_tutorial_speedup
    from supjax_app.bench.timing import Counts

    assert FIGURES["tutorial_speedup"] is measure_tutorial_speedup
    fig = measure_tutorial_speedup(Counts(quick=True), seed=0)
    assert fig["min"] <= fig["median"] <= fig["max"] and fig["median"] > 0
    detail = fig["detail"]
    assert detail["reference_step_ms"]["median"] > 0 and detail["ours_step_ms"]["median"] > 0
    assert detail["steps"] == detail["interval"] == 15
    # the ceiling: the reference's step over the bare dense step, round by round (one round here)
    assert detail["bare_step_ms"]["samples"] == detail["ceiling"]["samples"] == 1
    assert detail["ceiling"]["median"] == pytest.approx(
        detail["reference_step_ms"]["median"] / detail["bare_step_ms"]["median"])
