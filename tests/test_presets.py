"""Every key a preset sets is read by the code: a setting nothing reads misleads whoever tunes it.

"Read" is section-aware: ``training.val_every`` counts only where the code reads ``val_every``
from the training section, i.e. from an expression that is that section:

- an attribute chain ending in the section, ``cfg.training.val_every`` or ``self.cfg.training.x``;
- a name or ``self.<name>`` bound to it in the same function or class: assigned from one
  (``tc = cfg.training``), a parameter annotated with the section's class (``cfg: TrainingConfig``),
  or spelled ``training_cfg`` / ``training_config``;
- ``getattr(<section expression>, "val_every")``.

A name read from another section (``predictor.dropout`` for a ``render.dropout``) does not count.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pytest

from reactcli.config import SECTIONS, load_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
PRESETS = sorted((REPO / "configs").glob("*.toml"))
CLASSES = {cls.__name__: name for name, cls in SECTIONS.items()}  # TrainingConfig -> training


def _dotted(node: ast.expr) -> str | None:
    """``tc`` or ``self.cfg`` as a string; None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    return None


def _annotation_sections(node: ast.expr | None) -> set[str]:
    """Sections named by an annotation: ``TrainingConfig``, ``config.TrainingConfig``, ``X | None``, "X"."""
    if node is None:
        return set()
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            node = ast.parse(node.value, mode="eval").body
        except SyntaxError:
            return set()
    found = set()
    for sub in ast.walk(node):
        name = sub.id if isinstance(sub, ast.Name) else sub.attr if isinstance(sub, ast.Attribute) else None
        if name in CLASSES:
            found.add(CLASSES[name])
    return found


def _own_nodes(body: Iterable[ast.AST]) -> Iterable[ast.AST]:
    """The nodes of ``body`` outside nested functions and classes (they have scopes of their own)."""
    scoped = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
    stack = [node for node in body if not isinstance(node, scoped)]
    while stack:
        node = stack.pop()
        yield node
        stack += [child for child in ast.iter_child_nodes(node) if not isinstance(child, scoped)]


class _Reader(ast.NodeVisitor):
    """Collects (section, key) reads, with bindings scoped to a function (inheriting enclosing ones)
    and ``self.<name>`` bindings shared by the methods of one class."""

    def __init__(self) -> None:
        self.read: set[tuple[str, str]] = set()
        self.scopes: list[dict[str, set[str]]] = [{}]

    def sections_of(self, node: ast.expr) -> set[str]:
        if isinstance(node, ast.Attribute) and node.attr in SECTIONS:
            return {node.attr}
        name = _dotted(node)
        if name is None:
            return set()
        found = {s for scope in self.scopes if name in scope for s in scope[name]}
        stem = name.rsplit(".", 1)[-1]
        for suffix in ("_cfg", "_config"):
            if stem.endswith(suffix) and stem.removesuffix(suffix) in SECTIONS:
                found.add(stem.removesuffix(suffix))
        return found

    def bind_all(self, body: Iterable[ast.AST], scope: dict[str, set[str]], selves_only: bool = False) -> None:
        """Bindings made anywhere in ``body`` (order does not matter); nested functions bind their own."""
        for node in _own_nodes(body):
            if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            sections = self.sections_of(node.value)
            if isinstance(node, ast.AnnAssign):
                sections |= _annotation_sections(node.annotation)
            for target in targets:
                name = _dotted(target)
                if sections and name and (not selves_only or name.startswith("self.")):
                    scope.setdefault(name, set()).update(sections)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        scope: dict[str, set[str]] = {}
        self.scopes.append(scope)
        for method in node.body:  # self.x = <section> in any method holds in every method
            if isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.scopes.append(self._parameters(method))
                self.bind_all(method.body, scope, selves_only=True)
                self.scopes.pop()
        self.generic_visit(node)
        self.scopes.pop()

    def _parameters(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> dict[str, set[str]]:
        args = node.args
        scope: dict[str, set[str]] = {}
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is not None and (sections := _annotation_sections(arg.annotation)):
                scope[arg.arg] = sections
        return scope

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        scope = self._parameters(node)
        self.scopes.append(scope)
        self.bind_all(node.body, scope)
        self.generic_visit(node)
        self.scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.ctx, ast.Load):
            for section in self.sections_of(node.value):
                self.read.add((section, node.attr))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if (
            isinstance(node.func, ast.Name) and node.func.id == "getattr" and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
        ):  # fmt: skip
            for section in self.sections_of(node.args[0]):
                self.read.add((section, node.args[1].value))
        self.generic_visit(node)


def keys_read_in(sources: Iterable[str]) -> frozenset[tuple[str, str]]:
    """The (section, key) pairs the given module sources read."""
    read: set[tuple[str, str]] = set()
    for source in sources:
        reader = _Reader()
        reader.bind_all(ast.parse(source).body, reader.scopes[0])
        reader.visit(ast.parse(source))
        read |= reader.read
    return frozenset(read)


@cache
def keys_read() -> frozenset[tuple[str, str]]:
    """What the package reads, except config.py, where the keys are declared (and checked)."""
    return keys_read_in(p.read_text() for p in sorted((REPO / "reactcli").rglob("*.py")) if p.name != "config.py")


def unread_keys(preset: Path, read: frozenset[tuple[str, str]] | None = None) -> list[str]:
    data = tomllib.loads(preset.read_text())
    read = keys_read() if read is None else read
    return [f"{section}.{key}" for section, values in data.items() for key in values if (section, key) not in read]


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_every_preset_key_is_read_by_the_code(preset: Path) -> None:
    load_config(preset, None, environ={})  # every key is a known setting
    assert unread_keys(preset) == [], f"{preset.name} sets keys no code reads"


def test_the_check_sees_an_unread_key(tmp_path: Path) -> None:
    """The check itself: a key that no code reads is reported, and so is one read only from another
    section (``dropout`` is a tokenizer and a predictor setting, never a render one)."""
    read = keys_read()
    assert ("training", "predictor_crop_frames") in read and ("predictor", "dropout") in read
    assert ("render", "dropout") not in read and not any(key == "num_workers" for _, key in read)
    assert len(PRESETS) >= 2
    fake = tmp_path / "fake.toml"
    fake.write_text("[training]\nval_every = 5\n[data]\nnum_workers = 4\n[render]\ndropout = 0.1\n")
    assert unread_keys(fake) == ["data.num_workers", "render.dropout"]


def test_the_check_follows_each_way_of_reaching_a_section() -> None:
    source = '''
from reactcli.config import AudioConfig, RenderConfig

def chain(cfg):
    return cfg.training.val_every

def bound(cfg):
    tc = cfg.generation
    return tc.top_k

def annotated(audio: AudioConfig, render: "RenderConfig | None"):
    return audio.n_mels, render.size

def named(predictor_cfg):
    return getattr(predictor_cfg, "dropout")

class Stage:
    def __init__(self, cfg):
        self.tok = cfg.tokenizer

    def run(self, cfg):
        return self.tok.levels, cfg.heads

def elsewhere(tc, audio):
    return tc.max_steps, audio.sample_rate  # bound in other functions only
'''
    assert keys_read_in([source]) == {
        ("training", "val_every"),
        ("generation", "top_k"),
        ("audio", "n_mels"),
        ("render", "size"),
        ("predictor", "dropout"),
        ("tokenizer", "levels"),
    }  # ``cfg.heads``, ``tc.max_steps`` and ``audio.sample_rate`` reach no section here
