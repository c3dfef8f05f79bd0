"""Slices (names and bin edges checked), metrics, thresholds and the verdict (pure NumPy, no
model)."""

from __future__ import annotations

import itertools
import math
import re
from typing import Any

import numpy as np
import pytest

import mlmd_magic as mm
from mlmd_magic.errors import ValidationError
from mlmd_magic.evaluation import compute_metrics, evaluate_predictions

FF = np.array([0.02, 0.03, 0.05, 0.06, 0.07, 0.09, 0.12, 0.15])
LABELS = np.array([0, 1, 0, 1, 1, 0, 1, 0])
GOOD = np.array([0.6, 0.3, 0.2, 0.8, 0.7, 0.1, 0.9, 0.2])   # wrong on ff<0.04 only
SLICES = [{"feature": "ff", "bins": [0.04, 0.08], "names": ["low", "mid", "high"]}]


def test_auc_matches_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    s = np.round(rng.random(60), 1)  # ties on purpose
    pairs = [(i, j) for i, j in itertools.product(range(60), range(60)) if y[i] == 1 and y[j] == 0]
    expected = sum(1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0 for i, j in pairs) / len(pairs)
    assert compute_metrics("binary", y, s)["auc"] == pytest.approx(expected)
    assert math.isnan(compute_metrics("binary", np.zeros(3), np.ones(3))["auc"])


def test_metrics_by_task() -> None:
    binary = compute_metrics("binary", LABELS, GOOD)
    assert binary["example_count"] == 8 and binary["accuracy"] == 0.75
    assert binary["recall"] == 0.75 and binary["specificity"] == 0.75
    multi = compute_metrics("multiclass", np.array([0, 1, 2, 1]), np.eye(3)[[0, 1, 1, 1]],
                            class_names=["euploid", "T21", "T18"])
    assert multi["accuracy"] == 0.75 and multi["recall_T18"] == 0.0 and multi["recall_T21"] == 1.0
    regression = compute_metrics("regression", np.array([1.0, 2.0]), np.array([1.5, 2.5]))
    assert regression["mae"] == 0.5 and regression["rmse"] == 0.5


def test_slices_and_value_thresholds() -> None:
    result = evaluate_predictions("binary", LABELS, GOOD, {"ff": FF}, slices=SLICES,
                                  thresholds=[{"metric": "accuracy", "lower": 0.99, "slices": ["mid", "high"]}])
    assert list(result.metrics) == ["overall", "low", "mid", "high"]
    assert [result.metrics[s]["example_count"] for s in ("low", "mid", "high")] == [2, 3, 3]
    assert result.blessed
    failing = evaluate_predictions("binary", LABELS, GOOD, {"ff": FF}, slices=SLICES,
                                   thresholds=[{"metric": "accuracy", "lower": 0.99}])
    assert not failing.blessed
    assert {c.slice for c in failing.checks if not c.passed} == {"overall", "low"}
    text = repr(failing)
    assert "NOT BLESSED" in text and "0.0000 ✗" in text and "1.0000 ✓" in text
    assert "crimson" in failing._repr_html_()


def test_confusion_html_is_an_old_name_that_warns() -> None:
    """``EvaluationResult.confusion_html`` went to the display layer without a release of warning:
    the old name stays one release, says where it went and gives the same HTML."""
    from mlmd_magic.display.evaluation import confusion_html

    result = evaluate_predictions("binary", LABELS, GOOD, {"ff": FF}, slices=SLICES)
    for args in ((), ("low",), ("no such slice",)):
        with pytest.warns(DeprecationWarning, match=r"EvaluationResult\.confusion_html is now mlmd_magic\.display\."
                                                    r"evaluation\.confusion_html\(result, slice_name\); the old name "
                                                    r"goes in the next release") as caught:
            html = result.confusion_html(*args)
        assert [w.filename for w in caught] == [__file__]  # the warning points at the caller
        assert html == confusion_html(result, *args)
        assert ("mlmd-magic-confusion" in html) == (args != ("no such slice",))
    with pytest.deprecated_call():
        assert "confusion matrix, low" in result.confusion_html(slice_name="low")


def test_default_slice_names_and_value_slices() -> None:
    result = evaluate_predictions("binary", LABELS, GOOD, {"ff": FF, "sex": np.array([0, 1] * 4)},
                                  slices=[{"feature": "ff", "bins": [0.04]}, {"feature": "sex"}])
    assert list(result.metrics) == ["overall", "ff<0.04", "ff>=0.04", "sex=0", "sex=1"]


def test_a_named_empty_slice_fails_the_verdict() -> None:
    slices = [{"feature": "ff", "bins": [0.01, 0.04], "names": ["very_low", "low", "rest"]}]
    unnamed = evaluate_predictions("binary", LABELS, GOOD, {"ff": FF}, slices=slices,
                                   thresholds=[{"metric": "auc", "lower": 0.0}])
    assert unnamed.metrics["very_low"]["example_count"] == 0
    assert all(c.slice != "very_low" for c in unnamed.checks)
    named = evaluate_predictions("binary", LABELS, GOOD, {"ff": FF}, slices=slices,
                                 thresholds=[{"metric": "accuracy", "lower": 0.0, "slices": ["very_low"]}])
    assert not named.blessed and "empty" in named.checks[0].reason


def test_a_threshold_on_an_unknown_slice_is_an_error_naming_the_slices() -> None:
    # a typo is an error listing the valid names, never a NOT BLESSED verdict
    slices = [{"feature": "ff", "bins": [0.04, 0.08], "names": ["ff_low", "ff_mid", "ff_high"]}]
    with pytest.raises(ValidationError, match="names slice 'ff_hi'") as info:
        evaluate_predictions("binary", LABELS, GOOD, {"ff": FF}, slices=slices,
                             thresholds=[{"metric": "accuracy", "lower": 0.0, "slices": ["ff_hi"]}])
    assert "did you mean 'ff_high'?" in str(info.value) and "overall, ff_low, ff_mid, ff_high" in str(info.value)


def test_change_thresholds_against_a_baseline() -> None:
    worse = GOOD.copy()
    worse[3] = 0.2  # one more mistake: accuracy 0.75 -> 0.625 overall
    th = [{"metric": "accuracy", "change": -0.1, "slices": ["overall"]}]
    assert not evaluate_predictions("binary", LABELS, worse, {"ff": FF}, slices=SLICES, thresholds=th,
                                    baseline_scores=GOOD).blessed
    assert evaluate_predictions("binary", LABELS, GOOD, {"ff": FF}, slices=SLICES, thresholds=th,
                                baseline_scores=worse).blessed
    relative = [{"metric": "accuracy", "change": -0.2, "relative": True, "slices": ["overall"]}]
    assert evaluate_predictions("binary", LABELS, worse, {"ff": FF}, thresholds=relative,
                                baseline_scores=GOOD, slices=SLICES).blessed  # -16.7 % >= -20 %
    lower_better = [{"metric": "example_count", "change": 0, "direction": "lower"}]
    assert evaluate_predictions("binary", LABELS, GOOD, {"ff": FF}, thresholds=lower_better,
                                baseline_scores=GOOD).blessed
    no_baseline = evaluate_predictions("binary", LABELS, worse, {"ff": FF}, thresholds=th, slices=SLICES)
    assert no_baseline.blessed and "skipped" in no_baseline.checks[0].reason


def test_table_shows_baseline_values_and_deltas() -> None:
    worse = GOOD.copy()
    worse[3] = 0.2  # accuracy 0.75 -> 0.625 overall
    th = [{"metric": "accuracy", "change": -0.1, "slices": ["overall"]}]
    result = evaluate_predictions("binary", LABELS, worse, {"ff": FF}, slices=SLICES, thresholds=th,
                                  baseline_scores=GOOD)
    row = {r[0]: r for r in result.table()}
    header = result.table()[0]
    overall = row["accuracy"][header.index("overall")]
    assert overall == "0.6250 ✗ (baseline 0.7500, Δ -0.1250)"
    assert row["example_count"][header.index("overall")] == "8"  # counts are the same data: no baseline
    assert all("baseline" not in cell for name, *cells in result.table()[1:] if name.startswith("count_")
               for cell in cells)
    assert "(baseline 0.7500, Δ -0.1250)" in repr(result) and "baseline 0.7500, Δ -0.1250" in result._repr_html_()
    plain = evaluate_predictions("binary", LABELS, worse, {"ff": FF}, slices=SLICES, thresholds=th)
    assert "baseline" not in plain.table()[1][1] and "Δ" not in repr(plain)
    again = type(result).from_dict(result.to_dict())  # as an evaluation record stores it
    assert again.table() == result.table() and again.blessed == result.blessed


@pytest.mark.parametrize(
    ("slices", "thresholds", "message"),
    [
        ([{"bins": [1]}], None, "must be a mapping with a 'feature'"),
        ([{"feature": "ff", "bins": [0.08, 0.04]}], None, "increasing"),
        ([{"feature": "ff", "bins": [0.04], "names": ["a"]}], None, "needs 2 names"),
        ([{"feature": "nope"}], None, "no such feature"),
        (None, [{"metric": "auc"}], "needs 'lower', 'upper' or 'change'"),
        (None, [{"metric": "auc", "lower": "high"}], "must be a number"),
        (None, [{"metric": "auc", "change": 0, "direction": "up"}], "direction"),
        (None, [{"metric": "auc", "lower": 0.5, "colour": 1}], "unknown keys"),
    ],
)
def test_bad_specs_say_what_to_fix(slices: object, thresholds: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        evaluate_predictions("binary", LABELS, GOOD, {"ff": FF}, slices=slices, thresholds=thresholds)  # type: ignore[arg-type]


def _evaluate(slices: list[Any], thresholds: list[Any] | None = None) -> Any:
    """``GOOD`` judged on slices of ``ff``, of ``sex`` (0 and 1) and of ``mixed`` (1 and "1")."""
    return evaluate_predictions("binary", LABELS, GOOD,
                                {"ff": FF, "sex": np.array([0, 1, 0, 1, 0, 1, 0, 1]),
                                 "mixed": np.array([1, "1", 1, "1", 1, "1", 1, "1"], dtype=object)},
                                slices=slices, thresholds=thresholds)


@pytest.mark.parametrize("slices", [
    [{"feature": "ff", "bins": [0.04], "names": ["overall", "rest"]}],
    [{"feature": "sex", "values": [0, 1], "names": ["x", "overall"]}],
])
def test_a_slice_named_overall_is_refused(slices: list[Any]) -> None:
    """A slice named ``overall`` would replace the whole data set's metrics (here a threshold on
    'overall' would then judge ff < 0.04 only)."""
    with pytest.raises(ValidationError, match="names a slice 'overall'"):
        _evaluate(slices, thresholds=[{"metric": "accuracy", "lower": 0.7, "slices": ["overall"]}])
    result = _evaluate([{"feature": "ff", "bins": [0.04], "names": ["low", "high"]}, {"feature": "sex"}],
                       thresholds=[{"metric": "accuracy", "lower": 0.7, "slices": ["overall"]}])
    assert list(result.metrics) == ["overall", "low", "high", "sex=0", "sex=1"] and result.blessed


@pytest.mark.parametrize(("slices", "name"), [
    ([{"feature": "ff", "bins": [0.04], "names": ["a", "b"]},
      {"feature": "sex", "values": [0, 1], "names": ["b", "c"]}], "b"),
    ([{"feature": "ff", "bins": [0.04]}, {"feature": "ff", "bins": [0.04, 0.1]}], "ff<0.04"),
    ([{"feature": "sex", "values": [0, 0]}], "sex=0"),
    ([{"feature": "mixed"}], "mixed=1"),  # values 1 and "1": one name
])
def test_duplicate_slice_names_are_refused(slices: list[Any], name: str) -> None:
    with pytest.raises(ValidationError, match=f"slice name '{re.escape(name)}' comes twice"):
        _evaluate(slices)


@pytest.mark.parametrize("bins", [[float("nan")], [0.04, float("inf")], [float("-inf"), 0.04], [True]])
def test_bin_edges_must_be_finite_numbers(bins: list[Any], mem_store: mm.Store) -> None:
    """Refused by the evaluation, and by ``Store.evaluate`` before it looks for the model."""
    with pytest.raises(ValidationError, match="bins must be"):
        _evaluate([{"feature": "ff", "bins": bins}])
    with pytest.raises(ValidationError, match="bins must be"):
        mem_store.evaluate("model:1", slices=[{"feature": "ff", "bins": bins}])
