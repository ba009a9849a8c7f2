"""Crash-safe writes: every output goes to a temporary sibling and is renamed into place.

A killed run, a full disk or a failed validation must never leave a half-written file under the
final name (it would be skipped as "finished" by resumable commands, or overwrite good results).
``os.replace`` is atomic on one file system, so the temp file lives next to its target.

Outputs that are a *set* of files (a predictions folder, a synthetic dataset) are written as a
whole into a temporary folder beside the target and swapped in at the end (:class:`StagedFolder`,
:func:`atomic_folder`): an older set in the target is either fully kept or fully replaced, never
a new ``emotion.npy`` beside an old ``face3dmm.npy``. On Linux the swap is one
``renameat2(RENAME_EXCHANGE)`` call; elsewhere two renames, the old set parked under a hidden
name in between.

A write that fails for a reason the user can fix (full disk, no permission, read-only file
system) is a one-line :class:`ReactError` naming the target, never a traceback, and
:func:`check_space` refuses a run whose output size is known before any work is done.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from reactcli.errors import ReactError


def write_error(path: str | Path, exc: OSError) -> ReactError:
    """The one-line error for an ``OSError`` met while writing ``path`` (the target, not a temp name)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return ReactError(path=path, problem=f"could not write ({reason}); nothing was changed there")


def _ours(exc: OSError, *roots: Path) -> bool:
    """Whether an error raised inside a write block is the write's own, so it is reported against the
    target: no file name (a failed ``write``/``flush``), a name at or under one of ``roots`` (our temp
    names), or a full or read-only disk. An error naming another file (an input) is left to its reader."""
    if exc.filename is None or exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        return True
    name = str(exc.filename)
    return any(name == str(r) or name.startswith(str(r) + os.sep) for r in roots)


def _default_mode(path: Path, mode: int) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)  # mkstemp/mkdtemp make 0600/0700; outputs get the usual permissions


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
        raise write_error(target, exc) from None
    os.close(fd)
    tmp = Path(tmp_name)
    _default_mode(tmp, 0o666)
    try:
        try:
            yield tmp
            os.replace(tmp, target)
        except OSError as exc:
            if _ours(exc, tmp, target):
                raise write_error(target, exc) from None
            raise
    finally:
        if tmp.exists():
            tmp.unlink()


def save_npy(path: str | Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def _first_non_finite(obj: Any, where: str = "") -> str | None:
    """Where the first NaN/inf float sits in a JSON-like object (``a.b[2]``), or None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return where or "the value"
    if isinstance(obj, dict):
        for key, value in obj.items():
            found = _first_non_finite(value, f"{where}.{key}" if where else str(key))
            if found:
                return found
    if isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            found = _first_non_finite(value, f"{where}[{i}]")
            if found:
                return found
    return None


def save_json(path: str | Path, obj: Any) -> None:
    """Write strict JSON (``allow_nan=False``): a bare ``NaN``/``Infinity`` is not JSON, and other
    tools reject the file. A non-finite number is a one-line error naming the key; writers turn
    such values into null with a reason before they get here."""
    try:
        text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n"
    except ValueError:
        where = _first_non_finite(obj)
        if where is None:
            raise
        problem = f"not written: {where} is not a finite number (JSON cannot hold it)"
        raise ReactError(path=path, problem=problem) from None
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_torch(path: str | Path, obj: Any) -> None:
    """``torch.save`` through a Python file: given a path, torch writes with its own C++ stream and a
    full disk surfaces as "basic_ios::clear: iostream error" or "unexpected pos"; through a file
    object the write fails with the ``OSError`` (ENOSPC) that the one-line error names."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)


# -- space --------------------------------------------------------------------------------------------
def _existing_parent(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def format_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def check_space(target: str | Path, need_bytes: int) -> None:
    """Refuse, before any work, an output of ``need_bytes`` that the target's file system cannot hold
    or that cannot be written there at all; the error names ``target``."""
    target = Path(target)
    where = _existing_parent(target if target.is_dir() else target.parent)  # where the temp name goes
    if not os.access(where, os.W_OK | os.X_OK):
        raise ReactError(path=target, problem=f"cannot write there ({where} is not writable)")
    free = shutil.disk_usage(where).free
    if need_bytes > free:
        raise ReactError(
            path=target,
            problem=f"the output needs {format_bytes(need_bytes)} but only {format_bytes(free)} are free there",
        )


# -- folders ------------------------------------------------------------------------------------------
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux ``renameat2`` with ``RENAME_EXCHANGE``).

    False where the call or the flag is not supported (another OS, an old kernel, a file system
    without it), so the caller falls back to two renames.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _replace_folder(new: Path, target: Path) -> None:
    """Put folder ``new`` at ``target``; an existing ``target`` is swapped out and deleted."""
    if not target.exists():
        os.rename(new, target)
        return
    if _exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # ``new`` now holds the old set
        return
    parked = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.rmdir(parked)
    os.rename(target, parked)
    try:
        os.rename(new, target)
    except OSError:
        os.rename(parked, target)  # the old set goes back where it was
        raise
    shutil.rmtree(parked, ignore_errors=True)


Replaceable = Collection[str] | Callable[[str], bool]


def _foreign_entries(target: Path, replaces: Replaceable | None) -> list[str]:
    if replaces is None:
        return []
    allowed = replaces if callable(replaces) else (lambda name: name in replaces)  # type: ignore[operator]
    return sorted(p.name for p in target.iterdir() if not allowed(p.name))


class StagedFolder:
    """A temporary folder beside ``target`` that becomes ``target`` on :meth:`commit`.

    ``replaces`` says which entries an existing ``target`` may hold for it to be replaced (names,
    or a predicate on a name): a folder holding anything else (say, the checkpoints of a run given
    as ``--out`` by mistake) is refused before any work, naming what is there. ``need_bytes``
    checks the free space first. :meth:`abort` (or leaving a ``with`` block by an exception)
    removes the temporary folder and leaves ``target`` as it was; only a hard kill (SIGKILL, power
    loss) can leave the hidden ``.<name>.*.tmp`` folder behind, which nothing reads.
    """

    def __init__(self, target: str | Path, replaces: Replaceable | None = None, need_bytes: int | None = None) -> None:
        self.target = Path(target)
        if self.target.is_symlink():  # swap the folder the link points to; the link stays
            self.target = self.target.resolve()
        if self.target.exists() and not self.target.is_dir():
            raise ReactError(path=self.target, problem="is a file; expected a folder (or a path that does not exist)")
        if self.target.is_dir():
            foreign = _foreign_entries(self.target, replaces)
            if foreign:
                shown = ", ".join(foreign[:4]) + (f" and {len(foreign) - 4} more" if len(foreign) > 4 else "")
                raise ReactError(
                    path=self.target,
                    problem=f"holds other files ({shown}); give an empty folder or one this command wrote",
                )
        if need_bytes is not None:
            check_space(self.target, need_bytes)
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self.path = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.", suffix=".tmp", dir=self.target.parent))
        except OSError as exc:
            raise write_error(self.target, exc) from None
        _default_mode(self.path, 0o777)
        self.done = False

    def commit(self) -> Path:
        """Swap the finished folder in; returns ``target``."""
        try:
            _replace_folder(self.path, self.target)
        except OSError as exc:
            self.abort()
            raise write_error(self.target, exc) from None
        self.done = True
        return self.target

    def abort(self) -> None:
        if not self.done:
            shutil.rmtree(self.path, ignore_errors=True)
            self.done = True

    def __enter__(self) -> StagedFolder:
        return self

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: object) -> None:
        if kind is not None:
            self.abort()
            if isinstance(exc, OSError) and _ours(exc, self.path):
                raise write_error(self.target, exc) from None
            inside = str(self.path) + os.sep
            if isinstance(exc, ReactError) and exc.path is not None and exc.path.startswith(inside):
                # name the file where it was going to be, not under the temporary folder
                raise ReactError(path=self.target / exc.path[len(inside) :], problem=exc.problem) from None
        elif not self.done:
            self.commit()


@contextlib.contextmanager
def atomic_folder(
    target: str | Path, replaces: Replaceable | None = None, need_bytes: int | None = None
) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; it replaces ``target`` as a whole only if the block
    succeeds (see :class:`StagedFolder` for ``replaces`` and ``need_bytes``)."""
    with StagedFolder(target, replaces, need_bytes) as staged:
        yield staged.path
