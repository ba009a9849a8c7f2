# ruff: noqa: F811  (pytest fixtures imported from _model_fixtures are parameters by design)
"""The quality bench's own pieces on tiny cases: the speaker shuffle, smoothness, targets, summary."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from _model_fixtures import trained_run  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import quality_bench  # noqa: E402


def test_shuffle_gives_every_sample_another_speaker() -> None:
    for n in (2, 5, 24):
        order = quality_bench.shuffled_speakers(n)
        assert sorted(order) == list(range(n)) and not (order == np.arange(n)).any()


def test_smoothness_is_the_ratio_of_mean_frame_changes() -> None:
    t = np.arange(100, dtype=np.float64)
    real = np.broadcast_to(np.sin(t / 5)[None, :, None], (3, 100, 25))
    assert quality_bench.smoothness(np.broadcast_to(real[:, None], (3, 2, 100, 25)), real) == pytest.approx(1.0)
    jitter = real[:, None] + 0.5 * (-1.0) ** t[None, None, :, None]
    assert quality_bench.smoothness(jitter, real) > 3.0
    assert quality_bench.smoothness(0.5 * real[:, None], real) == pytest.approx(0.5)


def _result(model_frc: float, shuffled_frc: float, smooth: float) -> dict:
    def row(frc: float, frd: float, div: float = 0.0) -> dict:
        return {"FRC": frc, "FRD": frd, "FRDiv": div}

    return {
        "metrics": {"model": row(model_frc, 50.0, 0.01), "shuffled": row(shuffled_frc, 60.0, 0.01),
                    "Ridge": row(2.0, 55.0), "Mime": row(0.6, 68.0)},
        "smoothness": smooth,
    }


def test_targets_and_summary_take_the_worst_seed() -> None:
    good = _result(2.0, 1.0, 1.1)
    assert all(quality_bench.checks(good).values())
    bad = quality_bench.checks(_result(1.4, 1.0, 1.8))
    assert bad["FRC >= 0.75 Ridge"] is False and bad["shuffled FRC <= 0.6"] is False
    assert bad["smoothness in [0.7, 1.5]"] is False and bad["FRD < Ridge"] is True
    summary = quality_bench.summary({0: good, 5: _result(1.4, 1.0, 0.5)}, k=10)
    assert summary["FRC"]["worst"] == pytest.approx(0.14) and summary["FRC"]["mean"] == pytest.approx(0.17)
    assert summary["shuffled / matched FRC"]["worst"] == pytest.approx(1.0 / 1.4)
    assert summary["smoothness"]["worst"] == 0.5  # furthest from 1 on a log scale


def test_generate_dataset_can_feed_another_speaker(trained_run: Path, preprocessed_root: Path) -> None:
    from reactcli.data.dataset import ReactClipDataset
    from reactcli.generate import generate_dataset, generate_reactions, sample_seed
    from reactcli.models.checkpoint import load_reaction_model

    model, _ = load_reaction_model(trained_run / "predictor.ckpt")
    dataset = ReactClipDataset(preprocessed_root, "val", model.config)
    dataset.samples = dataset.samples[:2]
    emotion, face = generate_dataset(model, dataset, 2, seed=3, speaker_of=[1, 0])
    assert emotion.shape == (2, 2, 750, 25) and face.shape == (2, 2, 751, 58)
    other = dataset.clip(1)
    _, expected = generate_reactions(
        model, other["speaker_audio"], other["speaker_3dmm"], other["speaker_emotion"], 2, seed=sample_seed(3, 0)
    )
    np.testing.assert_allclose(emotion[0], expected[:, :750], atol=1e-5, rtol=0)  # batched: float rounding
