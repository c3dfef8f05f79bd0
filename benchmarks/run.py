"""Benchmark runner: prints a table of figures with targets and pass marks, and writes JSON.

    python benchmarks/run.py [--only trainer,...] [--json benchmarks/results.json]

Every ratio is measured against a baseline run in the same process, on the same machine.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
SUITES = ["startup", "recording", "scale", "listing", "trainer", "progress", "hostile", "tfx", "sweeps",
          "release", "race-names", "outage", "display", "own-runs"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated suites of {', '.join(SUITES)}")
    parser.add_argument("--json", default="benchmarks/results.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    suites = args.only.split(",") if args.only else SUITES
    rows: list[dict[str, Any]] = []
    for suite in suites:
        module = importlib.import_module(f"bench_{suite.replace('-', '_')}")
        rows.extend(module.run())
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    width = max(len(r["benchmark"]) for r in rows)
    print(f"machine: {machine}")
    for r in rows:
        mark = "" if r["passed"] is None else ("PASS" if r["passed"] else "FAIL")
        value = f"{r['value']:.3f}" if r["unit"] in ("ratio", "s", "ms") else f"{r['value']:.0f}"
        value = f"{r['value']:.2f}" if r["unit"] == "ms" else value
        print(f"{r['benchmark']:<{width}}  {value:>12} {r['unit']:<6} {r['target'] or '':<10} {mark}")
    with open(args.json, "w") as fh:
        json.dump({"machine": machine, "results": rows}, fh, indent=2)
    return 0 if all(r["passed"] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
