"""Progress for people: in a notebook, a progress bar with the run's ETA that moves within each
epoch and the training curves redrawn as the run goes; in a terminal, Keras-style lines.

No widgets are imported (the trainer must run anywhere): a notebook gets two displays (the bar
as HTML, the curves as a PNG, so a saved notebook keeps them) updated in place through their
display ids. Everything is drawn on a clock, never per step: a step that draws nothing costs
one clock read; the bar is redrawn at most every ``interval_s``; the curves (a matplotlib PNG,
0.1-0.2 s a drawing) at most every :data:`CURVES_INTERVAL_S` and within :data:`CURVES_BUDGET` of
the time the run has taken, and always at its end. The drawing at the end is made on a worker
thread from the last epoch's end, while the run evaluates its splits and saves its model, and
shown from the run's thread before the training returns: a short run (WDBC's 20 epochs take
~3 s) would otherwise pay 3-5 % of its time for that one picture.

The ETA is the whole run's (every epoch left, validation included), from the time per step
since the end of the first step (which carries the tracing); none is given before
:data:`ETA_MIN_STEPS` steps and :data:`ETA_MIN_S` seconds (or the end of an epoch).
"""

from __future__ import annotations

import html
import sys
import threading
import time
import warnings
from typing import Any, Callable

from ..display.curves import curves_png

__all__ = ["CURVES_BUDGET", "CURVES_INTERVAL_S", "ETA_MIN_S", "ETA_MIN_STEPS", "ProgressReporter", "RunClock",
           "format_eta", "keras_line"]

CURVES_INTERVAL_S = 5.0  # the curves are redrawn during a run at most this often (and at its end)
CURVES_BUDGET = 0.03  # ... and only while all drawings so far cost at most this share of the run's time
CURVES_FIRST_GUESS_S = 0.25  # what a drawing is taken to cost before one was timed
ETA_MIN_STEPS = 5  # no ETA before this many steps after the first ...
ETA_MIN_S = 1.0  # ... and this many seconds (or the end of the first epoch)


class RunClock:
    """Where a training stands in the whole run, and when it will end.

    ``at(epoch, step, now)``: ``step`` steps of epoch ``epoch`` (0-based) are done at ``now``.
    The time per step is measured from the first step seen (its own time carries the tracing
    and compiling), so the ETA covers every step left, the validation of each epoch included
    once an epoch has ended.

    >>> clock = RunClock(epochs=2, steps=10, started=0.0)
    >>> clock.at(0, 1, now=1.5)             # the first step: 1.5 s of tracing, no estimate
    >>> clock.eta_s(1.5) is None
    True
    >>> clock.at(0, 6, now=2.5); clock.eta_s(2.5)   # 5 steps in 1 s, 14 steps left
    2.8
    """

    def __init__(self, epochs: int, steps: int, started: float) -> None:
        self.epochs = max(int(epochs), 0)
        self.steps = max(int(steps), 1)
        self.started = started
        self.done = 0  # steps done over the whole run
        self.epochs_done = 0
        self._ref: tuple[float, int] | None = None

    @property
    def total(self) -> int:
        """Steps in the whole run."""
        return self.epochs * self.steps

    def at(self, epoch: int, step: int, now: float) -> None:
        """``step`` steps of epoch ``epoch`` (0-based) are done at ``now``."""
        self.done = min(epoch * self.steps + step, max(self.total, 1))
        if self._ref is None:
            self._ref = (now, self.done)

    def epoch_end(self, epoch: int, now: float) -> None:
        """Epoch ``epoch`` (0-based) ended at ``now``."""
        self.epochs_done = epoch + 1
        self.at(epoch + 1, 0, now)

    def eta_s(self, now: float) -> float | None:
        """Seconds until the run's end, or None while too little is known."""
        if self._ref is None:
            return None
        ref_time, ref_done = self._ref
        steps, seconds = self.done - ref_done, now - ref_time
        if steps <= 0 or seconds <= 0:
            return None
        if self.epochs_done == 0 and (steps < ETA_MIN_STEPS or seconds < ETA_MIN_S):
            return None
        return round(seconds / steps * max(self.total - self.done, 0), 3)


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _fmt(logs: dict[str, float]) -> str:
    return " - ".join(f"{k}: {v:.4g}" for k, v in sorted(logs.items()))


def format_eta(seconds: float) -> str:
    """``75`` -> ``'1:15'``, ``3725`` -> ``'1:02:05'``, ``4.2`` -> ``'4s'`` (as Keras writes it).

    >>> format_eta(4.2), format_eta(75), format_eta(3725)
    ('4s', '1:15', '1:02:05')
    """
    seconds = max(round(seconds), 0)
    if seconds < 60:
        return f"{seconds}s"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def keras_line(step: int, steps: int, elapsed: float, logs: dict[str, float], done: bool = False,
               width: int = 20, eta: float | None = None) -> str:
    """One Keras-style progress line: ``12/50 ━━━━━━────────── run ETA: 1:03 - loss: 0.41``.

    ``eta``: seconds until the whole run ends (not this epoch), ``…`` while unknown.

    >>> keras_line(50, 50, 2.0, {"loss": 0.25}, done=True)
    '50/50 ━━━━━━━━━━━━━━━━━━━━ 2s 40ms/step - loss: 0.25'
    >>> keras_line(1, 50, 1.4, {}), keras_line(25, 50, 1.0, {}, eta=75)
    (' 1/50 ──────────────────── run ETA: …', '25/50 ━━━━━━━━━━────────── run ETA: 1:15')
    """
    steps = max(steps, 1)
    filled = min(int(width * step / steps), width)
    bar = "━" * filled + "─" * (width - filled)
    per_step = elapsed / max(step, 1)
    timing = (f"{format_eta(elapsed)} {per_step * 1000:.0f}ms/step" if done
              else f"run ETA: {'…' if eta is None else format_eta(eta)}")
    text = f"{step:>{len(str(steps))}}/{steps} {bar} {timing}"
    return f"{text} - {_fmt(logs)}" if logs else text


class ProgressReporter:
    """Trainer callback: ``on_train_begin``, ``on_batch_end``, ``on_epoch_end``, ``on_train_end``.

    Parameters
    ----------
    stream : where terminal lines go (default ``sys.stdout``).
    notebook : draw HTML and curves (default: when running in a Jupyter kernel).
    log_loss : draw the loss on a log scale.
    curves : draw the curves (notebooks only): at most every ``curves_interval_s`` seconds while
        all drawings so far cost at most :data:`CURVES_BUDGET` of the run's time, and at the end
        (drawn on a worker thread from the last epoch's end, while the run evaluates and saves).
    interval_s : at most one bar or line update per this many seconds.
    clock : monotonic seconds (tests pass their own).

    Attributes
    ----------
    Each run's own: set back to 0 when a run begins.

    draws : bar or line updates drawn during epochs (the rest were throttled away).
    curves_drawn : curve drawings shown, the one at the end included.
    cost_s : seconds the run's thread spent on the display (bar, lines, curves, and waiting for
        the final drawing where the evaluation and the save took less time than it).
    background_s : CPU seconds the final drawing took on its worker thread, alongside the
        evaluation and the save (not in ``cost_s``; ``benchmarks/bench_display.py`` measures
        what the display adds to the run's wall clock, this included).
    """

    def __init__(self, stream: Any = None, notebook: bool | None = None, *, log_loss: bool = False,
                 curves: bool = True, interval_s: float = 0.25, curves_interval_s: float = CURVES_INTERVAL_S,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self._stream = stream or sys.stdout
        self._notebook = _in_notebook() if notebook is None else notebook
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self.log_loss = log_loss
        self.curves = curves
        self.interval_s = interval_s
        self.curves_interval_s = curves_interval_s
        self._clock = clock
        self._handle: Any = None
        self._plot: Any = None
        self._epochs = 0
        self._steps = 0
        self._epoch = 0
        self._run = RunClock(0, 0, 0.0)
        self._started = 0.0
        self._epoch_started = 0.0
        self._next_draw = 0.0
        self._next_curves = 0.0
        self._curves_cost = 0.0
        self._last_curves_s = CURVES_FIRST_GUESS_S
        self._epochs_drawn = 0  # the epochs the curves on screen hold
        self._final: tuple[threading.Thread, dict[str, Any], int] | None = None  # the drawing at the end, under way
        self._pending = ""  # an epoch's bar text the throttle held back
        self._header = ""
        self.history: dict[str, list[float]] = {}
        self.draws = 0
        self.curves_drawn = 0
        self.cost_s = 0.0
        self.background_s = 0.0

    def on_train_begin(self, info: dict[str, Any]) -> None:
        now = self._clock()
        self._epochs = int(info.get("epochs", 0))
        self._steps = int(info.get("steps", 0))
        self._started = self._epoch_started = now
        self._run = RunClock(self._epochs, self._steps, now)
        self._epoch, self._next_draw, self._epochs_drawn, self._pending = 0, 0.0, 0, ""
        self._next_curves = now + self.curves_interval_s
        self._curves_cost = 0.0
        self._final = None
        self.history = {}
        self.draws = self.curves_drawn = 0
        self.cost_s = self.background_s = 0.0
        task = info.get("task")
        if task == "multiclass":
            task = f"multiclass, {info.get('num_classes')} classes"
        reason = f" ({info['task_reason']})" if info.get("task_reason") else ""
        self._header = (f"training {info.get('model')} on {info.get('device')} ({info.get('backend')}): "
                        f"{self._epochs} epochs of {self._steps} steps; task: {task}{reason}")
        if self._notebook:
            from IPython.display import HTML, display

            self._handle = display(HTML(self._html(f"epoch 1/{self._epochs}: starting")), display_id=True)
        else:
            print(self._header, file=self._stream, flush=True)
            self._epoch_line()
        self.cost_s += self._clock() - now

    def _epoch_line(self) -> None:
        if not self._notebook and self._epoch < self._epochs:
            print(f"Epoch {self._epoch + 1}/{self._epochs}", file=self._stream, flush=True)

    def on_batch_end(self, step: int, logs: Any = None) -> None:
        now = self._clock()
        if now < self._next_draw:  # throttled: the common case costs one clock read
            return
        self._next_draw = now + self.interval_s
        self._run.at(self._epoch, step + 1, now)
        if self._handle is None and not self._tty:
            return  # nothing is drawn within an epoch: the epoch's line says it all
        self.draws += 1
        plain = {k: float(v) for k, v in (logs or {}).items() if k in ("loss", "accuracy", "mae")}
        line = keras_line(step + 1, self._steps, now - self._epoch_started, plain, eta=self._run.eta_s(now))
        if self._handle is not None:
            from IPython.display import HTML

            self._handle.update(HTML(self._html(f"epoch {self._epoch + 1}/{self._epochs}: {line}")))
        else:
            print("\r" + line, end="", file=self._stream, flush=True)
        self.cost_s += self._clock() - now

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        now = self._clock()
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
        self._run.epoch_end(epoch, now)
        eta = self._run.eta_s(now)
        line = keras_line(self._steps, self._steps, now - self._epoch_started, logs, done=True)
        if self._epoch + 1 < self._epochs:
            line += f" - run ETA: {'…' if eta is None else format_eta(eta)}"
        self._epoch = epoch + 1
        self._epoch_started = now
        if self._handle is not None:
            self._pending = f"epoch {self._epoch}/{self._epochs}: {line}"
            if now >= self._next_draw:  # many short epochs: drawn on the clock, the last one at the end
                self._draw_pending()
                self._next_draw = now + self.interval_s
            if self.curves and self._epoch == self._epochs:
                self._start_final_curves()  # drawn while the run evaluates and saves, shown at its end
            elif self.curves and self._curves_due(now):
                self._draw_curves()
        else:
            print(("\r" if self._tty else "") + line, file=self._stream, flush=True)
            self._epoch_line()
            self._next_draw = now + self.interval_s
        self.cost_s += self._clock() - now

    def _draw_pending(self) -> None:
        from IPython.display import HTML

        self._handle.update(HTML(self._html(self._pending)))
        self._pending = ""

    def _curves_due(self, now: float) -> bool:
        """A drawing costs 0.1-0.2 s: at most one per ``curves_interval_s``, and only while all of
        them cost at most CURVES_BUDGET of the run's time so far (a long epoch gets its curves at
        once; many short ones, every few seconds)."""
        if now < self._next_curves and self.curves_drawn:
            return False
        return self._curves_cost + self._last_curves_s <= CURVES_BUDGET * (now - self._started)

    def _png(self, history: dict[str, list[float]]) -> bytes:
        return curves_png({"run": history}, log_loss=self.log_loss, epochs=self._epochs)

    def _show_curves(self, png: bytes, epochs: int) -> None:
        from IPython.display import Image, display

        image = Image(data=png, format="png")
        if self._plot is None:
            self._plot = display(image, display_id=True)
        else:
            self._plot.update(image)
        self._epochs_drawn = epochs
        self.curves_drawn += 1

    def _draw_curves(self) -> None:
        started = self._clock()
        try:
            png = self._png(self.history)
        except Exception as exc:
            self._cannot_draw(exc)
            return
        self._show_curves(png, self._epoch)
        now = self._clock()
        self._last_curves_s = now - started
        self._curves_cost += self._last_curves_s
        self._next_curves = now + self.curves_interval_s

    def _start_final_curves(self) -> None:
        """The last epoch ended: draw every epoch's curves on a worker thread (matplotlib's object
        API, a figure of its own) while the run evaluates and saves; :meth:`on_train_end` shows
        them from the run's thread, in the cell's output."""
        history = {key: list(values) for key, values in self.history.items()}
        result: dict[str, Any] = {}

        def draw() -> None:
            started = time.thread_time()
            try:
                result["png"] = self._png(history)
            except Exception as exc:  # said where the picture would have been shown
                result["error"] = exc
            result["cpu_s"] = time.thread_time() - started

        worker = threading.Thread(target=draw, name="mlmd-magic-curves", daemon=True)
        worker.start()
        self._final = (worker, result, self._epoch)

    def _show_final_curves(self) -> None:
        assert self._final is not None
        worker, result, epochs = self._final
        worker.join()  # the run's thread waits only where the evaluation and the save were quicker
        self._final = None
        self.background_s += result.get("cpu_s", 0.0)
        if "error" in result:  # a picture that cannot be drawn never fails the run it shows
            self._cannot_draw(result["error"])
            return
        self._show_curves(result["png"], epochs)

    def _cannot_draw(self, exc: Exception) -> None:
        """Say once that the curves cannot be drawn, and draw none more: the run goes on."""
        warnings.warn(f"the training curves could not be drawn: {exc}", stacklevel=3)
        self.curves = False

    def on_train_end(self, info: dict[str, Any]) -> None:
        now = self._clock()
        status = info.get("status", "complete")
        if self._handle is not None:
            from IPython.display import HTML

            if self._final is not None:
                self._show_final_curves()
            if self.curves and self.history and self._epochs_drawn != self._epoch:
                self._draw_curves()  # a run stopped early: its last epochs, if the clock held them back
            self._pending = ""
            # a stop is said once, by the run's own line (with its duration): here only where it stopped
            text = (f"cancelled after {self._epoch} of {self._epochs} epochs" if status in ("canceled", "cancelled")
                    else f"{status} after {self._epoch} epochs, {self._clock() - self._started:.1f} s")
            self._handle.update(HTML(self._html(text, done=True)))
        elif status not in ("canceled", "cancelled"):
            print(f"done: {status}", file=self._stream, flush=True)
        self.cost_s += self._clock() - now

    def _html(self, text: str, done: bool = False) -> str:
        total = max(self._run.total, 1)
        value = self._run.done if not done or self._epoch < self._epochs else total
        return (f"<div><code>{html.escape(self._header)}</code><br>"
                f"<progress value='{value}' max='{total}' style='width:20em'></progress> "
                f"<code>{html.escape(text)}</code></div>")
