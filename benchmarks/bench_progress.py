"""Progress display cost per training step, against the step itself.

The step time is measured in the same run: a real training of the ``mlp`` builder on
simulated cfDNA data with a small batch (many short steps, the hardest case for a per-step
display), without progress. The display cost is what :class:`ProgressReporter.on_batch_end`
adds per step, drawing as it does in a terminal (a tty stream, one ``\\r`` line per interval)
and in a notebook (an HTML ``display`` update per interval, measured through IPython's display
machinery with a real InteractiveShell): the throttled call each step plus one draw per
interval (0.25 s), each timed. Target: display cost < 1 % of a step.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from typing import Any

TARGET = 0.01


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _display_cost(make: Any, step_s: float, calls: int = 20_000) -> tuple[float, float]:
    """``(seconds per step the reporter adds in an epoch of steps of step_s, seconds per draw)``.

    Two parts, each measured: the throttled call (one clock read) every step, and a draw every
    ``interval_s`` — that is every ``interval_s / step_s`` steps.
    """
    logs = {"loss": 0.5, "accuracy": 0.9}
    info = {"model": "mlp", "device": "cpu", "backend": "tensorflow", "epochs": 1, "steps": calls}
    throttled = make()
    throttled.on_train_begin(info)
    throttled.on_batch_end(0, logs)  # the first call draws; the rest fall within the interval
    started = time.perf_counter()
    for step in range(1, calls):
        throttled.on_batch_end(step, logs)
    check_s = (time.perf_counter() - started) / (calls - 1)
    drawing = make()
    interval_s = drawing.interval_s
    drawing.interval_s = 0.0  # draw on every call, to time one draw
    drawing.on_train_begin(info)
    started = time.perf_counter()
    for step in range(2000):
        drawing.on_batch_end(step, logs)
    draw_s = (time.perf_counter() - started) / 2000
    return check_s + draw_s * step_s / interval_s, draw_s


def run(n_train: int = 20_000, batch_size: int = 16) -> list[dict[str, Any]]:
    import mlmd_magic as mm
    from mlmd_magic import datasets
    from mlmd_magic.trainer import ProgressReporter, train

    with tempfile.TemporaryDirectory() as tmp:
        store = mm.connect("memory://")
        store.add_datasource("bench", **datasets.simulate_nipt(os.path.join(tmp, "data"), n_train=n_train,
                                                               n_eval=500, n_test=500))
        store.add_scenario("mlp", model="mlp", params={"hidden": [64, 32], "learning_rate": 1e-3,
                                                       "batch_size": batch_size, "epochs": 2})
        store.add_experiment("bench", datasource="bench", scenario="mlp")
        result = train(store.get_experiment("bench"), workdir=os.path.join(tmp, "run"), progress=False)
    steps = -(-n_train // batch_size) * result.epochs
    step_s = result.fit_seconds / steps

    terminal_s, terminal_draw = _display_cost(lambda: ProgressReporter(stream=_Tty(), notebook=False), step_s)
    from IPython.core.interactiveshell import InteractiveShell

    InteractiveShell.instance()  # display() goes through a real shell's display publisher
    import contextlib

    with contextlib.redirect_stdout(io.StringIO()):
        notebook_s, notebook_draw = _display_cost(
            lambda: ProgressReporter(stream=io.StringIO(), notebook=True, curves=False), step_s)
    from mlmd_magic.display.curves import curves_png

    history = {k: [1.0 / (i + 1) for i in range(50)] for k in ("loss", "val_loss", "accuracy", "val_accuracy")}
    curves_png({"run": history})  # matplotlib's first figure loads its fonts
    started = time.perf_counter()
    for _ in range(5):
        curves_png({"run": history})
    curves_s = (time.perf_counter() - started) / 5
    rows = [
        {"benchmark": "progress: curves redrawn once per epoch (50 epochs)", "value": curves_s * 1000, "unit": "ms",
         "target": None, "passed": None},
        {"benchmark": "progress: training step (mlp, batch 16)", "value": step_s * 1000, "unit": "ms",
         "target": None, "passed": None},
        {"benchmark": "progress: one draw, terminal", "value": terminal_draw * 1000, "unit": "ms",
         "target": None, "passed": None},
        {"benchmark": "progress: one draw, notebook", "value": notebook_draw * 1000, "unit": "ms",
         "target": None, "passed": None},
        {"benchmark": "progress: terminal display / step", "value": terminal_s / step_s, "unit": "ratio",
         "target": f"< {TARGET}", "passed": terminal_s / step_s < TARGET},
        {"benchmark": "progress: notebook display / step", "value": notebook_s / step_s, "unit": "ratio",
         "target": f"< {TARGET}", "passed": notebook_s / step_s < TARGET},
    ]
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
