"""The action recorder: every action is one MLMD execution, written with its events and contexts
in a single ``put_execution`` call — one transaction.

An :class:`Action` collects what an action read (INPUT events), wrote (OUTPUT events, new
artifacts) and which contexts it belongs to; :meth:`Recorder.action` records it when the block
ends — COMPLETE or CACHED, FAILED with the error, CANCELED on Ctrl-C — with the cell source,
execution count and notebook from :mod:`mlmd_magic.backend.session`. Everything goes through
ml-metadata's own API: MLMD's checks on ids and types stand in for the foreign keys its schema
does not have.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..core.values import canonical_json
from ..errors import MlmdMagicError, StoreError
from . import secrets as _secrets
from . import session as _session
from .properties import drop_empty_properties, set_properties
from .storeguard import StoreGuard
from .types import TypeIds, full, protos

__all__ = ["READ_ACTIONS", "Action", "Conflict", "Recorder"]

MAX_TEXT = 100_000
# actions that only read: left unrecorded inside Store.unrecorded()
READ_ACTIONS = frozenset({"FetchExperiment", "FetchDataSource", "FetchScenario", "ListRecords", "ShowHistory",
                          "DiffRecords", "ShowLineage", "CompareRuns", "FetchPolicy"})


@dataclass
class Action:
    """What one action read and wrote, collected before its single ``put_execution``."""

    type_short: str
    arguments: dict[str, Any]
    inputs: list[Any] = field(default_factory=list)
    outputs: list[Any] = field(default_factory=list)
    contexts: list[tuple[str, str]] = field(default_factory=list)  # (context type, name)
    outcome: str = ""
    state: str = "COMPLETE"
    committed: bool = False
    execution_id: int | None = None
    output_ids: list[int] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)
    inputs_written: bool = False  # set once a RUNNING execution has recorded its inputs
    started: float = field(default_factory=time.perf_counter)
    external_id: str = ""  # unique per action: makes retrying its write idempotent
    recorded: bool = True  # False for a read inside Store.unrecorded(): nothing is written
    name: str = ""  # the execution's name, unique within its type (a run's EXPERIMENT@N#K)


_STATES = {"RUNNING": 2, "COMPLETE": 3, "FAILED": 4, "CACHED": 5, "CANCELED": 6}  # MLMD's Execution.State numbers


class Conflict(Exception):
    """A unique key (a record's ``NAME@N``, an external id) was taken by a concurrent writer."""


class Recorder:
    """Writes actions into one MLMD store; knows the ``mlmd_magic.*`` type ids and context ids.

    Parameters
    ----------
    mlmd : the (retrying) ``ml_metadata`` ``MetadataStore``.
    types : the registered type ids.
    label : the store's masked URI, for messages.
    guard : the checks made before acting (read-only, removed or damaged files).
    """

    def __init__(self, mlmd: Any, types: TypeIds, label: str = "", guard: StoreGuard | None = None) -> None:
        self.mlmd = mlmd
        self.types = types
        self.label = label  # the store's masked URI, for messages
        self.guard_checks = guard if guard is not None else StoreGuard(label)
        self.closed = False
        self._context_ids: dict[tuple[str, str], int] = {}
        self._context_refs: dict[tuple[str, str], Any] = {}  # Context messages naming them by id

    def close(self) -> None:
        """No action can be recorded afterwards."""
        self.closed = True
        self.mlmd = None

    def check_open(self) -> None:
        """Raise :class:`StoreError` when the store is closed."""
        if self.closed:
            raise StoreError(f"the store {self.label} is closed; connect again with mlmd_magic.connect()")

    # ---------------------------------------------------------------- contexts

    def context_id(self, type_short: str, name: str) -> int | None:
        """Id of context ``name`` of type ``mlmd_magic.TYPE_SHORT`` (an indexed lookup, cached)."""
        key = (type_short, name)
        if key not in self._context_ids:
            ctx = self.mlmd.get_context_by_type_and_name(full(type_short), name)
            if ctx is None:
                return None
            self._context_ids[key] = ctx.id
        return self._context_ids[key]

    def remember_context(self, type_short: str, name: str, context_id: int) -> None:
        """Cache a context id found while reading."""
        if self._context_ids.get((type_short, name)) != context_id:
            self._context_refs.pop((type_short, name), None)
            self._context_ids[(type_short, name)] = context_id

    def forget_context(self, type_short: str, name: str) -> None:
        """Drop a cached context id (a write that lost a race looks again)."""
        self._context_ids.pop((type_short, name), None)
        self._context_refs.pop((type_short, name), None)

    # ---------------------------------------------------------------- actions

    def action(self, type_short: str, arguments: dict[str, Any]) -> contextlib.AbstractContextManager[Action]:
        """Run one action; record it as COMPLETE/CACHED, or as FAILED with its error.

        Reads (:data:`READ_ACTIONS`) inside :func:`mlmd_magic.backend.session.unrecorded_reads`
        run the same code and record nothing.
        """
        act = Action(type_short, arguments)
        act.recorded = type_short not in READ_ACTIONS or _session.reads_recorded()
        return _ActionScope(self, act)

    @contextlib.contextmanager
    def guard(self, act: Action) -> Iterator[None]:
        """Record ``act`` as FAILED (CANCELED on Ctrl-C) if the body raises; translate foreign errors."""
        self.check_open()
        self.guard_checks.before_action(act.type_short)
        try:
            yield
        except BaseException as exc:
            translated = _failure(self, act, exc)
            if translated is None:
                raise
            raise translated from None

    def commit(self, act: Action, error: BaseException | None = None) -> None:
        """Write ``act`` (a first write, or an update of its execution) in one ``put_execution``.

        Raises
        ------
        Conflict
            When a unique key it writes (``NAME@N``) was taken by another writer.
        StoreError
            When the store rejects the write.
        """
        pb = protos()
        if not act.recorded or self.guard_checks.read_only:
            # a read left unrecorded; or a read-only store, which records nothing (writes were refused)
            act.committed = True
            return
        self.guard_checks.check_file()
        sess = _session.current_session()
        execution = self.execution_of(act, error)
        progress_update = act.execution_id is not None
        for art in act.inputs + act.outputs:
            if art.id:  # read from the store, where reading an absent property inserts it; a new
                drop_empty_properties(art)  # one is built by set_properties (MLMD refuses an empty one)
        events = []
        seen: set[int] = set()
        for art in [] if act.inputs_written else act.inputs:
            if art.id in seen:  # diff of a version with itself: one INPUT event is enough
                continue
            seen.add(art.id)
            events.append((art, pb.Event(type=pb.Event.INPUT)))
        for art in act.outputs:
            events.append((art, pb.Event(type=pb.Event.OUTPUT)))
        keys = [("NotebookSession", sess.id), *list(dict.fromkeys(act.contexts))]
        contexts = []
        for key in keys:
            context = self._context_refs.get(key)  # a context met before: by id, built once
            if context is None:
                short, name = key
                context = pb.Context(type_id=self.types.contexts[short], name=name)
                cid = self._context_ids.get(key)
                if cid is not None:
                    context.id = cid
                    self._context_refs[key] = context  # put_execution copies it; nothing changes it
                elif short == "NotebookSession":
                    # who ran it is the same for every action of a kernel: written once, on its context
                    set_properties(context, user=sess.user, host=sess.host, pid=sess.pid, started=sess.started,
                                   notebook=sess.notebook, versions=canonical_json(_session.package_versions()))
            contexts.append(context)
        try:
            exec_id, artifact_ids, context_ids = self._put_execution(execution, events, contexts)
        except _Duplicate as exc:
            if act.execution_id is None and self._already_recorded(act):
                return  # a retry after a commit whose answer was lost: it is in the store
            raise Conflict(str(exc)) from None
        for key, cid in zip(keys, context_ids):
            if self._context_ids.get(key) != cid:
                self._context_refs.pop(key, None)
                self._context_ids[key] = cid
        act.committed = True
        act.execution_id = exec_id
        act.output_ids = list(artifact_ids[len(events) - len(act.outputs):])
        if act.type_short not in READ_ACTIONS and not (progress_update and act.state == "RUNNING"):
            # a new row, or its final state; a training's per-epoch progress is not worth a refresh
            _session.notify_write(self.label, act.type_short)

    def execution_of(self, act: Action, error: BaseException | None = None) -> Any:
        """The execution ``act`` is written as, with every property (MLMD replaces an execution's
        properties as a whole on an update); no store is touched. A running training hands it to
        the thread that writes its progress."""
        pb = protos()
        ctx = _session.current_action()
        execution = pb.Execution(type_id=self.types.executions[act.type_short],
                                 last_known_state=_STATES[act.state])
        if act.execution_id is not None:
            execution.id = act.execution_id
        set_properties(
            execution,
            source=clip(ctx.source),
            duration_s=time.perf_counter() - act.started,
            # "created"/"unchanged" is what COMPLETE/CACHED already say; each property is a row
            outcome=act.outcome if act.outcome not in ("created", "unchanged") else None,
            # a cell's source already says what was asked; API calls record their arguments
            arguments=None if ctx.source else clip(_secrets.redact(_arguments_json(act.arguments))),
            execution_count=ctx.execution_count,
            notebook=ctx.notebook or _session.current_session().notebook,
            error=clip(_secrets.redact(f"{type(error).__name__}: {error}")) if error is not None else None,
        )
        if act.properties:
            set_properties(execution, **act.properties)
        if not act.external_id:
            # uuid4 draws from os.urandom: a notebook's random.seed(42) or a fork never repeats one
            act.external_id = f"mlmd_magic:{uuid.uuid4().hex}"
        execution.external_id = act.external_id
        if act.name:
            execution.name = act.name
        return execution

    def _put_execution(self, execution: Any, events: list[tuple[Any, Any]], contexts: list[Any]
                       ) -> tuple[int, list[int], list[int]]:
        try:
            return self.mlmd.put_execution(  # type: ignore[no-any-return]
                execution, events, contexts,
                reuse_context_if_already_exist=True,
                reuse_artifact_if_already_exist_by_external_id=False,
                force_reuse_context=True,
            )
        except Exception as exc:
            from ml_metadata import errors as mlmd_errors  # imported when needed: most writes succeed

            if isinstance(exc, mlmd_errors.AlreadyExistsError):
                raise _Duplicate(str(exc)) from None
            if isinstance(exc, mlmd_errors.StatusError):
                raise self.guard_checks.damaged(exc) or StoreError(
                    f"the store rejected the action: {_secrets.redact(str(exc))}") from None
            raise

    def _already_recorded(self, act: Action) -> bool:
        """Whether this action's execution (by its external id) was committed after all: a retry
        whose first try's answer was lost.

        The execution found counts as this action's only when it is of the action's type and
        belongs to every record context the action names (the record whose version it writes).

        Raises
        ------
        StoreError
            When an execution with that external id exists for something else.
        """
        from ml_metadata import errors as mlmd_errors
        from ml_metadata.proto import metadata_store_pb2 as pb

        try:
            (execution,) = self.mlmd.get_executions_by_external_ids([act.external_id])
        except (mlmd_errors.NotFoundError, ValueError):
            return False
        expected = self.types.executions[act.type_short]
        missing: list[tuple[str, str]] = []
        if execution.type_id == expected:
            records = [key for key in dict.fromkeys(act.contexts) if key[0] != "NotebookSession"]
            if records:
                found = {(c.type_id, c.name) for c in self.mlmd.get_contexts_by_execution(execution.id)}
                missing = [(short, name) for short, name in records
                           if (self.types.contexts[short], name) not in found]
        if execution.type_id != expected or missing:
            kind = execution.type or next(
                (t.name for t in self.mlmd.get_execution_types_by_id([execution.type_id])), f"id {execution.type_id}")
            belongs = "" if not missing else \
                f", which does not belong to {', '.join(f'{short} {name!r}' for short, name in missing)}"
            raise StoreError(
                f"an execution with external id {act.external_id!r} already exists for something else (execution "
                f"{execution.id} of type {kind}{belongs}), so this {full(act.type_short)} was not recorded; an "
                "external id names one action only: give this one another (or none, and one is made)")
        events = self.mlmd.get_events_by_execution_ids([execution.id])
        act.committed, act.execution_id = True, execution.id
        act.output_ids = [e.artifact_id for e in events if e.type == pb.Event.OUTPUT]
        return True


def _failure(recorder: Recorder, act: Action, exc: BaseException) -> Exception | None:
    """Record ``act`` as FAILED (CANCELED on Ctrl-C) after ``exc``; the error to raise instead
    of ``exc`` (None: ``exc`` itself)."""
    already = act.committed and act.state in ("CANCELED", "FAILED")
    act.state = "CANCELED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
    act.outcome = "canceled" if act.state == "CANCELED" else "failed"
    act.outputs = []  # nothing new is written by a failed action
    act.inputs = [a for a in act.inputs if a.id]
    if not already:
        with contextlib.suppress(Exception):
            recorder.commit(act, error=exc)
    if isinstance(exc, MlmdMagicError) or not isinstance(exc, Exception):
        return None
    return recorder.guard_checks.damaged(exc) or StoreError(f"{type(exc).__name__}: {_secrets.redact(str(exc))}")


class _ActionScope:
    """The block of :meth:`Recorder.action` (a class, not a generator: one per action): checks on
    entering, then commits ``act`` — or records it as failed, as :meth:`Recorder.guard` does."""

    __slots__ = ("act", "recorder")

    def __init__(self, recorder: Recorder, act: Action) -> None:
        self.recorder, self.act = recorder, act

    def __enter__(self) -> Action:
        self.recorder.check_open()
        self.recorder.guard_checks.before_action(self.act.type_short)
        return self.act

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            if self.act.committed:
                return
            try:
                self.recorder.commit(self.act)
                return
            except BaseException as failure:
                translated = _failure(self.recorder, self.act, failure)
                if translated is None:
                    raise
                raise translated from None
        translated = _failure(self.recorder, self.act, exc)
        if translated is not None:
            raise translated from None
        # else ``exc`` goes on as it is


class _Duplicate(Exception):
    """A write found a unique key (name@version, an external id) taken."""


def clip(text: str) -> str:
    """``text`` cut to :data:`MAX_TEXT` characters, saying how many were left out."""
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + f"... [{len(text) - MAX_TEXT} more characters]"


def _arguments_json(arguments: dict[str, Any]) -> str:
    """An API call's arguments as canonical JSON (anything JSON cannot hold as its ``str``)."""
    try:
        return canonical_json(arguments, default=str)
    except (TypeError, ValueError):
        return canonical_json({k: repr(v)[:1000] for k, v in arguments.items()})
