"""Screening metrics (scikit-learn's): per-class PPV, NPV, specificity, FPR, confusion matrices,
example counts per class and slice, and thresholds on metrics the task does not compute."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, precision_score, recall_score

from mlmd_magic.errors import ValidationError
from mlmd_magic.evaluation import EvaluationResult, compute_metrics, evaluate_predictions, metric_names

CLASSES = ["euploid", "T21", "T18"]
Y = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 0])
PRED = np.array([0, 0, 1, 0, 1, 1, 0, 2, 1, 2])
SCORES = np.eye(3)[PRED] * 0.8 + 0.2 / 3
FF = np.array([0.02, 0.05, 0.09, 0.03, 0.06, 0.10, 0.02, 0.07, 0.12, 0.05])


def test_per_class_screening_metrics_match_one_vs_rest_definitions() -> None:
    m = compute_metrics("multiclass", Y, SCORES, class_names=CLASSES)
    for k, name in enumerate(CLASSES):
        truth, said = Y == k, PRED == k
        fp = int((~truth & said).sum())
        fn, tn = int((truth & ~said).sum()), int((~truth & ~said).sum())
        assert m[f"precision_{name}"] == pytest.approx(precision_score(Y, PRED, labels=[k], average="macro"))
        assert m[f"recall_{name}"] == pytest.approx(recall_score(Y, PRED, labels=[k], average="macro"))
        assert m[f"npv_{name}"] == pytest.approx(tn / (tn + fn))
        assert m[f"specificity_{name}"] == pytest.approx(tn / (tn + fp))
        assert m[f"fpr_{name}"] == pytest.approx(fp / (fp + tn))
        assert m[f"count_{name}"] == truth.sum()
    assert list(m) == metric_names("multiclass", 3, CLASSES)


def test_binary_metrics_have_npv_fpr_and_counts() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.7, 0.2, 0.9, 0.4, 0.8])
    m = compute_metrics("binary", y, s, class_names=["neg", "pos"])
    assert (m["npv"], m["fpr"], m["specificity"], m["precision"]) == pytest.approx((2 / 3, 1 / 3, 2 / 3, 2 / 3))
    assert m["count_neg"] == 3 and m["count_pos"] == 3 and m["f1"] == pytest.approx(2 / 3)


def test_confusion_matrix_and_counts_per_slice_in_the_evaluation() -> None:
    result = evaluate_predictions(
        "multiclass", Y, SCORES, {"ff": FF}, class_names=CLASSES,
        slices=[{"feature": "ff", "bins": [0.04], "names": ["low", "high"]}],
        thresholds=[{"metric": "recall_T21", "lower": 0.5}])
    assert result.confusion["overall"] == confusion_matrix(Y, PRED).tolist()
    low = FF < 0.04
    assert result.confusion["low"] == confusion_matrix(Y[low], PRED[low], labels=[0, 1, 2]).tolist()
    assert [result.metrics["low"][f"count_{c}"] for c in CLASSES] == [2, 1, 0]
    page = result._repr_html_()
    assert "confusion matrix, overall" in page and "<td><b>3</b> <small>(60.0%)</small></td>" in page
    assert "confusion matrix: low" in page
    assert "count_T21" in repr(result)
    assert result.to_dict()["confusion"]["overall"][0] == [3, 1, 1]


@pytest.mark.parametrize(("task", "metric", "hint"), [
    ("multiclass", "recal_T21", "did you mean 'recall_T21'?"),
    ("multiclass", "ppv_T21", "did you mean 'precision_T21'?"),
    ("multiclass", "sensitivity_T21", "did you mean 'recall_T21'?"),  # not specificity_T21, its opposite
    ("binary", "sensitivity", "did you mean 'recall'?"),
    ("binary", "recall_T21", "specificity, npv, fpr"),
])
def test_a_threshold_on_an_unknown_metric_lists_the_task_metrics(task: str, metric: str, hint: str) -> None:
    scores = SCORES if task == "multiclass" else SCORES[:, 1]
    labels = Y if task == "multiclass" else (Y > 0).astype(int)
    with pytest.raises(ValidationError, match="does not compute") as info:
        evaluate_predictions(task, labels, scores, {"ff": FF}, class_names=CLASSES if task == "multiclass" else None,
                             thresholds=[{"metric": metric, "lower": 0.9}])
    assert hint in str(info.value) and "accuracy" in str(info.value)


def _evaluated(thresholds: list[dict[str, object]]) -> object:
    return evaluate_predictions(
        "multiclass", Y, SCORES, {"ff": FF}, class_names=CLASSES,
        slices=[{"feature": "ff", "bins": [0.04], "names": ["low", "high"]}], thresholds=thresholds)


def test_explain_names_where_the_examples_behind_each_failed_check_went() -> None:
    result = _evaluated([{"metric": "recall_T21", "lower": 0.9, "slices": ["overall"]},
                         {"metric": "precision_T18", "lower": 0.9, "slices": ["overall"]},
                         {"metric": "fpr_T21", "upper": 0.01, "slices": ["overall"]},
                         {"metric": "npv_euploid", "lower": 0.99, "slices": ["overall"]},
                         {"metric": "accuracy", "lower": 0.0}])
    explained = result.explain()
    assert [part.slice for part in explained.slices] == ["overall"]  # only slices with a failed check
    part = explained.slices[0]
    assert part.matrix == confusion_matrix(Y, PRED).tolist() and part.class_labels == CLASSES
    # true T21 (rows 4, 5, 6) were called T21, T21, euploid
    assert ("recall_T21 = 0.6667: of 3 T21 examples, 2 (66.7%) were called T21; the others were called: 1 euploid"
            in part.sentences)
    # called T18: examples 7 (T18) and 9 (euploid)
    assert ("precision_T18 = 0.5: of 2 examples called T18, 1 (50.0%) were T18; the others were: 1 euploid"
            in part.sentences)
    # not T21: 7 examples, of which example 2 (euploid) and 8 (T18) were called T21
    assert ("fpr_T21 = 0.2857: of 7 examples that are not T21, 2 (28.6%) were wrongly called T21 (they were: "
            "1 euploid, 1 T18)" in part.sentences)
    # not called euploid: examples 2, 4, 5, 7, 8, 9, of which 2 (called T21) and 9 (called T18) are euploid
    # the value leads: the 33.3% is the complement of the NPV, not the NPV
    assert ("npv_euploid = 0.6667: of 6 examples not called euploid, 2 (33.3%) were in fact euploid (called: 1 T21, "
            "1 T18)" in part.sentences)
    text = repr(explained)
    assert text.startswith("NOT BLESSED") and "slice overall: 4 failed" in text and "true class" in text
    assert "slice overall" in explained._repr_html_() and explained.to_dict()["slices"][0]["confusion"] == part.matrix


def test_explain_one_slice_and_the_confusion_table() -> None:
    result = _evaluated([{"metric": "accuracy", "lower": 0.0}])
    assert repr(result.explain()).endswith("no check failed")
    low = FF < 0.04
    part = result.explain("low").slices[0]
    assert part.matrix == confusion_matrix(Y[low], PRED[low], labels=[0, 1, 2]).tolist() and not part.failed
    table = result.confusion_table("low")
    assert list(table.index) == CLASSES and list(table.columns) == CLASSES
    assert table.to_numpy().tolist() == part.matrix
    with pytest.raises(ValidationError, match="no slice 'mid'; its slices are overall, low, high"):
        result.explain("mid")
    with pytest.raises(ValidationError, match="no slice 'mid'"):
        result.confusion_table("mid")


def test_explain_a_binary_and_a_regression_evaluation() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    binary = evaluate_predictions("binary", y, np.array([0.1, 0.7, 0.2, 0.9, 0.4, 0.8]), {}, class_names=["neg", "pos"],
                                  thresholds=[{"metric": "recall", "lower": 0.9}])
    assert binary.explain().slices[0].sentences == [
        "recall = 0.6667: of 3 pos examples, 2 (66.7%) were called pos; the others were called: 1 neg"]
    regression = evaluate_predictions("regression", np.arange(5.0), np.arange(5.0) + 1, {},
                                      thresholds=[{"metric": "mae", "upper": 0.5}])
    part = regression.explain().slices[0]
    assert part.failed and not part.matrix and not part.sentences
    with pytest.raises(ValidationError, match="regression task has none"):
        regression.confusion_table()


def test_explain_class_names_with_spaces_near_misses_and_empty_slices() -> None:
    names = ["no trisomy", "trisomy 21"]
    y = np.array([1] * 200 + [0] * 10)
    scores = np.where(np.arange(210) == 0, 0.1, 0.9) * (y == 1) + 0.1 * (y == 0)  # one trisomy missed
    ff = np.array([0.1] * 210)
    result = evaluate_predictions(
        "multiclass", y, np.stack([1 - scores, scores], axis=1), {"ff": ff}, class_names=names,
        slices=[{"feature": "ff", "bins": [0.04], "names": ["low", "high"]}],
        thresholds=[{"metric": "recall_trisomy 21", "lower": 0.999, "slices": ["overall", "low"]}])
    explained = result.explain()
    overall = next(p for p in explained.slices if p.slice == "overall")
    # the metric is read from the check, not from the threshold's first word; 199 of 200 is not "100%"
    assert overall.sentences == ["recall_trisomy 21 = 0.995: of 200 trisomy 21 examples, 199 (99.5%) were called "
                                 "trisomy 21; the others were called: 1 no trisomy"]
    low = next(p for p in explained.slices if p.slice == "low")  # empty in the data: no matrix, no sentence
    assert low.failed[0].reason == "the slice is empty in the data" and not low.matrix and not low.sentences
    assert "the slice is empty in the data" in repr(explained) and "true class" in repr(explained)


def test_a_stored_result_without_its_task_gets_it_back_from_its_metrics() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    binary = evaluate_predictions("binary", y, np.array([0.1, 0.7, 0.2, 0.9, 0.4, 0.8]), {}, class_names=["neg", "pos"],
                                  thresholds=[{"metric": "recall", "lower": 0.9}])
    stored = binary.to_dict()
    del stored["task"]
    for check in stored["checks"]:
        del check["metric"]  # as records written before checks named their metric
    again = EvaluationResult.from_dict(stored)
    assert again.task == "binary" and repr(again.explain()) == repr(binary.explain())
    assert again.explain().slices[0].sentences[0].startswith("recall = 0.6667: of 3 pos examples")
