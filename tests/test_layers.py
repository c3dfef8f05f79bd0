"""The package's layers, checked by reading its imports (no module is run, but to find the error types).

Dependencies point one way: faces / widgets / cli -> store -> backend -> core; the trainer
needs only the core and the display (its curves); display (drawing) sits on the core, and a
core object's ``_repr_html_`` may hand its drawing to it. The core keeps no state and draws
nothing. A module may not import a higher layer, nor another module's private
name (``_x``), nor reach into an object's private attributes; faces and widgets do not touch
MLMD (no ``ml_metadata`` import, no ``store.mlmd``). No module writes SQL into MLMD's tables.
Every error type lives in ``mlmd_magic.errors`` and is exported.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mlmd_magic"

# layer of a module (by its dotted name under mlmd_magic) -> layers it may import
ALLOWED = {
    "core": {"core"},  # and display, lazily, inside an IPython display method (see _lazy_imports)
    "display": {"core", "display"},
    "trainer": {"core", "display", "trainer"},
    "backend": {"core", "backend"},
    "store": {"core", "display", "backend", "store", "trainer"},
    "widgets": {"core", "display", "store", "widgets"},
    "faces": {"core", "display", "store", "faces", "widgets"},  # %mlmd edit / browse open the panels
    "package": {"core", "display", "trainer", "backend", "store", "widgets", "faces"},  # the public facade
}
FORBIDDEN_LIBRARIES = {
    "core": ("ml_metadata", "IPython", "ipywidgets", "tensorflow", "keras", "pymysql", "matplotlib"),
    "display": ("ml_metadata", "IPython", "ipywidgets", "tensorflow", "keras", "pymysql"),
    "trainer": ("ml_metadata", "ipywidgets", "pymysql"),
    "backend": ("IPython", "ipywidgets", "tensorflow", "keras"),
    "store": ("IPython", "ipywidgets"),
    "widgets": ("ml_metadata", "pymysql"),
    "faces": ("ml_metadata", "pymysql"),
}
# names removed without a release of warning, kept one release as aliases that warn and call the
# new name, which lives in a higher layer: (module, alias) -> that layer. Remove an entry with its alias.
DEPRECATED_ALIASES = {
    ("mlmd_magic.core.evaluation", "confusion_html"): "display",  # display.evaluation.confusion_html
    ("mlmd_magic.datasets", "tfx_pipeline_store"): "backend",  # testing.tfx_pipeline_store
}
# IPython's display protocol methods are meant to be called by anyone
PROTOCOL = re.compile(r"_repr_[a-z]+_|_ipython_[a-z_]+|_render_traceback_")  # IPython's protocols
MLMD_TABLES = r"(Artifact|Execution|Context|Event|EventPath|Attribution|Association|ParentContext|ParentType|Type|" \
              r"TypeProperty|\w*Property|MLMDEnv)"
SQL_WRITE = re.compile(rf"\b(INSERT\s+(IGNORE\s+)?INTO|UPDATE|DELETE\s+FROM|REPLACE\s+INTO)\s+`?{MLMD_TABLES}\b",
                       re.IGNORECASE)


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append((".".join(parts), path))
    return out


def layer_of(module: str) -> str:
    """``mlmd_magic.store.runs`` -> ``store``; top-level public modules sit in their layer."""
    parts = module.split(".")
    if len(parts) == 1:
        return "package"
    head = parts[1]
    if head in ("core", "display", "backend", "store", "faces", "widgets", "trainer"):
        return head
    # datasets writes files only; testing (helpers of the tests and tutorials) writes plain ML Metadata stores
    return {"errors": "core", "datasets": "core", "evaluation": "core", "cli": "faces", "testing": "backend"}[head]


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _lazy_imports(module: str, tree: ast.AST) -> dict[int, str]:
    """The imports a module may make, inside a function, from a layer above its own: line -> that
    layer. A core object's IPython display method (``_repr_html_``…) hands its drawing to the
    display layer; a deprecated alias that warns (:data:`DEPRECATED_ALIASES`) calls where its name went."""
    lazy = {}
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef):
            continue
        if layer_of(module) == "core" and PROTOCOL.fullmatch(fn.name):
            layer = "display"
        elif (module, fn.name) in DEPRECATED_ALIASES and any(
                isinstance(n, ast.Name) and n.id == "DeprecationWarning" for n in ast.walk(fn)):
            layer = DEPRECATED_ALIASES[(module, fn.name)]
        else:
            continue
        lazy.update((node.lineno, layer) for node in ast.walk(fn) if isinstance(node, (ast.Import, ast.ImportFrom)))
    return lazy


def _module_state(module: str, source: str) -> list[str]:
    """What a module keeps between calls, read from its source:

    - a ``global`` statement (a function rebinding a module name);
    - a module-level name bound to a mutable value: a dict, list or set (display or
      comprehension), a call of ``dict``/``list``/``set``/``collections.defaultdict``/``OrderedDict``/
      ``deque``/… (or such a value inside a tuple or ``+``), under every name it is given (``X = Y = {}``,
      ``X: dict[str, int] = {}``, ``Y = X``);
    - a cache: a module-level function or method decorated with ``functools.lru_cache`` / ``cache``
      (or a name bound to ``lru_cache(...)(f)``);
    - a class attribute bound to a mutable value (shared by every instance);
    - a module-level name that a function mutates (``NAME[k] = v``, ``NAME.attr = v``, ``NAME.append(...)``…).

    Immutable constants stay allowed: tuples, frozensets, strings, numbers, compiled regexes,
    ``types.MappingProxyType``, typing aliases, dataclass ``field(default_factory=list)``. ``__all__``
    (a list by convention, read by ``import *``) is not state."""
    tree = ast.parse(source)
    found = []

    def module_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
        """The statements run at import: the body, and what ``if``/``try``/``with`` blocks hold."""
        for node in body:
            yield node
            if isinstance(node, (ast.If, ast.For, ast.While, ast.With)):
                yield from module_level(node.body + node.orelse if not isinstance(node, ast.With) else node.body)
            elif isinstance(node, ast.Try):
                yield from module_level(node.body + [s for h in node.handlers for s in h.body]
                                        + node.orelse + node.finalbody)

    def bindings(node: ast.stmt) -> list[tuple[ast.expr, ast.expr]]:
        """(target, value) pairs of an assignment, tuples unpacked element by element."""
        if isinstance(node, ast.Assign):
            pairs = [(t, node.value) for t in node.targets]
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            pairs = [(node.target, node.value)]
        else:
            return []
        out = []
        while pairs:
            target, value = pairs.pop()
            if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)) \
                    and len(target.elts) == len(value.elts):
                pairs += list(zip(target.elts, value.elts))
            else:
                out.append((target, value))
        return out

    def mutable(value: ast.expr, names: set[str]) -> bool:
        if isinstance(value, (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)):
            return True
        if isinstance(value, ast.Tuple):
            return any(mutable(v, names) for v in value.elts)
        if isinstance(value, ast.BinOp):  # ["X", "Y"] + [...], {...} | {...}
            return mutable(value.left, names) or mutable(value.right, names)
        if isinstance(value, ast.Call):
            return _dotted(value.func).rsplit(".", 1)[-1] in _MUTABLE_TYPES or _is_cache(value.func)
        return isinstance(value, ast.Name) and value.id in names  # Y = X: one more name of X's value

    names: set[str] = set()  # every module-level name
    mutables: set[str] = set()
    for node in module_level(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if any(_is_cache(d) for d in node.decorator_list):
                found.append(f"{module}:{node.lineno} caches at module level: {node.name}()")
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                        and any(_is_cache(d) for d in item.decorator_list):
                    found.append(f"{module}:{item.lineno} caches in a class: {node.name}.{item.name}()")
                for target, value in bindings(item):
                    if mutable(value, set()):
                        found.append(f"{module}:{item.lineno} mutable class attribute: "
                                     f"{node.name}.{ast.unparse(target)} = {ast.unparse(value)[:40]}")
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        for target, value in bindings(node):
            if not isinstance(target, ast.Name):
                continue
            names.add(target.id)
            if target.id != "__all__" and mutable(value, mutables):
                mutables.add(target.id)
                found.append(f"{module}:{node.lineno} mutable module state: {target.id} = {ast.unparse(value)[:40]}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            found.append(f"{module}:{node.lineno} rebinds module state: global {', '.join(node.names)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name) and node.func.value.id in names \
                and node.func.attr in _MUTATORS:
            found.append(f"{module}:{node.lineno} mutates module state: {node.func.value.id}.{node.func.attr}()")
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for t in targets:
                if isinstance(t, (ast.Subscript, ast.Attribute)) and isinstance(t.value, ast.Name) \
                        and t.value.id in names:
                    found.append(f"{module}:{node.lineno} mutates module state: {ast.unparse(t)}")
    return found


_MUTATORS = {"append", "extend", "add", "update", "clear", "pop", "popitem", "remove", "discard", "insert",
             "setdefault", "sort", "reverse", "set"}
# calls that make a mutable container (by their last dotted name: ``collections.deque`` and ``deque`` alike)
_MUTABLE_TYPES = {"dict", "list", "set", "bytearray", "defaultdict", "OrderedDict", "deque", "Counter", "ChainMap",
                  "SimpleNamespace", "WeakKeyDictionary", "WeakValueDictionary", "WeakSet", "local"}
_CACHES = {"cache", "lru_cache"}


def _dotted(node: ast.expr) -> str:
    """``functools.lru_cache`` -> ``"functools.lru_cache"``; ``""`` for anything but names and attributes."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else ""
    return ""


def _is_cache(node: ast.expr) -> bool:
    """``@functools.cache``, ``@lru_cache``, ``@functools.lru_cache(maxsize=8)`` (and ``lru_cache(8)(f)``)."""
    while isinstance(node, ast.Call):
        node = node.func
    return _dotted(node).rsplit(".", 1)[-1] in _CACHES


def _violations(module: str, path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    layer = layer_of(module)
    is_package = path.name == "__init__.py"
    found = []

    lazy = _lazy_imports(module, tree)

    def imported(target: str, names: list[str], line: int) -> None:
        top = target.split(".")[0]
        if top in FORBIDDEN_LIBRARIES.get(layer, ()):
            found.append(f"{module}:{line} imports {target} ({layer} may not)")
        if top != "mlmd_magic":
            return
        if line in lazy and layer_of(target) == lazy[line]:
            return  # a core object's _repr_html_ hands its drawing to the display; an alias calls its new name
        if target != "mlmd_magic" and layer_of(target) not in ALLOWED[layer]:
            found.append(f"{module}:{line} imports {target} (layer {layer_of(target)} is above or beside {layer})")
        own_package = module if is_package else module.rsplit(".", 1)[0]
        parts = target.split(".")
        for i, part in enumerate(parts):
            if part.startswith("_") and not part.startswith("__"):
                if ".".join(parts[:i]) != own_package:
                    found.append(f"{module}:{line} imports private module {target}")
        for name in names:
            if name.startswith("_") and not name.startswith("__"):
                sub = f"{target}.{name}"
                if not (target == own_package and (PACKAGE.parent / sub.replace(".", "/")).with_suffix(".py").exists()):
                    found.append(f"{module}:{line} imports private name {name} from {target}")
            elif target != "mlmd_magic" and layer_of(f"{target}.{name}" if target.count(".") == 0 else target) \
                    not in ALLOWED[layer]:
                found.append(f"{module}:{line} imports {target}.{name} from a higher layer")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                imported(alias.name, [], node.lineno)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node)
            names = [a.name for a in node.names]
            if target == "mlmd_magic" or (node.level and not node.module):
                # `from . import x` / `from .. import x`: each name is a module of that package
                for name in names:
                    imported(f"{target}.{name}" if target else name, [], node.lineno)
            else:
                imported(target, names, node.lineno)
        elif isinstance(node, ast.Attribute):
            attr = node.attr
            owner = node.value
            private = attr.startswith("_") and not attr.startswith("__") and not PROTOCOL.fullmatch(attr)
            if private and not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                found.append(f"{module}:{node.lineno} reaches into a private attribute .{attr}")
            if attr == "mlmd" and layer in ("faces", "widgets") and "store" in ast.unparse(owner).lower():
                found.append(f"{module}:{node.lineno} touches store.mlmd ({layer} must not touch MLMD)")
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if SQL_WRITE.search(line):
            found.append(f"{module}:{number} writes SQL into MLMD's tables: {line.strip()}")
    return found


def test_dependencies_point_one_way_and_privates_stay_private() -> None:
    problems = [v for module, path in _modules() for v in _violations(module, path)]
    assert problems == []


def test_the_core_keeps_no_state_and_draws_nothing() -> None:
    """The core is pure logic: no module-level state (the session, the secrets and the write
    listeners live in the backend) and no matplotlib (drawing is the display layer's); the import
    rule above keeps matplotlib out. Every module under ``core/`` holds only immutable constants:
    no mutable container at module level or in a class, no cache, no ``global``. The other modules
    of the core's layer (``errors``, ``datasets``, ``evaluation``) may publish tables, but no
    function of theirs changes module state."""
    problems = []
    for module, path in _modules():
        if layer_of(module) != "core":
            continue
        found = _module_state(module, path.read_text())
        if not module.startswith("mlmd_magic.core."):
            found = [p for p in found if " mutates module state: " in p or " global " in p or " caches " in p]
        problems += found
    assert problems == []


def test_no_side_door_into_mlmd() -> None:
    assert not (PACKAGE / "_mysql_writer.py").exists()
    assert not list(PACKAGE.rglob("*writer*.py"))


def test_every_error_type_lives_in_errors_and_is_exported() -> None:
    """Every MlmdMagicError subclass is defined in ``mlmd_magic.errors`` and exported from
    ``mlmd_magic`` itself (this test imports the modules to find them)."""
    import importlib
    import inspect
    import pkgutil

    import mlmd_magic as mm
    from mlmd_magic import errors

    defined_elsewhere = []
    for info in pkgutil.walk_packages(mm.__path__, "mlmd_magic."):
        if info.name.startswith("mlmd_magic.widgets") or info.name == "mlmd_magic.__main__":
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (inspect.isclass(value) and issubclass(value, errors.MlmdMagicError)
                    and value.__module__ == info.name and info.name != "mlmd_magic.errors"):
                defined_elsewhere.append(f"{info.name}.{name}")
    assert defined_elsewhere == []
    classes = {n for n, v in vars(errors).items() if inspect.isclass(v) and issubclass(v, errors.MlmdMagicError)}
    assert classes <= set(errors.__all__) and set(errors.__all__) <= set(mm.__all__)
    assert all(getattr(mm, n) is getattr(errors, n) for n in errors.__all__)
    assert "TrainingError" in (mm.Store.train.__doc__ or "")
    assert "NoConnectionError" in (mm.current_store.__doc__ or "")


@pytest.mark.parametrize("module, source, expected", [
    ("mlmd_magic.core.bad", "from ..store import Store\n", "imports mlmd_magic.store"),
    ("mlmd_magic.backend.bad", "from ..faces import commands\n", "imports mlmd_magic.faces"),
    ("mlmd_magic.trainer.bad", "from ..backend import recorder\n", "imports mlmd_magic.backend"),
    ("mlmd_magic.widgets.bad", "from ..store.records import _LABEL\n", "private name _LABEL"),
    ("mlmd_magic.faces.bad", "def f(store):\n    return store._records\n", "private attribute ._records"),
    ("mlmd_magic.core.bad", "import ml_metadata\n", "imports ml_metadata"),
    ("mlmd_magic.widgets.bad", "def f(browser):\n    return browser.store.mlmd\n", "touches store.mlmd"),
    ("mlmd_magic.store.bad", "cur.execute('INSERT INTO Artifact (id) VALUES (1)')\n", "writes SQL into MLMD's tables"),
    ("mlmd_magic.core.bad", "import matplotlib\n", "imports matplotlib"),
    ("mlmd_magic.core.bad", "from ..display import html\n", "imports mlmd_magic.display"),
])
def test_the_rules_catch_what_they_are_about(tmp_path: Path, module: str, source: str, expected: str) -> None:
    """Each rule fails on a module that breaks it."""
    path = tmp_path / "bad.py"
    path.write_text(source)
    problems = _violations(module, path)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("source, expected", [
    ("_SEEN = {}\ndef f(k):\n    _SEEN[k] = 1\n", "mutates module state: _SEEN[k]"),
    ("_ALL = ()\ndef f(x):\n    _ALL.append(x)\n", "_ALL.append()"),
    ("_N = 0\ndef f():\n    global _N\n    _N += 1\n", "global _N"),
    ("TABLE = {'a': 1}\n", "mutable module state: TABLE"),
    ("SEEN = set()\n", "mutable module state: SEEN"),
    ("NAMES = [n for n in 'ab']\n", "mutable module state: NAMES"),
    ("ALL = ['a'] + ['b']\n", "mutable module state: ALL"),
    ("_A = _B = {}\n", "mutable module state: _A"),
    ("_A = _B = {}\n", "mutable module state: _B"),
    ("_A = []\n_B = _A\n", "mutable module state: _B"),
    ("_A, _B = (), []\n", "mutable module state: _B"),
    ("PAIRS = ((1, 2), [3])\n", "mutable module state: PAIRS"),
    ("from typing import Any\n_X: dict[str, Any] = {}\n", "mutable module state: _X"),
    ("import collections\n_BY = collections.defaultdict(list)\n", "mutable module state: _BY"),
    ("from collections import OrderedDict\n_O = OrderedDict()\n", "mutable module state: _O"),
    ("from collections import deque\n_LAST = deque(maxlen=5)\n", "mutable module state: _LAST"),
    ("import os\nif os.name == 'nt':\n    _WIN = {}\n", "mutable module state: _WIN"),
    ("import functools\n@functools.lru_cache(maxsize=8)\ndef f(x):\n    return x\n", "caches at module level: f()"),
    ("from functools import cache\n@cache\ndef f():\n    return 1\n", "caches at module level: f()"),
    ("import functools\ndef g(x):\n    return x\nf = functools.lru_cache(None)(g)\n", "mutable module state: f"),
    ("import functools\nclass C:\n    @functools.cache\n    def f(self):\n        return 1\n",
     "caches in a class: C.f()"),
    ("class C:\n    seen = []\n", "mutable class attribute: C.seen"),
    ("class C:\n    by_name: dict[str, int] = {}\n", "mutable class attribute: C.by_name"),
    ("import collections\nclass C:\n    counts = collections.Counter()\n", "mutable class attribute: C.counts"),
    ("def f():\n    def g():\n        global _N\n    return g\n", "global _N"),
])
def test_the_state_rule_catches_state(source: str, expected: str) -> None:
    """The state rule fails on a module that keeps state (and ``test_the_core_keeps_no_state…``
    runs it on every module of the core)."""
    problems = _module_state("mlmd_magic.core.bad", source)
    assert any(expected in p for p in problems), problems


def test_the_state_rule_allows_immutable_constants() -> None:
    good = """
import functools
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Final

__all__ = ["KINDS", "f"]
KINDS = ("a", "b")
ALLOWED = frozenset({"a", "b"})
TABLE = MappingProxyType({"a": 1, "b": 2})
NAME_RE = re.compile(r"[a-z]+")
LIMIT: Final = 10
RATE = 0.5
HELP = "write " + "this"
_MISSING = object()
Predicate = Callable[[dict[str, Any]], bool]
ROWS = tuple([1, 2])


@dataclass(frozen=True)
class Spec:
    names: tuple[str, ...] = ()
    items: list[int] = field(default_factory=list)
    kind: str = "a"

    @functools.cached_property
    def size(self) -> int:
        return len(self.items)


def f(k: str) -> int:
    seen = {}  # a function's own dict is no module state
    seen[k] = TABLE[k]
    cache = functools.lru_cache(maxsize=None)(len)  # nor is its own cache
    return seen[k] + cache(k)
"""
    assert _module_state("mlmd_magic.core.good", good) == []
