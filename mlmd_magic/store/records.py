"""Versioned records: data sources, scenarios and experiments, each version an MLMD artifact.

* one artifact per record version, named ``NAME@VERSION`` within its type (MLMD's unique
  ``(type, name)`` index settles races between writers), with ``external_id``
  ``TYPE:NAME:CONTENT_HASH`` so that identical content is found in one indexed lookup;
* one context per record name (``mlmd_magic.Experiment`` context ``t21-baseline``) holding
  its versions, so the latest version is one indexed lookup, flat as the store grows;
* records are immutable: a change is a new version; re-adding identical content is CACHED.

Everything returned is plain Python (:class:`~mlmd_magic.Record`, dicts, DataFrames).
"""

from __future__ import annotations

import builtins
import contextlib
import difflib
import json
import random
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ..backend.listing import Scan, page_rows
from ..backend.properties import created, flat_params, name_of, set_properties, text
from ..backend.recorder import Action, Conflict, Recorder
from ..backend.types import full, protos
from ..core.datafiles import FORMATS, file_problems, inspect_datasource, normalise_uri, verify_files
from ..core.evaluation import Threshold, check_metric_name, check_slice_names, parse_slices, parse_thresholds
from ..core.names import TrialRef, check_name, experiment_ref, is_trial, parse_ref
from ..core.query import Where, needed_fields
from ..core.record import Record
from ..core.specs import export_spec, spec_arguments
from ..core.values import (
    KIND_TYPES,
    Diff,
    apply_overrides,
    canonical_json,
    check_unambiguous_keys,
    check_value,
    checked_params,
    content_hash,
    diff_values,
    flatten,
    kept_overrides,
    normalise_kind,
    singular,
    split_kind,
    to_plain,
    with_article,
)
from ..errors import AmbiguousRefError, MlmdMagicError, NotFoundError, StoreError, ValidationError
from ..trainer import builders
from .filters import RECORD_FIELDS, record_plan
from .fromtfx import examples_source, merge_features

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LABEL", "Records"]

MAX_TEXT = 100_000
_PLURAL = {"datasources": "data sources", "scenarios": "scenarios", "experiments": "experiments",
           "policies": "policies", "sweeps": "sweeps"}
LABEL = {"datasources": "data source", "scenarios": "scenario", "experiments": "experiment", "policies": "policy",
         "sweeps": "sweep"}
# the versioned kinds: the three records, and sweeps (written by store.sweeps through create_version)
_TYPES = {**KIND_TYPES, "sweeps": "Sweep"}
_CREATE_RETRIES = 500
_CONTENDED_FOR = 60.0  # seconds a record stays "contended" after a lost race


class Records:
    """Reads and writes versioned records through a :class:`~mlmd_magic.backend.recorder.Recorder`."""

    def __init__(self, recorder: Recorder, record_lock: Callable[[str], AbstractContextManager[bool]]) -> None:
        self.recorder = recorder
        self._record_lock = record_lock
        self._latest_seen: dict[tuple[str, str], Any] = {}  # (kind, name) -> newest version seen
        self._contended: dict[str, float] = {}  # record key -> when a write of it last lost a race

    @property
    def mlmd(self) -> Any:
        return self.recorder.mlmd

    def add_datasource(
        self,
        name: str,
        *,
        uri: str | None = None,
        format: str | None = None,
        splits: dict[str, str] | None = None,
        label: str,
        description: str | None = None,
        features: dict[str, Any] | None = None,
        label_names: Sequence[str] | None = None,
        from_artifact: int | str | None = None,
    ) -> Record:
        """See :meth:`mlmd_magic.Store.add_datasource`."""
        args = {"name": name, "uri": uri, "format": format, "splits": splits, "label": label,
                "description": description, "features": features, "label_names": label_names,
                "from_artifact": from_artifact}
        with self.recorder.action("RegisterDataSource", args) as act:
            check_name(name, "data source name")
            source = None
            if from_artifact is not None:
                given = [k for k, v in (("uri", uri), ("format", format), ("splits", splits)) if v is not None]
                if given:
                    raise ValidationError(f"from_artifact gives the files; drop {', '.join(given)}")
                source = examples_source(self.mlmd, from_artifact)
                act.inputs.append(source.artifact)  # lineage runs from the pipeline's ExampleGen through us
                uri, format, splits = source.uri, "tfrecord", source.splits
            elif uri is None or format is None or splits is None:
                raise ValidationError("a data source needs uri, format and splits, or from_artifact=ID (an "
                                      "Examples artifact, e.g. TFX's)")
            if format not in FORMATS:
                raise ValidationError(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")
            if not isinstance(label, str) or not label:
                raise ValidationError("label must name the label feature, column or array, e.g. label='label'")
            if not isinstance(splits, dict) or not splits:
                raise ValidationError(
                    "splits must map split names to files, globs or folders, e.g. {'train': 'train/*.tfrecord'}"
                )
            for split, pattern in splits.items():
                check_name(split, "split name")
                if not isinstance(pattern, str) or not pattern:
                    raise ValidationError(f"split {split!r} must map to a file, glob or folder name")
            _check_text(description, "description")
            if features is not None:
                if not isinstance(features, dict):
                    raise ValidationError("features must map feature names to their dtype/shape")
                check_value(features, "features")
                check_unambiguous_keys(features, "features")
            names = _check_label_names(label_names)
            folder = normalise_uri(uri)
            summary = inspect_datasource(folder, format, splits, label)
            if names is not None:
                _check_label_names_cover(names, {s: v.labels for s, v in summary.splits.items()})
            if features is None and source is not None:
                if source.schema is not None and label not in source.schema:
                    raise ValidationError(f"label {label!r} is not in the pipeline's schema (Schema "
                                          f"#{source.schema_artifact}); its features: "
                                          f"{', '.join(sorted(source.schema))}")
                features = merge_features(source.schema, summary.features, label)
            content = {
                "uri": folder,
                "format": format,
                "splits": dict(sorted(splits.items())),
                "label": label,
                "features": to_plain(features) if features is not None else summary.features,
                "fingerprint": summary.fingerprint,
                "description": description or "",
                **({"label_names": names} if names is not None else {}),  # absent: hashes as before
                **({"from_artifact": source.artifact.id} if source is not None else {}),
            }
            stats = {
                "example_counts": {s: v.examples for s, v in summary.splits.items()},
                "label_distribution": {s: v.labels for s, v in summary.splits.items()},
            }

            def build(artifact: Any) -> None:
                artifact.uri = folder
                set_properties(artifact, format=format, splits=canonical_json(content["splits"]), label=label,
                       features=canonical_json(content["features"]), fingerprint=summary.fingerprint,
                       example_counts=canonical_json(stats["example_counts"]),
                       label_distribution=canonical_json(stats["label_distribution"]),
                       files=canonical_json(summary.files),  # what check_files compares before a run
                       label_names=canonical_json(names) if names is not None else None)

            return self.create(act, "datasources", name, content, build)

    def add_scenario(
        self, name: str, *, model: str, params: dict[str, Any], description: str | None = None
    ) -> Record:
        """See :meth:`mlmd_magic.Store.add_scenario`."""
        args = {"name": name, "model": model, "params": params, "description": description}
        with self.recorder.action("AddScenario", args) as act:
            check_name(name, "scenario name")
            check_name(model, "model builder name")
            known = builders()
            if model not in known:
                close = difflib.get_close_matches(model, known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ValidationError(
                    f"no model builder is named {model!r}; {hint}known builders: {', '.join(known)}. Register yours "
                    "first with @mlmd_magic.trainer.register_model(name) (in this kernel), then define the scenario")
            if not isinstance(params, dict):
                raise ValidationError("params must be a mapping, e.g. {'hidden': [64, 32], 'epochs': 10}")
            params_plain = checked_params(params, "params")  # checked, and copied as stored
            _check_text(description, "description")
            params_json = canonical_json(params)  # stored and sized as is
            _check_size_text(params_json, "params")
            content = {"model": model, "params": params, "description": description or ""}

            def build(artifact: Any) -> None:
                set_properties(artifact, model=model, params=params_json)

            def written(artifact: Any) -> dict[str, Any]:  # what data() reads back, from what was written
                return {"name": name, "version": artifact.properties["version"].int_value, "model": model,
                        "params": params_plain, "description": description or ""}

            return self.create(act, "scenarios", name, content, build, written=written)

    def experiment(
        self,
        name: str,
        *,
        datasource: str,
        scenario: str,
        overrides: dict[str, Any] | None = None,
        description: str | None = None,
    ) -> Record:
        """See :meth:`mlmd_magic.Store.add_experiment`."""
        args = {"name": name, "datasource": datasource, "scenario": scenario,
                "overrides": overrides, "description": description}
        with self.recorder.action("DefineExperiment", args) as act:
            check_name(name, "experiment name")
            content, build = self._experiment_content(act, datasource, scenario, overrides, description)
            return self.create(act, "experiments", name, content, build)

    def _experiment_content(self, act: Action, datasource: str, scenario: str, overrides: dict[str, Any] | None,
                            description: str | None, trial: TrialRef | None = None) -> tuple[dict[str, Any], Any]:
        """An experiment version's content and the ``build`` that writes it into an artifact; the
        data source and scenario versions it pins become ``act``'s inputs."""
        _check_text(description, "description")
        ds_art = self.resolve("datasources", datasource)
        sc_art = self.resolve("scenarios", scenario)
        act.inputs += [ds_art, sc_art]
        ds = self.data("datasources", ds_art)
        sc = self.data("scenarios", sc_art)
        overrides = to_plain(overrides) if overrides is not None else {}
        _check_size(overrides, "overrides")
        overrides = kept_overrides(sc["params"], overrides)  # each value in the kind of the one it replaces
        params = apply_overrides(sc["params"], overrides)
        ds_ref, sc_ref = f"{ds['name']}@{ds['version']}", f"{sc['name']}@{sc['version']}"
        content = {"datasource": ds_ref, "scenario": sc_ref, "overrides": overrides,
                   "description": description or ""}
        resolved = {
            "datasource": {k: ds[k] for k in ("name", "version", "uri", "format", "splits", "label", "features")},
            "scenario": {"name": sc["name"], "version": sc["version"], "model": sc["model"]},
            "params": params,
        }

        def build(artifact: Any) -> None:
            set_properties(artifact, datasource=ds_ref, scenario=sc_ref, overrides=canonical_json(overrides),
                           params=canonical_json(params), model=sc["model"], resolved=canonical_json(resolved),
                           trial=f"{trial.sweep}#{trial.number}" if trial is not None else None,
                           base=str(trial.base) if trial is not None else None)

        return content, build

    def define_trial(self, base: str, sweep: str, number: int, overrides: dict[str, Any]) -> str:
        """Experiment version ``base`` (``NAME@N``) with a trial's ``overrides``, as trial ``number``
        of sweep version ``sweep`` (``SWEEP@V``): an experiment version named
        ``NAME@N~SWEEP@V#K`` in the sweep's context, never in the record's, so ``NAME`` never
        gives it. A trial whose content equals an earlier trial of the same sweep version is that
        trial (its run is then CACHED). Gives the trial's reference."""
        base_art = self.resolve("experiments", base)
        p = base_art.properties
        trial = TrialRef(parse_ref(str(base_art.name)), parse_ref(sweep), number)
        args = {"base": str(trial.base), "sweep": sweep, "trial": number, "overrides": overrides}
        with self.recorder.action("DefineExperiment", args) as act:
            merged = json.loads(text(p, "overrides") or "{}")
            merged.update(to_plain(overrides))
            content, build = self._experiment_content(act, text(p, "datasource"), text(p, "scenario"), merged,
                                                      text(p, "description") or None, trial)
            prefix = f"{trial.base}~{trial.sweep}"
            external_id = f"{full('Experiment')}:{prefix}:{content_hash({'kind': 'experiments', **content})}"
            act.contexts.append(("Sweep", trial.sweep.name))
            for _ in range(3):
                found = self.by_external_id(external_id)
                if found:  # an earlier trial of this sweep version had the same values
                    act.outputs = [found[0]]
                    act.state, act.outcome = "CACHED", "unchanged"
                    self.recorder.commit(act)
                    return str(found[0].name)
                pb = protos()
                art = pb.Artifact(type_id=self.recorder.types.artifacts["Experiment"], name=str(trial),
                                  external_id=external_id, state=pb.Artifact.LIVE)
                set_properties(art, version=trial.base.version, description=text(p, "description") or None)
                build(art)
                flat_params(art)
                act.outputs = [art]
                act.state, act.outcome = "COMPLETE", "created"
                try:
                    self.recorder.commit(act)
                except Conflict:  # another worker wrote these values (or this trial) first: look again
                    act.outputs = []
                    taken = self.mlmd.get_artifact_by_type_and_name(full("Experiment"), str(trial))
                    if taken is not None and taken.external_id != external_id:
                        raise StoreError(f"trial {trial} is already recorded with other values (its sweep's "
                                         "study was made again?); define the sweep again under another name or "
                                         "version") from None
                    continue
                return str(trial)
            raise StoreError(f"could not write trial {trial}: other workers kept writing it; try again")

    def by_external_id(self, external_id: str) -> builtins.list[Any]:
        """The artifacts written with ``external_id`` (none or one)."""
        from ml_metadata import errors as mlmd_errors

        try:
            return builtins.list(self.mlmd.get_artifacts_by_external_ids([external_id]))
        except mlmd_errors.NotFoundError:
            return []

    def add_policy(self, name: str, *, thresholds: Sequence[Any], slices: Sequence[Any] | None = None,
                   description: str | None = None, owner: str | None = None) -> Record:
        """See :meth:`mlmd_magic.Store.add_policy`."""
        args = {"name": name, "thresholds": thresholds, "slices": slices, "description": description,
                "owner": owner}
        with self.recorder.action("AddPolicy", args) as act:
            check_name(name, "policy name")
            _check_text(description, "description")
            _check_text(owner, "owner")
            plain_slices, plain_thresholds = check_policy(slices, thresholds)
            content = {"slices": plain_slices, "thresholds": plain_thresholds, "description": description or "",
                       "owner": owner or ""}

            def build(artifact: Any) -> None:
                set_properties(artifact, slices=canonical_json(plain_slices),
                               thresholds=canonical_json(plain_thresholds), owner=owner or None)

            return self.create(act, "policies", name, content, build)

    def get_experiment(self, ref: str) -> dict[str, Any]:
        """See :meth:`mlmd_magic.Store.get_experiment`."""
        return self.fetch("experiments", ref, "FetchExperiment").to_dict()

    def get_datasource(self, ref: str) -> dict[str, Any]:
        """See :meth:`mlmd_magic.Store.get_datasource`."""
        return self.fetch("datasources", ref, "FetchDataSource").to_dict()

    def get_scenario(self, ref: str) -> dict[str, Any]:
        """See :meth:`mlmd_magic.Store.get_scenario`."""
        return self.fetch("scenarios", ref, "FetchScenario").to_dict()

    def get(self, ref: str, kind: str | None = None) -> Record:
        """See :meth:`mlmd_magic.Store.record`."""
        kind, ref = split_kind(ref, kind)
        kind = self.kind_of(ref) if kind is None else kind
        fetch = {"experiments": "FetchExperiment", "datasources": "FetchDataSource", "scenarios": "FetchScenario",
                 "policies": "FetchPolicy"}
        return self.fetch(kind, ref, fetch[kind])

    def kind_of(self, ref: str) -> str:
        """See :meth:`mlmd_magic.Store.kind_of`."""
        named, ref = split_kind(ref)
        if is_trial(ref) and named in (None, "experiments"):
            return "experiments"  # only experiments have trials
        name = parse_ref(ref).name
        found = [kind for kind in ([named] if named else KIND_TYPES) if self.latest(kind, name) is not None]
        if not found:
            what = LABEL[named] if named else "data source, scenario, experiment or policy"
            raise NotFoundError(f"no {what} is named {name!r}{self.suggest(name, named)}")
        if len(found) > 1:
            raise AmbiguousRefError(
                f"{name!r} names {' and '.join(with_article(LABEL[k]) for k in found)}; say which with kind=... "
                f"or a prefix ({' or '.join(f'{singular(k)}:{name}' for k in found)})"
            )
        return found[0]

    def names(self, kind: str | None = None) -> builtins.list[str]:
        """See :meth:`mlmd_magic.Store.names`."""
        kinds = [normalise_kind(kind)] if kind else list(KIND_TYPES)
        out: set[str] = set()
        for k in kinds:
            out.update(c.name for c in self.mlmd.get_contexts_by_type(full(KIND_TYPES[k])))
        return sorted(out)

    def export(self, ref: str, kind: str | None = None) -> dict[str, Any]:
        """See :meth:`mlmd_magic.Store.export`."""
        return export_spec(self.get(ref, kind=kind))

    def import_records(self, specs: Sequence[Any], where: str = "the records") -> builtins.list[Record]:
        """See :meth:`mlmd_magic.Store.import_records`.

        Every spec is checked before any is written, by the checks that need neither the store nor
        the data files: its kind, name and keys, its texts, a policy's slices and thresholds, a
        scenario's parameters, a data source's features and class names.
        What only writing finds (data files, a reference to a missing record, an unknown model
        builder) stops the import at that record, and the error names the records imported
        before it and those not imported.
        """
        if isinstance(specs, dict) or not isinstance(specs, (builtins.list, tuple)):
            specs = [specs]
        checked = []
        for i, spec in enumerate(specs, 1):
            label = f"{where} (record {i})" if len(specs) > 1 else where
            if not isinstance(spec, dict) or "kind" not in spec or "name" not in spec:
                raise ValidationError(f"{label} needs 'kind' and 'name' keys, as written by export")
            kind, name = str(spec["kind"]), str(spec["name"])
            try:
                kind = normalise_kind(kind)
                _check_import(kind, name, spec_arguments(kind, spec, label))
            except ValidationError as exc:
                if len(specs) > 1:
                    said = str(exc) if label in str(exc) else f"{label}: {exc}"
                    exc.args = (f"{said}; nothing was imported",)
                raise
            checked.append((kind, name, spec, label))
        records: builtins.list[Record] = []
        for i, (kind, name, spec, label) in enumerate(checked, 1):
            try:
                records.append(self.add(kind, name, spec, label))
            except MlmdMagicError as exc:
                if len(checked) > 1:  # the records before it stay: say which
                    said = str(exc) if label in str(exc) else f"{label}: {exc}"
                    done = ", ".join(f"{LABEL[r.kind]} {r.ref}" for r in records)
                    rest = f"record {i}" if i == len(checked) else f"records {i} to {len(checked)}"
                    exc.args = (f"{said}; imported before it: {done}; not imported: {rest}" if records
                                else f"{said}; nothing was imported",)
                raise
        return records

    def add(self, kind: str, name: str, spec: Any, where: str = "the cell body") -> Record:
        """See :meth:`mlmd_magic.Store.add`."""
        kind = normalise_kind(kind)
        args = spec_arguments(kind, spec, where)
        if kind == "datasources":
            return self.add_datasource(name, **args)
        if kind == "scenarios":
            return self.add_scenario(name, **args)
        if kind == "policies":
            return self.add_policy(name, **args)
        return self.experiment(name, **args)

    def table(self, kind: str, where: Where, limit: int | None, offset: int, all_versions: bool,
              trials: bool = False) -> pd.DataFrame:
        """A table of records of ``kind`` whose row view passes the filter ``where`` (see :meth:`Store.ls`).

        Versions are read newest first a page at a time, in batches (one MLMD call per page,
        never one per record); a name's newest version is its latest. A sweep's trials (named
        ``NAME@N~SWEEP@V#K``) are no name's latest: they are rows of their own with ``trials``.
        """
        seen: set[str] = set()
        page = 100 if limit is None else min(max(limit + offset, 20), 500)
        type_id = self.recorder.types.artifacts[KIND_TYPES[kind]]
        fields = needed_fields(where.keys, _VIEW_FIELDS[kind])
        # walked newest first; a rare filter asks MLMD for the versions it may pass (store/filters.py)
        scan = Scan(self.mlmd, "artifacts", full(KIND_TYPES[kind]), type_id, page,
                    record_plan(self.mlmd, kind, KIND_TYPES[kind], type_id, where, not all_versions, trials),
                    None if limit is None else limit + offset)

        def listed(batch: Sequence[Any]) -> list[Any]:
            """The versions of ``batch`` that are rows: a name's newest (every version with
            ``all_versions``), a sweep's trial only with ``trials``."""
            out = []
            for art in batch:
                name = name_of(art)
                if "~" in art.name:  # a sweep's trial
                    if not trials:
                        continue
                    name = art.name
                if not all_versions:
                    if name in seen:
                        continue
                    seen.add(name)
                out.append(art)
            return out

        if where.keys:
            arts = page_rows(scan, listed, where, limit, offset, page,
                             view=lambda art: self._filter_view(kind, art, None if where.sampling else fields))
        else:
            arts = page_rows(scan, listed, lambda _: True, limit, offset, page)
        rows = [self._table_row(kind, art) for art in arts]
        return _frame(kind, rows)

    def _table_row(self, kind: str, art: Any) -> dict[str, Any]:
        """A version's row in a listing. An experiment's row comes from its own properties (the
        references, model and parameters it was written with), not from its resolved data source,
        whose feature schema can be long."""
        if kind == "experiments" and all(key in art.properties for key in ("datasource", "scenario", "params")):
            view = self._filter_view(kind, art)
            return {"name": view["name"], "version": view["version"], "trial": view["trial"],
                    "same_as": _same_as(art), "datasource": view["datasource"],
                    "scenario": view["scenario"], "model": view["model"],
                    "overrides": text(art.properties, "overrides") or "{}",
                    _PARAMS: flatten(view["params"]), "created": created(art)}
        return _list_row(kind, self.data(kind, art), art)

    def _filter_view(self, kind: str, art: Any, fields: frozenset[str] | None = None) -> dict[str, Any]:
        """What a ``where`` filter sees of a version: the parts ``fields`` names (all when None),
        read from the properties they need only. Reading a property of a protobuf message costs
        about a microsecond, parsing JSON more: over thousands of versions a filter looks at, an
        experiment's resolved data source (its whole feature schema) is never parsed."""
        if kind != "experiments":
            return self.data(kind, art)
        p = art.properties
        if fields is None:
            fields = _VIEW_FIELDS[kind]
        view: dict[str, Any] = {}
        if "experiment" in fields or "name" in fields:
            view["experiment"] = view["name"] = name_of(art)
        if "version" in fields:
            view["version"] = parse_ref(text(p, "base")).version if "trial" in p else p["version"].int_value
        for key in ("datasource", "scenario", "model"):
            if key in fields:
                view[key] = text(p, key)
        if "trial" in fields:  # a trial's reference (what get and train take), else ""
            view["trial"] = str(art.name) if "trial" in p else ""
        if "params" in fields:
            view["params"] = json.loads(text(p, "params") or "{}")
        return view

    def history(self, ref: str, kind: str | None = None) -> pd.DataFrame:
        """See :meth:`mlmd_magic.Store.history`."""
        with self.recorder.action("ShowHistory", {"ref": ref, "kind": kind}) as act:
            kind, ref = split_kind(ref, kind)
            kind = self.kind_of(ref) if kind is None else kind
            name = parse_ref(ref).name
            arts = self.versions(kind, name)
            if not arts:
                raise NotFoundError(f"no {LABEL[kind]} named {name!r}{self.suggest(name, kind)}")
            act.inputs += arts
            act.outcome = f"{len(arts)} versions"
            act.contexts.append((KIND_TYPES[kind], name))
            rows = [_list_row(kind, self.data(kind, a), a) for a in arts]
            return _frame(kind, rows)

    def diff(self, ref_a: str, ref_b: str, kind: str | None = None) -> Diff:
        """See :meth:`mlmd_magic.Store.diff`."""
        with self.recorder.action("DiffRecords", {"ref_a": ref_a, "ref_b": ref_b, "kind": kind}) as act:
            given_a, given_b = ref_a, ref_b
            named_a, ref_a = split_kind(ref_a, kind)
            named_b, ref_b = split_kind(ref_b, kind)
            kind_a = named_a or (self.kind_of(ref_a) if named_b is None else named_b)
            kind_b = named_b or (self.kind_of(ref_b) if named_a is None else named_a)
            if kind_a != kind_b:
                raise ValidationError(f"{given_a!r} is {with_article(LABEL[kind_a])} and {given_b!r} "
                                      f"{with_article(LABEL[kind_b])}; diff compares records of one kind")
            kind = kind_a
            art_a, art_b = self.resolve(kind, ref_a), self.resolve(kind, ref_b)
            act.inputs += [art_a, art_b]
            a, b = self.data(kind, art_a), self.data(kind, art_b)
            act.outcome = "compared"
            if kind == "experiments":
                return diff_values(experiment_ref(a), a, experiment_ref(b), b)
            return diff_values(f"{a['name']}@{a['version']}", a, f"{b['name']}@{b['version']}", b)

    # ------------------------------------------------------------------ internals: reading

    def _context_id(self, kind: str, name: str) -> int | None:
        """Id of the context grouping every version of record ``name`` (an indexed lookup, cached)."""
        return self.recorder.context_id(_TYPES[kind], name)

    def latest(self, kind: str, name: str) -> Any | None:
        """The latest version of ``name``: two indexed lookups, flat as the store grows.

        A record's context holds its versions (and, for experiments, the data source and
        scenario versions each one pinned, which are older than it), so the newest artifact
        attributed to it is the latest version; the full scan below is a fallback for stores
        where something else attributed newer artifacts to it.
        """
        from ml_metadata.metadata_store import metadata_store as ms

        cached = self._latest_seen.get((kind, name))
        if cached is not None:
            # Versions only ever grow: probe the unique name of the next one (one indexed
            # lookup) instead of asking the context again.
            while True:
                following = self.mlmd.get_artifact_by_type_and_name(
                    full(_TYPES[kind]), f"{name}@{cached.properties['version'].int_value + 1}")
                if following is None:
                    return cached
                cached = self._latest_seen[(kind, name)] = following
        cid = self._context_id(kind, name)
        if cid is None:
            return None
        type_id = self.recorder.types.artifacts[_TYPES[kind]]
        newest = self.mlmd.get_artifacts_by_context(
            cid, list_options=ms.ListOptions(limit=3, order_by=ms.OrderByField.ID, is_asc=False))
        found = next((a for a in newest if a.type_id == type_id), None)
        if found is None:
            versions = self.versions(kind, name)
            found = versions[-1] if versions else None
        if found is not None:
            self._latest_seen[(kind, name)] = found
        return found

    def versions(self, kind: str, name: str) -> builtins.list[Any]:
        cid = self._context_id(kind, name)
        if cid is None:
            return []
        type_id = self.recorder.types.artifacts[_TYPES[kind]]
        arts = [a for a in self.mlmd.get_artifacts_by_context(cid) if a.type_id == type_id]
        return sorted(arts, key=lambda a: a.properties["version"].int_value)

    def resolve(self, kind: str, ref: str) -> Any:
        named, rest = split_kind(ref)
        if named is not None:
            if named != kind:
                raise ValidationError(f"{ref!r} names {with_article(LABEL[named])}, not {with_article(LABEL[kind])}")
            ref = rest
        if kind == "experiments" and is_trial(ref):
            trial = TrialRef.parse(ref)
            art = self.mlmd.get_artifact_by_type_and_name(full("Experiment"), str(trial))
            if art is None:
                raise NotFoundError(f"sweep {trial.sweep} has no trial {trial}; see its trials with "
                                    f"%mlmd compare sweep:{trial.sweep} or store.sweep_results({str(trial.sweep)!r})")
            return art
        parsed = parse_ref(ref, f"{LABEL[kind]} reference")
        if parsed.version is None:
            art = self.latest(kind, parsed.name)
            if art is None:
                raise NotFoundError(f"no {LABEL[kind]} named {parsed.name!r}{self.suggest(parsed.name, kind)}")
            return art
        art = self.mlmd.get_artifact_by_type_and_name(full(_TYPES[kind]), str(parsed))
        if art is None:
            latest = self.latest(kind, parsed.name)
            if latest is None:
                raise NotFoundError(f"no {LABEL[kind]} named {parsed.name!r}{self.suggest(parsed.name, kind)}")
            top = latest.properties["version"].int_value
            raise NotFoundError(
                f"{LABEL[kind]} {parsed.name!r} has no version {parsed.version}; its versions are 1 to {top}"
            )
        return art

    def check_files(self, datasource: Any) -> None:
        """Raise :class:`~mlmd_magic.errors.DataSourceError` when the files of data source version
        ``datasource`` (an artifact) are not what was registered: nothing is trained or evaluated
        against content its record does not describe."""
        p = datasource.properties
        files = text(p, "files")
        verify_files(datasource.uri, p["format"].string_value, json.loads(p["splits"].string_value),
                     json.loads(files) if files else None, p["fingerprint"].string_value, datasource.name)

    def file_problems(self, datasource: Any) -> list[str]:
        """What differs between the files of data source version ``datasource`` (an artifact) now and
        its record, one line per split and file; empty when nothing does."""
        p = datasource.properties
        files = text(p, "files")
        return file_problems(datasource.uri, p["format"].string_value, json.loads(p["splits"].string_value),
                             json.loads(files) if files else None, p["fingerprint"].string_value)

    def suggest(self, name: str, kind: str | None = None) -> str:
        known = (sorted(c.name for c in self.mlmd.get_contexts_by_type(full(_TYPES[kind]))) if kind == "sweeps"
                 else self.names(kind))
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        if close:
            return f"; did you mean {' or '.join(repr(c) for c in close)}?"
        if kind == "sweeps":
            return f"; the sweeps: {', '.join(known)}" if known else "; there is no sweep yet"
        if kind:
            return f"; see the {_PLURAL[kind]} with %mlmd ls {kind} or store.ls({kind!r})"
        return ""

    def data(self, kind: str, art: Any) -> dict[str, Any]:
        p = art.properties
        name, version = name_of(art), p["version"].int_value
        if kind == "experiments":
            resolved = json.loads(p["resolved"].string_value)
            if "trial" in p:  # a sweep's trial: the base version it varies, and its own reference
                base = parse_ref(text(p, "base"))
                return {"experiment": base.name, "version": base.version, "trial": str(art.name), **resolved}
            return {"experiment": name, "version": version, **resolved}
        if kind == "scenarios":
            return {"name": name, "version": version, "model": p["model"].string_value,
                    "params": json.loads(p["params"].string_value), "description": text(p, "description")}
        if kind == "policies":
            return {"name": name, "version": version, "owner": text(p, "owner"),
                    "description": text(p, "description"), "slices": json.loads(text(p, "slices") or "[]"),
                    "thresholds": json.loads(text(p, "thresholds") or "[]")}
        return {
            "name": name, "version": version, "uri": art.uri, "format": p["format"].string_value,
            "splits": json.loads(p["splits"].string_value), "label": p["label"].string_value,
            "features": json.loads(p["features"].string_value),
            "description": text(p, "description"), "fingerprint": p["fingerprint"].string_value,
            "examples": json.loads(p["example_counts"].string_value),
            "label_distribution": json.loads(p["label_distribution"].string_value),
            "label_names": json.loads(text(p, "label_names") or "null"),
        }

    def record(self, kind: str, art: Any, status: str, data: dict[str, Any] | None = None) -> Record:
        """The record of version ``art``; ``data`` (when given) is what :meth:`data` would read from it."""
        p = art.properties
        extra: dict[str, Any] = {}
        if kind == "experiments":
            extra = {"description": text(p, "description"),
                     "overrides": json.loads(p["overrides"].string_value or "{}")}
        if "same_as" in p:
            extra["same_as"] = f"{name_of(art)}@{p['same_as'].int_value}"
        if data is None:
            data = self.data(kind, art)
        trial = "trial" in p
        return Record(
            kind=kind,
            name=name_of(art),
            version=parse_ref(text(p, "base")).version or 0 if trial else p["version"].int_value,
            id=art.id,
            created=created(art),
            data=data,
            status=status,
            extra=extra,
            trial=str(art.name) if trial else "",
        )

    def context_of(self, kind: str, art: Any) -> tuple[str, str]:
        """The context grouping version ``art``: its record name's, or a trial's sweep's."""
        if "trial" in art.properties:
            return "Sweep", parse_ref(text(art.properties, "trial").partition("#")[0]).name
        return _TYPES[kind], name_of(art)

    def fetch(self, kind: str, ref: str, action: str) -> Record:
        with self.recorder.action(action, {"ref": ref}) as act:
            art = self.resolve(kind, ref)
            act.inputs.append(art)
            act.contexts.append(self.context_of(kind, art))
            act.outcome = "fetched"
            return self.record(kind, art, "fetched")

    # ------------------------------------------------------------------ internals: writing

    def create(self, act: Action, kind: str, name: str, content: dict[str, Any], build: Any,
               written: Callable[[Any], dict[str, Any]] | None = None) -> Record:
        """Write ``content`` as a new version of ``name`` unless an identical version exists.

        ``written(artifact)`` gives a new version's data from the values just written (equal to
        what :meth:`data` reads back, without parsing it again)."""
        art, status = self.create_version(act, kind, name, content, build)
        return self.record(kind, art, status, written(art) if written is not None and status == "created" else None)

    def create_version(self, act: Action, kind: str, name: str, content: dict[str, Any], build: Any
                       ) -> tuple[Any, str]:
        """As :meth:`create`, for any versioned kind (``sweeps`` too): gives the version's artifact
        and ``"created"`` or ``"unchanged"``; ``act`` is committed (COMPLETE or CACHED)."""
        type_short = _TYPES[kind]
        digest = content_hash({"kind": kind, **content})  # the canonical JSON of the whole content
        external_id = f"{full(type_short)}:{name}:{digest}"
        act.contexts.append((type_short, name))
        key = f"{type_short}:{name}"
        tries = 0
        wanted = None  # the version number the optimistic try (after ``cached``) tried to write
        if self._contended.get(key, -_CONTENDED_FOR) <= time.monotonic() - _CONTENDED_FOR:
            # Alone (the usual case), one optimistic try without the record's lock: the newest
            # version this process saw is usually still the newest; if not, the unique NAME@N (or
            # external id) makes the write fail, and the loop below looks at the store.
            cached = self._latest_seen.get((kind, name))
            tries = 1
            written = self._try_version(act, kind, name, external_id, content, build, cached)
            if written is not None:
                return written
            if cached is not None:
                wanted = cached.properties["version"].int_value + 1
        with contextlib.ExitStack() as held:
            # Writers of one name take turns once they have met: a process that lost the race
            # for a version number takes the record's lock (on MySQL) for its next writes of that
            # name. Alone, a writer pays nothing for it; many writers end up queueing fairly.
            locked = held.enter_context(self._record_lock(key))
            while tries < _CREATE_RETRIES:
                if tries and not locked:
                    # another writer took the version number we wanted: back off a random while
                    time.sleep(random.random() * min(0.002 * tries, 0.05))
                tries += 1
                # Holding the lock, others have written while we waited: one indexed probe of the
                # next name is cheaper than a write that fails.
                written = self._try_version(act, kind, name, external_id, content, build, None)
                if written is not None:
                    if written[1] == "created" and written[0].properties["version"].int_value == wanted:
                        # No race was lost: the number the optimistic try wanted was free, so only
                        # the content's external id was taken (it equals an older version, found
                        # now as same_as). The record is not contended: its next write of this
                        # name is optimistic again, not a lock and a look at the store.
                        self._contended.pop(key, None)
                    return written
                if not locked:  # the lock could not be had (a restarting server): ask again
                    locked = held.enter_context(self._record_lock(key))
            raise StoreError(
                f"could not write {LABEL[kind]} {name!r}: other writers kept taking the next version; try again"
            )

    def _try_version(self, act: Action, kind: str, name: str, external_id: str, content: dict[str, Any],
                     build: Any, cached: Any) -> tuple[Any, str] | None:
        """One try at writing ``content`` as the version after ``cached`` (None: after the newest
        in the store): the written or identical version, or None when another writer took the
        version number (the record is then marked contended)."""
        type_short = _TYPES[kind]
        latest = cached if cached is not None else self.latest(kind, name)
        if cached is not None and content_id(cached) == external_id:
            # "unchanged" only if it is still the latest: another writer may have added a version
            latest = self.latest(kind, name)
        if latest is not None and content_id(latest) == external_id:
            # identical to the latest version: NAME already gives it
            act.outputs = [latest]
            act.state, act.outcome = "CACHED", "unchanged"
            self.recorder.commit(act)
            return latest, "unchanged"
        version = latest.properties["version"].int_value + 1 if latest is not None else 1
        same_as = None
        if latest is not None and cached is None:
            # identical to an older version? Then a new version says so: NAME gives what was defined last
            older = self.by_external_id(external_id)
            if older:
                same_as = older[0].properties["version"].int_value
        pb = protos()
        # the first version of some content is found by TYPE:NAME:HASH; a later one equal to it
        # (same_as) adds @N, as external ids are unique
        art = pb.Artifact(type_id=self.recorder.types.artifacts[type_short], name=f"{name}@{version}",
                          external_id=external_id if same_as is None else f"{external_id}@{version}",
                          state=pb.Artifact.LIVE)
        set_properties(art, version=version, description=content.get("description") or None, same_as=same_as)
        build(art)
        if kind in ("experiments", "scenarios"):
            flat_params(art)  # each parameter also as a custom property a filter query can use
        act.outputs = [art]
        act.state, act.outcome = "COMPLETE", "created"
        try:
            self.recorder.commit(act)
        except Conflict:
            self.recorder.forget_context(type_short, name)
            self._latest_seen.pop((kind, name), None)
            self._contended[f"{type_short}:{name}"] = time.monotonic()
            return None  # another writer took this version number, or the content exists: look again
        art.id = act.output_ids[0]
        # MLMD stamps its own times; the record we return uses ours (no read-back query)
        art.create_time_since_epoch = int(time.time() * 1000)
        self._latest_seen[(kind, name)] = art
        return art, "created"


_MAX_JSON = 1_000_000


def content_id(artifact: Any) -> str:
    """A record version's ``TYPE:NAME:CONTENT_HASH``: its external id, less the ``@N`` that a
    version equal to an older one (``same_as``) adds to keep external ids unique."""
    return str(artifact.external_id).partition("@")[0]


def _check_import(kind: str, name: str, args: dict[str, Any]) -> None:
    """Check an imported spec's ``args`` (from :func:`spec_arguments`) as its ``add_*`` call will,
    as far as that needs neither the store nor the data files, before any record is written."""
    check_name(name, f"{LABEL[kind]} name")
    _check_text(args.get("description"), "description")
    if kind == "policies":
        _check_text(args.get("owner"), "owner")
        check_policy(args.get("slices"), args.get("thresholds"))
    elif kind == "scenarios":
        check_name(args["model"], "model builder name")
        if isinstance(args["params"], dict):
            checked_params(args["params"], "params")
    elif kind == "datasources":
        _check_label_names(args.get("label_names"))
        if isinstance(args.get("features"), dict):
            check_value(args["features"], "features")
            check_unambiguous_keys(args["features"], "features")


def _check_label_names(names: Any) -> list[str] | None:
    """``label_names``: the names of classes 0..K-1, in order (e.g. ``[euploid, T21, T18, T13]``)."""
    if names is None:
        return None
    if isinstance(names, str) or not isinstance(names, (list, tuple)) or not names \
            or not all(isinstance(n, str) and n for n in names):
        raise ValidationError("label_names must be a list of class names for labels 0, 1, 2, ... in order, "
                              "e.g. [euploid, T21, T18, T13]")
    repeated = sorted({n for n in names if list(names).count(n) > 1})
    if repeated:
        raise ValidationError(f"label_names repeats {', '.join(map(repr, repeated))}; each class needs its own name")
    return list(names)


def _check_label_names_cover(names: list[str], distributions: dict[str, dict[str, Any]]) -> None:
    """Every whole-number label seen in the data must have a name."""
    seen = {key for labels in distributions.values() for key in labels if key.lstrip("-").isdecimal()}
    beyond = sorted(int(k) for k in seen if int(k) < 0 or int(k) >= len(names))
    if beyond:
        raise ValidationError(f"label_names names {len(names)} classes (0 to {len(names) - 1}), but the data has "
                              f"label {beyond[0]}; give a name for every class")


def _check_size(value: Any, what: str) -> None:
    _check_size_text(canonical_json(value), what)


def _check_size_text(text: str, what: str) -> None:
    """Parameters are metadata, not data: keep each record's JSON under a megabyte."""
    size = len(text)
    if size > _MAX_JSON:
        raise ValidationError(
            f"{what} take {size} characters as JSON, more than {_MAX_JSON}; keep large values in files "
            "and record their paths")


def _check_text(value: object, what: str) -> None:
    if value is not None and not isinstance(value, str):
        raise ValidationError(f"{what} must be text, got {type(value).__name__}")
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise ValidationError(f"{what} is longer than {MAX_TEXT} characters; shorten it")
    if isinstance(value, str) and "\x00" in value:
        # MLMD's readers end a string at NUL: the rest would be lost without a word
        raise ValidationError(f"{what} contains a NUL character (\\x00), which the store cannot keep; remove it")


def _row_view(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    if kind == "experiments":
        return {**data, "name": data["experiment"], "model": data["scenario"]["model"],
                "datasource": f"{data['datasource']['name']}@{data['datasource']['version']}",
                "scenario": f"{data['scenario']['name']}@{data['scenario']['version']}"}
    return data


def _same_as(art: Any) -> str:
    """``NAME@K`` when version ``art`` equals an older version K, else ``""``."""
    return f"{name_of(art)}@{art.properties['same_as'].int_value}" if "same_as" in art.properties else ""


def _list_row(kind: str, data: dict[str, Any], art: Any) -> dict[str, Any]:
    when = created(art)
    if kind == "experiments":
        view = _row_view(kind, data)
        return {"name": view["name"], "version": data["version"], "trial": data.get("trial", ""),
                "same_as": _same_as(art),
                "datasource": view["datasource"],
                "scenario": view["scenario"], "model": view["model"],
                "overrides": text(art.properties, "overrides") or "{}",
                _PARAMS: flatten(data["params"]), "created": when}
    if kind == "policies":
        return {"name": data["name"], "version": data["version"], "same_as": _same_as(art), "owner": data["owner"],
                "slices": ", ".join(_slice_label(s) for s in data["slices"]),
                "thresholds": "; ".join(Threshold(**_threshold_args(t)).describe() + _on(t)
                                        for t in data["thresholds"]),
                "description": data["description"], "created": when}
    if kind == "scenarios":
        return {"name": data["name"], "version": data["version"], "same_as": _same_as(art), "model": data["model"],
                _PARAMS: flatten(data["params"]), "description": data["description"], "created": when}
    return {"name": data["name"], "version": data["version"], "same_as": _same_as(art), "format": data["format"],
            "uri": data["uri"],
            "splits": ", ".join(f"{k}={v}" for k, v in data["examples"].items()),
            "label": data["label"], "fingerprint": data["fingerprint"][:12],
            "description": data["description"], "created": when}


# the top-level keys of a record's filter view (see Records._filter_view)
_VIEW_FIELDS = RECORD_FIELDS  # the keys of each kind's row view (store/filters.py)
_PARAMS = "\0params"  # where a row's parameters wait to become columns of their own
_COLUMNS = {
    "experiments": ["name", "version", "trial", "same_as", "datasource", "scenario", "model", "overrides", _PARAMS,
                    "created"],
    "scenarios": ["name", "version", "same_as", "model", _PARAMS, "description", "created"],
    "datasources": ["name", "version", "same_as", "format", "uri", "splits", "label", "fingerprint", "description",
                    "created"],
    "policies": ["name", "version", "same_as", "owner", "slices", "thresholds", "description", "created"],
}
# shown only when some row has one: a sweep's trial (SWEEP@V#K), a version equal to an older one
_OPTIONAL = ("trial", "same_as")


def check_policy(slices: Any, thresholds: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A policy's slices and thresholds, checked by the evaluation's own rules and written out in
    full (canonical: the same policy always hashes the same); a threshold naming a slice the
    policy does not define, or a metric no evaluation computes (``sensitivity_T21``), is refused
    with what was probably meant — when the policy is defined, not when a model is evaluated
    under it. Whether the data has the class a metric names is known only at evaluation."""
    if slices is not None and not isinstance(slices, (list, tuple)):
        raise ValidationError("slices must be a list of slice mappings, e.g. [{feature: fetal_fraction, "
                              "bins: [0.04, 0.08], names: [ff_low, ff_mid, ff_high]}]")
    if not isinstance(thresholds, (list, tuple)) or not thresholds:
        raise ValidationError("a policy needs at least one threshold, e.g. thresholds: [{metric: recall_T21, "
                              "lower: 0.95}]")
    specs = parse_slices(slices)
    ths = parse_thresholds(thresholds)
    for i, t in enumerate(ths):
        check_metric_name(t.metric, f"thresholds[{i}]")
    check_slice_names(ths, specs, owner="policy")
    plain_slices = [{k: list(v) if isinstance(v, tuple) else v for k, v in s.__dict__.items() if v not in ((), None)}
                    for s in specs]
    plain_thresholds = []
    for t in ths:
        row: dict[str, Any] = {"metric": t.metric}
        row.update({k: getattr(t, k) for k in ("lower", "upper", "change") if getattr(t, k) is not None})
        if t.change is not None:
            row.update(relative=t.relative, direction=t.direction)
        if t.slices:
            row["slices"] = list(t.slices)
        plain_thresholds.append(row)
    return plain_slices, plain_thresholds


def _threshold_args(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if k == "slices" else v for k, v in raw.items()}


def _on(raw: dict[str, Any]) -> str:
    return f" on {', '.join(raw['slices'])}" if raw.get("slices") else ""


def _slice_label(raw: dict[str, Any]) -> str:
    if raw.get("bins"):
        return f"{raw['feature']} bins {raw['bins']}" + (f" ({', '.join(raw['names'])})" if raw.get("names") else "")
    return f"{raw['feature']} values" + (f" ({', '.join(map(str, raw['names']))})" if raw.get("names") else "")


def _frame(kind: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The table of a listing: one column per parameter (dotted for nested ones, in the order they
    first appear), where a parameter named like a column of the record is shown as ``params.NAME``."""
    import pandas as pd

    fixed = [c for c in _COLUMNS[kind] if c != _PARAMS]
    dropped = {c for c in _OPTIONAL if not any(row.get(c) for row in rows)}
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row.get(_PARAMS, {})))
    shown = {key: f"params.{key}" if key in fixed else key for key in names}
    flat = [{**{k: v for k, v in row.items() if k != _PARAMS},
             **{shown[key]: value for key, value in row.get(_PARAMS, {}).items()}} for row in rows]
    columns: list[str] = []
    for column in _COLUMNS[kind]:
        if column not in dropped:
            columns += list(shown.values()) if column == _PARAMS else [column]
    return pd.DataFrame(flat, columns=columns)
