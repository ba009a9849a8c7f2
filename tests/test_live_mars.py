"""``react live`` with a MARS model (REACT 2025/2026): 30 fps everywhere. The page's rate and row width,
the server's pacing, replay of a MARS split equal to ``react generate`` (with the clip's listener
traits), microphone rows cut at the 30 fps frame boundaries equal to the offline pipeline (with the
training listeners' mean traits), and the padding rule of a microphone row."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _mars_fixtures import write_mars_val
from _mars_models import MARS_TINY
from conftest import run_cli
from test_generate_mars import mars_checkpoint

pytest.importorskip("fastapi", reason="the live extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="starlette's test client needs httpx")

from fastapi.testclient import TestClient  # noqa: E402

from reactcli.live import protocol as P  # noqa: E402
from reactcli.vocab import FACE_DIM  # noqa: E402

K, SEED, FPS30 = 2, 3, 30


@pytest.fixture(scope="module")
def mars_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The independent MARS split written as val, and again (another seed) as train: train's listener
    traits give microphone mode its mean."""
    root = tmp_path_factory.mktemp("live-mars") / "data"
    write_mars_val(root)
    write_mars_val(root, seed=1, split="train")
    assert run_cli(["preprocess", "--data", str(root), "--config", str(MARS_TINY), "--splits", "train,val"]) == 0
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mars_checkpoint(tmp_path_factory.mktemp("live-mars-ckpt") / "predictor.ckpt", seed=2)


@pytest.fixture(scope="module")
def model(checkpoint: Path):
    from reactcli.generate import load_generation_model
    from reactcli.runtime import resolve_device

    loaded, facts = load_generation_model(checkpoint, resolve_device("cpu"), {"generation": {"samples": K}})
    assert (facts.edition, facts.fps) == ("2026", FPS30)
    return loaded


@pytest.fixture(scope="module")
def replay(model, mars_root: Path):
    from reactcli.live.replay import ReplayData

    return ReplayData(mars_root, "val", model, "2026")


def make_client(model, replay, mars_root: Path, realtime: bool = False) -> TestClient:
    from reactcli.live.runner import LiveSettings
    from reactcli.live.server import create_app
    from reactcli.live.session import mic_personality

    traits, label = mic_personality(model, mars_root)
    settings = LiveSettings(samples=K, seed=SEED, realtime=realtime, fps=FPS30, warm_up=False,
                            mic_personality=tuple(map(float, traits)), mic_personality_label=label)  # fmt: skip
    return TestClient(create_app(model, settings, replay))


def start(ws, **fields) -> dict:
    ws.send_text(json.dumps({"type": "start", **fields}))
    return ws.receive_json()


def tick(seq: int, frame: int, frames: int = 1) -> bytes:
    return P.encode(P.Message(P.MsgType.TICK, seq, frame, float(seq), np.zeros((frames, 0), np.float32)))


def mic_rows(wave: np.ndarray, first: int, frames: int) -> np.ndarray:
    """(frames, 534) rows: frame t's 533 or 534 samples at 16 kHz, zeros after them."""
    width = P.chunk_width(FPS30)
    counts = P.frame_samples(first, frames, FPS30)
    starts = (np.arange(first, first + frames) * P.MIC_RATE) // FPS30
    rows = np.zeros((frames, width), np.float32)
    for i, (a, n) in enumerate(zip(starts, counts, strict=True)):
        rows[i, :n] = wave[a : a + n]
    return rows


def test_the_page_runs_at_the_models_30_fps(model, replay, mars_root: Path) -> None:
    info = make_client(model, replay, mars_root).get("/api/info").json()
    assert info["fps"] == FPS30 and info["chunk"] == 534 == P.chunk_width(FPS30) and P.chunk_width(25) == 640
    assert info["personality"]["replay"].startswith("the replayed clip's listener")
    assert "mean traits of the 9 train listener" in info["personality"]["mic"]
    assert [c["speaker"] for c in info["clips"]] == [s.id for s in replay.mars.speakers.samples]
    assert list(P.frame_samples(0, 6, FPS30)) == [533, 533, 534, 533, 533, 534]


def test_the_server_paces_a_mars_model_at_30_fps(model, replay, mars_root: Path) -> None:
    """A client may run 2 s ahead: 60 frames at 30 fps (at 25 fps it would be 50). 56 frames at once
    are taken; the next 8 pass the limit and close the session, naming the rate."""
    client = make_client(model, replay, mars_root, realtime=True)
    with client.websocket_connect("/ws") as ws:
        assert start(ws, mode="replay", clip=1)["fps"] == FPS30
        for i in range(7):  # 56 frames: more than 2 s at 25 fps, less than 2 s at 30 fps
            ws.send_bytes(tick(i, 8 * i, 8))
        got = 0
        while got < 56:
            msg = P.decode(ws.receive_bytes(), 1 << 24)
            got += msg.frames
        ws.send_bytes(tick(7, 56, 8))  # 64 frames within far less than the 0.13 s they would need
        reply = ws.receive_json()
        assert reply["type"] == "error" and "ahead of real time" in reply["message"] and "30 fps" in reply["message"]


def test_mars_replay_over_the_socket_equals_react_generate(
    model, replay, mars_root: Path, checkpoint: Path, tmp_path: Path
) -> None:
    """Frame by frame over the socket, with the clip's listener traits: the reactions ``react generate``
    wrote for that sample (float rounding apart), the real listener beside them, and 30 fps ends."""
    from reactcli.predictions import PredictionSet

    assert run_cli(["generate", "--checkpoint", str(checkpoint), "--data", str(mars_root), "--split", "val",
                    "--samples", str(K), "--seed", str(SEED), "--out", str(tmp_path / "pred")]) == 0  # fmt: skip
    preds = PredictionSet.open(tmp_path / "pred")
    index = 2
    frames = preds.lengths[index]
    client = make_client(model, replay, mars_root)
    rows = []
    with client.websocket_connect("/ws") as ws:
        ready = start(ws, mode="replay", clip=index)
        assert ready["frames"] == frames and ready["fps"] == FPS30 and "listener" in ready["personality"]
        for i in range(0, frames, 8):
            n = min(8, frames - i)
            ws.send_bytes(tick(i // 8, i, n))
            rows.append(P.decode(ws.receive_bytes(), 1 << 24).values)
        assert ws.receive_json() == {"type": "end", "frames": frames}
    rows = np.concatenate(rows)
    per = rows[:, : K * P.FRAME_VALUES].reshape(frames, K, P.FRAME_VALUES).transpose(1, 0, 2)
    np.testing.assert_allclose(per[..., :FACE_DIM], preds.face3dmm(index), atol=1e-4)
    np.testing.assert_allclose(per[..., FACE_DIM:], preds.emotion(index), atol=1e-4)
    listener_face, _ = replay.mars.speakers.listener(index)
    np.testing.assert_array_equal(rows[:, K * P.FRAME_VALUES : K * P.FRAME_VALUES + FACE_DIM], listener_face)


def test_mars_microphone_rows_equal_the_offline_pipeline_at_30_fps(model, replay, mars_root: Path) -> None:
    """Rows cut at the 30 fps boundaries give one listener frame each, equal to the offline features
    at 30 fps through the model with the train listeners' mean traits; a row with a sample in a
    padding slot is refused."""
    from reactcli.data.features import FeatureExtractor
    from reactcli.generate import generate_reactions
    from reactcli.live.emotion_source import speaker_emotion_fallback
    from reactcli.live.face_source import FaceStats, neutral_face
    from reactcli.live.session import mic_personality

    frames = 45
    rng = np.random.default_rng(0)
    t = np.arange(frames * P.MIC_RATE // FPS30) / P.MIC_RATE
    wave = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 2 * t)) / 2
            + 0.02 * rng.normal(size=t.shape)).astype(np.float32)  # fmt: skip
    rows_in = mic_rows(wave, 0, frames)
    client = make_client(model, replay, mars_root)
    out = []
    with client.websocket_connect("/ws") as ws:
        ready = start(ws, mode="mic", seed=5)
        assert ready["fps"] == FPS30 and "mean traits" in ready["personality"]
        for i in range(frames):
            ws.send_bytes(P.encode(P.Message(P.MsgType.AUDIO, i, i, 0.0, rows_in[i : i + 1])))
            msg = P.decode(ws.receive_bytes(), 1 << 24)
            assert msg.frame == i and msg.frames == 1  # one frame's samples in, one listener frame out
            out.append(msg.values)
        bad = mic_rows(wave, frames - 3, 1)  # frame 45 has 533 samples: slot 533 must stay 0
        bad[0, 533] = 0.1
        ws.send_bytes(P.encode(P.Message(P.MsgType.AUDIO, frames, frames, 0.0, bad)))
        assert "slots after them must be 0" in ws.receive_json()["message"]
    rows = np.concatenate(out)
    per = rows.reshape(frames, K, P.FRAME_VALUES).transpose(1, 0, 2)
    feats = FeatureExtractor(model.config.audio, fps=FPS30)(wave, P.MIC_RATE, frames=frames)
    speaker_face = np.repeat(neutral_face(FaceStats.from_model(model))[None], frames, 0)
    fallback = speaker_emotion_fallback(model)
    speaker_emotion = None if fallback is None else np.repeat(fallback[None], frames, 0)
    traits, _ = mic_personality(model, mars_root)
    ref_face, ref_emotion = generate_reactions(model, feats, speaker_face, speaker_emotion, K, seed=5,
                                               personality=traits)  # fmt: skip
    np.testing.assert_allclose(per[..., :FACE_DIM], ref_face, atol=1e-4)
    np.testing.assert_allclose(per[..., FACE_DIM:], ref_emotion, atol=1e-4)
    neutral, _ = generate_reactions(model, feats, speaker_face, speaker_emotion, K, seed=5,
                                    personality=np.full(5, 0.5, np.float32))  # fmt: skip
    assert not np.allclose(neutral, ref_face, atol=1e-3)  # the mean traits are not the neutral ones


def test_a_2024_model_cannot_replay_a_mars_split(mars_root: Path, tmp_path: Path) -> None:
    from reactcli.errors import ReactError
    from reactcli.generate import load_generation_model
    from reactcli.live.replay import ReplayData
    from reactcli.runtime import resolve_device

    other, facts = load_generation_model(mars_checkpoint(tmp_path / "m.ckpt", personality=False, edition="2024"),
                                         resolve_device("cpu"))  # fmt: skip
    with pytest.raises(ReactError, match="trained on REACT 2024 data, but .* is read as REACT 2026"):
        ReplayData(mars_root, "val", other, facts.edition)
