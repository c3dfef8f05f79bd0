"""Sweeps on record: many versions of an experiment, searched by Optuna, run and compared as one.

* The sweep is a versioned ``mlmd_magic.Sweep`` artifact (base experiment version, search
  space, objective, sampler, seed) in a ``mlmd_magic.Sweep`` context named after it; each
  invocation (a cell, an API call, a worker) is a ``Sweep`` execution.
* Each trial is an experiment version of its own, ``BASE@N~SWEEP@V#K`` (the base version with
  the trial's overrides), in the sweep's context and never in the base name's, so ``NAME``
  never gives a trial; and an ordinary ``Train`` run, associated with the sweep's context and
  carrying its trial number. A trial with the values of an earlier trial of the same sweep
  version is that trial, whose run is CACHED, so re-running a sweep trains nothing twice.
* The search is Optuna's (ask/tell, TPE, random or grid sampler with a fixed seed). Its study
  lives beside the store — a journal file next to a SQLite store, a database next to the
  store's on a MySQL server (``DATABASE_sweeps``), in this process for ``memory://`` — so
  processes on several machines share one search through Optuna's storage. Trial numbers are
  handed out by that storage: a worker that asks for trial N runs it only if fewer than
  ``trials`` trials are done or running before N, so no trial runs twice and the budget holds.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..backend.connection import Backend
from ..backend.properties import text
from ..backend.recorder import Action, Recorder
from ..core import secrets as _secrets
from ..core.names import check_name, is_trial, parse_ref
from ..core.sweeps import Dimension, Objective, SweepSpec, check_space_keys, parse_objective, parse_space, parse_spec
from ..core.values import canonical_json
from ..errors import MlmdMagicError, RunCancelled, StoreError, ValidationError
from .maintenance import process_alive
from .records import Records
from .results import Run
from .runs import Runs

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Sweep", "Sweeps"]

_SUFFIX = "sweeps"  # the side storage: FILE.sweeps.journal, or database DATABASE_sweeps
_SEED_STRIDE = 7919  # a resumed or parallel search draws new values, not the first ones again


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
        if self.sampler != "grid":
            return None
        size = 1
        for dim in self.space.values():
            size *= len(dim.grid() or [])
        return size


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
        """How many trials are in each state (COMPLETE, CACHED, FAILED, RUNNING, INTERRUPTED)."""
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
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure

        names = list(self.space)
        done = self.trials[self.trials["state"].isin(["COMPLETE", "CACHED"])]
        fig = Figure(figsize=(3.2 * max(len(names), 1), 2.6), dpi=80)
        axes = fig.subplots(1, max(len(names), 1), squeeze=False)[0]
        for ax, name in zip(axes, names):
            values = list(done[name]) if name in done else []
            ys = list(done[self.objective.key]) if not done.empty else []
            kind = next(iter(self.space[name]))
            if kind == "choice":
                labels = [canonical_json(v) for v in self.space[name]["choice"]]
                xs = [labels.index(canonical_json(v)) if canonical_json(v) in labels else -1 for v in values]
                ax.set_xticks(range(len(labels)), labels, rotation=20, fontsize=7)
            else:
                xs = values
                if kind == "loguniform":
                    from matplotlib.ticker import NullFormatter

                    ax.set_xscale("log")
                    ax.xaxis.set_minor_formatter(NullFormatter())
            ax.scatter(xs, ys, s=18, color="#4C72B0")
            if self.best is not None and len(xs):
                ax.scatter(xs[:1], ys[:1], s=70, marker="*", color="#DD8452", zorder=3, label="best")
            ax.set_xlabel(name, fontsize=8)
            ax.set_ylabel(self.objective.key, fontsize=8)
            ax.tick_params(labelsize=7)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return buffer.getvalue()

    def _repr_html_(self) -> str:
        rows = []
        params = list(self.space)
        columns = ["trial", "state", self.objective.key, *params, "run", "error"]
        for i, row in enumerate(self.trials.to_dict("records")):
            best = i == 0 and self.best is not None
            cells = []
            for column in columns:
                value = row.get(column)
                shown = "" if value is None or (isinstance(value, float) and math.isnan(value)) else (
                    f"{value:.4g}" if isinstance(value, float) else canonical_json(value)
                    if isinstance(value, (list, dict)) else str(value))
                cells.append(f"<td>{html.escape(shown)}</td>")
            mark = "<td title='best'>★</td>" if best else "<td></td>"
            style = " style='font-weight:bold'" if best else ""
            rows.append(f"<tr{style}>{mark}{''.join(cells)}</tr>")
        head = "<th></th>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        image = ""
        if self.counts().get("COMPLETE", 0) + self.counts().get("CACHED", 0):
            data = base64.b64encode(self.plot_png()).decode()
            image = f"<img alt='objective against each parameter' src='data:image/png;base64,{data}'/>"
        return (f"<div class='mlmd-magic-sweep'><b>Sweep {html.escape(self.ref)}</b> over "
                f"{html.escape(self.experiment)} ({html.escape(self.sampler)}, {self.objective.direction} "
                f"{html.escape(self.objective.key)})<br/>{html.escape(self.summary())}<br/>{image}"
                f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def _distributions(plan: _Plan) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for name, dim in plan.space.items():
        if dim.kind == "choice":
            out[name] = CategoricalDistribution([canonical_json(c) for c in dim.choices])
        elif dim.kind == "int":
            high = int(dim.low) + (int(dim.high) - int(dim.low)) // dim.step * dim.step
            out[name] = IntDistribution(int(dim.low), high, step=dim.step)
        else:
            out[name] = FloatDistribution(dim.low, dim.high, log=dim.kind == "loguniform")
    return out


def _decode(dim: Dimension, value: Any) -> Any:
    return json.loads(value) if dim.kind == "choice" else value


def _sampler(plan: _Plan, offset: int) -> Any:
    import optuna

    seed = plan.seed + offset
    if plan.sampler == "grid":
        grid: dict[str, list[Any]] = {
            name: [canonical_json(v) for v in dim.choices] if dim.kind == "choice" else list(dim.grid() or [])
            for name, dim in plan.space.items()}
        class Grid(optuna.samplers.GridSampler):
            def after_trial(self, *args: Any, **kwargs: Any) -> None:
                """Optuna's grid stops ``optimize()`` once every point is tried; with ask/tell the
                sweep's budget (capped at the grid's size) stops it instead."""

        # every worker shuffles the grid alike: trial N is grid point N in each (Optuna numbers the
        # trials), so no point is tried twice and none is left out
        return Grid(grid, seed=plan.seed)
    if plan.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)  # constant_liar: parallel workers do not all try one point


def _sqlite_journal(path: str) -> Any:
    """Optuna's journal (its public ``BaseJournalBackend``) kept in a SQLite file of its own beside a
    SQLite store: one transaction per append, in write-ahead-log mode without a sync per commit.

    Optuna's own ``JournalFileBackend`` syncs the file on every write (seven a trial, 3 ms each
    here); this keeps what a killed process wrote, and leaves only a power cut to lose the last
    writes — which the MLMD store, the record of every run, does not depend on. SQLite's lock
    makes appends from several processes one sequence of log numbers.
    """
    import sqlite3
    import threading

    from optuna.storages.journal import BaseJournalBackend

    class SqliteJournal(BaseJournalBackend):
        def __init__(self) -> None:
            self.lock = threading.Lock()
            self.db = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS optuna_journal (n INTEGER PRIMARY KEY, log TEXT NOT NULL)")

        def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:
            with self.lock:
                rows = self.db.execute("SELECT log FROM optuna_journal WHERE n >= ? ORDER BY n",
                                       (log_number_from,)).fetchall()
            return [json.loads(row[0]) for row in rows]

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            encoded = [json.dumps(log, separators=(",", ":")) for log in logs]
            with self.lock:
                self.db.execute("BEGIN IMMEDIATE")  # appends from all processes, one after another
                try:
                    (top,) = self.db.execute("SELECT COALESCE(MAX(n) + 1, 0) FROM optuna_journal").fetchone()
                    self.db.executemany("INSERT INTO optuna_journal (n, log) VALUES (?, ?)",
                                        [(top + i, text) for i, text in enumerate(encoded)])
                    self.db.execute("COMMIT")
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise

    return SqliteJournal()


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
        self._journal: Any = None  # our SQLite journal under a JournalStorage (closed with the store)

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
                                  "trial's values one first (%mlmd train REF --set KEY=VALUE, or store.experiment)")
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
                from optuna.storages.journal import JournalStorage

                self._journal = _sqlite_journal(side.path)
                self._storage = JournalStorage(self._journal)
            else:
                try:
                    self._storage = optuna.storages.RDBStorage(
                        side.url, engine_kwargs={"connect_args": side.connect_args, "pool_pre_ping": True})
                except Exception as exc:
                    raise StoreError(f"cannot open the sweeps' study storage {side.label}: "
                                     f"{_secrets.redact(str(exc))[:500]}") from None
        return self._storage

    def close(self) -> None:
        """Release the study storage's connections (a MySQL pool, the SQLite journal's file)."""
        storage, journal, self._storage, self._journal = self._storage, self._journal, None, None
        engine = getattr(storage, "engine", None)  # RDBStorage: its SQLAlchemy pool
        if engine is not None:
            engine.dispose()
        if journal is not None:
            journal.db.close()

    def _study(self, plan: _Plan, offset: int) -> Any:
        import optuna

        storage = self._open_storage()
        direction: Literal["maximize", "minimize"] = "maximize" if plan.objective.direction == "maximize" \
            else "minimize"
        for attempt in range(20):  # workers starting together may race to create the study
            try:
                return optuna.create_study(storage=storage, study_name=plan.study_name, sampler=_sampler(plan, offset),
                                           direction=direction, load_if_exists=True)
            except optuna.exceptions.DuplicatedStudyError:
                time.sleep(0.05 * (attempt + 1))
        raise StoreError(f"could not open the study of sweep {plan.ref}; try again")

    # ---------------------------------------------------------------- running

    def _invoke(self, act: Action, plan: _Plan, budget: int, workers: int, offset: int, progress: bool,
                on_update: Callable[[Sweep], None] | None) -> Sweep:
        act.contexts.append(("Sweep", plan.name))
        act.arguments["sweep"] = plan.ref
        act.state, act.outcome = "RUNNING", "running"
        self.recorder.commit(act)
        act.inputs_written = True
        study = self._study(plan, 0)
        grid = plan.grid_size()
        budget = min(budget, grid) if grid else budget
        study.set_user_attr("trials", budget)
        if workers > 1:
            self._spawn(plan, study, budget, workers, offset, on_update)
        else:
            study = self._study(plan, offset + _SEED_STRIDE * len(study.get_trials(deepcopy=False)))
            self._work(plan, study, budget, progress, on_update)
        result = self._result(plan, study, budget)
        act.state, act.outcome = "COMPLETE", result.summary()[:1000]
        act.properties["details"] = canonical_json({"sweep": plan.ref, "trials": result.counts(), "budget": budget})
        self.recorder.commit(act)
        return result

    def _counted(self, study: Any, before: int | None = None) -> int:
        """Trials that use up the budget (done, failed, or running in a live process), all of them or
        those numbered below ``before``; trials of dead processes on this host are marked interrupted."""
        from optuna.trial import TrialState

        host = socket.gethostname()
        count = 0
        for t in study.get_trials(deepcopy=False):
            if before is not None and t.number >= before:
                continue
            attrs = t.user_attrs
            if t.state == TrialState.RUNNING:
                owner = str(attrs.get("owner", ""))
                where, _, pid = owner.rpartition(":")
                if where == host and pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
                    self._interrupt(study, t.number)
                    continue
                if where != host and self._abandoned(study, t):  # a worker on another machine that died
                    self._interrupt(study, t.number)
                    continue
                count += 1
            elif t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and _failed(attrs)):
                count += 1
        return count

    def _abandoned(self, study: Any, trial: Any) -> bool:
        """Whether a RUNNING trial of another machine's worker is dead: its run (found by the
        external id the trial gave it) ended FAILED or CANCELED without the worker telling the
        study — the store marks a run FAILED when its heartbeat stops — or, when it never got as
        far as its run, it started longer ago than a run may go without a heartbeat."""
        from ml_metadata.proto import metadata_store_pb2 as pb

        run = self.runs.by_external_id(_run_key(study.study_name, trial))
        if run is not None:
            return run.last_known_state in (pb.Execution.FAILED, pb.Execution.CANCELED)
        started = trial.datetime_start
        return started is not None and time.time() - started.timestamp() > self.stale_after_s()

    @staticmethod
    def _interrupt(study: Any, number: int) -> None:
        """A trial whose process died: FAILED without an error, which marks it interrupted (owed again)."""
        import optuna
        from optuna.trial import TrialState

        try:
            study.tell(number, state=TrialState.FAIL)
        except (RuntimeError, ValueError, optuna.exceptions.UpdateFinishedTrialError):
            pass  # another process got there first

    def _work(self, plan: _Plan, study: Any, budget: int, progress: bool,
              on_update: Callable[[Sweep], None] | None) -> None:
        from optuna.trial import TrialState

        distributions = _distributions(plan)
        owner = f"{socket.gethostname()}:{os.getpid()}"
        while self._counted(study) < budget:
            trial = study.ask(distributions)
            trial.set_user_attr("owner", owner)
            if self._counted(study, before=trial.number) >= budget:
                # another worker took the last slot between our look and our ask
                trial.set_user_attr("surplus", True)
                study.tell(trial, state=TrialState.FAIL)
                break
            self._trial(plan, study, trial, progress)
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
                study.tell(trial, state=TrialState.FAIL)
                raise
            # `%mlmd cancel` of this trial's run: that trial is dropped (FAILED, said why), the sweep goes on
            trial.set_user_attr("mlmd", {"error": _secrets.redact(f"cancelled: {exc}")[:300]})
            study.tell(trial, state=TrialState.FAIL)
            return
        except KeyboardInterrupt:  # Ctrl-C: FAILED without an error, so owed again
            study.tell(trial, state=TrialState.FAIL)
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
        """``workers`` subprocesses running ``mlmd-magic sweep NAME@N --worker`` until the budget is spent."""
        child = self.backend.child_process()
        if child is None:
            raise ValidationError("workers > 1 run trials in other processes, which cannot reach a memory:// "
                                  "store; use a SQLite or MySQL store, or workers: 1")
        uri, env = child
        procs: list[tuple[subprocess.Popen[bytes], Any]] = []
        for i in range(workers):
            log = tempfile.TemporaryFile()
            cmd = [sys.executable, "-m", "mlmd_magic.cli", "--uri", uri, "sweep", plan.ref, "--worker",
                   "--trials", str(budget), "--seed-offset", str(offset + i + 1)]
            procs.append((subprocess.Popen(cmd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL), log))
        seen = -1
        failed = []
        try:
            while any(p.poll() is None for p, _ in procs):
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

    # ---------------------------------------------------------------- reading

    def _result(self, plan: _Plan, study: Any, budget: int) -> Sweep:
        import pandas as pd
        from optuna.trial import TrialState

        key = plan.objective.key
        rows = []
        for t in study.get_trials(deepcopy=False):
            attrs = t.user_attrs
            if attrs.get("surplus"):
                continue
            links = attrs.get("mlmd", {})
            if t.state == TrialState.COMPLETE:
                state = "CACHED" if links.get("cached") else "COMPLETE"
            elif t.state == TrialState.FAIL:
                state = "FAILED" if _failed(attrs) else "INTERRUPTED"
            else:
                state = "RUNNING" if t.state == TrialState.RUNNING else t.state.name
            row: dict[str, Any] = {"trial": t.number, "state": state,
                                   key: float(t.value) if t.value is not None else math.nan}
            for name, dim in plan.space.items():
                row[name] = _decode(dim, t.params[name]) if name in t.params else None
            row.update({"run": links.get("run", ""), "experiment": links.get("experiment", ""),
                        "error": links.get("error", "")})
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

