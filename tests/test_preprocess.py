"""``react preprocess``: the cache it fills, resuming, and the table of problems for broken data."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_dataset, run_cli
from scipy.io import wavfile

from reactcli.config import load_config
from reactcli.data.cache import FeatureCache
from reactcli.data.layout import DatasetLayout, mirrored, read_pairs
from reactcli.data.loaders import load_face3dmm


def _clips(root: Path, split: str) -> list[str]:
    return list(dict.fromkeys(c for s in mirrored(read_pairs(root, split)) for c in (s.speaker, s.listener)))


def test_cache_contents(preprocessed_root: Path) -> None:
    cache = FeatureCache(preprocessed_root, load_config(environ={}))
    faces = []
    for split in ("train", "val", "test"):
        for clip in _clips(preprocessed_root, split):
            audio, face, emotion = (np.load(p) for p in cache.clip_paths(split, clip))
            assert audio.shape == (751, 78) and audio.dtype == np.float32
            assert face.shape == (751, 58) and emotion.shape == (750, 25)
            if split == "train":
                faces.append(load_face3dmm(DatasetLayout(preprocessed_root).face3dmm(split, clip)))
    with np.load(cache.face_stats()) as stats:
        faces_all = np.concatenate(faces).astype(np.float64)
        np.testing.assert_allclose(stats["mean"], faces_all.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(stats["std"], faces_all.std(0), rtol=1e-4, atol=1e-6)
        assert int(stats["frames"]) == 751 * 12


def test_rerun_skips_finished_clips(preprocessed_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = FeatureCache(preprocessed_root, load_config(environ={}))
    target = cache.audio_features("val", _clips(preprocessed_root, "val")[0])
    before = target.stat().st_mtime_ns
    capsys.readouterr()
    assert run_cli(["preprocess", "--data", str(preprocessed_root), "--splits", "val"]) == 0
    out = capsys.readouterr().out
    assert "│ val   │    12 │          0 │             12 │" in out
    assert target.stat().st_mtime_ns == before


def test_partial_files_do_not_count_as_finished(make_synth, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = copy_dataset(make_synth(train=1, val=4, video="none"), tmp_path / "ds")
    assert run_cli(["preprocess", "--data", str(root), "--splits", "train,val"]) == 0
    cache = FeatureCache(root, load_config(environ={}))
    clips = _clips(root, "val")
    killed = cache.audio_features("val", clips[0])
    good = np.load(killed)
    killed.unlink()  # a run killed while writing leaves only its temp file ...
    (killed.parent / f".{killed.name}.abc123.tmp.npy").write_bytes(b"\x93NUMPY partial")
    truncated = cache.face3dmm("val", clips[1])
    truncated.write_bytes(truncated.read_bytes()[:1000])  # ... or a file cut short by a full disk
    capsys.readouterr()
    assert run_cli(["preprocess", "--data", str(root), "--splits", "val"]) == 0
    assert "│ val   │     8 │          2 │              6 │" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(killed), good)
    assert np.load(truncated).shape == (751, 58)


def test_a_source_replaced_by_an_older_file_is_not_served_from_the_cache(
    make_synth, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Freshness is the sources' identity (path, size, time), not "newer than": a clip's 3DMM swapped
    for another file with an older time stamp (copied with ``cp -p``, or restored from a backup) is
    cached again; the record is what marks a cache entry finished."""
    root = copy_dataset(make_synth(train=1, val=4, video="none"), tmp_path / "ds")
    assert run_cli(["preprocess", "--data", str(root), "--splits", "val"]) == 0
    layout, cache = DatasetLayout(root), FeatureCache(root, load_config(environ={}))
    clips = _clips(root, "val")
    target = layout.face3dmm("val", clips[0])
    other = np.load(layout.face3dmm("val", clips[1]))
    stamp = target.stat().st_mtime_ns
    np.save(target, other)
    os.utime(target, ns=(stamp - 10**11, stamp - 10**11))  # older than the cache entry
    capsys.readouterr()
    assert run_cli(["preprocess", "--data", str(root), "--splits", "val"]) == 0
    assert "│ val   │     8 │          1 │              7 │" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(cache.face3dmm("val", clips[0])), load_face3dmm(target))
    record = cache.audio_features("val", clips[0]).with_name(f"{Path(clips[0]).name}.sources.json")
    record.unlink()  # an entry without its record (a run killed before it) is not finished
    assert run_cli(["preprocess", "--data", str(root), "--splits", "val"]) == 0
    assert "│ val   │     8 │          1 │              7 │" in capsys.readouterr().out and record.is_file()


def _damage(root: Path) -> dict[str, str]:
    """Break one clip in each way the issue lists; returns path -> expected problem text."""
    layout = DatasetLayout(root)
    clips = _clips(root, "val")
    expected: dict[str, str] = {}
    missing = layout.face3dmm("val", clips[0])
    missing.unlink()
    expected[str(missing)] = "3DMM file not found"
    shape = layout.face3dmm("val", clips[1])
    np.save(shape, np.zeros((751, 1, 50), np.float32))
    expected[str(shape)] = "3DMM has shape (751, 50)"
    nan = layout.face3dmm("val", clips[2])
    face = np.load(nan)
    face.reshape(-1)[17] = np.inf
    np.save(nan, face)
    expected[str(nan)] = "contains 1 NaN/inf values"
    audio = layout.audio("val", clips[3])
    rate, data = wavfile.read(audio)
    wavfile.write(audio, rate, data[: rate * 12])
    expected[str(audio)] = "audio is 12.00 s long"
    csv = layout.emotion("val", clips[4])
    lines = csv.read_text().splitlines()
    lines[100] = lines[100].replace("0", "zero", 1) if "0" in lines[100] else "zero" + lines[100]
    csv.write_text("\n".join(lines) + "\n")
    expected[str(csv)] = "not a numeric emotion CSV"
    rows = layout.emotion("val", clips[5])
    rows.write_text(rows.read_text() + rows.read_text().splitlines()[-1] + "\n")
    expected[str(rows)] = "emotion CSV has 751 rows, expected 750"
    gone = layout.emotion("val", clips[6])
    gone.unlink()
    expected[str(gone)] = "emotion file not found"
    matrix = layout.neighbours("val")
    np.save(matrix, np.eye(6, dtype=np.int64))
    expected[str(matrix)] = "neighbour matrix is 6 x 6 but the split has 8 mirrored samples"
    return expected


def test_every_problem_is_listed(
    make_synth, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_dataset(make_synth(train=1, val=4, video="none"), tmp_path / "ds")
    expected = _damage(root)
    capsys.readouterr()
    assert run_cli(["preprocess", "--data", str(root), "--splits", "train,val"]) == 1
    captured = capsys.readouterr()
    for path, problem in expected.items():
        line = next((ln for ln in captured.out.splitlines() if path in ln), None)
        assert line is not None, f"{path} missing from the problem list"
        assert problem in line
    errors = [ln for ln in captured.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "8 problem(s) found" in errors[0]
    assert "Traceback" not in captured.err
    # The broken clips are not cached, the good train clips are, and statistics still get written.
    cache = FeatureCache(root, load_config(environ={}))
    assert not cache.face3dmm("val", _clips(root, "val")[1]).exists()
    assert cache.face3dmm("val", _clips(root, "val")[7]).exists()
    assert cache.face_stats().is_file()


def test_video_checks(make_synth, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = copy_dataset(make_synth(train=1, val=4, video="none"), tmp_path / "ds")
    clips = _clips(root, "val")
    folder = root / "val" / "Video_files" / clips[0]
    folder.mkdir(parents=True)
    for i in range(1, 11):
        (folder / f"{i}.png").write_bytes(b"")
    capsys.readouterr()
    assert run_cli(["preprocess", "--data", str(root), "--splits", "val"]) == 1
    out = capsys.readouterr().out
    assert "frame folder has 10 frames, expected 751" in out
    assert f"{root / 'val' / 'Video_files' / clips[1]}" in out and "video not found" in out


def test_p1p2_folders_and_frame_videos_preprocess(make_synth, tmp_path: Path) -> None:
    root = copy_dataset(make_synth(train=1, val=4, video="none", emotion_dirs="p1p2"), tmp_path / "p")
    assert (root / "val" / "Emotion" / "NoXI/001_2016-03-17_Paris/P1/21.csv").is_file()
    assert run_cli(["preprocess", "--data", str(root), "--splits", "train,val"]) == 0
    frames = make_synth(train=0, val=4, video="frames")
    cache_dir = tmp_path / "cache"  # the fixture dataset stays untouched: cache elsewhere
    args = ["preprocess", "--data", str(frames), "--splits", "val", "--set", f"data.cache_dir='{cache_dir}'"]
    assert run_cli(args) == 0
    assert len(list((cache_dir / "face3dmm" / "val").rglob("*.npy"))) == 8


def test_logmel_cache_is_separate(make_synth, tmp_path: Path) -> None:
    root = copy_dataset(make_synth(train=1, val=4, video="none"), tmp_path / "ds")
    assert run_cli(["preprocess", "--data", str(root), "--splits", "val", "--set", "audio.encoder=logmel"]) == 0
    cfg = load_config(overrides={"audio": {"encoder": "logmel"}}, environ={})
    path = FeatureCache(root, cfg).audio_features("val", _clips(root, "val")[0])
    assert "logmel80" in str(path) and np.load(path).shape == (751, 80)


def test_user_errors(make_synth, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_synth(train=1, val=4, video="none")
    capsys.readouterr()
    assert run_cli(["preprocess", "--data", str(tmp_path / "none")]) == 1
    assert "dataset root not found" in capsys.readouterr().err
    assert run_cli(["preprocess", "--data", str(root), "--splits", "dev"]) == 1
    assert "unknown split 'dev'" in capsys.readouterr().err
    args = ["preprocess", "--data", str(root), "--set", "audio.encoder=wav2vec2"]
    assert run_cli(args + ["--set", f"audio.pretrained='{tmp_path}'"]) == 1
    assert f"{tmp_path}: not a wav2vec2 model folder" in capsys.readouterr().err
    ds = copy_dataset(root, tmp_path / "ds")
    os.remove(ds / "val.csv")
    assert run_cli(["preprocess", "--data", str(ds), "--splits", "val"]) == 1
    assert "pair list for split 'val' not found" in capsys.readouterr().out
    shutil.rmtree(ds)


def test_regenerated_dataset_is_not_served_from_a_stale_cache(tmp_path: Path) -> None:
    """``react synth`` again into the same folder (new seed) must refresh the cached features."""
    root = tmp_path / "ds"
    base = ["synth", "--out", str(root), "--train-pairs", "0", "--val-pairs", "4", "--test-pairs", "0"]
    base += ["--video", "none"]
    assert run_cli(base + ["--seed", "1"]) == 0
    assert run_cli(["preprocess", "--data", str(root), "--splits", "val"]) == 0
    cache = FeatureCache(root, load_config(environ={}))
    clip = _clips(root, "val")[0]
    old = np.load(cache.face3dmm("val", clip))
    assert run_cli(base + ["--seed", "2"]) == 0
    assert run_cli(["preprocess", "--data", str(root), "--splits", "val"]) == 0
    new = np.load(cache.face3dmm("val", clip))
    np.testing.assert_array_equal(new, load_face3dmm(DatasetLayout(root).face3dmm("val", clip)))
    assert not np.array_equal(old, new)
