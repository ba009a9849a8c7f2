"""``react live`` without a browser: the wire format, the per-session rules, replay == ``react generate``,
bad clients closed alone, and independent sessions (Starlette's in-process test client)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from _model_fixtures import trained_run  # noqa: F401  (session fixture)
from conftest import run_cli

pytest.importorskip("fastapi", reason="the live extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="starlette's test client needs httpx")

from fastapi.testclient import TestClient  # noqa: E402

from reactcli.live import protocol as P  # noqa: E402
from reactcli.live.mediapipe import BLENDSHAPE_DIM  # noqa: E402
from reactcli.vocab import CLIP_FRAMES, EMOTION_FRAMES, FACE_DIM  # noqa: E402

K, SEED = 2, 3


def tick(seq: int, frame: int, frames: int = 1) -> bytes:
    return P.encode(P.Message(P.MsgType.TICK, seq, frame, float(seq), np.zeros((frames, 0), np.float32)))


def audio(seq: int, frame: int, values: np.ndarray) -> bytes:
    return P.encode(P.Message(P.MsgType.AUDIO, seq, frame, 0.0, values))


# -- the wire format ------------------------------------------------------------------------------
def test_message_round_trip_is_little_endian_float32() -> None:
    values = np.arange(2 * P.CHUNK, dtype=np.float32).reshape(2, P.CHUNK) / 2000.0
    data = P.encode(P.Message(P.MsgType.AUDIO, 7, 14, 123.5, values, aux=1.25))
    assert len(data) == P.HEADER.size + values.size * 4 and data[:4] == b"RLV1"
    assert np.array_equal(np.frombuffer(data[P.HEADER.size :], "<f4").reshape(2, -1), values)
    msg = P.decode(data)
    assert (msg.type, msg.seq, msg.frame, msg.t_ms, msg.aux, msg.frames) == (P.MsgType.AUDIO, 7, 14, 123.5, 1.25, 2)
    assert np.array_equal(msg.values, values)


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda d: d[:10], "shorter than"),
        (lambda d: b"PKL0" + d[4:], "bad magic"),
        (lambda d: d[:4] + bytes([9]) + d[5:], "version 9"),
        (lambda d: d[:5] + bytes([77]) + d[6:], "unknown message type 77"),
        (lambda d: d[:6] + b"\x01\x00" + d[8:], "reserved flags"),
        (lambda d: d + b"\x00\x00\x00\x00", "announces"),
        (lambda d: d[:-4], "announces"),
        (lambda d: d + bytes(P.MAX_MESSAGE_BYTES), "exceeds the limit"),
    ],
)
def test_decode_rejects_malformed_bytes(mutate, words: str) -> None:
    good = audio(0, 0, np.zeros((1, P.CHUNK), np.float32))
    with pytest.raises(P.ProtocolError, match=words):
        P.decode(mutate(good))


@pytest.mark.parametrize(
    ("msg", "mode", "words"),
    [
        (P.Message(P.MsgType.TICK, 1, 0, 0.0, np.zeros((1, 0), np.float32)), "replay", "out-of-order"),
        (P.Message(P.MsgType.TICK, 0, 5, 0.0, np.zeros((1, 0), np.float32)), "replay", "expected 0"),
        (P.Message(P.MsgType.TICK, 0, 0, 0.0, np.zeros((9, 0), np.float32)), "replay", "1 to 8 frames"),
        (P.Message(P.MsgType.AUDIO, 0, 0, 0.0, np.zeros((1, P.CHUNK), np.float32)), "replay", "TICK"),
        (P.Message(P.MsgType.AUDIO, 0, 0, 0.0, np.zeros((1, 320), np.float32)), "mic", "640 values"),
        (P.Message(P.MsgType.AUDIO, 0, 0, 0.0, np.full((1, P.CHUNK), np.nan, np.float32)), "mic", "NaN"),
        (P.Message(P.MsgType.AUDIO, 0, 0, 0.0, np.full((1, P.CHUNK), 3000.0, np.float32)), "mic", "not int16"),
    ],
)
def test_session_rules(msg: P.Message, mode: str, words: str) -> None:
    with pytest.raises(P.ProtocolError, match=words):
        P.check_input(msg, mode, seq=0, frame=0, face=False)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", "not JSON"),
        ('{"type": "start", "mode": "tv"}', "mode"),
        ('{"type": "start", "mode": "mic", "evil": 1}', "evil"),
        ('{"type": "start", "mode": "replay", "clip": -1}', "clip"),
        ('{"type": "start", "mode": "mic", "sample_rate": 44100}', "16000"),
    ],
)
def test_start_message_is_strict(text: str, words: str) -> None:
    with pytest.raises(P.ProtocolError, match=words):
        P.parse_start(text)


# -- the app --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def live_model(trained_run):  # noqa: F811
    from reactcli.generate import load_for_generation
    from reactcli.runtime import resolve_device

    return load_for_generation(trained_run / "predictor.ckpt", resolve_device("cpu"), {"generation": {"samples": K}})


@pytest.fixture(scope="module")
def replay_data(live_model, preprocessed_root: Path):
    from reactcli.live.replay import ReplayData

    return ReplayData(preprocessed_root, "val", live_model)


def make_client(live_model, replay_data, realtime: bool = False) -> TestClient:
    from reactcli.live.runner import LiveSettings
    from reactcli.live.server import create_app

    return TestClient(create_app(live_model, LiveSettings(samples=K, seed=SEED, realtime=realtime), replay_data))


@pytest.fixture(scope="module")
def generated(trained_run, preprocessed_root: Path, tmp_path_factory) -> tuple[np.ndarray, np.ndarray]:  # noqa: F811
    out = tmp_path_factory.mktemp("generated")
    assert (
        run_cli(
            [
                "generate",
                "--checkpoint",
                str(trained_run / "predictor.ckpt"),
                "--data",
                str(preprocessed_root),
                "--split",
                "val",
                "--samples",
                str(K),
                "--seed",
                str(SEED),
                "--out",
                str(out),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    return np.load(out / "face3dmm.npy"), np.load(out / "emotion.npy")


def start(ws, **fields) -> dict:
    ws.send_text(json.dumps({"type": "start", **fields}))
    return ws.receive_json()


def replay_frames(ws, frames: int) -> np.ndarray:
    """Tick one frame at a time and collect the (frames, dim) rows the server sends back."""
    rows = []
    for i in range(frames):
        ws.send_bytes(tick(i, i))
        msg = P.decode(ws.receive_bytes(), max_bytes=1 << 24)
        assert msg.type == P.MsgType.FRAMES and msg.frame == i and msg.seq == i and msg.frames == 1
        rows.append(msg.values)
    return np.concatenate(rows)


def split_reactions(rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wire rows (T, (K + 1) * 83) -> face (K, T, 58), emotion (K, T, 25), ground truth (T, 83)."""
    t = len(rows)
    per = rows[:, : k * P.FRAME_VALUES].reshape(t, k, P.FRAME_VALUES).transpose(1, 0, 2)
    return per[..., :FACE_DIM], per[..., FACE_DIM:], rows[:, k * P.FRAME_VALUES :]


def test_page_and_assets_are_served(live_model, replay_data) -> None:
    client = make_client(live_model, replay_data)
    page = client.get("/")
    assert page.status_code == 200 and "AudioWorklet" in page.text
    from reactcli.live.server import STATIC

    for asset in STATIC.iterdir():  # no CDN: nothing may come from another host
        text = client.get(f"/static/{asset.name}").text
        assert re.search(r"https?://|cdn|unpkg|jsdelivr|googleapis", text) is None, asset.name
    info = client.get("/api/info").json()
    assert info["replay"] and info["samples"] == K and len(info["clips"]) == len(replay_data)
    meta = client.get("/api/face-model").json()
    blob = client.get("/api/face-model.bin").content
    tri = meta["layout"]["tri"]
    assert len(blob) == tri["offset"] + 4 * np.prod(tri["shape"])
    assert client.get("/api/clips/0/video").status_code == 200
    assert client.get("/api/clips/999/video").status_code == 404


def test_replay_over_the_socket_equals_react_generate(live_model, replay_data, generated) -> None:
    """All 751 frames of every reaction, streamed frame by frame, equal the offline generation."""
    face_ref, emotion_ref = generated
    client = make_client(live_model, replay_data)
    index = 1
    with client.websocket_connect("/ws") as ws:
        ready = start(ws, mode="replay", clip=index)
        assert ready["type"] == "ready" and ready["frames"] == CLIP_FRAMES and ready["reference"]
        rows = replay_frames(ws, CLIP_FRAMES)
        assert ws.receive_json() == {"type": "end", "frames": CLIP_FRAMES}
    face, emotion, truth = split_reactions(rows, K)
    assert face.shape == (K, CLIP_FRAMES, FACE_DIM)
    # frame by frame instead of one patch per push: equal up to float rounding, same sampled codes
    np.testing.assert_allclose(face, face_ref[index], atol=1e-4)
    np.testing.assert_allclose(emotion[:, :EMOTION_FRAMES], emotion_ref[index], atol=1e-4)
    clip = replay_data.clip(index)
    np.testing.assert_array_equal(truth[:, :FACE_DIM], clip["listener_3dmm"])


def test_replay_library_loop_equals_react_generate(live_model, replay_data, generated) -> None:
    from reactcli.live.replay import replay_clip

    face, emotion = replay_clip(live_model, replay_data, 0, K, SEED)
    np.testing.assert_allclose(face, generated[0][0], atol=1e-4)
    np.testing.assert_allclose(emotion, generated[1][0], atol=1e-4)


@pytest.mark.parametrize(
    ("send", "words"),
    [
        (lambda ws: ws.send_bytes(b"\x80\x04pickle"), "shorter than"),
        (lambda ws: ws.send_bytes(tick(1, 0)), "out-of-order"),
        (lambda ws: ws.send_bytes(tick(0, 0) + bytes(P.MAX_MESSAGE_BYTES)), "exceeds the limit"),
        (lambda ws: ws.send_text('{"type": "start", "mode": "replay"}'), "only binary"),
        (lambda ws: ws.send_bytes(audio(0, 0, np.zeros((1, P.CHUNK), np.float32))), "TICK"),
    ],
)
def test_a_bad_client_is_closed_alone(live_model, replay_data, send, words: str) -> None:
    client = make_client(live_model, replay_data)
    with client.websocket_connect("/ws") as good, client.websocket_connect("/ws") as bad:
        start(good, mode="replay", clip=2)
        start(bad, mode="replay", clip=2)
        good.send_bytes(tick(0, 0))
        first = P.decode(good.receive_bytes(), 1 << 24)
        send(bad)
        error = bad.receive_json()
        assert error["type"] == "error" and words in error["message"]
        closed = bad.receive()
        assert closed["type"] == "websocket.close" and closed["code"] in (P.CLOSE_POLICY, P.CLOSE_TOO_BIG)
        for _ in range(100):  # the server's bookkeeping runs just after the close
            stats = client.get("/api/stats").json()
            if stats["active"] == 1:
                break
            time.sleep(0.01)
        assert (stats["sessions"], stats["active"], stats["errors"], stats["refused"]) == (2, 1, 1, 0)
        good.send_bytes(tick(1, 1))  # the other session carries on
        second = P.decode(good.receive_bytes(), 1 << 24)
        assert (first.frame, second.frame) == (0, 1)
    with client.websocket_connect("/ws") as again:  # and the server takes new clients
        assert start(again, mode="replay", clip=0)["type"] == "ready"


@pytest.mark.parametrize(
    ("fields", "words"),
    [({"mode": "replay", "clip": 99}, "does not exist"), ({"mode": "replay", "face": True}, "no face values")],
)
def test_bad_start_is_refused(live_model, replay_data, fields, words: str) -> None:
    with make_client(live_model, replay_data).websocket_connect("/ws") as ws:
        reply = start(ws, **fields)
        assert reply["type"] == "error" and words in reply["message"]


def test_two_clients_are_independent_sessions(live_model, replay_data) -> None:
    """Interleaved sessions (different clips and seeds) give what each gives alone."""
    client = make_client(live_model, replay_data)
    n = 40
    alone = {}
    for clip, seed in ((0, 1), (3, 2)):
        with client.websocket_connect("/ws") as ws:
            start(ws, mode="replay", clip=clip, seed=seed)
            alone[clip] = replay_frames(ws, n)
    with client.websocket_connect("/ws") as a, client.websocket_connect("/ws") as b:
        assert start(a, mode="replay", clip=0, seed=1)["seed"] != start(b, mode="replay", clip=3, seed=2)["seed"]
        rows: dict[int, list[np.ndarray]] = {0: [], 3: []}
        for i in range(n):
            for clip, ws in ((0, a), (3, b)):
                ws.send_bytes(tick(i, i))
                rows[clip].append(P.decode(ws.receive_bytes(), 1 << 24).values)
    for clip in (0, 3):
        np.testing.assert_array_equal(np.concatenate(rows[clip]), alone[clip])
    assert not np.array_equal(alone[0], alone[3])


def test_a_client_faster_than_real_time_is_closed(live_model, replay_data) -> None:
    client = make_client(live_model, replay_data, realtime=True)
    with client.websocket_connect("/ws") as ws:
        start(ws, mode="replay", clip=0)
        reply: dict = {}
        for i in range(0, 400, 8):  # 16 s of frames at once
            ws.send_bytes(tick(i // 8, i, 8))
        while reply.get("type") != "error":
            event = ws.receive()
            if event.get("text"):
                reply = json.loads(event["text"])
        assert "ahead of real time" in reply["message"] or "wait for the model" in reply["message"]


def test_cli_reports_a_taken_port(trained_run, capsys) -> None:  # noqa: F811
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code = run_cli(["live", "--checkpoint", str(trained_run / "predictor.ckpt"), "--port", str(port)])
    err = capsys.readouterr().err
    assert code == 1 and f"--port {port}" in err and "already in use" in err and "Traceback" not in err


def test_cli_reports_a_missing_checkpoint(tmp_path: Path, capsys) -> None:
    code = run_cli(["live", "--checkpoint", str(tmp_path / "nope.ckpt"), "--port", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "nope.ckpt: --checkpoint file not found" in err


@pytest.mark.parametrize(
    ("args", "want"),
    [([], 10), (["--set", "generation.samples=4"], 4), (["--samples", "2", "--set", "generation.samples=4"], 2)],
)
def test_cli_takes_k_from_generation_samples(trained_run, monkeypatch, args: list[str], want: int) -> None:  # noqa: F811
    """K as in react generate: --samples > --set generation.samples > the checkpoint's (tiny: 10)."""
    import reactcli.live.server as server

    port = str(server.free_port())
    served = {}
    monkeypatch.setattr(server, "serve", lambda app, host, port, **kw: served.update(app=app, kw=kw))
    monkeypatch.delenv("REACT_GENERATION__SAMPLES", raising=False)
    ckpt = str(trained_run / "predictor.ckpt")
    assert run_cli(["live", "--checkpoint", ckpt, "--port", port, "--allow-origin", "http://a.example:9", *args]) == 0
    assert served["app"].state.live.settings.samples == want
    assert list(served["kw"]["allow_origins"]) == ["http://a.example:9"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--host", "0.0.0.0"], "--host 0.0.0.0: a wildcard address cannot be checked against the Host header"),
        (["--allow-origin", "evil.example"], "--allow-origin evil.example: expected scheme://host[:port]"),
    ],
)
def test_cli_refuses_an_unguardable_host_and_a_malformed_origin(trained_run, capsys, args, words) -> None:  # noqa: F811
    code = run_cli(["live", "--checkpoint", str(trained_run / "predictor.ckpt"), "--port", "1", *args])
    err = capsys.readouterr().err
    assert code == 1 and words in err and "Traceback" not in err


def test_microphone_mode_equals_offline_features_and_generation(live_model, replay_data) -> None:
    """640-sample chunks over the socket give the reactions of the offline pipeline on the same
    wav: offline features, the training-mean face and the fallback speaker emotion."""
    from reactcli.data.features import FeatureExtractor
    from reactcli.generate import generate_reactions
    from reactcli.live.emotion_source import speaker_emotion_fallback
    from reactcli.live.face_source import FaceStats, neutral_face

    frames = 60
    rng = np.random.default_rng(0)
    t = np.arange(frames * P.CHUNK) / P.MIC_RATE
    wave = (
        0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 2 * t)) / 2 + 0.02 * rng.normal(size=t.shape)
    ).astype(np.float32)
    client = make_client(live_model, replay_data)
    rows = []
    with client.websocket_connect("/ws") as ws:
        ready = start(ws, mode="mic", seed=5)
        assert ready["type"] == "ready" and ready["speaker_face"] == "training mean" and not ready["reference"]
        for i in range(frames):
            ws.send_bytes(audio(i, i, wave[i * P.CHUNK : (i + 1) * P.CHUNK][None]))
            msg = P.decode(ws.receive_bytes(), 1 << 24)
            assert msg.frame == i and msg.frames == 1  # one chunk in, one listener frame out
            rows.append(msg.values)
        ws.send_bytes(audio(frames, frames, np.full((1, P.CHUNK), 2.0, np.float32)))  # int16-scale: refused
        assert "outside [-1, 1]" in ws.receive_json()["message"]
    face, emotion, _ = split_reactions(np.concatenate(rows), K)
    feats = FeatureExtractor(live_model.config.audio)(wave, P.MIC_RATE, frames=frames)
    speaker_face = np.repeat(neutral_face(FaceStats.from_model(live_model))[None], frames, 0)
    fallback = speaker_emotion_fallback(live_model)
    speaker_emotion = None if fallback is None else np.repeat(fallback[None], frames, 0)
    ref_face, ref_emotion = generate_reactions(live_model, feats, speaker_face, speaker_emotion, K, seed=5)
    np.testing.assert_allclose(face, ref_face, atol=1e-4)
    np.testing.assert_allclose(emotion, ref_emotion, atol=1e-4)


def test_real_uvicorn_server_survives_an_oversized_message(live_model, replay_data) -> None:
    """Over a real socket uvicorn's own size limit (just above the protocol's) closes the sender
    with 1009 before our decoder sees it; the next client is served as usual."""
    pytest.importorskip("websockets")
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    from reactcli.live.runner import LiveSettings
    from reactcli.live.server import BackgroundServer, create_app

    app = create_app(live_model, LiveSettings(samples=K, seed=SEED, warm_up=False), replay_data)
    with BackgroundServer(app) as url:
        ws_url = url.replace("http://", "ws://") + "ws"
        with connect(ws_url, max_size=1 << 24) as ws:
            ws.send(json.dumps({"type": "start", "mode": "replay", "clip": 0}))
            assert json.loads(ws.recv())["type"] == "ready"
            ws.send(bytes(4 * P.MAX_MESSAGE_BYTES))
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    ws.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == P.CLOSE_TOO_BIG
        with connect(ws_url, max_size=1 << 24) as ws:
            ws.send(json.dumps({"type": "start", "mode": "replay", "clip": 0}))
            assert json.loads(ws.recv())["type"] == "ready"
            ws.send(tick(0, 0))
            assert P.decode(ws.recv(timeout=10), 1 << 24).frame == 0


def test_microphone_mode_with_camera_face_values(live_model, replay_data) -> None:
    """Blendshapes + MediaPipe's column-major pose ride along with each chunk and change the
    speaker input; a negative first score means no face yet; a broken pose closes the session."""
    rng = np.random.default_rng(1)
    pose = np.eye(4)
    pose[:3, 3] = [0.0, 0.0, -50.0]  # 50 cm in front of MediaPipe's camera
    pose_data = pose.T.reshape(-1)  # column-major, as Matrix.data

    def chunk(blend: np.ndarray, data: np.ndarray = pose_data) -> np.ndarray:
        wave = (0.1 * rng.normal(size=P.CHUNK)).clip(-1, 1)
        return np.concatenate([wave, blend, data]).astype(np.float32)[None]

    client = make_client(live_model, replay_data)
    no_face = np.full(BLENDSHAPE_DIM, -1.0)
    with client.websocket_connect("/ws") as ws:
        assert start(ws, mode="mic", face=True)["speaker_face"] == "camera"
        ws.send_bytes(audio(0, 0, chunk(no_face)))
        assert P.decode(ws.receive_bytes(), 1 << 24).frames == 1
        for i in range(1, 4):
            ws.send_bytes(audio(i, i, chunk(rng.random(BLENDSHAPE_DIM))))
            assert P.decode(ws.receive_bytes(), 1 << 24).frame == i
        ws.send_bytes(audio(4, 4, chunk(rng.random(BLENDSHAPE_DIM), pose.reshape(-1))))  # row-major: wrong
        error = ws.receive_json()
        assert error["type"] == "error" and "matrix" in error["message"]


# -- the session runner without a socket ------------------------------------------------------------
class FakeSocket:
    """What the runner needs of a WebSocket: queued client events in, everything sent recorded."""

    def __init__(self, *events: dict) -> None:
        self.events = list(events)
        self.sent: list = []
        self.closed: tuple[int, str] | None = None

    async def accept(self) -> None:
        pass

    async def receive(self) -> dict:
        if self.events:
            return self.events.pop(0)
        await asyncio.sleep(3600)  # a client that says nothing more
        raise AssertionError("unreachable")

    async def send_text(self, data: str) -> None:
        self.sent.append(json.loads(data))

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(P.decode(data, 1 << 24))

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed = (code, reason or "")


def text(payload: dict) -> dict:
    return {"type": "websocket.receive", "text": json.dumps(payload)}


def binary(data: bytes) -> dict:
    return {"type": "websocket.receive", "bytes": data}


LEFT = {"type": "websocket.disconnect", "code": 1000}


def test_runner_catches_up_in_one_push(live_model, replay_data) -> None:
    """Three ticks waiting when the worker wakes go through the model as one push of 3 frames."""
    from reactcli.live.runner import LiveServer, LiveSettings

    server = LiveServer(live_model, LiveSettings(samples=K, seed=SEED, warm_up=False), replay_data)
    ws = FakeSocket(text({"type": "start", "mode": "replay", "clip": 0}), *[binary(tick(i, i)) for i in range(3)], LEFT)
    asyncio.run(asyncio.wait_for(server.handle(ws), 60))
    ready, frames = ws.sent
    assert ready["type"] == "ready" and isinstance(frames, P.Message)
    assert (frames.frame, frames.frames) == (0, 3)
    assert server.state.stats()["active"] == 0 and ws.closed is None


def test_runner_sheds_a_session_that_falls_behind(live_model, replay_data) -> None:
    """With a lateness rule every frame breaks (0 ms allowed), the session is closed with 1013 and
    the reason, and counted as shed, not as a client error."""
    from reactcli.live.pacing import LagWindow
    from reactcli.live.runner import LiveServer, LiveSettings, SessionRunner

    server = LiveServer(live_model, LiveSettings(samples=K, seed=SEED, warm_up=False), replay_data)
    ws = FakeSocket(text({"type": "start", "mode": "replay", "clip": 0}), *[binary(tick(i, i)) for i in range(4)])
    number = server.state.admit()
    runner = SessionRunner(server, ws, number, lag=LagWindow(window=4, late_ms=0.0))
    with pytest.raises(P.ProtocolError, match="cannot keep up: 100% of this session's frames") as shed:
        asyncio.run(asyncio.wait_for(runner.run(), 60))
    assert shed.value.code == P.CLOSE_TRY_AGAIN and server.state.shed == 1


def test_ready_tells_the_truth_about_seed_and_speaker_face(live_model, replay_data) -> None:
    """The seed shown is the server's --seed (not the per-clip stream seed); replay's speaker face
    is the clip's, not the training mean."""
    from reactcli.generate import sample_seed

    with make_client(live_model, replay_data).websocket_connect("/ws") as ws:
        ready = start(ws, mode="replay", clip=3)
    assert ready["seed"] == SEED and ready["stream_seed"] == sample_seed(SEED, 3) != SEED
    assert ready["speaker_face"] == "the clip's face"


# -- a real server: who may connect ------------------------------------------------------------------
MAX = 2
ALLOWED = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def real_server(live_model, replay_data):
    from reactcli.live.runner import LiveSettings
    from reactcli.live.server import BackgroundServer, create_app

    settings = LiveSettings(samples=K, seed=SEED, warm_up=False, max_sessions=MAX)
    with BackgroundServer(create_app(live_model, settings, replay_data), allow_origins=[ALLOWED]) as url:
        yield url


def raw_request(url: str, head: str, extra: bytes = b"") -> bytes:
    """Send a request head (plus ``extra`` header bytes) over a plain socket; the reply's first bytes."""
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        try:
            sock.sendall(head.encode())
            for i in range(0, len(extra), 1 << 16):
                sock.sendall(extra[i : i + (1 << 16)])
            sock.sendall(b"\r\n")
        except OSError:  # the server stopped reading: its answer is still there to read
            pass
        try:
            return sock.recv(4096)
        except OSError:
            return b""


def upgrade(url: str, host: str | None = None, origin: str | None = None) -> bytes:
    hostport = url.split("//")[1].rstrip("/")
    head = (
        f"GET /ws HTTP/1.1\r\nHost: {host or hostport}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        + (f"Origin: {origin}\r\n" if origin else "")
    )
    return raw_request(url, head)


def status(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else 0


def test_websocket_only_from_the_pages_own_origin(real_server: str) -> None:
    own = real_server.rstrip("/")
    assert status(upgrade(real_server, origin=own)) == 101
    assert status(upgrade(real_server, origin=own.replace("127.0.0.1", "localhost"))) == 101
    assert status(upgrade(real_server, origin=ALLOWED)) == 101  # --allow-origin
    assert status(upgrade(real_server)) == 101  # a program, not a browser (browsers always send Origin)
    for foreign in ("http://127.0.0.1:8001", "http://evil.example", "null", own.replace("http:", "https:")):
        assert status(upgrade(real_server, origin=foreign)) == 403, foreign


def test_a_rebinding_host_is_refused_on_http_and_websocket(real_server: str) -> None:
    port = real_server.rstrip("/").rsplit(":", 1)[1]
    for path in ("/api/info", "/api/clips/0/audio", "/"):
        good = raw_request(real_server, f"GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\n")
        assert status(good) == 200, path
        for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1:{int(port) + 1}"):
            bad = raw_request(real_server, f"GET {path} HTTP/1.1\r\nHost: {host}\r\n")
            assert status(bad) == 403 and b"is not this server" in bad, (path, host)
    assert status(upgrade(real_server, host=f"evil.example:{port}", origin=f"http://evil.example:{port}")) == 403
    assert status(upgrade(real_server, host=f"evil.example:{port}")) == 403


def test_an_oversized_header_is_refused(real_server: str) -> None:
    port = real_server.rstrip("/").rsplit(":", 1)[1]
    head = f"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Big: "
    assert status(raw_request(real_server, head, b"a" * 10_000_000 + b"\r\n")) == 400
    assert status(raw_request(real_server, head, b"a" * 1000 + b"\r\n")) == 200  # an ordinary one still passes


def test_the_session_cap_refuses_the_next_client_with_a_reason(real_server: str) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    ws_url = real_server.replace("http://", "ws://") + "ws"

    def begin(ws) -> dict:
        ws.send(json.dumps({"type": "start", "mode": "replay", "clip": 0}))
        return json.loads(ws.recv(timeout=20))

    with connect(ws_url) as a, connect(ws_url) as b:
        assert begin(a)["type"] == "ready" and begin(b)["type"] == "ready"
        with connect(ws_url) as c:
            error = json.loads(c.recv(timeout=20))
            assert error["type"] == "error" and f"--max-sessions {MAX}" in error["message"]
            with pytest.raises(ConnectionClosed) as closed:
                c.recv(timeout=20)
            assert closed.value.rcvd.code == P.CLOSE_TRY_AGAIN and "server is full" in closed.value.rcvd.reason
    deadline = time.monotonic() + 20
    while urllib.request.urlopen(real_server + "api/stats").read().count(b'"active":0') == 0:
        assert time.monotonic() < deadline, "the closed sessions were never released"
        time.sleep(0.05)
    with connect(ws_url) as again:  # the slots are free again
        assert begin(again)["type"] == "ready"
