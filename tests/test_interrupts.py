"""Ctrl-C is CANCELED wherever it lands in a training (issue #25, item 3).

Each test sends a real SIGINT — to this process at a chosen point of ``store.train`` (from a
callback, or when a named line of Keras or of ours runs: a trace function times the signal, the
interpreter's handler raises it), or to a fresh child process in its first epoch — and reads
the outcome back from the store: the run's ``Train`` execution CANCELED, no Model artifact, no
model file, the one-line ``run … cancelled after …`` error, and Python's SIGINT handler back.

Some points are where Keras itself catches the ``KeyboardInterrupt``: a bare ``except:`` in its
TensorFlow ``shape()`` (hit while ``fit`` traces its first step) turns the interrupt into
``TypeError: Failed to convert elements of (None,) to Tensor`` (the reported FAILED run), and one
in its saving code lets ``model.save`` finish as if nothing happened (a COMPLETE run).
"""

from __future__ import annotations

import io
import json
import linecache
import os
import re
import signal
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from types import FrameType
from typing import Any, Callable

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

import mlmd_magic as mm
from mlmd_magic import datasets
from mlmd_magic.errors import RunCancelled, TrainingError
from mlmd_magic.trainer import Interrupts, ProgressReporter

EPOCHS = 2


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return datasets.simulate_nipt(str(tmp_path_factory.mktemp("nipt")), n_train=64, n_eval=16, n_test=16)


def _store(uri: str, data: dict[str, Any], epochs: int = EPOCHS) -> mm.Store:
    store = mm.connect(uri)
    store.add_datasource("nipt-sim", **data)
    store.add_scenario("tiny", model="mlp", params={"hidden": [4], "epochs": epochs, "batch_size": 16, "seed": 1})
    store.add_experiment("t21", datasource="nipt-sim", scenario="tiny")
    return store


@pytest.fixture
def store(tmp_path: Path, data: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> mm.Store:
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    return _store(f"sqlite:///{tmp_path}/interrupts.sqlite", data)


class SigintAt:
    """Sends this process a real SIGINT the first time, once armed, that ``function`` of the file
    whose path ends in ``path_end`` is called — or reaches its first line holding ``line`` —
    and ``when(frame)`` agrees. Python's handler runs at once and raises where that code is."""

    def __init__(self, path_end: str, function: str, line: str | None = None,
                 when: Callable[[FrameType], bool] | None = None) -> None:
        self.path_end, self.function, self.line, self.when = path_end, function, line, when
        self.fired = False
        self.previous: Any = None

    def arm(self) -> None:
        self.previous = sys.gettrace()
        sys.settrace(self.on_call)

    def disarm(self) -> None:
        sys.settrace(self.previous)

    def on_call(self, frame: FrameType, event: str, arg: Any) -> Any:
        code = frame.f_code
        if self.fired or code.co_name != self.function or not code.co_filename.replace("\\", "/").endswith(
                self.path_end):
            return None
        if self.line is None:
            if self.when is None or self.when(frame):
                self.fire()
            return None
        return self.on_line

    def on_line(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line" and not self.fired and self.line in linecache.getline(frame.f_code.co_filename,
                                                                                 frame.f_lineno):
            self.fire()
        return self.on_line

    def fire(self) -> None:
        self.fired = True
        os.kill(os.getpid(), signal.SIGINT)


class Point:
    """A plain trainer callback that interrupts at one point of a training and notes how it ended."""

    def __init__(self, at: str, trigger: SigintAt | None = None, arm: str = "now") -> None:
        self.at, self.trigger, self.arm = at, trigger, arm
        self.ended: list[str] = []

    def on_train_begin(self, info: dict[str, Any]) -> None:
        if self.trigger is not None and self.arm == "train begin":
            self.trigger.arm()

    def on_batch_end(self, step: int, logs: Any = None) -> None:
        if self.at == "batch" and step == 1:
            os.kill(os.getpid(), signal.SIGINT)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self.at == "epoch" and epoch == 0:
            os.kill(os.getpid(), signal.SIGINT)
        if self.trigger is not None and self.arm == "last epoch end" and epoch == EPOCHS - 1:
            self.trigger.arm()

    def on_train_end(self, info: dict[str, Any]) -> None:
        self.ended.append(info["status"])


KERAS = "keras/src/"
POINTS = {
    "between batches": lambda: Point("batch"),
    "at an epoch's end, after the heartbeat": lambda: Point("epoch"),
    "in handing the progress to its writer": lambda: Point("", SigintAt("mlmd_magic/store/runs.py", "on_epoch_end",
                                                                         "live.update(recorder.execution_of(act))")),
    "in the progress bar": lambda: Point("", SigintAt("mlmd_magic/trainer/_progress.py", "on_epoch_end",
                                                      "self._epoch = epoch + 1")),
    "in Keras' history": lambda: Point("", SigintAt(KERAS + "callbacks/history.py", "on_epoch_end",
                                                    "self.epoch.append(epoch)")),
    # Keras' shape() swallows it (bare except) and fit's tracing fails with the reported TypeError
    "in the first fit's tracing": lambda: Point("", SigintAt(KERAS + "backend/tensorflow/core.py", "shape",
                                                             "shape[i] = dynamic[i]"), arm="train begin"),
    "in the final evaluation of the splits": lambda: Point("", SigintAt(KERAS + "backend/tensorflow/trainer.py",
                                                                        "evaluate"), arm="last epoch end"),
    # Keras' saving swallows it (bare except) and saves the model anyway
    "in saving, where Keras swallows it": lambda: Point("", SigintAt(KERAS + "saving/saving_lib.py",
                                                                     "is_memory_sufficient")),
    "in saving, with the file half written": lambda: Point("", SigintAt(KERAS + "saving/saving_lib.py",
                                                                        "_save_state")),
}


def _assert_canceled(store: mm.Store, tmp_path: Path, message: str, epochs: int = EPOCHS) -> None:
    assert re.fullmatch(rf"run t21@1#1 cancelled after \d+ of {epochs} epochs, \d+ (s|min)", message), message
    assert list(store.ls("runs")["state"]) == ["CANCELED"]
    (execution,) = store.mlmd.get_executions_by_type("mlmd_magic.Train")
    assert execution.last_known_state == pb.Execution.CANCELED
    assert store.mlmd.get_artifacts_by_type("mlmd_magic.Model") == []
    assert not list(tmp_path.rglob("model.keras"))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("where", list(POINTS))
def test_an_interrupt_is_canceled_wherever_it_lands(where: str, store: mm.Store, tmp_path: Path) -> None:
    point = POINTS[where]()
    progress = ProgressReporter(stream=io.StringIO(), notebook=False)
    if point.trigger is not None and point.arm == "now":
        point.trigger.arm()
    try:
        with pytest.raises(KeyboardInterrupt) as info:  # not RunCancelled: any other would stop pytest
            # a workdir of its own: the trainer, not the run folder's removal, must leave no model file
            store.train("t21", callbacks=[point], progress=progress, workdir=str(tmp_path / "work"))
    finally:
        if point.trigger is not None:
            point.trigger.disarm()
    assert point.trigger is None or point.trigger.fired, f"no SIGINT was sent {where}"
    assert isinstance(info.value, RunCancelled), repr(info.value)
    _assert_canceled(store, tmp_path, str(info.value))
    assert point.ended == ["canceled"]  # the progress display says so too
    if where == "at an epoch's end, after the heartbeat":
        assert store.watch("t21@1#1").epoch == 1 and "after 1 of 2 epochs" in str(info.value)


def test_a_second_interrupt_while_the_cancel_is_written_still_cancels(store: mm.Store, tmp_path: Path) -> None:
    """Ctrl-C pressed twice: the second must not stop the CANCELED write (the run would stay RUNNING)."""
    canceled = pb.Execution.CANCELED
    again = SigintAt("mlmd_magic/backend/recorder.py", "_put_execution",
                     when=lambda frame: frame.f_locals["execution"].last_known_state == canceled)
    again.arm()
    try:
        with pytest.raises(KeyboardInterrupt) as info:
            store.train("t21", callbacks=[Point("batch")], progress=False)
    finally:
        again.disarm()
    assert again.fired and isinstance(info.value, RunCancelled), repr(info.value)
    _assert_canceled(store, tmp_path, str(info.value))


def test_an_interrupt_while_the_run_is_recorded_complete_leaves_it_complete(store: mm.Store,
                                                                           tmp_path: Path) -> None:
    """Too late: the finished run's one write is not cut in half (a CANCELED run with a model)."""
    complete = pb.Execution.COMPLETE
    late = SigintAt("mlmd_magic/backend/recorder.py", "_put_execution",
                    when=lambda frame: frame.f_locals["execution"].last_known_state == complete)
    late.arm()
    try:
        with warnings.catch_warnings(record=True) as caught:  # not pytest.warns: it re-raises TensorFlow's own
            warnings.simplefilter("always")
            try:
                run = store.train("t21", progress=False)
            except KeyboardInterrupt as exc:
                pytest.fail(f"the run was recorded COMPLETE, then interrupted: {exc!r}")
    finally:
        late.disarm()
    assert late.fired
    said = [str(w.message) for w in caught if w.category is UserWarning]
    assert "run t21@1#1 was being recorded COMPLETE when it was interrupted: it stays COMPLETE with its model" in said
    assert run.state == "COMPLETE" and list(store.ls("runs")["state"]) == ["COMPLETE"]
    (model,) = store.mlmd.get_artifacts_by_type("mlmd_magic.Model")
    assert model.id == run.model_id and Path(model.uri).exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_error_with_no_interrupt_still_fails(store: mm.Store) -> None:
    class Broken:
        def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
            raise ValueError("a genuine error")

    with pytest.raises(TrainingError, match="training t21@1 failed: ValueError: a genuine error"):
        store.train("t21", callbacks=[Broken()], progress=False)
    assert list(store.ls("runs")["state"]) == ["FAILED"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_interrupt_a_library_swallows_is_remembered() -> None:
    """Nested watches share one handler; the interrupt a library turned into an error is known."""
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # else a SIGINT here would stop pytest
    with Interrupts() as outer, Interrupts() as inner:
        try:
            try:
                signal.raise_signal(signal.SIGINT)
            except KeyboardInterrupt:
                raise TypeError("Failed to convert elements of (None,) to Tensor") from None
        except TypeError as exc:
            error: BaseException = exc
        assert outer.interrupted_by(error) is inner.pending is outer.pending
        with pytest.raises(KeyboardInterrupt):
            inner.check()
        with inner.deferred():
            signal.raise_signal(signal.SIGINT)  # noted, not raised
    assert outer.interrupted_by(ValueError()) is not None
    assert Interrupts().interrupted_by(ValueError()) is None  # no interrupt: a genuine error stays one
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


_CHILD = r"""
import json, linecache, sys, time
import mlmd_magic as mm

uri, where = sys.argv[1], sys.argv[2]


def wait_in_shape(frame, event, arg):  # waits for the SIGINT in Keras' shape(), inside its bare except
    if event == "line" and "shape[i] = dynamic[i]" in linecache.getline(frame.f_code.co_filename, frame.f_lineno):
        sys.settrace(None)
        print("TRAINING", flush=True)
        time.sleep(120)  # the signal ends it: Python's handler raises here
    return wait_in_shape


def on_call(frame, event, arg):
    code = frame.f_code
    if code.co_name == "shape" and code.co_filename.replace("\\", "/").endswith("keras/src/backend/tensorflow/core.py"):
        return wait_in_shape
    return None


class Marker:
    def on_train_begin(self, info):
        if where == "tracing":
            sys.settrace(on_call)
        else:
            print("TRAINING", flush=True)


store = mm.connect(uri)
try:
    store.train("t21", callbacks=[Marker()], progress=False)
    outcome = {"raised": None}
except BaseException as exc:
    outcome = {"raised": type(exc).__name__, "keyboard": isinstance(exc, KeyboardInterrupt), "message": str(exc)}
print(json.dumps(outcome), flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize(("where", "delay_s"), [("tracing", 0.0), ("first epoch", 0.0), ("first epoch", 0.5)])
def test_a_fresh_process_interrupted_in_its_first_epoch_is_canceled(where: str, delay_s: float,
                                                                    data: dict[str, Any], tmp_path: Path) -> None:
    """A real kernel restart: a new process, its first ``fit`` (tf.function tracing), a real SIGINT
    from another process — sent once the child says it is training, or while it waits in Keras'
    ``shape()`` as ``fit`` traces (the reported ``TypeError``, every time, before the fix)."""
    uri = f"sqlite:///{tmp_path}/fresh.sqlite"
    _store(uri, data, epochs=1000).close()
    env = {**os.environ, "MLMD_MAGIC_RUNS_DIR": str(tmp_path / "runs")}
    errors = open(tmp_path / "child.err", "w+")  # a file: TensorFlow's start-up lines cannot fill a pipe
    child = subprocess.Popen([sys.executable, "-c", _CHILD, uri, where], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=errors)
    watchdog = threading.Timer(240, child.kill)
    watchdog.start()
    try:
        assert child.stdout is not None
        marker = child.stdout.readline()
        assert marker == "TRAINING\n", (tmp_path / "child.err").read_text()[-3000:]
        if delay_s:
            threading.Event().wait(delay_s)
        os.kill(child.pid, signal.SIGINT)
        out, _ = child.communicate()
    finally:
        watchdog.cancel()
        if child.poll() is None:
            child.kill()
            child.wait()
        errors.close()
    outcome = json.loads(out.strip().splitlines()[-1])
    assert outcome["raised"] == "RunCancelled" and outcome["keyboard"], \
        (outcome, (tmp_path / "child.err").read_text()[-3000:])
    _assert_canceled(mm.connect(uri), tmp_path, outcome["message"], epochs=1000)


def test_a_ctrl_c_in_a_garbage_collector_callback_is_remembered_not_printed(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A Ctrl-C landing in a callback Python cannot raise from (JAX's gc callback was one) is not
    printed as "Exception ignored in …"; the watch remembers it and the training stops with it."""
    import gc
    import signal

    from mlmd_magic.trainer._interrupts import Interrupts

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and not fired:
            fired.append(1)
            signal.raise_signal(signal.SIGINT)

    fired: list[int] = []
    before = sys.unraisablehook
    with Interrupts() as interrupts:
        gc.callbacks.append(callback)
        try:
            gc.collect()
        finally:
            gc.callbacks.remove(callback)
        assert interrupts.pending is not None
    assert fired and "Exception ignored" not in capsys.readouterr().err
    assert sys.unraisablehook is before  # the hook back as it was
