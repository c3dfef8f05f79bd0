"""Training runs and evaluations on record: the store side of the trainer.

A run is a ``mlmd_magic.Train`` execution: written RUNNING with its INPUT events
(experiment, data source, scenario), updated each epoch with its progress (a heartbeat),
and finished COMPLETE with an OUTPUT event to a new ``mlmd_magic.Model`` artifact — or
CANCELED / FAILED with nothing else written. An identical earlier run (same experiment
version, data fingerprint, trainer code, builder source and backend) is reused and
recorded as CACHED. The trainer itself (:mod:`mlmd_magic.trainer`) knows nothing of MLMD.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable

from ..backend import session as _session
from ..backend.listing import Scan, page_rows, quote
from ..backend.properties import flat_metrics, name_of, set_properties, text
from ..backend.recorder import Action, Conflict, Recorder
from ..backend.types import full
from ..core.names import experiment_ref, is_run_name
from ..core.query import Where
from ..core.values import canonical_json, content_hash, flatten
from ..errors import MlmdMagicError, NotFoundError, RunCancelled, StoreError, TrainingError, ValidationError
from .filters import model_plan, run_plan
from .live import LiveWriter, cancel_request
from .maintenance import owner_token, reap_stale_runs
from .options import DEFAULT_STALE_AFTER_S
from .records import Records
from .results import Evaluation, Run, RunComparison, RunProgress

if TYPE_CHECKING:
    import pandas as pd

    from .ownrun import OwnRun

__all__ = ["MODEL_COLUMNS", "RUN_COLUMNS", "Runs", "is_cancel_request", "keras_backend", "stop_requested", "write_last"]

# a runs listing's fixed columns; the parameters that differ between the listed runs (``epochs`` always)
# come after ``epoch``, then one numeric column per split and metric (``eval.accuracy``), then the rest
RUN_COLUMNS = ["name", "run", "experiment", "trial", "state", "model", "task", "device", "epoch", "duration_s",
               "user", "created"]
_RUN_FIXED_LEAD = RUN_COLUMNS[:RUN_COLUMNS.index("epoch") + 1]
_RUN_FIXED_TAIL = RUN_COLUMNS[RUN_COLUMNS.index("epoch") + 1:]
MODEL_COLUMNS = ["model", "name", "experiment", "task", "state", "verdicts", "uri", "created"]
WAIT_NOTE_S = 5.0  # a run's last write that waits this long on the store says so
_ID = re.compile(r"[0-9]+")  # ASCII digits only (str.isdigit takes "²")
# what a cancelled or failed run keeps on its details of what the trainer said when it began
_BEGUN_DETAILS = ("task", "task_reason", "num_classes", "device", "backend")


class _CancelRequest(KeyboardInterrupt):
    """Raised inside a training when a ``CancelRun`` asks it to stop (not Ctrl-C)."""


def stop_requested(cancel_id: int) -> KeyboardInterrupt:
    """What stops a run when ``CancelRun`` #``cancel_id`` asked it to (not Ctrl-C)."""
    return _CancelRequest(f"cancelled by request (CancelRun #{cancel_id})")


def is_cancel_request(interrupt: BaseException) -> bool:
    """Whether ``interrupt`` is a cancel request's (see :func:`stop_requested`), not Ctrl-C."""
    return isinstance(interrupt, _CancelRequest)


def keras_backend() -> str:
    """The Keras backend a training here would use (part of a run's cache key)."""
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def _merged_overrides(existing: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = json.loads(canonical_json(existing))
    for key, value in new.items():
        merged[key] = value
    return merged


class Runs:
    """Trains, evaluates, lists and compares runs of one store.

    Parameters
    ----------
    records : the store's records (experiments, data sources, scenarios).
    recorder : the store's action recorder.
    runs_root : where run folders go (asked each time: settings may change).
    live_connect : opens a connection of its own for a running training's writer thread.
    stale_after_s : seconds without a heartbeat after which a RUNNING run is dead.
    """

    def __init__(self, records: Records, recorder: Recorder, runs_root: Callable[[], str],
                 live_connect: Callable[[], Any] | None = None, stale_after_s: Callable[[], float] | None = None
                 ) -> None:
        self.records = records
        self.recorder = recorder
        self.runs_root = runs_root
        #: opens the connection a running training's writer thread uses (default: the store's own)
        self.live_connect = live_connect or (lambda: self.recorder.mlmd)
        #: whether that connection is to a server, opened anew after it failed
        self.live_reopens = False
        #: seconds without a heartbeat after which a RUNNING run is dead
        self.stale_after_s = stale_after_s or (lambda: DEFAULT_STALE_AFTER_S)
        self._next_run: dict[str, int] = {}  # experiment version -> the next run number to try

    @property
    def mlmd(self) -> Any:
        return self.recorder.mlmd

    def _model_artifact(self, run_name: str, exp_ref: str, result: Any) -> Any:
        from ml_metadata.proto import metadata_store_pb2 as pb

        art = pb.Artifact(type_id=self.recorder.types.artifacts["Model"], name=run_name,
                          uri=result.model_path, state=pb.Artifact.LIVE)
        signature = {"input_features": result.input_features, "input_dim": result.input_dim, "task": result.task,
                     "num_classes": result.num_classes}
        set_properties(art, framework="keras", versions=canonical_json(result.versions),
                       signature=canonical_json(signature), experiment=exp_ref, task=result.task,
                       metrics=canonical_json(result.metrics))
        flat_metrics(art, json.loads(canonical_json(result.metrics)))  # each metric as a property of its own
        return art


    def _find_cached(self, key: str) -> tuple[Any, Any] | None:
        from ml_metadata.metadata_store import metadata_store as ms
        from ml_metadata.proto import metadata_store_pb2 as pb

        options = ms.ListOptions(order_by=ms.OrderByField.ID, is_asc=False, limit=20,
                                 filter_query=f"type = {quote(full('Train'))} AND "
                                              f"properties.cache_key.string_value = {quote(key)}")
        for execution in self.mlmd.get_executions(list_options=options):
            if execution.last_known_state not in (pb.Execution.COMPLETE, pb.Execution.CACHED):
                continue
            outputs = [e.artifact_id for e in self.mlmd.get_events_by_execution_ids([execution.id])
                       if e.type == pb.Event.OUTPUT]
            for model in self.mlmd.get_artifacts_by_id(outputs):
                if model.state == pb.Artifact.LIVE and os.path.exists(model.uri):
                    return execution, model
        return None


    def define_overrides(self, ref: str, overrides: dict[str, Any]) -> tuple[str, str]:
        """``ref`` with ``overrides`` merged in as a new experiment version (when they change it):
        ``(the version to train, that version when it was created now else "")``."""
        art = self.records.resolve("experiments", ref)
        p = art.properties
        defined = self.records.experiment(  # a trial's: a new version of its base experiment's name
            name_of(art), datasource=p["datasource"].string_value,
            scenario=p["scenario"].string_value,
            overrides=_merged_overrides(json.loads(p["overrides"].string_value or "{}"), overrides),
            description=p["description"].string_value if "description" in p else None,
        )
        return defined.ref, defined.ref if defined.status == "created" else ""

    def train(self, ref: str, *, workdir: str | None, force: bool, callbacks: Sequence[Any] | None,
              progress: Any, overrides: dict[str, Any], contexts: Sequence[tuple[str, str]] = (),
              properties: dict[str, Any] | None = None, external_id: str = "") -> Run:
        """See :meth:`mlmd_magic.Store.train`. ``contexts`` (``(type, name)``) group the run with
        others (a sweep's trials); ``properties`` are more properties of its execution;
        ``external_id`` names the run's execution ahead (a background or Ray run is found by it)."""
        created = reused = ""
        if overrides:
            ref, created = self.define_overrides(ref, overrides)
            reused = "" if created else ref  # the overrides gave a version that existed already
        act = Action("Train", {"ref": ref, "workdir": workdir, "force": force, "overrides": overrides})
        act.external_id = external_id
        act.contexts += list(contexts)
        # who trained it, on the run itself: listings show it without a read of the session per run
        act.properties["user"] = _session.current_session().user
        act.properties.update(properties or {})
        with self.recorder.guard(act):
            params, exp_ref, ds_art = self._inputs(act, ref)
            from ..trainer import builder_fingerprint, code_version

            model_name = params["scenario"]["model"]
            try:
                builder_code = builder_fingerprint(model_name)
            except ValueError as exc:  # an unknown builder: the trainer says which exist
                raise TrainingError(f"training {exp_ref} failed: {exc}") from None
            notes: list[str] = []
            key = None
            if builder_code is None:
                notes.append(f"not cached: the source of model builder {model_name!r} cannot be read, so a later run "
                             "could not tell whether its code changed; every run of it trains anew")
            else:
                # keyed by what is trained, not by which version asks: a revert, a scenario defined
                # again, a trial with another trial's values are CACHED when that content trained
                data = {k: params["datasource"][k] for k in ("format", "splits", "label", "features")}
                key = content_hash({"params": params["params"], "model": model_name, "data": data,
                                    "fingerprint": ds_art.properties["fingerprint"].string_value,
                                    "code": code_version(), "builder": builder_code, "backend": keras_backend()})[:32]
                act.properties["cache_key"] = key
            self.records.check_files(ds_art)  # never a run (trained or CACHED) against data it would not read
            prior = None if force or key is None else self._find_cached(key)
            if prior is not None:
                execution, model = prior
                act.outputs = [model]
                act.state, act.outcome = "CACHED", f"reused run #{execution.id}"
                details = json.loads(execution.properties["details"].string_value or "{}")
                act.properties["details"] = canonical_json({**details, "cached_from": execution.id})
                self._commit_named(act, exp_ref)
                return self._run_from(act, exp_ref, "CACHED", True, model, {**details, "cached_from": execution.id})
            code = {"trainer": code_version(), "builder": builder_code, "backend": keras_backend()}
            return self._train_now(act, params, exp_ref, workdir, callbacks, progress, notes, (created, reused),
                                   code)

    def _inputs(self, act: Action, ref: str) -> tuple[dict[str, Any], str, Any]:
        """The experiment version ``ref`` names, its data source and scenario as the run's
        inputs: ``(the experiment's resolved dict, its NAME@N, the data source's artifact)``.
        No record-name context: it holds the experiment's versions (Store._latest relies on
        that); the run reaches the experiment through its INPUT event."""
        exp_art = self.records.resolve("experiments", ref)
        params = self.records.data("experiments", exp_art)
        exp_ref = experiment_ref(params)
        act.arguments["experiment"] = exp_ref
        ds_art = self.records.resolve("datasources",
                                      f"{params['datasource']['name']}@{params['datasource']['version']}")
        sc_art = self.records.resolve("scenarios", f"{params['scenario']['name']}@{params['scenario']['version']}")
        act.inputs += [exp_art, ds_art, sc_art]
        return params, exp_ref, ds_art

    def start_own(self, ref: str, *, overrides: dict[str, Any], workdir: str | None) -> OwnRun:
        """See :meth:`mlmd_magic.Store.start_run`: the run recorded RUNNING, its writer thread
        started, Ctrl-C watched; the :class:`~mlmd_magic.store.ownrun.OwnRun` ends it."""
        from ..trainer import Interrupts
        from .ownrun import OwnRun

        created = reused = ""
        if overrides:
            ref, created = self.define_overrides(ref, overrides)
            reused = "" if created else ref
        act = Action("Train", {"ref": ref, "workdir": workdir, "overrides": overrides, "code": "your own"})
        act.properties["user"] = _session.current_session().user
        with self.recorder.guard(act):
            params, exp_ref, ds_art = self._inputs(act, ref)
            self.records.check_files(ds_art)  # never a run against data it would not read
            act.state, act.outcome = "RUNNING", "training (your own code)"
            act.properties["owner"] = owner_token()
            epochs = (params.get("params") or {}).get("epochs")
            act.properties["progress"] = canonical_json({"epoch": 0, "epochs": epochs if isinstance(epochs, int) else 0,
                                                         "step": 0, "steps": 0})
            self._commit_named(act, exp_ref)
            act.inputs_written = True
            run_dir = workdir or os.path.join(self.runs_root(), exp_ref.replace("@", "-v"), f"run-{act.execution_id}")
            act.properties["run_dir"] = run_dir

        def live() -> LiveWriter:  # started when the block is entered: its heartbeat says the run is alive
            return LiveWriter(self.live_connect, self.recorder.execution_of(act), watch_cancel=True, name=act.name,
                              reopen=self.live_reopens)

        return OwnRun(self, act, live, Interrupts, json.loads(canonical_json(params.get("params") or {})), exp_ref,
                      run_dir, (created, reused), own_dir=workdir is None)

    def _commit_named(self, act: Action, exp_ref: str) -> None:
        """A run's first write, named ``EXPERIMENT@N#K`` (its K-th run): MLMD's unique execution
        names settle two processes starting runs of one version at once."""
        for _ in range(100):
            number = self._next_run.get(exp_ref, 1)
            while self.mlmd.get_execution_by_type_and_name(full("Train"), f"{exp_ref}#{number}") is not None:
                number += 1
            act.name = f"{exp_ref}#{number}"
            try:
                self.recorder.commit(act)
            except Conflict:
                self._next_run[exp_ref] = number + 1
                continue
            self._next_run[exp_ref] = number + 1
            return
        raise StoreError(f"could not name a run of {exp_ref}: other runs kept taking the next number; try again")


    def _train_now(self, act: Action, params: dict[str, Any], exp_ref: str, workdir: str | None,
                   callbacks: Sequence[Any] | None, progress: Any, notes: list[str], versions: tuple[str, str],
                   code: dict[str, Any]) -> Run:
        """Train and record the run; ``versions``: the experiment version its overrides created
        (else ""), the existing one they gave (else "")."""
        from .. import trainer

        created, reused = versions

        act.state, act.outcome = "RUNNING", "training"
        act.properties["owner"] = owner_token()
        self._commit_named(act, exp_ref)
        act.inputs_written = True
        run_dir = workdir or os.path.join(self.runs_root(), exp_ref.replace("@", "-v"), f"run-{act.execution_id}")
        act.properties["run_dir"] = run_dir

        recorder = self.recorder
        done = [0]
        epochs = int((params.get("params") or {}).get("epochs", 10))
        history: dict[str, list[float]] = {}
        # the training never waits on the store: its progress, heartbeat and cancel look are a
        # thread's, on a connection of its own (see mlmd_magic.store.live); the first heartbeat
        # already says how many epochs the run has
        from ..trainer import RunClock
        from .live import PROGRESS_S as LIVE_PROGRESS_S

        act.properties["progress"] = canonical_json({"epoch": 0, "epochs": epochs, "step": 0, "steps": 0})
        live = LiveWriter(self.live_connect, recorder.execution_of(act), watch_cancel=True, name=act.name,
                          reopen=self.live_reopens)
        told = [False]
        # what the trainer said when it began (task, device, backend): on the run's details also
        # when it is cancelled or fails, as a finished run has them
        begun: dict[str, Any] = {}

        def begun_details() -> None:
            known = {k: begun[k] for k in _BEGUN_DETAILS if begun.get(k) not in (None, "")}
            if known and "details" not in act.properties:  # a finished run's whole details stay
                act.properties["details"] = canonical_json(known)

        class Progress:
            """Hands the run's progress to the writer thread — within an epoch (step, ETA, the
            epoch's running metrics) every LIVE_PROGRESS_S, and each epoch's metrics (the
            history, readable while the run goes on) — and stops the training when the thread
            saw a cancel request. A hand-off is an in-memory swap; the thread writes."""

            def __init__(self) -> None:
                self.clock = RunClock(epochs, 0, time.perf_counter())
                self.epoch = 0
                self.next_hand = 0.0

            def on_train_begin(self, info: dict[str, Any]) -> None:
                begun.update(info)
                self.clock = RunClock(int(info.get("epochs", epochs)), int(info.get("steps", 0)),
                                      time.perf_counter())
                self.note({})
                live.update(recorder.execution_of(act))

            def on_batch_end(self, step: int, logs: Any = None) -> None:
                if live.cancel_id is not None:
                    raise stop_requested(live.cancel_id)
                now = time.perf_counter()
                if now < self.next_hand:  # the common case: one clock read
                    return
                self.next_hand = now + LIVE_PROGRESS_S
                self.clock.at(self.epoch, step + 1, now)
                running = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float))}
                self.note(running, step + 1, now)
                live.update(recorder.execution_of(act))

            def note(self, logs: dict[str, float], step: int = 0, now: float | None = None) -> None:
                """The run's progress property: where it stands, the run's ETA, the metrics."""
                now = time.perf_counter() if now is None else now
                clock = self.clock
                act.properties["progress"] = canonical_json({
                    "epoch": self.epoch, "epochs": clock.epochs, "step": step,
                    "steps": clock.steps if clock.total else 0,
                    "eta_s": clock.eta_s(now), "elapsed_s": round(now - clock.started, 3), "logs": logs})

            def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
                done[0] = self.epoch = epoch + 1
                for key, value in logs.items():
                    history.setdefault(key, []).append(value)
                now = time.perf_counter()
                self.clock.epoch_end(epoch, now)
                act.properties["history"] = canonical_json(history)
                self.note(logs, 0, now)
                live.update(recorder.execution_of(act))
                self.next_hand = now + LIVE_PROGRESS_S
                if not told[0] and live.stalled_s() >= WAIT_NOTE_S:
                    told[0] = True
                    _say(f"run {act.name}: the store is not answering ({_why(live.last_error)}); training goes "
                         "on, and its progress is written when the store answers again")
                if live.cancel_id is not None:
                    raise stop_requested(live.cancel_id)

        # Ctrl-C cancels the run wherever it lands, also where Keras or TensorFlow swallowed it or
        # made another error of it (trainer.Interrupts remembers it); the run's last write is whole.
        interrupts = trainer.Interrupts()

        def last_write(error: BaseException | None = None) -> None:
            write_last(recorder, act, live, interrupts, error)

        def cancelled(interrupt: KeyboardInterrupt) -> RunCancelled:
            """Record the run CANCELED with no model and remove its folder; the error to raise."""
            with interrupts.deferred():  # a second Ctrl-C must not leave the run RUNNING or half removed
                act.state, act.outcome, act.outputs = "CANCELED", "canceled", []
                last_write(interrupt if interrupt.args else KeyboardInterrupt("interrupted by the user"))
                if workdir is None:
                    trainer.cleanup(run_dir)
            return RunCancelled(act.name, time.perf_counter() - act.started, done[0], epochs, created,
                                requested=isinstance(interrupt, _CancelRequest), version_reused=reused)

        with interrupts:
            trained = False
            try:
                result = trainer.train(params, workdir=run_dir, callbacks=[Progress(), *(callbacks or [])],
                                       progress=progress)
                trained = True
                model = self._model_artifact(act.name, exp_ref, result)
                details = {k: v for k, v in result.to_dict().items() if k not in ("model_path",)}
                details["code"] = code  # trainer code, builder source, backend: what reproduce compares
                if notes:
                    details["notes"] = notes
                with interrupts.deferred():
                    interrupts.check()  # the last moment a Ctrl-C cancels the run
                    act.outputs = [model]
                    act.state, act.outcome = "COMPLETE", f"trained {result.epochs} epochs"
                    act.properties["details"] = canonical_json(details)
                    last_write()
            except BaseException as exc:
                with interrupts.deferred():  # no progress write may land after the failure's record
                    live.close()
                    begun_details()  # cancelled or failed: what is known of its task and device
                interrupt = interrupts.interrupted_by(exc)
                if interrupt is not None:
                    raise cancelled(interrupt) from None
                if trained or isinstance(exc, MlmdMagicError) or not isinstance(exc, Exception):
                    raise
                kept = f"; {created} was defined for this run and stays" if created else ""
                error = TrainingError(f"training {exp_ref} failed: {type(exc).__name__}: {exc}{kept}")
                act.state, act.outcome, act.outputs = "FAILED", "failed", []
                with contextlib.suppress(MlmdMagicError):  # else the recorder's guard tries once more
                    last_write(error)
                raise error from exc
        if interrupts.pending is not None:  # it came while the run's end was being written
            import warnings

            warnings.warn(f"run {act.name} was being recorded COMPLETE when it was interrupted: it stays COMPLETE "
                          "with its model", UserWarning, stacklevel=4)
        model.id = act.output_ids[0]
        return self._run_from(act, exp_ref, "COMPLETE", False, model, details)


    @staticmethod
    def _run_from(act: Action, exp_ref: str, state: str, cached: bool, model: Any, details: dict[str, Any]) -> Run:
        return Run(id=act.execution_id or 0, experiment=exp_ref, state=state, cached=cached, model_id=model.id,
                   model_uri=model.uri, metrics=details.get("metrics", {}), history=details.get("history", {}),
                   details={k: v for k, v in details.items() if k not in ("metrics", "history")}, name=act.name)


    def load_run(self, run: Any) -> Run:
        """A recorded run as a :class:`Run` (any form :meth:`run_execution` takes).

        Raises
        ------
        NotFoundError
            When no such run exists.
        """
        from ml_metadata.proto import metadata_store_pb2 as pb

        execution = self.run_execution(run)
        link = self.run_links([execution])[execution.id]
        details = json.loads(text(execution.properties, "details") or "{}")
        models = self.mlmd.get_artifacts_by_id([link["model"]]) if link["model"] is not None else []
        state = pb.Execution.State.Name(execution.last_known_state)
        return Run(id=execution.id, experiment=link["experiment"], state=state, cached=state == "CACHED",
                   model_id=models[0].id if models else None, model_uri=models[0].uri if models else None,
                   metrics=details.get("metrics", {}), history=details.get("history", {}),
                   details={k: v for k, v in details.items() if k not in ("metrics", "history")},
                   name=execution.name)

    def resolve_model(self, target: Any) -> Any:
        """A Model artifact from a :class:`Run`, a model id, ``"model:ID"``, or an experiment ref."""
        from ml_metadata.metadata_store import metadata_store as ms

        if isinstance(target, Run):
            target = target.model_id
        if isinstance(target, str) and _ID.fullmatch(target):
            target = int(target)
        if isinstance(target, str) and target.startswith("model:") and _ID.fullmatch(target[6:]):
            target = int(target[6:])
        if isinstance(target, str) and ((target.startswith("run:") and _ID.fullmatch(target[4:]))
                                        or is_run_name(target)):
            run = self.run_execution(target)
            model_id = self.run_links([run])[run.id]["model"]
            if model_id is None:
                from ml_metadata.proto import metadata_store_pb2 as pb

                state = pb.Execution.State.Name(run.last_known_state)
                raise NotFoundError(f"run {run.id} has no model (it is {state}); see %mlmd ls runs")
            target = model_id
        if isinstance(target, int) and not isinstance(target, bool):
            found = self.mlmd.get_artifacts_by_id([target])
            if not found or found[0].type_id != self.recorder.types.artifacts["Model"]:
                raise NotFoundError(f"no model with id {target}; see %mlmd ls models")
            return found[0]
        if not isinstance(target, str):
            raise ValidationError(
                "give a run, a model id, 'model:ID', 'run:ID' or an experiment reference (NAME or NAME@N)")
        exp = self.records.resolve("experiments", target)
        exp_ref = str(exp.name)
        options = ms.ListOptions(order_by=ms.OrderByField.ID, is_asc=False, limit=1,
                                 filter_query=f"type = {quote(full('Model'))} AND properties.experiment.string_value = "
                                              f"{quote(exp_ref)} AND state = LIVE")
        models = self.mlmd.get_artifacts(list_options=options)
        if not models:
            raise NotFoundError(f"experiment {exp_ref} has no trained model yet; train it first "
                                f"(%mlmd train {exp_ref})")
        return models[0]


    def producer_of(self, model: Any) -> Any:
        """The ``Train`` execution that trained ``model`` (a Model artifact), not a CACHED reuse.

        Raises
        ------
        NotFoundError
            When no training run produced it (a model written by other tools).
        """
        from ml_metadata.proto import metadata_store_pb2 as pb

        ids = sorted(e.execution_id for e in self.mlmd.get_events_by_artifact_ids([model.id])
                     if e.type == pb.Event.OUTPUT)
        train_type = self.recorder.types.executions["Train"]
        for execution in self.mlmd.get_executions_by_id(ids) if ids else []:
            if execution.type_id == train_type and execution.last_known_state == pb.Execution.COMPLETE:
                return execution
        raise NotFoundError(f"model #{model.id} was not trained by a run of this store; nothing to reproduce")

    def experiment_of(self, model: Any) -> dict[str, Any]:
        """The experiment dict a model was trained from."""
        experiment = self.records.resolve("experiments", text(model.properties, "experiment"))
        return self.records.data("experiments", experiment)

    def run_execution(self, run: Any) -> Any:
        """The ``Train`` execution of a run given as a :class:`Run`, an id, ``run:ID``, ``#ID``,
        its name ``EXPERIMENT@N#K`` (the K-th run of that version) or ``EXPERIMENT[@N]`` (its
        latest run).

        Raises
        ------
        NotFoundError
            When no such run exists (the message says which runs there are).
        """
        raw = getattr(run, "id", run)
        if isinstance(raw, int) and not isinstance(raw, bool):
            return self.train_execution(raw)
        word = str(raw)
        number = word[4:] if word.startswith("run:") else word[1:] if word.startswith("#") else word
        if _ID.fullmatch(number):
            return self.train_execution(int(number))
        if is_run_name(word):
            found = self.mlmd.get_execution_by_type_and_name(full("Train"), word)
            if found is None:
                exp_ref = word.rsplit("#", 1)[0]
                raise NotFoundError(f"no run {word!r}; {self._runs_of(exp_ref)}")
            return found
        exp = self.records.resolve("experiments", word)  # NAME or NAME@N: its latest run
        latest = self._latest_run(str(exp.name))
        if latest is None:
            raise NotFoundError(f"experiment {exp.name} has no run yet; train it first (%mlmd train {exp.name})")
        return latest

    def _latest_run(self, exp_ref: str) -> Any | None:
        """The newest named run of experiment version ``exp_ref``."""
        latest, number = None, 1
        while True:
            found = self.mlmd.get_execution_by_type_and_name(full("Train"), f"{exp_ref}#{number}")
            if found is None:
                return latest
            latest, number = found, number + 1

    def _runs_of(self, exp_ref: str) -> str:
        latest = self._latest_run(exp_ref) if "@" in exp_ref else None
        if latest is None:
            return "see %mlmd ls runs"
        return f"{exp_ref} has runs #1 to #{latest.name.rsplit('#', 1)[1]}"

    def train_execution(self, run_id: int) -> Any:
        """The ``Train`` execution with id ``run_id``.

        Raises
        ------
        NotFoundError
            When no training run has that id.
        """
        found = self.mlmd.get_executions_by_id([run_id])
        if not found or found[0].type_id != self.recorder.types.executions["Train"]:
            raise NotFoundError(f"no training run #{run_id}; see %mlmd ls runs")
        return found[0]


    def evaluate(self, target: Any, *, data: Any, slices: Any, thresholds: Any, baseline: Any,
                 class_names: Sequence[str] | None, policy: str | None = None) -> Evaluation:
        """See :meth:`mlmd_magic.Store.evaluate`."""
        from ml_metadata.proto import metadata_store_pb2 as pb

        from ..core import evaluation as ev

        act = Action("Evaluate", {"target": repr(target), "data": data, "slices": slices, "thresholds": thresholds,
                                   "baseline": repr(baseline), "policy": policy})
        with self.recorder.guard(act):
            policy_ref = ""
            if policy is not None:
                if slices or thresholds:
                    raise ValidationError(f"give a policy or slices and thresholds, not both: policy {policy!r} "
                                          "holds its own (change it with %mlmd edit policy:NAME or %%policy NAME)")
                if not isinstance(policy, str):
                    raise ValidationError("policy must be a policy name, NAME or NAME@N")
                policy_art = self.records.resolve("policies", policy)
                stored = self.records.data("policies", policy_art)
                slices, thresholds = stored["slices"], stored["thresholds"]
                policy_ref = f"{stored['name']}@{stored['version']}"
                act.inputs.append(policy_art)
                act.arguments["policy"] = policy_ref
            specs = ev.parse_slices(slices)
            ths = ev.parse_thresholds(thresholds)  # bad thresholds fail before any model is loaded
            ev.check_slice_names(ths, specs)
            model = self.resolve_model(target)
            base_model = self.resolve_model(baseline) if baseline is not None else None
            params = self.experiment_of(model)
            signature = json.loads(model.properties["signature"].string_value)
            ds_art, split = self._evaluation_data(params, data)
            self.records.check_files(ds_art)
            datasource = self.records.data("datasources", ds_art)
            class_names = class_names or datasource.get("label_names")  # named on the data source
            if "task" not in signature:  # a model of your own code (start_run): what it predicts is not known
                raise ValidationError(f"model #{model.id} ({model.name}) was trained by your own code "
                                      f"({text(model.properties, 'framework') or 'a framework of its own'}): evaluate, "
                                      "and so push, take models of the built-in Keras trainer for now")
            ev.check_metric_names(ths, ev.metric_names(signature["task"], int(signature.get("num_classes") or 2),
                                                       class_names), signature["task"])
            ds_params = {k: datasource[k] for k in ("name", "version", "uri", "format", "splits", "label", "features")}
            columns = tuple(dict.fromkeys(s.feature for s in specs))
            known = set(datasource["features"]) | {datasource["label"]}
            for column in columns:
                if column not in known:
                    raise ValidationError(
                        f"cannot slice by {column!r}: data source {datasource['name']}@{datasource['version']} has no "
                        f"such feature; it has {', '.join(sorted(known))}")
            from ..trainer import predict

            try:
                preds = predict({**params, "datasource": ds_params}, model.uri, split, task=signature["task"],
                                columns=columns)
                base_scores = None
                if base_model is not None:
                    base_params = self.experiment_of(base_model)
                    base_scores = predict({**base_params, "datasource": ds_params}, base_model.uri, split,
                                          task=signature["task"]).scores
            except (OSError, ValueError, KeyError) as exc:
                raise ValidationError(f"cannot evaluate on {datasource['name']}@{datasource['version']}:{split}: "
                                      f"{type(exc).__name__}: {exc}") from None
            result = ev.evaluate_predictions(signature["task"], preds.labels, preds.scores, preds.columns, split=split,
                                             slices=slices, thresholds=thresholds, baseline_scores=base_scores,
                                             class_names=class_names)
            payload = result.to_dict()
            art = pb.Artifact(type_id=self.recorder.types.artifacts["Evaluation"], state=pb.Artifact.LIVE,
                              uri=f"{model.uri}#evaluation")
            set_properties(art, metrics=canonical_json({"task": payload["task"], "metrics": payload["metrics"],
                                                        "baseline_metrics": payload["baseline_metrics"],
                                                        "confusion": payload["confusion"],
                                                        "class_labels": payload["class_labels"]}),
                   thresholds=canonical_json(payload["thresholds"]), slices=canonical_json(payload["slices"]),
                   split=f"{datasource['name']}@{datasource['version']}:{split}",
                   checks=canonical_json(payload["checks"]), policy=policy_ref or None)
            art.custom_properties["blessed"].int_value = int(result.blessed)
            art.custom_properties["current_model_id"].int_value = model.id
            if base_model is not None:
                art.custom_properties["baseline_model_id"].int_value = base_model.id
            act.inputs[:0] = [model] + ([base_model] if base_model is not None else []) + [ds_art]
            act.outputs = [art]
            act.outcome = "blessed" if result.blessed else "not blessed"
            self.recorder.commit(act)
            return Evaluation(id=act.output_ids[0], model_id=model.id,
                              baseline_model_id=base_model.id if base_model is not None else None,
                              blessed=result.blessed, result=result, model_name=str(model.name),
                              baseline_name=str(base_model.name) if base_model is not None else "",
                              policy=policy_ref)


    def _evaluation_data(self, params: dict[str, Any], data: Any) -> tuple[Any, str]:
        """``data``: None (test, else eval), a split name, ``"DATASOURCE[@N]:SPLIT"`` or a mapping."""
        ds_ref = f"{params['datasource']['name']}@{params['datasource']['version']}"
        split = None
        if isinstance(data, dict):
            ds_ref, split = str(data.get("datasource") or ds_ref), data.get("split")
        elif isinstance(data, str) and ":" in data:
            ds_ref, split = data.split(":", 1)
        elif isinstance(data, str):
            split = data
        elif data is not None:
            raise ValidationError("data must be a split name, 'DATASOURCE[@N]:SPLIT' or {datasource: ..., split: ...}")
        ds_art = self.records.resolve("datasources", ds_ref)
        splits = json.loads(ds_art.properties["splits"].string_value)
        if split is None:
            split = "test" if "test" in splits else "eval" if "eval" in splits else next(iter(splits))
        if split not in splits:
            raise ValidationError(f"data source {ds_ref} has no split {split!r}; its splits are {sorted(splits)}")
        return ds_art, str(split)


    def run_links(self, executions: Sequence[Any], params: bool = False) -> dict[int, dict[str, Any]]:
        """For each ``Train`` execution: the experiment version it trained (from its INPUT event,
        the one link every face records) and the model it produced (its OUTPUT event); with
        ``params``, also the parameters of that experiment version (nested, as recorded on it).

        Returns ``{execution id: {"experiment": "NAME@N" or "", "model": model id or None[,
        "params": {...}]}}``; two batched reads whatever the number of runs.
        """
        from ml_metadata.proto import metadata_store_pb2 as pb

        links: dict[int, dict[str, Any]] = {e.id: {"experiment": "", "model": None} for e in executions}
        if params:
            for link in links.values():
                link["params"] = {}
        if not links:
            return links
        inputs: dict[int, list[int]] = {}
        for event in self.mlmd.get_events_by_execution_ids(list(links)):
            if event.type == pb.Event.OUTPUT:
                links[event.execution_id]["model"] = event.artifact_id
            elif event.type == pb.Event.INPUT:
                inputs.setdefault(event.execution_id, []).append(event.artifact_id)
        wanted = sorted({a for ids in inputs.values() for a in ids})
        experiment_type = self.recorder.types.artifacts["Experiment"]
        found = {a.id: a for a in (self.mlmd.get_artifacts_by_id(wanted) if wanted else [])
                 if a.type_id == experiment_type}
        for execution_id, ids in inputs.items():
            experiments = [found[a] for a in ids if a in found]
            if experiments:
                links[execution_id]["experiment"] = str(experiments[0].name)
                if params:
                    values = json.loads(text(experiments[0].properties, "params") or "{}")
                    links[execution_id]["params"] = values if isinstance(values, dict) else {}
        return links


    def evaluations_of(self, model_ids: Sequence[int]) -> dict[int, list[Any]]:
        """For each model: its ``Evaluation`` artifacts, oldest first (four batched reads: the
        models' events, which of those executions are evaluations, their outputs, those artifacts;
        reads that took a model as input — lineage, comparisons — are left out early)."""
        from ml_metadata.proto import metadata_store_pb2 as pb

        found: dict[int, list[Any]] = {m: [] for m in model_ids}
        if not found:
            return found
        candidates = sorted({e.execution_id for e in self.mlmd.get_events_by_artifact_ids(list(found))
                             if e.type == pb.Event.INPUT})
        evaluate_type = self.recorder.types.executions["Evaluate"]
        executions = [e.id for e in (self.mlmd.get_executions_by_id(candidates) if candidates else [])
                      if e.type_id == evaluate_type]
        if not executions:
            return found
        outputs = sorted({e.artifact_id for e in self.mlmd.get_events_by_execution_ids(executions)
                          if e.type == pb.Event.OUTPUT})
        evaluation_type = self.recorder.types.artifacts["Evaluation"]
        for art in sorted(self.mlmd.get_artifacts_by_id(outputs) if outputs else [], key=lambda a: a.id):
            if art.type_id != evaluation_type:
                continue
            model_id = art.custom_properties["current_model_id"].int_value \
                if "current_model_id" in art.custom_properties else None
            if model_id in found:
                found[model_id].append(art)
        return found

    def latest_verdicts(self, model_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """For each model: ``{policy name: its newest Evaluation under any version of it}``."""
        out: dict[int, dict[str, Any]] = {}
        for model_id, evaluations in self.evaluations_of(model_ids).items():
            latest: dict[str, Any] = {}
            for art in evaluations:  # oldest first: the newest wins
                policy = text(art.properties, "policy")
                if policy:
                    latest[policy.rsplit("@", 1)[0]] = art
            out[model_id] = latest
        return out

    def table(self, kind: str, predicate: Any, limit: int | None, offset: int) -> pd.DataFrame:
        """``runs`` or ``models``, newest first, a page at a time (see :meth:`Store.ls`)."""
        import pandas as pd

        page = 100 if limit is None else min(max(limit + offset, 20), 500)
        what, short = ("executions", "Train") if kind == "runs" else ("artifacts", "Model")
        type_id = (self.recorder.types.executions if kind == "runs" else self.recorder.types.artifacts)[short]
        plan = (run_plan(self.mlmd, self.recorder.types, predicate) if kind == "runs" else model_plan(predicate)) \
            if isinstance(predicate, Where) else None
        nodes = Scan(self.mlmd, what, full(short), type_id, page, plan, None if limit is None else limit + offset)
        rows_of = self._run_rows if kind == "runs" else self._model_rows
        rows = page_rows(nodes, rows_of, predicate, limit, offset, page)
        frame = _run_frame(rows) if kind == "runs" else pd.DataFrame(rows, columns=MODEL_COLUMNS)
        if not frame.empty:
            frame["created"] = pd.to_datetime(frame["created"], unit="ms", utc=True)
        return frame

    def judged(self, executions: Sequence[Any]) -> list[Any]:
        """``executions``, with each RUNNING one whose process is known dead (or silent for too
        long) marked FAILED first: a killed worker is FAILED for whoever looks, not only for the
        next process to open the store."""
        from ml_metadata.proto import metadata_store_pb2 as pb

        running = [e for e in executions if e.last_known_state == pb.Execution.RUNNING]
        if not running or self.recorder.guard_checks.read_only:
            return list(executions)
        reaped = reap_stale_runs(self.mlmd, self.stale_after_s(), running)
        if not reaped:
            return list(executions)
        fresh = {e.id: e for e in self.mlmd.get_executions_by_id(reaped)}
        return [fresh.get(e.id, e) for e in executions]

    def _run_rows(self, executions: Sequence[Any]) -> list[dict[str, Any]]:
        """One row per run for a listing and its filter: the fixed columns, ``params`` (the
        experiment version's parameters, nested: ``lr < 0.01`` and ``optimizer.lr`` find them),
        ``metrics`` (per split, also at the top level, ``eval.accuracy``, where no column has the
        split's name)."""
        from ml_metadata.proto import metadata_store_pb2 as pb

        executions = self.judged(executions)
        links = self.run_links(executions, params=True)
        rows = []
        for e in executions:
            details = json.loads(text(e.properties, "details") or "{}")
            progress = json.loads(text(e.properties, "progress") or "{}")
            metrics = {str(split): dict(values) for split, values in (details.get("metrics") or {}).items()
                       if isinstance(values, dict)}
            state = pb.Execution.State.Name(e.last_known_state)
            # the epoch it reached: a finished run's count, else (cancelled, failed, running) its progress
            reached = details.get("epochs") if state in ("COMPLETE", "CACHED") else None
            if reached is None:
                reached = progress.get("epoch", 0 if state in ("CANCELED", "FAILED", "RUNNING") else None)
            experiment = links[e.id]["experiment"]
            params = links[e.id]["params"]
            row = {
                "name": e.name or f"run #{e.id}",
                "run": e.id,
                "experiment": experiment,
                "trial": experiment.partition("~")[2],  # SWEEP@V#K of a sweep's trial, else empty
                "state": state,
                "model": links[e.id]["model"],
                "task": details.get("task", ""),
                "device": details.get("device", ""),
                "epoch": reached,
                "duration_s": round(e.properties["duration_s"].double_value, 3) if "duration_s" in e.properties
                else None,
                "user": text(e.properties, "user"),
                "created": e.create_time_since_epoch,
            }
            for key, value in params.items():  # a parameter's bare name finds it, as the column shows it
                row.setdefault(key, canonical_json(value) if isinstance(value, list) else value)
            if "epochs" not in params:  # no parameter: the epochs the trainer reported (its default)
                total = progress.get("epochs") or details.get("epochs")
                if isinstance(total, int) and not isinstance(total, bool):
                    row["epochs"] = total
            for split, values in metrics.items():
                row.setdefault(split, values)
            row["params"], row["metrics"] = params, metrics
            rows.append(row)
        return rows

    def _model_rows(self, models: Sequence[Any]) -> list[dict[str, Any]]:
        from ml_metadata.proto import metadata_store_pb2 as pb

        verdicts = self.latest_verdicts([a.id for a in models])
        return [{"model": a.id, "name": a.name, "experiment": text(a.properties, "experiment"),
                 "task": text(a.properties, "task"), "state": pb.Artifact.State.Name(a.state),
                 "verdicts": "; ".join(f"{text(e.properties, 'policy')}: {_verdict(e)}"
                                       for e in verdicts.get(a.id, {}).values()),
                 "uri": a.uri, "created": a.create_time_since_epoch} for a in models]

    def compare_runs(self, runs: Sequence[Any]) -> tuple[RunComparison, list[Any]]:
        """See :meth:`mlmd_magic.Store.compare`; also returns the compared runs' model artifacts."""
        if not runs:
            raise ValidationError("compare needs at least one run; see %mlmd ls runs")
        executions = [self.run_execution(run) for run in runs]
        links = self.run_links(executions)
        infos, flat = [], []
        for execution in executions:
            details = json.loads(text(execution.properties, "details") or "{}")
            exp_ref = links[execution.id]["experiment"]
            params = self.records.data("experiments", self.records.resolve("experiments", exp_ref)) if exp_ref else {}
            infos.append({"id": execution.id, "name": execution.name or f"run #{execution.id}", "experiment": exp_ref,
                          # a run still going has its per-epoch history, and no details yet
                          "history": details.get("history") or json.loads(text(execution.properties, "history")
                                                                          or "{}"),
                          "metrics": details.get("metrics", {})})
            flat.append(flatten({"datasource": f"{params['datasource']['name']}@{params['datasource']['version']}",
                                 "scenario": f"{params['scenario']['name']}@{params['scenario']['version']}",
                                 "params": params["params"]} if params else {}))
        keys = sorted({k for f in flat for k in f})
        differing = {k: [f.get(k) for f in flat] for k in keys if len({json.dumps(f.get(k)) for f in flat}) > 1}
        splits = sorted({s for info in infos for s in info["metrics"]})
        metrics = {s: [info["metrics"].get(s, {}) for info in infos] for s in splits}
        model_ids = sorted({m for m in (links[e.id]["model"] for e in executions) if m is not None})
        models = self.mlmd.get_artifacts_by_id(model_ids) if model_ids else []
        return RunComparison(infos, differing, metrics), list(models)

    # ------------------------------------------------------------------ long runs

    def cancel_requested(self, run_id: int) -> int | None:
        """The id of a ``CancelRun`` execution asking run ``run_id`` to stop, or None."""
        return cancel_request(self.mlmd, run_id)

    def cancel(self, run: Any, wait_s: float) -> RunProgress:
        """See :meth:`mlmd_magic.Store.cancel`."""
        (execution,) = self.judged([self.run_execution(run)])  # a dead run is FAILED, not cancelled
        name = execution.name or f"run #{execution.id}"
        act = Action("CancelRun", {"run": name})
        with self.recorder.guard(act):
            state = _state_name(execution)
            if state != "RUNNING":
                raise ValidationError(f"run {name} is {state}: only a running run can be cancelled; "
                                      "see %mlmd ls runs --running")
            act.properties["target_run"] = execution.id
            act.outcome = f"asked {name} to stop"
            self.recorder.commit(act)
        deadline = time.monotonic() + wait_s
        while True:
            progress = self.progress(execution.id)
            if progress.state != "RUNNING" or time.monotonic() >= deadline:
                return progress
            time.sleep(0.2)

    def progress(self, run: Any) -> RunProgress:
        """See :meth:`mlmd_magic.Store.watch`."""
        (execution,) = self.judged([self.run_execution(run)])
        return self._progress_of(execution)

    def _progress_of(self, execution: Any) -> RunProgress:
        props = execution.properties
        details = json.loads(text(props, "details") or "{}")
        progress = json.loads(text(props, "progress") or "{}")
        history = details.get("history") or json.loads(text(props, "history") or "{}")
        epochs = details.get("epochs") or progress.get("epochs") or 0
        return RunProgress(id=execution.id, name=execution.name or f"run #{execution.id}",
                           state=_state_name(execution), epoch=int(progress.get("epoch", 0)), epochs=int(epochs),
                           history=history, metrics=details.get("metrics", {}), error=text(props, "error"),
                           updated_ms=int(execution.last_update_time_since_epoch), live=progress)

    def by_external_id(self, external_id: str) -> Any | None:
        """The execution written with ``external_id`` (a background run's), or None yet."""
        from ml_metadata import errors as mlmd_errors

        try:
            found = self.mlmd.get_executions_by_external_ids([external_id])
        except (mlmd_errors.NotFoundError, ValueError):
            return None
        return found[0] if found else None


def write_last(recorder: Recorder, act: Action, live: LiveWriter, interrupts: Any,
               error: BaseException | None = None) -> None:
    """The run's final state, once its writer thread has stopped (no progress write can
    follow it), waiting for the store as long as it takes, and saying so."""
    waits = [time.monotonic()]
    interrupted = interrupts.count  # the Ctrl-C that cancels the run does not give up its record

    def give_up() -> None:
        if interrupts.count > interrupted:
            raise StoreError(f"run {act.name} was not recorded {act.state}: the store did not answer and "
                             "the wait for it was interrupted; the run stays RUNNING in the store until the "
                             "stale-run check marks it FAILED")

    def waiting(exc: BaseException) -> None:
        give_up()
        now = time.monotonic()
        if now - waits[0] >= 60:
            waits[0] = now
            _say(f"run {act.name}: still waiting for the store ({_why(exc)})")

    # said once the store keeps the run waiting a few seconds (a file another process holds,
    # a server stopped); nothing is said when it answers at once
    note = threading.Timer(WAIT_NOTE_S, _say, [
        f"run {act.name}: waiting for the store to record it {act.state}; the store is not answering, "
        "and the run is written as soon as it does (Ctrl-C gives up)"])
    note.daemon = True
    note.start()
    patient = getattr(recorder.mlmd, "patient", None)
    try:
        live.close()
        with patient(waiting, give_up) if patient is not None else contextlib.nullcontext():
            recorder.commit(act, error=error)
    finally:
        note.cancel()



def _verdict(evaluation: Any) -> str:
    blessed = evaluation.custom_properties["blessed"].int_value if "blessed" in evaluation.custom_properties else 0
    return "BLESSED" if blessed else "NOT BLESSED"


def _run_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The runs listing of ``rows`` (see :meth:`Runs._run_rows`): the fixed columns; ``epochs`` and
    every other parameter whose value differs between the rows, one column each (bare, or
    ``params.KEY`` where a fixed column has the name); one column per split and metric; integers
    as pandas' nullable ``Int64`` (a cancelled run's missing values are ``<NA>``, not ``NaN``)."""
    import pandas as pd

    flat = [flatten(row["params"]) if row.get("params") else {} for row in rows]
    for f, row in zip(flat, rows):  # a run with no epochs parameter: those its trainer reported
        if "epochs" not in f and row.get("epochs") is not None:
            f["epochs"] = row["epochs"]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    differing = [k for k in keys if k == "epochs" or len({canonical_json(f.get(k)) for f in flat}) > 1]
    fixed = set(RUN_COLUMNS)
    param_columns = {k: f"params.{k}" if k in fixed else k for k in differing}
    splits = list(dict.fromkeys(s for row in rows for s in row.get("metrics", {})))
    splits.sort(key=lambda split: (split != "test", split != "eval", split))  # test, eval, then the others
    metric_columns = [f"{split}.{name}" for split in splits
                      for name in sorted({m for row in rows for m in row.get("metrics", {}).get(split, {})})]
    data: dict[str, list[Any]] = {c: [row.get(c) for row in rows] for c in _RUN_FIXED_LEAD}
    for key, column in param_columns.items():
        data[column] = [f.get(key) for f in flat]
    for column in metric_columns:
        split, _, name = column.partition(".")
        # rounded to 4 places for reading (filters see every digit; store.run(ID).metrics has them)
        data[column] = [_rounded(row.get("metrics", {}).get(split, {}).get(name)) for row in rows]
    data.update({c: [row.get(c) for row in rows] for c in _RUN_FIXED_TAIL})
    frame = pd.DataFrame({c: pd.Series(_column(values), dtype=_dtype(values)) for c, values in data.items()},
                         columns=list(data))
    return frame


def _rounded(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def _dtype(values: list[Any]) -> Any:
    """A listing column's dtype: nullable ``Int64`` / ``Float64`` / ``boolean`` for numbers and
    flags (missing is ``<NA>``; an integer column stays whole), else objects."""
    present = [v for v in values if v is not None]
    if not present:
        return object
    if all(isinstance(v, bool) for v in present):
        return "boolean"
    if any(isinstance(v, int) and not -2 ** 63 <= v < 2 ** 63 for v in present):
        return object  # a whole number beyond 64 bits (10**305) stays exact, as the record keeps it
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "Int64"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "Float64"
    return object


def _column(values: list[Any]) -> list[Any]:
    """Values for a column: a list or mapping (``hidden: [64, 32]``) as its JSON text, so the
    column sorts and compares; NaN as missing."""
    out: list[Any] = []
    for v in values:
        if isinstance(v, (list, dict)):
            out.append(canonical_json(v))
        elif isinstance(v, float) and v != v:
            out.append(None)
        else:
            out.append(v)
    return out


def _state_name(execution: Any) -> str:
    from ml_metadata.proto import metadata_store_pb2 as pb

    return str(pb.Execution.State.Name(execution.last_known_state))


def _say(message: str) -> None:
    """A line about the run for the person (a notebook cell's output, a worker's log)."""
    import sys

    print(message, file=sys.stderr, flush=True)


def _why(exc: BaseException | None) -> str:
    """What a store failure was, short and without credentials."""
    if exc is None:
        return "no answer"
    from ..backend.secrets import redact

    text = redact(str(exc)).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__
