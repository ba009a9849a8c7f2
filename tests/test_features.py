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
