"""The ideal sampler (``react synth --ideal-samples K``): evaluate's layout, draws that differ, and a
dataset that stays bit-identical with or without it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from reactcli.data.ideal import IdealSampler, ideal_folder
from reactcli.data.layout import mirrored, read_pairs
from reactcli.data.synth import make_synthetic_dataset
from reactcli.predictions import PredictionSet, sample_ids
from reactcli.vocab import CLIP_FRAMES, EMOTION_FRAMES


def _files(root: Path) -> dict[Path, bytes]:
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def ideal_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ideal") / "ds"
    assert run_cli(["synth", "--out", str(root), "--train-pairs", "1", "--val-pairs", "4", "--test-pairs", "1",
                    "--video", "none", "--seed", "3", "--ideal-samples", "3"]) == 0  # fmt: skip
    return root


def test_dataset_is_bit_identical_with_the_ideal_sampler(ideal_root: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    make_synthetic_dataset(plain, {"train": 1, "val": 4, "test": 1}, video="none", seed=3)
    with_ideal = {p: b for p, b in _files(ideal_root).items() if not p.parts[0].startswith("ideal_")}
    assert with_ideal == _files(plain)
    assert not (ideal_root / "ideal_train").exists()


def test_ideal_set_has_the_evaluate_layout(ideal_root: Path, tmp_path: Path) -> None:
    for split in ("val", "test"):
        preds = PredictionSet.open(ideal_folder(ideal_root, split))
        samples = mirrored(read_pairs(ideal_root, split))
        preds.validate_against(sample_ids(samples), EMOTION_FRAMES, face_lengths=CLIP_FRAMES)
        assert preds.K == 3 and preds.record["split"] == split and preds.record["seed"] == 3
        emotion = np.asarray(preds.dense_emotion())
        assert emotion.shape == (len(samples), 3, EMOTION_FRAMES, 25) and np.isfinite(emotion).all()
    out = tmp_path / "metrics.json"
    assert run_cli(["evaluate", "--data", str(ideal_root), "--split", "val", "--predictions",
                    str(ideal_folder(ideal_root, "val")), "--out", str(out)]) == 0  # fmt: skip
    metrics = json.loads(out.read_text())
    assert metrics["N"] == 8 and metrics["K"] == 3
    assert metrics["FRDiv"] > 0.01 and 0 < metrics["FRC"] <= 3


def test_draws_differ_and_do_not_depend_on_k(ideal_root: Path, tmp_path: Path) -> None:
    emotion = np.asarray(PredictionSet.open(ideal_folder(ideal_root, "val")).dense_emotion())
    face = np.asarray(PredictionSet.open(ideal_folder(ideal_root, "val")).dense_face3dmm())
    for n in range(len(emotion)):
        for a in range(3):
            for b in range(a):
                assert np.abs(emotion[n, a] - emotion[n, b]).mean() > 1e-3
                assert np.abs(face[n, a] - face[n, b]).mean() > 1e-3
    # the speaker drives them: the two samples of one row (roles swapped) are not the same draws
    assert not np.allclose(emotion[0], emotion[len(emotion) // 2])
    sampler = IdealSampler(2, seed=3)
    make_synthetic_dataset(tmp_path / "k2", {"train": 1, "val": 4, "test": 1}, video="none", seed=3, on_split=sampler)
    fewer = np.asarray(PredictionSet.open(ideal_folder(tmp_path / "k2", "val")).dense_emotion())
    np.testing.assert_array_equal(fewer, emotion[:, :2])  # draw k is the same for any K > k


def test_ideal_samples_is_refused_for_mars(tmp_path: Path) -> None:
    assert run_cli(["synth", "--out", str(tmp_path / "m"), "--edition", "2025", "--ideal-samples", "2"]) != 0
    assert not (tmp_path / "m").exists()
