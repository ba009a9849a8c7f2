"""Audio features: shapes, strict causality (the online contract), and wav2vec2 from a local folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reactcli.config import AudioConfig
from reactcli.data.features import FeatureExtractor, audio_feature_dim
from reactcli.errors import ReactError

RATE = 44100
HOP = RATE // 25


def _wave(seconds: float = 30.02, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (0.3 * envelope * np.sin(2 * np.pi * 180 * t) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_wav2vec2(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random wav2vec2 models (group-norm base layout and layer-norm large layout)."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    folders = {}
    for norm in ("group", "layer"):
        torch.manual_seed(0)
        config = Wav2Vec2Config(
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            conv_dim=(24,) * 7,
            num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=2,
            feat_extract_norm=norm,
            conv_bias=norm == "layer",
            do_stable_layer_norm=norm == "layer",
        )
        folder = tmp_path_factory.mktemp(f"w2v-{norm}")
        Wav2Vec2Model(config).save_pretrained(folder)
        folders[norm] = folder
    return folders


@pytest.mark.parametrize(("encoder", "dim"), [("mfcc", 78), ("logmel", 80)])
def test_shapes(encoder: str, dim: int) -> None:
    cfg = AudioConfig(encoder=encoder)
    assert audio_feature_dim(cfg) == dim
    feats = FeatureExtractor(cfg)(_wave(), RATE)
    assert feats.shape == (751, dim) and feats.dtype == np.float32
    assert np.isfinite(feats).all()
    assert feats[:, 0].std() > 0  # follows the 3 Hz envelope


def test_follows_the_signal() -> None:
    """Loud frames have more energy than silent ones (features track the audio frame by frame)."""
    wave = _wave()
    wave[: 10 * RATE] = 0.0
    feats = FeatureExtractor(AudioConfig(encoder="logmel"))(wave, RATE)
    assert feats[50:240].mean() < feats[260:500].mean() - 5


def _perturb_after(wave: np.ndarray, frame: int) -> np.ndarray:
    changed = wave.copy()
    rng = np.random.default_rng(1)
    start = (frame + 1) * HOP  # first sample of frame + 1
    changed[start:] = rng.uniform(-1, 1, len(wave) - start).astype(np.float32)
    return changed


@pytest.mark.parametrize("encoder", ["mfcc", "logmel", "wav2vec2-group", "wav2vec2-layer"])
def test_features_are_causal(encoder: str, tiny_wav2vec2: dict[str, Path]) -> None:
    """Changing audio after frame t leaves every feature <= t unchanged, and changes later ones."""
    if encoder.startswith("wav2vec2"):
        cfg = AudioConfig(encoder="wav2vec2", pretrained=tiny_wav2vec2[encoder.split("-")[1]])
    else:
        cfg = AudioConfig(encoder=encoder)
    extract = FeatureExtractor(cfg)
    wave = _wave(12.0)
    base = extract(wave, RATE, frames=300)
    for t in (0, 137, 250):
        other = extract(_perturb_after(wave, t), RATE, frames=300)
        np.testing.assert_allclose(other[: t + 1], base[: t + 1], rtol=1e-5, atol=1e-5)
        assert not np.allclose(other[t + 2 :], base[t + 2 :], atol=1e-3)


def test_wav2vec2_from_local_folder(tiny_wav2vec2: dict[str, Path]) -> None:
    import torch
    from transformers import Wav2Vec2Model

    folder = tiny_wav2vec2["layer"]
    cfg = AudioConfig(encoder="wav2vec2", pretrained=folder)
    assert audio_feature_dim(cfg) == 24
    extract = FeatureExtractor(cfg)
    feats = extract(_wave(), RATE)
    assert feats.shape == (751, 24) and np.isfinite(feats).all()
    # With per-frame layer norms (the "large" layout) nothing needs causal statistics, so our conv
    # features equal the model's own extract_features, max-pooled over the two 50 Hz frames.
    from reactcli.data.loaders import resample

    wave16 = resample(_wave(), RATE, 16000)[: 751 * 640]
    model = Wav2Vec2Model.from_pretrained(folder, local_files_only=True).eval()
    with torch.inference_mode():
        ref = model(torch.from_numpy(wave16)[None]).extract_features[0].numpy()
    t = np.arange(1, len(ref) // 2)
    np.testing.assert_allclose(feats[t], np.maximum(ref[2 * t], ref[2 * t - 1]), rtol=1e-4, atol=1e-4)


def test_wav2vec2_errors(tmp_path: Path) -> None:
    with pytest.raises(ReactError, match="needs audio.pretrained"):
        FeatureExtractor(AudioConfig(encoder="wav2vec2"))
    with pytest.raises(ReactError, match=r"nowhere: not a wav2vec2 model folder"):
        FeatureExtractor(AudioConfig(encoder="wav2vec2", pretrained=tmp_path / "nowhere"))
    (tmp_path / "config.json").write_text('{"model_type": "wav2vec2", "conv_dim": [8, 8]}')
    with pytest.raises(ReactError, match="cannot load wav2vec2 weights"):
        FeatureExtractor(AudioConfig(encoder="wav2vec2", pretrained=tmp_path))


def test_wav2vec2_wrong_stride(tmp_path: Path) -> None:
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    config = Wav2Vec2Config(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        conv_dim=(8, 8), conv_kernel=(10, 3), conv_stride=(5, 2),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
    )  # fmt: skip
    Wav2Vec2Model(config).save_pretrained(tmp_path)
    with pytest.raises(ReactError, match="conv stride is 10 samples, expected 320"):
        FeatureExtractor(AudioConfig(encoder="wav2vec2", pretrained=tmp_path))


def _hop_windows(wave: np.ndarray, rate: int, frames: int, n_fft: int = 1024) -> np.ndarray:
    """The 2024 rule written out independently: a fixed hop of rate / 25 samples, windows ending
    2 ms before each frame's end."""
    hop, guard = rate // 25, rate // 500
    padded = np.concatenate([np.zeros(n_fft, np.float32), wave, np.zeros(hop * frames, np.float32)])
    return np.stack([padded[n_fft + hop * (t + 1) - guard - n_fft : n_fft + hop * (t + 1) - guard]
                     for t in range(frames)])


def test_25_fps_features_are_the_2024_features_bit_for_bit() -> None:
    from reactcli.data.features import (
        MFCC_MELS,
        backward_delta,
        causal_frames,
        mel_filterbank,
        mfcc_coefficients,
        windows_log_mel,
    )

    wave = _wave(8.0)
    for rate in (16000, 44100):
        windows = _hop_windows(wave, rate, 200)
        assert np.array_equal(causal_frames(wave, rate, 200), windows)
        assert np.array_equal(causal_frames(wave, rate, 200, fps=25), windows)
    from reactcli.data.loaders import resample

    extract = FeatureExtractor(AudioConfig())  # MFCC at 16 kHz, 25 fps by default
    resampled = resample(wave, RATE, 16000)
    logmel = windows_log_mel(_hop_windows(resampled, 16000, 200), mel_filterbank(MFCC_MELS, 16000))
    coeffs = mfcc_coefficients(logmel, 26)
    delta = backward_delta(coeffs)
    expected = np.concatenate([coeffs, delta, backward_delta(delta)], axis=1).astype(np.float32)
    assert np.array_equal(extract(wave, RATE, frames=200), expected)


def test_frame_boundaries_at_30_fps_are_exact() -> None:
    """16 kHz at 30 fps: frames of 533 or 534 samples, every sample of frame t before (t + 1) / 30 s,
    no drift over a long recording."""
    from reactcli.data.features import frame_ends

    ends = frame_ends(20000, 16000, 30)
    assert ends[0] == 533 and ends[2] == 1600 and ends[-1] == 20000 * 16000 // 30
    assert set(np.diff(ends).tolist()) == {533, 534}
    t = np.arange(20000)
    assert ((ends - 1) * 30 < (t + 1) * 16000).all() and (ends * 30 >= (t + 1) * 16000 - 30).all()


@pytest.mark.parametrize("encoder", ["mfcc", "logmel", "wav2vec2-group"])
def test_30_fps_features_are_causal(encoder: str, tiny_wav2vec2: dict[str, Path]) -> None:
    """At 30 fps: changing the audio after frame t's end ((t + 1) / 30 s) leaves every feature <= t
    unchanged, and changes later ones; one row per frame."""
    if encoder.startswith("wav2vec2"):
        cfg = AudioConfig(encoder="wav2vec2", pretrained=tiny_wav2vec2["group"])
    else:
        cfg = AudioConfig(encoder=encoder)
    extract = FeatureExtractor(cfg, fps=30)
    wave = _wave(11.0)
    base = extract(wave, RATE, frames=330)
    assert base.shape[0] == 330 and np.isfinite(base).all()
    for t in (0, 101, 250):
        changed = wave.copy()
        start = -(-(t + 1) * RATE // 30)  # first sample at or after the end of frame t
        changed[start:] = np.random.default_rng(2).uniform(-1, 1, len(wave) - start).astype(np.float32)
        other = extract(changed, RATE, frames=330)
        np.testing.assert_allclose(other[: t + 1], base[: t + 1], rtol=1e-5, atol=1e-5)
        assert not np.allclose(other[t + 2 :], base[t + 2 :], atol=1e-3)


def test_release_features_are_not_computed_from_a_wav() -> None:
    from reactcli.data.features import is_causal

    cfg = AudioConfig(encoder="release")
    assert audio_feature_dim(cfg) == 768 and not is_causal(cfg) and is_causal(AudioConfig())
    with pytest.raises(ReactError, match="reads a MARS release's audio-features folder"):
        FeatureExtractor(cfg, fps=30)
