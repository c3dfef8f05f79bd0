"""Where a store is, and what opening it changes.

* A relative SQLite URI names the file of the folder current when the store is opened, for
  the store's whole life: background runs and sweep workers started after a ``%cd`` record
  into that file, and create nothing in the new folder.
* A worker gets the store's URI quoted once and decodes it once, so a folder named ``s3%41``
  (or holding spaces, ``#``, ``?``, non-ASCII letters) is the same folder in every process.
* Opening a store leaves its journal mode as it was: only a store this package creates, or
  one opened with ``?wal=1``, is switched to write-ahead-log mode.

Real processes, real ``os.chdir`` and real SQLite files throughout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import mlmd_magic as mm
from mlmd_magic import datasets
from mlmd_magic.backend.connection import backend_for
from mlmd_magic.backend.uri import parse_uri

FIXTURES = Path(__file__).parent / "fixtures"
SPACE = {"learning_rate": {"loguniform": [1.0e-3, 1.0e-1]}}
OBJECTIVE = {"metric": "eval.accuracy", "direction": "maximize"}
# percent-decoded twice, "s3%41" reads "s3A": a worker would open another folder's store
ODD = "s3%41 a#b?c é"
TWICE_DECODED = "s3A a#b?c é"


@pytest.fixture(scope="module")
def nipt(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return datasets.simulate_nipt(str(tmp_path_factory.mktemp("location-data")), n_train=120, n_eval=40, n_test=40)


@pytest.fixture(autouse=True)
def _runs_beside_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLMD_MAGIC_RUNS_DIR", raising=False)  # run folders go beside the store
    monkeypatch.delenv("MLMD_MAGIC_URI", raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")


def _prepare(store: mm.Store, nipt: dict[str, Any]) -> mm.Store:
    store.add_datasource("nipt", **nipt)
    store.add_scenario("tiny", model="mlp", params={"hidden": [4], "learning_rate": 0.01, "epochs": 1,
                                                    "batch_size": 64, "seed": 1})
    store.add_experiment("base", datasource="nipt", scenario="tiny")
    return store


def _train_elsewhere(store: mm.Store, how: str) -> None:
    """A background run, or a sweep of two trials in two worker processes."""
    if how == "background":
        run = store.train("base", wait=False).wait(timeout_s=300)
        assert run.state == "COMPLETE"
    else:
        sweep = store.sweep("s", experiment="base", space=SPACE, objective=OBJECTIVE, sampler="random", trials=2,
                            workers=2)
        assert list(sweep.trials["state"]) == ["COMPLETE", "COMPLETE"], sweep.trials


def _completed_trains(path: Path) -> int:
    """COMPLETE Train executions in the store file at ``path``, read by a separate process."""
    code = ("import sys, mlmd_magic as mm\n"
            "from ml_metadata.proto import metadata_store_pb2 as pb\n"
            "s = mm.connect(sys.argv[1])\n"
            "print(sum(e.last_known_state == pb.Execution.COMPLETE for e in s.mlmd.get_executions_by_type("
            "'mlmd_magic.Train')))\n")
    done = subprocess.run([sys.executable, "-c", code, "sqlite:///" + quote(str(path))], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split()[-1])


def _header_journal(path: Path) -> tuple[int, int]:
    """Bytes 18-19 of a SQLite file: (1, 1) for a rollback journal, (2, 2) in WAL mode."""
    header = path.read_bytes()[:20]
    return header[18], header[19]


def _journal_mode(path: Path) -> str:
    """``PRAGMA journal_mode`` as a separate process reads it (this one's sqlite3 stays off MLMD's files)."""
    code = "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA journal_mode').fetchone()[0])"
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# ---------------------------------------------------------------------------- a relative URI after a chdir


def test_a_relative_uri_names_the_file_of_the_folder_current_at_connect_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(home)
    backend = backend_for(parse_uri("sqlite:///mlmd.sqlite"))
    store = mm.connect("sqlite:///mlmd.sqlite")
    monkeypatch.chdir(elsewhere)  # %cd in the notebook
    assert parse_uri(backend.worker_uri()).path == str(home / "mlmd.sqlite")
    assert backend.runs_root() == str(home / "mlmd-magic-runs")
    assert store.runs_root() == str(home / "mlmd-magic-runs")
    assert store.uri == "sqlite:///mlmd.sqlite"  # shown as it was given
    store.add_scenario("after-cd", model="mlp", params={"epochs": 1})
    store.close()
    assert os.listdir(elsewhere) == []


@pytest.mark.slow  # a worker process (or two) importing TensorFlow and training
@pytest.mark.parametrize("how", ["background", "sweep"])
def test_workers_record_into_the_store_opened_before_a_chdir(how: str, nipt: dict[str, Any], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(home)
    store = _prepare(mm.connect("sqlite:///mlmd.sqlite"), nipt)
    monkeypatch.chdir(elsewhere)
    _train_elsewhere(store, how)
    store.close()
    assert _completed_trains(home / "mlmd.sqlite") == (1 if how == "background" else 2)
    assert os.listdir(elsewhere) == []  # no empty store, no run folder, no study


# ---------------------------------------------------------------------------- folder names a URI must quote


@pytest.mark.parametrize("name", [ODD, "100%", "%2541", "with space", "hash#tag", "what?", "é-ü-漢", "a%2Fb"])
def test_a_worker_uri_round_trips_the_folder_name_exactly(name: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / name
    folder.mkdir()
    path = str(folder / "mlmd.sqlite")
    quoted = "sqlite:///" + quote(path)
    assert parse_uri(quoted).path == path  # decoded once
    monkeypatch.chdir(folder)
    for given in (quoted, "sqlite:///mlmd.sqlite"):  # the same file, named from anywhere or from inside
        uri = backend_for(parse_uri(given)).worker_uri()
        assert parse_uri(uri).path == path, (given, uri)
        assert parse_uri(parse_uri(uri).quoted()).path == path


def test_a_mysql_worker_uri_round_trips_user_host_and_options() -> None:
    parsed = parse_uri("mysql://a%40b%3Ac:pw@[::1]:3307/nipt?ssl_ca=/certs/my%20ca.pem&socket=/run/my%23.sock")
    backend = backend_for(parsed)
    uri = backend.worker_uri()
    back = parse_uri(uri)
    assert "pw" not in uri and backend.password() == "pw"  # handed on the worker's stdin, never its environment
    assert (back.user, back.host, back.port, back.database) == ("a@b:c", "::1", 3307, "nipt")
    assert back.option_dict == {"ssl_ca": "/certs/my ca.pem", "socket": "/run/my#.sock"}
    assert back.password is None


@pytest.mark.slow  # a worker process (or two) importing TensorFlow and training
@pytest.mark.parametrize("how", ["background", "sweep"])
def test_workers_open_the_store_of_a_folder_named_with_percent_signs(how: str, nipt: dict[str, Any],
                                                                     tmp_path: Path) -> None:
    folder, twice = tmp_path / ODD, tmp_path / TWICE_DECODED
    folder.mkdir()
    twice.mkdir()  # where a URI decoded twice leads: it must stay empty
    store = _prepare(mm.connect("sqlite:///" + quote(str(folder / "mlmd.sqlite"))), nipt)
    _train_elsewhere(store, how)
    store.close()
    assert _completed_trains(folder / "mlmd.sqlite") == (1 if how == "background" else 2)
    assert os.listdir(twice) == []


def test_a_background_worker_never_creates_a_store(tmp_path: Path) -> None:
    """A worker given a store file that is not there says so, instead of training into a new empty store."""
    missing = tmp_path / "gone" / "mlmd.sqlite"
    missing.parent.mkdir()
    spec = {"uri": "sqlite:///" + quote(str(missing)), "ref": "base@1", "external_id": "mlmd_magic:x",
            "force": False, "workdir": None}
    done = subprocess.run([sys.executable, "-m", "mlmd_magic.store.worker"], input=json.dumps(spec),
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 1
    assert f"failed: there is no store at {missing}" in done.stdout, done.stdout + done.stderr
    assert os.listdir(missing.parent) == []


# ---------------------------------------------------------------------------- journal mode


def test_opening_an_existing_store_leaves_its_journal_mode(tmp_path: Path) -> None:
    copy = tmp_path / "team.sqlite"  # a store another tool made, not in WAL mode
    shutil.copy(FIXTURES / "store-0.1.0.sqlite", copy)
    assert _header_journal(copy) == (1, 1)
    store = mm.connect(f"sqlite:///{copy}")
    store.add_scenario("opened", model="mlp", params={"epochs": 1})  # a write, and recorded reads
    assert list(store.ls("experiments")["name"]) == ["t21"]
    assert _header_journal(copy) == (1, 1)
    store.close()
    assert _header_journal(copy) == (1, 1)
    assert _journal_mode(copy) == "delete"
    assert mm.connect(f"sqlite:///{copy}").get_scenario("opened")["version"] == 1


def test_a_store_this_package_creates_is_in_wal_mode_unless_wal_0(tmp_path: Path) -> None:
    mm.connect(f"sqlite:///{tmp_path}/new.sqlite").close()
    assert _header_journal(tmp_path / "new.sqlite") == (2, 2)
    empty = tmp_path / "empty.sqlite"
    empty.touch()  # nothing in it yet: created for the store, e.g. by tempfile
    mm.connect(f"sqlite:///{empty}").close()
    assert _header_journal(empty) == (2, 2)
    kept = mm.connect(f"sqlite:///{tmp_path}/network.sqlite?wal=0")  # e.g. on a network file system
    kept.add_scenario("s", model="mlp", params={"epochs": 1})
    kept.close()
    assert _header_journal(tmp_path / "network.sqlite") == (1, 1)
    assert _journal_mode(tmp_path / "network.sqlite") == "delete"


def test_wal_1_switches_an_existing_store(tmp_path: Path) -> None:
    copy = tmp_path / "team.sqlite"
    shutil.copy(FIXTURES / "store-0.1.0.sqlite", copy)
    store = mm.connect(f"sqlite:///{copy}?wal=1")
    assert store.uri == f"sqlite:///{copy}"
    assert parse_uri(backend_for(parse_uri(f"sqlite:///{copy}?wal=1")).worker_uri()).option_dict == {"wal": "1"}
    assert _header_journal(copy) == (2, 2)
    store.close()
    assert _journal_mode(copy) == "wal"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("sqlite:///x.sqlite?wal=maybe", r"wal=maybe.*wal=1.*wal=0"),
        ("sqlite:///x.sqlite?journal=wal", r"unknown option 'journal' in the SQLite URI; known options: wal"),
        ("sqlite:///what?.sqlite", r"write '\?' in a file name as %3F"),
    ],
)
def test_bad_sqlite_options_say_what_to_write(uri: str, message: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(mm.StoreConnectionError, match=message):
        mm.connect(uri)
    assert os.listdir(tmp_path) == []
