"""The Keras trainer: give it the experiment dict, get a trained model and its metrics back.

It imports no MLMD and no widget code, so it runs anywhere Keras 3 does::

    from mlmd_magic.trainer import train
    result = train(params, workdir="runs/t21")     # params = store.get_experiment("t21")
    result.metrics["test"]["auc"]

Keras (and TensorFlow or JAX, by ``KERAS_BACKEND``) is imported only when training starts.
"""

from __future__ import annotations

from ._builders import OutputSpec, builders, register_model
from ._export import export_saved_model, serving_inputs
from ._interrupts import Interrupts
from ._progress import ProgressReporter, RunClock, format_eta
from ._train import (
    MAX_INFERRED_CLASSES,
    Predictions,
    TaskChoice,
    TrainResult,
    builder_fingerprint,
    cleanup,
    code_version,
    explain_task,
    infer_task,
    package_versions,
    predict,
    reported_metrics,
    train,
)

__all__ = [
    "MAX_INFERRED_CLASSES",
    "Interrupts",
    "OutputSpec",
    "Predictions",
    "ProgressReporter",
    "RunClock",
    "TaskChoice",
    "TrainResult",
    "builder_fingerprint",
    "builders",
    "cleanup",
    "code_version",
    "explain_task",
    "export_saved_model",
    "format_eta",
    "infer_task",
    "package_versions",
    "predict",
    "register_model",
    "reported_metrics",
    "serving_inputs",
    "train",
]
