"""TensorFlow stays quiet: no native log lines in the quick start or in a notebook cell."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOISE = re.compile(r"absl::InitializeLog|^[EWI]0000 |cuda_dnn|cuda_blas|computation_placer|retracing", re.MULTILINE)


def test_the_quick_start_prints_no_tensorflow_log_lines(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py"), "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    assert "verdict:" in output and not NOISE.search(output), NOISE.findall(output)


def test_training_in_a_fresh_kernel_prints_no_native_lines(tmp_path: Path) -> None:
    """A fresh interpreter: the first import of TensorFlow happens inside the trainer."""
    script = f"""
import mlmd_magic as mm
from mlmd_magic import datasets
store = mm.connect("sqlite:///{tmp_path}/q.sqlite", runs_dir="{tmp_path}/runs")
store.add_datasource("d", **datasets.simulate_nipt("{tmp_path}/d", n_train=40, n_eval=10, n_test=10))
store.add_scenario("s", model="mlp", params={{"epochs": 1, "hidden": [4]}})
store.add_experiment("e", datasource="d", scenario="s")
for _ in range(7):  # evaluations of several models: model.predict would warn about retracing
    run = store.train("e", force=True, progress=False)
    store.evaluate(run)
print("done")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and "done" in done.stdout, done.stderr[-3000:]
    assert not NOISE.search(done.stdout + done.stderr), NOISE.findall(done.stdout + done.stderr)
