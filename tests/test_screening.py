"""Screening metrics (scikit-learn's): per-class PPV, NPV, specificity, FPR, confusion matrices,
example counts per class and slice, and thresholds on metrics the task does not compute."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, precision_score, recall_score

from mlmd_magic.errors import ValidationError
from mlmd_magic.evaluation import compute_metrics, evaluate_predictions, metric_names

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
    assert "confusion matrix, overall" in page and "<td>3 <small>(60.0%)</small></td>" in page
    assert "confusion matrix: low" in page
    assert "count_T21" in repr(result)
    assert result.to_dict()["confusion"]["overall"][0] == [3, 1, 1]


@pytest.mark.parametrize(("task", "metric", "hint"), [
    ("multiclass", "recal_T21", "did you mean 'recall_T21'?"),
    ("multiclass", "ppv_T21", "precision_T21"),
    ("binary", "recall_T21", "specificity, npv, fpr"),
])
def test_a_threshold_on_an_unknown_metric_lists_the_task_metrics(task: str, metric: str, hint: str) -> None:
    scores = SCORES if task == "multiclass" else SCORES[:, 1]
    labels = Y if task == "multiclass" else (Y > 0).astype(int)
    with pytest.raises(ValidationError, match="does not compute") as info:
        evaluate_predictions(task, labels, scores, {"ff": FF}, class_names=CLASSES if task == "multiclass" else None,
                             thresholds=[{"metric": metric, "lower": 0.9}])
    assert hint in str(info.value) and "accuracy" in str(info.value)
