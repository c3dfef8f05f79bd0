"""Shared fixtures: stores on every backend, small data sets, a MariaDB test database.

The MySQL tests use the server named by ``MLMD_MAGIC_TEST_MYSQL`` (default
``mysql://mlmd_magic_test@127.0.0.1:3306`` with the password in
``MLMD_MAGIC_TEST_MYSQL_PASSWORD``). Without a reachable server they are skipped with
the reason; under CI (``CI`` set) or with ``MLMD_MAGIC_REQUIRE_MYSQL=1`` a missing server
is a failure.
"""

from __future__ import annotations

import csv
import os
import uuid
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mlmd_magic as mm
from mlmd_magic.backend import secrets as _secrets
from mlmd_magic.backend import session as _session
from mlmd_magic.core.datafiles import write_tfrecord
from mlmd_magic.trainer import _builders

MYSQL_BASE = os.environ.get("MLMD_MAGIC_TEST_MYSQL", "mysql://mlmd_magic_test@127.0.0.1:3306")
MYSQL_PASSWORD = os.environ.get("MLMD_MAGIC_TEST_MYSQL_PASSWORD", "Tst-pw_9d2f!x")
DB_PREFIX = "mlmd_magic_test_"
_created_dbs: list[str] = []


def _mysql_required() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("MLMD_MAGIC_REQUIRE_MYSQL") == "1"


def _server_params() -> dict[str, Any]:
    from mlmd_magic.backend.uri import parse_uri

    parsed = parse_uri(MYSQL_BASE.rstrip("/") + "/probe")
    return {"host": parsed.host, "port": parsed.port, "user": parsed.user, "password": MYSQL_PASSWORD}


@pytest.fixture(scope="session")
def mysql_server() -> dict[str, Any]:
    """Connection parameters of a reachable MySQL server, or skip (fail under CI)."""
    import pymysql

    params = _server_params()
    try:
        pymysql.connect(connect_timeout=5, **params).close()
    except Exception as exc:
        reason = (
            f"no MySQL/MariaDB server for the tests at {params['host']}:{params['port']} as "
            f"{params['user']!r} ({exc}); start one and create the test account as .ci/run does"
        )
        if _mysql_required():
            pytest.fail(reason)
        pytest.skip(reason)
    return params


@pytest.fixture
def mysql_uri(mysql_server: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> str:
    """A URI of a fresh database (dropped at the end of the run); password via the environment."""
    name = f"{DB_PREFIX}{uuid.uuid4().hex[:12]}"
    _created_dbs.append(name)
    monkeypatch.setenv("MLMD_MAGIC_MYSQL_PASSWORD", MYSQL_PASSWORD)
    return f"{MYSQL_BASE.rstrip('/')}/{name}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _created_dbs:
        return
    import pymysql

    try:
        conn = pymysql.connect(connect_timeout=5, **_server_params())
    except Exception:
        return
    with conn.cursor() as cur:
        for name in _created_dbs:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cur.execute(f"DROP DATABASE IF EXISTS `{name}_sweeps`")  # a sweep's Optuna study, beside it
    conn.close()


# pytest sets and removes this one itself around each phase of a test
_PYTEST_ENVIRONMENT = {"PYTEST_CURRENT_TEST"}


@pytest.fixture(autouse=True)
def process_state_restored() -> Iterator[None]:
    """Every test leaves the process as it found it: the passwords the secrets registry
    remembers (a connection with a password, ``secrets.remember``), the session's write
    listeners (open panels) and the session itself (loading the extension adopts the kernel's
    session id), the model builders (``register_model`` in a test) and the environment
    variables (one set without ``monkeypatch`` included)."""
    with _secrets._lock:
        known, forms = set(_secrets._known), list(_secrets._forms)
    listeners = [weakref.ref(listener) for listener in _session._WRITE_LISTENERS]  # held weakly, as the session does
    session = _session._SESSION
    builders = dict(_builders._BUILDERS)
    environment = {k: v for k, v in os.environ.items() if k not in _PYTEST_ENVIRONMENT}
    yield
    _builders._BUILDERS.clear()
    _builders._BUILDERS.update(builders)
    with _secrets._lock:
        _secrets._known.clear()
        _secrets._known.update(known)
        _secrets._forms[:] = forms
    _session._WRITE_LISTENERS.clear()
    for ref in listeners:
        if (listener := ref()) is not None:
            _session._WRITE_LISTENERS.add(listener)
    _session._SESSION = session
    for key in [k for k in os.environ if k not in environment and k not in _PYTEST_ENVIRONMENT]:
        del os.environ[key]
    for key, value in environment.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


@pytest.fixture(params=["memory", "sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URI for a fresh, empty store on each backend."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    return str(request.getfixturevalue("mysql_uri"))


@pytest.fixture
def store(store_uri: str) -> Iterator[mm.Store]:
    s = mm.connect(store_uri)
    yield s
    s.close()


@pytest.fixture
def ip() -> Iterator[Any]:
    """A real IPython InteractiveShell with the extension loaded; unloaded and reset afterwards."""
    from IPython.core.interactiveshell import InteractiveShell

    from mlmd_magic.faces.registry import REGISTRY

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "mlmd_magic")
    yield shell
    shell.run_line_magic("unload_ext", "mlmd_magic")
    shell.config.pop("MlmdMagics", None)  # %config values of one test are not the next one's
    REGISTRY.reset()


@pytest.fixture
def mem_store() -> Iterator[mm.Store]:
    s = mm.connect("memory://")
    yield s
    s.close()


@pytest.fixture
def store_with_experiment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> mm.Store:
    """A SQLite store ready to train: data source ``nipt`` (a small simulated NIPT set),
    scenario ``s`` (a one-epoch ``mlp``) and experiment ``e`` of the two; runs go under
    ``tmp_path/runs``."""
    from mlmd_magic import datasets

    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    store = mm.connect(f"sqlite:///{tmp_path}/c.sqlite")
    store.add_datasource("nipt", **datasets.simulate_nipt(str(tmp_path / "nipt"), n_train=80, n_eval=30, n_test=30))
    store.add_scenario("s", model="mlp", params={"epochs": 1, "hidden": [4], "seed": 1})
    store.add_experiment("e", datasource="nipt", scenario="s")
    return store


def make_examples(n: int, seed: int = 0, label_kind: str = "int") -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = rng.normal(size=3)
        label: Any = int(x.sum() > 0) if label_kind == "int" else float(x.sum())
        out.append({"f0": float(x[0]), "f1": float(x[1]), "f2": float(x[2]), "label": label})
    return out


@pytest.fixture
def tfrecord_dir(tmp_path: Path) -> Path:
    """A folder with train (2 shards), eval and test TFRecord files."""
    root = tmp_path / "tfr"
    (root / "train").mkdir(parents=True)
    write_tfrecord(str(root / "train" / "part-0.tfrecord"), make_examples(30, 1))
    write_tfrecord(str(root / "train" / "part-1.tfrecord"), make_examples(20, 2))
    write_tfrecord(str(root / "eval.tfrecord"), make_examples(15, 3))
    write_tfrecord(str(root / "test.tfrecord"), make_examples(10, 4))
    return root


@pytest.fixture
def csv_dir(tmp_path: Path) -> Path:
    root = tmp_path / "csv"
    root.mkdir()
    for seed, (split, n) in enumerate((("train", 12), ("eval", 5))):
        with open(root / f"{split}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["f0", "f1", "label"])
            for ex in make_examples(n, seed):
                w.writerow([ex["f0"], ex["f1"], ex["label"]])
    return root


@pytest.fixture
def npz_dir(tmp_path: Path) -> Path:
    root = tmp_path / "npz"
    root.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("eval", 8)):
        np.savez(root / f"{split}.npz", x=rng.normal(size=(n, 4)).astype("float32"), label=rng.integers(0, 3, n))
    return root
