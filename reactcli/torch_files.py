"""Reading torch files we did not write, and telling when a file we wrote has changed.

Every ``.pt``/``.pth``/``.ckpt`` the toolkit opens goes through :func:`load_weights_only`:
``torch.load(weights_only=True)`` never runs code from the file, and the refusal says *which*
global the file asked for (torch's own text ends on the advice to turn the protection off, and a
200-character cut hid the name). :func:`tensor_digest` is the sha256 our checkpoints carry of
their tensors: zip entries in a torch file are stored without a checksum torch checks, so a few
overwritten bytes load silently as a NaN or a wrong weight; :func:`first_nonfinite` finds the
weight a broken training run (or such a byte) made NaN/inf before it poisons generation.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from reactcli.errors import file_error


def load_weights_only(path: str | Path, what: str, refused_what: str | None = None) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, every failure one line naming the file.

    ``what`` names the expected file ("a torch weights file"): an unreadable file is "not <what>
    (corrupt or truncated: ...)"; a pickle that asks to run code is "not <refused_what>" (default
    ``what``), since such a file is certainly not one of ours.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found:
            raise file_error(
                path,
                f"not {refused_what or what}: the file asks to load the Python object '{found.group(1)}', "
                "which could run code, so it was refused (files are read with torch.load(weights_only=True))",
            ) from None
        raise file_error(path, f"not {what} (corrupt or truncated: {_first_line(exc)})") from None
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile, KeyError, AttributeError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, zipfile.BadZipFile) and exc.errno is not None:
            raise file_error(path, exc.strerror or str(exc)) from None
        raise file_error(path, f"not {what} (corrupt or truncated: {_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    first = lines[0] if lines else type(exc).__name__
    return first.split(". ")[0][:160]  # torch's first sentence says it; the rest is advice


def iter_tensors(obj: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor inside nested dicts/lists/tuples, with a dotted key path, in a fixed order."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, Mapping):
        for key in sorted(obj, key=str):
            yield from iter_tensors(obj[key], f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            yield from iter_tensors(item, f"{prefix}.{i}" if prefix else str(i))


def tensor_digest(obj: Any) -> str:
    """sha256 over every tensor's key path, dtype, shape and bytes (see :func:`iter_tensors`)."""
    digest = hashlib.sha256()
    for key, tensor in iter_tensors(obj):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def first_nonfinite(obj: Any) -> str | None:
    """The key path of the first floating tensor holding a NaN or inf, or None."""
    for key, tensor in iter_tensors(obj):
        if tensor.is_floating_point() and tensor.numel() and not bool(torch.isfinite(tensor).all()):
            return key
    return None
