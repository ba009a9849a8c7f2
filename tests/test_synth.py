"""The synthetic dataset: real layout and names, determinism, and learnable dyadic structure."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reactcli.data.layout import SUBMISSION_CLIPS, DatasetLayout, mirrored, read_pairs
from reactcli.data.loaders import load_emotion, load_face3dmm, load_neighbours
from reactcli.data.synth import (
    CLIP_FRAMES,
    emotion_from_face,
    face_stats,
    make_face,
    make_person,
    real_pairs,
)


def test_layout_names_and_submission_clips(synth_root: Path) -> None:
    real_val = {(p.speaker, p.listener) for p in real_pairs("val")}
    val = read_pairs(synth_root, "val")
    assert {(p.speaker, p.listener) for p in val} <= real_val
    assert [p.index for p in val] == list(range(len(val)))
    assert set(SUBMISSION_CLIPS) <= {p.speaker for p in val}
    n = 2 * len(val)
    matrix = load_neighbours(synth_root / "neighbour_emotion_val.npy", n)
    assert matrix.diagonal().all() and (matrix == matrix.T).all()
    assert (synth_root / "neighbour_emotion_test.npy").is_file()
    assert any(p.speaker.startswith("RECOLA") for p in val)


def test_deterministic(make_synth) -> None:
    a = make_synth(train=1, val=4, seed=5)
    b = make_synth(train=1, val=4, seed=5, emotion_dirs="p1p2")
    la, lb = DatasetLayout(a), DatasetLayout(b)
    for s in mirrored(read_pairs(a, "val"))[:3]:
        np.testing.assert_array_equal(load_face3dmm(la.face3dmm("val", s.speaker)), load_face3dmm(lb.face3dmm("val", s.speaker)))
        np.testing.assert_array_equal(load_emotion(la.emotion("val", s.speaker)), load_emotion(lb.emotion("val", s.speaker)))


def test_statistics_like_the_real_data(synth_root: Path) -> None:
    mean, std = face_stats()
    layout = DatasetLayout(synth_root)
    faces = np.concatenate([load_face3dmm(layout.face3dmm("train", p.speaker)) for p in read_pairs(synth_root, "train")])
    assert np.abs(faces.mean(0)[52:] - mean[52:]).max() < 0.1
    assert (faces[:, :52] >= 0).all() and (faces[:, :52] <= 1).all()
    emotion = load_emotion(layout.emotion("train", read_pairs(synth_root, "train")[0].speaker))
    np.testing.assert_allclose(emotion[:, 17:].sum(1), 1.0, atol=1e-4)
    assert set(np.unique(emotion[:, :15])) <= {0.0, 1.0}
    assert (np.abs(emotion[:, 15:17]) <= 1).all()


def _lagged_corr(a: np.ndarray, b: np.ndarray, lag: int) -> float:
    return float(np.corrcoef(a[: len(a) - lag], b[lag:])[0, 1])


def test_listener_reacts_to_speaker() -> None:
    """The listener's smile follows the speaker's smile after the delay; unrelated speakers do not."""
    mean, std = face_stats()
    rng = np.random.default_rng(0)
    related, unrelated = [], []
    for trial in range(12):
        speaker = make_person(rng, behaviour=0, style=0, delay=12, f0=150.0)
        listener = make_person(rng, behaviour=3, style=0, delay=12, f0=120.0)
        other = make_person(rng, behaviour=0, style=0, delay=12, f0=150.0)
        s_face = make_face(rng, speaker, listener, mean, std)
        l_face = make_face(rng, listener, speaker, mean, std)
        o_face = make_face(rng, other, listener, mean, std)
        related.append(_lagged_corr(s_face[:, 43], l_face[:, 43], 12))
        unrelated.append(_lagged_corr(o_face[:, 43], l_face[:, 43], 12))
    assert np.mean(related) > 0.3 > np.mean(unrelated) + 0.15


def test_audio_follows_speaker_jaw(synth_root: Path) -> None:
    from reactcli.data.features import log_mel
    from reactcli.data.loaders import load_audio

    layout = DatasetLayout(synth_root)
    clip = read_pairs(synth_root, "train")[0].speaker
    wave, rate = load_audio(layout.audio("train", clip))
    energy = log_mel(wave, rate, 20).mean(1)
    jaw = load_face3dmm(layout.face3dmm("train", clip))[:, 24]
    assert np.corrcoef(energy, jaw)[0, 1] > 0.5


def test_emotion_is_derived_from_face() -> None:
    mean, std = face_stats()
    rng = np.random.default_rng(1)
    a, b = make_person(rng, 0, 0, 10, 150.0), make_person(rng, 1, 1, 10, 150.0)
    face = make_face(rng, a, b, mean, std)
    emotion = emotion_from_face(face, mean, std)
    assert emotion.shape == (750, 25)
    smile = face[:750, 43:45].mean(1)
    assert np.corrcoef(smile, emotion[:, 15])[0, 1] > 0.5  # valence follows the smile
    assert face.shape == (CLIP_FRAMES, 58)
