"""File loaders and layout: both 3DMM shapes, _full twins, stereo wav, P1/P2 folders, videos, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from reactcli.data.layout import DatasetLayout, mirrored, p1p2_name, read_pairs
from reactcli.data.loaders import (
    load_audio,
    load_emotion,
    load_face3dmm,
    load_neighbours,
    read_video_frames,
    resample,
)
from reactcli.errors import ReactError


def test_pairs_are_mirrored(synth_root: Path) -> None:
    pairs = read_pairs(synth_root, "val")
    samples = mirrored(pairs)
    assert len(samples) == 2 * len(pairs)
    assert samples[0].speaker == pairs[0].speaker and samples[0].listener == pairs[0].listener
    assert samples[len(pairs)].speaker == pairs[0].listener and samples[len(pairs)].listener == pairs[0].speaker


def test_p1p2_names() -> None:
    assert p1p2_name("NoXI/001_2016-03-17_Paris/Expert_video/21") == "NoXI/001_2016-03-17_Paris/P1/21"
    assert p1p2_name("NoXI/001_2016-03-17_Paris/Novice_video/21") == "NoXI/001_2016-03-17_Paris/P2/21"
    assert p1p2_name("RECOLA/group-2/P41/2") == "RECOLA/group-2/P1/2"
    assert p1p2_name("RECOLA/group-2/P42/2") == "RECOLA/group-2/P2/2"


def test_both_3dmm_shapes_and_full_twins(synth_root: Path) -> None:
    shapes = set()
    twins = list((synth_root / "train" / "3D_FV_files").rglob("*_full.npy")) + list(
        (synth_root / "val" / "3D_FV_files").rglob("*_full.npy")
    )
    assert twins, "the synthetic data should contain _full twins"
    for path in (synth_root / "val" / "3D_FV_files").rglob("*.npy"):
        if path.stem.endswith("_full"):
            continue
        shapes.add(np.load(path).shape)
        assert load_face3dmm(path).shape == (751, 58)
    assert shapes == {(751, 1, 58), (751, 58)}


def test_emotion_both_folder_spellings(make_synth) -> None:
    for spelling in ("roles", "p1p2"):
        root = make_synth(train=1, val=4, emotion_dirs=spelling)
        layout = DatasetLayout(root)
        for sample in mirrored(read_pairs(root, "val")):
            path = layout.emotion("val", sample.listener)
            assert ("/P1/" in str(path) or "/P2/" in str(path)) == (spelling == "p1p2")
            assert load_emotion(path).shape == (750, 25)


def test_missing_emotion_names_both_paths(tmp_path: Path) -> None:
    (tmp_path / "val").mkdir()
    with pytest.raises(ReactError, match=r"Expert_video/3\.csv or .*P1/3\.csv: emotion file not found"):
        DatasetLayout(tmp_path).emotion("val", "NoXI/x/Expert_video/3")


def test_stereo_wav_is_averaged(tmp_path: Path) -> None:
    rate = 44100
    left = np.full(rate * 31, 0.5)
    right = np.full(rate * 31, -0.25)
    path = tmp_path / "s.wav"
    wavfile.write(path, rate, (np.stack([left, right], 1) * 32767).astype(np.int16))
    wave, got_rate = load_audio(path)
    assert got_rate == rate and wave.ndim == 1
    assert wave.mean() == pytest.approx(0.125, abs=1e-3)
    assert resample(wave, rate, 16000).shape[0] == 16000 * 31


def test_truncated_audio(tmp_path: Path) -> None:
    path = tmp_path / "short.wav"
    wavfile.write(path, 44100, np.zeros(44100 * 5, np.int16))
    with pytest.raises(ReactError, match=r"short\.wav: audio is 5\.00 s long"):
        load_audio(path)


def test_3dmm_errors(tmp_path: Path) -> None:
    np.save(tmp_path / "bad.npy", np.zeros((751, 57), np.float32))
    with pytest.raises(ReactError, match=r"bad\.npy: 3DMM has shape \(751, 57\)"):
        load_face3dmm(tmp_path / "bad.npy")
    nan = np.zeros((751, 1, 58), np.float32)
    nan[3, 0, 5] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(ReactError, match=r"nan\.npy: contains 1 NaN/inf"):
        load_face3dmm(tmp_path / "nan.npy")
    with pytest.raises(ReactError, match=r"missing\.npy: 3DMM file not found"):
        load_face3dmm(tmp_path / "missing.npy")
    (tmp_path / "corrupt.npy").write_bytes(b"not numpy")
    with pytest.raises(ReactError, match=r"corrupt\.npy: not a readable"):
        load_face3dmm(tmp_path / "corrupt.npy")
    np.save(tmp_path / "int.npy", np.ones((751, 1, 58), np.int16))  # a wrong export, not coefficients
    with pytest.raises(ReactError, match=r"int\.npy: 3DMM has dtype int16, expected floating point"):
        load_face3dmm(tmp_path / "int.npy")
    np.save(tmp_path / "long.npy", np.zeros((1000, 58), np.float32))
    assert load_face3dmm(tmp_path / "long.npy").shape == (751, 58)  # cut, as dataset clips' `_full` twins are
    with pytest.raises(ReactError, match=r"long\.npy: 3DMM has 1000 frames, expected 751"):
        load_face3dmm(tmp_path / "long.npy", exact=True)


def test_emotion_csv_errors(tmp_path: Path) -> None:
    header = ",".join(f"c{i}" for i in range(25))
    (tmp_path / "cols.csv").write_text(header + "\n" + "\n".join(",".join(["0"] * 24) for _ in range(750)))
    with pytest.raises(ReactError, match=r"cols\.csv: emotion CSV has 24 columns"):
        load_emotion(tmp_path / "cols.csv")
    (tmp_path / "rows.csv").write_text(header + "\n" + "\n".join(",".join(["0"] * 25) for _ in range(700)))
    with pytest.raises(ReactError, match=r"rows\.csv: emotion CSV has 700 rows"):
        load_emotion(tmp_path / "rows.csv")
    (tmp_path / "text.csv").write_text(header + "\n" + "\n".join(",".join(["x"] * 25) for _ in range(750)))
    with pytest.raises(ReactError, match=r"text\.csv: not a numeric emotion CSV"):
        load_emotion(tmp_path / "text.csv")


def test_neighbour_matrix_size(tmp_path: Path) -> None:
    np.save(tmp_path / "n.npy", np.eye(10))
    assert load_neighbours(tmp_path / "n.npy", 10).dtype == bool
    with pytest.raises(ReactError, match=r"n\.npy: neighbour matrix is 10 x 10 but the split has 12"):
        load_neighbours(tmp_path / "n.npy", 12)


def test_video_mp4_and_frame_folders(synth_root: Path, make_synth) -> None:
    layout = DatasetLayout(synth_root)
    clip = read_pairs(synth_root, "val")[0].speaker
    mp4 = layout.video("val", clip)
    assert mp4 is not None and mp4.suffix == ".mp4"
    frames = read_video_frames(mp4, max_frames=10)
    assert frames.shape == (10, 256, 256, 3) and frames.dtype == np.uint8
    full = read_video_frames(mp4)
    assert len(full) == 751
    root = make_synth(train=0, val=4, video="frames")
    folder = DatasetLayout(root).video("val", read_pairs(root, "val")[0].speaker)
    assert folder is not None and folder.is_dir()
    frames_png = read_video_frames(folder, max_frames=12)
    assert frames_png.shape == (12, 256, 256, 3)
    # numeric order: frame 10 must come after 9, not after 1
    assert np.array_equal(frames_png[9], read_video_frames(folder)[9])


def test_missing_split_csv(tmp_path: Path) -> None:
    with pytest.raises(ReactError, match=r"val\.csv: pair list for split 'val' not found"):
        read_pairs(tmp_path, "val")
    (tmp_path / "val.csv").write_text("a,b,c\n0,x,y\n")
    with pytest.raises(ReactError, match="expected the header"):
        read_pairs(tmp_path, "val")
