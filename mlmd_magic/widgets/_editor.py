"""The experiment editor: a typed form over an experiment's resolved parameters."""

from __future__ import annotations

import html
import json
from typing import Any

import ipywidgets as w
import traitlets

from ..core.values import apply_overrides, flatten, kept_overrides
from ..errors import MlmdMagicError, RunCancelled, ValidationError
from ..store import Store
from ..store import secrets as _secrets
from ..store import session as _session
from ._fallback import FallbackDisplay, refuse_if_stale
from ._form import change_summary, check_form, show_error
from ._live import StoreWatch, VisibilitySensor


class _TextOrNumber(traitlets.Unicode):
    """A text trait that also takes a number set from Python, kept as its JSON text (``7.5`` ->
    ``"7.5"``): what is shown is exactly what is checked."""

    def validate(self, obj: Any, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = json.dumps(value)
        return super().validate(obj, value)


class NumberField(w.Text):
    """A text field for a number parameter. Its text is read as a JSON number and checked by the
    library's own rule (:func:`mlmd_magic.core.values.kept_kind`), so what is typed is what is
    judged: the browser's number inputs drop what they cannot take (``IntText`` turns a typed
    ``7.5`` into ``75``), a text field shows ``7.5`` and the panel says why it is refused.
    """

    value = _TextOrNumber(help="the number as typed").tag(sync=True)
    whole = False

    def number(self) -> Any:
        """The typed number (an int or a float, as written; a whole number's field takes no float,
        which the library then refuses with the reason).

        Raises
        ------
        ValidationError
            When the text is no number.
        """
        try:
            parsed = json.loads(self.value)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, (int, float)) and not isinstance(parsed, bool):
            return parsed
        example = "a whole number such as 10" if self.whole else "a number such as 0.001 or 1e-3"
        raise ValidationError(f"{self.description}: {self.value!r} is not a number; type {example}")


class IntField(NumberField):
    """The field of a whole-number parameter: ``7.5`` (or ``7.0``) in it is shown invalid."""

    whole = True


class FloatField(NumberField):
    """The field of a real-valued parameter: takes decimals (``0.001``, ``1e-3``) and whole numbers."""


def _input_for(path: str, value: Any) -> w.Widget:
    # continuous_update: validated and diffed as you type, not when the field loses focus
    label = {"description": path, "style": {"description_width": "initial"},
             "layout": w.Layout(width="420px"), "continuous_update": True}
    if isinstance(value, bool):
        return w.Checkbox(value=value, indent=False, **{k: v for k, v in label.items() if k != "continuous_update"})
    # numbers are typed as text checked by the library: a number input would drop a "." it cannot take
    if isinstance(value, int):
        return IntField(value=value, placeholder="a whole number, e.g. 10", **label)
    if isinstance(value, float):
        return FloatField(value=value, placeholder="a number, e.g. 0.001", **label)
    if isinstance(value, str):
        return w.Text(value=value, **label)
    # lists (and nulls) are edited as JSON text, checked as you type
    return w.Text(value=json.dumps(value), placeholder="JSON, e.g. [64, 32]", **label)


def _unflatten_overrides(values: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys whose value differs from the scenario's: the experiment's overrides (each
    checked, and in the kind of the scenario's value, as :meth:`Store.add_experiment` records it)."""
    flat_base = flatten(base)
    kept = kept_overrides(base, values)
    return {k: v for k, v in kept.items() if k not in flat_base or json.dumps(flat_base[k]) != json.dumps(v)}


class ExperimentEditor(FallbackDisplay, w.VBox):
    """Edit one experiment: data source and scenario versions, one typed input per parameter.

    Validation is the library's own (the overrides are applied exactly as
    :meth:`Store.add_experiment` applies them); the diff against the stored version updates as
    you type; "Save as new version" records a new version exactly as ``%%experiment`` would,
    with a source saying which widget and what changed.
    """

    def __init__(self, store: Store, ref: str) -> None:
        self._store = store
        self._record = store.record(ref, kind="experiments")
        data = self._record.data
        self.name = self._record.name
        # the newest version when the panel opened: saving refuses if another one was recorded since
        self._latest = self._record.version
        if "@" in ref:  # an older version opened on purpose: ask for the newest
            with store.unrecorded():
                self._latest = store.record(self.name, kind="experiments").version
        ds_versions = [f"{data['datasource']['name']}@{v}" for v in self._versions("datasources",
                                                                                   data["datasource"]["name"])]
        sc_versions = [f"{data['scenario']['name']}@{v}" for v in self._versions("scenarios",
                                                                                 data["scenario"]["name"])]
        self.header = w.HTML()
        self.datasource = w.Dropdown(options=ds_versions, description="datasource",
                                     value=f"{data['datasource']['name']}@{data['datasource']['version']}")
        self.scenario = w.Dropdown(options=sc_versions, description="scenario",
                                   value=f"{data['scenario']['name']}@{data['scenario']['version']}")
        self.params_box = w.VBox()
        self.status = w.HTML(layout=w.Layout(min_height="1.6em"))
        # room kept for the diff, so that the buttons below do not jump when it appears
        self.diff = w.HTML(layout=w.Layout(min_height="5em"))
        self.progress = w.IntProgress(value=0, min=0, max=1, description="", layout=w.Layout(width="420px",
                                                                                             visibility="hidden"))
        self.progress_label = w.Label()
        self.save_button = w.Button(description="Save as new version", button_style="primary", icon="save",
                                    layout=w.Layout(width="auto"))
        self.train_button = w.Button(description="Train", icon="play")
        self.output = w.Output()
        self.last_run: Any = None  # the run the Train button started last
        self.last_action = ""  # what the panel did last (a save, a training), for its text form
        self.sensor = VisibilitySensor()
        self.inputs: dict[str, w.Widget] = {}
        self._build_inputs(data["params"])
        self.scenario.observe(self._on_scenario, names="value")
        self.datasource.observe(lambda _: self.refresh(), names="value")
        self.save_button.on_click(lambda _: self.save())
        self.train_button.on_click(lambda _: self.train())
        super().__init__([self.sensor, self.header, w.HBox([self.datasource, self.scenario]), self.params_box,
                          self.status, self.diff, w.HBox([self.save_button, self.train_button]),
                          w.HBox([self.progress, self.progress_label]), self.output])
        self.add_class("mlmd-magic-editor")
        self.add_class("mlmd-magic-panel")
        self.refresh()
        # follows the store while seen: a version recorded elsewhere marks the form out of date
        self.watch = StoreWatch(store, self.store_changed, seen=self.sensor.seen, executions=lambda: False)
        self.watch.start()

    def store_changed(self) -> None:
        """Called when the store changed (any process): if a newer version of this experiment
        was recorded since the panel opened, say so now (Save is refused) rather than on Save."""
        if refuse_if_stale(self, self._store, "experiments", self.name, self._latest,
                           f"Experiment {self._record.ref}"):
            self.mark_out_of_date()

    def _versions(self, kind: str, name: str) -> list[int]:
        with self._store.unrecorded():  # the panel's own reads
            return [int(v) for v in self._store.history(name, kind=kind)["version"]]

    def _scenario_params(self) -> dict[str, Any]:
        with self._store.unrecorded():
            return dict(self._store.get_scenario(self.scenario.value)["params"])

    def _build_inputs(self, params: dict[str, Any]) -> None:
        self.inputs = {path: _input_for(path, value) for path, value in flatten(params).items() if path}
        for widget in self.inputs.values():
            widget.observe(lambda _: self.refresh(), names="value")
        self.params_box.children = tuple(self.inputs.values())

    def _on_scenario(self, _: Any) -> None:
        current = self.values(strict=False)
        params = self._scenario_params()
        keep = {k: v for k, v in current.items() if k in flatten(params)}
        try:
            merged = apply_overrides(params, keep)
        except MlmdMagicError:
            merged = params
        self._build_inputs(merged)
        self.refresh()

    def values(self, strict: bool = True) -> dict[str, Any]:
        """Current input values by dotted parameter path (number and JSON fields parsed; with
        ``strict=False`` a field that does not parse is left out)."""
        out: dict[str, Any] = {}
        for path, widget in self.inputs.items():
            value = widget.value
            if isinstance(widget, NumberField):
                try:
                    value = widget.number()
                except ValidationError:
                    if strict:
                        raise
                    continue
            elif isinstance(widget, w.Text) and widget.placeholder.startswith("JSON"):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError as exc:
                    if strict:
                        raise ValidationError(f"{path}: not valid JSON ({exc.msg} at column {exc.colno})") from None
                    continue
            out[path] = value
        return out

    def overrides(self) -> dict[str, Any]:
        """The overrides the form describes, relative to the selected scenario version."""
        return _unflatten_overrides(self.values(), self._scenario_params())

    def pending(self) -> dict[str, Any]:
        """The experiment dict a save would record (validated by the library)."""
        params = apply_overrides(self._scenario_params(), self.overrides())
        with self._store.unrecorded():
            ds = self._store.get_datasource(self.datasource.value)
            sc = self._store.get_scenario(self.scenario.value)
        datasource = {k: ds[k] for k in ("name", "version", "uri", "format", "splits", "label", "features")}
        return {"experiment": self.name, "version": "new", "datasource": datasource,
                "scenario": {"name": sc["name"], "version": sc["version"], "model": sc["model"]},
                "params": params}

    def refresh(self) -> None:
        """Validate the form and update the diff against the stored version; Train trains the
        saved version, so it waits while the form holds changes that are not saved."""
        self.header.value = (f"<b>Experiment {html.escape(self._record.ref)}</b> "
                             f"<i>(editing; saving records version {self._latest + 1} if anything changed)</i>")
        changed = check_form(self, self._record.ref, self._record.data, self.pending, ignore=("version",))
        unsaved = changed is None or bool(changed)
        self.train_button.disabled = unsaved
        self.train_button.tooltip = (f"save first: Train trains {self._record.ref} as saved" if unsaved
                                     else f"train {self._record.ref}")

    def change_summary(self) -> str:
        return change_summary(self._record.data, self.pending(), ignore=("version",))

    def save(self) -> Any:
        """Record the form as a new experiment version (as ``%%experiment`` would); returns the record
        (None on an error, which the panel shows — also when another version was recorded since
        the panel opened, which saving would undo)."""
        if refuse_if_stale(self, self._store, "experiments", self.name, self._latest, f"Experiment {self._record.ref}"):
            return None
        try:
            summary = self.change_summary()
            with _session.action_context(source=f"widget ExperimentEditor {self._record.ref}: {summary}"):
                record = self._store.add_experiment(
                    self.name, datasource=self.datasource.value, scenario=self.scenario.value,
                    overrides=self.overrides(), description=self._record.extra.get("description") or None)
        except MlmdMagicError as exc:
            show_error(self, exc)
            return None
        self._record = record
        self._latest = max(self._latest, record.version)
        word = "saved as" if record.status == "created" else "unchanged, matches"
        self.refresh()
        self.status.value = f"<span class='mlmd-magic-saved' style='color:green'>✓ {word} {record.ref}</span>"
        self.last_action = f"{word} {record.ref}" + (f" ({summary})" if record.status == "created" else "")
        self.update_fallback()
        return record

    def train(self) -> Any:
        """Train the edited experiment's saved version; progress and the run appear below. Refused
        (the panel says why) while the form holds changes that are not saved."""
        bar, label = self.progress, self.progress_label
        self.refresh()
        if self.train_button.disabled:
            self.status.value += (f"<br><span style='color:crimson'>✗ not trained: Train trains "
                                  f"{html.escape(self._record.ref)} as saved; save the changes first</span>")
            return None

        class Progress:  # the panel's own bar: a display handle would not move inside an Output widget
            def on_train_begin(self, info: dict[str, Any]) -> None:
                bar.max, bar.value = max(int(info.get("epochs", 1)), 1), 0
                bar.layout.visibility = "visible"
                label.value = f"training on {info.get('device')}: epoch 0/{bar.max}"

            def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
                bar.value = epoch + 1
                shown = "  ".join(f"{k}={v:.4g}" for k, v in sorted(logs.items()))
                label.value = f"epoch {epoch + 1}/{bar.max}  {shown}"

        with self.output:
            try:
                with _session.action_context(source=f"widget ExperimentEditor {self._record.ref}: train"):
                    run = self._store.train(self._record.ref, callbacks=[Progress()], progress=False)
            except MlmdMagicError as exc:
                show_error(self, exc)
                return None
            except RunCancelled as stopped:  # a stop (Ctrl-C, a cancel) is said calmly, as in a cell
                line = _secrets.redact(str(stopped))
                self.status.value = html.escape(line)
                label.value = line
                self.last_action = line
                self.update_fallback()
                return None
            from IPython.display import display

            display(run)
        label.value = f"{run.state.lower()}: {run.experiment}"
        self.last_run = run
        self.last_action = f"trained {run.name or run.experiment} (run {run.id}): {run.state}"
        self.update_fallback()
        return run

    def __repr__(self) -> str:
        lines = [f"ExperimentEditor for {self._record.ref}: datasource {self.datasource.value}, "
                 f"scenario {self.scenario.value}"]
        lines += [f"  {path} = {json.dumps(widget.value) if not isinstance(widget.value, str) else widget.value}"
                  for path, widget in self.inputs.items()]
        if getattr(self, "last_action", ""):
            lines.append(f"last: {self.last_action}")
        lines.append("(an interactive form in JupyterLab, Notebook 7 and VS Code)")
        return "\n".join(lines)
