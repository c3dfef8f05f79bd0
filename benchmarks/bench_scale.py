"""Lookups and listings as the store grows: 1,000, 10,000 and 100,000 experiments.

Targets: get_experiment(NAME) at 100,000 costs at most 1.5x what it costs at 1,000; the
first page of `ls experiments` takes under 100 ms at 100,000; the store browser's first
page over 10,000 experiments builds in under 200 ms (Python side).
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

from _stores import build_store

import mlmd_magic as mm

SIZES = (1_000, 10_000, 100_000)


def _lookup_ms(uri: str, n: int, repeats: int = 60) -> float:
    store = mm.connect(uri)
    rng = random.Random(0)
    times = []
    for _ in range(repeats):
        name = f"exp-{rng.randrange(n):06d}"  # a different name each time: no warm cache helps
        started = time.perf_counter()
        store.get_experiment(name)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _first_page_ms(uri: str, repeats: int = 10) -> float:
    times = []
    for _ in range(repeats):
        store = mm.connect(uri)  # a fresh connection: nothing cached
        started = time.perf_counter()
        store.ls("experiments", limit=20)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _browser_ms(uri: str, repeats: int = 5) -> float:
    from mlmd_magic.widgets import StoreBrowser

    times = []
    for _ in range(repeats):
        store = mm.connect(uri)
        started = time.perf_counter()
        StoreBrowser(store)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def run(sizes: tuple[int, ...] = SIZES) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    lookups: dict[int, float] = {}
    for n in sizes:
        started = time.perf_counter()
        uri, _ = build_store(n)
        build_s = time.perf_counter() - started
        lookups[n] = _lookup_ms(uri, n)
        page = _first_page_ms(uri)
        rows.append({"benchmark": f"scale: get_experiment(NAME), {n:,} experiments", "value": lookups[n],
                     "unit": "ms", "target": None, "passed": None})
        rows.append({"benchmark": f"scale: first page of ls experiments, {n:,}", "value": page, "unit": "ms",
                     "target": "< 100" if n == max(sizes) else None,
                     "passed": page < 100 if n == max(sizes) else None})
        if n == 10_000:
            ms = _browser_ms(uri)
            rows.append({"benchmark": "widgets: store browser first page, 10,000 experiments", "value": ms,
                         "unit": "ms", "target": "< 200", "passed": ms < 200})
        rows.append({"benchmark": f"scale: building the {n:,} store (MLMD batch writes)", "value": build_s,
                     "unit": "s", "target": None, "passed": None})
    if len(sizes) > 1:
        ratio = lookups[max(sizes)] / lookups[min(sizes)]
        rows.append({"benchmark": f"scale: lookup {max(sizes):,} / {min(sizes):,}", "value": ratio, "unit": "ratio",
                     "target": "<= 1.5", "passed": ratio <= 1.5})
    return rows
