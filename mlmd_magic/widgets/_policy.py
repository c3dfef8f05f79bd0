"""The policy editor: a release policy's slices and thresholds as form controls, no YAML."""

from __future__ import annotations

import html
import json
import math
import re
from typing import Any

import ipywidgets as w

from ..core.evaluation import metric_names
from ..errors import MlmdMagicError, NotFoundError, ValidationError
from ..store import Store
from ..store import session as _session
from ._fallback import FallbackDisplay, refuse_if_stale
from ._form import change_summary, check_form, show_error
from ._live import StoreWatch, VisibilitySensor

_KINDS = ("lower", "upper", "change")
_WIDE = {"description_width": "initial"}
_EMPTY = "a new policy: add a threshold (and the slices it applies to), then save"


def _numbers(text: str, where: str) -> list[float]:
    """``"0.04, 0.08"`` -> ``[0.04, 0.08]``."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            out.append(float(part))
        except ValueError:
            raise ValidationError(f"{where}: {part!r} is not a number; write numbers separated by commas, "
                                  "e.g. 0.04, 0.08") from None
    return out


def _words(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _show(values: list[Any]) -> str:
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


class _SliceRow(w.HBox):
    def __init__(self, editor: PolicyEditor, spec: dict[str, Any]) -> None:
        self.feature = w.Text(value=str(spec.get("feature", "")), description="feature", placeholder="fetal_fraction",
                              continuous_update=True, style=_WIDE, layout=w.Layout(width="260px"))
        self.bins = w.Text(value=_show(spec.get("bins") or []), description="bins", placeholder="0.04, 0.08",
                           continuous_update=True, style=_WIDE, layout=w.Layout(width="200px"))
        self.names = w.Text(value=_show(spec.get("names") or []), description="names",
                            placeholder="ff_low, ff_mid, ff_high", continuous_update=True, style=_WIDE,
                            layout=w.Layout(width="320px"))
        self.remove = w.Button(description="Remove", icon="trash", layout=w.Layout(width="auto"))
        self.remove.on_click(lambda _: editor.remove_slice(self))
        for field in (self.feature, self.bins, self.names):
            field.observe(lambda _: editor.refresh(), names="value")
        super().__init__([self.feature, self.bins, self.names, self.remove])
        self.add_class("mlmd-magic-policy-slice")

    def spec(self, i: int) -> dict[str, Any]:
        if not self.feature.value.strip():
            raise ValidationError(f"slice {i + 1}: name the feature to slice by (e.g. fetal_fraction)")
        out: dict[str, Any] = {"feature": self.feature.value.strip()}
        bins = _numbers(self.bins.value, f"slice {i + 1} bins")
        if bins:
            out["bins"] = bins
        names = _words(self.names.value)
        if names:
            out["names"] = names
        return out


class _ThresholdRow(w.HBox):
    def __init__(self, editor: PolicyEditor, spec: dict[str, Any]) -> None:
        kind = next((k for k in _KINDS if spec.get(k) is not None), "lower")
        value = spec.get(kind)
        self.metric = w.Combobox(value=str(spec.get("metric", "")), options=editor.metric_choices,
                                 description="metric", placeholder="recall_T21", ensure_option=False,
                                 continuous_update=True, style=_WIDE, layout=w.Layout(width="260px"))
        self.kind = w.Dropdown(options=list(_KINDS), value=kind, description="kind", style=_WIDE,
                               layout=w.Layout(width="150px"))
        self.value = w.FloatText(value=float(value) if value is not None else 0.0, description="value",
                                 continuous_update=True, style=_WIDE, layout=w.Layout(width="160px"))
        self.slices = w.Text(value=", ".join(spec.get("slices") or []), description="slices",
                             placeholder="all slices", continuous_update=True, style=_WIDE,
                             layout=w.Layout(width="260px"))
        self.remove = w.Button(description="Remove", icon="trash", layout=w.Layout(width="auto"))
        self.remove.on_click(lambda _: editor.remove_threshold(self))
        self._extra: dict[str, Any] = {k: spec[k] for k in ("relative", "direction") if k in spec}
        for field in (self.metric, self.kind, self.value, self.slices):
            field.observe(lambda _: editor.refresh(), names="value")
        super().__init__([self.metric, self.kind, self.value, self.slices, self.remove])
        self.add_class("mlmd-magic-policy-threshold")

    def spec(self, i: int) -> dict[str, Any]:
        value = self.value.value
        if value is None or not math.isfinite(float(value)):
            raise ValidationError(f"threshold {i + 1}: the value must be a number")
        if not self.metric.value.strip():
            raise ValidationError(f"threshold {i + 1}: choose a metric (e.g. recall_T21)")
        out: dict[str, Any] = {"metric": self.metric.value.strip(), self.kind.value: float(value)}
        if self.kind.value == "change":
            out.update(self._extra)
        slices = _words(self.slices.value)
        if slices:
            out["slices"] = slices
        return out


class PolicyEditor(FallbackDisplay, w.VBox):
    """Edit a release policy (or write a new one) with form controls: add, remove and change
    slices and thresholds, see the diff against the stored version, and save a new version.

    Checks are the library's own (:meth:`Store.add_policy`'s), run as you type: while one fails
    (a metric no evaluation computes, such as ``sensitivity_T21``, a slice the policy does not
    define, ...) the status line shows why, with what was probably meant, and Save stays
    disabled. Save calls :meth:`Store.add_policy`, recorded with a source naming the panel and
    the change.
    """

    def __init__(self, store: Store, name: str) -> None:
        self._store = store
        self.name = name
        self._known_metrics, self._known_features = _data_vocabulary(store)
        self.metric_choices: list[str] = self._known_metrics or metric_names("binary")
        self._stored: dict[str, Any] | None = None
        self._ref = ""
        try:
            with store.unrecorded():
                record = store.record(name, kind="policies")
            self._stored, self._ref = self._spec_of(record.data), record.ref
        except NotFoundError:
            pass  # a new policy: saving records version 1
        start = self._stored or {"slices": [], "thresholds": [], "description": "", "owner": ""}
        self.last_action = ""  # what the panel did last (a save), for its text form
        self.sensor = VisibilitySensor()
        self.header = w.HTML()
        self.owner = w.Text(value=start["owner"], description="owner", continuous_update=True, style=_WIDE,
                            layout=w.Layout(width="320px"))
        self.description = w.Text(value=start["description"], description="description", continuous_update=True,
                                  style=_WIDE, layout=w.Layout(width="640px"))
        self.slice_box = w.VBox()
        self.threshold_box = w.VBox()
        self.add_slice_button = w.Button(description="Add slice", icon="plus", layout=w.Layout(width="auto"))
        self.add_threshold_button = w.Button(description="Add threshold", icon="plus", layout=w.Layout(width="auto"))
        self.status = w.HTML(layout=w.Layout(min_height="1.6em"))
        self.diff = w.HTML(layout=w.Layout(min_height="5em"))
        self.save_button = w.Button(description="Save as new version", button_style="primary", icon="save",
                                    layout=w.Layout(width="auto"))
        self.slice_box.children = tuple(_SliceRow(self, s) for s in start["slices"])
        self.threshold_box.children = tuple(_ThresholdRow(self, t) for t in start["thresholds"])
        self.add_slice_button.on_click(lambda _: self.add_slice())
        self.add_threshold_button.on_click(lambda _: self.add_threshold())
        self.save_button.on_click(lambda _: self.save())
        for field in (self.owner, self.description):
            field.observe(lambda _: self.refresh(), names="value")
        super().__init__([self.sensor, self.header, w.HBox([self.owner]), self.description,
                          w.HTML("<b>slices</b> <small>(bins of a numeric feature; names optional)</small>"),
                          self.slice_box, w.HBox([self.add_slice_button]),
                          w.HTML("<b>thresholds</b> <small>(lower/upper: the value must reach it; change: at most "
                                 "this much worse than the baseline; slices empty: every slice)</small>"),
                          self.threshold_box, w.HBox([self.add_threshold_button]), self.status, self.diff,
                          w.HBox([self.save_button])])
        self.add_class("mlmd-magic-policy-editor")
        self.add_class("mlmd-magic-panel")
        self.refresh()
        # follows the store while seen: a version recorded elsewhere marks the form out of date
        self.watch = StoreWatch(store, self.store_changed, seen=self.sensor.seen, executions=lambda: False)
        self.watch.start()

    def store_changed(self) -> None:
        """Called when the store changed (any process): if a version of this policy was recorded
        since the panel opened, say so now (Save is refused) rather than on Save."""
        if refuse_if_stale(self, self._store, "policies", self.name, self._version(),
                           f"Policy {self._ref or self.name}"):
            self.mark_out_of_date()

    def _version(self) -> int | None:
        """The stored version the form started from (None: a new policy)."""
        return int(self._ref.rsplit("@", 1)[1]) if self._ref else None

    @staticmethod
    def _spec_of(data: dict[str, Any]) -> dict[str, Any]:
        return {k: data[k] for k in ("slices", "thresholds", "description", "owner")}

    # ------------------------------------------------------------------ form actions

    def add_slice(self, spec: dict[str, Any] | None = None) -> None:
        """A new slice row (empty, or filled from ``spec``)."""
        self.slice_box.children = (*self.slice_box.children, _SliceRow(self, spec or {}))
        self.refresh()

    def remove_slice(self, row: Any) -> None:
        self.slice_box.children = tuple(r for r in self.slice_box.children if r is not row)
        self.refresh()

    def add_threshold(self, spec: dict[str, Any] | None = None) -> None:
        """A new threshold row (empty, or filled from ``spec``)."""
        self.threshold_box.children = (*self.threshold_box.children, _ThresholdRow(self, spec or {}))
        self.refresh()

    def remove_threshold(self, row: Any) -> None:
        self.threshold_box.children = tuple(r for r in self.threshold_box.children if r is not row)
        self.refresh()

    # ------------------------------------------------------------------ state

    def pending(self) -> dict[str, Any]:
        """The policy the form describes, checked by the library's rules (as saving would)."""
        slices = [row.spec(i) for i, row in enumerate(self.slice_box.children)]
        thresholds = [row.spec(i) for i, row in enumerate(self.threshold_box.children)]
        plain_slices, plain_thresholds = Store.check_policy(slices, thresholds)
        return {"slices": plain_slices, "thresholds": plain_thresholds, "description": self.description.value,
                "owner": self.owner.value}

    def refresh(self) -> None:
        """Validate the form and update the diff against the stored version."""
        if not hasattr(self, "save_button"):
            return  # still being built
        nxt = int(self._ref.rsplit("@", 1)[1]) + 1 if self._ref else 1
        title = f"Policy {self._ref}" if self._ref else f"New policy {self.name}"
        self.header.value = (f"<b>{html.escape(title)}</b> <i>(editing; saving records version {nxt} if anything "
                             "changed)</i>")
        if self._empty():
            self.status.value = f"<span style='color:#666'>{html.escape(_EMPTY)}</span>"
            self.diff.value = ""
            self.save_button.disabled = True
            return
        check_form(self, self._ref or "(none)", self._stored or {}, self.pending, warnings=self.warnings)

    def warnings(self, pending: dict[str, Any]) -> list[str]:
        """Metrics and features the store's data sources do not have (none when it has no data
        that names its classes): a policy naming them would fail every evaluation on that data,
        but may be meant for other data, so it can be saved. A metric no evaluation computes is
        not a warning but an error of :meth:`pending`."""
        from ..core.evaluation import suggest_metric

        out = []
        for i, t in enumerate(pending["thresholds"], 1):
            if self._known_metrics and t["metric"] not in self._known_metrics:
                close = suggest_metric(t["metric"], self._known_metrics)
                out.append(f"threshold {i}: {t['metric']!r} is not a metric of this store's data"
                           + (f"; did you mean {close!r}?" if close else "; see the suggestions as you type"))
                continue
            bounded = t["metric"] not in ("mae", "mse", "rmse", "example_count") and not t["metric"].startswith(
                "count_")  # rates: between 0 and 1
            if bounded and ((t.get("lower") is not None and t["lower"] <= 0)
                            or (t.get("upper") is not None and t["upper"] >= 1)):
                out.append(f"threshold {i}: {t['metric']} is a rate between 0 and 1, so this bound always passes; "
                           "set the value")
        if self._known_features:
            for i, spec in enumerate(pending["slices"], 1):
                if spec["feature"] not in self._known_features:
                    out.append(f"slice {i}: {spec['feature']!r} is not a feature of this store's data; its features: "
                               f"{', '.join(self._known_features)}")
        return out

    @property
    def message(self) -> str:
        """The form's status line as plain text: ``✓ valid``, the first problem in the form, or
        what Save recorded."""
        return html.unescape(re.sub(r"<[^>]+>", "", re.sub(r"<br\s*/?>", "\n", self.status.value)))

    def change_summary(self) -> str:
        return change_summary(self._stored or {}, self.pending())

    def save(self) -> Any:
        """Record the form as a new version of the policy; returns the record (None on an error,
        which the panel shows)."""
        if refuse_if_stale(self, self._store, "policies", self.name, self._version(),
                           f"Policy {self._ref or self.name}"):
            return None
        try:
            pending = self.pending()
            summary = self.change_summary()
            with _session.action_context(source=f"widget PolicyEditor {self._ref or self.name}: {summary}"):
                record = self._store.add_policy(self.name, slices=pending["slices"],
                                                thresholds=pending["thresholds"],
                                                description=pending["description"] or None,
                                                owner=pending["owner"] or None)
        except MlmdMagicError as exc:
            show_error(self, exc)
            return None
        self._stored, self._ref = self._spec_of(record.data), record.ref
        word = "saved as" if record.status == "created" else "unchanged, matches"
        self.refresh()
        self.status.value = f"<span class='mlmd-magic-saved' style='color:green'>✓ {word} {record.ref}</span>"
        self.last_action = f"{word} {record.ref}"
        self.update_fallback()
        return record

    def _empty(self) -> bool:
        """A new policy whose form has no slice and no threshold yet."""
        return self._stored is None and not self.slice_box.children and not self.threshold_box.children

    def __repr__(self) -> str:
        lines = [f"PolicyEditor for {self._ref or self.name + ' (new)'}"]
        if self._empty():
            return "\n".join([*lines, f"  {_EMPTY}", "(an interactive form in JupyterLab, Notebook 7 and VS Code)"])
        try:
            spec = self.pending()
        except MlmdMagicError as exc:
            spec = {"error": str(exc)}
        lines += [f"  {k}: {json.dumps(v)}" for k, v in spec.items()]
        if getattr(self, "last_action", ""):
            lines.append(f"last: {self.last_action}")
        lines.append("(an interactive form in JupyterLab, Notebook 7 and VS Code)")
        return "\n".join(lines)


def _data_vocabulary(store: Store) -> tuple[list[str], list[str]]:
    """What the store's data sources offer a policy: metric names (of the tasks and class names
    of the data sources that name their classes) and numeric feature names. Empty lists when the
    store has no such data: then nothing is known, and nothing is warned about."""
    metrics: dict[str, None] = {}
    features: dict[str, None] = {}
    try:
        with store.unrecorded():
            for ds in store.names("datasources"):
                data = store.record(ds, kind="datasources").data
                label_names = data.get("label_names")
                if label_names:
                    task = "binary" if len(label_names) == 2 else "multiclass"
                    metrics.update(dict.fromkeys(metric_names(task, len(label_names), label_names)))
                features.update(dict.fromkeys(f for f in data.get("features") or {} if f != data.get("label")))
    except MlmdMagicError:
        pass
    return list(metrics), list(features)
