"""Progress for people: an updating HTML line in notebooks, plain lines in a terminal.

No widgets are imported (the trainer must run anywhere); a notebook gets one display
that is updated in place each epoch.
"""

from __future__ import annotations

import html
import sys
import time
from typing import Any


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _fmt(logs: dict[str, float]) -> str:
    return "  ".join(f"{k}={v:.4g}" for k, v in sorted(logs.items()))


class ProgressReporter:
    """Trainer callback: ``on_train_begin``, ``on_epoch_end``, ``on_train_end``."""

    def __init__(self, stream: Any = None, notebook: bool | None = None) -> None:
        self._stream = stream or sys.stdout
        self._notebook = _in_notebook() if notebook is None else notebook
        self._handle: Any = None
        self._epochs = 0
        self._started = 0.0

    def on_train_begin(self, info: dict[str, Any]) -> None:
        self._epochs = int(info.get("epochs", 0))
        self._started = time.perf_counter()
        task = info.get("task")
        if task == "multiclass":
            task = f"multiclass, {info.get('num_classes')} classes"
        reason = f" ({info['task_reason']})" if info.get("task_reason") else ""
        text = (f"training {info.get('model')} on {info.get('device')} ({info.get('backend')}): {self._epochs} epochs"
                f"; task: {task}{reason}")
        if self._notebook:
            from IPython.display import HTML, display

            self._handle = display(HTML(self._html(0, text)), display_id=True)
        else:
            print(text, file=self._stream, flush=True)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        line = f"epoch {epoch + 1}/{self._epochs}  {_fmt(logs)}  ({time.perf_counter() - self._started:.1f}s)"
        if self._handle is not None:
            from IPython.display import HTML

            self._handle.update(HTML(self._html(epoch + 1, line)))
        else:
            print(line, file=self._stream, flush=True)

    def on_train_end(self, info: dict[str, Any]) -> None:
        if self._handle is None:
            print(f"done: {info.get('status', 'complete')}", file=self._stream, flush=True)

    def _html(self, done: int, text: str) -> str:
        total = max(self._epochs, 1)
        return (f"<div><progress value='{done}' max='{total}' style='width:20em'></progress> "
                f"<code>{html.escape(text)}</code></div>")
