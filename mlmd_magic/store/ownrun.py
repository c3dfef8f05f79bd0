"""A run of your own training code, on record as a run of the built-in trainer is.

::

    with store.start_run("t21-baseline") as run:      # a Train execution, RUNNING
        for epoch in range(run.params["epochs"]):
            ...                                         # any framework
            run.log({"loss": loss, "eval.accuracy": acc}, step=epoch)
        run.log_model(model)                            # a Keras or scikit-learn model, or a file
    run.result                                          # the Run: COMPLETE, FAILED or CANCELED

The run reads its experiment version, data source and scenario (INPUT events), is named
``EXPERIMENT@N#K``, writes its progress and heartbeat from a thread of its own (so ``watch``,
``ls runs`` and ``cancel`` see it from anywhere), and ends COMPLETE (with the model logged, or
none, said in its outcome), FAILED with the block's exception (which goes on), or CANCELED on
Ctrl-C or a cancel request (raised as :class:`~mlmd_magic.errors.RunCancelled` at the next
``log``). Metrics named ``SPLIT.METRIC`` (``eval.accuracy``) are the run's metrics per split, as
the trainer's are, so listings, filters, sweeps and policies use them; other names (``loss``)
are the training split's. A run of your own code is never CACHED.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..backend.properties import flat_metrics, set_properties
from ..core.values import canonical_json
from ..errors import MlmdMagicError, RunCancelled, ValidationError
from .live import PROGRESS_S
from .results import Run

if TYPE_CHECKING:
    from ..backend.recorder import Action
    from .live import LiveWriter
    from .runs import Runs

__all__ = ["OwnRun", "model_file"]

_TRAIN_SPLIT = "train"


class OwnRun:
    """The handle of a run of your own code (see the module's docstring); made by
    :meth:`mlmd_magic.Store.start_run`, ended by leaving its ``with`` block.

    Attributes
    ----------
    params : the experiment version's parameters (a copy: changing it changes no record).
    name : the run's name, ``EXPERIMENT@N#K``; ``id`` its execution's id; ``run_dir`` a folder
        for its files.
    result : the :class:`~mlmd_magic.store.results.Run` once the block has ended (else None).
    """

    def __init__(self, runs: Runs, act: Action, live: Callable[[], LiveWriter], interrupts: Callable[[], Any],
                 params: dict[str, Any], experiment: str, run_dir: str, versions: tuple[str, str],
                 own_dir: bool) -> None:
        self._runs, self._act = runs, act
        self._make_live, self._make_interrupts = live, interrupts
        self._live: Any = None  # the writer thread and the Ctrl-C watch: from the block's start to its end
        self._interrupts: Any = None
        self.params = params
        self.experiment = experiment
        self.name, self.id = act.name, act.execution_id or 0
        self.run_dir = run_dir
        self.result: Run | None = None
        self._versions = versions
        self._own_dir = own_dir  # the folder is the run's own (no workdir given): removed when it is cancelled
        self._history: dict[str, list[float]] = {}
        self._metrics: dict[str, dict[str, float]] = {}
        self._steps = 0
        self._model: Any = None  # the Model artifact, once logged
        self._framework = ""
        self._started = time.perf_counter()
        self._next_hand = 0.0  # when the writer thread is next handed the run's progress
        self._last_logs: dict[str, float] = {}
        self._ended = False

    def __repr__(self) -> str:
        state = self.result.state if self.result is not None else "RUNNING"
        return f"<OwnRun {self.name} (#{self.id}) {state}>"

    def __enter__(self) -> OwnRun:
        if self._live is not None or self._ended:
            raise ValidationError(f"run {self.name} was entered already: start another with store.start_run")
        self._interrupts = self._make_interrupts()
        self._interrupts.__enter__()
        self._live = self._make_live()
        self._started = time.perf_counter()
        return self

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Record ``metrics`` (name -> number) at ``step`` (default: one more than the last):
        the run's curves, its progress (``watch`` shows them), and its metrics per split (the
        last value of each). A cancel request for the run stops it here.

        Raises
        ------
        ValidationError
            For a name that is not a string or a value that is not a finite number (in one
            line; nothing of that call is recorded).
        RunCancelled
            When a ``%mlmd cancel`` / ``store.cancel`` asked the run to stop (it is then recorded
            CANCELED when the block ends).
        """
        self._check_open()
        if not isinstance(metrics, Mapping):
            raise ValidationError(f"run.log takes a mapping of metric names to numbers, got {type(metrics).__name__}")
        if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
            raise ValidationError(f"step must be a whole number >= 0, got {step!r}")
        values: dict[str, float] = {}
        for key, value in metrics.items():
            if not isinstance(key, str) or not key or key.startswith(".") or key.endswith("."):
                raise ValidationError(f"a metric name must be a word such as 'loss' or 'eval.accuracy', got {key!r}")
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ValidationError(f"metric {key!r} must be a number, got {value!r}") from None
            if isinstance(value, bool) or not math.isfinite(number):
                raise ValidationError(f"metric {key!r} must be a finite number, got {value!r}")
            values[key] = number
        self._steps = (self._steps if step is None else step) + 1
        for key, number in values.items():
            self._history.setdefault(key, []).append(number)
            split, _, name = key.partition(".")  # eval.f1.macro: split eval, metric f1.macro
            if not name:
                split, name = _TRAIN_SPLIT, key
            self._metrics.setdefault(split, {})[name] = number
        self._last_logs = values
        now = time.perf_counter()
        if now >= self._next_hand:  # handed to the writer thread every PROGRESS_S, not on every call
            self._next_hand = now + PROGRESS_S
            self._hand(now)
        if self._live.cancel_id is not None:
            from .runs import stop_requested

            raise stop_requested(self._live.cancel_id)

    def _hand(self, now: float) -> None:
        """The run's curves and progress, as they stand, to the writer thread (it writes them)."""
        self._note(now)
        self._live.update(self._runs.recorder.execution_of(self._act))

    def _note(self, now: float) -> None:
        """The run's curves and progress, as they stand, on its execution's properties."""
        epochs = self.params.get("epochs")
        self._act.properties["history"] = canonical_json(self._history)
        self._act.properties["progress"] = canonical_json({
            "epoch": self._steps, "epochs": epochs if isinstance(epochs, int) and epochs >= self._steps else 0,
            "step": 0, "steps": 0, "elapsed_s": round(now - self._started, 3), "logs": self._last_logs})

    def log_model(self, model: Any, *, framework: str | None = None) -> str:
        """Keep ``model`` as the run's model: a Keras model (saved as ``model.keras``), any other
        object (``joblib``: scikit-learn, XGBoost, LightGBM …; ``model.joblib``), or the path of
        a file or folder written already (copied into the run's folder). Returns where it is
        kept. A second call replaces the first.

        Raises
        ------
        ValidationError
            For a path that does not exist, or an object that cannot be saved (saying why).
        """
        self._check_open()
        os.makedirs(self.run_dir, exist_ok=True)
        path, found = model_file(model, self.run_dir)
        self._framework = framework or found
        from ml_metadata.proto import metadata_store_pb2 as pb

        art = pb.Artifact(type_id=self._runs.recorder.types.artifacts["Model"], name=self.name, uri=path,
                          state=pb.Artifact.LIVE)
        self._model = art
        return path

    # ------------------------------------------------------------------------------------- ending

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        """End the run: COMPLETE, FAILED with ``exc`` (which goes on), or CANCELED (raised as
        :class:`~mlmd_magic.errors.RunCancelled`)."""
        if self._ended or self._live is None:
            return
        self._ended = True
        from .runs import is_cancel_request, write_last

        act, live, interrupts = self._act, self._live, self._interrupts
        recorder = self._runs.recorder
        created, reused = self._versions
        model: Any = None
        details: dict[str, Any] = {}
        stop: RunCancelled | None = None
        try:
            with interrupts.deferred():  # a second Ctrl-C must not leave the run RUNNING
                interrupt = interrupts.interrupted_by(exc) if exc is not None else interrupts.pending
                live.close()
                if self._steps:  # the whole curves, also what came since the last hand-off
                    self._note(time.perf_counter())
                model, details = self._finished()
                if interrupt is not None:
                    act.state, act.outcome, act.outputs = "CANCELED", "canceled", []
                    write_last(recorder, act, live, interrupts,
                               interrupt if interrupt.args else KeyboardInterrupt("interrupted by the user"))
                    if self._own_dir:
                        shutil.rmtree(self.run_dir, ignore_errors=True)
                    epochs = self.params.get("epochs")
                    stop = RunCancelled(self.name, time.perf_counter() - self._started, self._steps,
                                        epochs if isinstance(epochs, int) else self._steps, created,
                                        requested=is_cancel_request(interrupt), version_reused=reused)
                elif exc is not None:
                    act.state, act.outcome, act.outputs = "FAILED", "failed", []
                    with contextlib.suppress(MlmdMagicError):  # the block's own error is what the user must see
                        write_last(recorder, act, live, interrupts, exc)
                else:
                    act.outputs = [model] if model is not None else []
                    act.state = "COMPLETE"
                    act.outcome = f"logged {self._steps} steps" + ("" if model is not None else "; no model logged")
                    act.properties["details"] = canonical_json(details)
                    write_last(recorder, act, live, interrupts)
                    if model is not None:
                        model.id = act.output_ids[0]
        finally:
            interrupts.__exit__(None, None, None)
        kept = model is not None and act.state == "COMPLETE"
        self.result = Run(id=self.id, experiment=self.experiment, state=act.state, cached=False,
                          model_id=model.id if kept else None, model_uri=model.uri if kept else None,
                          metrics=self._metrics, history=self._history,
                          details={k: v for k, v in details.items() if k not in ("metrics", "history")}, name=self.name)
        if stop is not None:
            raise stop from None
        if exc is None and interrupts.pending is not None:  # it came while the run's end was being written
            warnings.warn(f"run {self.name} was being recorded COMPLETE when it was interrupted: it stays COMPLETE",
                          UserWarning, stacklevel=2)

    def _check_open(self) -> None:
        if self._ended:
            raise ValidationError(f"run {self.name} has ended: log inside its with block")
        if self._live is None:
            raise ValidationError(f"run {self.name} has not begun: use it as a with block (with store.start_run(...) "
                                  "as run:)")

    def _finished(self) -> tuple[Any, dict[str, Any]]:
        """The model artifact (properties set) or None, and the run's details."""
        details: dict[str, Any] = {"metrics": self._metrics, "history": self._history, "steps": self._steps,
                                   "framework": self._framework or "none", "trained_by": "your own code"}
        art = self._model
        if art is not None:
            versions = _versions(self._framework)
            set_properties(art, framework=self._framework, versions=canonical_json(versions),
                           signature=canonical_json({}), experiment=self.experiment, task="",
                           metrics=canonical_json(self._metrics))
            flat_metrics(art, self._metrics)
            details["versions"] = versions
        else:
            details["notes"] = ["no model was logged (run.log_model)"]
        return art, details


def model_file(model: Any, folder: str) -> tuple[str, str]:
    """Save ``model`` in ``folder`` (see :meth:`OwnRun.log_model`): ``(its path, its framework)``."""
    if isinstance(model, (str, os.PathLike)):
        source = os.fspath(model)
        if not os.path.exists(source):
            raise ValidationError(f"no model at {source!r}: give a model object or the path of a file written already")
        target = os.path.join(folder, os.path.basename(os.path.normpath(source)))
        if os.path.abspath(source) != os.path.abspath(target):
            (shutil.copytree if os.path.isdir(source) else shutil.copy2)(source, target)
        return target, _framework_of_file(target)
    module = type(model).__module__.split(".")[0]
    if module in ("keras", "tf_keras") or (module == "tensorflow" and hasattr(model, "save")):
        path = os.path.join(folder, "model.keras")
        model.save(path)
        return path, "keras"
    import joblib

    path = os.path.join(folder, "model.joblib")
    try:
        joblib.dump(model, path)
    except Exception as exc:  # an object pickle cannot hold (a lambda, an open file)
        raise ValidationError(f"cannot save the model ({type(model).__name__}) with joblib: {exc}; save it yourself "
                              "and give run.log_model its path") from None
    return path, {"sklearn": "scikit-learn"}.get(module, module)


def _framework_of_file(path: str) -> str:
    ending = os.path.splitext(path)[1].lower()
    return {".keras": "keras", ".h5": "keras", ".joblib": "joblib", ".pkl": "pickle", ".pt": "pytorch",
            ".pth": "pytorch", ".onnx": "onnx", ".json": "json", ".ubj": "xgboost", ".txt": "text"}.get(ending, "file")


def _versions(framework: str) -> dict[str, str]:
    """The version of the framework's package, where one is installed under that name."""
    from importlib import metadata

    name = {"keras": "keras", "scikit-learn": "scikit-learn", "pytorch": "torch", "xgboost": "xgboost",
            "lightgbm": "lightgbm"}.get(framework)
    if name is None:
        return {}
    try:
        return {framework: metadata.version(name)}
    except metadata.PackageNotFoundError:
        return {}
