"""Connecting: URIs, defaults, MySQL errors that say what to do, passwords kept out of sight
(one that breaks its URI included), aliases and database names, read-only SQLite files."""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

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
    caplog.set_level(logging.DEBUG, logger="absl")  # set back after the test
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


# ---------------------------------------------------------------------------- names in URIs


def test_an_alias_ending_in_a_newline_is_refused() -> None:
    from mlmd_magic.faces.registry import ConnectionRegistry

    registry = ConnectionRegistry()
    with pytest.raises(mm.InvalidNameError, match="invalid alias"):
        registry.connect("memory://", alias="team\n")
    registry.reset()


@pytest.mark.mysql
def test_a_database_name_ending_in_a_newline_is_refused(mysql_uri: str) -> None:
    with pytest.raises(mm.StoreConnectionError, match="invalid MySQL database name"):
        mm.connect(mysql_uri + "%0A")


# ---------------------------------------------------------------------------- passwords that break URIs
# A password holding "#", "?" or "/" unencoded ends the URI's authority early, and a missing
# "//" makes the password part of the path: the error says how to fix it (percent-encode the
# character, write "://") and never shows any part of the password.

BROKEN_URIS = [
    ("mysql://u:Sekr3tHash#tail@127.0.0.1/db", "%23"),
    ("mysql://u:Sekr3tHash?tail@127.0.0.1/db", "%3F"),
    ("mysql://u:Sekr3tHash/tail@127.0.0.1/db", "%2F"),
    ("mysql://u:12#Sekr3tHash@127.0.0.1/db", "%23"),
    ("mysql://u:Sekr3tHash#tail", "%23"),
    ("mysql:/u:Sekr3tHash@127.0.0.1/db", "'://'"),
    ("mysql:u:Sekr3tHash@127.0.0.1/db", "'://'"),
]


def _no_fragment(text: str) -> None:
    assert "Sekr3tHash" not in text and "tail" not in text, text


@pytest.mark.parametrize(("uri", "advice"), BROKEN_URIS)
def test_a_password_that_breaks_the_uri_never_shows_in_the_error(uri: str, advice: str) -> None:
    with pytest.raises(mm.StoreConnectionError) as info:
        mm.connect(uri)
    _no_fragment(str(info.value))
    assert advice in str(info.value)


@pytest.mark.parametrize(("uri", "advice"), BROKEN_URIS)
def test_a_password_that_breaks_the_uri_through_the_magic(ip: InteractiveShell, uri: str, advice: str) -> None:
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("mlmd", f"connect {uri}")
    _no_fragment(str(info.value))
    assert advice in str(info.value)


def test_a_password_with_a_space_is_not_echoed_by_the_magic(ip: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="quote the URI") as info:
        ip.run_line_magic("mlmd", "connect mysql://u:Sekr3tHash tail@127.0.0.1:1/db --alias x")
    _no_fragment(str(info.value))


def test_a_password_that_breaks_the_uri_through_the_console_script(tmp_path: Path) -> None:
    exe = shutil.which("mlmd-magic") or str(Path(sys.executable).parent / "mlmd-magic")
    for uri, advice in BROKEN_URIS[:4]:
        out = subprocess.run([exe, "--uri", uri, "ls", "experiments"], capture_output=True, text=True,
                             cwd=tmp_path, timeout=120)
        assert out.returncode == 2
        _no_fragment(out.stderr + out.stdout)
        assert advice in out.stderr


# ---------------------------------------------------------------------------- a read-only SQLite file

_AS_A_USER = '''
import ctypes, json, os, sys
if os.geteuid() == 0:  # root may write anything: drop the capabilities that let it, as any user lacks them
    libc = ctypes.CDLL(None, use_errno=True)
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]
    header, data = Header(0x20080522, 0), (Data * 2)()
    assert libc.capget(ctypes.byref(header), data) == 0
    keep = ~((1 << 1) | (1 << 2)) & 0xFFFFFFFF  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
    data[0].effective &= keep; data[0].permitted &= keep; data[0].inheritable &= keep
    assert libc.capset(ctypes.byref(header), data) == 0, ctypes.get_errno()
    assert not os.access(sys.argv[2], os.W_OK) or not os.access(os.path.dirname(sys.argv[2]), os.W_OK)
from IPython.core.interactiveshell import InteractiveShell
import mlmd_magic as mm
out = {}
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "mlmd_magic")
out["connect"] = repr(ip.run_line_magic("mlmd", "connect " + sys.argv[1]))
store = mm.current_store()
out["read_only"] = store.read_only
for name, call in [("get", lambda: store.get_scenario("s")["params"]), ("list", lambda: len(store.ls("scenarios"))),
                   ("add", lambda: store.add_scenario("t", model="mlp", params={"a": 2}).ref)]:
    try:
        out[name] = call()
    except mm.MlmdMagicError as exc:
        out[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
'''


def _executions(path: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(path)  # the last connection to close: it leaves no -wal or -shm file
    try:
        return int(conn.execute("SELECT count(*) FROM Execution").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize("locked", ["file", "folder"])
def test_a_read_only_sqlite_store_is_read_and_records_nothing(tmp_path: Path, locked: str) -> None:
    """A store file (or its folder) the user may not write is opened read-only, as a user
    without root's capabilities: reads work, a write is refused saying why, nothing is written
    and no -wal or -shm file is left."""
    import json

    folder = tmp_path / "shared"
    folder.mkdir()
    path = folder / "team.sqlite"
    store = mm.connect(f"sqlite:///{path}")
    store.add_scenario("s", model="mlp", params={"a": 1})
    store.close()
    before = _executions(path)
    os.chmod(path if locked == "file" else folder, 0o444 if locked == "file" else 0o555)
    try:
        out = subprocess.run([sys.executable, "-c", _AS_A_USER, f"sqlite:///{path}", str(path)],
                             capture_output=True, text=True, timeout=300)
        left = sorted(p.name for p in folder.iterdir())
    finally:
        os.chmod(path, 0o644)
        os.chmod(folder, 0o755)
    assert left == ["team.sqlite"]  # no -wal or -shm file owned by the reader
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "opened read-only: " in result["connect"] and result["read_only"] is True
    assert result["get"] == {"a": 1} and result["list"] == 1
    assert result["add"].startswith("StoreError: ") and "opened read-only" in result["add"]
    assert "adding a scenario is refused" in result["add"]
    assert _executions(path) == before  # nothing recorded, nothing written
