"""Ctrl-C and SIGTERM while a stage trains: finish the step, keep a resumable checkpoint, then stop.

Before the first step (loading, tokenising the corpus) there is nothing worth keeping, so a signal
stops at once with :class:`~reactcli.errors.Interrupted`. Once the loop runs (:meth:`StopRequest.armed`)
the first signal only sets :attr:`StopRequest.requested`: the loop finishes its step, the ranks of a
torchrun job agree on the stop (the flag is all-reduced after every step over a CPU group,
``ddp.all_reduce_flag``, so every rank stops after the same step and no rank waits for its GPU),
rank 0 writes the last checkpoint and every rank raises
``Interrupted`` with one line saying what was kept and how to resume (exit 130).

A second Ctrl-C in a single process stops at once (a step that hangs can still be left). Under
torchrun a repeat is ignored: the launcher forwards the signal it got to every worker and kills
them itself after its shutdown timeout, so a repeat is not the user's second word.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from reactcli.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Signal handlers for one training stage (a context manager; handlers are restored on exit).

    ``kept`` says what a stop would leave behind (updated by the stage whenever it writes a
    resumable checkpoint); it ends the message of an immediate stop.
    """

    def __init__(self, description: str, distributed: bool = False) -> None:
        self.description = description
        self.distributed = distributed
        self.requested: str | None = None  # the signal's name once one arrived while armed
        self.kept = "nothing was kept (training had not started)"
        self._armed = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():  # Python delivers signals there only
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    @contextmanager
    def armed(self) -> Iterator[None]:
        """While the loop runs: a signal asks for a stop after the current step."""
        self._armed = True
        try:
            yield
        finally:
            self._armed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._armed and (self.requested is None or self.distributed):
            self.requested = self.requested or name
            return
        again = " again" if self.requested else ""
        raise Interrupted(f"{self.description}: stopped at once by {name}{again}; {self.kept}")
