"""Connecting: URIs, defaults, MySQL errors that say what to do, passwords kept out of sight."""

from __future__ import annotations

import logging
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

import mlmd_magic as mm
from mlmd_magic.backend.uri import parse_uri

from .conftest import MYSQL_BASE, MYSQL_PASSWORD


def test_default_uri_is_sqlite_in_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLMD_MAGIC_URI", raising=False)
    store = mm.connect()
    assert store.uri == "sqlite:///mlmd.sqlite"
    assert (tmp_path / "mlmd.sqlite").exists()


def test_uri_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLMD_MAGIC_URI", f"sqlite:///{tmp_path}/env.sqlite")
    assert mm.connect().uri == f"sqlite:///{tmp_path}/env.sqlite"
    assert (tmp_path / "env.sqlite").exists()


def test_relative_and_absolute_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    mm.connect("sqlite:///sub/rel.sqlite")
    assert (tmp_path / "sub" / "rel.sqlite").exists()
    assert parse_uri("sqlite:////abs/x.sqlite").path == "/abs/x.sqlite"
    with pytest.raises(mm.StoreConnectionError, match="does not exist; create it first"):
        mm.connect("sqlite:///missing-dir/x.sqlite")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("nonsense", "not a store URI"),
        ("postgres://u@h/db", "unsupported store URI scheme"),
        ("mysql://u@host", "needs a host and a database"),
        ("mysql://u@host/db?sslmode=on", "unknown option 'sslmode'"),
        ("mysql://u@host:notaport/db", "invalid port"),
        ("memory://x", "takes no path"),
    ],
)
def test_bad_uris(uri: str, message: str) -> None:
    with pytest.raises(mm.StoreConnectionError, match=message):
        mm.connect(uri)


def test_masked_uri_and_repr_hide_the_password() -> None:
    parsed = parse_uri("mysql://alice:pa%40ss@db.example:3307/nipt?ssl_ca=/ca.pem")
    assert parsed.password == "pa@ss"
    assert parsed.masked() == "mysql://alice:***@db.example:3307/nipt?ssl_ca=/ca.pem"
    assert "pa@ss" not in repr(parsed) and "pa@ss" not in str(parsed)


def test_two_processes_open_a_fresh_sqlite_store_at_once(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'race.sqlite'}"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        results = pool.map(_open_and_write, [(uri, i) for i in range(4)])
    assert results == ["ok"] * 4
    store = mm.connect(uri)
    assert sorted(store.names("scenarios")) == [f"s{i}" for i in range(4)]
    names = [t.name for t in store.mlmd.get_artifact_types() if t.name.startswith("mlmd_magic.")]
    assert len(names) == len(set(names))


def _open_and_write(args: tuple[str, int]) -> str:
    uri, i = args
    store = mm.connect(uri)
    store.add_scenario(f"s{i}", model="mlp", params={"i": i})
    return "ok"


# --------------------------------------------------------------------------- MySQL


@pytest.mark.mysql
def test_mysql_creates_the_database_and_masks_the_password(
    mysql_uri: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("MLMD_MAGIC_MYSQL_PASSWORD")
    with_password = mysql_uri.replace("://mlmd_magic_test@", f"://mlmd_magic_test:{MYSQL_PASSWORD}@")
    caplog.set_level(logging.DEBUG)
    logging.getLogger("absl").setLevel(logging.DEBUG)
    store = mm.connect(with_password)
    assert MYSQL_PASSWORD not in repr(store) and MYSQL_PASSWORD not in store.uri
    store.add_scenario("s", model="mlp", params={"a": 1})
    assert any("ConnectionConfig" in r.getMessage() for r in caplog.records), "MLMD's DEBUG line was not seen"
    for record in caplog.records:
        assert MYSQL_PASSWORD not in record.getMessage()
    # nothing in any table of the database holds the password
    import pymysql

    from .conftest import _server_params

    conn = pymysql.connect(database=mysql_uri.rsplit("/", 1)[1], **_server_params())
    with conn.cursor() as cur:
        cur.execute("SHOW TABLES")
        for (table,) in cur.fetchall():
            cur.execute(f"SELECT * FROM `{table}`")
            for row in cur.fetchall():
                assert MYSQL_PASSWORD not in repr(row), table
    conn.close()


@pytest.mark.mysql
def test_mysql_password_from_my_cnf(mysql_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLMD_MAGIC_MYSQL_PASSWORD")
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".my.cnf").write_text(f"[client]\nuser = someone\npassword = {MYSQL_PASSWORD}\n")
    assert mm.connect(mysql_uri).add_scenario("s", model="mlp", params={}).version == 1


@pytest.mark.mysql
def test_mysql_errors_say_what_to_do(mysql_server: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                     tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MLMD_MAGIC_MYSQL_PASSWORD", "definitely-wrong")
    base = MYSQL_BASE.rstrip("/")
    with pytest.raises(mm.StoreConnectionError, match="wrong user name or password") as info:
        mm.connect(f"{base}/mlmd_magic_test_never")
    assert "definitely-wrong" not in str(info.value)
    assert "MLMD_MAGIC_MYSQL_PASSWORD" in str(info.value)
    monkeypatch.setenv("MLMD_MAGIC_MYSQL_PASSWORD", MYSQL_PASSWORD)
    with pytest.raises(mm.StoreConnectionError, match="connection refused"):
        mm.connect(f"mysql://mlmd_magic_test@127.0.0.1:{_free_port()}/x")
    with pytest.raises(mm.StoreConnectionError, match="unknown MySQL host"):
        mm.connect("mysql://mlmd_magic_test@no-such-host.invalid/x")
    with pytest.raises(mm.StoreConnectionError, match="may not create it"):
        mm.connect(f"{base}/not_ours_{os.getpid()}")
    with pytest.raises(mm.StoreConnectionError, match="invalid MySQL database name"):
        mm.connect(f"{base}/bad%60name")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_caching_sha2_advice_names_the_fix() -> None:
    from mlmd_magic.backend.connection import _caching_sha2_advice

    advice = _caching_sha2_advice(parse_uri("mysql://alice@db/x"))
    assert "mysql_native_password" in advice and "ALTER USER 'alice'" in advice
