"""Settings the IPython way: traitlets of the magics class, environment variables as defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from mlmd_magic import datasets
from mlmd_magic.faces.registry import REGISTRY

from .test_magics import run


def test_config_sets_where_runs_go_and_the_default_store(ip: InteractiveShell, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLMD_MAGIC_RUNS_DIR", raising=False)
    store_path = tmp_path / "configured.sqlite"
    run(ip, f"%config MlmdMagics.default_uri = 'sqlite:///{store_path}'")
    run(ip, f"%config MlmdMagics.runs_dir = '{tmp_path / 'my-runs'}'")
    assert "connected to sqlite:///" in repr(run(ip, "%mlmd connect"))
    assert REGISTRY.current().store.uri == f"sqlite:///{store_path}"
    store = REGISTRY.current().store
    store.add_datasource("d", **datasets.simulate_nipt(str(tmp_path / "d"), n_train=40, n_eval=10, n_test=10))
    store.add_scenario("s", model="mlp", params={"epochs": 1, "hidden": [4]})
    store.add_experiment("e", datasource="d", scenario="s")
    trained = run(ip, "%mlmd train e --quiet")
    assert trained.model_uri.startswith(str(tmp_path / "my-runs"))
    run(ip, "%config MlmdMagics.runs_dir = None")  # back to the default: beside the SQLite file
    assert store.runs_root() == str(tmp_path / "mlmd-magic-runs")


def test_environment_variables_are_the_defaults(ip: InteractiveShell, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "env-runs"))
    run(ip, "%mlmd connect memory://")
    assert REGISTRY.current().store.runs_root() == str(tmp_path / "env-runs")
    magics = ip.magics_manager.registry["MlmdMagics"]
    assert magics.runs_dir is None and magics.stale_run_after_s is None
    run(ip, "%config MlmdMagics.stale_run_after_s = 60")
    assert REGISTRY.current().store.options.stale_after_s() == 60.0


def test_help_lists_the_settings(ip: InteractiveShell) -> None:
    text = repr(run(ip, "%mlmd help"))
    for name in ("default_uri", "runs_dir", "stale_run_after_s"):
        assert f"  {name}" in text
    assert "%config MlmdMagics.NAME = VALUE" in text
    listing = ip.run_line_magic("config", "MlmdMagics")
    assert listing is None or "runs_dir" in str(listing)
