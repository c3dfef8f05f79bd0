"""The store: versioned data sources, scenarios and experiments, every action recorded.

This is the only module (with ``_types`` and ``_connection``) that touches MLMD protos.
Everything it returns is plain Python: :class:`~mlmd_magic.Record`, dicts and pandas
DataFrames.

Mapping onto MLMD (see PRODUCT.md section 2):

* one artifact per record version, named ``NAME@VERSION`` within its type (MLMD's unique
  ``(type, name)`` index settles races between writers), with ``external_id``
  ``TYPE:NAME:CONTENT_HASH`` so that identical content is found in one indexed lookup;
* one context per record name (``mlmd_magic.Experiment`` context ``t21-baseline``) and
  one ``mlmd_magic.NotebookSession`` context per kernel;
* one execution per action, written with its events and contexts in a single
  ``put_execution`` call, i.e. one transaction.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as _dt
import difflib
import json
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import _mysql_writer, _secrets, _session
from ._datafiles import FORMATS, inspect_datasource, normalise_uri
from ._names import check_name, parse_ref
from ._query import check_offset, compile_where
from ._records import (
    KIND_TYPES,
    Diff,
    Record,
    apply_overrides,
    canonical_json,
    check_param_keys,
    check_unambiguous_keys,
    check_value,
    content_hash,
    diff_values,
    merge_overrides,
    normalise_kind,
    to_plain,
)
from ._storeguard import StoreGuard
from ._types import declared_properties, full, lookup_types, register_types
from ._uri import StoreURI
from .errors import (
    AmbiguousRefError,
    MlmdMagicError,
    NotFoundError,
    StoreError,
    ValidationError,
)

if TYPE_CHECKING:
    import pandas as pd

    from ._lineage import Lineage
    from ._runs import Evaluation, Run

__all__ = ["Store"]

_MAX_TEXT = 100_000
_LABEL = {"datasources": "data source", "scenarios": "scenario", "experiments": "experiment"}
_CREATE_RETRIES = 500


@dataclass
class _Action:
    """What one action read and wrote, collected before its single ``put_execution``."""

    type_short: str
    arguments: dict[str, Any]
    inputs: list[Any] = field(default_factory=list)
    outputs: list[Any] = field(default_factory=list)
    contexts: list[tuple[str, str]] = field(default_factory=list)  # (context type, name)
    outcome: str = ""
    state: str = "COMPLETE"
    committed: bool = False
    execution_id: int | None = None
    output_ids: list[int] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)
    inputs_written: bool = False  # set once a RUNNING execution has recorded its inputs
    started: float = field(default_factory=time.perf_counter)
    external_id: str = ""  # unique per action: makes retrying its write idempotent


class Store:
    """A connected mlmd-magic store. Create one with :func:`mlmd_magic.connect`.

    Example
    -------
    >>> import mlmd_magic as mm
    >>> store = mm.connect("memory://")
    >>> store.add_scenario("mlp-small", model="mlp", params={"epochs": 10}).ref
    'mlp-small@1'
    >>> store.add_scenario("mlp-small", model="mlp", params={"epochs": 10}).status
    'unchanged'
    """

    def __init__(self, mlmd_store: Any, uri: StoreURI) -> None:
        self._mlmd = mlmd_store
        self._uri = uri
        self._guard = StoreGuard.for_uri(uri)  # read-only files, removed files, damaged files
        self._types = lookup_types(mlmd_store) if self._guard.read_only else register_types(mlmd_store)
        self._writer: _mysql_writer.MySQLActionWriter | None = None  # one round trip per action on MySQL
        if uri.scheme == "mysql":
            from ._connection import open_mysql_writer

            self._writer = open_mysql_writer(uri, declared_properties(self._types))
        self._context_ids: dict[tuple[str, str], int] = {}
        self._latest_seen: dict[tuple[str, str], Any] = {}  # (kind, name) -> newest version seen
        self._closed = False
        from ._runs import reap_stale_runs

        # trainings left RUNNING by a dead kernel
        self.reaped_runs = [] if self._guard.read_only else reap_stale_runs(self)

    # ------------------------------------------------------------------ basics

    @property
    def uri(self) -> str:
        """The store's URI with any password masked."""
        return self._uri.masked()

    @property
    def read_only(self) -> bool:
        """Whether the store was opened read-only (a SQLite file this user may not write).

        Reads then work and are not recorded; actions that write raise :class:`StoreError`
        with the reason, which :attr:`read_only_reason` holds.
        """
        return self._guard.read_only

    @property
    def read_only_reason(self) -> str | None:
        """Why the store was opened read-only, or None."""
        return self._guard.read_only_reason

    @property
    def mlmd(self) -> Any:
        """The underlying ``ml_metadata`` ``MetadataStore``, for plain MLMD code.

        Calls through it are retried on a busy database or a lost MySQL connection.
        """
        self._check_open()
        return self._mlmd

    def close(self) -> None:
        """Release the connection. The object cannot be used afterwards."""
        self._closed = True
        self._mlmd = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " (closed)" if self._closed else ""
        return f"<mlmd_magic.Store {self._uri.masked()}{state}>"

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store {self.uri} is closed; connect again with mlmd_magic.connect()")

    # ------------------------------------------------------------------ records

    def add_datasource(
        self,
        name: str,
        *,
        uri: str,
        format: str,
        splits: dict[str, str],
        label: str,
        description: str | None = None,
        features: dict[str, Any] | None = None,
    ) -> Record:
        """Register a data source, or a new version of it when its content changed.

        Parameters
        ----------
        name : the data source's name.
        uri : the local folder holding the files.
        format : ``"tfrecord"``, ``"csv"`` or ``"npz"``.
        splits : split name -> file, glob or folder under ``uri`` (any number of splits).
        label : the name of the label feature/column/array.
        description : free text.
        features : feature schema ``{name: {"dtype": ..., "shape": [...]}}``; inferred from
            the files when omitted.

        Returns
        -------
        Record
            ``status`` is ``"created"`` for a new version, ``"unchanged"`` when an identical
            version exists already.

        Raises
        ------
        InvalidNameError, DataSourceError, ValidationError
            For bad arguments or unreadable files (recorded as a FAILED action).
        StoreError
            When the store rejects the write.
        """
        args = {"name": name, "uri": uri, "format": format, "splits": splits, "label": label,
                "description": description, "features": features}
        with self._action("RegisterDataSource", args) as act:
            check_name(name, "data source name")
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
            folder = normalise_uri(uri)
            summary = inspect_datasource(folder, format, splits, label)
            content = {
                "uri": folder,
                "format": format,
                "splits": dict(sorted(splits.items())),
                "label": label,
                "features": to_plain(features) if features is not None else summary.features,
                "fingerprint": summary.fingerprint,
                "description": description or "",
            }
            stats = {
                "example_counts": {s: v.examples for s, v in summary.splits.items()},
                "label_distribution": {s: v.labels for s, v in summary.splits.items()},
            }

            def build(artifact: Any) -> None:
                artifact.uri = folder
                _props(artifact, format=format, splits=canonical_json(content["splits"]), label=label,
                       features=canonical_json(content["features"]), fingerprint=summary.fingerprint,
                       example_counts=canonical_json(stats["example_counts"]),
                       label_distribution=canonical_json(stats["label_distribution"]),
                       files=canonical_json(summary.files))  # what verify_files checks before a run

            return self._create(act, "datasources", name, content, build)

    def add_scenario(
        self, name: str, *, model: str, params: dict[str, Any], description: str | None = None
    ) -> Record:
        """Register a named hyperparameter set for a model builder, or a new version of it.

        Parameters
        ----------
        name : the scenario's name.
        model : the name of the model builder (``"mlp"``, ``"cnn1d"``, or one you registered).
        params : hyperparameters; values may be numbers, strings, booleans, lists and
            nested mappings.
        description : free text.

        Raises
        ------
        InvalidNameError, ValidationError
            For bad arguments (recorded as a FAILED action).
        StoreError
            When the store rejects the write.
        """
        args = {"name": name, "model": model, "params": params, "description": description}
        with self._action("AddScenario", args) as act:
            check_name(name, "scenario name")
            check_name(model, "model builder name")
            if not isinstance(params, dict):
                raise ValidationError("params must be a mapping, e.g. {'hidden': [64, 32], 'epochs': 10}")
            check_value(params, "params")
            check_param_keys(params)
            _check_text(description, "description")
            params_json = canonical_json(params)  # encoded once: stored, sized and hashed as is
            _check_size_text(params_json, "params")
            content = {"model": model, "params": json.loads(params_json), "description": description or ""}

            def build(artifact: Any) -> None:
                _props(artifact, model=model, params=params_json)

            digest = _scenario_digest(model, params_json, description or "")
            return self._create(act, "scenarios", name, content, build, digest=digest)

    def experiment(
        self,
        name: str,
        *,
        datasource: str,
        scenario: str,
        overrides: dict[str, Any] | None = None,
        description: str | None = None,
    ) -> Record:
        """Define an experiment: a data source and a scenario (pinned versions) plus overrides.

        ``datasource`` and ``scenario`` are ``NAME`` (pins the current latest version) or
        ``NAME@N``. Every override key must exist in the scenario's params.

        Raises
        ------
        NotFoundError
            When the data source or scenario does not exist.
        ValidationError
            For an unknown override key (the message names the closest one) or a value of
            the wrong kind.
        """
        args = {"name": name, "datasource": datasource, "scenario": scenario,
                "overrides": overrides, "description": description}
        with self._action("DefineExperiment", args) as act:
            check_name(name, "experiment name")
            _check_text(description, "description")
            ds_art = self._resolve("datasources", datasource)
            sc_art = self._resolve("scenarios", scenario)
            act.inputs += [ds_art, sc_art]
            ds = self._data("datasources", ds_art)
            sc = self._data("scenarios", sc_art)
            overrides = to_plain(overrides) if overrides is not None else {}
            _check_size(overrides, "overrides")
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
                _props(artifact, datasource=ds_ref, scenario=sc_ref, overrides=canonical_json(overrides),
                       params=canonical_json(params), model=sc["model"], resolved=canonical_json(resolved))

            return self._create(act, "experiments", name, content, build)

    def get_experiment(self, ref: str) -> dict[str, Any]:
        """The resolved run parameters of experiment ``NAME`` (latest) or ``NAME@N``.

        Returns a plain, JSON-serialisable dict that any trainer can take::

            {"experiment": str, "version": int,
             "datasource": {"name", "version", "uri", "format", "splits", "label", "features"},
             "scenario": {"name", "version", "model"},
             "params": {...scenario params with overrides applied...}}

        Raises
        ------
        NotFoundError
            When no such experiment (or version) exists; the message suggests close names.
        """
        return self._fetch("experiments", ref, "FetchExperiment").to_dict()

    def get_datasource(self, ref: str) -> dict[str, Any]:
        """The data source ``NAME`` or ``NAME@N`` as a plain dict (see :meth:`get_experiment`)."""
        return self._fetch("datasources", ref, "FetchDataSource").to_dict()

    def get_scenario(self, ref: str) -> dict[str, Any]:
        """The scenario ``NAME`` or ``NAME@N`` as a plain dict (see :meth:`get_experiment`)."""
        return self._fetch("scenarios", ref, "FetchScenario").to_dict()

    def get(self, ref: str, kind: str | None = None) -> Record:
        """One record as a :class:`Record` (with its HTML repr); ``kind`` when a name is ambiguous."""
        kind = self.kind_of(ref) if kind is None else normalise_kind(kind)
        fetch = {"experiments": "FetchExperiment", "datasources": "FetchDataSource", "scenarios": "FetchScenario"}
        return self._fetch(kind, ref, fetch[kind])

    def kind_of(self, ref: str) -> str:
        """Which kind of record ``ref`` names.

        Raises
        ------
        NotFoundError
            When no record of any kind has that name.
        AmbiguousRefError
            When several kinds have that name (pass ``kind=`` then).
        """
        name = parse_ref(ref).name
        found = [kind for kind in KIND_TYPES if self._latest(kind, name) is not None]
        if not found:
            raise NotFoundError(f"no data source, scenario or experiment is named {name!r}{self._suggest(name)}")
        if len(found) > 1:
            raise AmbiguousRefError(
                f"{name!r} names a {' and a '.join(_LABEL[k] for k in found)}; say which with kind=..."
            )
        return found[0]

    def names(self, kind: str | None = None) -> builtins.list[str]:
        """Sorted record names (of one kind, or of all kinds), e.g. for tab completion."""
        kinds = [normalise_kind(kind)] if kind else list(KIND_TYPES)
        out: set[str] = set()
        for k in kinds:
            out.update(c.name for c in self._mlmd.get_contexts_by_type(full(KIND_TYPES[k])))
        return sorted(out)

    # ------------------------------------------------------------------ training and evaluation

    def train(
        self,
        ref: str,
        *,
        workdir: str | None = None,
        force: bool = False,
        callbacks: Sequence[Any] | None = None,
        progress: bool = True,
        overrides: dict[str, Any] | None = None,
        **more_overrides: Any,
    ) -> Run:
        """Train experiment ``NAME`` (latest) or ``NAME@N`` with the Keras trainer, on record.

        ``overrides`` (a mapping, e.g. ``{"epochs": 3}``; keyword arguments other than the
        ones named here add to it, e.g. ``epochs=3``) first define a new experiment version
        with them merged into the experiment's overrides, exactly as :meth:`experiment` would.
        They only ever override parameters: a parameter called ``workdir``, ``force``,
        ``progress`` or ``callbacks`` is overridden through the mapping. A run
        identical to an earlier one (same experiment version, data fingerprint, trainer
        code and Keras backend) is not repeated: it is recorded as CACHED and returns the
        earlier model, unless ``force``. The model is saved under ``workdir`` (default:
        ``$MLMD_MAGIC_RUNS_DIR``, else ``mlmd-magic-runs/`` beside a SQLite store).

        Raises
        ------
        NotFoundError
            When the experiment does not exist.
        TrainingError
            When the trainer fails (recorded FAILED); KeyboardInterrupt is recorded CANCELED
            and re-raised, with no model left behind.
        """
        from . import _runs

        return _runs.train(self, ref, workdir=workdir, force=force, callbacks=callbacks, progress=progress,
                           overrides=merge_overrides(overrides, more_overrides))

    def evaluate(
        self,
        run_or_model: Any,
        *,
        data: Any = None,
        slices: Sequence[Any] | None = None,
        thresholds: Sequence[Any] | None = None,
        baseline: Any = None,
        class_names: Sequence[str] | None = None,
    ) -> Evaluation:
        """Evaluate a model on slices of data, check thresholds, and record the verdict.

        Parameters
        ----------
        run_or_model : a :class:`Run`, a model id, ``"model:ID"``, or an experiment reference
            (its latest trained model).
        data : a split name (default ``test``, else ``eval``), ``"DATASOURCE[@N]:SPLIT"`` or
            ``{"datasource": ..., "split": ...}``.
        slices, thresholds : see :mod:`mlmd_magic.evaluation`.
        baseline : the model to compare against (same forms as ``run_or_model``).
        class_names : names of classes 0..K-1 for per-class metrics (``recall_T21``).

        The ``mlmd_magic.Evaluation`` artifact carries the verdict as TFX does: custom
        properties ``blessed`` (1/0), ``current_model_id`` and ``baseline_model_id``.
        """
        from . import _runs

        return _runs.evaluate(self, run_or_model, data=data, slices=slices, thresholds=thresholds,
                              baseline=baseline, class_names=class_names)

    # ------------------------------------------------------------------ listings

    def list(
        self,
        kind: str,
        where: str | None = None,
        limit: int | None = None,
        *,
        all_versions: bool = False,
        offset: int = 0,
    ) -> pd.DataFrame:
        """A table of records: one row per name (its latest version) unless ``all_versions``.

        Parameters
        ----------
        kind : ``"datasources"``, ``"scenarios"`` or ``"experiments"``.
        where : a filter on names and values, e.g. ``"name ~ 't21-*' and epochs >= 5"``
            (see :mod:`mlmd_magic._query` for the grammar).
        limit : at most this many rows.
        offset : skip this many matching rows first (pages of a listing).

        Raises
        ------
        ValidationError
            For an unknown kind, a bad filter or a bad limit.
        """
        with self._action("ListRecords", {"kind": kind, "where": where, "limit": limit, "offset": offset,
                                          "all_versions": all_versions}) as act:
            if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
                raise ValidationError(f"limit must be a positive whole number, got {limit!r}")
            offset = check_offset(offset)
            if isinstance(kind, str) and kind.lower() in ("runs", "run", "models", "model"):
                return self._list_runs_or_models(kind.lower().rstrip("s") + "s", where, limit, act, offset)
            kind = normalise_kind(kind)
            predicate = compile_where(where)
            rows = []
            skip = max(int(offset or 0), 0)
            # a short unfiltered listing needs no more names than it shows
            page = min(100, limit + skip) if limit is not None and where is None and not all_versions else 100
            for art in self._iter_records(kind, all_versions, page=max(page, 1)):
                data = self._data(kind, art)
                if predicate(_row_view(kind, data)):
                    if skip:
                        skip -= 1
                        continue
                    rows.append(_list_row(kind, data, art))
                    if limit is not None and len(rows) >= limit:
                        break
            act.outcome = f"{len(rows)} rows"
            return _frame(kind, rows)

    def _iter_records(self, kind: str, all_versions: bool, page: int = 100) -> Iterator[Any]:
        """Records newest name first, a page of names at a time (never the whole store at once).

        Each name is a context; a page is one query (``id < last`` ordered by id), and each
        name's latest version two indexed lookups, so the first page costs the same at
        100,000 records as at 100.
        """
        from ml_metadata.metadata_store import metadata_store as ms

        type_id = self._types.contexts[KIND_TYPES[kind]]
        last: int | None = None
        scan = max(page, 50)
        while True:
            # MLMD's "type = ..." filter joins and sorts the whole table (85 ms at 100,000
            # contexts); walking ids downwards and keeping our type is a plain index scan.
            contexts = self._mlmd.get_contexts(list_options=ms.ListOptions(
                limit=scan, order_by=ms.OrderByField.ID, is_asc=False,
                filter_query=f"id < {last}" if last is not None else None))
            for ctx in contexts:
                if ctx.type_id != type_id:
                    continue
                self._context_ids[(KIND_TYPES[kind], ctx.name)] = ctx.id
                if all_versions:
                    yield from reversed(self._versions(kind, ctx.name))
                else:
                    art = self._latest(kind, ctx.name)
                    if art is not None:
                        yield art
            if len(contexts) < scan:
                return
            last = contexts[-1].id

    def _list_runs_or_models(self, kind: str, where: str | None, limit: int | None, act: _Action,
                             offset: int = 0) -> pd.DataFrame:
        import pandas as pd

        from . import _runs

        predicate = compile_where(where)
        rows = [r for r in (_runs.list_runs(self) if kind == "runs" else _runs.list_models(self)) if predicate(r)]
        rows = rows[offset:offset + limit] if limit else rows[offset:]
        act.outcome = f"{len(rows)} rows"
        frame = pd.DataFrame(rows)
        if not frame.empty:
            frame["created"] = pd.to_datetime(frame["created"], unit="ms", utc=True)
        return frame

    def lineage(self, target: Any, kind: str | None = None) -> Lineage:
        """The lineage graph around a record, ``model:ID``, ``run:ID`` or an artifact id: data files,
        records, runs, models and evaluations, drawn as SVG in notebooks and as text elsewhere."""
        from ._lineage import lineage

        self._check_open()
        return lineage(self, target, kind)

    def history(self, ref: str, kind: str | None = None) -> pd.DataFrame:
        """Every version of a record, oldest first, as a DataFrame."""
        with self._action("ShowHistory", {"ref": ref, "kind": kind}) as act:
            kind = self.kind_of(ref) if kind is None else normalise_kind(kind)
            name = parse_ref(ref).name
            arts = self._versions(kind, name)
            if not arts:
                raise NotFoundError(f"no {_LABEL[kind]} named {name!r}{self._suggest(name, kind)}")
            act.inputs += arts
            act.outcome = f"{len(arts)} versions"
            act.contexts.append((KIND_TYPES[kind], name))
            rows = [_list_row(kind, self._data(kind, a), a) for a in arts]
            return _frame(kind, rows)

    def diff(self, ref_a: str, ref_b: str, kind: str | None = None) -> Diff:
        """What differs, key by key, between two versions or two records of the same kind.

        >>> import mlmd_magic as mm
        >>> s = mm.connect("memory://")
        >>> _ = s.add_scenario("a", model="mlp", params={"epochs": 10, "lr": 0.1})
        >>> _ = s.add_scenario("a", model="mlp", params={"epochs": 5, "lr": 0.1})
        >>> print(s.diff("a@1", "a@2"))
        --- a@1
        +++ a@2
        params.epochs  10 -> 5
        version        1 -> 2
        """
        with self._action("DiffRecords", {"ref_a": ref_a, "ref_b": ref_b, "kind": kind}) as act:
            if kind is None:
                kind_a, kind_b = self.kind_of(ref_a), self.kind_of(ref_b)
                if kind_a != kind_b:
                    raise ValidationError(
                        f"{ref_a!r} is a {_LABEL[kind_a]} and {ref_b!r} a {_LABEL[kind_b]}; "
                        "diff compares records of one kind"
                    )
                kind = kind_a
            kind = normalise_kind(kind)
            art_a, art_b = self._resolve(kind, ref_a), self._resolve(kind, ref_b)
            act.inputs += [art_a, art_b]
            a, b = self._data(kind, art_a), self._data(kind, art_b)
            act.outcome = "compared"
            label = "experiment" if kind == "experiments" else "name"
            return diff_values(f"{a[label]}@{a['version']}", a, f"{b[label]}@{b['version']}", b)

    # ------------------------------------------------------------------ internals: reading

    def _context_id(self, kind: str, name: str) -> int | None:
        """Id of the context grouping every version of record ``name`` (an indexed lookup, cached)."""
        key = (KIND_TYPES[kind], name)
        if key not in self._context_ids:
            ctx = self._mlmd.get_context_by_type_and_name(full(KIND_TYPES[kind]), name)
            if ctx is None:
                return None
            self._context_ids[key] = ctx.id
        return self._context_ids[key]

    def _latest(self, kind: str, name: str) -> Any | None:
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
                following = self._mlmd.get_artifact_by_type_and_name(
                    full(KIND_TYPES[kind]), f"{name}@{cached.properties['version'].int_value + 1}")
                if following is None:
                    return cached
                cached = self._latest_seen[(kind, name)] = following
        cid = self._context_id(kind, name)
        if cid is None:
            return None
        type_id = self._types.artifacts[KIND_TYPES[kind]]
        newest = self._mlmd.get_artifacts_by_context(
            cid, list_options=ms.ListOptions(limit=3, order_by=ms.OrderByField.ID, is_asc=False))
        found = next((a for a in newest if a.type_id == type_id), None)
        if found is None:
            versions = self._versions(kind, name)
            found = versions[-1] if versions else None
        if found is not None:
            self._latest_seen[(kind, name)] = found
        return found

    def _versions(self, kind: str, name: str) -> builtins.list[Any]:
        cid = self._context_id(kind, name)
        if cid is None:
            return []
        type_id = self._types.artifacts[KIND_TYPES[kind]]
        arts = [a for a in self._mlmd.get_artifacts_by_context(cid) if a.type_id == type_id]
        return sorted(arts, key=lambda a: a.properties["version"].int_value)

    def _resolve(self, kind: str, ref: str) -> Any:
        parsed = parse_ref(ref, f"{_LABEL[kind]} reference")
        if parsed.version is None:
            art = self._latest(kind, parsed.name)
            if art is None:
                raise NotFoundError(f"no {_LABEL[kind]} named {parsed.name!r}{self._suggest(parsed.name, kind)}")
            return art
        art = self._mlmd.get_artifact_by_type_and_name(full(KIND_TYPES[kind]), str(parsed))
        if art is None:
            latest = self._latest(kind, parsed.name)
            if latest is None:
                raise NotFoundError(f"no {_LABEL[kind]} named {parsed.name!r}{self._suggest(parsed.name, kind)}")
            top = latest.properties["version"].int_value
            raise NotFoundError(
                f"{_LABEL[kind]} {parsed.name!r} has no version {parsed.version}; its versions are 1 to {top}"
            )
        return art

    def _suggest(self, name: str, kind: str | None = None) -> str:
        close = difflib.get_close_matches(name, self.names(kind), n=3, cutoff=0.6)
        if close:
            return f"; did you mean {' or '.join(repr(c) for c in close)}?"
        if kind:
            return f"; see the {_LABEL[kind]}s with %mlmd ls {kind} or store.list({kind!r})"
        return ""

    def _data(self, kind: str, art: Any) -> dict[str, Any]:
        p = art.properties
        name, version = _name_of(art), p["version"].int_value
        if kind == "experiments":
            resolved = json.loads(p["resolved"].string_value)
            return {"experiment": name, "version": version, **resolved}
        if kind == "scenarios":
            return {"name": name, "version": version, "model": p["model"].string_value,
                    "params": json.loads(p["params"].string_value), "description": _text(p, "description")}
        return {
            "name": name, "version": version, "uri": art.uri, "format": p["format"].string_value,
            "splits": json.loads(p["splits"].string_value), "label": p["label"].string_value,
            "features": json.loads(p["features"].string_value),
            "description": _text(p, "description"), "fingerprint": p["fingerprint"].string_value,
            "examples": json.loads(p["example_counts"].string_value),
            "label_distribution": json.loads(p["label_distribution"].string_value),
        }

    def _record(self, kind: str, art: Any, status: str) -> Record:
        p = art.properties
        extra: dict[str, Any] = {}
        if kind == "experiments":
            extra = {"description": _text(p, "description"),
                     "overrides": json.loads(p["overrides"].string_value or "{}")}
        return Record(
            kind=kind,
            name=_name_of(art),
            version=p["version"].int_value,
            id=art.id,
            created=_created(art),
            data=self._data(kind, art),
            status=status,
            extra=extra,
        )

    def _fetch(self, kind: str, ref: str, action: str) -> Record:
        with self._action(action, {"ref": ref}) as act:
            art = self._resolve(kind, ref)
            act.inputs.append(art)
            act.contexts.append((KIND_TYPES[kind], _name_of(art)))
            act.outcome = "fetched"
            return self._record(kind, art, "fetched")

    # ------------------------------------------------------------------ internals: writing

    def _create(self, act: _Action, kind: str, name: str, content: dict[str, Any], build: Any,
                digest: str | None = None) -> Record:
        """Write ``content`` as a new version of ``name`` unless an identical version exists.

        ``digest`` is the content hash when the caller computed it from text it already had.
        """
        from ml_metadata import errors as mlmd_errors
        from ml_metadata.proto import metadata_store_pb2 as pb

        type_short = KIND_TYPES[kind]
        digest = digest or content_hash({"kind": kind, **content})
        external_id = f"{full(type_short)}:{name}:{digest}"
        act.contexts.append((type_short, name))
        for attempt in range(_CREATE_RETRIES):
            if attempt:
                # another writer took the version number we wanted: back off a random while
                time.sleep(random.random() * min(0.002 * attempt, 0.05))
            cached = self._latest_seen.get((kind, name)) if attempt == 0 else None
            # Optimistic first try: the newest version this process saw is usually still the
            # newest; if not, the unique NAME@N (or external id) makes the write fail, and the
            # next try looks at the store.
            latest = cached if cached is not None else self._latest(kind, name)
            existing = [latest] if latest is not None and latest.external_id == external_id else []
            if latest is not None and not existing and cached is None:
                try:  # identical to an older version?
                    existing = self._mlmd.get_artifacts_by_external_ids([external_id])
                except mlmd_errors.NotFoundError:
                    existing = []
            if existing:
                act.outputs = [existing[0]]
                act.state, act.outcome = "CACHED", "unchanged"
                self._commit(act)
                return self._record(kind, existing[0], "unchanged")
            version = latest.properties["version"].int_value + 1 if latest is not None else 1
            art = pb.Artifact(type_id=self._types.artifacts[type_short], name=f"{name}@{version}",
                              external_id=external_id, state=pb.Artifact.LIVE)
            _props(art, version=version, description=content.get("description") or None)
            build(art)
            act.outputs = [art]
            act.state, act.outcome = "COMPLETE", "created"
            try:
                self._commit(act)
            except _Conflict:
                self._context_ids.pop((type_short, name), None)
                self._latest_seen.pop((kind, name), None)
                continue  # another writer took this version number, or the content exists: look again
            art.id = act.output_ids[0]
            # MLMD stamps its own times; the record we return uses ours (no read-back query)
            art.create_time_since_epoch = int(time.time() * 1000)
            self._latest_seen[(kind, name)] = art
            return self._record(kind, art, "created")
        raise StoreError(
            f"could not write {_LABEL[kind]} {name!r}: other writers kept taking the next version; try again"
        )

    @contextlib.contextmanager
    def _action(self, type_short: str, arguments: dict[str, Any]) -> Iterator[_Action]:
        """Run one action; record it as COMPLETE/CACHED, or as FAILED with its error."""
        act = _Action(type_short, arguments)
        with self._action_guard(act):
            yield act
            if not act.committed:
                self._commit(act)

    @contextlib.contextmanager
    def _action_guard(self, act: _Action) -> Iterator[None]:
        """Record ``act`` as FAILED (CANCELED on Ctrl-C) if the body raises; translate foreign errors."""
        self._check_open()
        self._guard.before_action(act.type_short)
        try:
            yield
        except BaseException as exc:
            already = act.committed and act.state in ("CANCELED", "FAILED")
            act.state = "CANCELED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            act.outcome = "canceled" if act.state == "CANCELED" else "failed"
            act.outputs = []  # nothing new is written by a failed action
            act.inputs = [a for a in act.inputs if a.id]
            if not already:
                with contextlib.suppress(Exception):
                    self._commit(act, error=exc)
            if isinstance(exc, MlmdMagicError) or not isinstance(exc, Exception):
                raise
            raise self._guard.damaged(exc) or _translate(exc) from None

    def _commit(self, act: _Action, error: BaseException | None = None) -> None:
        from ml_metadata.proto import metadata_store_pb2 as pb

        if self._guard.read_only:
            act.committed = True  # a read-only store records nothing (writes were refused before)
            return
        self._guard.check_file()

        ctx = _session.current_action()
        sess = _session.current_session()
        execution = pb.Execution(
            type_id=self._types.executions[act.type_short],
            last_known_state=pb.Execution.State.Value(act.state),
        )
        if act.execution_id is not None:
            execution.id = act.execution_id
        _props(
            execution,
            source=_clip(ctx.source) or None,
            duration_s=time.perf_counter() - act.started,
            # "created"/"unchanged" is what COMPLETE/CACHED already say; each property is a row
            outcome=act.outcome if act.outcome not in ("created", "unchanged") else None,
            # a cell's source already says what was asked; API calls record their arguments
            arguments=None if ctx.source else _clip(_secrets.redact(canonical_json(_safe_args(act.arguments)))),
        )
        _props(execution, **act.properties)
        if ctx.execution_count is not None:
            execution.properties["execution_count"].int_value = ctx.execution_count
        notebook = ctx.notebook or sess.notebook
        if notebook:
            execution.properties["notebook"].string_value = notebook
        if error is not None:
            execution.properties["error"].string_value = _clip(_secrets.redact(f"{type(error).__name__}: {error}"))
        for art in act.inputs + act.outputs:
            _drop_empty_properties(art)
        events = []
        seen: set[int] = set()
        for art in [] if act.inputs_written else act.inputs:
            if art.id in seen:  # diff of a version with itself: one INPUT event is enough
                continue
            seen.add(art.id)
            events.append((art, pb.Event(type=pb.Event.INPUT)))
        for art in act.outputs:
            events.append((art, pb.Event(type=pb.Event.OUTPUT)))
        keys = [("NotebookSession", sess.id), *list(dict.fromkeys(act.contexts))]
        contexts = []
        for short, name in keys:
            cid = self._context_ids.get((short, name))
            context = pb.Context(type_id=self._types.contexts[short], name=name)
            if cid is not None:
                context.id = cid
            elif short == "NotebookSession":
                _props(context, user=sess.user, host=sess.host, pid=sess.pid, started=sess.started,
                       notebook=sess.notebook or None, versions=canonical_json(_session.package_versions()))
            contexts.append(context)
        if not act.external_id:
            act.external_id = f"mlmd_magic:{uuid.uuid4().hex}"
        execution.external_id = act.external_id
        try:
            exec_id, artifact_ids, context_ids = self._put_execution(execution, events, contexts)
        except _Duplicate as exc:
            if act.execution_id is None and self._already_recorded(act):
                return  # a retry after a commit whose answer was lost: it is in the store
            raise _Conflict(str(exc)) from None
        for key, cid in zip(keys, context_ids):
            self._context_ids[key] = cid
        act.committed = True
        act.execution_id = exec_id
        act.output_ids = list(artifact_ids[len(events) - len(act.outputs):])

    def _put_execution(self, execution: Any, events: builtins.list[tuple[Any, Any]], contexts: builtins.list[Any]
                       ) -> tuple[int, builtins.list[int], builtins.list[int]]:
        """One transaction: the direct MySQL writer where it applies, else MLMD's ``put_execution``.

        Raises ``_Duplicate`` when a unique key (name@version, an external id) is taken.
        """
        from ml_metadata import errors as mlmd_errors

        if self._writer is not None:
            try:
                return self._writer.put_execution(execution, events, contexts)
            except _mysql_writer.Unsupported:
                pass  # MLMD writes it below
            except _mysql_writer.DuplicateKey as exc:
                raise _Duplicate(str(exc)) from None
            except Exception as exc:
                raise self._guard.damaged(exc) or StoreError(
                    f"the store rejected the action: {_secrets.redact(str(exc))}") from None
        try:
            return self._mlmd.put_execution(  # type: ignore[no-any-return]
                execution, events, contexts,
                reuse_context_if_already_exist=True,
                reuse_artifact_if_already_exist_by_external_id=False,
                force_reuse_context=True,
            )
        except mlmd_errors.AlreadyExistsError as exc:
            raise _Duplicate(str(exc)) from None
        except mlmd_errors.StatusError as exc:
            raise self._guard.damaged(exc) or StoreError(
                f"the store rejected the action: {_secrets.redact(str(exc))}") from None

    def _already_recorded(self, act: _Action) -> bool:
        """Whether this action's execution (by its external id) was committed after all."""
        from ml_metadata import errors as mlmd_errors
        from ml_metadata.proto import metadata_store_pb2 as pb

        try:
            (execution,) = self._mlmd.get_executions_by_external_ids([act.external_id])
        except (mlmd_errors.NotFoundError, ValueError):
            return False
        events = self._mlmd.get_events_by_execution_ids([execution.id])
        act.committed, act.execution_id = True, execution.id
        act.output_ids = [e.artifact_id for e in events if e.type == pb.Event.OUTPUT]
        return True


class _Conflict(Exception):
    """A unique key (a record's name@version) was taken by a concurrent writer."""


class _Duplicate(Exception):
    """A write found a unique key (name@version, an external id) taken."""


def _drop_empty_properties(node: Any) -> None:
    """Remove map entries that reading an absent property created (protobuf maps insert on read);
    MLMD rejects a property without a value."""
    for props in (node.properties, node.custom_properties):
        for key in [k for k, v in props.items() if v.WhichOneof("value") is None]:
            del props[key]


def _text(props: Any, key: str) -> str:
    """A string property, or "" when absent, without inserting it."""
    return str(props[key].string_value) if key in props else ""


def _name_of(art: Any) -> str:
    """A record artifact is named ``NAME@VERSION``."""
    return str(art.name).rsplit("@", 1)[0]


def _created(art: Any) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(art.create_time_since_epoch / 1000, tz=_dt.timezone.utc)


def _translate(exc: Exception) -> MlmdMagicError:
    return StoreError(f"{type(exc).__name__}: {_secrets.redact(str(exc))}")


def _props(node: Any, **values: Any) -> None:
    for key, value in values.items():
        if value is None:
            continue
        prop = node.properties[key]
        if isinstance(value, bool) or isinstance(value, int):
            prop.int_value = int(value)
        elif isinstance(value, float):
            prop.double_value = value
        else:
            prop.string_value = str(value)


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + f"... [{len(text) - _MAX_TEXT} more characters]"


def _safe_args(arguments: dict[str, Any]) -> dict[str, Any]:
    try:
        plain: dict[str, Any] = json.loads(json.dumps(arguments, default=str))
        return plain
    except (TypeError, ValueError):
        return {k: repr(v)[:1000] for k, v in arguments.items()}


_MAX_JSON = 1_000_000


def _scenario_digest(model: str, params_json: str, description: str) -> str:
    """``content_hash({"kind": "scenarios", "model": ..., "params": ..., "description": ...})``,
    assembled from the already-canonical params text instead of encoding them again."""
    import hashlib

    text = (f'{{"description":{json.dumps(description, ensure_ascii=False)},"kind":"scenarios",'
            f'"model":{json.dumps(model, ensure_ascii=False)},"params":{params_json}}}')
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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
    if isinstance(value, str) and len(value) > _MAX_TEXT:
        raise ValidationError(f"{what} is longer than {_MAX_TEXT} characters; shorten it")
    if isinstance(value, str) and "\x00" in value:
        # MLMD's readers end a string at NUL: the rest would be lost without a word
        raise ValidationError(f"{what} contains a NUL character (\\x00), which the store cannot keep; remove it")


def _row_view(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    if kind == "experiments":
        return {**data, "name": data["experiment"], "model": data["scenario"]["model"],
                "datasource": f"{data['datasource']['name']}@{data['datasource']['version']}",
                "scenario": f"{data['scenario']['name']}@{data['scenario']['version']}"}
    return data


def _list_row(kind: str, data: dict[str, Any], art: Any) -> dict[str, Any]:
    created = _created(art)
    if kind == "experiments":
        view = _row_view(kind, data)
        return {"name": view["name"], "version": data["version"], "datasource": view["datasource"],
                "scenario": view["scenario"], "model": view["model"],
                "overrides": art.properties["overrides"].string_value,
                "params": canonical_json(data["params"]), "created": created}
    if kind == "scenarios":
        return {"name": data["name"], "version": data["version"], "model": data["model"],
                "params": canonical_json(data["params"]), "description": data["description"], "created": created}
    return {"name": data["name"], "version": data["version"], "format": data["format"], "uri": data["uri"],
            "splits": ", ".join(f"{k}={v}" for k, v in data["examples"].items()),
            "label": data["label"], "fingerprint": data["fingerprint"][:12],
            "description": data["description"], "created": created}


_COLUMNS = {
    "experiments": ["name", "version", "datasource", "scenario", "model", "overrides", "params", "created"],
    "scenarios": ["name", "version", "model", "params", "description", "created"],
    "datasources": ["name", "version", "format", "uri", "splits", "label", "fingerprint", "description", "created"],
}


def _frame(kind: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(rows, columns=_COLUMNS[kind])
