"""Every key a preset sets is read by the code: a setting nothing reads misleads whoever tunes it."""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

import pytest

from reactcli.config import load_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
PRESETS = sorted((REPO / "configs").glob("*.toml"))


@cache
def attributes_read() -> frozenset[str]:
    """Names read as attributes (``cfg.training.val_every``, ``tc.val_every``) or through
    ``getattr(obj, "name")`` anywhere in the package except config.py, where they are declared."""
    names: set[str] = set()
    for path in (REPO / "reactcli").rglob("*.py"):
        if path.name == "config.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                names.add(node.attr)
            elif (
                isinstance(node, ast.Call) and getattr(node.func, "id", None) == "getattr" and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
            ):
                names.add(node.args[1].value)
    return frozenset(names)


def unread_keys(preset: Path) -> list[str]:
    data = tomllib.loads(preset.read_text())
    read = attributes_read()
    return [f"{section}.{key}" for section, values in data.items() for key in values if key not in read]


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_every_preset_key_is_read_by_the_code(preset: Path) -> None:
    load_config(preset, None, environ={})  # every key is a known setting
    assert unread_keys(preset) == [], f"{preset.name} sets keys no code reads"


def test_the_check_sees_an_unread_key(tmp_path: Path) -> None:
    """The check itself: a key that is a valid setting but read nowhere is reported."""
    read = attributes_read()
    assert "predictor_crop_frames" in read and "num_workers" not in read
    assert len(PRESETS) >= 2
    fake = tmp_path / "fake.toml"
    fake.write_text("[training]\nval_every = 5\n[data]\nnum_workers = 4\n")
    assert unread_keys(fake) == ["data.num_workers"]
