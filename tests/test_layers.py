"""The layer rule of docs/DEVELOPING.md, kept by the code: imports only run down, and none closes a circle.

The table of layers is the fenced block under "## Layers" in docs/DEVELOPING.md, so the page
and this test cannot disagree: each line is one layer, highest first; a name with a slash is a
package (``data/``), one without a module (``config`` = ``reactcli/config.py``). Every ``import``
in the package counts, at module level, inside functions and under ``TYPE_CHECKING`` alike: a
function-level import is still a dependency, only a later one.

The rules:
- a module imports only modules of lower layers, or of its own package (``data/cache.py`` ->
  ``data/layout.py``); two names on one line never import each other;
- a command imports no other command (``commands/common.py``, the shared options, excepted);
- no circle of imports, not even inside one package;
- a name that ``reactcli/vocab.py`` defines is imported from vocab, never through a module that
  re-exports it, and never renamed (``EXPRESSION_DIM as EXP_DIM``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "reactcli"
DEVELOPING = REPO / "docs" / "DEVELOPING.md"

#: Circles another branch removes; each must still exist here (the test says when to delete it).
#: live/emotion_source.py <-> live/face_source.py: MediaPipe's names and checks move to live/mediapipe.py.
KNOWN_CIRCLES: set[frozenset[str]] = set()


@dataclass(frozen=True)
class Import:
    """``importer`` imports ``imported`` (a module of the package) at ``line``."""

    importer: str
    imported: str
    line: int


# -- reading the tree ---------------------------------------------------------------------------------
def module_files(root: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``root/package`` (``__init__`` = the package)."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _resolve(node: ast.ImportFrom, importer: str, is_package: bool) -> str | None:
    if node.level == 0:
        return node.module
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(root: Path, package: str = PACKAGE) -> list[Import]:
    """Every import of a package module by a package module, wherever in the file it stands."""
    files = module_files(root, package)
    found = []
    for importer, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                module = _resolve(node, importer, path.name == "__init__.py")
                if module is None:
                    continue
                # ``from reactcli.render import camera`` imports the submodule, not the package
                submodules = [f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in files]
                targets = submodules or [module]
            for target in targets:
                if target == package or target.startswith(package + "."):
                    while target not in files:  # ``import reactcli.x.y`` of a name inside a module
                        target = target.rsplit(".", 1)[0]
                    found.append(Import(importer, target, node.lineno))
    return found


# -- the table ----------------------------------------------------------------------------------------
def layer_table(text: str) -> list[list[str]]:
    """The layers of the fenced block under "## Layers", lowest first."""
    section = re.search(r"^## Layers.*?^```\w*\n(.*?)^```", text, flags=re.S | re.M)
    assert section, "docs/DEVELOPING.md has no fenced layer table under '## Layers'"
    lines = [line.split() for line in section.group(1).splitlines() if line.strip()]
    return lines[::-1]


def unit_of(module: str, packages: set[str]) -> str:
    """``reactcli.data.cache`` -> ``data/``; ``reactcli.config`` -> ``config``; the package itself -> ``""``."""
    parts = module.split(".")
    if len(parts) == 1:
        return ""
    return parts[1] + "/" if len(parts) > 2 or module in packages else parts[1]


def levels(table: list[list[str]]) -> dict[str, int]:
    level = {}
    for i, names in enumerate(table):
        for name in names:
            assert name not in level, f"{name} is on two lines of the layer table"
            level[name] = i
    level[""] = -1  # reactcli/__init__.py holds the version only: below everything
    return level


# -- the checks ---------------------------------------------------------------------------------------
def unplaced(modules: Iterable[str], packages: set[str], level: dict[str, int]) -> list[str]:
    return sorted({unit_of(m, packages) for m in modules} - set(level))


def wrong_way(imports: Iterable[Import], packages: set[str], level: dict[str, int]) -> list[str]:
    """Imports that run up the layers or sideways between two names of one layer."""
    bad = []
    for imp in imports:
        a, b = unit_of(imp.importer, packages), unit_of(imp.imported, packages)
        if a == b:
            continue
        if level[b] >= level[a]:
            way = "up" if level[b] > level[a] else "sideways"
            bad.append(f"{imp.importer}:{imp.line} imports {imp.imported} ({way}: {a} -> {b})")
    return bad


def command_to_command(imports: Iterable[Import], package: str = PACKAGE) -> list[str]:
    commands, shared = f"{package}.commands.", f"{package}.commands.common"
    return [
        f"{imp.importer}:{imp.line} imports {imp.imported}"
        for imp in imports
        if imp.importer.startswith(commands) and imp.imported.startswith(commands) and imp.imported != shared
    ]


def circles(imports: Iterable[Import]) -> list[frozenset[str]]:
    """The strongly connected groups of more than one module (and modules importing themselves)."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        graph.setdefault(imp.importer, set()).add(imp.imported)
        graph.setdefault(imp.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm; the package is small enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph[v]:
                found.append(frozenset(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def vocab_names(root: Path, package: str = PACKAGE) -> set[str]:
    """The public names assigned or defined at the top of vocab.py."""
    tree = ast.parse((root / package / "vocab.py").read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.add(node.name)
    return {n for n in names if not n.startswith("_")}


def vocab_detours(files: Iterable[Path], names: set[str], package: str = PACKAGE) -> list[str]:
    """Vocabulary imported through another module, or renamed on import."""
    vocab = f"{package}.vocab"
    bad = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith(package):
                continue
            for alias in node.names:
                if alias.name not in names:
                    continue
                if node.module != vocab:
                    bad.append(f"{path}:{node.lineno} imports {alias.name} from {node.module}, not {vocab}")
                elif alias.asname not in (None, alias.name):
                    bad.append(f"{path}:{node.lineno} renames {alias.name} to {alias.asname}")
    return bad


def check_tree(root: Path, doc: str, package: str = PACKAGE) -> list[str]:
    """Every broken rule of the tree at ``root`` against the layer table in ``doc``, one line each."""
    files = module_files(root, package)
    packages = {m for m, p in files.items() if p.name == "__init__.py"}
    level = levels(layer_table(doc))
    problems = [f"{unit} is on no line of the layer table" for unit in unplaced(files, packages, level)]
    if problems:
        return problems
    imports = imports_of(root, package)
    problems += wrong_way(imports, packages, level)
    problems += command_to_command(imports, package)
    problems += [f"import circle: {' <-> '.join(sorted(c))}" for c in circles(imports) if c not in KNOWN_CIRCLES]
    return problems


# -- the tests ----------------------------------------------------------------------------------------
def test_imports_run_down_the_layers_and_close_no_circle() -> None:
    assert check_tree(REPO, DEVELOPING.read_text()) == []


def test_known_circles_still_exist() -> None:
    """A circle listed as known but gone (its fix merged) must leave KNOWN_CIRCLES."""
    present = set(circles(imports_of(REPO)))
    gone = [sorted(c) for c in KNOWN_CIRCLES if c not in present]
    assert gone == [], f"no longer a circle, delete it from KNOWN_CIRCLES in tests/test_layers.py: {gone}"


def test_vocabulary_comes_from_vocab_under_its_own_name() -> None:
    names = vocab_names(REPO)
    assert {"EMOTION_DIM", "ROTATION", "METRIC_KEYS", "Metric"} <= names
    files = [p for d in ("reactcli", "tests", "bench") for p in sorted((REPO / d).rglob("*.py"))]
    assert vocab_detours(files, names) == []


# -- the test of the tests: a small tree with each mistake --------------------------------------------
TABLE = """## Layers
```
app
low/  middle
floor
```
"""


def _tree(tmp_path: Path, modules: dict[str, str]) -> Path:
    for name, text in {"__init__.py": "", "floor.py": "", "middle.py": "", "low/__init__.py": "", **modules}.items():
        path = tmp_path / PACKAGE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / PACKAGE / "vocab.py").write_text("SIZE = 3\n")
    return tmp_path


@pytest.mark.parametrize(
    ("modules", "expected"),
    [
        ({"app.py": "from reactcli.low.a import f\n", "low/a.py": "from reactcli.floor import x\n"}, []),
        (  # a function-level import that runs up
            {"app.py": "", "low/a.py": "def f():\n    from reactcli.app import main\n"},
            ["reactcli.low.a:2 imports reactcli.app (up: low/ -> app)"],
        ),
        ({"app.py": "", "middle.py": "import reactcli.low.a\n", "low/a.py": ""},  # one line, two names
         ["reactcli.middle:1 imports reactcli.low.a (sideways: middle -> low/)"]),
        (  # a circle inside one package
            {"app.py": "", "low/a.py": "from reactcli.low import b\n", "low/b.py": "from . import a\n"},
            ["import circle: reactcli.low.a <-> reactcli.low.b"],
        ),
        ({"app.py": "", "new.py": ""}, ["new is on no line of the layer table"]),
        ({"app.py": "", "vocab.py": ""}, ["vocab is on no line of the layer table"]),
    ],
)
def test_the_check_reports_each_broken_rule(tmp_path: Path, modules: dict[str, str], expected: list[str]) -> None:
    root = _tree(tmp_path, modules)
    table = TABLE if "vocab.py" in modules else TABLE.replace("floor\n", "floor  vocab\n")
    assert check_tree(root, table) == expected


def test_the_check_reports_a_command_importing_a_command(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "app.py": "",
        "commands/__init__.py": "",
        "commands/common.py": "",
        "commands/one.py": "from reactcli.commands.common import Option\n",
        "commands/two.py": "from reactcli.commands.one import helper\n",
    })  # fmt: skip
    table = TABLE.replace("app\n", "app\ncommands/\n").replace("floor\n", "floor  vocab\n")
    assert check_tree(root, table) == ["reactcli.commands.two:1 imports reactcli.commands.one"]


def test_the_check_reports_vocabulary_through_another_module(tmp_path: Path) -> None:
    package = tmp_path / PACKAGE
    package.mkdir()
    (package / "vocab.py").write_text("SIZE = 3\nclass Name:\n    pass\n")
    user = tmp_path / "user.py"
    user.write_text(
        "from reactcli.layout import SIZE\nfrom reactcli.vocab import Name as N\nfrom reactcli.vocab import SIZE\n"
    )
    assert vocab_detours([user], vocab_names(tmp_path)) == [
        f"{user}:1 imports SIZE from reactcli.layout, not reactcli.vocab",
        f"{user}:2 renames Name to N",
    ]
