"""Is an output from an earlier run still valid? One rule, by identity records.

Resumable stages (preprocess's feature cache, ``react render``'s videos, FRRea's PNGs) skip work an
earlier run finished. Comparing modification times alone goes wrong both ways: another, *older*
input (a second predictions folder, a dataset copied with its old times) looks "fresh", and a
touched but unchanged file forces needless work. So each stage stores, beside what it made, an
identity record of the inputs it made it from — every source file's resolved path, size and
modification time (:func:`identity`) — and an output counts as finished only when the record
stored with it equals the record of today's inputs (:func:`same_sources`). The record is written
after the output it describes, so an output without its record is unfinished.

A floor module: standard library only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def identity(path: str | Path) -> dict[str, Any]:
    """``{"path", "size", "mtime_ns"}`` of a file; for a folder (a video stored as frame images) the
    total size, the newest time and the number of files in it. A missing path has size None."""
    path = Path(path)
    resolved = str(path.resolve())
    try:
        if path.is_dir():
            files = [p.stat() for p in path.iterdir() if p.is_file()]
            return {
                "path": resolved,
                "size": sum(s.st_size for s in files),
                "mtime_ns": max((s.st_mtime_ns for s in files), default=0),
                "files": len(files),
            }
        stat = path.stat()
    except OSError:
        return {"path": resolved, "size": None, "mtime_ns": None}
    return {"path": resolved, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file's bytes (read in 4 MB blocks): a content identity that survives a copy."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def identities(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    return [identity(p) for p in paths]


def same_sources(stored: Any, current: Any) -> bool:
    """Whether a stored record equals today's (records compare as JSON would: tuples as lists), and
    no source in today's record is missing."""
    current = json.loads(json.dumps(current))
    return stored == current and not _has_missing(current)


def _has_missing(record: Any) -> bool:
    if isinstance(record, dict):
        if "path" in record and record.get("size", 0) is None:
            return True
        return any(_has_missing(v) for v in record.values())
    if isinstance(record, list):
        return any(_has_missing(v) for v in record)
    return False


def read_record(path: str | Path) -> dict[str, Any]:
    """A stored record, or ``{}`` when it is missing, unreadable or not a JSON object (then nothing
    it described is reused)."""
    try:
        stored = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return stored if isinstance(stored, dict) else {}
