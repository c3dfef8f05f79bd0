"""Progress for people: in a notebook, a progress bar with ETA that moves within each epoch and
the training curves redrawn after each epoch; in a terminal, Keras-style lines.

No widgets are imported (the trainer must run anywhere): a notebook gets two displays (the bar
as HTML, the curves as a PNG, so a saved notebook keeps them) updated in place through their
display ids. Step updates are throttled: a step that draws nothing costs one clock read.
"""

from __future__ import annotations

import html
import sys
import time
from typing import Any

from ..core.curves import curves_png

__all__ = ["CURVES_INTERVAL_S", "ProgressReporter", "format_eta", "keras_line"]

CURVES_INTERVAL_S = 1.0  # the curves are redrawn after an epoch at most this often


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
               width: int = 20) -> str:
    """One Keras-style progress line: ``12/50 ━━━━━━────────── ETA: 3s - loss: 0.41``.

    >>> keras_line(50, 50, 2.0, {"loss": 0.25}, done=True)
    '50/50 ━━━━━━━━━━━━━━━━━━━━ 2s 40ms/step - loss: 0.25'
    """
    steps = max(steps, 1)
    filled = min(int(width * step / steps), width)
    bar = "━" * filled + "─" * (width - filled)
    per_step = elapsed / max(step, 1)
    timing = (f"{format_eta(elapsed)} {per_step * 1000:.0f}ms/step" if done
              else f"ETA: {format_eta(per_step * (steps - step))}")
    text = f"{step:>{len(str(steps))}}/{steps} {bar} {timing}"
    return f"{text} - {_fmt(logs)}" if logs else text


class ProgressReporter:
    """Trainer callback: ``on_train_begin``, ``on_batch_end``, ``on_epoch_end``, ``on_train_end``.

    Parameters
    ----------
    stream : where terminal lines go (default ``sys.stdout``).
    notebook : draw HTML and curves (default: when running in a Jupyter kernel).
    log_loss : draw the loss on a log scale.
    curves : draw the curves after each epoch (notebooks only).
    interval_s : at most one step update per this many seconds.
    """

    def __init__(self, stream: Any = None, notebook: bool | None = None, *, log_loss: bool = False,
                 curves: bool = True, interval_s: float = 0.25) -> None:
        self._stream = stream or sys.stdout
        self._notebook = _in_notebook() if notebook is None else notebook
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self.log_loss = log_loss
        self.curves = curves
        self.interval_s = interval_s
        self._handle: Any = None
        self._plot: Any = None
        self._epochs = 0
        self._steps = 0
        self._epoch = 0
        self._started = 0.0
        self._epoch_started = 0.0
        self._next_draw = 0.0
        self._next_curves = 0.0
        self._drawn = 0
        self._header = ""
        self.history: dict[str, list[float]] = {}
        self.draws = 0  # step updates drawn (the rest were throttled away)

    def on_train_begin(self, info: dict[str, Any]) -> None:
        self._epochs = int(info.get("epochs", 0))
        self._steps = int(info.get("steps", 0))
        self._started = self._epoch_started = time.perf_counter()
        self.history = {}
        task = info.get("task")
        if task == "multiclass":
            task = f"multiclass, {info.get('num_classes')} classes"
        reason = f" ({info['task_reason']})" if info.get("task_reason") else ""
        self._header = (f"training {info.get('model')} on {info.get('device')} ({info.get('backend')}): "
                        f"{self._epochs} epochs of {self._steps} steps; task: {task}{reason}")
        if self._notebook:
            from IPython.display import HTML, display

            self._handle = display(HTML(self._html(0, "starting")), display_id=True)
        else:
            print(self._header, file=self._stream, flush=True)
            self._epoch_line()

    def _epoch_line(self) -> None:
        if not self._notebook and self._epoch < self._epochs:
            print(f"Epoch {self._epoch + 1}/{self._epochs}", file=self._stream, flush=True)

    def on_batch_end(self, step: int, logs: Any = None) -> None:
        now = time.perf_counter()
        if now < self._next_draw:  # throttled: the common case costs one clock read
            return
        self._next_draw = now + self.interval_s
        self.draws += 1
        plain = {k: float(v) for k, v in (logs or {}).items() if k in ("loss", "accuracy", "mae")}
        line = keras_line(step + 1, self._steps, now - self._epoch_started, plain)
        if self._handle is not None:
            from IPython.display import HTML

            self._handle.update(HTML(self._html(self._epoch, line, step + 1)))
        elif self._tty:
            print("\r" + line, end="", file=self._stream, flush=True)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        now = time.perf_counter()
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
        line = keras_line(self._steps, self._steps, now - self._epoch_started, logs, done=True)
        self._epoch = epoch + 1
        self._epoch_started = now
        self._next_draw = now + self.interval_s
        if self._handle is not None:
            from IPython.display import HTML

            self._handle.update(HTML(self._html(self._epoch, f"epoch {self._epoch}/{self._epochs}: {line}")))
            if self.curves and now >= self._next_curves:  # a redraw costs ~0.1 s: at most one a second
                self._draw_curves()
                self._next_curves = time.perf_counter() + CURVES_INTERVAL_S
        else:
            print(("\r" if self._tty else "") + line, file=self._stream, flush=True)
            self._epoch_line()

    def _draw_curves(self) -> None:
        from IPython.display import Image, display

        self._drawn = len(self.history.get("loss", []))
        image = Image(data=curves_png({"run": self.history}, log_loss=self.log_loss, epochs=self._epochs),
                      format="png")
        if self._plot is None:
            self._plot = display(image, display_id=True)
        else:
            self._plot.update(image)

    def on_train_end(self, info: dict[str, Any]) -> None:
        status = info.get("status", "complete")
        if self._handle is not None:
            from IPython.display import HTML

            if self.curves and self.history and self._drawn != len(self.history.get("loss", [])):
                self._draw_curves()  # the last epochs, if the throttle held them back
            self._handle.update(HTML(self._html(self._epoch, f"{status} after {self._epoch} epochs, "
                                                f"{time.perf_counter() - self._started:.1f} s")))
        else:
            print(f"done: {status}", file=self._stream, flush=True)

    def _html(self, epoch: int, text: str, step: int = 0) -> str:
        total = max(self._epochs, 1) * max(self._steps, 1)
        done = epoch * max(self._steps, 1) + step
        return (f"<div><code>{html.escape(self._header)}</code><br>"
                f"<progress value='{done}' max='{total}' style='width:20em'></progress> "
                f"<code>{html.escape(text)}</code></div>")

