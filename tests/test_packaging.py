"""The Binder environment and the package metadata agree with each other."""

from __future__ import annotations

import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent


def test_binder_matches_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    assert runtime == "python-3.11"
    assert project["requires-python"] == ">=3.9,<3.12"
    requirements = [line.strip() for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    assert requirements == ["-e ."]
    deps = " ".join(project["dependencies"])
    for needed in ("ml-metadata==1.17.1", "protobuf", "tensorflow>=2.19,<2.20", "jupyterlab", "ipywidgets",
                   "pymysql", "pandas", "pyyaml", "scikit-learn"):
        assert needed in deps, needed
    assert project["scripts"]["mlmd-magic"] == "mlmd_magic.cli:main"


def test_every_tutorial_is_collected_by_nbval() -> None:
    """The test command collects every code cell of every notebook as an nbval test."""
    import json
    import subprocess

    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks and "01-quickstart.ipynb" in [p.name for p in notebooks]
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    collected = [line for line in done.stdout.splitlines() if line.startswith("notebooks/")]
    for notebook in notebooks:
        cells = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
        items = [line for line in collected if line.startswith(f"notebooks/{notebook.name}::")]
        assert len(items) == len(cells), (notebook.name, len(items), len(cells))
