"""Sweeps on record: many versions of an experiment, searched by Optuna, run and compared as one.

* The sweep is a versioned ``mlmd_magic.Sweep`` artifact (base experiment version, search
  space, objective, sampler, seed) in a ``mlmd_magic.Sweep`` context named after it; each
  invocation (a cell, an API call, a worker) is a ``Sweep`` execution.
* Each trial is an experiment version of its own, ``BASE@N~SWEEP@V#K`` (the base version with
  the trial's overrides), in the sweep's context and never in the base name's, so ``NAME``
  never gives a trial; and an ordinary ``Train`` run, associated with the sweep's context and
  carrying its trial number. A trial with the values of an earlier trial of the same sweep
  version is that trial, whose run is CACHED, so re-running a sweep trains nothing twice.
* The search is Optuna's (ask/tell, TPE or random sampler with a fixed seed; a grid's points
  are queued trials, see :class:`_Grid`). Its study lives beside the store in Optuna's own
  storage, which any Optuna tool (``optuna-dashboard``) opens — Optuna's journal file
  ``FILE.sweeps.journal`` next to a SQLite store, Optuna's RDB storage in a database next to
  the store's on a MySQL server (``DATABASE_sweeps``), in this process for ``memory://`` — so
  processes on several machines share one search through it. Trial numbers are handed out by
  that storage: a worker that asks for trial N runs it only if fewer than ``trials`` trials
  are done or running before N, so no trial runs twice and the budget holds.
* What Optuna keeps must fit its storage on every backend (on MySQL a parameter's distribution
  is a 64 KB ``TEXT``): checked when a sweep is defined, before anything is written.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..backend import secrets as _secrets
from ..backend.connection import Backend
from ..backend.properties import text
from ..backend.recorder import Action, Recorder
from ..core.names import check_name, is_trial, parse_ref
from ..core.sweeps import (
    Dimension,
    Objective,
    SweepSpec,
    check_grid_size,
    check_space_keys,
    grid_points,
    parse_objective,
    parse_space,
    parse_spec,
)
from ..core.values import canonical_json
from ..display.sweeps import sweep_html, sweep_plot_png
from ..errors import MlmdMagicError, RunCancelled, StoreError, ValidationError
from .live import LiveWriter
from .maintenance import Owner, owner_token
from .records import Records
from .results import Run
from .runs import Runs

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Sweep", "Sweeps"]

_SUFFIX = "sweeps"  # the side storage: FILE.sweeps.journal, or database DATABASE_sweeps
_LOCK_GRACE_S = 30  # a journal lock held longer is a killed worker's: taken over (Optuna's own grace period)
_SEED_STRIDE = 7919  # a resumed or parallel search draws new values, not the first ones again
_TEXT_BYTES = 65_535  # MySQL's TEXT: Optuna's RDB storage keeps each distribution and attribute in one
_NAME_CHARS = 512  # and a parameter's name in a VARCHAR(512)
# the trials this process works on, (study, number): one of its own trials not among them was left
# behind (its worker stopped between asking for it and writing its own owner, or on an error)
_WORKING: set[tuple[str, int]] = set()
_WORKING_LOCK = threading.Lock()


@dataclass(frozen=True)
class _Plan:
    """One version of a sweep, as read from its artifact."""

    name: str
    version: int
    experiment: str  # the base experiment version, NAME@N
    space: dict[str, Dimension]
    objective: Objective
    sampler: str
    seed: int
    artifact: Any = field(repr=False)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def study_name(self) -> str:
        return f"mlmd_magic.Sweep:{self.ref}"

    def grid_size(self) -> int | None:
        """The grid's number of points, counted (never listed); None for another sampler."""
        return grid_points(self.space) if self.sampler == "grid" else None


@dataclass(frozen=True)
class Sweep:
    """A sweep's trials and its best run. ``trials`` is a DataFrame sorted by the objective, best
    first; ``best`` the best trial's :class:`Run` (None while no trial has finished)."""

    name: str
    version: int
    experiment: str
    objective: Objective
    sampler: str
    budget: int
    trials: pd.DataFrame
    best: Run | None
    space: dict[str, Any] = field(default_factory=dict)
    storage: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def counts(self) -> dict[str, int]:
        """How many trials are in each state (COMPLETE, CACHED, FAILED, RUNNING, INTERRUPTED, DUPLICATE)."""
        states = self.trials["state"].value_counts().to_dict() if not self.trials.empty else {}
        return {str(k): int(v) for k, v in states.items()}

    def summary(self) -> str:
        """One line: what was run, what failed and why."""
        c = self.counts()
        done = c.get("COMPLETE", 0) + c.get("CACHED", 0)
        parts = [f"{done + c.get('FAILED', 0)} of {self.budget} trials done: {c.get('COMPLETE', 0)} trained, "
                 f"{c.get('CACHED', 0)} cached, {c.get('FAILED', 0)} failed"]
        if c.get("RUNNING"):
            parts.append(f"{c['RUNNING']} running")
        if c.get("INTERRUPTED"):
            parts.append(f"{c['INTERRUPTED']} interrupted (owed again)")
        if c.get("DUPLICATE"):  # a study of an older version, whose grid sampler ran a point twice
            parts.append(f"{c['DUPLICATE']} duplicate (a grid point run before; not counted)")
        line = "; ".join(parts)
        if c.get("FAILED"):
            errors = self.trials.loc[self.trials["state"] == "FAILED", "error"].value_counts()
            line += " — " + "; ".join(f"{n}× {reason}" for reason, n in errors.items())
        if self.best is not None:
            value = self.trials.iloc[0][self.objective.key]
            line += f". Best: {self.best.label} with {self.objective.key} = {value:.4g}"
        return line

    def to_dict(self) -> dict[str, Any]:
        """Plain values (the CLI's ``--json``)."""
        rows = json.loads(self.trials.to_json(orient="records"))
        return {"sweep": self.ref, "experiment": self.experiment, "objective": self.objective.to_dict(),
                "sampler": self.sampler, "budget": self.budget, "summary": self.summary(), "trials": rows,
                "best": self.best.name if self.best is not None else None}

    def __repr__(self) -> str:
        import pandas as pd

        head = (f"Sweep {self.ref} over {self.experiment} ({self.sampler}, {self.objective.direction} "
                f"{self.objective.key})\n{self.summary()}")
        if self.trials.empty:
            return head
        with pd.option_context("display.width", 200, "display.max_columns", 30):
            return head + "\n" + self.trials.to_string(index=False)

    def plot_png(self) -> bytes:
        """The objective against each searched parameter (one panel each), best trial marked, as PNG."""
        return sweep_plot_png(self)

    def _repr_html_(self) -> str:
        return sweep_html(self)


def _distributions(space: dict[str, Dimension]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for name, dim in space.items():
        if dim.kind == "choice":
            out[name] = CategoricalDistribution([canonical_json(c) for c in dim.choices])
        elif dim.kind == "int":
            high = int(dim.low) + (int(dim.high) - int(dim.low)) // dim.step * dim.step
            out[name] = IntDistribution(int(dim.low), high, step=dim.step)
        else:
            out[name] = FloatDistribution(dim.low, dim.high, log=dim.kind == "loguniform")
    return out


def _suggest(trial: Any, distributions: dict[str, Any]) -> None:
    """Give ``trial`` its parameters (those it was queued with, else the sampler's), as
    ``study.ask(distributions)`` would — after the trial is ours, so a parameter its storage
    refuses leaves a trial this worker marks interrupted, not one left RUNNING."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    for name, dist in distributions.items():
        if isinstance(dist, CategoricalDistribution):
            trial.suggest_categorical(name, list(dist.choices))
        elif isinstance(dist, IntDistribution):
            trial.suggest_int(name, dist.low, dist.high, step=dist.step)
        else:
            trial.suggest_float(name, dist.low, dist.high, log=dist.log)


def _check_storable(space: dict[str, Dimension], sampler: str) -> None:
    """What Optuna writes of a trial must fit its study storage, on every backend alike: on
    MySQL a parameter's distribution (a categorical one holds every choice) and a queued grid
    point are each a ``TEXT`` of 65,535 bytes, a parameter's name a ``VARCHAR(512)``. Checked
    when the sweep is defined, before anything is written: else the first trial fails after the
    sweep's version is on record — and on SQLite never, until the sweep moves to MySQL.

    Raises
    ------
    ValidationError
        Naming the parameter, its size and what to do.
    """
    from optuna.distributions import distribution_to_json

    for name, dist in _distributions(space).items():
        if len(name) > _NAME_CHARS:
            raise ValidationError(f"space key {name[:40]!r}... is {len(name):,} characters, more than the "
                                  f"{_NAME_CHARS} Optuna's study storage keeps; search a parameter with a shorter name")
        size = len(distribution_to_json(dist).encode())
        if size > _TEXT_BYTES:
            raise ValidationError(f"space {name!r}: Optuna keeps its distribution as {size:,} bytes of JSON, more "
                                  f"than the {_TEXT_BYTES:,} its study storage holds (a TEXT on MySQL); use fewer "
                                  "or shorter choices (e.g. short names the trainer maps to values)")
    if sampler == "grid":  # the longest point, as it is queued (see _Grid): each parameter's longest value
        longest = {name: max(_Grid.values_of(dim) if dim.kind == "choice" else [int(dim.low), int(dim.high)],
                             key=lambda v: len(json.dumps(v)))
                   for name, dim in space.items()}
        size = len(json.dumps(longest).encode())
        if size > _TEXT_BYTES:
            raise ValidationError(f"a point of the grid takes {size:,} bytes of JSON as Optuna queues it, more than "
                                  f"the {_TEXT_BYTES:,} its study storage holds (a TEXT on MySQL); use fewer or "
                                  "shorter choices")


def _decode(dim: Dimension, value: Any) -> Any:
    return json.loads(value) if dim.kind == "choice" else value


def _sampler(plan: _Plan, offset: int) -> Any:
    import optuna

    seed = plan.seed + offset
    if plan.sampler in ("grid", "random"):
        # a grid's points are queued trials (see _Grid): a trial asked when none is queued is surplus
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)  # constant_liar: parallel workers do not all try one point


class _Grid:
    """A grid sweep's points, queued as Optuna trials rather than drawn by Optuna's ``GridSampler``.

    ``GridSampler`` counts a failed or interrupted trial as visited, so the trial owed again after
    a worker died got a point already run: one point never trained, another twice. Here each
    point is queued as a WAITING trial (``study.enqueue_trial``: its values in the trial's
    ``system_attrs["fixed_params"]``), which ``study.ask()`` hands to one worker only (a popped
    trial turns RUNNING atomically in the RDB and journal storages). Points are queued lazily, one
    when no queued one is left: the first still owed — held by no COMPLETE, really FAILED, live
    RUNNING or WAITING trial, so a point whose trial was interrupted is owed again, with its own
    values — in one order every worker computes alike, ``GridSampler``'s (the product over the
    parameters by name, shuffled with the sweep's seed): trial N is the point it was before,
    unless workers raced or one died.

    Workers topping up at once may queue one point twice. The rule: among a point's trials that
    are neither interrupted nor surplus, the lowest-numbered owns it; a worker that pops another
    (or a trial the sampler drew because nothing was queued, or one past the budget) marks it
    surplus without training it. A point is its values as Optuna keeps them (a choice as its
    canonical JSON, an int as itself), in the space's order.
    """

    def __init__(self, plan: _Plan) -> None:
        self.names = list(plan.space)
        self.kinds = [dim.kind for dim in plan.space.values()]
        self.by_name = sorted(self.names)  # GridSampler's product runs over the parameters by name
        self.values = [self.values_of(plan.space[name]) for name in self.by_name]
        self.seed = plan.seed
        self._order: list[int] | None = None

    @staticmethod
    def values_of(dim: Dimension) -> list[Any]:
        """A parameter's grid values as Optuna keeps them (the grid is capped: see check_grid_size)."""
        return [canonical_json(v) for v in dim.choices] if dim.kind == "choice" else list(dim.grid() or [])

    def point(self, index: int) -> tuple[Any, ...]:
        """The ``index``-th point of the product of the parameters' values (by name), in the space's order."""
        values: dict[str, Any] = {}
        for name, options in zip(reversed(self.by_name), reversed(self.values)):
            index, i = divmod(index, len(options))
            values[name] = options[i]
        return tuple(values[name] for name in self.names)

    def key(self, trial: Any) -> tuple[Any, ...] | None:
        """The point a (frozen) trial holds: the values it was queued with, else (a trial of an
        older version's ``GridSampler``, which marks its trials ``grid_id``) its parameters; None
        for a trial the sampler drew, which is no grid point."""
        attrs = trial.system_attrs
        values = attrs.get("fixed_params")
        if values is None:
            if "grid_id" not in attrs:
                return None
            values = trial.params
        try:
            return tuple(str(values[name]) if kind == "choice" else int(values[name])
                         for name, kind in zip(self.names, self.kinds))
        except (KeyError, TypeError, ValueError):
            return None

    def params(self, point: tuple[Any, ...]) -> dict[str, Any]:
        return dict(zip(self.names, point))

    def owed(self, held: set[tuple[Any, ...]], count: int) -> list[tuple[Any, ...]]:
        """The first ``count`` points in the shuffled order that are not ``held``."""
        if self._order is None:
            import numpy as np

            self._order = list(range(math.prod(len(v) for v in self.values)))
            np.random.RandomState(self.seed).shuffle(self._order)  # as GridSampler shuffles its grid
        out = []
        for index in self._order:
            point = self.point(index)
            if point not in held:
                out.append(point)
                if len(out) >= count:
                    break
        return out


def _journal(path: str) -> Any:
    """Optuna's own journal storage in the file ``path`` beside a SQLite store — what
    ``optuna-dashboard PATH``, or ``JournalStorage(JournalFileBackend(PATH))`` in any Optuna
    program, opens. A text file of Optuna's log entries, one JSON line each, appended under
    Optuna's lock file ``PATH.lock`` (a symbolic link, as Optuna's own default lock makes it, so
    a dashboard writing a note waits for the workers and they for it) and synced to disk each
    time. A lock left behind by a worker killed while it held it is taken over after
    :data:`_LOCK_GRACE_S` seconds. The order of the lines decides between processes: a queued
    trial two workers pop at once goes to the one whose line came first. No SQLite, so no
    journal mode (WAL or another) to choose: it is safe on a network file system too.
    A store written by an earlier version is moved into it first (see :func:`_migrate`)."""
    from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock, JournalStorage

    lock = JournalFileSymlinkLock(path, grace_period=_LOCK_GRACE_S)
    _migrate(path.removesuffix(".journal"), path, lock)
    return JournalStorage(JournalFileBackend(path, lock_obj=lock))


def _legacy_logs(legacy: str) -> list[str] | None:
    """The log entries of an earlier version's journal — Optuna's entries in a SQLite file of
    mlmd-magic's own, table ``optuna_journal`` — in order; None when ``legacy`` is no such file."""
    import sqlite3

    try:
        with open(legacy, "rb") as fh:
            if fh.read(16) != b"SQLite format 3\x00":
                return None
    except OSError:
        return None
    import urllib.parse

    try:  # mode=rw: a file another process moved meanwhile is not created again, empty
        db = sqlite3.connect(f"file:{urllib.parse.quote(os.path.abspath(legacy))}?mode=rw", uri=True, timeout=60)
    except sqlite3.OperationalError:
        return None
    try:
        found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'optuna_journal'")
        if found.fetchone() is None:
            return None
        return [row[0] for row in db.execute("SELECT log FROM optuna_journal ORDER BY n")]
    finally:
        db.close()  # the last connection: SQLite folds its write-ahead log into the file, and removes it


def _stamp(path: str) -> tuple[int, int]:
    """A file's size and modification time (ns): whether it changed."""
    found = os.stat(path)
    return found.st_size, found.st_mtime_ns


def _write_logs(staged: str, logs: list[str]) -> None:
    """The log entries as a journal file of their own, on disk."""
    with open(staged, "wb") as fh:
        fh.write("".join(f"{log}\n" for log in logs).encode())
        fh.flush()
        os.fsync(fh.fileno())


def _migrate(legacy: str, path: str, lock: Any) -> None:
    """Move the sweeps' studies of a store written by an earlier version (``FILE.sweeps``, see
    :func:`_legacy_logs`) into Optuna's journal file ``path``, once, exactly: the same log
    entries, so the same studies, trial numbers and attributes. They are read and written to a
    new file before the journal's lock is taken (a large file would hold it past the grace after
    which another process takes it over); under the lock, the new file takes the place of a
    missing or empty journal in one rename (read again first if the old file changed meanwhile);
    then the old file is renamed ``FILE.sweeps.migrated``, kept as the record of the move. A
    process killed in between leaves a journal that begins with the old file's entries: the
    next one only renames the old file. A journal holding anything else is refused, saying
    what to do."""
    import warnings

    if legacy == path or not os.path.isfile(legacy):
        return
    open(path, "ab").close()  # the lock's target: a lock a killed process left is judged by the target's age
    # read and staged before the lock (a large old file takes long; the lock is taken over after
    # _LOCK_GRACE_S), checked again under it: read again if the old file changed meanwhile
    try:
        before = _stamp(legacy)
        logs = _legacy_logs(legacy)
    except OSError:
        return  # moved by another process meanwhile
    if logs is None:
        return
    staged = f"{path}.migrating-{os.getpid()}"
    _write_logs(staged, logs)
    lock.acquire()
    try:
        if not os.path.isfile(legacy):
            return  # another process moved it
        if _stamp(legacy) != before:
            logs = _legacy_logs(legacy)
            if logs is None:
                return
            _write_logs(staged, logs)
        if os.path.getsize(path):
            with open(path, "rb") as fh:
                head = [json.loads(line) for line, _ in zip(fh, logs)]
            if head != [json.loads(log) for log in logs]:
                raise StoreError(f"the sweeps' studies are in two files: {legacy} (an earlier mlmd-magic's) and "
                                 f"{path}, which holds others; move {path} away to have {legacy} moved into it, or "
                                 f"move {legacy} away to go on with {path}")
        else:
            os.replace(staged, path)
        os.replace(legacy, f"{legacy}.migrated")
    finally:
        lock.release()
        if os.path.exists(staged):
            os.unlink(staged)
    warnings.warn(f"moved the sweeps' studies from {legacy} (an earlier mlmd-magic's) into Optuna's journal "
                  f"{path}, which optuna-dashboard opens; the old file is kept as {legacy}.migrated", stacklevel=2)


def _reason(exc: BaseException) -> str:
    """What stopped a worker, in a few words, for a record (secrets redacted)."""
    if isinstance(exc, KeyboardInterrupt):
        return "stopped (Ctrl-C)"
    return _secrets.redact(f"{type(exc).__name__}: {exc}")[:300]


def _failed(attrs: dict[str, Any]) -> bool:
    """A FAIL trial that failed for real (it has an error), not one interrupted or surplus."""
    return bool(attrs.get("mlmd", {}).get("error")) and not attrs.get("surplus")


def _run_key(study_name: str, trial: Any) -> str:
    """The external id a trial's run is written with, by which any worker finds it: the study,
    the trial's number and when it started (unique even if a study is made again)."""
    started = trial.datetime_start
    stamp = int(started.timestamp() * 1_000_000) if started is not None else 0
    return f"mlmd-magic:sweep:{study_name}:trial:{trial.number}:{stamp}"


class Sweeps:
    """Defines, runs and reads the sweeps of one store (see the module's docstring)."""

    def __init__(self, records: Records, runs: Runs, recorder: Recorder, backend: Backend,
                 stale_after_s: Callable[[], float] | None = None) -> None:
        self.records = records
        self.runs = runs
        self.recorder = recorder
        self.backend = backend
        #: seconds after which a trial that never got as far as its run is taken for dead
        self.stale_after_s = stale_after_s or (lambda: 6 * 3600.0)
        self._storage: Any = None

    # ---------------------------------------------------------------- public

    def sweep(self, name: str, *, experiment: str, space: Any, objective: Any, sampler: str = "tpe",
              trials: int = 10, workers: int = 1, seed: int = 0, description: str | None = None,
              progress: bool = False, on_update: Callable[[Sweep], None] | None = None) -> Sweep:
        """See :meth:`mlmd_magic.Store.sweep`."""
        arguments = {"name": name, "experiment": experiment, "space": space, "objective": objective,
                     "sampler": sampler, "trials": trials, "workers": workers, "seed": seed}
        act = Action("Sweep", arguments)
        with self.recorder.guard(act):
            check_name(name, "sweep name")
            spec = parse_spec(experiment=experiment, space=space, objective=objective, sampler=sampler,
                              trials=trials, workers=workers, seed=seed, description=description)
            _check_storable(spec.space, spec.sampler)
            plan = self._define(act, name, spec)
            return self._invoke(act, plan, spec.trials, spec.workers, 0, progress, on_update)

    def work(self, ref: str, *, trials: int | None = None, workers: int = 1, seed_offset: int | None = None,
             progress: bool = False, on_update: Callable[[Sweep], None] | None = None) -> Sweep:
        """Run the trials sweep ``ref`` (``NAME``: its latest version, or ``NAME@N``) still owes, in this
        process (``workers`` > 1: in that many subprocesses) — what ``mlmd-magic sweep NAME --worker``
        does on any machine that reaches the store. ``trials`` is the budget (default: the one the
        sweep was last run with)."""
        act = Action("Sweep", {"ref": ref, "trials": trials, "worker": True})
        with self.recorder.guard(act):
            plan = self._plan(self.records.resolve("sweeps", ref))
            act.inputs.append(plan.artifact)
            act.contexts.append(("Sweep", plan.name))
            study = self._study(plan, 0)
            budget = trials if trials is not None else int(study.user_attrs.get("trials", 0))
            if budget < 1:
                raise ValidationError(f"sweep {plan.ref} has no trial budget yet; give --trials N")
            offset = seed_offset if seed_offset is not None else os.getpid()
            return self._invoke(act, plan, budget, workers, offset, progress, on_update)

    def result(self, ref: str) -> Sweep:
        """The sweep ``NAME`` (latest version) or ``NAME@N`` as it stands: its trials and best run
        (recorded as a ``CompareRuns`` action, as comparing runs is)."""
        with self.recorder.action("CompareRuns", {"runs": [f"sweep:{ref}"]}) as act:
            plan = self._plan(self.records.resolve("sweeps", ref))
            act.inputs.append(plan.artifact)
            study = self._study(plan, 0)
            result = self._result(plan, study, int(study.user_attrs.get("trials", 0)))
            act.outcome = f"{len(result.trials)} trials"
            return result

    # ---------------------------------------------------------------- defining

    def _define(self, act: Action, name: str, spec: SweepSpec) -> _Plan:
        """Check the space and objective against the base experiment; write the sweep's version."""
        from ..backend.properties import set_properties

        base = self._base(name, spec.experiment)
        params = self.records.data("experiments", base)
        base_ref = f"{params['experiment']}@{params['version']}"
        # no INPUT event to the base: it would join the sweep's context, which holds its trials' versions
        act.arguments["base"] = base_ref
        check_space_keys(spec.space, params["params"], f"experiment {base_ref}")
        self._check_metric(spec.objective, params)
        content = {**spec.content(), "experiment": base_ref}
        side = self.backend.side_storage(_SUFFIX)

        def build(artifact: Any) -> None:
            set_properties(artifact, experiment=base_ref, space=canonical_json(spec.space_dict()),
                           objective=canonical_json(spec.objective.to_dict()), sampler=spec.sampler,
                           seed=spec.seed, study=side.label if side is not None else "in this process")

        artifact, _ = self.records.create_version(act, "sweeps", name, content, build)
        act.inputs_written = True  # the first commit wrote the events; later ones update the execution
        act.outputs = []
        return self._plan(artifact)

    def _base(self, name: str, ref: str) -> Any:
        """The experiment version ``ref`` names. ``NAME`` is its newest version that is no sweep's
        trial (or the base this sweep already has). Trials are versions of their own now, never in
        the experiment's context; stores written by 0.1.0 before this rule hold trials as versions of the
        experiment (in a sweep's context too), which this passes over, so running the cell again
        finds the same base, so the same sweep version, to continue."""
        if is_trial(ref):
            raise ValidationError(f"{ref} is a sweep's trial; a sweep varies an experiment version: make the "
                                  "trial's values one first (%mlmd train REF --set KEY=VALUE, or store.add_experiment)")
        parsed = parse_ref(ref, "experiment reference")
        latest = self.records.resolve("experiments", ref)
        if parsed.version is not None:
            return latest
        current = self.records.latest("sweeps", name)
        pinned = text(current.properties, "experiment") if current is not None else ""
        sweep_type = self.recorder.types.contexts["Sweep"]
        for art in reversed(self.records.versions("experiments", parsed.name)):
            if art.name == pinned or not any(c.type_id == sweep_type
                                             for c in self.recorder.mlmd.get_contexts_by_artifact(art.id)):
                return art
        return latest

    def _check_metric(self, objective: Objective, params: dict[str, Any]) -> None:
        """The objective must be a metric the trainer reports on a split of the data source."""
        import numpy as np

        from ..trainer import explain_task, reported_metrics

        ds = params["datasource"]
        art = self.records.resolve("datasources", f"{ds['name']}@{ds['version']}")
        labels = self.records.data("datasources", art)["label_distribution"].get("train") or {}
        try:
            task = explain_task(np.array([float(k) for k in labels]), params["params"]).task
        except (ValueError, TypeError):
            return  # the trainer will say what is wrong with the labels; the first trial checks the metric
        reported = [f"{split}.{m}" for split in ds["splits"] for m in reported_metrics(task)]
        if objective.key not in reported:
            raise ValidationError(f"objective metric {objective.key!r} is not reported by the trainer for this "
                                  f"{task} experiment; it reports {', '.join(reported)}")

    def _plan(self, artifact: Any) -> _Plan:
        p = artifact.properties
        objective = json.loads(text(p, "objective"))
        return _Plan(name=str(artifact.name).rsplit("@", 1)[0], version=p["version"].int_value,
                     experiment=text(p, "experiment"), space=parse_space(json.loads(text(p, "space"))),
                     objective=parse_objective(objective), sampler=text(p, "sampler"),
                     seed=p["seed"].int_value if "seed" in p else 0, artifact=artifact)

    # ---------------------------------------------------------------- Optuna

    def _open_storage(self) -> Any:
        import optuna

        if self._storage is None:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            side = self.backend.side_storage(_SUFFIX)
            if side is None:
                self._storage = optuna.storages.InMemoryStorage()
            elif side.kind == "journal":
                self._storage = _journal(side.path)
            else:
                try:
                    self._storage = optuna.storages.RDBStorage(
                        side.url, engine_kwargs={"connect_args": side.connect_args, "pool_pre_ping": True})
                except Exception as exc:
                    raise StoreError(f"cannot open the sweeps' study storage {side.label}: "
                                     f"{_secrets.redact(str(exc))[:500]}") from None
        return self._storage

    def close(self) -> None:
        """Release the study storage's connections (a MySQL pool; a journal file holds none open)."""
        storage, self._storage = self._storage, None
        engine = getattr(storage, "engine", None)  # RDBStorage: its SQLAlchemy pool
        if engine is not None:
            engine.dispose()

    def _study(self, plan: _Plan, offset: int) -> Any:
        import optuna

        storage = self._open_storage()
        direction: Literal["maximize", "minimize"] = "maximize" if plan.objective.direction == "maximize" \
            else "minimize"
        for attempt in range(20):  # workers starting together may race to create the study
            try:  # an existing study is loaded, never created again: a look at a sweep writes nothing to it
                return optuna.load_study(study_name=plan.study_name, storage=storage, sampler=_sampler(plan, offset))
            except KeyError:
                pass
            try:
                return optuna.create_study(storage=storage, study_name=plan.study_name, sampler=_sampler(plan, offset),
                                           direction=direction, load_if_exists=True)
            except optuna.exceptions.DuplicatedStudyError:
                time.sleep(0.05 * (attempt + 1))
        raise StoreError(f"could not open the study of sweep {plan.ref}; try again")

    # ---------------------------------------------------------------- running

    def _invoke(self, act: Action, plan: _Plan, budget: int, workers: int, offset: int, progress: bool,
                on_update: Callable[[Sweep], None] | None) -> Sweep:
        if plan.sampler == "grid":
            check_grid_size(plan.space)  # a version written before these checks
        _check_storable(plan.space, plan.sampler)
        act.contexts.append(("Sweep", plan.name))
        act.arguments["sweep"] = plan.ref
        act.state, act.outcome = "RUNNING", "running"
        act.properties["owner"] = owner_token()
        self.recorder.commit(act)
        act.inputs_written = True
        # a heartbeat while it runs (its trials' runs have their own): a sweep whose process died
        # is FAILED for the next reader, never RUNNING for ever
        live = LiveWriter(self.runs.live_connect, self.recorder.execution_of(act), name=f"sweep {plan.ref}",
                          reopen=self.runs.live_reopens)
        try:
            study = self._study(plan, 0)
            grid = plan.grid_size()
            budget = min(budget, grid) if grid else budget
            if study.user_attrs.get("trials") != budget:  # a re-run writes nothing to the study it finds done
                study.set_user_attr("trials", budget)
            if workers > 1:
                self._spawn(plan, study, budget, workers, offset, on_update)
            else:
                study = self._study(plan, offset + _SEED_STRIDE * len(study.get_trials(deepcopy=False)))
                self._work(plan, study, budget, progress, on_update)
            result = self._result(plan, study, budget)
        except BaseException as exc:
            live.close()
            self._record_failure(act, exc)
            raise
        live.close()  # before the last write: no heartbeat may follow it
        act.state, act.outcome = "COMPLETE", result.summary()[:1000]
        act.properties["details"] = canonical_json({"sweep": plan.ref, "trials": result.counts(), "budget": budget})
        self.recorder.commit(act)
        return result

    def _record_failure(self, act: Action, exc: BaseException) -> None:
        """A run that fails after its execution was written RUNNING: FAILED (CANCELED on Ctrl-C)
        with the reason, at once, so no reader takes it for a sweep still running. Should this
        write fail too, the recorder's guard around the action tries again."""
        act.state = "CANCELED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        act.outcome = "canceled" if act.state == "CANCELED" else f"failed: {_reason(exc)}"[:1000]
        act.outputs = []
        act.committed = False  # so the guard writes it if this does not
        try:
            self.recorder.commit(act, error=exc)
        except Exception:
            pass

    def _dead(self, study: Any, trial: Any) -> str:
        """Why a RUNNING trial's worker is dead, or ``""`` while it may be alive. An owner process
        of this machine (same host, boot and PID namespace) is judged by the process itself — gone,
        a zombie, or its pid taken by another; this very process, by whether it works on the trial
        now; any other (another machine, an owner written by an older version as ``HOST:PID``,
        none) by the trial's run (see :meth:`_abandoned`)."""
        owner = Owner.parse(str(trial.user_attrs.get("owner", "")))
        if owner is not None and owner.here():
            if owner == Owner.parse(owner_token()):
                with _WORKING_LOCK:
                    working = (study.study_name, trial.number) in _WORKING
                return "" if working else "this process no longer works on it"
            return owner.gone()
        return self._abandoned(study, trial)

    def _interrupted(self, study: Any, trial: Any) -> bool:
        """Whether ``trial`` is RUNNING in a dead process; if so it is marked interrupted (owed again)."""
        reason = self._dead(study, trial)
        if reason:
            self._interrupt(study, trial, reason)
        return bool(reason)

    def _counted(self, study: Any, before: int | None = None) -> int:
        """Trials that use up the budget (done, failed, or running in a live process), all of them or
        those numbered below ``before``; trials of dead processes are marked interrupted."""
        from optuna.trial import TrialState

        count = 0
        for t in study.get_trials(deepcopy=False):
            if before is not None and t.number >= before:
                continue
            if t.state == TrialState.RUNNING:
                if not self._interrupted(study, t):
                    count += 1
            elif t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and _failed(t.user_attrs)):
                count += 1
        return count

    def _grid_owners(self, study: Any, grid: _Grid, trials: list[Any] | None = None) -> dict[tuple[Any, ...], Any]:
        """Each held grid point and the trial that owns it: the lowest-numbered of its trials that
        is done (COMPLETE, or FAILED with an error), RUNNING in a live process, or WAITING to be
        asked (see :class:`_Grid`); trials of dead processes are marked interrupted first."""
        from optuna.trial import TrialState

        owners: dict[tuple[Any, ...], Any] = {}
        for t in sorted(study.get_trials(deepcopy=False) if trials is None else trials, key=lambda t: t.number):
            if t.state == TrialState.RUNNING:
                if self._interrupted(study, t):
                    continue
            elif not (t.state in (TrialState.WAITING, TrialState.COMPLETE)
                      or (t.state == TrialState.FAIL and _failed(t.user_attrs))):
                continue
            point = grid.key(t)
            if point is not None:
                owners.setdefault(point, t)
        return owners

    def _grid_owes(self, study: Any, grid: _Grid, budget: int, owner: str) -> bool:
        """Whether a grid sweep still owes trials (fewer than ``budget`` of its points are done or
        running); if so, the first owed point in the order is queued unless one is queued already
        (workers topping up at once may queue it twice: see :class:`_Grid`). A queued trial
        carries its queuer as ``owner`` until the worker that asks for it writes its own: one that
        dies in between leaves a trial owned by a dead process (or by one that knows it does not
        work on it), never by nobody."""
        from optuna.trial import TrialState

        owners = self._grid_owners(study, grid)
        ranked = sorted(owners.values(), key=lambda t: t.number)[:budget]
        if sum(1 for t in ranked if t.state != TrialState.WAITING) >= budget:
            return False
        if not any(t.state == TrialState.WAITING for t in ranked):
            owed = grid.owed(set(owners), 1)
            if not owed:
                return False
            study.enqueue_trial(grid.params(owed[0]), user_attrs={"owner": owner})
        return True

    def _grid_surplus(self, study: Any, grid: _Grid, trial: Any, budget: int) -> bool:
        """Whether a grid trial just asked is surplus: drawn by the sampler (nothing was queued),
        its point owned by an earlier trial, or past the budget's first points (see :class:`_Grid`)."""
        trials = study.get_trials(deepcopy=False)
        mine = next((t for t in trials if t.number == trial.number), None)
        point = grid.key(mine) if mine is not None and "fixed_params" in mine.system_attrs else None
        if point is None:
            return True
        owners = self._grid_owners(study, grid, trials)
        ranked = sorted(owners.values(), key=lambda t: t.number)[:budget]
        owner = owners.get(point)
        return owner is None or owner.number != trial.number or all(t.number != trial.number for t in ranked)

    def _abandoned(self, study: Any, trial: Any) -> str:
        """Why a RUNNING trial of a worker not judged by its process is dead (``""`` while it may be
        alive): its run (found by the external id the trial gave it) ended FAILED or CANCELED without
        the worker telling the study — the store marks a run FAILED when its heartbeat stops — or,
        when it never got as far as its run, it started longer ago than a run may go without a
        heartbeat."""
        from ml_metadata.proto import metadata_store_pb2 as pb

        run = self.runs.by_external_id(_run_key(study.study_name, trial))
        if run is not None:
            (run,) = self.runs.judged([run])  # a run whose worker died is FAILED now, not when someone looks
            if run.last_known_state in (pb.Execution.FAILED, pb.Execution.CANCELED):
                return f"its run {run.name} ended {pb.Execution.State.Name(run.last_known_state)}"
            return ""
        started = trial.datetime_start
        if started is not None and time.time() - started.timestamp() > self.stale_after_s():
            return f"it never got as far as its run in {self.stale_after_s():.0f} s"
        return ""

    @staticmethod
    def _interrupt(study: Any, trial: Any, reason: str = "") -> None:
        """A trial whose process died, or whose worker stopped on an error: FAILED without an
        error, which marks it interrupted (owed again), with ``reason`` kept beside it."""
        import optuna
        from optuna.trial import TrialState

        try:
            if reason:  # a finished trial has no public setter: kept on the study, by the trial's number
                study.set_user_attr(f"interrupted:{trial.number}", reason[:300])
            study.tell(trial.number, state=TrialState.FAIL)
        except (RuntimeError, ValueError, optuna.exceptions.UpdateFinishedTrialError):
            pass  # another process got there first, or the trial ended as it should

    def _work(self, plan: _Plan, study: Any, budget: int, progress: bool,
              on_update: Callable[[Sweep], None] | None) -> None:
        import optuna
        from optuna.trial import TrialState

        distributions = _distributions(plan.space)
        owner = owner_token()
        grid = _Grid(plan) if plan.sampler == "grid" else None
        while (self._grid_owes(study, grid, budget, owner) if grid is not None
               else self._counted(study) < budget):
            with _WORKING_LOCK:  # ours from the moment Optuna hands it out, for every thread of this process
                trial = study.ask()
                working = (study.study_name, trial.number)
                _WORKING.add(working)
            try:
                trial.set_user_attr("owner", owner)
                if grid is not None:
                    surplus = self._grid_surplus(study, grid, trial, budget)
                else:  # another worker took the last slot between our look and our ask
                    surplus = self._counted(study, before=trial.number) >= budget
                if surplus:
                    trial.set_user_attr("surplus", True)
                    study.tell(trial, state=TrialState.FAIL)
                    if grid is None:
                        break
                    continue
                _suggest(trial, distributions)
                self._trial(plan, study, trial, progress)
            except optuna.exceptions.UpdateFinishedTrialError:
                # another worker took this trial for dead (it looked between Optuna handing it out and
                # this worker writing itself as its owner) and marked it interrupted: its point is owed
                # again, and a run this worker finished is CACHED then
                continue
            except BaseException as exc:
                # whatever stopped this worker mid-trial (Ctrl-C, a store or study error): the trial
                # is interrupted, with the reason, never left RUNNING (a no-op once it was told)
                self._interrupt(study, trial, _reason(exc))
                raise
            finally:
                with _WORKING_LOCK:
                    _WORKING.discard(working)
            if on_update is not None:
                on_update(self._result(plan, study, budget))

    def _trial(self, plan: _Plan, study: Any, trial: Any, progress: bool) -> None:
        from optuna.trial import TrialState

        overrides = {name: _decode(plan.space[name], value) for name, value in trial.params.items()}
        try:
            # the trial's own experiment version (NAME@N~SWEEP@V#K), never what NAME gives
            trial_ref = self.records.define_trial(plan.experiment, plan.ref, trial.number, overrides)
            run = self.runs.train(trial_ref, workdir=None, force=False, callbacks=None, progress=progress,
                                  overrides={}, contexts=[("Sweep", plan.name)],
                                  properties={"trial": trial.number},
                                  external_id=_run_key(study.study_name, trial))
        except RunCancelled as exc:
            if not exc.requested:  # Ctrl-C: FAILED without an error, so owed again
                self._interrupt(study, trial)
                raise
            # `%mlmd cancel` of this trial's run: that trial is dropped (FAILED, said why), the sweep goes on
            trial.set_user_attr("mlmd", {"error": _secrets.redact(f"cancelled: {exc}")[:300]})
            study.tell(trial, state=TrialState.FAIL)
            return
        except KeyboardInterrupt:  # Ctrl-C: FAILED without an error, so owed again
            self._interrupt(study, trial)
            raise
        except MlmdMagicError as exc:
            trial.set_user_attr("mlmd", {"error": _secrets.redact(f"{type(exc).__name__}: {exc}")[:300]})
            study.tell(trial, state=TrialState.FAIL)
            return
        # what MLMD has of the trial, in one write to the study
        links = {"run": run.name, "run_id": run.id, "experiment": run.experiment, "cached": run.cached}
        value = run.metrics.get(plan.objective.split, {}).get(plan.objective.metric)
        if value is None:
            reported = sorted(f"{s}.{m}" for s, values in run.metrics.items() for m in values)
            message = (f"objective metric {plan.objective.key!r} is not reported by the trainer; run {run.name} "
                       f"reports {', '.join(reported) or 'no metrics'}")
            trial.set_user_attr("mlmd", {**links, "error": message})
            study.tell(trial, state=TrialState.FAIL)
            raise ValidationError(message + "; define the sweep again with one of them")
        if not math.isfinite(value):
            trial.set_user_attr("mlmd", {**links, "error": f"{plan.objective.key} is {value}"})
            study.tell(trial, state=TrialState.FAIL)
            return
        trial.set_user_attr("mlmd", links)
        study.tell(trial, float(value))

    def _spawn(self, plan: _Plan, study: Any, budget: int, workers: int, offset: int,
               on_update: Callable[[Sweep], None] | None) -> None:
        """``workers`` subprocesses joining the sweep (as ``mlmd-magic sweep NAME@N --worker`` would)
        until the budget is spent; each gets the store's password on its stdin."""
        if self.backend.scheme == "memory":
            raise ValidationError("workers > 1 run trials in other processes, which cannot reach a memory:// "
                                  "store; use a SQLite or MySQL store, or workers: 1")
        from .background import spawn_worker

        procs: list[tuple[subprocess.Popen[bytes], Any]] = []
        for i in range(workers):
            log = tempfile.TemporaryFile()
            spec = {"job": "sweep", "uri": self.backend.worker_uri(), "ref": plan.ref, "trials": budget,
                    "seed_offset": offset + i + 1, "password": self.backend.password()}
            procs.append((spawn_worker(spec, log, detached=False), log))
        seen = -1
        failed = []
        try:
            # every child polled each round (not up to the first live one): one that died is reaped
            # at once, never left a zombie while another trains
            while [p.poll() for p, _ in procs].count(None):
                time.sleep(0.5)
                if on_update is not None:
                    finished = sum(1 for t in study.get_trials(deepcopy=False) if t.state.is_finished())
                    if finished != seen:
                        seen = finished
                        on_update(self._result(plan, study, budget))
            for p, log in procs:
                log.seek(0)
                tail = log.read().decode("utf-8", "replace").strip().splitlines()[-3:]
                if p.returncode != 0:
                    failed.append(f"exit {p.returncode}: {' | '.join(tail)}")
        finally:
            # on any way out (Ctrl-C, a failing display callback, a lost store): stop the workers
            # still training and wait for them, so none is left behind, then close their logs
            for p, _ in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
            for p, log in procs:
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                log.close()
        if failed and len(failed) == len(procs):
            raise StoreError(_secrets.redact(f"every sweep worker failed: {failed[0]}"))
        for failure in failed:  # the others carried on: the sweep stands, but say what went wrong
            warnings.warn(_secrets.redact(f"a sweep worker failed ({failure}); the others ran its trials"),
                          stacklevel=3)

    # ---------------------------------------------------------------- reading

    def _result(self, plan: _Plan, study: Any, budget: int) -> Sweep:
        import pandas as pd
        from optuna.trial import TrialState

        key = plan.objective.key
        grid = _Grid(plan) if plan.sampler == "grid" else None
        run_before: set[tuple[Any, ...]] = set()  # grid points a finished trial ran
        reasons = study.user_attrs  # why each interrupted trial was (interrupted:N)
        rows = []
        for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
            attrs = t.user_attrs
            if attrs.get("surplus") or t.state == TrialState.WAITING:  # bookkeeping, never trained
                continue
            links = attrs.get("mlmd", {})
            if t.state == TrialState.COMPLETE:
                state = "CACHED" if links.get("cached") else "COMPLETE"
            elif t.state == TrialState.FAIL:
                state = "FAILED" if _failed(attrs) else "INTERRUPTED"
            else:
                state = "RUNNING" if t.state == TrialState.RUNNING else t.state.name
            point = grid.key(t) if grid is not None else None
            if grid is not None and point is None:  # drawn by the sampler, never trained: surplus, or about to be
                continue
            if point is not None and state in ("COMPLETE", "CACHED", "FAILED"):
                if point in run_before:  # an older version's grid sampler ran this point twice
                    state = "DUPLICATE"
                run_before.add(point)
            values = {**t.system_attrs.get("fixed_params", {}), **t.params}  # a queued trial's, until it has its own
            row: dict[str, Any] = {"trial": t.number, "state": state,
                                   key: float(t.value) if t.value is not None else math.nan}
            for name, dim in plan.space.items():
                row[name] = _decode(dim, values[name]) if name in values else None
            error = links.get("error", "") or (reasons.get(f"interrupted:{t.number}", "") if state == "INTERRUPTED"
                                               else "")
            row.update({"run": links.get("run", ""), "experiment": links.get("experiment", ""),
                        "error": f"interrupted: {error}" if error and state == "INTERRUPTED" else error})
            rows.append(row)
        columns = ["trial", "state", key, *plan.space, "run", "experiment", "error"]
        frame = pd.DataFrame(rows, columns=columns)
        if not frame.empty:
            frame = frame.sort_values([key, "trial"], ascending=[plan.objective.direction == "minimize", True],
                                      na_position="last", kind="stable").reset_index(drop=True)
        best = None
        if not frame.empty and not math.isnan(frame.iloc[0][key]) and frame.iloc[0]["run"]:
            best = self.runs.load_run(str(frame.iloc[0]["run"]))
        return Sweep(name=plan.name, version=plan.version, experiment=plan.experiment, objective=plan.objective,
                     sampler=plan.sampler, budget=budget, trials=frame, best=best,
                     space={n: d.to_dict() for n, d in plan.space.items()})


def sweep_ref(word: str) -> str | None:
    """``"sweep:lr-search"`` -> ``"lr-search"`` (what ``compare`` takes for a sweep); else None."""
    if not word.startswith("sweep:"):
        return None
    ref = word[len("sweep:"):]
    parse_ref(ref, "sweep reference")
    return ref

