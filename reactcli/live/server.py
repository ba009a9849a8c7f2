"""The ``react live`` web app: one page, its assets, and one WebSocket per client session.

FastAPI (Starlette) on uvicorn. Everything the page needs is served from the package
(``reactcli/live/static``): no build step, no CDN, so it works offline. The listener face is drawn
in the browser from the 58 coefficients the server streams, with our face model (the built-in
schematic head, exported once at ``/api/face-model``) and the official camera and light of
:mod:`reactcli.render.camera`: server-side JPEG frames would spend 5-10 ms of the 2 shared cores
per face per frame, which the 20 ms generation budget cannot spare, and 83 floats per frame are
~30x smaller than a JPEG.

:func:`create_app` is the route table; a session's life (start, pacing, catch-up, shedding, the
session cap) is :mod:`reactcli.live.runner`'s, its timing rules :mod:`reactcli.live.pacing`'s.
:func:`serve` and :class:`BackgroundServer` put the app on a socket behind the Host/Origin guard
of :mod:`reactcli.live.guard`, with uvicorn's h11 parser so the request header size is capped.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reactcli.errors import ReactError
from reactcli.live.guard import MAX_HEADER_BYTES, RequestGuard, allowed_hosts, allowed_origins
from reactcli.live.protocol import FRAME_VALUES, MAX_FRAMES_PER_MESSAGE, MAX_MESSAGE_BYTES, MIC_RATE, chunk_width
from reactcli.live.runner import LiveServer, LiveSettings
from reactcli.live.session import warm_up
from reactcli.vocab import EMOTION_COLUMNS, FACE_DIM

if TYPE_CHECKING:
    from fastapi import FastAPI

    from reactcli.live.replay import ReplayData
    from reactcli.models.checkpoint import ReactionModel

STATIC = Path(__file__).resolve().parent / "static"


def _import_fastapi() -> Any:
    try:
        import fastapi
        import uvicorn  # noqa: F401
    except ImportError:
        raise ReactError(
            "react live needs the web extra: pip install 'reactcli[live]' (fastapi, uvicorn, websockets)"
        ) from None
    return fastapi


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
    """The web app for one loaded model (and, for replay mode, one split's clips): a route table
    over a :class:`reactcli.live.runner.LiveServer`, which runs the sessions."""
    fastapi = _import_fastapi()
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from starlette.routing import WebSocketRoute

    server = LiveServer(model, settings, replay)
    if settings.warm_up:
        warm_up(model, settings.samples, mic=server.mic_problem is None, fps=settings.fps)
    face_meta, face_bytes = face_model_blob()
    app = fastapi.FastAPI(title="react live", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.live = server
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if settings.mediapipe_js is not None:
        app.mount("/mediapipe", StaticFiles(directory=settings.mediapipe_js), name="mediapipe")

    def clip_file(index: int, kind: str) -> Path:
        if replay is None or not 0 <= index < len(replay.clips):
            raise fastapi.HTTPException(404, "no such clip")
        path = getattr(replay.clips[index], kind)
        if path is None:
            raise fastapi.HTTPException(404, f"clip {index} has no {kind}")
        return path

    @app.get("/")
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/favicon.ico")
    async def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/api/info")
    async def info() -> JSONResponse:
        return JSONResponse(page_info(server))

    @app.get("/api/stats")
    async def stats() -> JSONResponse:
        """Sessions started, active now, closed for a protocol error, refused and shed (a health check)."""
        return JSONResponse(server.state.stats())

    @app.get("/api/face-model")
    async def face_model_meta() -> JSONResponse:
        return JSONResponse(face_meta)

    @app.get("/api/face-model.bin")
    async def face_model_bin() -> Response:
        return Response(face_bytes, media_type="application/octet-stream")

    @app.get("/api/clips/{index}/video")
    async def clip_video(index: int) -> FileResponse:
        return FileResponse(clip_file(index, "video"), media_type="video/mp4")

    @app.get("/api/clips/{index}/audio")
    async def clip_audio(index: int) -> FileResponse:
        return FileResponse(clip_file(index, "audio"), media_type="audio/wav")

    @app.get("/api/face_landmarker.task")
    async def landmarker() -> FileResponse:
        if settings.face_landmarker is None:
            raise fastapi.HTTPException(404, "no --face-landmarker file given")
        return FileResponse(settings.face_landmarker, media_type="application/octet-stream")

    # a plain Starlette route: FastAPI would try to resolve the (postponed) annotation as a parameter
    app.router.routes.append(WebSocketRoute("/ws", server.handle))
    return app


def page_info(server: LiveServer) -> dict[str, Any]:
    """What the page needs to know before it starts a session (``/api/info``)."""
    replay = server.replay
    fps = server.settings.fps
    return {
        "fps": fps,
        "rate": MIC_RATE,
        "chunk": chunk_width(fps),
        "samples": server.settings.samples,
        "seed": server.settings.seed,
        "face_dim": FACE_DIM,
        "frame_values": FRAME_VALUES,
        "emotion_columns": list(EMOTION_COLUMNS),
        "max_frames_per_message": MAX_FRAMES_PER_MESSAGE,
        "max_sessions": server.settings.max_sessions,
        "mic": server.mic_problem is None,
        "mic_problem": server.mic_problem,
        "camera_problem": server.camera_problem(),
        "personality": None if server.personality_label("mic") is None else {
            "mic": server.personality_label("mic"), "replay": server.personality_label("replay")},
        "replay": replay is not None,
        "clips": []
        if replay is None
        else [
            {"index": c.index, "speaker": c.speaker, "listener": c.listener, "video": c.video is not None,
             "audio": c.audio is not None}
            for c in replay.clips
        ],
    }  # fmt: skip


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


def guarded(app: FastAPI, host: str, port: int, allow_origins: Iterable[str] = ()) -> RequestGuard:
    """The app behind the Host/Origin checks for a server bound to ``host:port``
    (:mod:`reactcli.live.guard`); ``allow_origins`` are deliberate extra page origins."""
    hosts = allowed_hosts(host, port)
    return RequestGuard(app, hosts, allowed_origins(hosts, allow_origins))


def _uvicorn_config(app: FastAPI, host: str, port: int, allow_origins: Iterable[str]) -> Any:
    import uvicorn

    return uvicorn.Config(
        guarded(app, host, port, allow_origins),
        host=host,
        port=port,
        log_level="warning",
        http="h11",  # its parser refuses a request head over MAX_HEADER_BYTES (httptools has no cap)
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        ws_max_size=MAX_MESSAGE_BYTES + 1024,
        ws_ping_interval=20,
        lifespan="off",
    )


class BackgroundServer:
    """The app on uvicorn in a daemon thread, for scripts and tests: ``with BackgroundServer(app) as url:``.
    Guarded and configured as :func:`serve` does it."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, allow_origins: Iterable[str] = ()) -> None:
        import threading

        import uvicorn

        port = port or free_port(host)
        check_port(host, port)
        self.url = f"http://{_url_host(host)}:{port}/"
        self.server = uvicorn.Server(_uvicorn_config(app, host, port, allow_origins))
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


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def serve(app: FastAPI, host: str, port: int, allow_origins: Iterable[str] = (), on_ready: Any = None) -> None:
    """Run uvicorn until Ctrl-C; ``on_ready(url)`` is called once the socket listens."""
    import uvicorn

    check_port(host, port)
    server = uvicorn.Server(_uvicorn_config(app, host, port, allow_origins))
    if on_ready is not None:
        original = server.startup

        async def startup(sockets: Any = None) -> None:
            await original(sockets=sockets)
            if server.started:
                on_ready(f"http://{_url_host(host)}:{port}/")

        server.startup = startup  # type: ignore[method-assign]
    with contextlib.suppress(SystemExit):  # uvicorn logs a failed bind (port taken since check_port), exits
        server.run()
    if not server.started:
        raise ReactError(f"--port {port}: the server could not start on {host}:{port}")
