"""The ``Store``: one connected MLMD store, and every action a person takes on it.

A thin facade: versioned records live in :mod:`~mlmd_magic.store.records`, trainings and
evaluations in :mod:`~mlmd_magic.store.runs`, lineage in :mod:`~mlmd_magic.store.lineage`,
stale-run cleaning in :mod:`~mlmd_magic.store.maintenance`; each action is written by the
backend's :class:`~mlmd_magic.backend.recorder.Recorder` as one MLMD execution in one
transaction. Everything returned is plain Python: records, dicts, DataFrames and results.
"""

from __future__ import annotations

import builtins
import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

from ..backend import session as _session
from ..backend.connection import Backend, backend_for
from ..backend.recorder import Recorder
from ..backend.resilience import ResilientStore
from ..backend.storeguard import StoreGuard
from ..backend.types import lookup_types, register_types
from ..backend.uri import StoreURI, parse_uri, resolve_uri
from ..core.query import Where, check_offset
from ..core.record import Record
from ..core.values import Diff, merge_overrides, normalise_kind
from ..display.details import details_html
from ..errors import MlmdMagicError, NotFoundError, ValidationError
from . import browse
from .artifacts import NodeDetails, list_nodes, show_node
from .artifacts import types as store_types
from .browse import Page
from .lineage import Lineage, lineage, start_artifact
from .maintenance import reap_stale_runs
from .options import StoreOptions
from .records import Records, check_policy
from .release import ModelCard, Pushed, Release
from .reproduce import Reproduction, reproduce
from .results import Evaluation, Run, RunComparison, RunProgress
from .runs import Runs
from .sweeps import Sweep, Sweeps

if TYPE_CHECKING:
    import pandas as pd

    from .background import BackgroundRun
    from .ownrun import OwnRun

__all__ = ["Store", "connect", "default_uri"]


def default_uri() -> str:
    """The URI :func:`connect` opens without one: ``$MLMD_MAGIC_URI``, else ``sqlite:///mlmd.sqlite``."""
    return resolve_uri(None)


def sqlite_file(uri: str | None = None) -> str | None:
    """The file of the SQLite store ``uri`` (default: :func:`default_uri`) names; None for other
    stores, or a URI that does not parse (opening it says what is wrong)."""
    try:
        parsed = parse_uri(uri or default_uri())
    except MlmdMagicError:
        return None
    return parsed.path if parsed.scheme == "sqlite" else None


def connect(uri: str | None = None, *, options: StoreOptions | None = None) -> Store:
    """Open the store at ``uri`` (see :func:`mlmd_magic.connect`) with ``options``.

    Raises
    ------
    StoreConnectionError
        When the URI is malformed or the store cannot be opened; the message says what to do.
    """
    return open_uri(parse_uri(resolve_uri(uri)), options=options)


def open_uri(uri: StoreURI, *, options: StoreOptions | None = None) -> Store:
    """Open the store ``uri`` names (parsed; a worker's may carry the password it was handed)."""
    backend = backend_for(uri)
    mlmd = ResilientStore(backend.open, can_reconnect=backend.can_reconnect)
    return Store(mlmd, uri, backend, options)



def _renamed(old: str, new: str) -> Any:
    """``Store.old``: calls ``Store.new``, with a ``DeprecationWarning`` saying so."""
    def alias(self: Store, *args: Any, **kwargs: Any) -> Any:
        warnings.warn(f"Store.{old} is now Store.{new}; the old name goes in the next release",
                      DeprecationWarning, stacklevel=2)
        return getattr(self, new)(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old
    alias.__doc__ = f"Deprecated: the old name of :meth:`{new}`."
    return alias

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

    def __init__(self, mlmd_store: Any, uri: StoreURI, backend: Backend, options: StoreOptions | None = None
                 ) -> None:
        self._uri = uri
        self._backend = backend
        #: settings a person may change (runs folder, stale-run age); shared with the magics
        self.options = options if options is not None else StoreOptions()
        guard = StoreGuard.for_uri(uri)  # read-only files, removed files, damaged files
        types = lookup_types(mlmd_store) if guard.read_only else register_types(mlmd_store)
        self._recorder = Recorder(mlmd_store, types, label=uri.masked(), guard=guard)
        self._records = Records(self._recorder, backend.record_lock)
        # a running training writes its progress on a connection of its own (an in-memory store has one only)
        live_connect = (lambda: self._recorder.mlmd) if uri.scheme == "memory" else backend.open
        self._runs = Runs(self._records, self._recorder, self.runs_root, live_connect, self.options.stale_after_s)
        self._runs.live_reopens = backend.can_reconnect
        self._release = Release(self._records, self._runs, self._recorder)
        self._sweeps = Sweeps(self._records, self._runs, self._recorder, backend, self.options.stale_after_s)
        #: trainings left RUNNING by a dead kernel, marked FAILED when this store was opened
        self.reaped_runs = [] if guard.read_only else reap_stale_runs(mlmd_store, self.options.stale_after_s())

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
        return self._recorder.guard_checks.read_only

    @property
    def read_only_reason(self) -> str | None:
        """Why the store was opened read-only, or None."""
        return self._recorder.guard_checks.read_only_reason

    @property
    def scheme(self) -> str:
        """``"memory"``, ``"sqlite"`` or ``"mysql"``."""
        return self._uri.scheme

    @property
    def default_alias(self) -> str:
        """The name ``%mlmd connect`` gives this store when none is asked for."""
        return self._backend.default_alias()

    @property
    def mlmd(self) -> Any:
        """The underlying ``ml_metadata`` ``MetadataStore``, for plain MLMD code.

        Calls through it are retried on a busy database or a lost MySQL connection.
        """
        self._recorder.check_open()
        return self._recorder.mlmd

    def runs_root(self) -> str:
        """Where run folders go: :attr:`options` ``runs_dir`` (``$MLMD_MAGIC_RUNS_DIR``), else beside
        a SQLite store, else ``./mlmd-magic-runs``."""
        return self.options.runs_dir_or_env() or self._backend.runs_root()

    def close(self) -> None:
        """Release the connection. The object cannot be used afterwards."""
        self._sweeps.close()
        self._recorder.close()
        self._backend.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (an open panel over the store then stops following it)."""
        return bool(self._recorder.closed)

    @contextlib.contextmanager
    def unrecorded(self) -> Iterator[Store]:
        """Reads inside this block (fetch, list, history, diff, lineage, compare) are not recorded.

        For a panel's internal reads — filtering, paging, selecting a row — which are not a
        person's action. Writes (new versions, trainings, evaluations) are always recorded.

        Example
        -------
        >>> import mlmd_magic as mm
        >>> store = mm.connect("memory://")
        >>> with store.unrecorded():
        ...     store.ls("scenarios").empty
        True
        >>> len(store.mlmd.get_executions())
        0
        """
        with _session.unrecorded_reads():
            yield self

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " (closed)" if self._recorder.closed else ""
        return f"<mlmd_magic.Store {self._uri.masked()}{state}>"

    # ------------------------------------------------------------------ records

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
        label_names : names of classes 0..K-1 in order (``["euploid", "T21", "T18", "T13"]``):
            evaluations name per-class metrics with them (``recall_T21``) unless told otherwise.
        from_artifact : the id of another tool's ``Examples`` artifact (TFX's ExampleGen or
            Transform output), in place of ``uri``, ``format`` and ``splits``: its splits are its
            ``split_names`` under ``Split-<name>/`` (gzip TFRecords), its features come from the
            ``Schema`` artifact of the same pipeline run when there is one (else from the files),
            and the record's action has an INPUT event to it, so lineage runs from the pipeline's
            ExampleGen through experiments, runs and models. Nothing of the artifact is changed.

        Returns
        -------
        Record
            ``status`` is ``"created"`` for a new version, ``"unchanged"`` when an identical
            version exists already.

        Raises
        ------
        InvalidNameError, DataSourceError, ValidationError
            For bad arguments or unreadable files (recorded as a FAILED action); a missing or
            moved ``from_artifact`` uri names the path.
        StoreError
            When the store rejects the write.
        """
        return self._records.add_datasource(name, uri=uri, format=format, splits=splits, label=label,
                                            description=description, features=features, label_names=label_names,
                                            from_artifact=from_artifact)

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
        return self._records.add_scenario(name, model=model, params=params, description=description)

    def add_experiment(
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
        return self._records.experiment(name, datasource=datasource, scenario=scenario, overrides=overrides,
                                        description=description)

    def add_policy(
        self,
        name: str,
        *,
        thresholds: Sequence[Any],
        slices: Sequence[Any] | None = None,
        description: str | None = None,
        owner: str | None = None,
    ) -> Record:
        """Register a release policy (or a new version of it): the slices of data and the
        thresholds a model must pass before it is released, owned by a person.

        ``slices`` and ``thresholds`` are those of :meth:`evaluate` (see
        :mod:`mlmd_magic.evaluation`); ``store.evaluate(model, policy="NAME[@N]")`` applies
        them and :meth:`push` releases only a model blessed under a policy.

        Raises
        ------
        ValidationError
            For a bad slice or threshold, no threshold at all, a threshold naming a slice the
            policy does not define (the message lists the slices it does), or a metric no
            evaluation computes (``sensitivity_T21``: the message names ``recall_T21``).
        """
        return self._records.add_policy(name, thresholds=thresholds, slices=slices, description=description,
                                        owner=owner)

    @staticmethod
    def check_policy(slices: Any, thresholds: Any) -> tuple[builtins.list[dict[str, Any]],
                                                            builtins.list[dict[str, Any]]]:
        """Check a policy's ``slices`` and ``thresholds`` by the rules :meth:`add_policy` applies,
        without recording anything (what the policy editor validates as a person types); returns
        them written out in full.

        Raises
        ------
        ValidationError
            As :meth:`add_policy` does.
        """
        return check_policy(slices, thresholds)

    def get_policy(self, ref: str) -> dict[str, Any]:
        """The policy ``NAME`` or ``NAME@N`` as a plain dict (name, version, owner, description,
        slices, thresholds)."""
        return self._records.fetch("policies", ref, "FetchPolicy").to_dict()

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
        return self._records.get_experiment(ref)

    def get_datasource(self, ref: str) -> dict[str, Any]:
        """The data source ``NAME`` or ``NAME@N`` as a plain dict (see :meth:`get_experiment`)."""
        return self._records.get_datasource(ref)

    def get_scenario(self, ref: str) -> dict[str, Any]:
        """The scenario ``NAME`` or ``NAME@N`` as a plain dict (see :meth:`get_experiment`)."""
        return self._records.get_scenario(ref)

    def record(self, ref: str, kind: str | None = None) -> Record:
        """One record as a :class:`Record` (with its HTML repr); ``kind`` when a name is ambiguous.
        ``get_KIND(ref)`` gives the same record's data as a plain dict."""
        return self._records.get(ref, kind)

    def kind_of(self, ref: str) -> str:
        """Which kind of record ``ref`` names.

        Raises
        ------
        NotFoundError
            When no record of any kind has that name.
        AmbiguousRefError
            When several kinds have that name (pass ``kind=`` then).
        """
        return self._records.kind_of(ref)

    def names(self, kind: str | None = None) -> builtins.list[str]:
        """Sorted record names (of one kind, or of all kinds), e.g. for tab completion."""
        return self._records.names(kind)

    def export(self, ref: str, kind: str | None = None) -> dict[str, Any]:
        """A record as a plain spec (``kind``, ``name`` and what defines it), which
        :meth:`import_records` turns back into the same record in any store.

        The ``mlmd-magic export`` command writes it as YAML.

        Raises
        ------
        NotFoundError, AmbiguousRefError
            When ``ref`` names no record, or records of several kinds (pass ``kind``).
        """
        return self._records.export(ref, kind)

    def import_records(self, specs: Sequence[Any], where: str = "the records") -> builtins.list[Record]:
        """Register each spec (as :meth:`export` writes them), in order; each is one action.

        Identical records already in the store come back ``unchanged``; changed ones become new
        versions.

        Raises
        ------
        ValidationError
            When a spec lacks ``kind`` and ``name`` or holds unknown keys (naming which spec).
        """
        return self._records.import_records(specs, where)

    def add(self, kind: str, name: str, spec: Any, where: str = "the cell body") -> Record:
        """Register (or version) a record of ``kind`` from a spec: the keys of a ``%%datasource``,
        ``%%scenario`` or ``%%experiment`` body (see :mod:`mlmd_magic.core.specs`).

        Raises
        ------
        ValidationError
            For unknown or missing keys (naming ``where``), and whatever the record's own
            ``add_*`` call raises.
        """
        return self._records.add(kind, name, spec, where)

    def history(self, ref: str, kind: str | None = None) -> pd.DataFrame:
        """Every version of a record, oldest first, as a DataFrame."""
        return self._records.history(ref, kind)

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
        return self._records.diff(ref_a, ref_b, kind)

    # ------------------------------------------------------------------ training and evaluation

    @overload
    def train(self, ref: str, *, workdir: str | None = ..., force: bool = ..., callbacks: Sequence[Any] | None = ...,
              progress: Any = ..., overrides: dict[str, Any] | None = ..., wait: Literal[True] = ...,
              on: None = ..., **more_overrides: Any) -> Run: ...

    @overload
    def train(self, ref: str, *, workdir: str | None = ..., force: bool = ..., callbacks: Sequence[Any] | None = ...,
              progress: Any = ..., overrides: dict[str, Any] | None = ..., wait: Literal[False],
              on: str | None = ..., **more_overrides: Any) -> BackgroundRun: ...

    @overload
    def train(self, ref: str, *, workdir: str | None = ..., force: bool = ..., callbacks: Sequence[Any] | None = ...,
              progress: Any = ..., overrides: dict[str, Any] | None = ..., wait: bool = ...,
              on: str, **more_overrides: Any) -> BackgroundRun: ...

    @overload
    def train(self, ref: str, *, workdir: str | None = ..., force: bool = ..., callbacks: Sequence[Any] | None = ...,
              progress: Any = ..., overrides: dict[str, Any] | None = ..., wait: bool = ...,
              on: str | None = ..., **more_overrides: Any) -> Run | BackgroundRun: ...

    def train(
        self,
        ref: str,
        *,
        workdir: str | None = None,
        force: bool = False,
        callbacks: Sequence[Any] | None = None,
        progress: Any = True,
        overrides: dict[str, Any] | None = None,
        wait: bool = True,
        on: str | None = None,
        **more_overrides: Any,
    ) -> Run | BackgroundRun:
        """Train experiment ``NAME`` (latest) or ``NAME@N`` with the Keras trainer, on record.

        ``overrides`` (a mapping, e.g. ``{"epochs": 3}``; keyword arguments other than the
        ones named here add to it, e.g. ``epochs=3``) first define a new experiment version
        with them merged into the experiment's overrides, exactly as :meth:`add_experiment` would.
        They only ever override parameters: a parameter called ``workdir``, ``force``,
        ``progress`` or ``callbacks`` is overridden through the mapping. A run
        identical to an earlier one (same experiment version, data fingerprint, trainer
        code and Keras backend) is not repeated: it is recorded as CACHED and returns the
        earlier model, unless ``force``. The model is saved under ``workdir`` (default:
        ``$MLMD_MAGIC_RUNS_DIR``, else ``mlmd-magic-runs/`` beside a SQLite store).

        The per-epoch history (training and validation metrics) is written on the run as it
        goes, so :meth:`watch` and :meth:`compare` draw its curves, finished or not. ``progress``
        is ``True`` (a bar with ETA and live curves in notebooks, Keras-style lines in a
        terminal), ``False``, or a :class:`~mlmd_magic.trainer.ProgressReporter` (e.g. with
        ``log_loss=True``). A running training stops when :meth:`cancel` asks it to, from any
        process.

        ``wait=False`` starts the run in its own detached process (it survives the end of this
        one) and returns a :class:`~mlmd_magic.store.background.BackgroundRun` once the run is
        recorded; ``on="ray://HOST:PORT"`` (or a cluster's ``HOST:6379``) submits it to a Ray
        cluster instead (see :mod:`mlmd_magic.store.ray_jobs`), asking for the ``gpus`` the
        params ask for. Neither works on a ``memory://`` store; Ray needs a MySQL store.

        Raises
        ------
        NotFoundError
            When the experiment does not exist.
        TrainingError
            When the trainer fails (recorded FAILED); KeyboardInterrupt is recorded CANCELED
            and re-raised, with no model left behind.
        ValidationError
            For a background run on a store no other process can open, or a Ray cluster that
            cannot reach the store, the data or the runs folder (the message says which).
        """
        merged = merge_overrides(overrides, more_overrides)
        if wait and on is None:
            return self._runs.train(ref, workdir=workdir, force=force, callbacks=callbacks, progress=progress,
                                    overrides=merged)
        if callbacks:
            raise ValidationError("callbacks run in this process: a background or Ray run takes none "
                                  "(follow it with store.watch(run.id))")
        from .background import start_run

        return start_run(self, self._backend, self._runs, ref, merged, force=force, workdir=workdir, on=on)

    def start_run(self, ref: str, *, overrides: dict[str, Any] | None = None, workdir: str | None = None,
                  **more_overrides: Any) -> OwnRun:
        """A run of your own training code, on record as a run of the built-in trainer is: use it
        as a ``with`` block.

        >>> import mlmd_magic as mm, tempfile
        >>> from mlmd_magic import datasets
        >>> s = mm.connect("memory://")
        >>> _ = s.add_datasource("nipt", **datasets.simulate_nipt(tempfile.mkdtemp(), n_train=8, n_eval=4, n_test=4))
        >>> _ = s.add_scenario("tiny", model="mlp", params={"epochs": 2})
        >>> _ = s.add_experiment("t21", datasource="nipt", scenario="tiny")
        >>> with s.start_run("t21") as run:
        ...     for epoch in range(run.params["epochs"]):
        ...         run.log({"loss": 1 / (epoch + 1), "eval.accuracy": 0.5 + epoch / 10}, step=epoch)
        >>> run.result.state, run.result.metrics["eval"], run.name
        ('COMPLETE', {'accuracy': 0.6}, 't21@1#1')

        The run reads the experiment version ``ref`` names (``overrides`` first define a new
        version, as :meth:`train`'s do), its data source and its scenario; ``run.params`` are
        its parameters. ``run.log(metrics, step)`` records curves and progress (``watch``,
        ``ls runs`` and ``cancel`` see the run from anywhere; metrics named ``SPLIT.METRIC`` are
        its metrics per split), ``run.log_model(model)`` keeps a Keras or scikit-learn model
        (or any object ``joblib`` saves, or a file's path) as its model. The block's end records
        it COMPLETE (with its model, or none, said); an exception in it FAILED, with the
        exception, which goes on; Ctrl-C or a cancel request CANCELED, raised as
        :class:`~mlmd_magic.errors.RunCancelled`. ``run.result`` is then the :class:`Run`. A run
        of your own code is never CACHED (its code may read anything). See
        :mod:`mlmd_magic.store.ownrun`.

        Raises
        ------
        NotFoundError
            When the experiment does not exist.
        ValidationError
            For overrides that do not fit the experiment's parameters.
        DataSourceError
            When the data source's files changed since it was registered.
        """
        overrides = {**(overrides or {}), **more_overrides}
        return self._runs.start_own(ref, overrides=overrides, workdir=workdir)

    def train_job(self, ref: str, *, external_id: str, force: bool = False, workdir: str | None = None,
                  progress: Any = True) -> Run:
        """Train ``ref`` as the worker of a background or Ray run: the run's execution gets
        ``external_id``, by which the starting process finds it. See :meth:`train`."""
        return self._runs.train(ref, workdir=workdir, force=force, callbacks=None, progress=progress, overrides={},
                                external_id=external_id)

    def run_by_external_id(self, external_id: str) -> tuple[int, str] | None:
        """``(id, name)`` of the run written with ``external_id``, or None while there is none."""
        found = self._runs.by_external_id(external_id)
        return (int(found.id), str(found.name)) if found is not None else None

    def watch(self, run: Any, *, log_loss: bool = False) -> RunProgress:
        """Where a run stands now, read from the store: state, epochs done and the per-epoch
        history, drawn as curves in notebooks. Works for a run of any process or machine
        recording into this store; ``%mlmd watch`` calls it until the run ends. An unrecorded read.

        Raises
        ------
        NotFoundError
            When no such run exists.
        """
        self._recorder.check_open()
        progress = self._runs.progress(run)
        progress.log_loss = log_loss
        return progress

    def reproduce(self, model: Any, *, tolerance: float | None = None, progress: Any = True) -> Reproduction:
        """Train a model's run again from its record alone and say whether it reproduced.

        The parameters come from the experiment version the run used; the data source's files
        are checked against its record (a changed split is named, and nothing is trained); the
        trainer code, the model builder's source, the package versions and the Keras backend
        are compared with what the run recorded; then the run is trained again (``force``) and
        each recorded metric compared within ``tolerance`` (default 1e-6 for a CPU run, whose
        numbers are equal with the same seed, 0.02 for a GPU run). Recorded as a ``Reproduce``
        execution linked to both models.

        Raises
        ------
        NotFoundError
            When the model (``model:ID``, ``run:ID``, ``EXPERIMENT@N#K``) does not exist.
        """
        return reproduce(self._runs, model, tolerance=tolerance, progress=progress)

    def cancel(self, run: Any, *, wait_s: float = 60.0) -> RunProgress:
        """Ask a running training to stop, wherever it runs; it is recorded CANCELED with no model.

        The request is a ``CancelRun`` execution the training looks for about once a second;
        this waits up to ``wait_s`` seconds for the run to stop and returns where it stands.

        Raises
        ------
        NotFoundError
            When no such run exists.
        ValidationError
            When the run is not running.
        """
        return self._runs.cancel(run, wait_s)

    def evaluate(
        self,
        run_or_model: Any,
        *,
        data: Any = None,
        slices: Sequence[Any] | None = None,
        thresholds: Sequence[Any] | None = None,
        baseline: Any = None,
        class_names: Sequence[str] | None = None,
        policy: str | None = None,
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
        class_names : names of classes 0..K-1 for per-class metrics (``recall_T21``); default:
            the data source's ``label_names``.
        policy : a release policy, ``NAME`` (its latest version) or ``NAME@N``, whose slices and
            thresholds to use instead of ``slices`` / ``thresholds``; the ``Evaluate`` execution
            gets an INPUT event to that policy version and the evaluation names it (``policy``).

        The ``mlmd_magic.Evaluation`` artifact carries the verdict as TFX does: custom
        properties ``blessed`` (1/0), ``current_model_id`` and ``baseline_model_id``.
        """
        return self._runs.evaluate(run_or_model, data=data, slices=slices, thresholds=thresholds,
                                   baseline=baseline, class_names=class_names, policy=policy)

    # ------------------------------------------------------------------ releasing

    def model_card(self, model: Any, *, to: str | None = None) -> ModelCard:
        """The model card of a model, filled from the records alone, shown as HTML in notebooks.

        Writes ``model_card.json`` (the field names of Google's Model Card Toolkit schema:
        ``model_details``, ``model_parameters`` with the data per split — examples, label
        distribution, fingerprint —, ``quantitative_analysis`` with the metrics of every slice
        under each policy and its verdict, ``considerations``) and ``model_card.html`` into
        ``to`` (default: the model's run folder).

        Raises
        ------
        NotFoundError
            When the model does not exist.
        """
        return self._release.model_card(model, to)

    def push(self, model: Any, *, to: str, force: bool = False, policy: str | None = None) -> Pushed:
        """Release a model to ``to`` as a TensorFlow SavedModel in TF Serving's layout ``to/<N>/``.

        Only when the model's latest evaluation under a policy is blessed, and only under that
        policy's current version: ``policy`` NAME means its latest version (a blessing under an
        older version is refused, saying what to run), ``NAME@N`` pins version N; without
        ``policy``, the newest evaluation under any policy, which must be under that policy's
        current version. Version numbers increase (1, 2, ...) like TFX's Pusher: one more than
        the largest folder named in digits (a dangling link is passed over); a version beyond
        2**63 - 1 is refused before anything is written, and a failed push leaves nothing on
        disk. The SavedModel's ``serving_default`` signature takes the data source's features by
        name; the model card is written beside it. Recorded as a ``mlmd_magic.Push`` execution with an output
        ``mlmd_magic.PushedModel`` artifact (uri, version, policy, pushed model).

        Raises
        ------
        NotBlessedError
            When the evaluation is not blessed (listing the failed checks), is under an older
            version of its policy, or there is none; ``force=True`` pushes a model whose checks
            failed anyway and records who overrode which (not an outdated or missing evaluation).
        ValidationError
            When the target is not a folder, or its next version would exceed 2**63 - 1.
        """
        return self._release.push(model, to, force=force, policy=policy)

    # ------------------------------------------------------------------ sweeps

    def sweep(
        self,
        name: str,
        *,
        experiment: str,
        space: dict[str, Any],
        objective: Any,
        sampler: str = "tpe",
        trials: int = 10,
        workers: int = 1,
        seed: int = 0,
        description: str | None = None,
        progress: bool = False,
        on_update: Callable[[Sweep], None] | None = None,
    ) -> Sweep:
        """Search parameters of an experiment with Optuna: each trial a version of it of its own
        (``NAME@N~SWEEP@V#K``, which ``NAME`` never gives) and a run.

        Parameters
        ----------
        name : the sweep's name; defining it again with the same content continues it.
        experiment : the base experiment, ``NAME`` (its latest version, pinned now) or ``NAME@N``.
        space : ``{parameter: distribution}``, a parameter dotted when nested; distributions are
            ``{"loguniform": [lo, hi]}``, ``{"uniform": [lo, hi]}``, ``{"int": [lo, hi]}`` (or
            ``[lo, hi, step]``) and ``{"choice": [v1, v2, ...]}``.
        objective : ``{"metric": "eval.accuracy", "direction": "maximize"}`` (SPLIT.METRIC as runs
            report them; ``direction`` defaults to minimize for loss-like metrics).
        sampler : ``"tpe"``, ``"random"`` or ``"grid"`` (Optuna's samplers, seeded with ``seed``).
        trials : how many trials the sweep has in all (a re-run runs only those it still owes).
        workers : trials run at once, each in its own subprocess (needs a SQLite or MySQL store).
        on_update : called with the :class:`Sweep` as it stands after each finished trial.

        Returns
        -------
        Sweep
            ``trials`` (a DataFrame sorted by the objective), ``best`` (a :class:`Run`), an HTML
            form with a plot of the objective against each parameter.

        Raises
        ------
        ValidationError
            For a space key that is not a parameter (naming the closest one), an unknown
            distribution or an empty range (with the right form), an objective the trainer does
            not report (listing those it does).
        NotFoundError
            When the experiment does not exist.
        """
        return self._sweeps.sweep(name, experiment=experiment, space=space, objective=objective, sampler=sampler,
                                  trials=trials, workers=workers, seed=seed, description=description,
                                  progress=progress, on_update=on_update)

    def sweep_worker(self, ref: str, *, trials: int | None = None, workers: int = 1, seed_offset: int | None = None,
                     progress: bool = False, on_update: Callable[[Sweep], None] | None = None) -> Sweep:
        """Join sweep ``NAME`` (latest version) or ``NAME@N``: run the trials it still owes, sharing its
        Optuna study with every other process doing so (``mlmd-magic sweep NAME --worker``).

        Raises
        ------
        NotFoundError
            When no sweep has that name.
        """
        return self._sweeps.work(ref, trials=trials, workers=workers, seed_offset=seed_offset, progress=progress,
                                 on_update=on_update)

    def sweep_results(self, ref: str) -> Sweep:
        """Sweep ``NAME`` (latest version) or ``NAME@N`` as it stands: trials sorted by the objective,
        the best run, and the plot (``%mlmd compare sweep:NAME``).

        Raises
        ------
        NotFoundError
            When no sweep has that name.
        """
        return self._sweeps.result(ref)

    # ------------------------------------------------------------------ listings and lineage

    def types(self, counts: bool = False) -> builtins.list[dict[str, Any]]:
        """Every artifact, execution and context type in the store (``kind``, ``name``, and
        ``ours`` for ``mlmd_magic.*``), other tools' included; with ``counts``, how many nodes
        each has (``count``, counted up to 10,000; ``capped`` when there are more)."""
        self._recorder.check_open()
        return store_types(self._recorder.mlmd, counts=counts)

    def show(self, target: Any) -> NodeDetails:
        """One artifact (``42``, ``"42"``, ``"artifact:42"``) or execution (``"execution:7"``) of any
        tool, TFX's included: its properties, custom properties, the executions that wrote and
        read it (or the artifacts it read and wrote), and the contexts (pipeline, run, component
        run) it belongs to. Displays as HTML in notebooks and text elsewhere; ``to_dict()``
        gives plain values.

        Raises
        ------
        NotFoundError
            When the store has no such artifact or execution.
        ValidationError
            When ``target`` is not one of the forms above.
        """
        with self._recorder.action("ShowNode", {"target": str(target)}) as act:
            details = show_node(self._recorder.mlmd, target)
            act.outcome = details.label
            return details

    def ls(
        self,
        kind: str,
        where: str | None = None,
        limit: int | None = None,
        *,
        all_versions: bool = False,
        offset: int = 0,
        type: str | None = None,
        trials: bool = False,
    ) -> pd.DataFrame:
        """A table of records: one row per name (its latest version) unless ``all_versions``.

        Parameters
        ----------
        kind : ``"datasources"``, ``"scenarios"``, ``"experiments"``, ``"policies"``, ``"runs"``,
            ``"models"`` (with each model's latest verdict under each policy, ``verdicts``),
            ``"evaluations"`` (model, policy ``NAME@N`` if any, baseline, data, verdict, thresholds,
            failed checks), or ``"artifacts"``/``"executions"`` with ``type``.
        where : a filter on names and values, e.g. ``"name ~ 't21-*' and epochs >= 5"``
            (see :mod:`mlmd_magic.core.query` for the grammar).
        limit : at most this many rows.
        offset : skip this many matching rows first (pages of a listing).
        type : for ``"artifacts"`` and ``"executions"``: the MLMD type to list, any tool's
            (e.g. TFX's ``"Examples"``).
        trials : experiments only: the sweeps' trials too, a row each with its ``trial``
            (``SWEEP@V#K``); they are never a name's latest version.

        Raises
        ------
        ValidationError
            For an unknown kind, a bad filter or a bad limit.
        """
        with self._recorder.action("ListRecords", {"kind": kind, "where": where, "limit": limit, "offset": offset,
                                                   "all_versions": all_versions, "trials": trials}) as act:
            if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
                raise ValidationError(f"limit must be a positive whole number, got {limit!r}")
            offset = check_offset(offset)
            predicate = Where(where)
            lowered = kind.lower() if isinstance(kind, str) else ""
            if lowered in ("runs", "run", "models", "model"):
                frame = self._runs.table(lowered.rstrip("s") + "s", predicate, limit, offset)
            elif lowered in ("evaluations", "evaluation"):
                frame = browse.evaluation_table(self._runs, predicate, limit, offset)
            elif lowered in ("artifacts", "executions"):
                if not isinstance(type, str) or not type:
                    raise ValidationError(f"list({lowered!r}) needs type=..., e.g. type='Examples'; "
                                          "%mlmd types lists the store's types")
                frame = list_nodes(self._recorder.mlmd, lowered, type, predicate, limit, offset)
            else:
                kind = normalise_kind(kind)
                if trials and kind != "experiments":
                    raise ValidationError("trials=True lists experiments only: a sweep's trials are experiment "
                                          "versions")
                frame = self._records.table(kind, predicate, limit, offset, all_versions, trials)
            if frame.empty or limit is None:  # every record was looked at: an unknown key is a typo
                predicate.check()
            act.outcome = f"{len(frame)} rows"
            return frame

    def index_filters(self) -> dict[str, int]:
        """Give experiment and scenario versions and models written before this version their
        flat values for filter queries (``param.NAME``, ``metric.SPLIT.NAME``), so that rare
        filters cost a page (see ``docs/listings.md``). Once per store; resumable; recorded
        (``IndexFilters``). Only custom properties are added: contents and hashes stay as they are.

        Raises
        ------
        StoreError
            On a store opened read-only.
        """
        from ..errors import StoreError
        from .maintenance import index_filters

        if self._recorder.guard_checks.read_only:
            raise StoreError("the store was opened read-only: giving records their filter values writes to it; "
                             "connect with write access")
        with self._recorder.action("IndexFilters", {}) as act:
            counts = index_filters(self._recorder.mlmd, self._recorder.types)
            done = {kind: n for kind, n in counts.items() if kind != "already" and n}
            act.outcome = (", ".join(f"{n} {kind}" for kind, n in done.items()) or "nothing") + \
                f" given filter values; {counts['already']} had them"
            return counts

    def signature(self, *, executions: bool = True) -> tuple[Any, ...]:
        """What changes whenever anything is recorded in the store, by any process: the newest
        execution id and the id and update time of the execution and of the artifact updated
        last (three one-row reads; ``executions=False``: the artifact part only, one read). An
        open panel polls it to know when to read again. Not recorded."""
        from .browse import signature

        return signature(self.mlmd, executions)

    def page(self, kind: str, where: str | None = None, *, limit: int = 20, offset: int = 0,
             type: str | None = None) -> Page:
        """One page of :meth:`ls` (what a browser tab shows), read as :meth:`ls` with ``limit``
        reads it: its cost is one page's, whatever the store holds. ``total`` is how many rows
        match in all when the listing ends on this page, else None (``more``: rows follow).

        Runs get one column per split and metric (``test.accuracy``, rounded) instead of the
        ``metrics`` summary, then their experiment's ``overrides`` and one column per parameter.

        >>> import mlmd_magic as mm
        >>> s = mm.connect("memory://")
        >>> for n in range(3):
        ...     _ = s.add_scenario(f"s{n}", model="mlp", params={"epochs": n + 1})
        >>> s.page("scenarios", limit=2)
        rows 1–2 of many (page 1)
        >>> s.page("scenarios", limit=2, offset=2)
        rows 3–3 of 3 (page 2 of 2)

        Raises
        ------
        ValidationError
            As :meth:`ls` does (a bad filter, an unknown kind or a bad limit).
        """
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValidationError(f"limit must be a positive whole number, got {limit!r}")
        offset = check_offset(offset)
        # one row beyond the page says whether more follow; counting them all would read them all
        page, total, more = browse.page_of(self.ls(kind, where=where, type=type, limit=limit + 1, offset=offset),
                                           limit, offset)
        if isinstance(kind, str) and kind.lower() in ("runs", "run") and not page.empty:
            page = browse.run_page_columns(self._runs, page)
        return Page(page, total, offset, limit, more)

    def run(self, ref: Any) -> Run:
        """The training run ``ref`` (an id, ``run:ID``, ``EXPERIMENT@N#K`` or ``EXPERIMENT[@N]``,
        its latest run) as a :class:`~mlmd_magic.Run` with its metrics and curves.

        Raises
        ------
        NotFoundError
            When no such run exists.
        """
        self._recorder.check_open()
        return browse.run(self._runs, ref)

    def evaluation(self, evaluation_id: int) -> Evaluation:
        """The evaluation record ``evaluation_id`` (see ``list("evaluations")``) with its table.

        Raises
        ------
        NotFoundError
            When no evaluation has that id.
        """
        self._recorder.check_open()
        return browse.evaluation(self._runs, evaluation_id)

    def latest_evaluation(self, model: Any, *, policy: str | None = None) -> Evaluation:
        """The newest evaluation of ``model`` (a :class:`Run`, model id, ``model:ID``, run or
        experiment reference) — under release policy ``policy`` (``NAME`` or ``NAME@N``) if given.

        Raises
        ------
        NotFoundError
            When the model, or the policy, is unknown, or the model has no such evaluation.
        """
        self._recorder.check_open()
        found = self._runs.resolve_model(model)
        art = self._release.newest_evaluation(found, policy, any_policy=True)
        if art is None:
            under = f" under policy {policy}" if policy else ""
            raise NotFoundError(f"{found.name or f'model #{found.id}'} has no evaluation{under}; evaluate it first: "
                                f"%mlmd evaluate model:{found.id}" + (f" --policy {policy}" if policy else ""))
        return self.evaluation(art.id)

    def details(self, kind: str, key: Any, *, type: str | None = None) -> str:
        """A row of :meth:`page` as HTML: the record (hyperparameters first, features folded), its
        versions and its lineage. ``key`` is ``NAME@N`` for records, the id for runs, models,
        evaluations and other tools' artifacts (``kind="artifacts"``: :meth:`show` and the lineage).

        Raises
        ------
        NotFoundError, ValidationError
            When ``key`` names nothing of that kind.
        """
        kind = kind.lower() if isinstance(kind, str) else kind
        shown: builtins.list[Any] = []
        model, why_failed, history = None, None, None
        if kind == "runs":
            run = self.run(int(key))
            shown.append(run)
            if run.experiment:
                shown.append(self.record(run.experiment, kind="experiments"))
            target = f"run:{run.id}" if run.model_id is not None else None
        elif kind == "models":
            row = self.ls("models", where=f"model == {int(key)}")
            if row.empty:
                raise NotFoundError(f"no model with id {key}; see %mlmd ls models")
            info = row.iloc[0]
            model = {"id": int(key), "name": info["name"], "task": info["task"], "uri": info["uri"]}
            if info["experiment"]:
                shown.append(self.record(str(info["experiment"]), kind="experiments"))
            target = f"model:{int(key)}"
        elif kind == "evaluations":
            evaluation = self.evaluation(int(key))
            why_failed = evaluation.explain() if evaluation.result.failed else None
            shown, target = [evaluation], str(int(key))
        elif kind == "artifacts":
            shown, target = [self.show(int(key))], str(int(key))
        else:
            kind = normalise_kind(kind)
            shown = [self.record(str(key), kind=kind)]
            history = self.history(str(key), kind=kind)
            target = str(key)
        graph = None if target is None else \
            self.lineage(target, kind=kind if kind in ("experiments", "scenarios", "datasources") else None)
        return details_html(shown, model=model, why_failed=why_failed, history=history, kind=kind, lineage=graph)

    def lineage(self, target: Any, kind: str | None = None) -> Lineage:
        """The lineage graph around a record, ``model:ID``, ``run:ID`` or an artifact id: data files,
        records, runs, models and evaluations, drawn as SVG in notebooks and as text elsewhere.

        Raises
        ------
        NotFoundError
            When nothing in the store answers to ``target`` (the message names it).
        ValidationError
            When ``target`` is not one of the forms above.
        """
        with self._recorder.action("ShowLineage", {"target": str(target), "kind": kind}) as act:
            start = start_artifact(self._records, self._runs, target, kind)
            act.inputs.append(start)
            graph = lineage(self._recorder.mlmd, start)
            act.outcome = f"{len(graph.nodes)} nodes"
            return graph

    def compare(self, runs: Sequence[Any]) -> RunComparison:
        """Training runs side by side: the parameters that differ, metrics per split, curves.

        ``runs`` are run ids, ``"run:ID"`` strings or :class:`~mlmd_magic.Run` objects.

        Raises
        ------
        NotFoundError
            When a run does not exist (the message names it).
        """
        with self._recorder.action("CompareRuns", {"runs": [str(getattr(r, "id", r)) for r in runs]}) as act:
            comparison, models = self._runs.compare_runs(runs)
            act.inputs += models
            act.outcome = f"{len(comparison.runs)} runs"
            return comparison

    # The names of the first releases, one release more, each warning: what to call instead
    experiment = _renamed("experiment", "add_experiment")
    get = _renamed("get", "record")
    list = _renamed("list", "ls")
    get_sweep = _renamed("get_sweep", "sweep_results")
