"""Progress that tells the truth (the run's ETA, the epoch under way, `watch` from the first
heartbeat) and costs nothing (drawn on a clock, curves within a budget). Every time here is an
injected clock's, except where a real training runs, and none is asserted against the wall."""

from __future__ import annotations

import base64
import io
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import mlmd_magic as mm
from mlmd_magic import datasets
from mlmd_magic.trainer import ProgressReporter, _progress

INFO = {"model": "mlp", "device": "cpu", "backend": "tensorflow", "task": "binary"}
PNG = b"\x89PNG\r\n\x1a\n"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def shell() -> Any:
    from IPython.core.interactiveshell import InteractiveShell

    return InteractiveShell.instance()


# ---------------------------------------------------------------------------- 4. the truth


def test_the_eta_is_the_whole_runs_and_waits_for_a_few_steps() -> None:
    clock, out = Clock(), _Tty()
    reporter = ProgressReporter(stream=out, notebook=False, clock=clock, interval_s=0.0)
    reporter.on_train_begin({**INFO, "epochs": 10, "steps": 10})
    clock.now += 1.5  # the first step carries the tracing: 1.5 s
    reporter.on_batch_end(0, {"loss": 0.7})
    first = out.getvalue().rsplit("\r", 1)[-1]
    assert "run ETA: …" in first  # not "ETA: 14s" (1.5 s x 9 steps) nor 2:29 for the run
    for step in range(1, 4):  # three more steps of 0.1 s: too few, too soon for an estimate
        clock.now += 0.1
        reporter.on_batch_end(step, {"loss": 0.6})
    assert out.getvalue().rsplit("\r", 1)[-1].count("run ETA: …") == 1
    for step in range(4, 10):
        clock.now += 0.2
        reporter.on_batch_end(step, {"loss": 0.5})
    # 9 steps in 1.5 s since the first one: 0.1667 s a step, 90 steps of the run left (15 s), not
    # the 0 s left in this epoch
    assert out.getvalue().rsplit("\r", 1)[-1].startswith("10/10 ━━━━━━━━━━━━━━━━━━━━ run ETA: 15s - loss: 0.5")
    clock.now += 0.5  # the validation
    reporter.on_epoch_end(0, {"loss": 0.5, "val_loss": 0.6})
    # 9 steps and the validation in 2 s since the first step: 20 s for the 90 steps left
    assert "ms/step - loss: 0.5 - val_loss: 0.6 - run ETA: 20s\nEpoch 2/10\n" in out.getvalue()


def test_a_notebook_bar_names_the_epoch_under_way_and_the_runs_eta(shell: Any) -> None:
    from IPython.utils.capture import capture_output

    clock = Clock()
    reporter = ProgressReporter(notebook=True, curves=False, clock=clock, interval_s=0.25)
    with capture_output() as captured:
        reporter.on_train_begin({**INFO, "epochs": 4, "steps": 20})
        for epoch in range(2):
            for step in range(20):
                clock.now += 1.5 if (epoch, step) == (0, 0) else 0.1
                reporter.on_batch_end(step, {"loss": 0.5})
            reporter.on_epoch_end(epoch, {"loss": 0.5})
        for step in range(7):
            clock.now += 0.1
            reporter.on_batch_end(step, {"loss": 0.5})
    html = [o.data["text/html"] for o in captured.outputs if "text/html" in o.data]
    assert "epoch 1/4: starting" in html[0]
    assert "<progress value='1' max='80'" in html[1] and "epoch 1/4:  1/20 " in html[1] and "run ETA: …" in html[1]
    # the last step drawn: epoch 3 under way; 0.1 s a step since the first step; the ETA is the
    # run's (this epoch's steps left and all of epoch 4), not this epoch's
    found = re.search(r"<progress value='(\d+)' max='80'.*epoch 3/4: +(\d+)/20 ━+─+ run ETA: (\d+)s", html[-1])
    assert found, html[-1]
    value, step, eta = (int(g) for g in found.groups())
    assert value == 40 + step and step >= 5 and eta == round(0.1 * (80 - value))


def test_watch_shows_epochs_steps_eta_and_curves_from_the_first_heartbeat(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlmd_magic.store import live

    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(live, "PROGRESS_S", 0.0)  # every step handed: the reader sees each one
    monkeypatch.setattr(_progress, "ETA_MIN_S", 0.0)  # an ETA after ETA_MIN_STEPS steps, however fast
    uri = f"sqlite:///{tmp_path}/truth.sqlite"
    store = mm.connect(uri)
    store.add_datasource("nipt-sim", **datasets.simulate_nipt(str(tmp_path / "nipt"), n_train=320, n_eval=64,
                                                               n_test=64))
    store.add_scenario("mlp", model="mlp", params={"hidden": [8], "batch_size": 32, "epochs": 3, "seed": 1})
    store.add_experiment("t21", datasource="nipt-sim", scenario="mlp")
    other = mm.connect(uri)  # another connection, as another process reads it
    seen: dict[str, Any] = {}
    handed: list[int] = []

    def look(predicate: Any) -> Any:
        deadline = time.monotonic() + 60
        while not predicate(progress := other.watch("t21@1")) and time.monotonic() < deadline:
            time.sleep(0.02)
        return progress

    class Look:
        def on_train_begin(self, info: dict[str, Any]) -> None:  # no step, no epoch done yet
            seen["begin"] = look(lambda p: p.steps == 10)

        def on_batch_end(self, step: int, logs: Any = None) -> None:
            if step == 7 and "step" not in seen:  # the first epoch's 8th step: handed by the run's Progress just before
                seen["step"] = look(lambda p: p.step == 8)

    original = live.LiveWriter.update

    def counted(self: Any, execution: Any) -> None:
        handed.append(1)
        original(self, execution)

    monkeypatch.setattr(live.LiveWriter, "update", counted)
    run = store.train("t21", callbacks=[Look()], progress=False)
    begin, step = seen["begin"], seen["step"]
    assert (begin.state, begin.epoch, begin.epochs, begin.step) == ("RUNNING", 0, 3, 0)
    assert begin.headline() == f"run t21@1#1 (#{run.id}): RUNNING, epoch 1/3"  # not "epoch 0/0" (no step yet)
    assert "no training curves recorded" not in begin._repr_html_()
    assert (step.epoch, step.epochs, step.step, step.steps) == (0, 3, 8, 10)
    assert step.eta_s is not None and step.eta_s > 0  # 22 steps to go, at the rate of the 7 since the first
    assert step.headline().startswith(f"run t21@1#1 (#{run.id}): RUNNING, epoch 1/3, step 8/10, ETA ")
    shown = step._repr_html_()  # the first epoch's training values so far, as its point
    assert "data:image/png;base64," in shown and "epoch 1: the training values of its 8 steps so far" in shown
    assert step.to_dict()["step"] == 8
    final = other.watch(run.id)
    assert final.headline() == f"run t21@1#1 (#{run.id}): COMPLETE, epoch 3/3" and final.eta_s is None
    # a hand-off at the start, one per step (PROGRESS_S is 0 here) and one per epoch
    assert len(handed) == 1 + 30 + 3


# ---------------------------------------------------------------------------- 5. the cost


def _fake_drawing(clock: Clock, cost_s: float, drawn: list[tuple[int, bool]]) -> Any:
    """matplotlib's drawing as the test's clock sees it: ``cost_s`` of the run's thread; one made
    on another thread (the drawing at the end, alongside the evaluation and the save) moves no
    clock. Each drawing is recorded as (the epochs it holds, made on the run's thread) and its
    PNG names those epochs."""

    def curves_png(runs: Any, **kwargs: Any) -> bytes:
        on_run = threading.current_thread() is threading.main_thread()
        if on_run:
            clock.now += cost_s
        epochs = max((len(v) for v in runs["run"].values()), default=0)
        drawn.append((epochs, on_run))
        return PNG + f"epochs={epochs}".encode()

    return curves_png


def _pngs(captured: Any) -> list[bytes]:
    return [o.data["image/png"] if isinstance(o.data["image/png"], bytes) else base64.b64decode(o.data["image/png"])
            for o in captured.outputs if "image/png" in o.data]


@pytest.mark.parametrize("epochs,steps,step_s", [(200, 8, 0.006), (20, 8, 0.05), (20, 13, 0.01), (3, 50, 2.0)])
def test_the_notebook_display_costs_at_most_five_percent(
        shell: Any, monkeypatch: pytest.MonkeyPatch, epochs: int, steps: int, step_s: float) -> None:
    """Many tiny epochs, WDBC-like short ones (20 of 13 steps: ~3 s, where one 0.2 s drawing on
    the run's thread would be 7 %), and long ones: the bar on a clock, the curves (0.2 s a drawing)
    within the budget, and at the end with every epoch — all of it, the picture at the end
    included, at most 5 % of the run's time."""
    from IPython.utils.capture import capture_output

    clock, drawn = Clock(), list[tuple[int, bool]]()
    monkeypatch.setattr(_progress, "curves_png", _fake_drawing(clock, 0.2, drawn))
    reporter = ProgressReporter(notebook=True, clock=clock)
    with capture_output() as captured:
        started = clock()
        reporter.on_train_begin({**INFO, "epochs": epochs, "steps": steps})
        for epoch in range(epochs):
            for step in range(steps):
                clock.now += step_s
                reporter.on_batch_end(step, {"loss": 0.5})
            clock.now += step_s  # the validation
            reporter.on_epoch_end(epoch, {"loss": 1 / (epoch + 1), "val_loss": 1 / (epoch + 1)})
        clock.now += 0.3  # the evaluation of the splits and the save
        reporter.on_train_end({**INFO, "status": "complete"})
        training_s = clock() - started - reporter.cost_s
    updates = sum(1 for o in captured.outputs if "text/html" in o.data)
    assert updates <= 2 + training_s / reporter.interval_s + 1  # the bar: on the clock, not per step or epoch
    *during, final = drawn
    assert final == (epochs, False)  # the curves at the end hold every epoch, drawn off the run's thread
    assert _pngs(captured)[-1] == PNG + f"epochs={epochs}".encode()  # ... and shown before the run returns
    assert reporter.curves_drawn == len(drawn)
    assert all(on_run for _, on_run in during)
    assert len(during) <= training_s / _progress.CURVES_INTERVAL_S
    assert 0.2 * len(during) <= _progress.CURVES_BUDGET * training_s + 1e-9
    if epochs == 3:  # a long epoch gets its curves at once
        assert during and during[0][0] == 1
    if epochs == 20 and steps == 13:  # a short run: no drawing but the one at the end
        assert not during
    # everything the run's thread spent on the display (bar, curves, the wait for the last
    # picture), every drawing included: no exception for a short run's one picture
    assert reporter.cost_s <= 0.05 * training_s


def test_the_curves_are_drawn_on_the_clock_whatever_the_run_reports(
        shell: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The clock between two drawings counts drawings, not the loss values of the last one: a run
    that reports no ``loss`` (here only ``mae``) still gets its curves every 5 s at most (not at
    every epoch the budget allows), and at the end with every epoch."""
    from IPython.utils.capture import capture_output

    clock, drawn = Clock(), list[tuple[int, bool]]()
    monkeypatch.setattr(_progress, "curves_png", _fake_drawing(clock, 0.01, drawn))
    reporter = ProgressReporter(notebook=True, clock=clock)
    with capture_output():
        reporter.on_train_begin({**INFO, "epochs": 24, "steps": 4})
        for epoch in range(24):
            clock.now += 1.0  # 1 s epochs
            reporter.on_epoch_end(epoch, {"mae": 1 / (epoch + 1), "val_mae": 1 / (epoch + 1)})
        reporter.on_train_end({**INFO, "status": "complete"})
    *during, final = drawn
    # the first once 3 % of the run pays for a first guess of 0.25 s (9 s), then every 5 s
    # (each drawing, 0.01 s, is within the budget at every epoch): not one an epoch from the 9th
    assert [epochs for epochs, _ in during] == [9, 14, 19]
    assert final == (24, False)


def test_the_picture_at_the_end_is_shown_even_when_it_outlasts_the_evaluation(
        shell: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """No evaluation or save to hide it behind: the run waits for its last picture (the wait is
    the display's cost), which is in the cell before the training returns."""
    from IPython.utils.capture import capture_output

    clock, release = Clock(), threading.Event()

    def slow_drawing(runs: Any, **kwargs: Any) -> bytes:
        release.wait(10)
        return PNG + b"last"

    monkeypatch.setattr(_progress, "curves_png", slow_drawing)
    reporter = ProgressReporter(notebook=True, clock=clock)
    with capture_output() as captured:
        reporter.on_train_begin({**INFO, "epochs": 1, "steps": 1})
        reporter.on_epoch_end(0, {"loss": 0.5})
        timer = threading.Timer(0.05, release.set)  # the drawing ends after on_train_end began waiting
        timer.start()
        reporter.on_train_end({**INFO, "status": "complete"})
        timer.join()
    assert _pngs(captured) == [PNG + b"last"] and reporter.curves_drawn == 1
    assert "complete after 1 epochs" in [o.data["text/html"] for o in captured.outputs if "text/html" in o.data][-1]


def test_a_failed_drawing_at_the_end_is_said_and_the_run_goes_on(
        shell: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from IPython.utils.capture import capture_output

    def broken(runs: Any, **kwargs: Any) -> bytes:
        raise RuntimeError("no fonts")

    monkeypatch.setattr(_progress, "curves_png", broken)
    reporter = ProgressReporter(notebook=True, clock=Clock())
    with capture_output() as captured, pytest.warns(UserWarning, match="curves could not be drawn: no fonts"):
        reporter.on_train_begin({**INFO, "epochs": 1, "steps": 1})
        reporter.on_epoch_end(0, {"loss": 0.5})
        reporter.on_train_end({**INFO, "status": "complete"})
    assert _pngs(captured) == []


def test_the_terminal_and_store_progress_draw_nothing_per_step() -> None:
    clock, out = Clock(), _Tty()
    reporter = ProgressReporter(stream=out, notebook=False, clock=clock)
    reporter.on_train_begin({**INFO, "epochs": 50, "steps": 100})
    for epoch in range(50):
        for step in range(100):
            clock.now += 0.001
            reporter.on_batch_end(step, {"loss": 0.5})
        reporter.on_epoch_end(epoch, {"loss": 0.5})
    assert reporter.draws <= 1 + 5.0 / 0.25 + 1  # 5 s of steps: one line each 0.25 s
    assert out.getvalue().count("\r") <= reporter.draws + 50
