"""Listings that cost one page, whatever else the store holds (skewed mixes).

* 100,000 scenario versions beside 5 experiments and 5 data sources: the first page (20
  rows) of every kind, the rare ones and the common one;
* 100,000 executions of which 1,000 are trainings (each with its model), and 100,000
  trainings: ``ls runs --limit 20`` and ``ls models --limit 20``;
* 10,000 experiments: a filtered listing (``epochs >= 40``, a fifth of them match), read in
  batches.

* the store browser's cold first page (a fresh connection; ``store.page("experiments")``, and
  the whole panel built) at 1,000 and 100,000 experiments: the same cost at both sizes, as
  the page no longer reads every record to print a total; and the panel's poll of the store
  (three one-row reads) at 100,000.

Targets: every first page <= 20 ms; the filtered listing <= 300 ms; the browser's first page
at 100,000 experiments at most 2x its cost at 1,000; a poll <= 5 ms. Stores are built with
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
BROWSER_RATIO = 2.0  # a few ms apart at most: SQLite's B-trees are one level deeper, nothing is read per record
POLL_MS = 5.0
BROWSER_SIZES = (1_000, 100_000)


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


def _browser(store: mm.Store) -> None:
    from mlmd_magic.widgets import StoreBrowser

    StoreBrowser(store).close()


def _browser_rows(folder: str) -> list[dict[str, Any]]:
    """The browser's cold first page at each of BROWSER_SIZES experiments, and its poll."""
    from mlmd_magic.widgets._live import signature

    rows: list[dict[str, Any]] = []
    pages: dict[int, float] = {}
    for n in BROWSER_SIZES:
        uri, _ = build_store(n, folder=folder)
        pages[n] = _median_ms(uri, lambda s: s.page("experiments", limit=20))
        rows.append({"benchmark": f"listing: browser's first page (store.page) over {n:,} experiments, cold",
                     "value": pages[n], "unit": "ms", "target": None, "passed": None})
        built = _median_ms(uri, _browser, repeats=5)
        rows.append({"benchmark": f"listing: store browser built (first page shown) over {n:,} experiments, cold",
                     "value": built, "unit": "ms", "target": None, "passed": None})
        if n == BROWSER_SIZES[-1]:
            store = mm.connect(uri)
            signature(store.mlmd)
            times = []
            for _ in range(50):
                started = time.perf_counter()
                signature(store.mlmd)
                times.append(time.perf_counter() - started)
            store.close()
            poll = statistics.median(times) * 1000
            rows.append(_row(f"a panel's poll of the store (3 one-row reads), {n:,} experiments", poll, POLL_MS))
    small, large = pages[BROWSER_SIZES[0]], pages[BROWSER_SIZES[-1]]
    rows.append({"benchmark": f"listing: browser's first page, {BROWSER_SIZES[-1]:,} / {BROWSER_SIZES[0]:,} "
                              "experiments", "value": large / small, "unit": "ratio",
                 "target": f"<= {BROWSER_RATIO:g}", "passed": large / small <= BROWSER_RATIO})
    return rows


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
        rows += _browser_rows(folder)
    return rows


if __name__ == "__main__":  # python benchmarks/bench_listing.py browser: the browser's figures only
    import sys

    if sys.argv[1:] == ["browser"]:
        with tempfile.TemporaryDirectory() as where:
            for result in _browser_rows(where):
                print(f"{result['benchmark']}: {result['value']:.2f} {result['unit']}")
