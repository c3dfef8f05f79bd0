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
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mlmd_magic"

# layer of a module (by its dotted name under mlmd_magic) -> layers it may import
ALLOWED = {
    "core": {"core"},  # and display, lazily, inside an IPython display method (see _display_imports)
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


def _display_imports(tree: ast.AST) -> set[int]:
    """Lines of the imports made inside an IPython display method (``_repr_html_``…)."""
    return {node.lineno for fn in ast.walk(tree)
            if isinstance(fn, ast.FunctionDef) and PROTOCOL.fullmatch(fn.name)
            for node in ast.walk(fn) if isinstance(node, (ast.Import, ast.ImportFrom))}


def _module_state(module: str, path: Path) -> list[str]:
    """What a module keeps between calls: a ``global`` statement, or a module-level name that a
    function mutates (``NAME[k] = v``, ``NAME.attr = v``, ``NAME.append(...)``…)."""
    tree = ast.parse(path.read_text(), str(path))
    names = {t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign))
             for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)}
    found = []
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


def _violations(module: str, path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    layer = layer_of(module)
    is_package = path.name == "__init__.py"
    found = []

    drawing = _display_imports(tree) if layer == "core" else set()

    def imported(target: str, names: list[str], line: int) -> None:
        top = target.split(".")[0]
        if top in FORBIDDEN_LIBRARIES.get(layer, ()):
            found.append(f"{module}:{line} imports {target} ({layer} may not)")
        if top != "mlmd_magic":
            return
        if line in drawing and layer_of(target) == "display":
            return  # a core object's _repr_html_ hands its drawing to the display layer
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
    """The core is pure logic: no module-level state a call changes (the session, the secrets
    and the write listeners live in the backend) and no matplotlib (drawing is the display
    layer's); the import rule above keeps matplotlib out."""
    problems = [p for module, path in _modules() if layer_of(module) == "core" for p in _module_state(module, path)]
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
    ("_ALL = []\ndef f(x):\n    _ALL.append(x)\n", "_ALL.append()"),
    ("_N = 0\ndef f():\n    global _N\n    _N += 1\n", "global _N"),
])
def test_the_state_rule_catches_state(tmp_path: Path, source: str, expected: str) -> None:
    path = tmp_path / "bad.py"
    path.write_text(source)
    assert any(expected in p for p in _module_state("mlmd_magic.core.bad", path))
    path.write_text("LOOKUP = {'a': 1}\ndef f(k):\n    return LOOKUP[k]\n")  # a constant table read is fine
    assert _module_state("mlmd_magic.core.bad", path) == []
