"""Start-up: `%load_ext mlmd_magic` + `%mlmd connect` on SQLite, and `import mlmd_magic`.

Each figure is the median of fresh interpreters. Targets: load + connect under 0.5 s with
no TensorFlow or Keras imported; `import mlmd_magic` at most 1.5x `import ml_metadata`.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from typing import Any

_LOAD = """
import json, sys, time
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
started = time.perf_counter()
ip.run_line_magic("load_ext", "mlmd_magic")
ip.run_line_magic("mlmd", "connect sqlite:///{path}")
elapsed = time.perf_counter() - started
print(json.dumps({{"s": elapsed, "heavy": sorted(m for m in ("tensorflow", "keras") if m in sys.modules)}}))
"""
_IMPORT = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def _python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def run(repeats: int = 7) -> list[dict[str, Any]]:
    loads, heavy = [], set()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            out = json.loads(_python(_LOAD.format(path=f"{tmp}/s{i}.sqlite")).strip().splitlines()[-1])
            loads.append(out["s"])
            heavy.update(out["heavy"])
    imports = {m: statistics.median(float(_python(_IMPORT.format(module=m))) for _ in range(repeats))
               for m in ("ml_metadata", "mlmd_magic")}
    load = statistics.median(loads)
    ratio = imports["mlmd_magic"] / imports["ml_metadata"]
    return [
        {"benchmark": "start-up: %load_ext + %mlmd connect (SQLite)", "value": load, "unit": "s",
         "target": "< 0.5", "passed": load < 0.5},
        {"benchmark": "start-up: TensorFlow/Keras imported by it", "value": float(len(heavy)), "unit": "modules",
         "target": "0", "passed": not heavy},
        {"benchmark": "start-up: import ml_metadata", "value": imports["ml_metadata"], "unit": "s", "target": None,
         "passed": None},
        {"benchmark": "start-up: import mlmd_magic / import ml_metadata", "value": ratio, "unit": "ratio",
         "target": "<= 1.5", "passed": ratio <= 1.5},
    ]
