# ruff: noqa: F811  (the tiny_wav2vec2 fixture imported from test_features is a parameter by design)
"""Live audio features: pushed chunk by chunk, they equal the offline features of the whole clip.

mfcc/logmel equality is checked with ``assert_allclose(rtol=1e-6, atol=1e-6)``; on this machine the
arrays are in fact bit-identical (the live path runs the same per-window arithmetic, and the
streaming resampler reproduces scipy's ``resample_poly`` sample for sample). wav2vec2 is checked
with ``rtol=1e-5, atol=2e-5`` (float32 convolutions over different input lengths round differently).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from test_features import tiny_wav2vec2  # noqa: F401  (the tiny random wav2vec2 folders)

from reactcli.config import AudioConfig
from reactcli.data.features import FeatureExtractor
from reactcli.data.loaders import resample
from reactcli.errors import ReactError
from reactcli.live.audio_stream import StreamingAudioFeatures
from reactcli.live.resample import StreamingResampler

FRAMES = 751  # 30.04 s
TOL = {"rtol": 1e-6, "atol": 1e-6}


def _wave(rate: int, seed: int = 0) -> np.ndarray:
    """A voiced-like tone with a 3 Hz envelope plus noise, exactly FRAMES video frames long."""
    rng = np.random.default_rng(seed)
    t = np.arange(FRAMES * rate // 25) / rate
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (0.3 * envelope * np.sin(2 * np.pi * 180 * t) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


def _chunks(n: int, size: int | str, seed: int = 1) -> list[tuple[int, int]]:
    """(start, stop) pairs covering n samples: a fixed size, or a random mix of 0..2000 (empty pushes too)."""
    if size != "mix":
        return [(i, min(i + int(size), n)) for i in range(0, n, int(size))]
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < n:
        step = int(rng.choice([0, 1, 7, 640, 641, 1999, int(rng.integers(1, 2000))]))
        out.append((i, min(i + step, n)))
        i += step
    return out


def _stream(cfg: AudioConfig, wave: np.ndarray, rate: int, size: int | str) -> np.ndarray:
    live = StreamingAudioFeatures(cfg, input_rate=rate)
    feats = [live.push(wave[a:b]) for a, b in _chunks(len(wave), size)]
    assert live.frames_done == FRAMES
    return np.concatenate(feats)


@pytest.mark.parametrize("encoder", ["mfcc", "logmel"])
@pytest.mark.parametrize("size", [640, 1, 333, "mix"])
def test_streaming_equals_offline(encoder: str, size: int | str) -> None:
    cfg = AudioConfig(encoder=encoder)
    wave = _wave(16000)
    offline = FeatureExtractor(cfg)(wave, 16000)
    live = _stream(cfg, wave, 16000, size)
    assert live.shape == offline.shape == (FRAMES, cfg.n_mfcc * 3 if encoder == "mfcc" else cfg.n_mels)
    assert live.dtype == np.float32
    np.testing.assert_allclose(live, offline, **TOL)


@pytest.mark.parametrize(("rate", "model_rate"), [(48000, 16000), (16000, 44100)])
@pytest.mark.parametrize("encoder", ["mfcc", "logmel"])
def test_streaming_equals_offline_when_resampling(rate: int, model_rate: int, encoder: str) -> None:
    """The offline path resamples the whole clip; the streamed resampler gives the same samples."""
    cfg = AudioConfig(encoder=encoder, sample_rate=model_rate)
    wave = _wave(rate, seed=2)
    offline = FeatureExtractor(cfg)(wave, rate)
    np.testing.assert_allclose(_stream(cfg, wave, rate, 333), offline, **TOL)


def test_one_frame_per_40ms_chunk_even_through_the_resampler() -> None:
    """A 40 ms chunk completes its own frame at once: no extra frame of latency from the 2 ms guard."""
    for rate, model_rate in [(16000, 16000), (48000, 16000)]:
        live = StreamingAudioFeatures(AudioConfig(sample_rate=model_rate), input_rate=rate)
        wave = _wave(rate)[: 50 * rate // 25]
        counts = [len(live.push(wave[a:b])) for a, b in _chunks(len(wave), rate // 25)]
        assert counts == [1] * 50


def test_resampler_matches_resample_poly_bitwise() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal(44100).astype(np.float32)
    for rate_in, rate_out in [(44100, 16000), (16000, 22050)]:
        stream = StreamingResampler(rate_in, rate_out)
        y = np.concatenate([stream.push(x[a:b]) for a, b in _chunks(len(x), "mix")])
        offline = resample(x, rate_in, rate_out)
        assert len(offline) - len(y) <= stream.delay_in * rate_out // rate_in + 1  # only the tail is held back
        assert np.array_equal(y, offline[: len(y)])


def test_reset_starts_a_new_stream() -> None:
    cfg = AudioConfig(encoder="logmel")
    wave = _wave(16000)[: 640 * 20]
    live = StreamingAudioFeatures(cfg)
    first = live.push(wave)
    live.push(np.ones(5000, np.float32))
    live.reset()
    assert live.frames_done == 0
    np.testing.assert_array_equal(live.push(wave), first)


def test_push_cost_per_frame_is_small() -> None:
    """The live server has 20 ms per frame for everything; features must take a small share of it."""
    live = StreamingAudioFeatures(AudioConfig(encoder="mfcc"), input_rate=48000)
    wave = _wave(48000)[: 250 * 1920]
    start = time.perf_counter()
    for a, b in _chunks(len(wave), 1920):
        live.push(wave[a:b])
    per_frame_ms = (time.perf_counter() - start) * 1e3 / 250
    assert live.frames_done == 250
    assert per_frame_ms < 5.0, f"{per_frame_ms:.2f} ms per frame"


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (np.zeros((640, 2), np.float32), r"^audio chunk must be 1-D mono samples, got shape \(640, 2\)$"),
        (np.array([0.1, np.nan], np.float32), r"^audio chunk contains NaN or inf samples$"),
        (np.array([0.1, np.inf], np.float32), r"^audio chunk contains NaN or inf samples$"),
        (np.zeros(640, np.int16), r"^audio chunk must hold float samples in \[-1, 1\], got dtype int16$"),
        (np.zeros(480_001, np.float32), r"^audio chunk has 480001 samples, at most 480000 per push$"),
    ],
)
def test_bad_chunks_are_one_line_errors(samples: np.ndarray, message: str) -> None:
    live = StreamingAudioFeatures(AudioConfig())
    with pytest.raises(ReactError, match=message):
        live.push(samples)
    assert live.frames_done == 0 and live.samples_received == 0  # a rejected chunk leaves no trace


def test_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ReactError, match=r"wav2vec2' needs audio.pretrained"):
        StreamingAudioFeatures(AudioConfig(encoder="wav2vec2"))
    with pytest.raises(ReactError, match="not a wav2vec2 model folder"):
        StreamingAudioFeatures(AudioConfig(encoder="wav2vec2", pretrained=tmp_path))
    with pytest.raises(ReactError, match="input rate must be a positive whole number"):
        StreamingAudioFeatures(AudioConfig(), input_rate=0)


@pytest.mark.parametrize("norm", ["group", "layer"])
@pytest.mark.parametrize(("rate", "size"), [(16000, 640), (16000, "mix"), (48000, 1920)])
def test_wav2vec2_streaming_equals_offline(tiny_wav2vec2: dict[str, Path], norm: str, rate: int, size) -> None:
    """Running GroupNorm and the unpadded conv stack stream exactly; the only difference is float32
    conv rounding on different input lengths (measured max 3.7e-6 on features up to 4.5)."""
    cfg = AudioConfig(encoder="wav2vec2", pretrained=tiny_wav2vec2[norm])
    wave = _wave(rate, seed=4)
    offline = FeatureExtractor(cfg)(wave, rate)
    live = _stream(cfg, wave, rate, size)
    assert live.shape == offline.shape == (FRAMES, 24) and live.dtype == np.float32
    np.testing.assert_allclose(live, offline, rtol=1e-5, atol=2e-5)


def test_wav2vec2_yields_one_frame_per_40ms_chunk(tiny_wav2vec2: dict[str, Path]) -> None:
    live = StreamingAudioFeatures(AudioConfig(encoder="wav2vec2", pretrained=tiny_wav2vec2["group"]))
    wave = _wave(16000)[: 640 * 30]
    assert [len(live.push(wave[a:b])) for a, b in _chunks(len(wave), 640)] == [1] * 30
    live.reset()
    assert live.frames_done == 0 and len(live.push(wave[:640])) == 1


def test_wav2vec2_streams_share_the_loaded_encoder_not_their_state(tiny_wav2vec2: dict[str, Path]) -> None:
    """Every live connection builds its own stream; the weights are loaded once per process, and
    two interleaved streams still give exactly what each gives alone (their running norms are their own)."""
    cfg = AudioConfig(encoder="wav2vec2", pretrained=tiny_wav2vec2["group"])
    one, two = StreamingAudioFeatures(cfg), StreamingAudioFeatures(cfg)
    assert one._w2v.model is two._w2v.model
    a, b = _wave(16000, seed=1)[: 640 * 20], _wave(16000, seed=2)[: 640 * 20]
    mixed = [(one.push(a[i : i + 640]), two.push(b[i : i + 640])) for i in range(0, len(a), 640)]
    alone = StreamingAudioFeatures(cfg)  # the same chunks, no other stream in between
    solo = [alone.push(a[i : i + 640]) for i in range(0, len(a), 640)]
    np.testing.assert_array_equal(np.concatenate([m[0] for m in mixed]), np.concatenate(solo))


# -- MARS (REACT 2025/2026): 30 fps, frames of 533 or 534 samples at 16 kHz ---------------------------
MARS_FPS = 30


def _frame_chunks(n: int, rate: int, fps: int = MARS_FPS) -> list[tuple[int, int]]:
    """One chunk per video frame: the samples [frame_end(t - 1), frame_end(t)) the offline extractor assigns it."""
    from reactcli.data.features import frame_ends

    ends = [int(e) for e in frame_ends(n * fps // rate, rate, fps)]
    return list(zip([0, *ends[:-1]], ends, strict=True))


def _stream30(cfg: AudioConfig, wave: np.ndarray, rate: int, size: int | str) -> np.ndarray:
    live = StreamingAudioFeatures(cfg, input_rate=rate, fps=MARS_FPS)
    chunks = _frame_chunks(len(wave), rate) if size == "frames" else _chunks(len(wave), size)
    feats = np.concatenate([live.push(wave[a:b]) for a, b in chunks])
    assert live.frames_done == len(feats)
    return feats


@pytest.mark.parametrize("encoder", ["mfcc", "logmel"])
@pytest.mark.parametrize(
    ("rate", "model_rate", "size"),
    [(16000, 16000, "frames"), (16000, 16000, 1), (16000, 16000, "mix"), (48000, 16000, "frames"),
     (22050, 16000, "mix"), (16000, 44100, 333)],
)
def test_streaming_equals_offline_at_30_fps_bit_for_bit(encoder: str, rate: int, model_rate: int, size) -> None:
    """The MARS frame boundaries (floor((t + 1) rate / 30), 533 or 534 samples at 16 kHz): the stream
    computes every frame from the very samples the offline extractor uses, so the arrays are equal."""
    cfg = AudioConfig(encoder=encoder, sample_rate=model_rate)
    wave = _wave(rate, seed=5)
    live = _stream30(cfg, wave, rate, size)
    frames = len(live)
    offline = FeatureExtractor(cfg, fps=MARS_FPS)(wave, rate, frames)
    assert frames >= 900 and live.dtype == np.float32
    assert np.array_equal(live, offline)
    assert not np.allclose(live, FeatureExtractor(cfg)(wave, rate, frames), atol=1e-3)  # not the 25 fps rows


def test_one_frame_per_30fps_frame_of_samples() -> None:
    """A chunk holding one 30 fps frame's samples completes that frame at once (no frame of latency)."""
    for rate in (16000, 48000):
        live = StreamingAudioFeatures(AudioConfig(sample_rate=16000), input_rate=rate, fps=MARS_FPS)
        wave = _wave(rate)[: 60 * rate // MARS_FPS]
        chunks = _frame_chunks(len(wave), rate)
        assert {b - a for a, b in chunks} == ({533, 534} if rate == 16000 else {1600})
        assert [len(live.push(wave[a:b])) for a, b in chunks] == [1] * 60


@pytest.mark.parametrize("norm", ["group", "layer"])
def test_wav2vec2_streaming_equals_offline_at_30_fps(tiny_wav2vec2: dict[str, Path], norm: str) -> None:
    """One or two 50 Hz frames pooled per 30 fps frame, as offline; float32 conv rounding only."""
    cfg = AudioConfig(encoder="wav2vec2", pretrained=tiny_wav2vec2[norm])
    wave = _wave(16000, seed=6)
    live = _stream30(cfg, wave, 16000, "mix")
    offline = FeatureExtractor(cfg, fps=MARS_FPS)(wave, 16000, len(live))
    assert len(live) >= 900
    np.testing.assert_allclose(live, offline, rtol=1e-5, atol=2e-5)
    stream = StreamingAudioFeatures(cfg, fps=MARS_FPS)
    counts = [len(stream.push(wave[a:b])) for a, b in _frame_chunks(640 * 30, 16000)]
    assert counts == [1] * 36


def test_the_release_features_cannot_stream() -> None:
    with pytest.raises(ReactError, match="cannot be computed live"):
        StreamingAudioFeatures(AudioConfig(encoder="release"), fps=MARS_FPS)
