"""``supjax bench``: the machinery runs (``--quick``) and writes the documented JSON.

No timing is asserted: the numbers of a smoke run on a shared CI machine mean nothing.
"""

from __future__ import annotations

import argparse
import json
import math

import pytest

from supjax_app.bench import cli, report

HEADLINE = ("step_overhead_ratio", "lenet5_operation_ms", "reference_speedup", "selection_ratio", "compat_step_ratio",
            "compile_ratio", "train_loop_ratio", "quick_seconds", "tutorial_speedup")


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    # one large-path layer is enough for the selection figure's machinery
    status = cli.main(["--quick", "--sizes", "150000", "--json", str(path)])
    assert status == 0
    return json.loads(path.read_text())


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def test_headline_keys_are_numbers_or_null(quick_report):
    for key in HEADLINE:
        assert key in quick_report
        value = quick_report[key]
        assert value is None or _is_number(value), (key, value)
    # measured in every environment
    for key in ("step_overhead_ratio", "lenet5_operation_ms", "selection_ratio", "compile_ratio",
                "train_loop_ratio", "quick_seconds"):
        assert _is_number(quick_report[key]) and quick_report[key] > 0


def test_every_figure_has_median_min_max_and_goal(quick_report):
    figures = quick_report["figures"]
    assert set(HEADLINE) <= set(figures)
    for key in HEADLINE:
        fig = figures[key]
        assert fig["median"] == quick_report[key]
        assert isinstance(fig["goal"], str) and fig["goal"].split()[0] in ("<=", ">=")
        if fig["median"] is None:
            assert fig["min"] is None and fig["max"] is None and fig["met"] is None
            assert fig["note"]  # says why the figure is missing
        else:
            assert fig["min"] <= fig["median"] <= fig["max"]
            assert isinstance(fig["met"], bool)
            assert fig["samples"] >= 1
    assert quick_report["goals_met"] == {key: figures[key]["met"] for key in HEADLINE}


def test_details(quick_report):
    figures = quick_report["figures"]
    step = figures["step_overhead_ratio"]["detail"]["step_ms"]
    assert {"bare", "suppress"} <= set(step)
    layers = figures["lenet5_operation_ms"]["detail"]["layers"]
    assert [v["size"] for v in layers.values()] == [150, 2400, 48000, 10080, 840]
    by_size = figures["selection_ratio"]["detail"]["by_size"]
    assert list(by_size) == ["150000"] and by_size["150000"]["path"] == "large"
    assert quick_report["quick"] is True
    assert quick_report["environment"]["jax"] and quick_report["phase_s"]
    assert set(quick_report["environment"]["cpu"]) == {"model", "vector_extensions"}


def test_add_arguments_registers_the_options():
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--json", "x.json", "--quick", "--sizes", "1e4", "1e7", "--no-compat"])
    assert args.json == "x.json" and args.quick and args.no_compat and not args.no_reference
    assert args.sizes == [1e4, 1e7]


def test_bad_sizes_are_rejected(capsys):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert cli.run(parser.parse_args(["--sizes", "0"])) == 2
    assert "--sizes" in capsys.readouterr().err


def test_plain_table_without_rich(quick_report):
    text = report.format_table(quick_report)
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["figure", "median", "min", "max"]
    assert len(lines) == 2 + len(HEADLINE)


def test_whole_run_figures(quick_report):
    figures = quick_report["figures"]
    compile_ = figures["compile_ratio"]["detail"]
    assert compile_["hlo_ops"]["lenet5_suppressed"] > compile_["hlo_ops"]["lenet5_dense"] > 0
    assert compile_["lenet5"]["suppressed_s"]["median"] > 0 and compile_["lenet5"]["dense_s"]["median"] > 0
    # one operation per layer (fuse_layers=False) is the larger program
    assert compile_["hlo_ops"]["lenet5_per_layer"] > compile_["hlo_ops"]["lenet5_suppressed"]
    assert compile_["lenet5"]["per_layer_ratio"]["median"] > 0
    assert figures["compile_ratio"]["goal"] == "<= 1.5"
    loop = figures["train_loop_ratio"]["detail"]["step_ms"]
    assert loop["fit"]["median"] > 0 and loop["bare"]["median"] > 0
    quick = figures["quick_seconds"]["detail"]
    assert quick["cold_s"]["median"] > 0 and quick["warm_s"]["median"] == figures["quick_seconds"]["median"]
    assert quick["argv"][:2] == ["supjax", "train"]
    tutorial = figures["tutorial_speedup"]
    if tutorial["median"] is None:  # only the MindSpore environment measures it
        assert "not installed" in tutorial["note"]


def test_a_registered_figure_is_measured_judged_and_tabled(monkeypatch):
    """One entry in ``report.FIGURES`` is enough for a new figure (every measurement faked here)."""
    fake = {"median": 2.0, "min": 1.0, "max": 3.0, "samples": 3, "detail": {}}
    for name in ("measure_step_overhead", "measure_lenet5_operation", "measure_selection_ratio"):
        monkeypatch.setattr(report, name, lambda *a, **k: dict(fake))
    extra = {key: report.Figure(fig.goal, fig.unit, lambda counts, seed: dict(fake)) for key, fig in report.FIGURES.items()}
    extra["new_ratio"] = report.Figure(("<=", 1.5), "x", lambda counts, seed: None, "why it is missing")
    monkeypatch.setattr(report, "FIGURES", extra)
    monkeypatch.setitem(report.GOALS, "new_ratio", ("<=", 1.5))
    monkeypatch.setitem(report.UNITS, "new_ratio", "x")
    try:  # another figure, measured in its own module
        from supjax_app.bench import dp_step
    except ImportError:
        pass
    else:
        monkeypatch.setattr(dp_step, "measure_dp_step_ratio", lambda *a, **k: dict(fake))
    got = report.run_bench(quick=True, reference=False, compat=False)
    assert got["compile_ratio"] == 2.0 and got["figures"]["compile_ratio"]["met"] is False
    assert got["new_ratio"] is None and got["figures"]["new_ratio"]["note"] == "why it is missing"
    assert got["goals_met"]["train_loop_ratio"] is False and got["goals_met"]["new_ratio"] is None
    assert "new_ratio" in report.format_table(got)
