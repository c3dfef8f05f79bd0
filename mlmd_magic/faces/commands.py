"""The subcommands shared by the ``%mlmd`` magic and the ``mlmd-magic`` console script.

One small function per subcommand behind the :data:`COMMANDS` router; each parses nothing
itself (argparse does) and delegates to the library. The magic and the CLI differ only in
their :class:`Host`: where the store comes from, and how a value is bound to a variable.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import functools
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from ..core.record import Record
from ..core.specs import evaluation_arguments
from ..core.sweeps import sweep_arguments
from ..core.values import KIND_ALIASES, normalise_kind, singular, split_kind, with_article
from ..errors import CommandError, MlmdMagicError, ValidationError
from ..store import Store
from . import cells
from .registry import ConnectionRegistry


class HelpShown(Exception):
    """``-h`` was given: the help text has been produced, nothing else to do."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class Host(Protocol):
    """What a subcommand needs from its caller (the magic or the CLI)."""

    registry: ConnectionRegistry

    def store(self) -> Store: ...

    def bind(self, name: str, value: Any) -> None: ...

    def settings(self) -> dict[str, tuple[Any, str]]:
        """The host's settings: ``{name: (current value, what it does)}``."""
        ...


@dataclass(frozen=True)
class Message:
    """A short text result (``connected to ...``), shown as text in every frontend."""

    text: str

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        from ..display.html import pre

        return pre(self.text)


class CommandParser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so errors become ``UsageError``s."""

    def error(self, message: str) -> Any:
        raise CommandError(f"{message}\n{self.format_usage().strip()}")

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        if status:
            raise CommandError((message or "").strip() or self.format_usage().strip())
        raise HelpShown(self.format_help())

    def print_help(self, file: Any = None) -> None:
        raise HelpShown(self.format_help())


Runner = Callable[[Host, argparse.Namespace], Any]


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    configure: Callable[[argparse.ArgumentParser], object]
    run: Runner
    magic_only: bool = False


_KIND_HELP = "record kind when a name is used by several kinds: datasource, scenario, experiment or policy"


def _ref(p: argparse.ArgumentParser, kind: bool = True) -> None:
    p.add_argument("ref", metavar="REF", help="NAME (latest version), NAME@N, or with its kind: policy:NAME[@N]")
    if kind:
        p.add_argument("--kind", help=_KIND_HELP)


# ---------------------------------------------------------------------------- runners


def _connect(host: Host, a: argparse.Namespace) -> Message:
    default = host.settings().get("default_uri", (None, ""))[0]
    conn = host.registry.connect(a.uri or default, alias=a.alias)
    note = f"; opened read-only: {conn.store.read_only_reason}" if conn.store.read_only else ""
    return Message(f"connected to {conn.store.uri} as {conn.alias!r} (current){note}")


def _connections(host: Host, a: argparse.Namespace) -> Message:
    rows = host.registry.connections()
    if not rows:
        return Message("no stores are connected; run %mlmd connect [URI]")
    width = max(len(alias) for alias, _, _ in rows)
    return Message("\n".join(f"{'*' if cur else ' '} {alias:<{width}}  {uri}" for alias, uri, cur in rows))


def _use(host: Host, a: argparse.Namespace) -> Message:
    conn = host.registry.use(a.alias)
    return Message(f"using {conn.store.uri} ({conn.alias!r})")


def _close(host: Host, a: argparse.Namespace) -> Message:
    alias = host.registry.close(a.alias)
    try:
        now = host.registry.current()
        return Message(f"closed {alias!r}; current store: {now.store.uri} ({now.alias!r})")
    except MlmdMagicError:
        return Message(f"closed {alias!r}; no store is connected now")


def _status(host: Host, a: argparse.Namespace) -> Message:
    store = host.store()
    counts = {kind: len(store.names(kind)) for kind in ("datasources", "scenarios", "experiments")}
    conn = host.registry.current()
    return Message(
        f"store {store.uri} ({conn.alias!r}): "
        + ", ".join(f"{n} {kind}" for kind, n in counts.items())
        + f"; {len(host.registry.connections())} connection(s) open"
    )


def check_variable(name: str) -> str:
    """``-o VAR`` must name a Python variable."""
    if not name.isidentifier():
        raise CommandError(f"-o needs a Python variable name, got {name!r}")
    return name


def _get(host: Host, a: argparse.Namespace) -> dict[str, Any]:
    if a.output:
        check_variable(a.output)
    store = host.store()
    kind = normalise_kind(a.kind) if a.kind else split_kind(a.ref)[0] or "experiments"
    getter = {"experiments": store.get_experiment, "scenarios": store.get_scenario,
              "datasources": store.get_datasource, "policies": store.get_policy}[kind]
    value = getter(a.ref)
    if a.output:
        host.bind(a.output, value)
    return value


_LISTED_KINDS = {*KIND_ALIASES, "run", "runs", "model", "models", "evaluation", "evaluations", "artifacts",
                 "executions"}


def _ls(host: Host, a: argparse.Namespace) -> Any:
    store = host.store()
    kind, type_name = a.kind, a.type
    where = a.where
    if getattr(a, "running", False):
        if normalise_kind_of_runs(kind) != "runs":
            raise CommandError("--running lists runs only: %mlmd ls runs --running")
        where = "state == 'RUNNING'" + (f" and ({where})" if where else "")
    if kind.lower() not in _LISTED_KINDS:
        # any artifact type of the store is a kind (TFX's Examples, Model, ...); then execution types
        known = {(t["kind"], t["name"]) for t in store.types()}
        if ("artifact", kind) in known:
            kind, type_name = "artifacts", a.kind
        elif any(k == "execution" and (n == kind or n.rsplit(".", 1)[-1] == kind) for k, n in known):
            kind, type_name = "executions", a.kind
    return store.ls(kind, where=where, limit=a.limit, all_versions=a.all_versions, offset=a.offset,
                      type=type_name, trials=a.trials)


def normalise_kind_of_runs(kind: str) -> str:
    """``run``/``runs`` -> ``runs``; anything else as it is."""
    return "runs" if kind.lower() in ("run", "runs") else kind


def _show(host: Host, a: argparse.Namespace) -> Any:
    if re.fullmatch(r"(?:artifact:|execution:)?[0-9]+", a.ref):  # an id: any tool's artifact or execution
        return host.store().show(a.ref)
    return host.store().record(a.ref, kind=a.kind)


def _types(host: Host, a: argparse.Namespace) -> Any:
    import pandas as pd

    rows = host.store().types(counts=True)
    frame = pd.DataFrame(rows, columns=["kind", "name", "ours", "count", "capped"])
    frame["count"] = [f"{n}+" if capped else str(n) for n, capped in zip(frame["count"], frame["capped"])]
    return frame.drop(columns=["capped"])


def _index_filters(host: Host, a: argparse.Namespace) -> Message:
    counts = host.store().index_filters()
    done = ", ".join(f"{n} {kind}" for kind, n in counts.items() if kind != "already" and n)
    if not done:
        return Message(f"nothing to do: all {counts['already']} experiment and scenario versions and models already "
                       "carry the values that make rare filters fast")
    return Message(f"gave {done} the values that make rare filters fast ({counts['already']} had them already)")


def _history(host: Host, a: argparse.Namespace) -> Any:
    return host.store().history(a.ref, kind=a.kind)


def _diff(host: Host, a: argparse.Namespace) -> Any:
    return host.store().diff(a.ref_a, a.ref_b, kind=a.kind)


def _export(host: Host, a: argparse.Namespace) -> Message:
    spec = host.store().export(a.ref, kind=a.kind)
    text = cells.dump_yaml(spec)
    if a.file:
        folder = os.path.dirname(os.path.abspath(a.file))
        if not os.path.isdir(folder):
            raise ValidationError(f"cannot write {a.file!r}: folder {folder!r} does not exist; create it first or "
                                  "choose another path")
        try:
            with open(a.file, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise ValidationError(f"cannot write {a.file!r}: {exc.strerror}") from None
        return Message(f"wrote {spec['kind']} {spec['name']} to {a.file}")
    return Message(text.rstrip("\n"))


# The most load_yaml (faces/cells.py) takes, in characters; a file is read to one past it, no further
_MAX_FILE = 1_000_000


def _read_yaml_file(path: str, wanted: str = "import reads a YAML file written by export",
                    smaller: str = ": split the records into smaller files") -> str:
    """The text of the regular file ``path``, read to at most one character past what
    :func:`cells.load_yaml` takes: a device (``/dev/zero``), a pipe or a larger file is refused
    before its contents fill the memory, and a FIFO with no writer does not block the open.
    ``wanted`` says, in the errors, what file the command reads; ``smaller``, how to make one
    that is too large smaller."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ValidationError(f"cannot read {path!r}: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValidationError(f"cannot read {path!r}: not a regular file (a device, a pipe or a folder); "
                                  f"{wanted}")
        with os.fdopen(fd, encoding="utf-8", closefd=False) as fh:
            text = fh.read(_MAX_FILE + 1)
    except UnicodeDecodeError:
        raise ValidationError(f"cannot read {path!r}: not UTF-8 text; {wanted}") from None
    except OSError as exc:
        raise ValidationError(f"cannot read {path!r}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(text) > _MAX_FILE:
        raise ValidationError(f"{path!r} is larger than {_MAX_FILE:,} characters; {wanted}{smaller}")
    return text


def _import(host: Host, a: argparse.Namespace) -> Message:
    docs = cells.load_yaml(_read_yaml_file(a.file), where=a.file)
    records = host.store().import_records(docs if isinstance(docs, list) else [docs], where=a.file)
    return Message("\n".join(f"{singular(record.kind)} {record.ref}: {record.summary()}" for record in records))


def parse_assignments(items: list[str] | None) -> dict[str, Any]:
    """``["epochs=3", "optimizer.name=sgd"]`` -> ``{"epochs": 3, "optimizer.name": "sgd"}`` (YAML values)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"--set takes KEY=VALUE, got {item!r}")
        out[key] = cells.load_yaml(value, where=f"the value of --set {key}")
    return out


def _train(host: Host, a: argparse.Namespace) -> Any:
    if a.output:
        check_variable(a.output)
    # --set only ever overrides parameters, whatever their names (workdir, force, progress, ...)
    overrides = parse_assignments(a.set)
    if a.background or a.on:
        started = host.store().train(a.ref, force=a.force, overrides=overrides, wait=False, on=a.on)
        if a.output:
            host.bind(a.output, started)
        return started  # `bg = %mlmd train ... --background` is the handle: bg.name, bg.wait(), bg.cancel()
    progress: Any = not a.quiet
    if a.log_loss and not a.quiet:
        from ..store import ProgressReporter

        progress = ProgressReporter(log_loss=True)
    # a stop raises RunCancelled, which says itself what became of the version --set gave
    run = host.store().train(a.ref, force=a.force, progress=progress, overrides=overrides)
    if a.output:
        host.bind(a.output, run)
    return run


def _evaluate(host: Host, a: argparse.Namespace) -> Any:
    if a.output:
        check_variable(a.output)
    spec: dict[str, Any] = {}
    if a.spec:
        text = _read_yaml_file(a.spec, "--spec reads a YAML file of slices, thresholds and class_names", "")
        spec = evaluation_arguments(cells.load_yaml(text, where=a.spec), where=a.spec)
    spec.update(getattr(a, "body", None) or {})
    if a.baseline:
        spec["baseline"] = a.baseline
    if a.data:
        spec["data"] = a.data
    if getattr(a, "policy", None):
        spec["policy"] = a.policy
    result = host.store().evaluate(a.target, **spec)
    if a.output:
        host.bind(a.output, result)
    return result


def _push(host: Host, a: argparse.Namespace) -> Any:
    pushed = host.store().push(a.model, to=a.to, force=a.force, policy=a.policy)
    if a.output:
        host.bind(check_variable(a.output), pushed)
    return pushed


def _explain(host: Host, a: argparse.Namespace) -> Any:
    key = a.target.removeprefix("evaluation:")
    store = host.store()
    if key.isdigit():
        if a.policy:
            raise ValidationError("--policy chooses among a model's evaluations; an evaluation id names one already")
        return store.evaluation(int(key)).explain(a.slice)
    return store.latest_evaluation(a.target, policy=a.policy).explain(a.slice)


def _card(host: Host, a: argparse.Namespace) -> Any:
    return host.store().model_card(a.model, to=a.to)


def _edit(host: Host, a: argparse.Namespace) -> Any:
    store = host.store()
    kind, ref = split_kind(a.ref)
    if kind is None:
        with store.unrecorded(), contextlib.suppress(MlmdMagicError):
            kind = store.kind_of(ref)
    if kind == "policies":
        from ..widgets import PolicyEditor

        return PolicyEditor(store, ref.split("@", 1)[0])
    if kind not in (None, "experiments"):
        raise ValidationError(f"the editor edits experiments and policies; {a.ref!r} is "
                              f"{with_article(singular(kind))} (change it with its cell magic, %%{singular(kind)})")
    from ..widgets import ExperimentEditor

    return ExperimentEditor(store, ref)


def _browse(host: Host, a: argparse.Namespace) -> Any:
    from ..widgets import StoreBrowser

    return StoreBrowser(host.store())


def _compare(host: Host, a: argparse.Namespace) -> Any:
    sweeps = [w for w in a.runs if w.startswith("sweep:")]
    if sweeps:
        if len(a.runs) > 1:
            raise CommandError("compare sweep:NAME takes one sweep and no runs; compare runs by their names")
        return host.store().sweep_results(sweeps[0][len("sweep:"):])
    comparison = host.store().compare(a.runs)
    comparison.log_loss = a.log_loss
    return comparison


def _watch(host: Host, a: argparse.Namespace) -> Any:
    """Follow a run until it ends: curves redrawn in place in a notebook, Keras-style lines in a
    terminal. Ctrl-C (or the stop button) stops watching, not the run."""
    import time

    store = host.store()
    progress = store.watch(a.run, log_loss=a.log_loss)
    notebook = getattr(host, "shell", None) is not None
    handle = None
    shown = 0
    try:
        while True:
            if notebook:
                from IPython.display import display

                if handle is None:
                    handle = display(progress, display_id=True)
                else:
                    handle.update(progress)
            else:
                if shown == 0:
                    print(progress.headline(), flush=True)
                for line in progress.epoch_lines(shown):
                    print(line, flush=True)
                shown = max((len(v) for v in progress.history.values()), default=shown)
            if not progress.running or a.once:
                break
            time.sleep(a.interval)
            progress = store.watch(progress.id, log_loss=a.log_loss)
    except KeyboardInterrupt:
        return Message(f"stopped watching run {progress.name}; it goes on ({progress.state})")
    if notebook:
        return None
    return Message(progress.headline())


def _cancel(host: Host, a: argparse.Namespace) -> Message:
    progress = host.store().cancel(a.run, wait_s=a.wait)
    if progress.running:
        return Message(f"asked run {progress.name} to stop; it has not yet (still RUNNING after {a.wait:g} s)")
    if progress.state == "CANCELED":  # as the training's own cell says it: one spelling
        took = progress.live.get("elapsed_s") if isinstance(progress.live, dict) else None
        took_text = f", {float(took):.0f} s" if isinstance(took, (int, float)) else ""
        return Message(f"run {progress.name} cancelled after {progress.epoch} of {progress.epochs} epochs{took_text}")
    return Message(f"run {progress.name} {progress.state} after epoch {progress.epoch}/{progress.epochs}")


def _reproduce(host: Host, a: argparse.Namespace) -> Any:
    if a.output:
        check_variable(a.output)
    report = host.store().reproduce(a.model, tolerance=a.tolerance, progress=not a.quiet)
    if a.output:
        host.bind(a.output, report)
    return report


def read_sweep_file(path: str) -> dict[str, Any]:
    """The keyword arguments of :meth:`Store.sweep` from a YAML file (the body of a ``%%sweep`` cell)."""
    body = cells.load_yaml(_read_yaml_file(path, "sweep -f reads a YAML file, the body of a %%sweep cell", ""),
                           where=path)
    return sweep_arguments(body, where=path)


def _sweep(host: Host, a: argparse.Namespace) -> Any:
    store = host.store()
    if a.file and a.worker:
        raise CommandError("sweep takes -f FILE (define and run) or --worker (join), not both")
    if a.file:
        spec = read_sweep_file(a.file)
        if a.trials is not None:
            spec["trials"] = a.trials
        if a.workers is not None:
            spec["workers"] = a.workers
        return store.sweep(a.name, **spec, progress=not a.quiet)
    return store.sweep_worker(a.name, trials=a.trials, workers=a.workers or 1, seed_offset=a.seed_offset,
                              progress=not a.quiet)


def _cfg_sweep(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="the sweep: NAME (latest version) or NAME@N")
    p.add_argument("-f", "--file", metavar="FILE", help="define (or continue) it from this YAML, the body of %%%%sweep")
    p.add_argument("--worker", action="store_true",
                   help="join the sweep: run the trials it still owes, sharing its search with other workers")
    p.add_argument("--trials", type=int, metavar="N", help="the trial budget (default: the sweep's)")
    p.add_argument("--workers", type=int, metavar="N", help="run N trials at once, in subprocesses")
    p.add_argument("--seed-offset", type=int, metavar="N", help=argparse.SUPPRESS)
    p.add_argument("--quiet", action="store_true", help="no training progress output")


def _lineage(host: Host, a: argparse.Namespace) -> Any:
    return host.store().lineage(a.ref, kind=a.kind)


def _help(host: Host, a: argparse.Namespace) -> Message:
    text = help_text(a.subcommand, magic=True)
    settings = host.settings()
    if settings and not a.subcommand:
        width = max(len(name) for name in settings)
        text += "\n\nSettings (%config MlmdMagics.NAME = VALUE; environment variables give the defaults):\n"
        text += "\n".join(f"  {name:<{width}}  = {value!r}\n  {'':<{width}}    {what}"
                           for name, (value, what) in settings.items())
    return Message(text)


COMMANDS: dict[str, Command] = {}


def _add(name: str, summary: str, configure: Callable[[argparse.ArgumentParser], object], run: Runner,
         magic_only: bool = False) -> None:
    COMMANDS[name] = Command(name, summary, configure, run, magic_only)


def _cfg_connect(p: argparse.ArgumentParser) -> None:
    p.add_argument("uri", nargs="?", metavar="URI",
                   help="sqlite:///path.sqlite, memory:// or mysql://user@host/db "
                        "(default: $MLMD_MAGIC_URI, else sqlite:///mlmd.sqlite)")
    p.add_argument("--alias", help="name for this connection (default: from the file or database name)")


def _cfg_ls(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", metavar="KIND", help="datasources, scenarios, experiments, policies, runs, models or "
                                                "evaluations; or any artifact or execution type of the store (e.g. "
                                                "TFX's Examples, Trainer: see types); or artifacts/executions with "
                                                "--type")
    p.add_argument("--where", help="filter, e.g. \"name ~ 't21-*' and epochs >= 5\"")
    p.add_argument("--limit", type=int, help="at most N rows")
    p.add_argument("--offset", type=int, default=0, help="skip the first N rows (pages)")
    p.add_argument("--type", help="the MLMD type to list with KIND artifacts or executions")
    p.add_argument("--all-versions", action="store_true", help="every version, not only the latest")
    p.add_argument("--trials", action="store_true", help="experiments: the sweeps' trials too, each marked")
    p.add_argument("--running", action="store_true", help="runs only: those running now")


def _cfg_get(p: argparse.ArgumentParser) -> None:
    _ref(p, kind=False)
    p.add_argument("--kind", help="experiment (default), scenario or datasource")
    p.add_argument("-o", "--output", metavar="VAR", help="also bind the dict to this variable")


def _cfg_diff(p: argparse.ArgumentParser) -> None:
    p.add_argument("ref_a", metavar="REF_A")
    p.add_argument("ref_b", metavar="REF_B")
    p.add_argument("--kind", help=_KIND_HELP)


def _cfg_export(p: argparse.ArgumentParser) -> None:
    _ref(p)
    p.add_argument("-f", "--file", help="write the YAML to this file instead of showing it")


_add("connect", "open a store and make it current", _cfg_connect, _connect, magic_only=True)
_add("connections", "list the open stores (* marks the current one)", lambda p: None, _connections,
     magic_only=True)
_add("use", "make another open store current", lambda p: p.add_argument("alias", metavar="ALIAS"), _use,
     magic_only=True)
_add("close", "close a store (default: the current one)",
     lambda p: p.add_argument("alias", nargs="?", metavar="ALIAS"), _close, magic_only=True)
_add("status", "which store is current and what it holds", lambda p: None, _status)
_add("get", "the resolved experiment dict (p = %mlmd get t21@2)", _cfg_get, _get)
_add("ls", "a table of records, runs, models, evaluations, or any type's artifacts or executions", _cfg_ls, _ls)
_add("show", "one record, or any tool's artifact (ID, artifact:ID) or execution (execution:ID)",
     lambda p: (p.add_argument("ref", metavar="REF", help="NAME (latest version), NAME@N, an artifact id, "
                                                         "artifact:ID or execution:ID"),
                p.add_argument("--kind", help=_KIND_HELP)), _show)
_add("types", "the store's artifact, execution and context types (TFX's too) with counts", lambda p: None,
     _types)
_add("history", "every version of a record", _ref, _history)
_add("index-filters", "once per store written before rare filters were fast: give older versions and models the "
                      "values filters use (resumable, recorded; contents and hashes unchanged)", lambda p: None,
     _index_filters)
_add("diff", "what differs between two versions or two records", _cfg_diff, _diff)
_add("export", "a record as YAML (for import elsewhere)", _cfg_export, _export)
_add("import", "register the record(s) of a YAML file written by export",
     lambda p: p.add_argument("file", metavar="FILE"), _import)
def _cfg_train(p: argparse.ArgumentParser) -> None:
    _ref(p, kind=False)
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a parameter for this run (a new experiment version); repeatable")
    p.add_argument("--force", action="store_true", help="train even if an identical run exists")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--log-loss", action="store_true", help="draw the loss curve on a log scale")
    p.add_argument("--background", action="store_true",
                   help="train in a detached process of its own and return at once (follow it with watch)")
    p.add_argument("--on", metavar="ray://HOST:PORT", help="submit the training to this Ray cluster "
                   "(needs a MySQL store and pip install 'mlmd-magic[ray]')")
    p.add_argument("-o", "--output", metavar="VAR", help="also bind the run (or the background run) to this variable")


def configure_evaluate(p: argparse.ArgumentParser, spec: bool = True) -> None:
    p.add_argument("target", metavar="MODEL",
                   help="an experiment (its latest trained model), a run EXPERIMENT@N#K, model:ID or run:ID")
    p.add_argument("--baseline", metavar="MODEL", help="compare against this model")
    p.add_argument("--data", help="split (default test), or DATASOURCE[@N]:SPLIT")
    p.add_argument("--policy", metavar="NAME[@N]", help="evaluate under this release policy's slices and thresholds")
    if spec:
        p.add_argument("--spec", metavar="FILE", help="YAML file with slices, thresholds, class_names")
    p.add_argument("-o", "--output", metavar="VAR", help="also bind the evaluation to this variable")


_add("train", "train an experiment with the Keras trainer, on record", _cfg_train, _train)
_add("evaluate", "evaluate a model on slices against thresholds (and a baseline)", configure_evaluate, _evaluate)
def _cfg_push(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="model:ID, a run EXPERIMENT@N#K, or an experiment (its latest model)")
    p.add_argument("--to", required=True, metavar="DIR", help="serving folder: the SavedModel goes to DIR/<version>/")
    p.add_argument("--policy", metavar="NAME[@N]", help="the policy whose latest verdict must be blessed: NAME "
                                                        "its current version, NAME@N pinned (default: the newest "
                                                        "evaluation under any policy, at its current version)")
    p.add_argument("--force", action="store_true", help="push even if not blessed (records who overrode which checks)")
    p.add_argument("-o", "--output", metavar="VAR", help="also bind the push to this variable")


def _cfg_card(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="model:ID, a run EXPERIMENT@N#K, or an experiment (its latest model)")
    p.add_argument("--to", metavar="DIR", help="where model_card.html/.json go (default: the model's run folder)")


_add("push", "release a blessed model as a TF Serving SavedModel DIR/<version>/ with its model card", _cfg_push,
     _push)
_add("explain", "why an evaluation's verdict is what it is: failed checks, confusion matrices, where examples went",
     lambda p: (p.add_argument("target", metavar="EVALUATION|MODEL",
                               help="an evaluation id (ls evaluations) or evaluation:ID; or a model (model:ID, a run "
                                    "EXPERIMENT@N#K, an experiment): its newest evaluation"),
                p.add_argument("--policy", metavar="NAME[@N]", help="with a model: its newest evaluation under this "
                                                                    "policy"),
                p.add_argument("--slice", metavar="NAME", help="explain this slice (default: every slice with a "
                                                               "failed check)")), _explain)
_add("card", "the model card of a model (model_card.html and model_card.json)", _cfg_card, _card)
_add("edit", "the experiment editor panel, or the policy editor (edit policy:NAME)",
     lambda p: _ref(p, kind=False), _edit, magic_only=True)
_add("browse", "the store browser panel", lambda p: None, _browse, magic_only=True)
_RUN_HELP = "a run: EXPERIMENT@N#K (its K-th run), EXPERIMENT@N (its latest) or run:ID"


def _cfg_compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="runs: EXPERIMENT@N#K (its K-th run), EXPERIMENT@N (its latest), or run ids (see ls runs); "
                        "or sweep:NAME for a sweep's trials")
    p.add_argument("--log-loss", action="store_true", help="draw the loss curves on a log scale")


def _cfg_watch(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN", help=_RUN_HELP)
    p.add_argument("--interval", type=float, default=2.0, help="seconds between looks at the store (default 2)")
    p.add_argument("--once", action="store_true", help="show where it stands now and return")
    p.add_argument("--log-loss", action="store_true", help="draw the loss curve on a log scale")


def _cfg_cancel(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN", help=_RUN_HELP)
    p.add_argument("--wait", type=float, default=60.0, help="seconds to wait for it to stop (default 60)")


def _cfg_reproduce(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="model:ID, run:ID or EXPERIMENT@N#K")
    p.add_argument("--tolerance", type=float, default=None,
                   help="largest metric difference still called reproduced (default 1e-6 on CPU, 0.02 on GPUs)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("-o", "--output", metavar="VAR", help="also bind the report to this variable")


_add("compare", "training runs side by side: parameters, metrics, curves", _cfg_compare, _compare)
_add("watch", "follow a run (of any process or machine) until it ends: curves and epochs", _cfg_watch, _watch)
_add("cancel", "stop a running training, wherever it runs (recorded CANCELED, no model)", _cfg_cancel, _cancel)
_add("reproduce", "train a model's run again from its record and say what differs", _cfg_reproduce, _reproduce)
_add("sweep", "run a sweep's trials (-f FILE defines it; --worker joins it from any machine)", _cfg_sweep, _sweep)
_add("lineage", "where a record or model came from and what came of it, as a graph",
     lambda p: (p.add_argument("ref", metavar="REF", help="NAME[@N], model:ID or run:ID"),
                p.add_argument("--kind", help=_KIND_HELP)), _lineage)
_add("help", "help on every subcommand, or on one",
     lambda p: p.add_argument("subcommand", nargs="?", metavar="SUBCOMMAND"), _help, magic_only=True)


def build_parser(prog: str, magic: bool) -> argparse.ArgumentParser:
    """The parser of ``%mlmd`` (``magic=True``) or of the ``mlmd-magic`` console script."""
    return _parsers(prog, magic)[0]


@functools.cache
def _parsers(prog: str, magic: bool) -> tuple[CommandParser, dict[str, CommandParser]]:
    """The parser and each subcommand's own parser, built once per form: setting up a dozen
    subparsers costs more than parsing a line."""
    parser = CommandParser(prog=prog, add_help=not magic,
                           description="Data sources, scenarios and experiments on record in ML Metadata.")
    if not magic:
        parser.add_argument("--uri", help="store URI (default: $MLMD_MAGIC_URI, else sqlite:///mlmd.sqlite)")
        parser.add_argument("--json", action="store_true", help="print results as JSON (tables as lists of rows)")
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=CommandParser)
    choices = {}
    for cmd in COMMANDS.values():
        if cmd.magic_only and not magic:
            continue
        choices[cmd.name] = p = sub.add_parser(cmd.name, help=cmd.summary, description=cmd.summary)
        cmd.configure(p)
    return parser, choices


def help_text(subcommand: str | None = None, magic: bool = True) -> str:
    """Help generated from the parsers: every subcommand with its usage, or one in full."""
    prog = "%mlmd" if magic else "mlmd-magic"
    choices = _parsers(prog, magic)[1]
    if subcommand:
        if subcommand not in choices:
            raise CommandError(_unknown(subcommand, list(choices)))
        return choices[subcommand].format_help()
    lines = [f"{prog} SUBCOMMAND [options] — data sources, scenarios and experiments on record in MLMD", ""]
    if not magic:
        lines = [f"{prog} [--uri URI] [--json] SUBCOMMAND [options] — data sources, scenarios and experiments "
                 "on record in MLMD", "",
                 "  --uri URI   the store (default: $MLMD_MAGIC_URI, else sqlite:///mlmd.sqlite)",
                 "  --json      print results as JSON (tables as lists of rows)", ""]
    for name, p in choices.items():
        usage = p.format_usage().replace("usage: ", "").strip()
        lines.append(f"  {usage}")
        lines.append(f"      {COMMANDS[name].summary}")
    if magic:
        lines += [
            "",
            "Cell magics (YAML body):",
            "  %%datasource NAME     uri, format (tfrecord|csv|npz), splits, label[, description, features]; or "
            "from_artifact: ID (a TFX Examples artifact), label",
            "  %%scenario NAME       model, params (or the parameters as top-level keys)[, description]",
            "  %%experiment NAME [-o VAR] [--run]   datasource, scenario[, overrides, description]",
            "  %%evaluate MODEL [--baseline MODEL] [--data SPLIT] [--policy NAME] [-o VAR]   slices, thresholds"
            "[, class_names]",
            "  %%policy NAME         thresholds[, slices, owner, description]",
            "  %%sweep NAME [-o VAR]  experiment, objective, space[, sampler, trials, workers, seed, description]",
            "  %%train NAME [--set KEY=VALUE ...] [-o VAR]  your own training code, with params and run bound",
            "",
            f"Run '{prog} help SUBCOMMAND' or '{prog} SUBCOMMAND -h' for the options of one subcommand.",
        ]
    return "\n".join(lines)


def _unknown(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown subcommand {word!r}{hint} Known: {', '.join(known)}"


def _check_one_uri(words: list[str]) -> None:
    """``connect`` takes one URI: a second bare word is most likely the rest of a password with a
    space in it, which argparse would echo ("unrecognized arguments: ...")."""
    bare = [w for i, w in enumerate(words) if not w.startswith("-") and (i == 0 or words[i - 1] != "--alias")]
    if len(bare) > 1:
        raise CommandError("connect takes one URI (and --alias NAME), but the line holds more words: if the "
                           "password holds a space, quote the URI ('...') or write the space as %20")


def dispatch(host: Host, argv: list[str], prog: str, magic: bool) -> Any:
    """Parse ``argv`` and run its subcommand; the result is for the caller to display.

    Raises
    ------
    MlmdMagicError
        Every error a user can cause, with a message that says what to do.
    HelpShown
        When ``-h`` was asked for.
    """
    if not argv:
        raise CommandError(f"{prog} needs a subcommand; run '{prog} help' to see them")
    parser = build_parser(prog, magic)
    known = [n for n, c in COMMANDS.items() if magic or not c.magic_only]
    if argv[0] not in known and not argv[0].startswith("-"):
        raise CommandError(_unknown(argv[0], known))
    if argv[0] == "connect":
        _check_one_uri(argv[1:])
    args = parser.parse_args(argv)
    if args.command is None:
        raise CommandError(f"{prog} needs a subcommand; run '{prog} help' to see them")
    return COMMANDS[args.command].run(host, args)


def as_text(value: Any) -> str:
    """How the CLI prints a result."""
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return value.to_string(index=False) if not value.empty else "(no records)"
    if isinstance(value, dict):
        return json.dumps(value, indent=2, ensure_ascii=False)
    if isinstance(value, Record):  # a terminal shows the whole record (a notebook folds it)
        return value.full_text()
    return repr(value)


def as_json(value: Any) -> str:
    """How the CLI prints a result with ``--json``: tables as lists of rows, records and results
    as their plain values, messages as ``{"message": ...}``."""
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        plain: Any = json.loads(value.to_json(orient="records", date_format="iso"))
    elif isinstance(value, Message):
        plain = {"message": value.text}
    elif isinstance(value, Record):
        plain = {"kind": singular(value.kind), "ref": value.ref, "status": value.status, **value.to_dict()}
    elif hasattr(value, "to_dict"):
        plain = value.to_dict()
    else:
        plain = value
    return json.dumps(plain, indent=2, ensure_ascii=False, default=str)
