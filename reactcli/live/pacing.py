"""The timing rules of one live session, without a socket: pacing, backlog, catch-up and lateness.

A live session must keep up with real time, and a client or a model that cannot must be told, not
buffered without bound. Four rules, each a small object the session runner
(:mod:`reactcli.live.runner`) consults and the tests drive directly:

- :class:`RealtimeGate` (pacing): a client may run at most ``burst_frames`` ahead of the model's
  frame rate (25 fps for a REACT 2024 model, 30 for a MARS one) since its first message, so nobody
  can push a clip faster than it plays.
- :class:`Backlog`: frames read but not yet given to the model; more than ``limit`` waiting means
  the model is slower than real time, and the session is closed with the model's speed.
- :func:`drain` (catch-up): the worker takes *everything* waiting and pushes it as one chunk, so
  a session that fell behind catches up (one push of n frames costs much less than n pushes).
- :class:`LagWindow` (lateness): how late the frames of the last 2 s left the server. The page
  shows a frame 2 frame periods after capture and drops it one period after that, so a frame that
  left the server more than three frame periods (:data:`LATE_MS` at 25 fps) after it arrived is
  lost on the page; a session whose
  window is over half late is *behind*, and the server sheds the newest session that is behind
  (:meth:`reactcli.live.runner.ServerState.may_shed`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any

from reactcli.live.protocol import ProtocolError
from reactcli.vocab import FPS

FRAME_MS = 1000.0 / FPS
#: The page's jitter buffer holds a frame 2 periods and drops it 1 period after its slot.
LATE_MS = 3 * FRAME_MS
#: Lateness is judged over the last 2 s of frames ...
LAG_WINDOW_FRAMES = 2 * FPS
#: ... and a session is behind when more than this share of them were late.
LATE_SHARE = 0.5

#: Sessions one server runs at once unless ``--max-sessions`` says otherwise. The sessions share
#: the cores, so N of them need about N times one session's time per frame (bench/live_bench.py
#: --sessions, docs/live.md): the tiny preset takes ~10 ms per frame on the 2-core machine when it
#: is quiet (9.3 ms at K = 3, x1.08 at K = 10), so 3 sessions use ~75 % of the 40 ms a frame has and
#: a 4th would use all of it. When the machine is busy, shedding closes what no longer fits.
DEFAULT_MAX_SESSIONS = 3


class RealtimeGate:
    """Input pacing: frame ``n`` may arrive no earlier than ``n / fps - burst_frames / fps`` seconds
    after the first message (a client may catch up a short stall, not dump a clip)."""

    def __init__(self, burst_frames: int = 2 * FPS, fps: float = FPS) -> None:
        self.burst_frames = burst_frames
        self.fps = fps
        self.t0: float | None = None

    def admit(self, frames_so_far: int, now: float) -> None:
        """Raise :class:`ProtocolError` when ``frames_so_far`` frames by ``now`` (seconds, monotonic)
        run ahead of real time."""
        if self.t0 is None:
            self.t0 = now
        elapsed = now - self.t0
        if frames_so_far > elapsed * self.fps + self.burst_frames:
            raise ProtocolError(
                f"input runs ahead of real time: {frames_so_far} frames after {elapsed:.2f} s at {self.fps:g} fps"
            )


class Backlog:
    """Frames read from the client but not yet pushed through the model, at most ``limit``."""

    def __init__(self, limit: int = 2 * FPS, fps: float = FPS) -> None:
        self.limit = limit
        self.fps = fps
        self.waiting = 0

    def add(self, frames: int, server_ms: float) -> None:
        """Count ``frames`` more waiting, or close the session when that passes the limit;
        ``server_ms`` (the model's time per frame so far) goes into the reason."""
        if self.waiting + frames > self.limit:
            raise ProtocolError(
                f"the model cannot keep up: more than {self.limit} frames wait "
                f"({server_ms:.0f} ms per frame, {1000.0 / self.fps:.0f} available); try fewer --samples or a GPU"
            )
        self.waiting += frames

    def done(self, frames: int) -> None:
        self.waiting -= frames


class _ClientLeft:
    """The queue marker of a client that disconnected."""

    def __repr__(self) -> str:
        return "CLIENT_LEFT"


CLIENT_LEFT = _ClientLeft()


def drain(first: Any, queue: asyncio.Queue) -> tuple[list[Any], Any]:
    """Catch-up: ``first`` plus everything already queued, cut at the first end marker.

    Queue items are work or an end marker (:data:`CLIENT_LEFT`, or an exception: the reader's
    verdict on the client). Returns (the work before the first marker, that marker or ``None``);
    anything queued after a marker is dropped, since the session ends there.
    """
    batch = [first]
    while not queue.empty():
        batch.append(queue.get_nowait())
    for i, item in enumerate(batch):
        if item is CLIENT_LEFT or isinstance(item, BaseException):
            return batch[:i], item
    return batch, None


class LagWindow:
    """Per frame over the last ``window`` frames: did it leave the server more than ``late_ms``
    after it arrived? ``behind`` once the window is full and more than ``share`` of it was late.
    :meth:`at` gives the rule at a frame rate (2 s of frames, three frame periods)."""

    @classmethod
    def at(cls, fps: float) -> LagWindow:
        return cls(window=int(round(2 * fps)), late_ms=3 * 1000.0 / fps)

    def __init__(self, window: int = LAG_WINDOW_FRAMES, late_ms: float = LATE_MS, share: float = LATE_SHARE) -> None:
        self.window = window
        self.late_ms = late_ms
        self.share = share
        self._late: deque[bool] = deque(maxlen=window)

    def record(self, lags: Sequence[tuple[int, float]]) -> None:
        """``lags``: (frames, milliseconds from arrival to sending) per message of one push."""
        for frames, ms in lags:
            self._late.extend([ms > self.late_ms] * frames)

    @property
    def late_share(self) -> float:
        return sum(self._late) / len(self._late) if self._late else 0.0

    @property
    def behind(self) -> bool:
        return len(self._late) == self.window and self.late_share > self.share
