"""The one exception type that means "the user did something wrong".

The CLI prints a ``ReactError`` as a single line and exits 1; anything else is a bug and keeps its
traceback. Messages should name the file and what is wrong with it, so a researcher can fix the
input without reading our code.
"""

from __future__ import annotations

from pathlib import Path


class ReactError(Exception):
    """A user mistake (bad input, bad config, missing file) reported without a traceback."""


def file_error(path: str | Path, problem: str) -> ReactError:
    """Build the standard ``<path>: <problem>`` message so every error reads the same way."""
    return ReactError(f"{path}: {problem}")
