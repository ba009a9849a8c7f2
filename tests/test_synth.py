"""``react synth``: the real layout and formats, determinism, and structure a model can learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from scipy.io import wavfile

from reactcli.data.layout import SUBMISSION_CLIPS, DatasetLayout, mirrored, read_pairs
from reactcli.data.loaders import load_emotion, load_face3dmm, load_neighbours
from reactcli.data.synth import face_stats, make_synthetic_dataset, real_pairs
from reactcli.errors import ReactError


def test_layout_matches_the_real_release(synth_root: Path) -> None:
    layout = DatasetLayout(synth_root)
    real = {s: {(p.speaker, p.listener) for p in real_pairs(s)} for s in ("train", "val", "test")}
    counts = {"train": 6, "val": 6, "test": 2}
    for split, count in counts.items():
        pairs = read_pairs(synth_root, split)
        assert len(pairs) == count
        assert all((p.speaker, p.listener) in real[split] for p in pairs), "names must come from the real lists"
        for clip in {c for p in pairs for c in (p.speaker, p.listener)}:
            assert layout.face3dmm(split, clip).is_file()
            assert layout.audio(split, clip).is_file()
            assert layout.emotion(split, clip).is_file()
            video = layout.video(split, clip)
            assert video is not None and video.suffix == ".mp4"
    assert (synth_root / "train.csv").read_text().startswith(",speaker_path,listener_path\n")
    val = read_pairs(synth_root, "val")
    assert set(SUBMISSION_CLIPS) <= {p.speaker for p in val}
    assert any(p.speaker.startswith("RECOLA") for p in read_pairs(synth_root, "train"))
    assert not (synth_root / "neighbour_emotion_train.npy").exists()
    for split in ("val", "test"):
        matrix = np.load(layout.neighbours(split))
        assert matrix.shape == (2 * counts[split], 2 * counts[split])


def test_file_formats(synth_root: Path) -> None:
    layout = DatasetLayout(synth_root)
    mean, std = face_stats()
    pairs = read_pairs(synth_root, "val")
    faces, channels = [], set()
    for clip in {c for p in pairs for c in (p.speaker, p.listener)}:
        raw = np.load(layout.face3dmm("val", clip))
        assert raw.dtype == np.float32 and raw.shape in {(751, 1, 58), (751, 58)}
        faces.append(load_face3dmm(layout.face3dmm("val", clip)))
        emotion = load_emotion(layout.emotion("val", clip))
        lines = layout.emotion("val", clip).read_text().strip().splitlines()
        assert len(lines) == 751 and lines[0].split(",")[0] == "AU1"
        assert set(np.unique(emotion[:, :15])) <= {0.0, 1.0}
        assert np.abs(emotion[:, 15:17]).max() <= 1.0
        np.testing.assert_allclose(emotion[:, 17:].sum(1), 1.0, atol=1e-4)
        assert (emotion[:, 17:] >= 0).all()
        rate, data = wavfile.read(layout.audio("val", clip))
        assert rate == 44100 and data.dtype == np.int16
        assert len(data) / rate == pytest.approx(30.02, abs=0.01)
        channels.add(1 if data.ndim == 1 else data.shape[1])
    assert channels == {1, 2}, "some audio must be stereo"
    faces = np.concatenate(faces)
    assert faces[:, 52].mean() == pytest.approx(np.pi, abs=0.2)  # rotation x about pi, as in real data
    # Per-dim statistics in the range of the real REACT statistics (scaled by the bundled mean/std).
    assert np.abs(faces.mean(0) - mean).max() < 0.5
    assert ((faces.std(0) > 0.1 * std) | (std < 1e-3)).all()


def test_mp4_video(synth_root: Path) -> None:
    import imageio_ffmpeg

    layout = DatasetLayout(synth_root)
    video = layout.video("val", SUBMISSION_CLIPS[0])
    assert video is not None
    meta = next(imageio_ffmpeg.read_frames(str(video)))
    assert meta["size"] == (256, 256) and meta["fps"] == pytest.approx(25.0)
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(video))
    assert frames == 751
    assert video.stat().st_size < 2_000_000, "synthetic videos must stay small"


def test_neighbours_are_the_latent_speaker_groups(tmp_path: Path) -> None:
    latents: dict[str, dict[str, int]] = {}
    make_synthetic_dataset(tmp_path, {"val": 8, "test": 3}, video="none", seed=3, latents=latents)
    for split in ("val", "test"):
        pairs = read_pairs(tmp_path, split)
        samples = mirrored(pairs)
        matrix = load_neighbours(DatasetLayout(tmp_path).neighbours(split), len(samples))
        groups = np.array([latents[split][s.speaker] for s in samples])
        np.testing.assert_array_equal(matrix, groups[:, None] == groups[None, :])
        assert matrix.diagonal().all()
        m = len(pairs)
        # The two people of a clip differ, so a sample's mirrored twin (whose listener is this
        # speaker) is never appropriate: Mime cannot score like the ground truth.
        assert not matrix[np.arange(m), np.arange(m) + m].any()
    assert len(set(latents["val"].values())) >= 3


def test_same_seed_same_dataset(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for root, seed in ((a, 1), (b, 1), (c, 2)):
        make_synthetic_dataset(root, {"train": 1, "val": 4}, video="none", seed=seed)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    clip = read_pairs(a, "val")[0].speaker
    face = DatasetLayout(a).face3dmm("val", clip).relative_to(a)
    assert (a / face).read_bytes() != (c / face).read_bytes()


def _lagged(x: np.ndarray, lags: range) -> np.ndarray:
    """(N, T, len(lags) * D + 1) causal design matrix: x at t - lag, plus a bias column."""
    cols = [np.concatenate([np.repeat(x[:, :1], lag, 1), x[:, : x.shape[1] - lag]], 1) for lag in lags]
    return np.concatenate(cols + [np.ones(x.shape[:2] + (1,))], 2)


def _emotions(root: Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    layout = DatasetLayout(root)
    samples = mirrored(read_pairs(root, split))
    cache = {c: load_emotion(layout.emotion(split, c)) for s in samples for c in (s.speaker, s.listener)}
    speaker = np.stack([cache[s.speaker] for s in samples]).astype(np.float64)
    listener = np.stack([cache[s.listener] for s in samples]).astype(np.float64)
    matrix = load_neighbours(layout.neighbours(split), len(samples)) if split != "train" else None
    return speaker, listener, matrix


def _ccc(y: np.ndarray, x: np.ndarray) -> float:
    """Mean concordance over dims (constant dims count 0), as in FRCorr."""
    my, mx, vy, vx = y.mean(0), x.mean(0), y.var(0), x.var(0)
    cov = ((y - my) * (x - mx)).mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.clip(np.nan_to_num(cov / np.sqrt(vy * vx)), -1, 1)
    return float(np.mean(2 * rho * np.sqrt(vy * vx) / (vy + vx + (my - mx) ** 2 + 1e-8)))


def _frc(pred: np.ndarray, truth: np.ndarray, matrix: np.ndarray) -> float:
    return float(np.mean([max(_ccc(truth[j], pred[n]) for j in np.flatnonzero(matrix[n])) for n in range(len(pred))]))


def test_listener_is_learnable_from_the_speaker(make_synth) -> None:
    """A causal ridge regression on the speaker's recent emotion beats Mime and Random on FRC,
    and only with the true speaker: reactions are predictable, but not copies."""
    root = make_synth(train=12, val=6, test=0, video="none", seed=0)
    s_train, l_train, _ = _emotions(root, "train")
    s_val, l_val, matrix = _emotions(root, "val")
    assert matrix is not None
    lags = range(0, 40, 2)
    x = _lagged(s_train, lags).reshape(-1, len(lags) * 25 + 1)
    weights = np.linalg.solve(x.T @ x + np.eye(x.shape[1]), x.T @ l_train.reshape(-1, 25))

    def predict(speaker: np.ndarray) -> np.ndarray:
        return (_lagged(speaker, lags) @ weights).reshape(speaker.shape)

    ridge = predict(s_val)
    mime = s_val
    rand = np.random.default_rng(0).random(l_val.shape)
    frc_ridge, frc_mime, frc_rand = (_frc(p, l_val, matrix) for p in (ridge, mime, rand))
    assert frc_ridge > frc_mime + 0.03 and frc_ridge > frc_rand + 0.1
    # The prediction uses the speaker: a shuffled speaker explains far less of the listener.
    err_true = ((ridge - l_val) ** 2).mean()
    err_shuffled = ((predict(np.roll(s_val, 3, axis=0)) - l_val) ** 2).mean()
    assert err_true < 0.95 * err_shuffled


def test_frame_folder_video(make_synth) -> None:
    root = make_synth(train=0, val=4, video="frames")  # shared with test_data_loaders
    folder = root / "val" / "Video_files" / SUBMISSION_CLIPS[0]
    assert sorted(int(p.stem) for p in folder.glob("*.png")) == list(range(1, 752))
    assert not list(folder.glob(".*"))  # no temp files left behind


def test_cli_synth(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    args = ["synth", "--out", str(out), "--train-pairs", "1", "--val-pairs", "4", "--test-pairs", "0"]
    assert run_cli(args + ["--video", "none", "--emotion-dirs", "p1p2", "--seed", "5"]) == 0
    assert len(read_pairs(out, "val")) == 4 and not (out / "test.csv").exists()
    assert not (out / "val" / "Video_files").exists()
    assert (out / "val" / "Emotion" / "NoXI/001_2016-03-17_Paris/P1/21.csv").is_file()
    assert run_cli(["synth", "--out", str(tmp_path / "x"), "--val-pairs", "3"]) != 0  # < the 4 submission clips


def test_synth_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """A run stopped half-way (here: after the first clip) or a full disk leaves an older dataset in
    the folder as it was and no half dataset anywhere; a folder of other files is refused."""
    import errno

    import reactcli.data.synth as synth

    root = tmp_path / "ds"
    make_synthetic_dataset(root, {"val": 4}, video="none", seed=1)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}

    def killed() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_synthetic_dataset(root, {"val": 4}, video="none", seed=2, on_clip=killed)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]

    def full_disk(path: Path, text: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(synth, "save_text", full_disk)
    capsys.readouterr()
    assert run_cli(["synth", "--out", str(root), "--val-pairs", "4", "--train-pairs", "0", "--test-pairs", "0",
                    "--video", "none", "--seed", "3"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error")]
    assert errors == [f"error: {root}: could not write (No space left on device); nothing was changed there"]
    assert "Traceback" not in err
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    monkeypatch.undo()
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("mine")
    with pytest.raises(ReactError, match="holds other files \\(thesis.tex\\)"):
        make_synthetic_dataset(tmp_path / "home", {"val": 4}, video="none")
    assert (tmp_path / "home" / "thesis.tex").read_text() == "mine"


def test_bad_options(tmp_path: Path) -> None:
    with pytest.raises(ReactError, match="--video avi"):
        make_synthetic_dataset(tmp_path, {"val": 4}, video="avi")
    with pytest.raises(ReactError, match="--emotion-dirs x"):
        make_synthetic_dataset(tmp_path, {"val": 4}, emotion_dirs="x")
    with pytest.raises(ReactError, match="at least 4 pairs"):
        make_synthetic_dataset(tmp_path, {"val": 2})
    with pytest.raises(ReactError, match="cannot make 5000"):
        make_synthetic_dataset(tmp_path, {"train": 5000}, video="none")
