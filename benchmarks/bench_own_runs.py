"""A run of your own code (``Store.start_run``): what logging costs the training it records.

A 1,000-step training loop of scikit-learn's ``SGDClassifier.partial_fit`` on batches of 32
simulated cfDNA examples (30 features, four classes), timed alone and again inside
``store.start_run`` with ``run.log`` of three metrics at every step, on a SQLite file. The
loop's own work is the baseline, measured in the same run; what the run adds is ours (logging,
the progress handed to the run's writer thread, the run's first and last writes).

Target: logging 1,000 steps costs at most 5 % of the loop (``run.log`` calls alone), and the
whole run (its first and last writes too) at most 25 %.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import warnings
from typing import Any, Callable

STEPS = 1000
LOG_TARGET = 0.05
RUN_TARGET = 0.25


def _loop(log: Callable[[dict[str, float], int], None]) -> float:
    import numpy as np
    from sklearn.linear_model import SGDClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(STEPS * 32, 30))
    y = rng.integers(0, 4, size=STEPS * 32)
    model = SGDClassifier(loss="log_loss")
    started = time.perf_counter()
    for step in range(STEPS):
        batch = slice(step * 32, step * 32 + 32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.partial_fit(x[batch], y[batch], classes=np.arange(4))
        log({"loss": 1.0 / (step + 1), "eval.accuracy": step / STEPS, "eval.loss": 0.5}, step)
    return time.perf_counter() - started


def run() -> list[dict[str, Any]]:
    import mlmd_magic as mm
    from mlmd_magic import datasets

    with tempfile.TemporaryDirectory() as folder:
        os.environ["MLMD_MAGIC_RUNS_DIR"] = os.path.join(folder, "runs")
        store = mm.connect(f"sqlite:///{folder}/own.sqlite")
        store.add_datasource("nipt", **datasets.simulate_nipt(os.path.join(folder, "data"), n_train=8, n_eval=4,
                                                              n_test=4))
        store.add_scenario("sgd", model="mlp", params={"epochs": STEPS})
        store.add_experiment("own", datasource="nipt", scenario="sgd")
        alone, logged, whole = [], [], []
        for _ in range(5):
            alone.append(_loop(lambda metrics, step: None))
            started = time.perf_counter()
            with store.start_run("own") as own:
                logged.append(_loop(own.log))
            whole.append(time.perf_counter() - started)
        store.close()
    base, with_log, total = statistics.median(alone), statistics.median(logged), statistics.median(whole)
    log_cost, run_cost = with_log / base - 1, total / base - 1
    return [
        {"benchmark": f"own run: a {STEPS}-step training loop alone (SGDClassifier.partial_fit)", "value": base,
         "unit": "s", "target": None, "passed": None},
        {"benchmark": f"own run: run.log of 3 metrics at each of {STEPS} steps, added to the loop", "value": log_cost,
         "unit": "ratio", "target": f"<= {LOG_TARGET}", "passed": log_cost <= LOG_TARGET},
        {"benchmark": "own run: the whole run (start_run .. its end), added to the loop", "value": run_cost,
         "unit": "ratio", "target": f"<= {RUN_TARGET}", "passed": run_cost <= RUN_TARGET},
    ]
