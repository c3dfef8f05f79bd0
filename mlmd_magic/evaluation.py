"""Sliced evaluation and the blessing verdict (public module; see :mod:`mlmd_magic.core.evaluation`).

Slices, metrics and thresholds as plain NumPy, with no MLMD: :meth:`mlmd_magic.Store.evaluate`
runs a model, calls :func:`evaluate_predictions` and records the verdict.
"""

from __future__ import annotations

from .core.evaluation import (
    Check,
    EvaluationResult,
    Explanation,
    SliceExplanation,
    SliceSpec,
    Threshold,
    check_metric_name,
    check_metric_names,
    check_slice_names,
    class_labels,
    computable_metric,
    compute_metrics,
    confusion,
    evaluate_predictions,
    metric_names,
    parse_slices,
    parse_thresholds,
    slice_masks,
)

__all__ = ["Check", "EvaluationResult", "Explanation", "SliceExplanation", "SliceSpec", "Threshold",
           "check_metric_name", "check_metric_names", "check_slice_names",
           "class_labels", "computable_metric",
           "compute_metrics", "confusion", "evaluate_predictions", "metric_names", "parse_slices", "parse_thresholds",
           "slice_masks"]
