"""Crash-safe writes: every output goes to a temporary sibling and is renamed into place.

A killed run, a full disk or a failed validation must never leave a half-written file under the
final name (it would be skipped as "finished" by resumable commands, or overwrite good results).
``os.replace`` is atomic on one file system, so the temp file lives next to its target.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it to ``path`` only if the block succeeds.

    An ``OSError`` (full disk, read-only folder) leaves with the target's name when it has none or
    names the temp file, so the one line the CLI prints names the file the user asked for.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + target.suffix, dir=target.parent)
    except OSError as exc:
        if exc.filename is None or Path(exc.filename).parent == target.parent:
            exc.filename = str(target)
        raise
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; outputs should get the usual permissions
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        if exc.filename is None or exc.filename == str(tmp):
            exc.filename, exc.filename2 = str(target), None
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def save_npy(path: str | Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def save_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_torch(path: str | Path, obj: Any) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
