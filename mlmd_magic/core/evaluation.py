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

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from ..errors import ValidationError

__all__ = ["Check", "EvaluationResult", "Explanation", "SliceExplanation", "SliceSpec", "Threshold",
           "check_metric_name", "check_metric_names", "check_slice_names",
           "class_labels", "computable_metric",
           "compute_metrics", "confusion", "evaluate_predictions", "metric_grammar", "metric_names", "parse_slices",
           "parse_thresholds", "slice_masks", "slice_names", "suggest_metric"]

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
    try:
        out = tuple(float(v) for v in value)
    except OverflowError:  # an int beyond a float's range (10**400)
        raise ValidationError(f"{where} must be numbers within ±1.8e308 (a float's range)") from None
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
        if not isinstance(raw, dict) or not isinstance(raw.get("feature"), str) or not raw["feature"]:
            raise ValidationError(f"{where} must be a mapping with a 'feature' (and 'bins' or 'values')")
        unknown = set(raw) - {"feature", "bins", "values", "names"}
        if unknown:
            raise ValidationError(f"{where} has unknown keys {sorted(unknown)}; use feature, bins, values, names")
        bins = _floats(raw["bins"], f"{where}.bins") if raw.get("bins") is not None else ()
        if list(bins) != sorted(set(bins)):
            raise ValidationError(f"{where}.bins must be increasing, e.g. [0.04, 0.08]")
        for key in ("values", "names"):
            if raw.get(key) is not None and not isinstance(raw[key], (list, tuple)):
                raise ValidationError(f"{where}.{key} must be a list, e.g. {key}: [a, b]")
        values = tuple(raw.get("values") or ())
        if not all(isinstance(v, (str, int, float)) for v in values):
            raise ValidationError(f"{where}.values must be plain values (numbers or text), one per slice")
        names = tuple(str(n) for n in raw.get("names") or ())
        expected = len(bins) + 1 if bins else len(values)
        if names and len(names) != expected:
            raise ValidationError(f"{where}.names needs {expected} names, got {len(names)}")
        spec = SliceSpec(raw["feature"], bins, values, names)
        for name in _bin_names(spec) if bins else names:
            _claim(taken, name, f"{where}.names" if names else where)
        out.append(spec)
    return out


def _shown(value: Any) -> str:
    """``value`` as a message shows it: short, and without ``str`` of a huge int (which raises past
    4,300 digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"a whole number of about {round(value.bit_length() * math.log10(2))} digits"
    shown = repr(value)
    return shown if len(shown) <= 60 else f"{shown[:57]}..."


def _finite_number(value: Any, where: str) -> float:
    """``value`` as a float, when it is a real number (an int or a float, not a bool or text) that
    stays finite as a float: ``10**400`` does not, and NaN or infinity compare as no limit does."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"{where} must be a number (finite: not NaN or infinity), got {_shown(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ValidationError(f"{where} must be a number (finite: not NaN or infinity), got {_shown(value)}")
    return number


def parse_thresholds(thresholds: Sequence[Any] | None) -> list[Threshold]:
    """Check and normalise threshold specs (see the module docstring)."""
    out = []
    for i, raw in enumerate(thresholds or []):
        where = f"thresholds[{i}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("metric"), str) or not raw["metric"]:
            raise ValidationError(f"{where} must be a mapping with a 'metric'")
        unknown = set(raw) - {"metric", "lower", "upper", "change", "relative", "direction", "slices"}
        if unknown:
            raise ValidationError(
                f"{where} has unknown keys {sorted(unknown)}; use metric, lower, upper, change, relative, "
                "direction, slices")
        numbers = {key: _finite_number(raw[key], f"{where}.{key}")
                   for key in ("lower", "upper", "change") if raw.get(key) is not None}
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
        if not isinstance(slices, (list, tuple)):
            raise ValidationError(f"{where}.slices must be a list of slice names, e.g. slices: [ff_mid, ff_high]")
        relative = raw.get("relative")
        if relative is not None and not isinstance(relative, bool):
            # bool("false") is True: a quoted word or a number must not pass for a truth value
            raise ValidationError(f"{where}.relative must be true or false, unquoted (True or False in Python), "
                                  f"got {_shown(relative)}")
        out.append(Threshold(raw["metric"], numbers.get("lower"), numbers.get("upper"), numbers.get("change"),
                             bool(relative), direction, tuple(str(s) for s in slices)))
    return out


def slice_names(specs: Sequence[SliceSpec]) -> list[str] | None:
    """Every slice name the specs define (``overall`` first), or None when some depend on the data
    (one slice per value found)."""
    names = [OVERALL]
    for spec in specs:
        if spec.bins:
            names += _bin_names(spec)
        elif spec.names:
            names += list(spec.names)
        elif spec.values:
            names += [f"{spec.feature}={v}" for v in spec.values]
        else:
            return None
    return names


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


def class_labels(task: str, num_classes: int, class_names: Sequence[str] | None = None) -> list[str]:
    """The names metrics use for classes 0..K-1: ``class_names``, else the class numbers."""
    count = 2 if task == "binary" else num_classes
    return [str(class_names[k]) if class_names and k < len(class_names) else str(k) for k in range(count)]


def metric_names(task: str, num_classes: int = 2, class_names: Sequence[str] | None = None) -> list[str]:
    """Every metric :func:`compute_metrics` gives for a task, in the order it gives them.

    >>> metric_names("binary")[:6]
    ['example_count', 'count_0', 'count_1', 'accuracy', 'auc', 'precision']
    """
    if task == "regression":
        return ["example_count", "mae", "mse", "rmse"]
    names = class_labels(task, num_classes, class_names)
    counts = ["example_count", *(f"count_{n}" for n in names)]
    if task == "binary":
        return [*counts, "accuracy", "auc", "precision", "recall", "specificity", "npv", "fpr", "f1"]
    per_class = [f"{m}_{n}" for n in names for m in ("recall", "precision", "npv", "specificity", "fpr")]
    return [*counts, "accuracy", "macro_recall", *per_class, *(["abnormal_auc"] if num_classes > 1 else [])]


def confusion(task: str, labels: np.ndarray, scores: np.ndarray, num_classes: int) -> np.ndarray:
    """The confusion matrix (rows: true class, columns: predicted class) by scikit-learn;
    an empty matrix for regression."""
    from sklearn.metrics import confusion_matrix

    if task == "regression":
        return np.zeros((0, 0), dtype=int)
    k = 2 if task == "binary" else num_classes
    y = labels.astype(int)
    pred = (scores >= 0.5).astype(int) if task == "binary" else (
        np.argmax(scores, axis=1) if len(y) else np.array([], dtype=int))
    if not len(y):
        return np.zeros((k, k), dtype=int)
    return np.asarray(confusion_matrix(y, pred, labels=list(range(k))), dtype=int)


def _one_vs_rest(cm: np.ndarray, k: int) -> dict[str, float]:
    """PPV, NPV, recall, specificity and FPR of class ``k`` against the others, from the matrix."""
    tp = float(cm[k, k])
    fn = float(cm[k].sum() - tp)
    fp = float(cm[:, k].sum() - tp)
    tn = float(cm.sum() - tp - fn - fp)
    return {"recall": _ratio(tp, tp + fn), "precision": _ratio(tp, tp + fp), "npv": _ratio(tn, tn + fn),
            "specificity": _ratio(tn, tn + fp), "fpr": _ratio(fp, fp + tn)}


def compute_metrics(task: str, labels: np.ndarray, scores: np.ndarray,
                    class_names: Sequence[str] | None = None) -> dict[str, float]:
    """Metrics of one slice (NaN where undefined), by scikit-learn's ``metrics`` module.

    ``example_count`` and ``count_CLASS`` (examples per class); binary: ``accuracy``, ``auc``,
    ``precision`` (PPV), ``recall`` (sensitivity), ``specificity``, ``npv``, ``fpr``, ``f1``;
    multiclass: ``accuracy``, ``macro_recall``, ``recall_``/``precision_``/``npv_``/
    ``specificity_``/``fpr_CLASS`` (each class against the others) and ``abnormal_auc`` (any
    class but 0 against class 0); regression: ``mae``, ``mse``, ``rmse``.
    """
    from sklearn.metrics import accuracy_score, mean_absolute_error, mean_squared_error

    n = len(labels)
    out: dict[str, float] = {"example_count": float(n)}
    if task == "regression":
        y, s = labels.astype(float), scores.astype(float)
        mse = float(mean_squared_error(y, s)) if n else math.nan
        out.update(mae=float(mean_absolute_error(y, s)) if n else math.nan, mse=mse, rmse=math.sqrt(mse))
        return out
    num_classes = scores.shape[1] if task != "binary" and scores.ndim == 2 else 2
    names = class_labels(task, num_classes, class_names)
    cm = confusion(task, labels, scores, num_classes)
    for k, name in enumerate(names):
        out[f"count_{name}"] = float(cm[k].sum())
    y = labels.astype(int)
    if task == "binary":
        pred = (scores >= 0.5).astype(int)
        rates = _one_vs_rest(cm, 1)
        precision, recall = rates["precision"], rates["recall"]
        f1 = _ratio(2 * precision * recall, precision + recall) if not math.isnan(precision + recall) else math.nan
        out.update(accuracy=float(accuracy_score(y, pred)) if n else math.nan, auc=_auc(y, scores),
                   precision=precision, recall=recall, specificity=rates["specificity"], npv=rates["npv"],
                   fpr=rates["fpr"], f1=f1)
        return out
    pred = np.argmax(scores, axis=1) if n else np.array([], dtype=int)
    out["accuracy"] = float(accuracy_score(y, pred)) if n else math.nan
    per_class = {name: _one_vs_rest(cm, k) for k, name in enumerate(names)}
    recalls = [r["recall"] for r in per_class.values() if not math.isnan(r["recall"])]
    out["macro_recall"] = float(np.mean(recalls)) if recalls else math.nan
    for name, rates in per_class.items():
        for metric, value in rates.items():
            out[f"{metric}_{name}"] = value
    if num_classes > 1:
        # screening view: any abnormal class (k > 0) against class 0
        out["abnormal_auc"] = _auc((y > 0).astype(int), 1.0 - scores[:, 0]) if n else math.nan
    return out


# what screening reports call the metrics computed here (one class against the others)
_SYNONYMS = MappingProxyType({"sensitivity": "recall", "tpr": "recall", "ppv": "precision", "tnr": "specificity"})


def suggest_metric(metric: str, available: Sequence[str]) -> str | None:
    """The metric ``metric`` most likely means: a synonym's name here (``sensitivity_T21`` ->
    ``recall_T21``, ``ppv`` -> ``precision``), else the closest spelling; None if nothing is close."""
    import difflib

    head, sep, tail = metric.partition("_")
    alias = _SYNONYMS.get(head.lower())
    if alias and alias + sep + tail in available:
        return alias + sep + tail
    close = difflib.get_close_matches(metric, list(available), n=1)
    return close[0] if close else None


# what metric_names is asked for to learn the grammar: every task, with classes whose names no
# metric's own name contains, so what comes before one of them in a name is a per-class prefix
_TASKS = ("binary", "multiclass", "regression")
_CLASS_MARK = "\x00class"
_LONGEST_NAME = 200  # longer "names" get no suggestion (difflib is quadratic) and are cut in the message


def metric_grammar() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The metric names a threshold may give, whatever the task and classes: the fixed names and
    the per-class prefixes that any class name completes (``recall_`` + ``T21``).

    Both are read from :func:`metric_names` for every task, so a metric added there is
    accepted here with nothing else to change.

    Returns
    -------
    tuple of (tuple of str, tuple of str)
        The fixed names (``example_count``, ``accuracy``, ``auc``, ..., ``mse``) and the
        prefixes (``count_``, ``recall_``, ``precision_``, ...), each in the order the tasks
        list them.

    Examples
    --------
    >>> fixed, prefixes = metric_grammar()
    >>> "auc" in fixed and "mse" in fixed and "recall_" in prefixes and "recall" in fixed
    True
    """
    return _GRAMMAR


def _read_grammar() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What :func:`metric_grammar` gives, read from :func:`metric_names` for every task."""
    fixed: dict[str, None] = {}
    prefixes: dict[str, None] = {}
    for task in _TASKS:
        classes = [f"{_CLASS_MARK}{k}" for k in range(3)]
        for name in metric_names(task, len(classes), classes):
            head, mark, _ = name.partition(_CLASS_MARK)
            (prefixes if mark else fixed)[head] = None
    return tuple(fixed), tuple(prefixes)


_GRAMMAR = _read_grammar()  # read once at import: a constant, no cache


def computable_metric(name: str) -> bool:
    """Whether some evaluation computes a metric of this name: a fixed name (``auc``) or a
    per-class prefix followed by a class name (``recall_T21``, ``count_0``); see
    :func:`metric_grammar`. Whether the data has that class is known only once it is read.

    Examples
    --------
    >>> computable_metric("recall_T21"), computable_metric("aucc"), computable_metric("recall_")
    (True, False, False)
    """
    fixed, prefixes = metric_grammar()
    return name in fixed or any(name.startswith(p) and len(name) > len(p) for p in prefixes)


def _closest_metric(name: str) -> str | None:
    """The computable name ``name`` most likely means: itself in lower case (``AUC``,
    ``Recall_T21``), a synonym (``sensitivity_T21`` -> ``recall_T21``), else the closest spelling
    among the fixed names and the prefixes followed by each class name ``name`` may end with."""
    fixed, prefixes = metric_grammar()
    if len(name) > _LONGEST_NAME:
        return None
    lowered = name.lower()
    for prefix in prefixes:  # the prefix's case only: a class name is the user's, T21 stays T21
        if lowered.startswith(prefix) and len(name) > len(prefix):
            return prefix + name[len(prefix):]
    if lowered in fixed:
        return lowered
    classes = {match.string[match.end():] for match in re.finditer(r"[_\-. ]+", name) if match.end() < len(name)}
    return suggest_metric(name, [*fixed, *(p + c for p in prefixes for c in sorted(classes))])


def check_metric_name(name: str, where: str = "a threshold") -> None:
    """Refuse a metric no evaluation computes (see :func:`computable_metric`), with the name
    probably meant, when a policy is defined rather than when a model is evaluated under it.

    Parameters
    ----------
    name
        The metric a threshold names.
    where
        What names it, for the message (``thresholds[0]``).

    Raises
    ------
    ValidationError
        One line: the name, what was probably meant (``sensitivity_T21`` -> ``recall_T21``,
        ``aucc`` -> ``auc``) and the names and prefixes an evaluation computes.

    Examples
    --------
    >>> check_metric_name("recall_T21")  # any class name completes a per-class prefix
    >>> try:
    ...     check_metric_name("sensitivity_T21", "thresholds[0]")
    ... except ValidationError as exc:
    ...     print(str(exc).split(" metrics:")[0])
    thresholds[0] names metric 'sensitivity_T21', which no evaluation computes; did you mean 'recall_T21'?
    """
    if computable_metric(name):
        return
    fixed, prefixes = metric_grammar()
    close = _closest_metric(name)
    shown = name if len(name) <= _LONGEST_NAME else name[:_LONGEST_NAME] + "…"
    hint = f"did you mean {close!r}? " if close else ""
    raise ValidationError(f"{where} names metric {shown!r}, which no evaluation computes; {hint}metrics: "
                          f"{', '.join(fixed)}, or per class {', '.join(p + 'CLASS' for p in prefixes)} "
                          "with CLASS a class name (e.g. recall_T21)")


def check_metric_names(thresholds: Sequence[Threshold], available: Sequence[str], task: str) -> None:
    """Refuse a threshold on a metric the task does not compute, naming the ones it does."""
    for i, t in enumerate(thresholds):
        if t.metric not in available:
            close = suggest_metric(t.metric, available)
            hint = f"did you mean {close!r}? " if close else ""
            raise ValidationError(f"thresholds[{i}] names metric {t.metric!r}, which a {task} evaluation does not "
                                  f"compute; {hint}metrics: {', '.join(available)}")


def check_slice_names(thresholds: Sequence[Threshold], specs: Sequence[SliceSpec], owner: str = "evaluation") -> None:
    """Refuse a threshold naming a slice the specs do not define (a typo such as ``ff_hi``),
    naming the ones they do — a typo is an error, never a NOT BLESSED verdict. Slices whose names
    depend on the data (one per value found) are checked once the data is read."""
    import difflib

    names = slice_names(specs)
    if names is None:
        return
    for i, t in enumerate(thresholds):
        for s in t.slices:
            if s not in names:
                close = difflib.get_close_matches(s, names, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ValidationError(f"thresholds[{i}] names slice {s!r}, which the {owner} does not define; "
                                      f"{hint}slices: {', '.join(names)}")


@dataclass(frozen=True)
class Check:
    """One threshold on one slice."""

    slice: str
    threshold: str
    value: float | None
    baseline: float | None
    passed: bool
    reason: str = ""
    metric: str = ""  # the threshold's metric (older records: read from ``threshold``)

    @property
    def metric_name(self) -> str:
        """The metric checked: recorded, or (records written before it was) the threshold's first word."""
        return self.metric or self.threshold.split(" ", 1)[0]


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
    #: per slice, the confusion matrix (rows: true class, columns: predicted class)
    confusion: dict[str, list[list[int]]] = field(default_factory=dict)
    #: the names of classes 0..K-1 as metrics use them
    class_labels: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "split": self.split, "blessed": self.blessed,
            "metrics": _jsonable(self.metrics), "baseline_metrics": _jsonable(self.baseline_metrics),
            "checks": [c.__dict__ for c in self.checks],
            "thresholds": [t.__dict__ for t in self.thresholds],
            "slices": [s.__dict__ for s in self.slices],
            "confusion": self.confusion, "class_labels": self.class_labels,
        }

    @property
    def failed(self) -> list[Check]:
        """The checks that failed."""
        return [c for c in self.checks if not c.passed]

    def confusion_table(self, slice_name: str = OVERALL) -> Any:
        """The confusion matrix of one slice as a pandas DataFrame: rows are the true classes,
        columns the predicted ones, by the class names metrics use.

        Raises
        ------
        ValidationError
            When the evaluation has no slice of that name, or no matrices (regression).
        """
        import pandas as pd

        self._check_slice(slice_name)
        matrix = self.confusion.get(slice_name)
        if not matrix:
            raise ValidationError(f"the evaluation has no confusion matrix for {slice_name!r} "
                                  f"({'a regression task has none' if self.task == 'regression' else 'none recorded'})")
        names = self.class_names(len(matrix))
        return pd.DataFrame(matrix, index=pd.Index(names, name="true"), columns=pd.Index(names, name="predicted"))

    def explain(self, slice_name: str | None = None) -> Explanation:
        """Why the verdict is what it is: for each slice with a failed check (or only
        ``slice_name``), the checks that failed, its confusion matrix, and for each failed class
        metric its value and the examples behind it ("recall_T21 = 0.6471: of 17 T21 examples,
        11 (64.7%) were called T21; the others were called: 6 euploid").

        Raises
        ------
        ValidationError
            When ``slice_name`` is not one of the evaluation's slices.
        """
        if slice_name is not None:
            self._check_slice(slice_name)
        failed_slices = list(dict.fromkeys(c.slice for c in self.checks if not c.passed))
        chosen = [slice_name] if slice_name is not None else failed_slices
        parts = []
        for name in chosen:
            matrix = self.confusion.get(name) or []
            if not any(any(row) for row in matrix):
                matrix = []  # an empty slice: nothing to show
            checks = [c for c in self.checks if c.slice == name and not c.passed]
            labels = self.class_names(len(matrix))
            sentences = list(dict.fromkeys(s for c in checks for s in [_where_they_went(c, self.task, matrix, labels)]
                                           if s))
            parts.append(SliceExplanation(slice=name, failed=checks, class_labels=labels, matrix=matrix,
                                          sentences=sentences))
        return Explanation(blessed=self.blessed, split=self.split, checks=len(self.checks),
                           failed=len(self.failed), slices=parts)

    def _check_slice(self, slice_name: str) -> None:
        if slice_name not in self.metrics:
            raise ValidationError(f"the evaluation has no slice {slice_name!r}; its slices are "
                                  f"{', '.join(self.metrics)}")

    def class_names(self, k: int) -> list[str]:
        """The names of classes 0..k-1: the recorded ones, else the class numbers."""
        return list(self.class_labels) if len(self.class_labels) == k else [str(i) for i in range(k)]

    def confusion_html(self, slice_name: str = OVERALL) -> str:
        """Deprecated: the old name of :func:`mlmd_magic.display.evaluation.confusion_html` (the
        confusion matrix of one slice as an HTML table; ``""`` when the slice has none)."""
        warnings.warn("EvaluationResult.confusion_html is now mlmd_magic.display.evaluation.confusion_html(result, "
                      "slice_name); the old name goes in the next release", DeprecationWarning, stacklevel=2)
        from ..display.evaluation import confusion_html

        return confusion_html(self, slice_name)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> EvaluationResult:
        """The result back from :meth:`to_dict` (as an evaluation record stores it)."""
        def number(value: Any) -> float:
            return math.nan if value is None else float(value)

        def metrics(values: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, float]] | None:
            return None if values is None else {s: {m: number(v) for m, v in ms.items()} for s, ms in values.items()}

        def spec(kind: Any, fields: dict[str, Any]) -> Any:
            return kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})

        task = str(payload.get("task") or "") or _task_of(payload.get("metrics") or {})
        specs = [spec(SliceSpec, s) for s in payload.get("slices", [])]
        labels = list(payload.get("class_labels") or [])
        # stored as canonical JSON, keys sorted: back in the order the evaluation computed them
        slice_order = slice_names(specs) or [OVERALL]
        metric_order = metric_names(task, len(labels), labels) if task else []

        def ordered(values: dict[str, Any] | None, inner: bool = True) -> Any:
            if values is None:
                return None
            rank = {name: i for i, name in enumerate(slice_order)}
            out = dict(sorted(values.items(), key=lambda kv: rank.get(kv[0], len(rank))))
            if inner and metric_order:
                at = {name: i for i, name in enumerate(metric_order)}
                out = {k: dict(sorted(v.items(), key=lambda kv: at.get(kv[0], len(at)))) for k, v in out.items()}
            return out

        return cls(task=task, split=str(payload.get("split", "")),
                   metrics=ordered(metrics(payload.get("metrics") or {})) or {},
                   baseline_metrics=ordered(metrics(payload.get("baseline_metrics"))),
                   checks=[Check(**c) for c in payload.get("checks", [])], blessed=bool(payload.get("blessed")),
                   thresholds=[spec(Threshold, t) for t in payload.get("thresholds", [])],
                   slices=specs, confusion=ordered(payload.get("confusion") or {}, inner=False) or {},
                   class_labels=labels)

    def table(self) -> list[list[str]]:
        """Rows of metric × slice with pass/fail marks (header first); with a baseline, each value is
        followed by the baseline's and the change, ``0.9000 ✓ (baseline 0.8800, Δ +0.0200)``."""
        slices = list(self.metrics)
        metric_names = list(dict.fromkeys(m for s in slices for m in self.metrics[s]))
        marks: dict[tuple[str, str], str] = {}
        for check in self.checks:
            key = (check.metric_name, check.slice)
            mark = "✓" if check.passed else "✗"
            marks[key] = mark if marks.get(key, "✓") == "✓" else marks[key]
        rows = [["metric", *slices]]
        for metric in metric_names:
            row = [metric]
            for s in slices:
                value = self.metrics[s].get(metric, math.nan)
                cell = "—" if value is None or math.isnan(value) else (
                    f"{int(value)}" if _is_count(metric) else f"{value:.4f}")
                if (metric, s) in marks:
                    cell += f" {marks[(metric, s)]}"
                # counts are the data's, the same for both models: no baseline beside them
                base = (self.baseline_metrics or {}).get(s, {}).get(metric) if not _is_count(metric) else None
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
        from ..display.evaluation import result_html

        return result_html(self)


_PER_CLASS = ("recall", "precision", "npv", "specificity", "fpr")


def _metric_class(metric: str, task: str, labels: Sequence[str]) -> tuple[str, int] | None:
    """``recall_T21`` -> ``("recall", index of T21)``; binary metrics are of class 1."""
    if task == "binary":
        return (metric, 1) if metric in _PER_CLASS and len(labels) == 2 else None
    for kind in _PER_CLASS:
        name = metric[len(kind) + 1:] if metric.startswith(kind + "_") else None
        if name is not None and name in labels:
            return kind, list(labels).index(name)
    return None


def _task_of(metrics: dict[str, Any]) -> str:
    """The task an evaluation's metrics belong to, for records that did not store it."""
    names = {m for values in metrics.values() if isinstance(values, dict) for m in values}
    return "regression" if "mae" in names else "binary" if "recall" in names else "multiclass" if names else ""


def _label(name: str) -> str:
    """A class as a sentence names it: ``T21``, or ``class 1`` for a bare number."""
    return f"class {name}" if name.isdigit() else name


def _share(n: int, total: int) -> str:
    return f"{n} ({n / total:.1%})" if total else str(n)


def _spread(counts: np.ndarray, skip: int, labels: Sequence[str]) -> str:
    return ", ".join(f"{int(n)} {_label(labels[j])}" for j, n in enumerate(counts) if j != skip and n) or "none"


def _where_they_went(check: Check, task: str, matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> str:
    """For a failed check on a per-class metric: its value, and the examples behind it, from the
    slice's confusion matrix. Each sentence leads with the metric's value, so a share of
    examples (the complement, for specificity and NPV) is not read as the metric."""
    found = _metric_class(check.metric_name, task, labels) if matrix else None
    if found is None:
        return ""
    kind, k = found
    cm = np.asarray(matrix, dtype=int)
    call = _label(labels[k])
    head = check.metric_name + (f" = {check.value:.4g}" if check.value is not None else "")
    if kind == "recall":  # the class's examples: where did they go?
        row, total = cm[k], int(cm[k].sum())
        if not total:
            return f"{head}: the slice has no {call} examples"
        return (f"{head}: of {total} {call} examples, {_share(int(row[k]), total)} were called {call}; "
                f"the others were called: {_spread(row, k, labels)}")
    if kind == "precision":  # the examples called this class: what were they?
        col, total = cm[:, k], int(cm[:, k].sum())
        if not total:
            return f"{head}: no example of the slice was called {call}"
        return (f"{head}: of {total} examples called {call}, {_share(int(col[k]), total)} were {call}; "
                f"the others were: {_spread(col, k, labels)}")
    if kind in ("specificity", "fpr"):  # the other classes' examples wrongly called this class
        col = cm[:, k]
        others = int(cm.sum() - cm[k].sum())
        wrong = int(col.sum() - col[k])
        if not others:
            return f"{head}: the slice has no examples other than {call}"
        return (f"{head}: of {others} examples that are not {call}, {_share(wrong, others)} were wrongly called "
                f"{call}" + (f" (they were: {_spread(col, k, labels)})" if wrong else ""))
    # npv: the examples not called this class, and how many of them were
    row = cm[k]
    not_called = int(cm.sum() - cm[:, k].sum())
    missed = int(row.sum() - row[k])
    if not not_called:
        return f"{head}: every example of the slice was called {call}"
    return (f"{head}: of {not_called} examples not called {call}, {_share(missed, not_called)} were in fact {call}"
            + (f" (called: {_spread(row, k, labels)})" if missed else ""))


@dataclass(frozen=True)
class SliceExplanation:
    """One slice of an :class:`Explanation`."""

    slice: str
    failed: list[Check]
    class_labels: list[str]
    matrix: list[list[int]]
    sentences: list[str]

    def matrix_lines(self) -> list[str]:
        if not self.matrix:
            return []
        head = ["true class", *self.class_labels, "total"]
        rows = [head] + [[name, *(str(v) for v in row), str(sum(row))] for name, row in zip(self.class_labels,
                                                                                                self.matrix)]
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        return ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                for r in rows]


@dataclass(frozen=True)
class Explanation:
    """Why an evaluation's verdict is what it is, slice by slice (``EvaluationResult.explain``)."""

    blessed: bool
    split: str
    checks: int
    failed: int
    slices: list[SliceExplanation]
    title: str = ""  # which evaluation: "Evaluation #9 of t21-quick@1#1 under policy release-nipt@1"
    #: the evaluation on record it explains, when it is one: {"evaluation": ID, "model": ..., "policy": ...}
    about: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, **self.about, "blessed": self.blessed, "split": self.split,
                "checks": self.checks, "failed": self.failed,
                "slices": [{"slice": s.slice,
                            "failed": [{k: v for k, v in c.__dict__.items() if k != "slice"} for c in s.failed],
                            "class_labels": s.class_labels, "confusion": s.matrix, "explanation": s.sentences}
                           for s in self.slices]}

    def headline(self) -> str:
        verdict = "BLESSED" if self.blessed else "NOT BLESSED"
        head = f"{self.title}: " if self.title else ""
        return f"{head}{verdict} on {self.split}: {self.checks - self.failed} of {self.checks} checks passed"

    def __repr__(self) -> str:
        lines = [self.headline()]
        if not self.slices:
            lines.append("no check failed")
        for part in self.slices:
            state = f"{len(part.failed)} failed" if part.failed else "no check failed"
            lines += ["", f"slice {part.slice}: {state}"]
            lines += [f"  ✗ {c.threshold} — {c.reason}" for c in part.failed]
            if part.matrix:
                lines.append("  confusion matrix (rows: true class, columns: predicted class)")
            lines += [f"    {line}" for line in part.matrix_lines()]
            lines += [f"  {line}" for line in part.sentences]
        return "\n".join(lines).rstrip()

    def _repr_html_(self) -> str:
        from ..display.evaluation import explanation_html

        return explanation_html(self)


def _is_count(metric: str) -> bool:
    return metric == "example_count" or metric.startswith("count_")


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
        for s in list(t.slices) if named else list(metrics):
            outcome = _check_one(t, s, metrics, baseline, named)
            if outcome is not None:
                checks.append(Check(s, t.describe(), *outcome, metric=t.metric))
    return checks


def _check_one(t: Threshold, s: str, metrics: dict[str, dict[str, float]],
               baseline: dict[str, dict[str, float]] | None,
               named: bool) -> tuple[float | None, float | None, bool, str] | None:
    """``(value, baseline value, passed, reason)`` of threshold ``t`` on slice ``s``; None when an
    empty slice the threshold does not name is left out."""
    if s not in metrics:
        return None, None, False, f"no slice named {s!r}; slices: {list(metrics)}"
    if not metrics[s].get("example_count", 0.0):
        return (None, None, False, "the slice is empty in the data") if named else None
    value = metrics[s].get(t.metric)
    if value is None:
        return None, None, False, f"no metric {t.metric!r}; metrics: {sorted(metrics[s])}"
    if math.isnan(value):
        return None, None, False, f"{t.metric} is undefined on this slice"
    if t.change is None:
        ok = (t.lower is None or value >= t.lower) and (t.upper is None or value <= t.upper)
        return value, None, ok, "" if ok else f"{t.metric} = {value:.4g}"
    if baseline is None:
        return value, None, True, "skipped: no baseline model"
    base = baseline.get(s, {}).get(t.metric)
    if base is None or math.isnan(base):
        return value, None, False, "the baseline has no value on this slice"
    delta = value - base
    if t.relative:
        delta = delta / abs(base) if base else math.inf * (1 if delta >= 0 else -1)
    ok = delta >= t.change if t.direction == "higher" else delta <= t.change
    return value, base, ok, "" if ok else f"{t.metric} {value:.4g} vs baseline {base:.4g} (change {delta:+.4g})"


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
    num_classes = scores.shape[1] if task == "multiclass" and scores.ndim == 2 else 2
    check_metric_names(ths, metric_names(task, num_classes, class_names), task)
    check_slice_names(ths, specs)
    masks = slice_masks(columns, specs, len(labels))
    metrics = {name: compute_metrics(task, labels[m], scores[m], class_names) for name, m in masks.items()}
    base = None
    if baseline_scores is not None:
        base = {name: compute_metrics(task, labels[m], baseline_scores[m], class_names) for name, m in masks.items()}
    checks = check_thresholds(ths, metrics, base)
    matrices = {name: confusion(task, labels[m], scores[m], num_classes).tolist() for name, m in masks.items()} \
        if task != "regression" else {}
    return EvaluationResult(task, split, metrics, base, checks, all(c.passed for c in checks), ths, specs,
                            matrices, class_labels(task, num_classes, class_names) if task != "regression" else [])
