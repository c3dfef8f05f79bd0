"""Reproduce a model from its record alone: the same experiment version's parameters, the data
checked against the files now, the trainer code, the builder's source, the package versions and
the Keras backend compared with what the run recorded; then the run trained again and its
metrics compared within a tolerance.

Recorded as a ``Reproduce`` execution with INPUT events to the original model and (when it was
trained again) the new one; its ``details`` hold the report.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from ..backend.properties import text
from ..backend.recorder import Action
from ..core.names import experiment_ref
from ..core.values import canonical_json
from ..display.results import reproduction_html
from ..errors import ValidationError
from .runs import Runs, keras_backend

__all__ = ["CPU_TOLERANCE", "GPU_TOLERANCE", "Reproduction", "checked_tolerance", "reproduce"]

# On CPU with the same seed TensorFlow's deterministic ops give the same numbers; GPUs do not
# promise bitwise equality (cuDNN picks algorithms), so their runs are compared more loosely.
CPU_TOLERANCE = 1e-6
GPU_TOLERANCE = 0.02


@dataclass(frozen=True)
class Reproduction:
    """What ``reproduce`` found: ``reproduced`` or the table of what differs.

    ``differences`` rows are ``(what, as recorded, now)``: a data split's files, the trainer
    code, the builder's source, a package version, the backend, or a metric beyond ``tolerance``.
    """

    id: int
    model_id: int
    run: str
    reproduced: bool
    tolerance: float
    differences: list[tuple[str, str, str]] = field(default_factory=list)
    metrics: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # split -> metric -> [old, new]
    new_run: str = ""
    new_model_id: int | None = None

    @property
    def verdict(self) -> str:
        """``"reproduced"``, ``"differs"`` or ``"not trained again"`` (the data changed)."""
        if self.reproduced:
            return "reproduced"
        return "differs" if self.new_run else "not trained again"

    def to_dict(self) -> dict[str, Any]:
        """The report as plain values."""
        return {"reproduce": self.id, "model": self.model_id, "run": self.run, "verdict": self.verdict,
                "tolerance": self.tolerance, "differences": [list(d) for d in self.differences],
                "metrics": self.metrics, "new_run": self.new_run, "new_model": self.new_model_id}

    def _title(self) -> str:
        again = f" by {self.new_run} (model #{self.new_model_id})" if self.new_run else ""
        return f"model #{self.model_id} of {self.run}: {self.verdict}{again}; metrics within {self.tolerance:g}"

    def __repr__(self) -> str:
        rows = [("what differs", "recorded", "now"), *self.differences] if self.differences else []
        widths = [max(len(r[i]) for r in rows) for i in range(3)] if rows else []
        return "\n".join([self._title(), *("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
                                           for r in rows)])

    def _repr_html_(self) -> str:
        return reproduction_html(self._title(), self.differences)


def _environment_differences(runs: Runs, details: dict[str, Any], model_name: str) -> list[tuple[str, str, str]]:
    from ..trainer import builder_fingerprint, code_version, package_versions

    rows: list[tuple[str, str, str]] = []
    recorded = details.get("code") or {}
    now = {"trainer": code_version(), "builder": builder_fingerprint(model_name), "backend": keras_backend()}
    labels = {"trainer": "trainer code", "builder": f"model builder {model_name!r} source", "backend": "Keras backend"}
    for key, label in labels.items():
        if key in recorded and recorded[key] != now[key]:
            rows.append((label, str(recorded[key]), str(now[key])))
    versions_then = {k: v for k, v in (details.get("versions") or {}).items() if k != "backend"}
    versions_now = {k: v for k, v in package_versions(keras_backend()).items() if k != "backend"}
    for package in sorted(set(versions_then) | set(versions_now)):
        if versions_then.get(package) != versions_now.get(package):
            rows.append((f"package {package}", versions_then.get(package, "absent"),
                         versions_now.get(package, "absent")))
    return rows


def checked_tolerance(tolerance: Any) -> float | None:
    """``tolerance`` as a float >= 0, or None (the default for the run's device).

    A metric differs when ``abs(new - old) > tolerance``: NaN would call any metrics equal and a
    negative tolerance none, so both are refused, as are a bool and text (``True`` is 1).

    >>> checked_tolerance(0)
    0.0

    Raises
    ------
    ValidationError
        For anything but a finite number >= 0 (or None), saying what to write.
    """
    if tolerance is None:
        return None
    number = math.nan
    if isinstance(tolerance, (int, float)) and not isinstance(tolerance, bool):
        try:
            number = float(tolerance)
        except OverflowError:  # an int past a float's range
            number = math.inf
    if math.isfinite(number) and number >= 0:
        return number
    if isinstance(tolerance, bool):
        got = "true/false"
    elif isinstance(tolerance, str):
        got = f"text {tolerance[:30]!r}"
    elif not isinstance(tolerance, (int, float)):
        got = type(tolerance).__name__
    elif isinstance(tolerance, float) or math.isfinite(number):
        got = f"{number:g}"
    else:
        got = "a number past a float's range"
    raise ValidationError(f"tolerance must be a finite number >= 0 (e.g. 0.01; 0 for equal metrics), got {got}; "
                          f"leave it out for the default ({CPU_TOLERANCE:g} on CPU, {GPU_TOLERANCE:g} on GPU)")


def reproduce(runs: Runs, target: Any, *, tolerance: float | None, progress: Any) -> Reproduction:
    """See :meth:`mlmd_magic.Store.reproduce`."""
    tolerance = checked_tolerance(tolerance)  # before anything is recorded: a wrong argument, not a failed action
    act = Action("Reproduce", {"target": str(target), "tolerance": tolerance})
    recorder = runs.recorder
    with recorder.guard(act):
        model = runs.resolve_model(target)
        execution = runs.producer_of(model)
        details = json.loads(text(execution.properties, "details") or "{}")
        if details.get("trained_by") == "your own code":
            raise ValidationError(f"model #{model.id} ({model.name}) was trained by your own code (start_run, "
                                  "%%train): reproduce trains again with the built-in trainer, which is not that code; "
                                  "run your code again")
        params = runs.experiment_of(model)
        exp_ref = experiment_ref(params)
        ds_ref = f"{params['datasource']['name']}@{params['datasource']['version']}"
        ds_art = runs.records.resolve("datasources", ds_ref)
        act.inputs.append(model)
        act.properties["target_run"] = execution.id
        if tolerance is None:
            tolerance = CPU_TOLERANCE if details.get("device", "cpu") == "cpu" else GPU_TOLERANCE
        differences = [(f"data {ds_ref} {line.split(':', 1)[0]}", "as registered", line.split(": ", 1)[-1])
                       for line in runs.records.file_problems(ds_art)]
        differences += _environment_differences(runs, details, params["scenario"]["model"])
        report: dict[str, Any] = {}
        if any(row[0].startswith("data ") for row in differences):
            # training would read other data than the record describes: nothing to compare
            result = Reproduction(0, model.id, execution.name, False, tolerance, differences)
        else:
            again = runs.train(exp_ref, workdir=None, force=True, callbacks=None, progress=progress, overrides={})
            compared: dict[str, dict[str, list[float]]] = {}
            for split, values in (details.get("metrics") or {}).items():
                for metric, old in values.items():
                    new = again.metrics.get(split, {}).get(metric)
                    compared.setdefault(split, {})[metric] = [old, new] if new is not None else [old]
                    if new is None or abs(new - old) > tolerance:
                        differences.append((f"metric {split}.{metric}", f"{old:.6g}",
                                            "absent" if new is None else f"{new:.6g}"))
            metrics_differ = any(row[0].startswith("metric ") for row in differences)
            act.inputs.append(runs.resolve_model(again.model_id))
            result = Reproduction(0, model.id, execution.name, not metrics_differ, tolerance, differences,
                                  compared, again.label, again.model_id)
        report = result.to_dict()
        act.outcome = result.verdict
        act.properties["details"] = canonical_json(report)
        recorder.commit(act)
        return Reproduction(act.execution_id or 0, result.model_id, result.run, result.reproduced, result.tolerance,
                            result.differences, result.metrics, result.new_run, result.new_model_id)
