"""The ``mlmd-magic`` console script: the ``%mlmd`` subcommands outside notebooks.

    mlmd-magic --uri sqlite:///mlmd.sqlite ls experiments
    mlmd-magic --json ls runs                       # machine-readable output
    mlmd-magic show t21-baseline@2
    mlmd-magic diff t21-baseline@1 t21-baseline@2
    mlmd-magic export mlp-small -f mlp-small.yaml && mlmd-magic --uri mysql://me@db/x import mlp-small.yaml

It shares the subcommand code with the magics (:mod:`mlmd_magic.faces.commands`).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from .errors import CommandError, MlmdMagicError, RunCancelled
from .faces import commands as _commands
from .faces.registry import ConnectionRegistry
from .store import Store
from .store import secrets as _secrets
from .store import session as _session


class _CliHost:
    def __init__(self, uri: str | None) -> None:
        self.registry = ConnectionRegistry()
        self._uri = uri

    def store(self) -> Store:
        try:
            return self.registry.current().store
        except MlmdMagicError:
            return self.registry.connect(self._uri, alias="cli").store

    def bind(self, name: str, value: Any) -> None:
        raise CommandError("-o binds a notebook variable; the command line prints the value instead")

    def settings(self) -> dict[str, tuple[Any, str]]:
        return {"default_uri": (self._uri, "the store (--uri)")}


# subcommands that only read: run where no store is, they say so instead of creating an empty one
_READS = {"status", "get", "ls", "show", "types", "history", "diff", "export", "explain", "card", "compare", "watch",
          "lineage"}


def _no_store_to_read(subcommand: str, uri: str | None) -> str | None:
    """Why ``subcommand`` cannot run: it only reads, and the SQLite file it would read is missing."""
    from .store import sqlite_file

    if subcommand not in _READS:
        return None
    path = sqlite_file(uri)
    if path is None or os.path.exists(path):
        return None
    given = "--uri" if uri else "$MLMD_MAGIC_URI" if os.environ.get("MLMD_MAGIC_URI") else "the default store"
    return (f"no store at {os.path.abspath(path)} ({given}); {subcommand} only reads one: give --uri sqlite:///PATH or "
            "mysql://USER@HOST/DATABASE, or set MLMD_MAGIC_URI")


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; exit status 0 on success, 2 on a usage or store error."""
    argv = list(sys.argv[1:] if argv is None else argv)
    uri = None
    as_json = False
    while argv and (argv[0] in ("--uri", "--json") or argv[0].startswith("--uri=")):
        if argv[0] == "--json":
            as_json, argv = True, argv[1:]
        elif argv[0] == "--uri" and len(argv) > 1:
            uri, argv = argv[1], argv[2:]
        elif argv[0].startswith("--uri="):
            uri, argv = argv[0].split("=", 1)[1], argv[1:]
        else:
            break
    if "--json" in argv[1:]:  # also after the subcommand: mlmd-magic ls runs --json
        as_json, argv = True, [argv[0], *(w for w in argv[1:] if w != "--json")]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_commands.help_text(argv[1] if len(argv) > 1 and argv[0] == "help" else None, magic=False))
        return 0
    missing = None if {"-h", "--help"} & set(argv[1:]) else _no_store_to_read(argv[0], uri)
    if missing:
        print(f"mlmd-magic: error: {missing}", file=sys.stderr)
        return 2
    host = _CliHost(uri)
    source = "mlmd-magic " + " ".join(argv)
    try:
        with _session.action_context(source=source):
            result = _commands.dispatch(host, argv, "mlmd-magic", magic=False)
    except _commands.HelpShown as shown:
        print(shown.text)
        return 0
    except MlmdMagicError as exc:
        print(f"mlmd-magic: error: {_secrets.redact(str(exc))}", file=sys.stderr)
        return 2
    except RunCancelled as exc:
        print(f"mlmd-magic: {exc}", file=sys.stderr)
        return 130
    finally:
        host.registry.reset()
    if result is not None:
        try:
            print(_commands.as_json(result) if as_json else _commands.as_text(result), flush=True)
        except BrokenPipeError:  # `mlmd-magic ls runs | head`: the reader has all it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
    return 0


if __name__ == "__main__":
    sys.exit(main())
