"""The package's layers, checked by reading its imports (no module is run).

Dependencies point one way: faces / widgets / cli -> store -> backend -> core; the trainer
needs only the core. A module may not import a higher layer, nor another module's private
name (``_x``), nor reach into an object's private attributes; faces and widgets do not touch
MLMD (no ``ml_metadata`` import, no ``store.mlmd``). No module writes SQL into MLMD's tables.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mlmd_magic"

# layer of a module (by its dotted name under mlmd_magic) -> layers it may import
ALLOWED = {
    "core": {"core"},
    "trainer": {"core", "trainer"},
    "backend": {"core", "backend"},
    "store": {"core", "backend", "store", "trainer"},
    "widgets": {"core", "store", "widgets"},
    "faces": {"core", "store", "faces", "widgets"},  # %mlmd edit / browse open the panels
    "package": {"core", "trainer", "backend", "store", "widgets", "faces"},  # the public facade
}
FORBIDDEN_LIBRARIES = {
    "core": ("ml_metadata", "IPython", "ipywidgets", "tensorflow", "keras", "pymysql"),
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
    if head in ("core", "backend", "store", "faces", "widgets", "trainer"):
        return head
    # datasets writes files only; testing (helpers of the tests and tutorials) writes plain ML Metadata stores
    return {"errors": "core", "datasets": "core", "evaluation": "core", "cli": "faces", "testing": "backend"}[head]


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _violations(module: str, path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    layer = layer_of(module)
    is_package = path.name == "__init__.py"
    found = []

    def imported(target: str, names: list[str], line: int) -> None:
        top = target.split(".")[0]
        if top in FORBIDDEN_LIBRARIES.get(layer, ()):
            found.append(f"{module}:{line} imports {target} ({layer} may not)")
        if top != "mlmd_magic":
            return
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


def test_no_side_door_into_mlmd() -> None:
    assert not (PACKAGE / "_mysql_writer.py").exists()
    assert not list(PACKAGE.rglob("*writer*.py"))


@pytest.mark.parametrize("module, source, expected", [
    ("mlmd_magic.core.bad", "from ..store import Store\n", "imports mlmd_magic.store"),
    ("mlmd_magic.backend.bad", "from ..faces import commands\n", "imports mlmd_magic.faces"),
    ("mlmd_magic.trainer.bad", "from ..backend import recorder\n", "imports mlmd_magic.backend"),
    ("mlmd_magic.widgets.bad", "from ..store.records import _LABEL\n", "private name _LABEL"),
    ("mlmd_magic.faces.bad", "def f(store):\n    return store._records\n", "private attribute ._records"),
    ("mlmd_magic.core.bad", "import ml_metadata\n", "imports ml_metadata"),
    ("mlmd_magic.widgets.bad", "def f(browser):\n    return browser.store.mlmd\n", "touches store.mlmd"),
    ("mlmd_magic.store.bad", "cur.execute('INSERT INTO Artifact (id) VALUES (1)')\n", "writes SQL into MLMD's tables"),
])
def test_the_rules_catch_what_they_are_about(tmp_path: Path, module: str, source: str, expected: str) -> None:
    """Each rule fails on a module that breaks it."""
    path = tmp_path / "bad.py"
    path.write_text(source)
    problems = _violations(module, path)
    assert any(expected in p for p in problems), problems
