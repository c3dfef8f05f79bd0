"""The mlmd-magic console script (same subcommands as %mlmd)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mlmd_magic as mm
from mlmd_magic.cli import main


@pytest.fixture
def filled(tmp_path: Path, tfrecord_dir: Path) -> str:
    uri = f"sqlite:///{tmp_path}/cli.sqlite"
    store = mm.connect(uri)
    store.add_datasource("nipt-sim", uri=str(tfrecord_dir), format="tfrecord",
                         splits={"train": "train", "eval": "eval.tfrecord"}, label="label")
    store.add_scenario("mlp-small", model="mlp", params={"epochs": 10, "hidden": [8]})
    store.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": 3})
    store.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": 4},
                     description="more epochs")
    store.close()
    return uri


def test_console_script_lists(filled: str) -> None:
    exe = shutil.which("mlmd-magic") or str(Path(sys.executable).parent / "mlmd-magic")
    out = subprocess.run([exe, "--uri", filled, "ls", "experiments"], capture_output=True, text=True, check=True)
    assert "t21" in out.stdout and "mlp-small@1" in out.stdout


def test_show_history_diff_get(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--uri", filled, "show", "t21@1"]) == 0
    assert "Experiment t21@1" in capsys.readouterr().out
    assert main(["--uri", filled, "history", "t21"]) == 0
    assert capsys.readouterr().out.count("nipt-sim@1") == 2
    assert main(["--uri", filled, "diff", "t21@1", "t21@2"]) == 0
    assert "params.epochs  3 -> 4" in capsys.readouterr().out
    assert main([f"--uri={filled}", "get", "t21"]) == 0
    assert '"epochs": 4' in capsys.readouterr().out


def test_export_then_import_into_another_store(filled: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    other = f"sqlite:///{tmp_path}/other.sqlite"
    for ref, kind in (("nipt-sim", "datasource"), ("mlp-small", "scenario"), ("t21", "experiment")):
        assert main(["--uri", filled, "export", ref, "--kind", kind, "-f", str(tmp_path / f"{ref}.yaml")]) == 0
    for ref in ("nipt-sim", "mlp-small"):
        assert main(["--uri", other, "import", str(tmp_path / f"{ref}.yaml")]) == 0
    (tmp_path / "t21.yaml").write_text((tmp_path / "t21.yaml").read_text())
    assert main(["--uri", other, "import", str(tmp_path / "t21.yaml")]) == 0
    assert "experiment t21@1: created version 1" in capsys.readouterr().out
    copied = mm.connect(other).get_experiment("t21")
    original = mm.connect(filled).get_experiment("t21")
    assert copied["params"] == original["params"]
    assert main(["--uri", other, "import", str(tmp_path / "t21.yaml")]) == 0
    assert "unchanged" in capsys.readouterr().out
    assert main(["--uri", filled, "export", "t21"]) == 0
    text = capsys.readouterr().out
    assert "kind: experiment" in text and "description: more epochs" in text


def test_errors_exit_2_with_a_message(filled: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--uri", filled, "show", "nope"]) == 2
    assert "no data source, scenario, experiment or policy is named 'nope'" in capsys.readouterr().err
    assert main(["--uri", filled, "connect", "memory://"]) == 2
    assert "unknown subcommand 'connect'" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("kind: scenario\nname: s\nmodel: [unclosed\n")
    assert main(["--uri", filled, "import", str(tmp_path / "bad.yaml")]) == 2
    assert "flow sequence at line 3" in capsys.readouterr().err
    assert main(["--uri", filled, "import", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["--uri", "mysql://x:topsecret@127.0.0.1:1/db", "ls", "scenarios"]) == 2
    err = capsys.readouterr().err
    assert "topsecret" not in err and "connection refused" in err


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for sub in ("ls", "show", "history", "diff", "export", "import", "get", "status"):
        assert f"mlmd-magic {sub}" in text
    assert main(["ls", "-h"]) == 0
    assert "--where" in capsys.readouterr().out


def test_reading_where_no_store_is_an_error_not_an_empty_store(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nothing.sqlite"
    assert main(["--uri", f"sqlite:///{missing}", "ls", "runs"]) == 2
    err = capsys.readouterr().err
    assert f"no store at {missing} (--uri); ls only reads one" in err and not missing.exists()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLMD_MAGIC_URI", raising=False)
    assert main(["explain", "12"]) == 2
    assert "(the default store)" in capsys.readouterr().err and not (tmp_path / "mlmd.sqlite").exists()


def test_the_reader_closing_the_pipe_is_no_error(filled: str) -> None:
    exe = shutil.which("mlmd-magic", path=os.path.dirname(sys.executable)) or "mlmd-magic"
    proc = subprocess.Popen([exe, "--uri", filled, "ls", "experiments"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # as `| head` does once it has read its lines
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and "Traceback" not in err and "BrokenPipe" not in err


def test_json_may_follow_the_subcommand(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--uri", filled, "ls", "experiments", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert any(r["name"] == "t21" for r in rows)
