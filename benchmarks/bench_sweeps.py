"""Sweeps: what a sweep costs per trial beyond the training itself, on a SQLite store.

Every trial is an Optuna ask/tell (TPE), a new experiment version, a cache check and a
recorded ``Train`` run (RUNNING, then COMPLETE with its model). The time spent inside the
Keras trainer (``mlmd_magic.trainer.train``, timed by wrapping it) is taken out; what is left,
divided by the number of trials, is the sweep's overhead per trial. Target: at most 50 ms.
The baseline, measured alongside, is the same number of plain ``store.train(ref, overrides)``
calls (each defines a version and records a run), with their training taken out the same way.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

TRIALS = 20


class _TrainingClock:
    """Wraps the trainer's entry point to add up the seconds spent training."""

    def __init__(self) -> None:
        import mlmd_magic.trainer as trainer

        self.module = trainer
        self.original = trainer.train
        self.seconds = 0.0

    def __enter__(self) -> _TrainingClock:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return self.original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        self.module.train = timed  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        self.module.train = self.original  # type: ignore[assignment]


def _store(folder: str) -> Any:
    import mlmd_magic as mm
    from mlmd_magic import datasets

    store = mm.connect(f"sqlite:///{os.path.join(folder, 'bench.sqlite')}")
    store.add_datasource("nipt", **datasets.simulate_nipt(os.path.join(folder, "data"), n_train=64, n_eval=16,
                                                          n_test=16))
    store.add_scenario("tiny", model="mlp", params={"hidden": [2], "learning_rate": 0.01, "epochs": 1,
                                                    "batch_size": 64, "seed": 1})
    store.add_experiment("base", datasource="nipt", scenario="tiny")
    store.train("base", progress=False)  # TensorFlow and Optuna are imported before anything is timed
    store.sweep("warm", experiment="base", space={"learning_rate": {"uniform": [0.001, 0.1]}},
                objective="eval.loss", trials=1)
    return store


def run() -> list[dict[str, Any]]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    folder = tempfile.mkdtemp(prefix="mlmd-bench-sweeps-")
    store = _store(folder)
    space = {"learning_rate": {"loguniform": [1.0e-4, 1.0e-1]}, "hidden": {"choice": [[2], [4], [4, 2]]}}

    with _TrainingClock() as clock:
        started = time.perf_counter()
        store.sweep("bench", experiment="base", space=space, objective="eval.loss", sampler="tpe", trials=TRIALS)
        total = time.perf_counter() - started
    sweep_ms = (total - clock.seconds) / TRIALS * 1000
    started = time.perf_counter()
    store.sweep("bench", experiment="base", space=space, objective="eval.loss", sampler="tpe", trials=TRIALS)
    rerun_ms = (time.perf_counter() - started) * 1000

    with _TrainingClock() as clock:
        started = time.perf_counter()
        for i in range(TRIALS):
            store.train("base", progress=False, overrides={"learning_rate": 0.0005 * (i + 1)})
        total = time.perf_counter() - started
    plain_ms = (total - clock.seconds) / TRIALS * 1000

    store.close()
    return [
        {"benchmark": f"sweep overhead per trial, training excluded ({TRIALS} TPE trials, SQLite)",
         "value": sweep_ms, "unit": "ms", "target": "<= 50", "passed": sweep_ms <= 50},
        {"benchmark": "  baseline: store.train(ref, overrides) per run, training excluded", "value": plain_ms,
         "unit": "ms", "target": None, "passed": None},
        {"benchmark": "  sweep overhead / plain train overhead", "value": sweep_ms / plain_ms, "unit": "ratio",
         "target": None, "passed": None},
        {"benchmark": f"re-running the finished {TRIALS}-trial sweep (trains nothing)", "value": rerun_ms,
         "unit": "ms", "target": None, "passed": None},
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
