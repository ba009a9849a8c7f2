"""The exception types that mean "the user did something wrong" or "the user stopped us".

The CLI prints a ``ReactError`` as a single line and exits with its ``exit_code`` (1); anything
else is a bug and keeps its traceback. Messages should name the file and what is wrong with it, so
a researcher can fix the input without reading our code. Code that needs the parts back (a table
of problems, say) reads ``path`` and ``problem`` instead of parsing the message.
"""

from __future__ import annotations

from pathlib import Path


class ReactError(Exception):
    """A user mistake (bad input, bad config, missing file) reported without a traceback.

    ``path`` (the file or source at fault, when there is one) and ``problem`` (what is wrong with
    it) are kept as fields; the message is ``"<path>: <problem>"`` when both are given.
    """

    exit_code: int = 1

    def __init__(self, message: str | None = None, *, path: str | Path | None = None, problem: str | None = None):
        if message is None:
            if problem is None:
                raise TypeError("ReactError needs a message or a problem")
            message = problem if path is None else f"{path}: {problem}"
        super().__init__(message)
        self.path = None if path is None else str(path)
        self.problem = message if problem is None else problem


class Interrupted(ReactError):
    """The user pressed Ctrl-C (or the process got SIGTERM); the message says what was kept.

    Exit code 130, as a shell reports a process ended by SIGINT.
    """

    exit_code = 130


def file_error(path: str | Path, problem: str) -> ReactError:
    """Build the standard ``<path>: <problem>`` error so every error reads the same way."""
    return ReactError(path=path, problem=problem)
