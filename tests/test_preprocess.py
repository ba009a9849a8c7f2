"""``react preprocess``: cache contents, resumability, the problem table and its exit code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_dataset
from scipy.io import wavfile

from reactcli.config import load_config
from reactcli.data.cache import FeatureCache, load_face_stats
from reactcli.data.dataset import ReactClipDataset, ReactWindowDataset
from reactcli.data.layout import DatasetLayout, read_pairs


def react(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from reactcli.cli import main; main()", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={"COLUMNS": "250", "PATH": ""})


@pytest.fixture()
def small_copy(make_synth, tmp_path: Path) -> Path:
    return copy_dataset(make_synth(train=2, val=4), tmp_path / "data")


def test_cache_and_stats(preprocessed_root: Path) -> None:
    cfg = load_config(None, None, environ={})
    cache = FeatureCache(preprocessed_root, cfg)
    clip = read_pairs(preprocessed_root, "train")[0].listener
    assert np.load(cache.audio_features("train", clip)).shape == (751, 78)
    assert np.load(cache.face3dmm("train", clip)).shape == (751, 58)
    assert np.load(cache.emotion("train", clip)).shape == (750, 25)
    mean, std = load_face_stats(cfg, preprocessed_root)
    assert mean.shape == std.shape == (58,)
    assert 2.5 < mean[52] < 3.8  # rotation x about pi, like the real data
    assert (std > 0).all()


def test_datasets_are_aligned(preprocessed_root: Path) -> None:
    cfg = load_config(None, None, environ={})
    clips = ReactClipDataset(preprocessed_root, "val", cfg)
    windows = ReactWindowDataset(preprocessed_root, "val", cfg, window=64, seed=3)
    assert len(clips) == len(windows) == 2 * len(read_pairs(preprocessed_root, "val"))
    item = windows[5]
    start = int(item["start"])
    whole = clips[5]
    for key in ("speaker_audio", "speaker_3dmm", "speaker_emotion", "listener_3dmm", "listener_emotion"):
        assert item[key].shape[0] == 64
        assert np.array_equal(item[key].numpy(), whole[key][start : start + 64].numpy())
    assert whole["listener_emotion"].shape == (751, 25)
    assert np.array_equal(whole["listener_emotion"][750], whole["listener_emotion"][749])
    again = ReactWindowDataset(preprocessed_root, "val", cfg, window=64, seed=3)
    assert int(again[5]["start"]) == start  # deterministic windows
    windows.set_epoch(1)
    starts = {int(windows[i]["start"]) for i in range(len(windows))}
    assert len(starts) > 1


def test_resumable(small_copy: Path) -> None:
    first = react("preprocess", "--data", str(small_copy), "--splits", "train,val")
    assert first.returncode == 0, first.stderr
    cache = small_copy / ".react_cache"
    files = sorted(cache.rglob("*.npy"))
    stamps = {p: p.stat().st_mtime_ns for p in files}
    # A half-written feature file must not count as finished.
    victim = files[0]
    victim.write_bytes(b"\x93NUMPY partial")
    second = react("preprocess", "--data", str(small_copy), "--splits", "train,val")
    assert second.returncode == 0, second.stderr
    assert np.load(victim).ndim == 2
    rewritten = {p for p in files if p.stat().st_mtime_ns != stamps[p]}
    assert victim in rewritten
    # only the damaged clip is redone (its audio, face and emotion cache), every other clip is skipped
    clip_part = victim.relative_to(cache / "audio" / "mfcc26-sr16000")
    assert all(str(p).endswith(str(clip_part.relative_to(clip_part.parts[0]))) for p in rewritten)
    assert len(rewritten) == 3
    assert not list(cache.rglob("*.tmp*"))


def test_problem_table(small_copy: Path) -> None:
    layout = DatasetLayout(small_copy)
    pairs = read_pairs(small_copy, "val")
    layout.audio("val", pairs[0].speaker).unlink()
    face = np.load(layout.face3dmm("val", pairs[1].speaker))
    face = face.reshape(751, 58)
    face[10, 3] = np.inf
    np.save(layout.face3dmm("val", pairs[1].speaker), face)
    wavfile.write(layout.audio("val", pairs[2].speaker), 44100, np.zeros(44100 * 3, np.int16))
    np.save(layout.face3dmm("val", pairs[3].speaker), np.zeros((740, 58), np.float32))
    np.save(small_copy / "neighbour_emotion_val.npy", np.eye(5))
    result = react("preprocess", "--data", str(small_copy), "--splits", "val")
    assert result.returncode == 1
    out = result.stdout
    assert "audio file not found" in out
    assert "NaN/inf" in out
    assert "audio is 3.00 s long" in out
    assert "3DMM has 740 frames" in out
    assert "neighbour matrix is 5 x 5 but the split has 8" in out
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "5 problem(s)" in last


def test_missing_cache_is_a_clear_error(small_copy: Path) -> None:
    from reactcli.errors import ReactError

    cfg = load_config(None, None, environ={})
    with pytest.raises(ReactError, match="run `react preprocess`"):
        ReactClipDataset(small_copy, "val", cfg)[0]
    with pytest.raises(ReactError, match="3DMM statistics missing"):
        load_face_stats(cfg, small_copy)
