"""Audio features: shapes, strict causality, and wav2vec2 loaded from a local save_pretrained folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reactcli.config import AudioConfig
from reactcli.data.features import FeatureExtractor, audio_feature_dim, feature_tag
from reactcli.errors import ReactError

RATE = 44100


def speechy(seconds: float = 30.05, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 150 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) + 0.01 * rng.standard_normal(t.size)).astype(
        np.float32
    )


@pytest.fixture(scope="module")
def tiny_wav2vec2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    config = Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32, 32, 32, 32, 32, 32, 48),
        num_feat_extract_layers=7,
        feat_extract_norm="group",
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )
    folder = tmp_path_factory.mktemp("w2v")
    Wav2Vec2Model(config).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("encoder,dim", [("mfcc", 78), ("logmel", 80)])
def test_shapes(encoder: str, dim: int) -> None:
    cfg = AudioConfig(encoder=encoder)
    feats = FeatureExtractor(cfg)(speechy(), RATE)
    assert audio_feature_dim(cfg) == dim
    assert feats.shape == (751, dim) and feats.dtype == np.float32
    assert np.isfinite(feats).all()
    assert feats[:, 0].std() > 0


def assert_causal(extractor: FeatureExtractor, frame: int) -> None:
    wave = speechy()
    changed = wave.copy()
    cut = (frame + 1) * RATE // 25
    changed[cut:] = np.random.default_rng(1).standard_normal(changed.size - cut).astype(np.float32)
    a, b = extractor(wave, RATE), extractor(changed, RATE)
    np.testing.assert_array_equal(a[: frame + 1], b[: frame + 1])
    assert not np.allclose(a[frame + 2 :], b[frame + 2 :]), "the perturbation should change later frames"


@pytest.mark.parametrize("encoder", ["mfcc", "logmel"])
@pytest.mark.parametrize("frame", [0, 100, 600])
def test_features_are_causal(encoder: str, frame: int) -> None:
    assert_causal(FeatureExtractor(AudioConfig(encoder=encoder)), frame)


def test_wav2vec2_from_local_folder(tiny_wav2vec2: Path) -> None:
    cfg = AudioConfig(encoder="wav2vec2", pretrained=tiny_wav2vec2)
    extractor = FeatureExtractor(cfg)
    assert extractor.dim == audio_feature_dim(cfg) == 48
    feats = extractor(speechy(), RATE)
    assert feats.shape == (751, 48) and np.isfinite(feats).all()
    assert feature_tag(cfg).startswith("wav2vec2-")
    assert_causal(extractor, 200)


def test_wav2vec2_missing_or_broken_folder(tmp_path: Path, tiny_wav2vec2: Path) -> None:
    with pytest.raises(ReactError, match="needs audio.pretrained"):
        FeatureExtractor(AudioConfig(encoder="wav2vec2"))
    with pytest.raises(ReactError, match="no config.json"):
        FeatureExtractor(AudioConfig(encoder="wav2vec2", pretrained=tmp_path))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_wav2vec2 / "config.json").read_text())
    with pytest.raises(ReactError, match="cannot load wav2vec2 weights"):
        FeatureExtractor(AudioConfig(encoder="wav2vec2", pretrained=broken))
