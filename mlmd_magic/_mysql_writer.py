"""Recording an action on MySQL/MariaDB in one round trip.

MLMD's MySQL layer sends every row of a ``put_execution`` as a statement of its own and
waits for each answer, and re-reads every type and context it is given: an action with a
record, its properties and two contexts costs about thirty round trips, twice what the
bare MLMD floor in ``benchmarks/`` pays. This module writes the same rows, in MLMD's own
schema, as one multi-statement transaction over a pymysql connection of its own: one round
trip and one commit per action. The store stays a plain MLMD database; MLMD reads these
rows exactly as it reads its own (``tests/test_mysql_writer.py`` writes the same actions
both ways and compares what plain ``ml_metadata`` reads back).

It writes only what it can write exactly as MLMD would: a new execution with its
properties, new artifacts with int/double/string properties their types declare, events
(without paths) to new or existing artifacts, and associations and attributions to
contexts whose ids are known. Anything else raises :class:`Unsupported`, and the caller
uses ``put_execution``. It is used only with the MLMD version and schema it was checked
against (:data:`MLMD_VERSION`, :data:`SCHEMA_VERSION`); ``MLMD_MAGIC_MYSQL_DIRECT_WRITES=0``
turns it off.

Text: MLMD's client talks ``latin1`` to the server and sends UTF-8 bytes, so the server
stores UTF-8 read as latin1, and MLMD gets the same bytes back. This writer sends the very
same bytes on a ``latin1`` connection, so that MLMD reads back what it would have written.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Callable

from . import _resilience

MLMD_VERSION = "1.17.1"
SCHEMA_VERSION = 10
DISABLE_ENV = "MLMD_MAGIC_MYSQL_DIRECT_WRITES"
_INT32 = (-(2**31), 2**31 - 1)  # MLMD's MySQL property column is INT(11)
_COLUMNS = ("int_value", "double_value", "string_value")
_DECLARED_KIND = {"INT": "int_value", "DOUBLE": "double_value", "STRING": "string_value"}


class Unsupported(Exception):
    """This write needs MLMD's own ``put_execution``."""


class DuplicateKey(Exception):
    """A unique key was taken: an artifact's type and name, or an external id."""


def enabled() -> bool:
    """Whether direct writes may be used at all (the installed ml-metadata is the checked one)."""
    if os.environ.get(DISABLE_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    try:
        from importlib.metadata import version

        return version("ml-metadata") == MLMD_VERSION
    except Exception:
        return False


class MySQLActionWriter:
    """Writes one action's execution, events, artifacts, associations and attributions.

    Parameters
    ----------
    connect : opens a pymysql connection to the store's database (the caller knows the
        credentials; this object keeps only the function).
    declared : for each type id this writer may write, its declared properties as
        ``{name: "INT" | "DOUBLE" | "STRING"}``.
    """

    def __init__(self, connect: Callable[[], Any], declared: dict[int, dict[str, str]]) -> None:
        self._connect = connect
        self._declared = {tid: {k: _DECLARED_KIND.get(v, "") for k, v in props.items()}
                          for tid, props in declared.items()}
        self._conn: Any = None
        self.reconnects = 0

    @classmethod
    def open(cls, connect: Callable[[], Any], declared: dict[int, dict[str, str]]) -> MySQLActionWriter | None:
        """A writer for the database ``connect`` reaches, or ``None`` where it must not be used."""
        if not enabled():
            return None
        writer = cls(connect, declared)
        try:
            conn = writer._connection()
            with conn.cursor() as cur:
                cur.execute("SELECT MAX(schema_version) FROM MLMDEnv")
                row = cur.fetchone()
        except Exception:
            writer.close()
            return None
        if not row or row[0] != SCHEMA_VERSION:
            writer.close()
            return None
        return writer

    def close(self) -> None:
        """Close the connection (a later write opens a new one)."""
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
            self._conn = None

    def _connection(self) -> Any:
        if self._conn is None:
            conn = self._connect()
            try:
                with conn.cursor() as cur:
                    cur.execute("SET NAMES latin1")  # what MLMD's client uses: see the module docstring
                    # our literals escape with backslashes, which this mode would store as is
                    cur.execute("SET SESSION sql_mode = REPLACE(@@SESSION.sql_mode, 'NO_BACKSLASH_ESCAPES', '')")
                conn.autocommit(True)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def put_execution(self, execution: Any, events: list[tuple[Any, Any]], contexts: list[Any]
                      ) -> tuple[int, list[int], list[int]]:
        """Write as MLMD's ``put_execution(execution, events, contexts,
        reuse_context_if_already_exist=True)`` would, and return the same ids.

        Returns the execution id, the artifact ids in the order of ``events`` and the context
        ids in the order of ``contexts``. A context without an id is found by type and name,
        or created (only contexts without properties).

        Raises
        ------
        Unsupported
            When the action holds anything this writer does not write (nothing was written).
        DuplicateKey
            When a unique key is taken (nothing was written).
        pymysql.MySQLError
            For any other failure, after retrying a busy database and reconnecting a lost one.
        """
        sql = self._statements(execution, events, contexts)
        ids: tuple[int, list[int], list[int]] = _resilience.retrying(
            lambda: self._run(sql, len(events)), self._reopen)
        return ids

    def _reopen(self) -> None:
        """Open a new connection, waiting for a restarting server as MLMD's proxy does."""
        self.close()
        _resilience.reopen(self._connection, lambda exc: _resilience.classify(exc) == "lost")
        self.reconnects += 1

    def _run(self, sql: bytes, n_events: int) -> tuple[int, list[int], list[int]]:
        import pymysql

        conn = self._connection()
        cur = conn.cursor()
        try:
            cur.execute(sql)
            ids = None
            while True:
                if cur.description:
                    ids = cur.fetchone()
                if not cur.nextset():
                    break
        except pymysql.err.IntegrityError as exc:
            self._rollback()
            if exc.args and exc.args[0] == 1062:
                raise DuplicateKey(str(exc.args[-1])) from None
            raise
        except BaseException:
            self._rollback()
            raise
        finally:
            cur.close()
        assert ids is not None
        return int(ids[0]), [int(i) for i in ids[1:1 + n_events]], [int(i) for i in ids[1 + n_events:]]

    def _rollback(self) -> None:
        """End the transaction a failed statement left open (the rest of the batch never ran)."""
        if self._conn is None:
            return
        try:
            self._conn.query("ROLLBACK")
        except Exception:
            self.close()  # the server rolls back when the connection goes

    # ------------------------------------------------------------------ building the batch

    def _statements(self, execution: Any, events: list[tuple[Any, Any]], contexts: list[Any]) -> bytes:
        if execution.HasField("id"):
            raise Unsupported("an update of an existing execution")
        now = int(time.time() * 1000)
        parts = ["START TRANSACTION"]
        context_refs: list[str] = []
        for index, context in enumerate(contexts):
            if context.HasField("id"):
                context_refs.append(str(int(context.id)))
                continue
            if len(context.properties) or len(context.custom_properties) or not context.name:
                raise Unsupported("a new context with properties, or without a name")
            ref = f"@mm_c{index}"
            # found by its unique type and name, or created: LAST_INSERT_ID(id) yields either
            parts.append(
                "INSERT INTO `Context`(`type_id`, `name`, `create_time_since_epoch`, "
                f"`last_update_time_since_epoch`) VALUES ({int(context.type_id)}, {_text(context.name)}, {now}, "
                f"{now}) ON DUPLICATE KEY UPDATE `id` = LAST_INSERT_ID(`id`)"
            )
            parts.append(f"SET {ref} = LAST_INSERT_ID()")
            context_refs.append(ref)
        artifact_refs: list[str] = []
        for index, (art, _event) in enumerate(events):
            if art.HasField("id"):
                # an artifact read from the store: MLMD would compare it with what it holds and
                # find nothing to update (actions never change a record they read)
                artifact_refs.append(str(int(art.id)))
                continue
            ref = f"@mm_a{index}"
            parts.append(
                "INSERT INTO `Artifact`(`type_id`, `uri`, `state`, `name`, `external_id`, "
                "`create_time_since_epoch`, `last_update_time_since_epoch`) VALUES ("
                f"{int(art.type_id)}, {_text(art.uri)}, {_optional_int(art, 'state')}, "
                f"{_optional_text(art, 'name')}, {_optional_text(art, 'external_id')}, {now}, {now})"
            )
            parts.append(f"SET {ref} = LAST_INSERT_ID()")
            rows = self._property_rows(ref, art)
            if rows:
                parts.append(_property_insert("ArtifactProperty", "artifact_id", rows))
            artifact_refs.append(ref)
        parts.append(
            "INSERT INTO `Execution`(`type_id`, `last_known_state`, `name`, `external_id`, "
            "`create_time_since_epoch`, `last_update_time_since_epoch`) VALUES ("
            f"{int(execution.type_id)}, {_optional_int(execution, 'last_known_state')}, "
            f"{_optional_text(execution, 'name')}, {_optional_text(execution, 'external_id')}, {now}, {now})"
        )
        parts.append("SET @mm_e = LAST_INSERT_ID()")
        rows = self._property_rows("@mm_e", execution)
        if rows:
            parts.append(_property_insert("ExecutionProperty", "execution_id", rows))
        if events:
            values = []
            for ref, (_art, event) in zip(artifact_refs, events):
                if len(event.path.steps) or not event.HasField("type"):
                    raise Unsupported("an event with a path, or without a type")
                when = event.milliseconds_since_epoch if event.HasField("milliseconds_since_epoch") else now
                values.append(f"({ref}, @mm_e, {int(event.type)}, {int(when)})")
            parts.append("INSERT INTO `Event`(`artifact_id`, `execution_id`, `type`, `milliseconds_since_epoch`) "
                         f"VALUES {', '.join(values)}")
        if context_refs:
            # the execution is new, so its associations are too; an artifact read from the
            # store may already be attributed to a context (MLMD keeps one row)
            parts.append("INSERT INTO `Association`(`context_id`, `execution_id`) VALUES "
                         + ", ".join(f"({c}, @mm_e)" for c in dict.fromkeys(context_refs)))
            pairs = [f"({c}, {a})" for c in dict.fromkeys(context_refs) for a in dict.fromkeys(artifact_refs)]
            if pairs:
                parts.append("INSERT INTO `Attribution`(`context_id`, `artifact_id`) VALUES "
                             + ", ".join(pairs) + " ON DUPLICATE KEY UPDATE `id` = `id`")
        parts.append("SELECT @mm_e" + "".join(f", {ref}" for ref in artifact_refs + context_refs))
        parts.append("COMMIT")
        # Every piece is ASCII, or text already turned into latin1 characters by _text
        return ";\n".join(parts).encode("latin1")

    def _property_rows(self, ref: str, node: Any) -> list[str]:
        declared = self._declared.get(int(node.type_id))
        if declared is None:
            raise Unsupported(f"type {node.type_id} is not one this writer knows")
        rows = []
        for custom, props in ((0, node.properties), (1, node.custom_properties)):
            for name, value in props.items():
                kind = value.WhichOneof("value")
                if kind not in _COLUMNS or (not custom and declared.get(name) != kind):
                    raise Unsupported(f"property {name!r} of kind {kind}")
                column = kind
                cells = dict.fromkeys(_COLUMNS, "NULL")
                if column == "int_value":
                    number = int(value.int_value)
                    if not _INT32[0] <= number <= _INT32[1]:
                        raise Unsupported(f"property {name!r}: {number} does not fit MLMD's INT column")
                    cells[column] = str(number)
                elif column == "double_value":
                    if not math.isfinite(value.double_value):
                        raise Unsupported(f"property {name!r}: {value.double_value}")
                    cells[column] = repr(float(value.double_value))
                else:
                    cells[column] = _text(value.string_value)
                rows.append(f"({ref}, {_text(name)}, {custom}, {cells['int_value']}, {cells['double_value']}, "
                            f"{cells['string_value']})")
        return rows


def _property_insert(table: str, id_column: str, rows: list[str]) -> str:
    return (f"INSERT INTO `{table}`(`{id_column}`, `name`, `is_custom_property`, `int_value`, `double_value`, "
            f"`string_value`) VALUES {', '.join(rows)}")


_ESCAPES = {0: "\\0", 10: "\\n", 13: "\\r", 26: "\\Z", 39: "\\'", 34: '\\"', 92: "\\\\"}


def _text(value: str) -> str:
    """A quoted SQL literal carrying ``value``'s UTF-8 bytes, each as one latin1 character."""
    return "'" + value.encode("utf-8").decode("latin1").translate(_ESCAPES) + "'"


def _optional_text(node: Any, field: str) -> str:
    return _text(getattr(node, field)) if node.HasField(field) else "NULL"


def _optional_int(node: Any, field: str) -> str:
    return str(int(getattr(node, field))) if node.HasField(field) else "NULL"
