"""Listings that cost one page, whatever else the store holds (skewed mixes).

* 100,000 scenario versions beside 5 experiments and 5 data sources: the first page (20
  rows) of every kind, the rare ones and the common one;
* 100,000 executions of which 1,000 are trainings (each with its model), and 100,000
  trainings: ``ls runs --limit 20`` and ``ls models --limit 20``;
* 10,000 experiments: a filtered listing (``epochs >= 40``, a fifth of them match), read in
  batches.

Targets: every first page <= 20 ms; the filtered listing <= 300 ms. Stores are built with
MLMD batch writes of rows shaped exactly as ours (``_stores.py``); each figure is the median
of fresh connections (nothing cached).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from typing import Any, Callable

from _stores import build_store, build_training_runs, build_versions

import mlmd_magic as mm

PAGE_MS = 20.0
FILTER_MS = 300.0


def _median_ms(uri: str, call: Callable[[mm.Store], Any], repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        store = mm.connect(uri)
        started = time.perf_counter()
        call(store)
        times.append(time.perf_counter() - started)
        store.close()
    return statistics.median(times) * 1000


def _read_all(store: mm.Store) -> None:
    from ml_metadata.metadata_store import metadata_store as ms

    store.mlmd.get_artifacts(list_options=ms.ListOptions(limit=100_000))


def _row(name: str, value: float, target: float) -> dict[str, Any]:
    return {"benchmark": f"listing: {name}", "value": value, "unit": "ms", "target": f"<= {target:g}",
            "passed": value <= target}


def run() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        uri = f"sqlite:///{os.path.join(folder, 'mix.sqlite')}"
        build_versions(uri, folder, scenarios=100_000, experiments=5, datasources=5)
        for kind in ("experiments", "datasources", "scenarios", "runs", "models"):
            ms = _median_ms(uri, lambda s, k=kind: s.list(k, limit=20))  # type: ignore[misc]
            rows.append(_row(f"first page of {kind}, beside 100,000 scenario versions", ms, PAGE_MS))

        sparse = f"sqlite:///{os.path.join(folder, 'sparse-runs.sqlite')}"
        build_training_runs(sparse, folder, runs=1_000, other_executions=99_000)
        dense = f"sqlite:///{os.path.join(folder, 'dense-runs.sqlite')}"
        build_training_runs(dense, folder, runs=100_000, other_executions=0)
        for label, store_uri in (("1,000 runs among 100,000 executions", sparse), ("100,000 runs", dense)):
            for kind in ("runs", "models"):
                ms = _median_ms(store_uri, lambda s, k=kind: s.list(k, limit=20))  # type: ignore[misc]
                rows.append(_row(f"ls {kind} --limit 20, {label}", ms, PAGE_MS))

        experiments, _ = build_store(10_000, folder=folder)
        ms = _median_ms(experiments, lambda s: s.list("experiments", where="epochs >= 40"), repeats=5)
        rows.append(_row("filtered ls experiments (epochs >= 40) over 10,000 experiments", ms, FILTER_MS))
        # the baseline, in the same run: MLMD alone reading the same artifacts (a figure that moves
        # with the machine's load as the one above does)
        read = _median_ms(experiments, _read_all, repeats=5)
        rows.append({"benchmark": "listing: MLMD alone reading those 10,000 artifacts (get_artifacts)", "value": read,
                     "unit": "ms", "target": None, "passed": None})
        rows.append({"benchmark": "listing: filtered ls / MLMD alone reading them", "value": ms / read,
                     "unit": "ratio", "target": None, "passed": None})
    return rows
