"""The IPython magics: ``%mlmd`` and the ``%%datasource`` / ``%%scenario`` / ``%%experiment`` cells.

They parse and delegate: subcommands live in :mod:`mlmd_magic.faces.commands` (shared with the
CLI), YAML bodies in :mod:`mlmd_magic.faces.cells`, the work in the library. Every library
call runs inside :func:`~mlmd_magic.store.session.action_context`, so its MLMD execution
carries the cell's source (redacted), execution count and notebook path. Errors reach the
user as ``UsageError`` — a message, no traceback.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
from typing import Any, Callable, TypeVar

from IPython.core.completer import SimpleCompletion, context_matcher
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, needs_local_scope, no_var_expand
from IPython.utils.text import DollarFormatter
from traitlets import Bool, Float, Unicode, default, observe

from ..core.names import NAME_RE, check_name
from ..core.specs import evaluation_arguments
from ..core.sweeps import sweep_arguments
from ..core.values import KIND_ALIASES, normalise_kind
from ..errors import CommandError, MlmdMagicError, RunCancelled
from ..store import Store, default_uri
from ..store import secrets as _secrets
from ..store import session as _session
from . import cells
from . import commands as _commands
from .registry import REGISTRY, ConnectionRegistry

F = TypeVar("F", bound=Callable[..., Any])
# The raw source of the cell being run, from IPython's pre_run_cell event: present even
# when a frontend runs cells without storing them in the history (nbval does).
_RUNNING_CELL: dict[str, str] = {}


def _remember_cell(info: Any) -> None:
    _RUNNING_CELL["raw"] = str(getattr(info, "raw_cell", "") or "")
_CELL_MAGICS = ("datasource", "scenario", "experiment", "evaluate", "policy", "sweep", "train")
_REF_SUBCOMMANDS = ("get", "show", "history", "diff", "export", "train", "evaluate", "edit", "lineage", "push",
                    "card", "watch", "cancel", "reproduce")
# The magics expand $name and {expr} in their first line themselves (see MlmdMagics._expand)
_EXPAND_LIMIT = 4_096
_LINE_LIMIT = 100_000  # shlex splits in linear time, about 1.4 us a character
_FORMATTER = DollarFormatter()


def split_line(line: str) -> list[str]:
    """A magic's line split into words by :func:`shlex.split`, for lines of up to 100,000 characters."""
    if len(line) > _LINE_LIMIT:
        raise CommandError(f"the line holds more than {_LINE_LIMIT:,} characters; put long values in a cell "
                           "body (%%experiment, %%scenario) or a file")
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise CommandError(f"cannot split the line into words: {exc}") from None


class _Said:
    """An exception's rendering in IPython (``_render_traceback_``): one plain line, every time."""

    def __init__(self, line: str) -> None:
        self.line = line

    def __call__(self) -> list[str]:
        return [self.line]


class _OneLine:
    """An exception's rendering in IPython (its ``_render_traceback_`` protocol): one line the
    first time, then gone, so that ``%tb`` shows the whole traceback."""

    def __init__(self, exc: BaseException, line: str) -> None:
        self.exc, self.line = exc, line

    def __call__(self) -> list[str]:
        with contextlib.suppress(AttributeError):
            del self.exc._render_traceback_  # type: ignore[attr-defined]
        return [f"\x1b[0;31m{self.line}\x1b[0m"]


def _user_errors(fn: F) -> F:
    """Turn library errors into ``UsageError`` (message only, no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _commands.HelpShown as shown:
            print(shown.text)
            return None
        except MlmdMagicError as exc:
            raise UsageError(_secrets.redact(str(exc))) from None
        except RunCancelled as exc:
            # A deliberate stop is no error: the stop is raised on, so the rest of the cell and the
            # cells queued after it do not run, as after any interrupt, and IPython shows only what
            # _render_traceback_ gives: its one calm line, once.
            exc._render_traceback_ = _Said(_secrets.redact(str(exc)))  # type: ignore[attr-defined]
            raise
        except UsageError as exc:
            raise UsageError(_secrets.redact(str(exc))) from None
        except Exception as exc:  # a bug of ours: one line, and how to see the traceback to report it
            if args and getattr(args[0], "traceback", False):
                raise
            what = _secrets.redact(f"{type(exc).__name__}: {exc}").splitlines()[0][:300]
            try:
                exc._render_traceback_ = _OneLine(  # type: ignore[attr-defined]
                    exc, f"unexpected {what} — a bug of mlmd-magic; %tb shows its traceback for a report "
                    "(or %config MlmdMagics.traceback = True)")
            except (AttributeError, TypeError):  # an exception that takes no attribute: its own traceback
                pass
            raise

    return wrapper  # type: ignore[return-value]


# The notebook Jupyter started this kernel for: set in its environment at launch, read once
_SERVER_NOTEBOOK = os.environ.get("JPY_SESSION_NAME") or ""


@magics_class
class MlmdMagics(Magics):
    """``%mlmd``, ``%%datasource``, ``%%scenario``, ``%%experiment``, ``%%evaluate``, ``%%sweep`` and ``%%train``."""

    registry: ConnectionRegistry = REGISTRY

    # Settings, jupysql's way: %config MlmdMagics.runs_dir = "/data/runs". Their environment
    # variables stay the defaults; the store options are shared with every store opened here.
    default_uri = Unicode(help="the store %mlmd connect opens without a URI "
                               "(default: $MLMD_MAGIC_URI, else sqlite:///mlmd.sqlite)").tag(config=True)
    runs_dir = Unicode(None, allow_none=True,
                       help="where run folders go (default: $MLMD_MAGIC_RUNS_DIR, else beside a SQLite store)"
                       ).tag(config=True)
    stale_run_after_s = Float(None, allow_none=True,
                              help="a RUNNING training without a heartbeat for this long is marked FAILED "
                                   "(default: $MLMD_MAGIC_STALE_RUN_AFTER_S, else 10 minutes)").tag(config=True)

    traceback = Bool(False, help="show the whole traceback of an unexpected error (a bug of mlmd-magic) "
                                 "instead of one line").tag(config=True)

    @default("default_uri")
    def _default_uri(self) -> str:
        return default_uri()

    @observe("runs_dir", "stale_run_after_s")
    def _share_options(self, change: Any) -> None:
        setattr(self.registry.options, change["name"], change["new"])

    # -- what the shared subcommands need from their host
    def store(self) -> Store:
        return self.registry.current().store

    def settings(self) -> dict[str, tuple[Any, str]]:
        return {name: (getattr(self, name), str(trait.help))
                for name, trait in self.traits(config=True).items()}

    def bind(self, name: str, value: Any) -> None:
        self.shell.user_ns[_commands.check_variable(name)] = value  # type: ignore[union-attr]

    def _cell(self, source: str) -> contextlib.AbstractContextManager[None]:
        shell = self.shell
        assert shell is not None
        notebook = str(shell.user_ns.get("__vsc_ipynb_file__") or _SERVER_NOTEBOOK)
        return _session.action_context(source=source, execution_count=shell.execution_count, notebook=notebook)

    def _expand(self, line: str, local_ns: dict[str, Any] | None) -> str:
        """``$name`` and ``{expr}`` in a magic's line expanded as IPython's ``var_expand`` does
        (its ``DollarFormatter`` over the user's namespace and the caller's local scope, which
        IPython hands a ``needs_local_scope`` magic), for lines of up to 4,096 characters.

        The magics opt out of IPython's own expansion (``@no_var_expand``): it is quadratic in a
        line's length (4 s for 30,000 characters) and runs before the magic could refuse the
        line. Longer lines are taken as they are.
        """
        if len(line) > _EXPAND_LIMIT or ("$" not in line and "{" not in line):
            return line
        assert self.shell is not None
        namespace = self.shell.user_ns if local_ns is None else {**self.shell.user_ns, **local_ns}
        try:
            return str(_FORMATTER.vformat(line, args=[], kwargs=namespace))
        except Exception:  # as IPython does: a line that does not format is left as it is
            return line

    def _current_cell(self, fallback: str) -> str:
        """The whole source of the running cell (seen by our pre_run_cell hook), else the magic line."""
        text = _RUNNING_CELL.get("raw", "")
        words = fallback.split()
        if text and all(word in text for word in words):
            return text
        return fallback

    @line_magic
    @needs_local_scope
    @no_var_expand
    @_user_errors
    def mlmd(self, line: str, local_ns: dict[str, Any] | None = None) -> Any:
        """Placeholder; replaced below by help generated from the subcommand parsers."""
        line = self._expand(line, local_ns)
        argv = split_line(line)
        with self._cell(self._current_cell(f"%mlmd {line}")):
            result = _commands.dispatch(self, argv, "%mlmd", magic=True)
        if argv[:1] == ["ls"] and getattr(result, "empty", False):  # a table of headers only says too little
            print(f"no {argv[1] if len(argv) > 1 else 'records'} to list" + (" that pass the filter" if any(
                w == "--where" or w.startswith("--where=") for w in argv) else ""))
        return result

    def _record_cell(self, kind: str, line: str, cell: str) -> Any:
        line = self._expand(line, None)
        words = line.split()
        if len(words) == 1 and NAME_RE.fullmatch(words[0]):  # the common "%%scenario NAME": no parser needed
            name, output, run = words[0], None, False
        else:
            args = _cell_parser(kind).parse_args(split_line(line))
            name, output, run = args.name, getattr(args, "output", None), getattr(args, "run", False)
            check_name(name, f"{kind} name")
        if output:
            _commands.check_variable(output)
        body = cells.load_yaml(cell or "", where=f"the %%{kind} cell", line_offset=1)
        with self._cell(f"%%{kind} {line}\n{cell}"):
            record = self.store().add(kind, name, body, where=f"the %%{kind} cell body")
            if output:
                self.bind(output, record.to_dict())
            if run:
                from IPython.display import display

                display(record)
                return self.store().train(record.ref)
        return record

    @cell_magic
    @no_var_expand
    @_user_errors
    def datasource(self, line: str, cell: str) -> Any:
        """Register a data source (or a new version of it) from a YAML body.

        ::

            %%datasource nipt-sim
            uri: data/nipt-sim
            format: tfrecord          # tfrecord, csv or npz
            label: label
            splits:
              train: train/*.tfrecord # a file, a glob or a folder under uri
              eval: eval.tfrecord
            description: simulated cfDNA
        """
        return self._record_cell("datasource", line, cell)

    @cell_magic
    @no_var_expand
    @_user_errors
    def scenario(self, line: str, cell: str) -> Any:
        """Register a named hyperparameter set (or a new version of it) from a YAML body.

        ::

            %%scenario mlp-small
            model: mlp
            params:
              hidden: [64, 32]
              learning_rate: 0.001
              epochs: 10
        """
        return self._record_cell("scenario", line, cell)

    @cell_magic
    @no_var_expand
    @_user_errors
    def experiment(self, line: str, cell: str) -> Any:
        """Define an experiment (or a new version of it): ``%%experiment NAME [-o VAR]``.

        ::

            %%experiment t21-baseline -o params
            datasource: nipt-sim        # NAME (latest, pinned now) or NAME@N
            scenario: mlp-small@1
            overrides:
              epochs: 5
        """
        return self._record_cell("experiment", line, cell)

    @cell_magic
    @no_var_expand
    @_user_errors
    def policy(self, line: str, cell: str) -> Any:
        """Define a release policy (or a new version of it): ``%%policy NAME``.

        ::

            %%policy release-nipt
            owner: screening-lead
            description: what a NIPT model must pass before release
            slices:
              - {feature: fetal_fraction, bins: [0.04, 0.08], names: [ff_low, ff_mid, ff_high]}
            thresholds:
              - {metric: recall_T21, lower: 0.95, slices: [ff_mid, ff_high]}
              - {metric: abnormal_auc, change: -0.01}
        """
        return self._record_cell("policy", line, cell)

    @cell_magic
    @no_var_expand
    @_user_errors
    def evaluate(self, line: str, cell: str) -> Any:
        """Evaluate a model on slices against thresholds: ``%%evaluate MODEL [--baseline MODEL] [-o VAR]``.

        ::

            %%evaluate t21-baseline@2 --baseline t21-baseline@1
            data: test
            class_names: [euploid, T21, T18, T13]
            slices:
              - {feature: fetal_fraction, bins: [0.04, 0.08], names: [ff_low, ff_mid, ff_high]}
            thresholds:
              - {metric: accuracy, lower: 0.95, slices: [ff_mid, ff_high]}
              - {metric: abnormal_auc, change: -0.01}
        """
        line = self._expand(line, None)
        args = _cell_parser("evaluate").parse_args(split_line(line))
        body = cells.load_yaml(cell or "", where="the %%evaluate cell", line_offset=1)
        args.body = evaluation_arguments(body, where="the %%evaluate cell")
        args.spec = None
        with self._cell(f"%%evaluate {line}\n{cell}"):
            return _commands.COMMANDS["evaluate"].run(self, args)

    @cell_magic
    @no_var_expand
    @_user_errors
    def sweep(self, line: str, cell: str) -> Any:
        """Search parameters of an experiment: ``%%sweep NAME [-o VAR]``; each trial is a version of
        the experiment of its own (``NAME@N~SWEEP@V#K``, never what ``NAME`` gives) and a run.
        Running the cell again continues the sweep.

        ::

            %%sweep lr-search
            experiment: t21-baseline          # the base; each trial overrides it
            objective: {metric: eval.accuracy, direction: maximize}
            sampler: tpe                      # tpe | random | grid
            trials: 12
            workers: 2                        # trials at once, in subprocesses
            space:
              learning_rate: {loguniform: [1.0e-4, 1.0e-1]}
              hidden: {choice: [[32], [64, 32], [128, 64]]}
              epochs: {int: [3, 10]}
        """
        from IPython.display import display

        line = self._expand(line, None)
        args = _cell_parser("sweep").parse_args(split_line(line))
        check_name(args.name, "sweep name")
        if args.output:
            _commands.check_variable(args.output)
        spec = sweep_arguments(cells.load_yaml(cell or "", where="the %%sweep cell", line_offset=1),
                               where="the %%sweep cell body")
        live: list[Any] = []

        def update(result: Any) -> None:  # the table and plot refresh as trials finish
            if live:
                live[0].update(result)
            else:
                live.append(display(result, display_id=True))

        with self._cell(f"%%sweep {line}\n{cell}"):
            result = self.store().sweep(args.name, **spec, on_update=update)
        if args.output:
            self.bind(args.output, result)
        if live:
            live[0].update(result)
            return None
        return result

    @cell_magic
    @no_var_expand
    def train(self, line: str, cell: str) -> Any:
        """Train an experiment with this cell's own code, on record: ``%%train NAME [--set
        KEY=VALUE ...] [-o VAR]``. The cell runs with ``params`` (the experiment version's
        parameters) and ``run`` (:class:`~mlmd_magic.store.ownrun.OwnRun`: ``run.log(metrics,
        step)``, ``run.log_model(model)``) bound, recorded as ``store.start_run`` records a block
        (the cell's source on the run, credentials redacted); an error in it is the run's FAILED
        state and shows as any error of a cell; the stop button cancels the run.

        ::

            %%train t21-baseline
            model = GradientBoostingClassifier(n_estimators=params["epochs"]).fit(x, y)
            run.log({"eval.accuracy": model.score(x_eval, y_eval)})
            run.log_model(model)
        """
        shell = self.shell
        assert shell is not None
        code = shell.transform_cell(cell or "")
        compiled = compile(code, shell.compile.cache(code), "exec")  # a SyntaxError records no run
        with self._cell(f"%%train {line}\n{cell}"):  # every write of the run names the cell's source
            own, output = self._start_own(line)
            shell.user_ns["params"], shell.user_ns["run"] = own.params, own
            own.__enter__()
            try:
                exec(compiled, shell.user_ns)  # the user's cell: its errors are shown as any cell's
            except BaseException as exc:
                self._end_own(own, exc)
                raise
            self._end_own(own, None)
        if output:
            self.bind(output, own.result)
        return own.result

    @staticmethod
    def _end_own(own: Any, exc: BaseException | None) -> None:
        """Record the end of a ``%%train`` cell's run; a stop is its one calm line, a store that
        fails to record it a one-line error."""
        try:
            own.__exit__(type(exc) if exc is not None else None, exc, None)
        except RunCancelled as stop:
            stop._render_traceback_ = _Said(_secrets.redact(str(stop)))  # type: ignore[attr-defined]
            raise
        except MlmdMagicError as failed:
            raise UsageError(_secrets.redact(str(failed))) from None

    @_user_errors
    def _start_own(self, line: str) -> tuple[Any, str | None]:
        line = self._expand(line, None)
        args = _cell_parser("train").parse_args(split_line(line))
        if args.output:
            _commands.check_variable(args.output)
        return self.store().start_run(args.name, overrides=_commands.parse_assignments(args.set)), args.output


MlmdMagics.mlmd.__doc__ = _commands.help_text(magic=True)


@functools.cache
def _cell_parser(kind: str) -> Any:
    """The parser of a cell magic's first line (built once: argparse set-up is not free)."""
    parser = _commands.CommandParser(prog=f"%%{kind}", add_help=False)
    if kind == "evaluate":
        _commands.configure_evaluate(parser, spec=False)
        return parser
    parser.add_argument("name", metavar="NAME")
    if kind == "sweep":
        parser.add_argument("-o", "--output", metavar="VAR", help="bind the Sweep to this variable")
    if kind == "train":
        parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                            help="override a parameter for this run (a new experiment version); repeatable")
        parser.add_argument("-o", "--output", metavar="VAR", help="bind the Run to this variable")
    if kind == "experiment":
        parser.add_argument("-o", "--output", metavar="VAR", help="bind the resolved dict to this variable")
        parser.add_argument("--run", action="store_true", help="train the experiment right away")
    return parser


def completion_candidates(line: str) -> list[str]:
    """What may come next in a ``%mlmd`` line (up to the cursor): subcommands, kinds, aliases,
    record names, or after ``NAME@`` that record's versions — never Python names."""
    words = line.split()
    typing_new = line.endswith(" ")
    position = len(words) - (0 if typing_new else 1)
    if position <= 1:
        return list(_commands.COMMANDS)
    sub = words[1]
    if sub in ("use", "close"):
        return [alias for alias, _, _ in REGISTRY.connections()]
    if sub == "ls" and position == 2:
        return ["datasources", "scenarios", "experiments", "policies", "runs", "models", "evaluations"]
    if sub not in _REF_SUBCOMMANDS or (position >= 2 and words[-1].startswith("-") and not typing_new):
        return []
    try:
        store = REGISTRY.current().store
        kind = "experiments" if sub in ("get", "train", "edit") and "--kind" not in words else None
        current = "" if typing_new else words[-1]
        prefix, _, rest = current.rpartition(":")
        if prefix and prefix.lower() in KIND_ALIASES:  # policy:NAME[@N]: complete within that kind
            kind, current, prefix = normalise_kind(prefix), rest, prefix + ":"
        else:
            prefix = ""
        with store.unrecorded():  # completing is not an action
            if "@" in current:
                name = current.split("@", 1)[0]
                versions = store.history(name, kind=kind)["version"]
                return [f"{prefix}{name}@{v}" for v in versions]
            return [prefix + name for name in store.names(kind)]
    except MlmdMagicError:
        return []


@context_matcher(identifier="mlmd_magic")  # type: ignore[untyped-decorator]
def _matcher(context: Any) -> dict[str, Any]:
    """IPython's completion for ``%mlmd`` lines: only what :func:`completion_candidates` offers
    (other matchers, which would add Python builtins, are suppressed on these lines)."""
    line = context.line_with_cursor
    if not line.lstrip().startswith("%mlmd"):
        return {"completions": [], "suppress": False}
    typed = "" if line.endswith(" ") else line.split()[-1]
    # IPython replaces the token after its own delimiters ('@' is one): complete what follows it
    token = context.token
    offered = [c for c in completion_candidates(line) if c.startswith(typed)]
    cut = len(typed) - len(token)
    return {"completions": [SimpleCompletion(text=c[cut:], type="mlmd") for c in offered], "suppress": True}


def load(shell: Any) -> None:
    """Register the magics and the tab completer on ``shell``."""
    shell.register_magics(MlmdMagics)
    magics = shell.magics_manager.registry["MlmdMagics"]
    REGISTRY.options.runs_dir = magics.runs_dir  # settings from %config or a profile
    REGISTRY.options.stale_run_after_s = magics.stale_run_after_s
    if _matcher not in shell.Completer.custom_matchers:
        shell.Completer.custom_matchers.append(_matcher)
    if _remember_cell not in shell.events.callbacks["pre_run_cell"]:
        shell.events.register("pre_run_cell", _remember_cell)
    kernel = getattr(shell, "kernel", None)
    session_id = getattr(getattr(kernel, "session", None), "session", "") if kernel is not None else ""
    if session_id:
        _session.set_session_id(str(session_id))


def unload(shell: Any) -> None:
    """Remove the magics (``%unload_ext``); open stores are closed."""
    if _remember_cell in shell.events.callbacks["pre_run_cell"]:
        shell.events.unregister("pre_run_cell", _remember_cell)
    if _matcher in shell.Completer.custom_matchers:
        shell.Completer.custom_matchers.remove(_matcher)
    magics = shell.magics_manager.magics
    magics["line"].pop("mlmd", None)
    for name in _CELL_MAGICS:
        magics["cell"].pop(name, None)
    REGISTRY.reset()
