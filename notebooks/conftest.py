"""The tutorials that need a MySQL/MariaDB server (``05-team-store.ipynb``) run against the one
the MySQL tests use: ``MLMD_MAGIC_TEST_MYSQL`` (default ``mysql://mlmd_magic_test@127.0.0.1:3306``,
the account of ``scripts/mysql-test-account.sh``) with the password in
``MLMD_MAGIC_TEST_MYSQL_PASSWORD``. nbval has no skip of its own: without a server that
answers, the notebook's cells are skipped with the reason; under CI (``CI`` set) or with
``MLMD_MAGIC_REQUIRE_MYSQL=1`` they fail with it instead. The notebook's kernel gets the
password as a user's would, in ``$MLMD_MAGIC_MYSQL_PASSWORD`` (set only while the kernel
starts, so no test sees it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

MYSQL_NOTEBOOKS = {"05-team-store.ipynb"}
MYSQL_BASE = os.environ.get("MLMD_MAGIC_TEST_MYSQL", "mysql://mlmd_magic_test@127.0.0.1:3306")
MYSQL_PASSWORD = os.environ.get("MLMD_MAGIC_TEST_MYSQL_PASSWORD", "Tst-pw_9d2f!x")
PASSWORD_ENV = "MLMD_MAGIC_MYSQL_PASSWORD"
_MISSING = pytest.StashKey[str]()  # why a required server is missing, on each item that needs it


def _needs_mysql(item: pytest.Item) -> bool:
    return item.path.name in MYSQL_NOTEBOOKS


def _mysql_required() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("MLMD_MAGIC_REQUIRE_MYSQL") == "1"


def _no_server() -> str | None:
    """Why the test server cannot be used, or None when it answers."""
    import pymysql

    from mlmd_magic.backend.uri import parse_uri

    uri = parse_uri(MYSQL_BASE.rstrip("/") + "/probe")
    try:
        pymysql.connect(host=uri.host, port=uri.port, user=uri.user, password=MYSQL_PASSWORD,
                        connect_timeout=5).close()
    except Exception as exc:
        return (f"needs the MySQL/MariaDB test server at {uri.host}:{uri.port} as {uri.user!r} ({exc}); "
                "start one and run `bash scripts/mysql-test-account.sh` (CI requires it)")
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any(_needs_mysql(item) for item in items):
        return
    reason = _no_server()
    if reason is None:
        return
    for item in items:
        if _needs_mysql(item):
            if _mysql_required():
                item.stash[_MISSING] = reason
            else:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[Any]:
    if _MISSING in item.stash:
        pytest.fail(item.stash[_MISSING], pytrace=False)
    if not _needs_mysql(item) or PASSWORD_ENV in os.environ:
        yield
        return
    os.environ[PASSWORD_ENV] = MYSQL_PASSWORD  # the notebook's kernel starts during this setup
    try:
        yield
    finally:
        os.environ.pop(PASSWORD_ENV, None)

# what the tutorials write next to them (scripts such as tutorial-data-team/bob.py) is not a test
collect_ignore_glob = ["tutorial-data*"]
