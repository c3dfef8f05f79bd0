"""Sliced evaluation and the blessing verdict: slices, metrics, thresholds — plain NumPy.

Managers choose the slices that matter (fetal-fraction bands, sequencing-depth bands, ...)
and the thresholds a model must meet on them; :func:`evaluate_predictions` computes every
metric on every slice and checks every threshold. :meth:`mlmd_magic.Store.evaluate` runs
the model, calls this, and records the verdict in MLMD the way TFX does.

Slices (a list of mappings, YAML-friendly)::

    - feature: fetal_fraction          # bins of a numeric feature
      bins: [0.04, 0.08]
      names: [ff_low, ff_mid, ff_high] # optional; default "fetal_fraction<0.04", ...
    - feature: fetal_sex               # one slice per value (or `values: [0, 1]`)

Thresholds::

    - metric: auc                      # value threshold
      lower: 0.95                      # and/or upper
      slices: [ff_mid, ff_high]        # optional; default: overall and every non-empty slice
    - metric: accuracy                 # change threshold against the baseline model
      change: -0.01                    # may be at most 0.01 worse ...
      relative: false                  # ... in absolute terms (true: as a fraction)
      direction: higher                # higher is better (lower: e.g. loss, mae)

A slice named by a threshold but empty in the data fails the verdict. Without a baseline,
change thresholds are skipped (as in TFX), and the check says so.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ValidationError

__all__ = ["Check", "EvaluationResult", "SliceSpec", "Threshold", "compute_metrics", "evaluate_predictions",
           "parse_slices", "parse_thresholds", "slice_masks"]

OVERALL = "overall"


@dataclass(frozen=True)
class SliceSpec:
    feature: str
    bins: tuple[float, ...] = ()
    values: tuple[Any, ...] = ()
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Threshold:
    metric: str
    lower: float | None = None
    upper: float | None = None
    change: float | None = None
    relative: bool = False
    direction: str = "higher"
    slices: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.change is not None:
            kind = "relative" if self.relative else "absolute"
            sign = ">=" if self.direction == "higher" else "<="
            return f"{self.metric} change vs baseline {sign} {self.change:g} ({kind})"
        parts = []
        if self.lower is not None:
            parts.append(f">= {self.lower:g}")
        if self.upper is not None:
            parts.append(f"<= {self.upper:g}")
        return f"{self.metric} {' and '.join(parts)}"


def _floats(value: Any, where: str) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise ValidationError(f"{where} must be a list of numbers")
    out = tuple(float(v) for v in value)
    if not all(math.isfinite(v) for v in out):
        raise ValidationError(f"{where} must be finite numbers, got {list(value)}: NaN or infinity splits "
                              "nothing (the first and last bins already run to -inf and +inf)")
    return out


def _bin_names(spec: SliceSpec) -> list[str]:
    """The names of a binned slice's bins: given, or ``f<a``, ``a<=f<b``, ..., ``f>=z``."""
    if spec.names:
        return list(spec.names)
    edges = [-math.inf, *spec.bins, math.inf]
    names = []
    for lo, hi in zip(edges, edges[1:]):
        if lo == -math.inf:
            names.append(f"{spec.feature}<{hi:g}")
        elif hi == math.inf:
            names.append(f"{spec.feature}>={lo:g}")
        else:
            names.append(f"{lo:g}<={spec.feature}<{hi:g}")
    return names


def _claim(taken: dict[str, str], name: str, where: str) -> None:
    """Record that ``where`` defines slice ``name``; refuse ``overall`` and a name defined twice."""
    if name == OVERALL:
        raise ValidationError(f"{where} names a slice {OVERALL!r}, the name of the whole data set's metrics, "
                              "which it would replace; choose another name")
    if name in taken:
        raise ValidationError(f"slice name {name!r} comes twice ({taken[name]} and {where}), and the two would "
                              "merge into one; give each slice a distinct name (names: [...])")
    taken[name] = where


def parse_slices(slices: Sequence[Any] | None) -> list[SliceSpec]:
    """Check and normalise slice specs (see the module docstring).

    Slice names must be distinct and none may be ``overall``; names that depend on the
    data (one slice per value found) are checked by :func:`slice_masks`.
    """
    out = []
    taken: dict[str, str] = {}
    for i, raw in enumerate(slices or []):
        where = f"slices[{i}]"
        if isinstance(raw, str):
            raw = {"feature": raw}
        if not isinstance(raw, dict) or not isinstance(raw.get("feature"), str):
            raise ValidationError(f"{where} must be a mapping with a 'feature' (and 'bins' or 'values')")
        unknown = set(raw) - {"feature", "bins", "values", "names"}
        if unknown:
            raise ValidationError(f"{where} has unknown keys {sorted(unknown)}; use feature, bins, values, names")
        bins = _floats(raw["bins"], f"{where}.bins") if raw.get("bins") is not None else ()
        if list(bins) != sorted(set(bins)):
            raise ValidationError(f"{where}.bins must be increasing, e.g. [0.04, 0.08]")
        values = tuple(raw.get("values") or ())
        names = tuple(str(n) for n in raw.get("names") or ())
        expected = len(bins) + 1 if bins else len(values)
        if names and len(names) != expected:
            raise ValidationError(f"{where}.names needs {expected} names, got {len(names)}")
        spec = SliceSpec(raw["feature"], bins, values, names)
        for name in _bin_names(spec) if bins else names:
            _claim(taken, name, f"{where}.names" if names else where)
        out.append(spec)
    return out


def parse_thresholds(thresholds: Sequence[Any] | None) -> list[Threshold]:
    """Check and normalise threshold specs (see the module docstring)."""
    out = []
    for i, raw in enumerate(thresholds or []):
        where = f"thresholds[{i}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("metric"), str):
            raise ValidationError(f"{where} must be a mapping with a 'metric'")
        unknown = set(raw) - {"metric", "lower", "upper", "change", "relative", "direction", "slices"}
        if unknown:
            raise ValidationError(
                f"{where} has unknown keys {sorted(unknown)}; use metric, lower, upper, change, relative, "
                "direction, slices")
        numbers = {}
        for key in ("lower", "upper", "change"):
            if raw.get(key) is not None:
                if not isinstance(raw[key], (int, float)) or isinstance(raw[key], bool) or raw[key] != raw[key]:
                    raise ValidationError(f"{where}.{key} must be a number (not NaN)")
                numbers[key] = float(raw[key])
        if not numbers:
            raise ValidationError(f"{where} needs 'lower', 'upper' or 'change'")
        if "change" in numbers and ("lower" in numbers or "upper" in numbers):
            raise ValidationError(f"{where}: write a value threshold (lower/upper) and a change threshold apart")
        direction = raw.get("direction", "higher")
        if direction not in ("higher", "lower"):
            raise ValidationError(f"{where}.direction must be 'higher' (higher is better) or 'lower'")
        slices = raw.get("slices") or ()
        if isinstance(slices, str):
            slices = (slices,)
        out.append(Threshold(raw["metric"], numbers.get("lower"), numbers.get("upper"), numbers.get("change"),
                             bool(raw.get("relative", False)), direction, tuple(str(s) for s in slices)))
    return out


def slice_masks(columns: dict[str, np.ndarray], specs: Sequence[SliceSpec], n: int) -> dict[str, np.ndarray]:
    """Boolean masks: ``overall`` plus one per slice, in spec order."""
    masks = {OVERALL: np.ones(n, dtype=bool)}
    taken: dict[str, str] = {}
    for i, spec in enumerate(specs):
        if spec.feature not in columns:
            raise ValidationError(f"cannot slice by {spec.feature!r}: the data has no such feature")
        col = np.asarray(columns[spec.feature])
        if col.ndim != 1:
            raise ValidationError(f"cannot slice by {spec.feature!r}: it is not a single value per example")
        if spec.bins:
            edges = [-math.inf, *spec.bins, math.inf]
            for j, name in enumerate(_bin_names(spec)):
                lo, hi = edges[j], edges[j + 1]
                _claim(taken, name, f"slices[{i}]")
                masks[name] = (col.astype(float) >= lo) & (col.astype(float) < hi)
        else:
            values = spec.values or tuple(sorted(set(col.tolist()), key=str))
            for j, value in enumerate(values):
                name = spec.names[j] if spec.names else f"{spec.feature}={value}"
                _claim(taken, name, f"slices[{i}]")
                masks[name] = col == value
    return masks


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC (scikit-learn's, ties averaged); NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    if len(np.unique(labels)) < 2:
        return math.nan
    return float(roc_auc_score(labels, scores))


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else math.nan


def compute_metrics(task: str, labels: np.ndarray, scores: np.ndarray,
                    class_names: Sequence[str] | None = None) -> dict[str, float]:
    """Metrics of one slice: ``example_count`` plus the task's metrics (NaN where undefined)."""
    n = len(labels)
    out: dict[str, float] = {"example_count": float(n)}
    if task == "regression":
        err = scores.astype(float) - labels.astype(float)
        out.update(mae=float(np.mean(np.abs(err))) if n else math.nan,
                   mse=float(np.mean(err ** 2)) if n else math.nan,
                   rmse=float(np.sqrt(np.mean(err ** 2))) if n else math.nan)
        return out
    if task == "binary":
        y = labels.astype(int)
        pred = (scores >= 0.5).astype(int)
        tp, tn = int(((pred == 1) & (y == 1)).sum()), int(((pred == 0) & (y == 0)).sum())
        fp, fn = int(((pred == 1) & (y == 0)).sum()), int(((pred == 0) & (y == 1)).sum())
        out.update(accuracy=_ratio(tp + tn, n), auc=_auc(y, scores), precision=_ratio(tp, tp + fp),
                   recall=_ratio(tp, tp + fn), specificity=_ratio(tn, tn + fp))
        return out
    y = labels.astype(int)
    pred = np.argmax(scores, axis=1) if n else np.array([], dtype=int)
    out["accuracy"] = _ratio(int((pred == y).sum()), n)
    recalls = []
    for k in range(scores.shape[1] if scores.ndim == 2 else 0):
        name = class_names[k] if class_names and k < len(class_names) else str(k)
        r = _ratio(int(((pred == k) & (y == k)).sum()), int((y == k).sum()))
        out[f"recall_{name}"] = r
        if not math.isnan(r):
            recalls.append(r)
    out["macro_recall"] = float(np.mean(recalls)) if recalls else math.nan
    if scores.ndim == 2 and scores.shape[1] > 1:
        # screening view: any abnormal class (k > 0) against class 0
        abnormal = (y > 0).astype(int)
        out["abnormal_auc"] = _auc(abnormal, 1.0 - scores[:, 0])
    return out


@dataclass(frozen=True)
class Check:
    """One threshold on one slice."""

    slice: str
    threshold: str
    value: float | None
    baseline: float | None
    passed: bool
    reason: str = ""


@dataclass
class EvaluationResult:
    """Metrics per slice (and of the baseline), the checks, and the verdict."""

    task: str
    split: str
    metrics: dict[str, dict[str, float]]
    baseline_metrics: dict[str, dict[str, float]] | None
    checks: list[Check]
    blessed: bool
    thresholds: list[Threshold] = field(default_factory=list)
    slices: list[SliceSpec] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "split": self.split, "blessed": self.blessed,
            "metrics": _jsonable(self.metrics), "baseline_metrics": _jsonable(self.baseline_metrics),
            "checks": [c.__dict__ for c in self.checks],
            "thresholds": [t.__dict__ for t in self.thresholds],
            "slices": [s.__dict__ for s in self.slices],
        }

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> EvaluationResult:
        """The result back from :meth:`to_dict` (as an evaluation record stores it)."""
        def number(value: Any) -> float:
            return math.nan if value is None else float(value)

        def metrics(values: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, float]] | None:
            return None if values is None else {s: {m: number(v) for m, v in ms.items()} for s, ms in values.items()}

        def spec(kind: Any, fields: dict[str, Any]) -> Any:
            return kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})

        return cls(task=str(payload.get("task", "")), split=str(payload.get("split", "")),
                   metrics=metrics(payload.get("metrics") or {}) or {},
                   baseline_metrics=metrics(payload.get("baseline_metrics")),
                   checks=[Check(**c) for c in payload.get("checks", [])], blessed=bool(payload.get("blessed")),
                   thresholds=[spec(Threshold, t) for t in payload.get("thresholds", [])],
                   slices=[spec(SliceSpec, s) for s in payload.get("slices", [])])

    def table(self) -> list[list[str]]:
        """Rows of metric × slice with pass/fail marks (header first); with a baseline, each value is
        followed by the baseline's and the change, ``0.9000 ✓ (baseline 0.8800, Δ +0.0200)``."""
        slices = list(self.metrics)
        metric_names = list(dict.fromkeys(m for s in slices for m in self.metrics[s]))
        marks: dict[tuple[str, str], str] = {}
        for check in self.checks:
            metric = check.threshold.split(" ", 1)[0]
            key = (metric, check.slice)
            mark = "✓" if check.passed else "✗"
            marks[key] = mark if marks.get(key, "✓") == "✓" else marks[key]
        rows = [["metric", *slices]]
        for metric in metric_names:
            row = [metric]
            for s in slices:
                value = self.metrics[s].get(metric, math.nan)
                cell = "—" if value is None or math.isnan(value) else (
                    f"{int(value)}" if metric == "example_count" else f"{value:.4f}")
                if (metric, s) in marks:
                    cell += f" {marks[(metric, s)]}"
                base = (self.baseline_metrics or {}).get(s, {}).get(metric) if metric != "example_count" else None
                if base is not None and not math.isnan(base):
                    delta = "" if value is None or math.isnan(value) else f", Δ {value - base:+.4f}"
                    cell += f" (baseline {base:.4f}{delta})"
                row.append(cell)
            rows.append(row)
        return rows

    def __repr__(self) -> str:
        rows = self.table()
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        verdict = "BLESSED" if self.blessed else "NOT BLESSED"
        failed = [c for c in self.checks if not c.passed]
        tail = [f"verdict: {verdict} ({len(self.checks) - len(failed)}/{len(self.checks)} checks passed)"]
        tail += [f"  ✗ {c.slice}: {c.threshold} — {c.reason}" for c in failed]
        tail += [f"  · {c.slice}: {c.threshold} — {c.reason}" for c in self.checks if c.passed and c.reason]
        return "\n".join([f"evaluation on {self.split}", *lines, *tail])

    def _repr_html_(self) -> str:
        rows = self.table()
        head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
        colour = "green" if self.blessed else "crimson"
        verdict = "BLESSED" if self.blessed else "NOT BLESSED"
        failed = "".join(f"<li>✗ {html.escape(c.slice)}: {html.escape(c.threshold)} — {html.escape(c.reason)}</li>"
                         for c in self.checks if not c.passed)
        return (f"<div class='mlmd-magic-evaluation'><b style='color:{colour}'>{verdict}</b> "
                f"on <code>{html.escape(self.split)}</code><table><thead><tr>{head}</tr></thead>"
                f"<tbody>{body}</tbody></table><ul>{failed}</ul></div>")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def check_thresholds(thresholds: Sequence[Threshold], metrics: dict[str, dict[str, float]],
                     baseline: dict[str, dict[str, float]] | None) -> list[Check]:
    """Every threshold on every slice it names (default: overall and each non-empty slice)."""
    checks = []
    for t in thresholds:
        named = bool(t.slices)
        targets = list(t.slices) if named else list(metrics)
        for s in targets:
            desc = t.describe()
            if s not in metrics:
                checks.append(Check(s, desc, None, None, False, f"no slice named {s!r}; slices: {list(metrics)}"))
                continue
            count = metrics[s].get("example_count", 0.0)
            if not count:
                if named:
                    checks.append(Check(s, desc, None, None, False, "the slice is empty in the data"))
                continue
            value = metrics[s].get(t.metric)
            if value is None:
                checks.append(Check(s, desc, None, None, False,
                                    f"no metric {t.metric!r}; metrics: {sorted(metrics[s])}"))
                continue
            if math.isnan(value):
                checks.append(Check(s, desc, None, None, False, f"{t.metric} is undefined on this slice"))
                continue
            if t.change is None:
                ok = (t.lower is None or value >= t.lower) and (t.upper is None or value <= t.upper)
                checks.append(Check(s, desc, value, None, ok, "" if ok else f"{t.metric} = {value:.4g}"))
                continue
            if baseline is None:
                checks.append(Check(s, desc, value, None, True, "skipped: no baseline model"))
                continue
            base = baseline.get(s, {}).get(t.metric)
            if base is None or math.isnan(base):
                checks.append(Check(s, desc, value, None, False, "the baseline has no value on this slice"))
                continue
            delta = value - base
            if t.relative:
                delta = delta / abs(base) if base else math.inf * (1 if delta >= 0 else -1)
            ok = delta >= t.change if t.direction == "higher" else delta <= t.change
            checks.append(Check(s, desc, value, base, ok,
                                "" if ok else f"{t.metric} {value:.4g} vs baseline {base:.4g} (change {delta:+.4g})"))
    return checks


def evaluate_predictions(
    task: str,
    labels: np.ndarray,
    scores: np.ndarray,
    columns: dict[str, np.ndarray],
    *,
    split: str = "test",
    slices: Sequence[Any] | None = None,
    thresholds: Sequence[Any] | None = None,
    baseline_scores: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
) -> EvaluationResult:
    """Metrics on every slice for the model (and its baseline), every threshold checked.

    >>> import numpy as np
    >>> r = evaluate_predictions("binary", np.array([0, 1, 1, 0]), np.array([.1, .9, .8, .3]),
    ...                          {"ff": np.array([.02, .05, .09, .1])},
    ...                          slices=[{"feature": "ff", "bins": [0.04]}],
    ...                          thresholds=[{"metric": "accuracy", "lower": 0.9}])
    >>> r.blessed, list(r.metrics)
    (True, ['overall', 'ff<0.04', 'ff>=0.04'])
    """
    specs = parse_slices(slices)
    ths = parse_thresholds(thresholds)
    masks = slice_masks(columns, specs, len(labels))
    metrics = {name: compute_metrics(task, labels[m], scores[m], class_names) for name, m in masks.items()}
    base = None
    if baseline_scores is not None:
        base = {name: compute_metrics(task, labels[m], baseline_scores[m], class_names) for name, m in masks.items()}
    checks = check_thresholds(ths, metrics, base)
    return EvaluationResult(task, split, metrics, base, checks, all(c.passed for c in checks), ths, specs)
