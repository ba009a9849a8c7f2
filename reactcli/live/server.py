"""The ``react live`` web app: one page, its assets, and one WebSocket per client session.

FastAPI (Starlette) on uvicorn. Everything the page needs is served from the package
(``reactcli/live/static``): no build step, no CDN, so it works offline. The listener face is drawn
in the browser from the 58 coefficients the server streams, with our face model (the built-in
schematic head, exported once at ``/api/face-model``) and the official camera and light of
:mod:`reactcli.render.camera`: server-side JPEG frames would spend 5-10 ms of the 2 shared cores
per face per frame, which the 20 ms generation budget cannot spare, and 83 floats per frame are
~30x smaller than a JPEG.

Each connection (``/ws``) is independent: it sends a JSON ``start``, gets ``ready``, then streams
binary input (:mod:`reactcli.live.protocol`); its own :class:`reactcli.live.session.LiveSession`
answers with ``FRAMES``. A reader task validates every message (type, size, sequence, rate) and
queues it; the worker takes everything queued, pushes it as one chunk (so a client that fell
behind catches up instead of queueing without bound) and sends the frames. A malformed, oversized,
out-of-order or too-fast message gets that client an ``error`` message and a close with a reason;
the server and the other sessions carry on.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reactcli.errors import ReactError
from reactcli.generate import sample_seed
from reactcli.live.protocol import (
    CHUNK,
    CLOSE_POLICY,
    FRAME_VALUES,
    MAX_FRAMES_PER_MESSAGE,
    MAX_MESSAGE_BYTES,
    MIC_RATE,
    Message,
    MsgType,
    ProtocolError,
    check_input,
    control,
    decode,
    encode,
    parse_start,
)
from reactcli.live.session import LiveSession, MicSource, replay_session, warm_up
from reactcli.vocab import EMOTION_COLUMNS, FACE_DIM, FPS

if TYPE_CHECKING:
    from fastapi import FastAPI, WebSocket

    from reactcli.live.replay import ReplayData
    from reactcli.models.checkpoint import ReactionModel

STATIC = Path(__file__).resolve().parent / "static"
log = logging.getLogger("reactcli.live")


@dataclass
class LiveSettings:
    """What every session of one server shares: sampling, seed, pacing and the optional camera path.

    ``realtime`` enforces the input rate (a client may run at most ``burst_frames`` ahead of 25 fps);
    tests and benchmarks that drive the socket as fast as they can turn it off. ``backlog_frames``
    bounds what may wait for the model: a client further behind than that is closed, not buffered.
    """

    samples: int
    seed: int = 0
    realtime: bool = True
    burst_frames: int = 2 * FPS
    backlog_frames: int = 2 * FPS
    start_timeout_s: float = 10.0
    warm_up: bool = True
    face_landmarker: Path | None = None
    mediapipe_js: Path | None = None
    stats: dict[str, int] = field(default_factory=lambda: {"sessions": 0, "active": 0, "errors": 0})


def _import_fastapi() -> Any:
    try:
        import fastapi
        import uvicorn  # noqa: F401
    except ImportError:
        raise ReactError(
            "react live needs the web extra: pip install 'reactcli[live]' (fastapi, uvicorn, websockets)"
        ) from None
    return fastapi


def mic_available(model: ReactionModel) -> str | None:
    """None when microphone mode can run with this model, else why not (shown on the page)."""
    try:
        MicSource(model)
    except ImportError as exc:
        return f"the streaming audio features are not installed ({exc.name})"
    except ReactError as exc:
        return str(exc)
    return None


def face_model_blob() -> tuple[dict[str, Any], bytes]:
    """The built-in face and the official camera for the page's renderer: JSON layout + one binary
    blob (neutral (V, 3), expression basis (3V, 52) row-major, albedo (F, 3) float32, triangles
    (F, 3) uint32; all little-endian)."""
    from reactcli.render import camera
    from reactcli.render.schematic import schematic_face

    face = schematic_face()
    n_tri = int(face.tri.shape[0])
    albedo = np.full((n_tri, 3), camera.ALBEDO, "<f4") if face.albedo is None else face.albedo.numpy().astype("<f4")
    parts = [
        ("neutral", face.neutral.numpy().astype("<f4")),
        ("exp_basis", face.exp_basis.numpy().astype("<f4")),
        ("albedo", albedo),
        ("tri", face.tri.numpy().astype("<u4")),
    ]
    layout, chunks, offset = {}, [], 0
    for name, arr in parts:
        data = np.ascontiguousarray(arr).tobytes()
        layout[name] = {"offset": offset, "shape": list(arr.shape), "dtype": "uint32" if name == "tri" else "float32"}
        chunks.append(data)
        offset += len(data)
    cam = camera.Camera()
    meta = {
        "name": face.name,
        "vertices": face.n_vertices,
        "triangles": int(face.tri.shape[0]),
        "layout": layout,
        "camera": {
            "size": cam.size,
            "distance": cam.distance,
            "focal_px": cam.focal_px,
            "znear": cam.znear,
            "zfar": cam.zfar,
        },
        "light": {"position": list(camera.LIGHT_POSITION), "ambient": camera.AMBIENT, "diffuse": camera.DIFFUSE},
    }
    return meta, b"".join(chunks)


def create_app(model: ReactionModel, settings: LiveSettings, replay: ReplayData | None = None) -> FastAPI:
    """The web app for one loaded model (and, for replay mode, one split's clips)."""
    fastapi = _import_fastapi()
    from fastapi import WebSocketDisconnect
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from starlette.routing import WebSocketRoute

    app = fastapi.FastAPI(title="react live", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if settings.mediapipe_js is not None:
        app.mount("/mediapipe", StaticFiles(directory=settings.mediapipe_js), name="mediapipe")
    mic_problem = mic_available(model)
    if settings.warm_up:
        warm_up(model, settings.samples, mic=mic_problem is None)
    face_meta, face_bytes = face_model_blob()
    counter = {"next": 0}

    @app.get("/")
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/favicon.ico")
    async def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/api/info")
    async def info() -> JSONResponse:
        camera = None
        if settings.face_landmarker is None:
            camera = "no --face-landmarker file given: the speaker's face is held at the training mean"
        elif settings.mediapipe_js is None:
            camera = "no --mediapipe-js folder given: the speaker's face is held at the training mean"
        return JSONResponse(
            {
                "fps": FPS,
                "rate": MIC_RATE,
                "chunk": CHUNK,
                "samples": settings.samples,
                "seed": settings.seed,
                "face_dim": FACE_DIM,
                "frame_values": FRAME_VALUES,
                "emotion_columns": list(EMOTION_COLUMNS),
                "max_frames_per_message": MAX_FRAMES_PER_MESSAGE,
                "mic": mic_problem is None,
                "mic_problem": mic_problem,
                "camera_problem": camera,
                "replay": replay is not None,
                "clips": []
                if replay is None
                else [
                    {
                        "index": c.index,
                        "speaker": c.speaker,
                        "listener": c.listener,
                        "video": c.video is not None,
                        "audio": c.audio is not None,
                    }
                    for c in replay.clips
                ],
            }
        )

    @app.get("/api/stats")
    async def server_stats() -> JSONResponse:
        """Sessions started, active now, and closed for a protocol error (a quick health check)."""
        return JSONResponse(settings.stats)

    @app.get("/api/face-model")
    async def face_model_meta() -> JSONResponse:
        return JSONResponse(face_meta)

    @app.get("/api/face-model.bin")
    async def face_model_bin() -> Response:
        return Response(face_bytes, media_type="application/octet-stream")

    def _clip_file(index: int, kind: str) -> Path:
        if replay is None or not 0 <= index < len(replay.clips):
            raise fastapi.HTTPException(404, "no such clip")
        path = getattr(replay.clips[index], kind)
        if path is None:
            raise fastapi.HTTPException(404, f"clip {index} has no {kind}")
        return path

    @app.get("/api/clips/{index}/video")
    async def clip_video(index: int) -> FileResponse:
        return FileResponse(_clip_file(index, "video"), media_type="video/mp4")

    @app.get("/api/clips/{index}/audio")
    async def clip_audio(index: int) -> FileResponse:
        return FileResponse(_clip_file(index, "audio"), media_type="audio/wav")

    @app.get("/api/face_landmarker.task")
    async def landmarker() -> FileResponse:
        if settings.face_landmarker is None:
            raise fastapi.HTTPException(404, "no --face-landmarker file given")
        return FileResponse(settings.face_landmarker, media_type="application/octet-stream")

    async def websocket(ws: WebSocket) -> None:
        await ws.accept()
        number = counter["next"]
        counter["next"] += 1
        settings.stats["sessions"] += 1
        settings.stats["active"] += 1
        try:
            await _run_session(ws, number)
        except WebSocketDisconnect:
            pass
        except (RuntimeError, OSError) as exc:  # the client vanished mid-send: its session ends, nothing else
            log.info("session %d ended: %s", number, exc)
        except ProtocolError as exc:
            settings.stats["errors"] += 1
            log.info("session %d closed: %s", number, exc.reason)
            with contextlib.suppress(Exception):
                await ws.send_text(control("error", message=exc.reason))
                await ws.close(exc.code, exc.reason.encode()[:120].decode(errors="ignore"))
        finally:
            settings.stats["active"] -= 1

    # a plain Starlette route: FastAPI would try to resolve the (postponed) annotation as a parameter
    app.router.routes.append(WebSocketRoute("/ws", websocket))

    def _session_for(start: Any) -> LiveSession:
        seed = settings.seed if start.seed is None else start.seed
        if start.mode == "replay":
            if replay is None:
                raise ProtocolError("replay mode needs the server started with --data ROOT --split SPLIT")
            if start.face:
                raise ProtocolError("replay mode takes no face values")
            if start.clip >= len(replay.clips):
                raise ProtocolError(f"clip {start.clip} does not exist (the split has {len(replay.clips)})")
            return replay_session(model, replay.clip(start.clip), settings.samples, sample_seed(seed, start.clip))
        if mic_problem is not None:
            raise ProtocolError(f"microphone mode is unavailable: {mic_problem}")
        try:
            source = MicSource(model, face=start.face)
        except ReactError as exc:
            raise ProtocolError(f"microphone mode: {exc}") from None
        return LiveSession(model, source, settings.samples, seed)

    async def _run_session(ws: WebSocket, number: int) -> None:
        try:
            first = await asyncio.wait_for(ws.receive(), timeout=settings.start_timeout_s)
        except asyncio.TimeoutError:
            raise ProtocolError(f"no start message within {settings.start_timeout_s:g} s") from None
        if first["type"] == "websocket.disconnect":
            return
        if first.get("text") is None:
            raise ProtocolError("the first message must be the JSON start message")
        start = parse_start(first["text"])
        session = _session_for(start)
        await ws.send_text(
            control(
                "ready",
                mode=start.mode,
                session=number,
                samples=session.samples,
                seed=session.seed,
                reference=session.reference,
                face=start.face,
                frames=getattr(session.source, "total", None),
                speaker_face="camera" if start.face else "training mean",
            )
        )
        queue: asyncio.Queue[Message | BaseException | None] = asyncio.Queue()
        pending = {"frames": 0}  # frames read but not yet pushed: the bounded backlog
        reader = asyncio.create_task(_read(ws, session, start.mode, start.face, queue, pending))
        try:
            await _work(ws, session, queue, pending)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _read(
        ws: WebSocket, session: LiveSession, mode: str, face: bool, queue: asyncio.Queue, pending: dict[str, int]
    ) -> None:
        seq = frame = 0
        t0 = None
        try:
            while True:
                event = await ws.receive()
                if event["type"] == "websocket.disconnect":
                    await queue.put(None)
                    return
                if event.get("bytes") is None:
                    raise ProtocolError("after start only binary messages are accepted")
                msg = decode(event["bytes"])
                check_input(msg, mode, seq, frame, face)
                seq, frame = seq + 1, frame + msg.frames
                now = time.monotonic()
                t0 = now if t0 is None else t0
                if settings.realtime and frame > (now - t0) * FPS + settings.burst_frames:
                    raise ProtocolError(
                        f"input runs ahead of real time: {frame} frames after {now - t0:.2f} s at {FPS} fps"
                    )
                if pending["frames"] + msg.frames > settings.backlog_frames:
                    speed = session.mean_server_ms
                    raise ProtocolError(
                        f"the model cannot keep up: more than {settings.backlog_frames} frames wait "
                        f"({speed:.0f} ms per frame, {1000 / FPS:.0f} available); try fewer --samples or a GPU"
                    )
                pending["frames"] += msg.frames
                await queue.put(msg)
        except ProtocolError as exc:
            await queue.put(exc)
        except Exception:  # a broken socket ends the session like a disconnect
            await queue.put(None)

    async def _work(ws: WebSocket, session: LiveSession, queue: asyncio.Queue, pending: dict[str, int]) -> None:
        out_seq = 0
        while True:
            batch = [await queue.get()]
            while not queue.empty():  # all that waits (at most backlog_frames): a late session catches up
                batch.append(queue.get_nowait())
            stop = next((i for i, item in enumerate(batch) if not isinstance(item, Message)), None)
            messages = [m for m in batch[:stop] if isinstance(m, Message)]
            if messages:
                values = np.concatenate([m.values for m in messages])
                pending["frames"] -= len(values)
                result = await asyncio.to_thread(_step, session, values)
                if result.frames:
                    await ws.send_bytes(
                        encode(
                            Message(
                                MsgType.FRAMES,
                                out_seq,
                                result.start,
                                messages[-1].t_ms,
                                result.packed(),
                                aux=result.server_ms,
                            )
                        )
                    )
                    out_seq += 1
                if session.reference and session.source.finished:  # a replay has an end
                    await ws.send_text(control("end", frames=session.frames_out))
            if stop is not None:
                item = batch[stop]
                if isinstance(item, BaseException):
                    raise item
                return

    return app


def _step(session: LiveSession, values: np.ndarray) -> Any:
    try:
        return session.step(values)
    except ReactError as exc:  # e.g. a ReactionStream check: the client's input, not our bug
        raise ProtocolError(str(exc), CLOSE_POLICY) from None


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free on ``host`` now (tests and benches start servers on it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def check_port(host: str, port: int) -> None:
    """Fail with one clear line when ``host:port`` cannot be bound (taken, or not an address here)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ReactError(f"--port {port}: {host}:{port} is already in use (pick another --port)") from None
            raise ReactError(f"--host {host}: cannot listen on {host}:{port} ({exc.strerror})") from None


def _uvicorn_config(app: FastAPI, host: str, port: int) -> Any:
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        ws_max_size=MAX_MESSAGE_BYTES + 1024,
        ws_ping_interval=20,
        lifespan="off",
    )


class BackgroundServer:
    """The app on uvicorn in a daemon thread, for scripts and tests: ``with BackgroundServer(app) as url:``."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        import threading

        import uvicorn

        port = port or free_port(host)
        check_port(host, port)
        self.url = f"http://{host}:{port}/"
        self.server = uvicorn.Server(_uvicorn_config(app, host, port))
        self.thread = threading.Thread(target=self.server.run, name="react-live", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise ReactError(f"{self.url}: the live server did not start")
            time.sleep(0.05)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def serve(app: FastAPI, host: str, port: int, on_ready: Any = None) -> None:
    """Run uvicorn until Ctrl-C; ``on_ready(url)`` is called once the socket listens."""
    import uvicorn

    check_port(host, port)
    server = uvicorn.Server(_uvicorn_config(app, host, port))
    if on_ready is not None:
        original = server.startup

        async def startup(sockets: Any = None) -> None:
            await original(sockets=sockets)
            if server.started:
                on_ready(f"http://{host if ':' not in host else f'[{host}]'}:{port}/")

        server.startup = startup  # type: ignore[method-assign]
    with contextlib.suppress(SystemExit):  # uvicorn logs a failed bind (port taken since check_port), exits
        server.run()
    if not server.started:
        raise ReactError(f"--port {port}: the server could not start on {host}:{port}")
