"""No password anywhere: MLMD tables, reprs, DEBUG logs, displayed outputs, recorded sources."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from mlmd_magic.faces.registry import REGISTRY

from .conftest import MYSQL_PASSWORD, _server_params


def _session(ip: InteractiveShell, uri_with_password: str, shown: list[str]) -> None:
    """A notebook session that handles the password in every way a user might."""

    def cell(source: str) -> None:
        result = ip.run_cell(source, store_history=True)
        if result.error_in_exec is not None:
            shown.append(str(result.error_in_exec))
        if result.result is not None:
            data, _ = ip.display_formatter.format(result.result)
            shown.extend(str(v) for v in data.values())

    cell(f"%mlmd connect {uri_with_password} --alias team")
    cell("%mlmd status")
    cell("%mlmd connections")
    cell(f"%%scenario s\n# connected with {uri_with_password}\nmodel: mlp\nparams: {{epochs: 2}}\n")
    cell(f"%%scenario s\n# password: {MYSQL_PASSWORD}\nmodel: mlp\nparams: {{epochs: 3}}\n")
    cell("%mlmd ls scenarios")
    cell("%mlmd history s")
    cell("%mlmd show s")
    cell(f"%mlmd get nope  # {uri_with_password}")
    cell(f"%mlmd connect {uri_with_password.replace(':3306', ':1')} --alias broken")
    cell("import mlmd_magic as mm\nrepr(mm.current_store()), str(mm.current_store().uri)")


def _scan(texts: list[str]) -> None:
    leaks = [t for t in texts if MYSQL_PASSWORD in t]
    assert not leaks, f"the password leaked into: {leaks[0][:300]!r}"


@pytest.mark.mysql
def test_no_password_in_mysql_tables_logs_outputs_or_sources(
    ip: InteractiveShell, mysql_uri: str, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
) -> None:
    import pymysql

    monkeypatch.delenv("MLMD_MAGIC_MYSQL_PASSWORD")
    caplog.set_level(logging.DEBUG)
    logging.getLogger("absl").setLevel(logging.DEBUG)
    uri = mysql_uri.replace("://mlmd_magic_test@", f"://mlmd_magic_test:{MYSQL_PASSWORD}@")
    shown: list[str] = []
    _session(ip, uri, shown)
    out = capsys.readouterr()
    assert any("ConnectionConfig" in r.getMessage() for r in caplog.records)  # MLMD did log its config
    texts = [*shown, out.out, out.err, *(r.getMessage() for r in caplog.records)]
    conn = pymysql.connect(database=mysql_uri.rsplit("/", 1)[1], **_server_params())
    with conn.cursor() as cur:
        cur.execute("SHOW TABLES")
        for (table,) in cur.fetchall():
            cur.execute(f"SELECT * FROM `{table}`")
            texts.extend(repr(row) for row in cur.fetchall())
    conn.close()
    store = REGISTRY.use("team").store
    sources = [e.properties["source"].string_value for e in store.mlmd.get_executions()]
    assert len(sources) >= 5 and sum("***" in s for s in sources) >= 2
    _scan(texts + sources)


def test_no_password_in_a_sqlite_store_either(ip: InteractiveShell, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    shown: list[str] = []
    # a SQLite store, but the cells mention a MySQL URI with the password (and connect to it fails)
    ip.run_line_magic("mlmd", f"connect sqlite:///{tmp_path}/s.sqlite --alias local")
    bad = f"mysql://mlmd_magic_test:{MYSQL_PASSWORD}@127.0.0.1:1/x"
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("mlmd", f"connect {bad}")
    shown.append(str(info.value))
    ip.run_line_magic("mlmd", "use local")
    result = ip.run_cell(f"# see {bad}\n%mlmd ls scenarios", store_history=True)
    shown.append(repr(result.result))
    out = capsys.readouterr()
    conn = sqlite3.connect(tmp_path / "s.sqlite")
    texts: list[Any] = [*shown, out.out, out.err]
    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        texts.extend(repr(row) for row in conn.execute(f'SELECT * FROM "{table}"').fetchall())
    conn.close()
    _scan(texts)
