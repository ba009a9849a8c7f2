"""One WebSocket session of ``react live``, from the start message to the close, and the small
state the sessions of one server share (the session cap, the counters, whom to shed).

The web app (:mod:`reactcli.live.server`) only routes ``/ws`` to :meth:`LiveServer.handle`. A
session is a :class:`SessionRunner` with two tasks: the *reader* decodes and checks each client
message (:mod:`reactcli.live.protocol`), applies the pacing and backlog rules
(:mod:`reactcli.live.pacing`) and queues it with its arrival time; the *worker* takes everything
queued (catch-up), pushes it through the session's own
:class:`reactcli.live.session.LiveSession` in a thread, sends the frames and records how late they
left. A client that breaks a rule gets an ``error`` message and a close with the reason; the
server and the other sessions carry on.

Admission: at most ``LiveSettings.max_sessions`` sessions run at once; the next client is accepted
only to be told why it is refused (``error`` + close 1013 "try again later"), so the page can
show it. Shedding: when sessions are *behind* (over half the frames of their last 2 s left the
server later than the page can show them, :class:`reactcli.live.pacing.LagWindow`), the server
closes the most recently started of them, with the reason, and waits :data:`SHED_COOLDOWN_S`
before it closes another, so the time it freed can help the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from reactcli.errors import ReactError
from reactcli.generate import sample_seed
from reactcli.live.pacing import (
    CLIENT_LEFT,
    DEFAULT_MAX_SESSIONS,
    LAG_WINDOW_FRAMES,
    Backlog,
    LagWindow,
    RealtimeGate,
    drain,
)
from reactcli.live.protocol import (
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN,
    Message,
    MsgType,
    ProtocolError,
    Start,
    check_input,
    control,
    decode,
    encode,
    parse_start,
)
from reactcli.live.session import LiveSession, MicSource, StepResult, replay_session
from reactcli.vocab import FPS

if TYPE_CHECKING:
    from reactcli.live.replay import ReplayData
    from reactcli.models.checkpoint import ReactionModel

log = logging.getLogger("reactcli.live")

#: After shedding one session the server waits this long before it sheds another.
SHED_COOLDOWN_S = LAG_WINDOW_FRAMES / FPS


@dataclass(frozen=True)
class LiveSettings:
    """What every session of one server shares: sampling, seed, frame rate, limits and the optional camera path.

    ``fps`` is the model's edition's frame rate (25 for a REACT 2024 model, 30 for a MARS one): the
    page plays at it, microphone frames are cut at its boundaries and the pacing rules count in its
    frames. ``realtime`` enforces the input rate (a client may run at most ``burst_frames``, by
    default 2 s of frames, ahead of ``fps``) and sheds sessions that fall behind; tests and
    benchmarks that drive the socket as fast as they can turn it off. ``backlog_frames`` (default
    2 s) bounds what may wait for the model. ``max_sessions`` caps the sessions running at once.
    ``mic_personality`` is the (5,) listener traits a personalised model (``predictor.personality``)
    gets in microphone mode, where no dataset says who listens, and ``mic_personality_label`` says
    what they are on the page.
    """

    samples: int
    seed: int = 0
    realtime: bool = True
    fps: int = FPS
    burst_frames: int | None = None
    backlog_frames: int | None = None
    max_sessions: int = DEFAULT_MAX_SESSIONS
    start_timeout_s: float = 10.0
    warm_up: bool = True
    face_landmarker: Path | None = None
    mediapipe_js: Path | None = None
    mic_personality: tuple[float, ...] | None = None
    mic_personality_label: str | None = None

    def __post_init__(self) -> None:
        if self.max_sessions < 1:
            raise ReactError(f"--max-sessions must be at least 1, got {self.max_sessions}")
        if self.fps < 1:
            raise ReactError(f"the live frame rate must be at least 1 fps, got {self.fps}")
        for name in ("burst_frames", "backlog_frames"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, 2 * self.fps)


@dataclass
class ServerState:
    """The counters and the session table of one server (runtime state, not settings)."""

    max_sessions: int
    started: int = 0
    refused: int = 0
    errors: int = 0
    shed: int = 0
    behind: set[int] = field(default_factory=set)
    active: set[int] = field(default_factory=set)
    last_shed: float = float("-inf")

    def admit(self) -> int | None:
        """A new session's number, or None when ``max_sessions`` already run (counted as refused).
        No await between the check and the update: in one event loop this is atomic."""
        if len(self.active) >= self.max_sessions:
            self.refused += 1
            return None
        number = self.started
        self.started += 1
        self.active.add(number)
        return number

    def release(self, number: int) -> None:
        self.active.discard(number)
        self.behind.discard(number)

    def report(self, number: int, behind: bool) -> None:
        """A session's lateness after its last push."""
        if behind:
            self.behind.add(number)
        else:
            self.behind.discard(number)

    def may_shed(self, number: int, now: float, cooldown_s: float = SHED_COOLDOWN_S) -> bool:
        """Whether session ``number`` is to be closed now: it is behind, it is the most recently
        started of the sessions behind, and no session was shed in the last ``cooldown_s``."""
        if number not in self.behind or number != max(self.behind) or now - self.last_shed < cooldown_s:
            return False
        self.last_shed = now
        self.shed += 1
        return True

    def stats(self) -> dict[str, int]:
        """What ``/api/stats`` reports."""
        return {
            "sessions": self.started,
            "active": len(self.active),
            "errors": self.errors,
            "refused": self.refused,
            "shed": self.shed,
            "max_sessions": self.max_sessions,
        }


class Socket(Protocol):
    """What a session needs of a WebSocket (Starlette's, or a test's stand-in)."""

    async def accept(self) -> None: ...
    async def receive(self) -> dict[str, Any]: ...
    async def send_text(self, data: str) -> None: ...
    async def send_bytes(self, data: bytes) -> None: ...
    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


def mic_available(model: ReactionModel, fps: int = FPS) -> str | None:
    """None when microphone mode can run with this model, else why not (shown on the page)."""
    try:
        MicSource(model, fps=fps)
    except ImportError as exc:
        return f"the streaming audio features are not installed ({exc.name})"
    except ReactError as exc:
        return str(exc)
    return None


class LiveServer:
    """The sessions of one server: the shared read-only model, the settings, the replay clips and
    the :class:`ServerState`; :meth:`handle` runs one WebSocket from accept to close."""

    def __init__(self, model: ReactionModel, settings: LiveSettings, replay: ReplayData | None = None) -> None:
        self.model = model
        self.settings = settings
        self.replay = replay
        self.mic_problem = mic_available(model, settings.fps)
        self.state = ServerState(settings.max_sessions)

    def camera_problem(self) -> str | None:
        """Why the webcam face is off (shown on the page in microphone mode), or None."""
        if self.settings.face_landmarker is None:
            return "no --face-landmarker file given: the speaker's face is held at the training mean"
        if self.settings.mediapipe_js is None:
            return "no --mediapipe-js folder given: the speaker's face is held at the training mean"
        return None

    def new_session(self, start: Start) -> LiveSession:
        """The session a valid ``start`` message asks for, or a :class:`ProtocolError` saying why not."""
        seed = self.session_seed(start)
        if start.mode == "replay":
            replay = self.replay
            if replay is None:
                raise ProtocolError("replay mode needs the server started with --data ROOT --split SPLIT")
            if start.face:
                raise ProtocolError("replay mode takes no face values")
            if start.clip >= len(replay.clips):
                raise ProtocolError(f"clip {start.clip} does not exist (the split has {len(replay.clips)})")
            clip = replay.clip(start.clip)
            return replay_session(self.model, clip, self.settings.samples, sample_seed(seed, start.clip))
        if self.mic_problem is not None:
            raise ProtocolError(f"microphone mode is unavailable: {self.mic_problem}")
        try:
            source = MicSource(self.model, face=start.face, fps=self.settings.fps)
        except ReactError as exc:
            raise ProtocolError(f"microphone mode: {exc}") from None
        traits = self.settings.mic_personality
        traits = None if traits is None else np.asarray(traits, np.float32)
        return LiveSession(self.model, source, self.settings.samples, seed, traits)

    def personality_label(self, mode: str) -> str | None:
        """What the listener's traits are in ``mode`` for a personalised model (None: the model takes none)."""
        if self.model.predictor.personality_proj is None:
            return None
        if mode == "replay":
            return "the replayed clip's listener's traits (personality/listener.csv)"
        return self.settings.mic_personality_label or "neutral traits"

    def session_seed(self, start: Start) -> int:
        """The seed a session runs under: the client's, else the server's ``--seed``."""
        return self.settings.seed if start.seed is None else start.seed

    async def handle(self, ws: Socket) -> None:
        """One connection: admit or refuse it, run its session, close it with the reason if it
        broke a rule or was shed; never raises for what a client does."""
        from starlette.websockets import WebSocketDisconnect

        await ws.accept()
        number = self.state.admit()
        if number is None:
            n = self.settings.max_sessions
            reason = f"the server is full: {n} of {n} sessions run (--max-sessions {n}); try again later"
            await _close_with(ws, ProtocolError(reason, CLOSE_TRY_AGAIN))
            return
        try:
            await SessionRunner(self, ws, number).run()
        except WebSocketDisconnect:
            pass
        except (RuntimeError, OSError) as exc:  # the client vanished mid-send: its session ends, nothing else
            log.info("session %d ended: %s", number, exc)
        except ProtocolError as exc:
            if exc.code != CLOSE_TRY_AGAIN:  # a shed is counted as such, not as the client's error
                self.state.errors += 1
            log.info("session %d closed: %s", number, exc.reason)
            await _close_with(ws, exc)
        finally:
            self.state.release(number)


async def _close_with(ws: Socket, error: ProtocolError) -> None:
    """Tell the client why (an ``error`` message, then the close code with the reason cut to fit a
    close frame's 123 bytes); a client that already left is no error."""
    with contextlib.suppress(Exception):
        await ws.send_text(control("error", message=error.reason, code=error.code))
        await ws.close(error.code, error.reason.encode()[:120].decode(errors="ignore"))


class SessionRunner:
    """One session's reader and worker tasks (see the module docstring); ``lag`` is the lateness
    rule (default: :class:`reactcli.live.pacing.LagWindow`'s 2 s window and 120 ms)."""

    def __init__(self, server: LiveServer, ws: Socket, number: int, lag: LagWindow | None = None) -> None:
        self.server = server
        self.settings = server.settings
        self.ws = ws
        self.number = number
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.backlog = Backlog(self.settings.backlog_frames, self.settings.fps)
        self.lag = lag or LagWindow.at(self.settings.fps)

    async def run(self) -> None:
        start = await self._start()
        if start is None:
            return
        session = self.server.new_session(start)
        speaker_face = "the clip's face" if start.mode == "replay" else "camera" if start.face else "training mean"
        await self.ws.send_text(
            control(
                "ready",
                mode=start.mode,
                session=self.number,
                samples=session.samples,
                seed=self.server.session_seed(start),
                stream_seed=session.seed,
                reference=session.reference,
                face=start.face,
                frames=getattr(session.source, "total", None),
                speaker_face=speaker_face,
                fps=self.settings.fps,
                personality=self.server.personality_label(start.mode),
            )
        )
        reader = asyncio.create_task(self.read(session, start))
        try:
            await self.work(session)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _start(self) -> Start | None:
        """The client's ``start`` message (None: it left first)."""
        timeout = self.settings.start_timeout_s
        try:
            first = await asyncio.wait_for(self.ws.receive(), timeout=timeout)
        except asyncio.TimeoutError:
            raise ProtocolError(f"no start message within {timeout:g} s") from None
        if first["type"] == "websocket.disconnect":
            return None
        if first.get("text") is None:
            raise ProtocolError("the first message must be the JSON start message")
        return parse_start(first["text"])

    async def read(self, session: LiveSession, start: Start) -> None:
        """Check each client message and queue it with its arrival time; a verdict (an exception)
        or :data:`CLIENT_LEFT` ends the queue."""
        gate = RealtimeGate(self.settings.burst_frames, self.settings.fps) if self.settings.realtime else None
        seq = frame = 0
        try:
            while True:
                event = await self.ws.receive()
                if event["type"] == "websocket.disconnect":
                    await self.queue.put(CLIENT_LEFT)
                    return
                if event.get("bytes") is None:
                    raise ProtocolError("after start only binary messages are accepted")
                msg = decode(event["bytes"])
                check_input(msg, start.mode, seq, frame, start.face, self.settings.fps)
                seq, frame = seq + 1, frame + msg.frames
                now = time.monotonic()
                if gate is not None:
                    gate.admit(frame, now)
                self.backlog.add(msg.frames, session.mean_server_ms)
                await self.queue.put((msg, now))
        except ProtocolError as exc:
            await self.queue.put(exc)
        except Exception:  # a broken socket ends the session like a disconnect
            await self.queue.put(CLIENT_LEFT)

    async def work(self, session: LiveSession) -> None:
        """Push everything queued as one chunk, send the frames, judge the lateness; return when
        the client left, raise the reader's verdict or a shed."""
        out_seq = 0
        while True:
            work, stop = drain(await self.queue.get(), self.queue)
            if work:
                messages = [m for m, _ in work]
                values = np.concatenate([m.values for m in messages])
                self.backlog.done(len(values))
                result = await asyncio.to_thread(_step, session, values)
                if result.frames:
                    t_ms = messages[-1].t_ms
                    reply = Message(MsgType.FRAMES, out_seq, result.start, t_ms, result.packed(), result.server_ms)
                    await self.ws.send_bytes(encode(reply))
                    out_seq += 1
                now = time.monotonic()
                self.lag.record([(m.frames, (now - arrived) * 1e3) for m, arrived in work])
                self._judge(session, now)
                if session.reference and session.source.finished:  # a replay has an end
                    await self.ws.send_text(control("end", frames=session.frames_out))
            if isinstance(stop, BaseException):
                raise stop
            if stop is CLIENT_LEFT:
                return

    def _judge(self, session: LiveSession, now: float) -> None:
        """Report this session's lateness; raise the shed if the server picks this session."""
        if not self.settings.realtime:
            return
        state = self.server.state
        state.report(self.number, self.lag.behind)
        if state.may_shed(self.number, now):
            lag = self.lag
            raise ProtocolError(
                f"the server cannot keep up: {lag.late_share:.0%} of this session's frames of the last "
                f"{lag.window / self.settings.fps:g} s left it over {lag.late_ms:.0f} ms late "
                f"({session.mean_server_ms:.0f} ms per frame, {len(state.active)} sessions); the newest late "
                "session is closed first. Try fewer --samples, fewer sessions or a GPU",
                CLOSE_TRY_AGAIN,
            )


def _step(session: LiveSession, values: np.ndarray) -> StepResult:
    try:
        return session.step(values)
    except ReactError as exc:  # e.g. a ReactionStream check: the client's input, not our bug
        raise ProtocolError(str(exc), CLOSE_POLICY) from None
