"""The clip dataset and the cache: mirrored order, cached arrays equal to the files, face statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from reactcli.config import load_config
from reactcli.data.cache import FeatureCache, load_face_stats
from reactcli.data.dataset import ReactClipDataset
from reactcli.data.layout import DatasetLayout, mirrored, read_pairs
from reactcli.data.loaders import load_emotion, load_face3dmm
from reactcli.errors import ReactError


def test_clip_dataset_mirrored_and_equal_to_the_files(preprocessed_root: Path) -> None:
    cfg = load_config(environ={})
    dataset = ReactClipDataset(preprocessed_root, "val", cfg)
    samples = mirrored(read_pairs(preprocessed_root, "val"))
    assert len(dataset) == len(samples) == 12
    layout = DatasetLayout(preprocessed_root)
    for index in (0, 6):  # row 0, then the same row with roles swapped
        item = dataset[index]
        sample = samples[index]
        assert int(item["index"]) == index
        assert item["speaker_audio"].shape == (751, 78) and item["speaker_audio"].dtype == torch.float32
        assert item["speaker_3dmm"].shape == item["listener_3dmm"].shape == (751, 58)
        assert item["speaker_emotion"].shape == item["listener_emotion"].shape == (751, 25)
        speaker_face = load_face3dmm(layout.face3dmm("val", sample.speaker))
        np.testing.assert_array_equal(item["speaker_3dmm"].numpy(), speaker_face)
        listener = load_emotion(layout.emotion("val", sample.listener))
        np.testing.assert_array_equal(item["listener_emotion"][:750].numpy(), listener)
        np.testing.assert_array_equal(item["listener_emotion"][750].numpy(), listener[-1])  # padded by repetition
    assert samples[6].speaker == samples[0].listener
    np.testing.assert_array_equal(dataset[6]["speaker_3dmm"], dataset[0]["listener_3dmm"])


def test_missing_cache_is_a_clear_error(synth_root: Path, tmp_path: Path) -> None:
    cfg = load_config(overrides={"data": {"cache_dir": str(tmp_path / "empty")}}, environ={})
    dataset = ReactClipDataset(synth_root, "val", cfg)
    with pytest.raises(ReactError, match=r"not in the preprocessing cache; run `react preprocess`"):
        dataset[0]


def test_corrupt_cache_file(make_synth, tmp_path: Path) -> None:
    from reactcli.cli import main

    root = make_synth(train=1, val=4, video="none")
    cfg = load_config(overrides={"data": {"cache_dir": str(tmp_path / "c")}}, environ={})
    with pytest.raises(SystemExit) as exc:
        main(["preprocess", "--data", str(root), "--splits", "val", "--set", f"data.cache_dir='{tmp_path / 'c'}'"])
    assert exc.value.code in (0, None)
    dataset = ReactClipDataset(root, "val", cfg)
    path = FeatureCache(root, cfg).face3dmm("val", dataset.samples[0].speaker)
    path.write_bytes(b"garbage")
    with pytest.raises(ReactError, match="corrupt cache file"):
        dataset.clip(0)


def test_cache_paths(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path, load_config(environ={}))
    clip = "NoXI/001_2016-03-17_Paris/Expert_video/21"
    assert cache.audio_features("val", clip) == tmp_path / ".react_cache/audio/mfcc26-sr16000/val" / f"{clip}.npy"
    assert cache.face_stats() == tmp_path / ".react_cache/stats/face3dmm_train.npz"
    moved = FeatureCache(
        tmp_path, load_config(overrides={"data": {"cache_dir": str(tmp_path / "elsewhere")}}, environ={})
    )
    assert moved.face_stats() == tmp_path / "elsewhere/stats/face3dmm_train.npz"
    logmel = FeatureCache(tmp_path, load_config(overrides={"audio": {"encoder": "logmel", "n_mels": 40}}, environ={}))
    assert "logmel40" in str(logmel.audio_features("val", clip))


def test_face_stats(preprocessed_root: Path, tmp_path: Path) -> None:
    mean, std = load_face_stats(load_config(environ={}), preprocessed_root)
    assert mean.shape == std.shape == (58,) and (std > 0).all()
    assert mean[52] == pytest.approx(np.pi, abs=0.2)
    np.save(tmp_path / "mean.npy", np.zeros(58, np.float32))
    np.save(tmp_path / "std.npy", np.full((1, 58), 2.0, np.float32))
    files = {"mean_face": str(tmp_path / "mean.npy"), "std_face": str(tmp_path / "std.npy")}
    cfg = load_config(overrides={"data": files}, environ={})
    mean2, std2 = load_face_stats(cfg, preprocessed_root)
    assert (mean2 == 0).all() and (std2 == 2).all()
    np.save(tmp_path / "bad.npy", np.zeros(57, np.float32))
    with pytest.raises(ReactError, match=r"bad\.npy: mean_face must be 58 finite values"):
        bad = load_config(overrides={"data": {"mean_face": str(tmp_path / "bad.npy")}}, environ={})
        load_face_stats(bad, preprocessed_root)
    with pytest.raises(ReactError, match="3DMM statistics missing; run `react preprocess`"):
        load_face_stats(load_config(environ={}), tmp_path)
