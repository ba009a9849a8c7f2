# ruff: noqa: F811  (pytest fixtures imported from _model_fixtures are parameters by design)
"""The quality bench's own pieces on tiny cases: the speaker shuffle, smoothness, the diversity curves
(RidgeRes, the neighbour set, matched-diversity interpolation, table and figure), targets, summary."""

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


def test_unrelated_shuffle_avoids_speakers_whose_reactions_are_appropriate() -> None:
    types = np.array([0, 0, 1, 1, 2, 0])  # appropriate = the speakers share a type
    appropriate = (types[:, None] == types[None, :]).astype(np.int64)
    order = quality_bench.unrelated_speakers(appropriate)
    assert order.tolist() == [2, 2, 4, 4, 5, 2]  # the first later sample of another type, cyclically
    assert not appropriate[np.arange(6), order].any()
    np.testing.assert_array_equal(quality_bench.unrelated_speakers(appropriate), order)
    with pytest.raises(SystemExit, match="appropriate to sample 0"):
        quality_bench.unrelated_speakers(np.ones((3, 3)))


def test_smoothness_is_the_ratio_of_mean_frame_changes() -> None:
    t = np.arange(100, dtype=np.float64)
    real = np.broadcast_to(np.sin(t / 5)[None, :, None], (3, 100, 25))
    assert quality_bench.smoothness(np.broadcast_to(real[:, None], (3, 2, 100, 25)), real) == pytest.approx(1.0)
    jitter = real[:, None] + 0.5 * (-1.0) ** t[None, None, :, None]
    assert quality_bench.smoothness(jitter, real) > 3.0
    assert quality_bench.smoothness(0.5 * real[:, None], real) == pytest.approx(0.5)


def _result(model_frc: float, shuffled_frc: float, smooth: float, div: float = 0.02) -> dict:
    def row(frc: float, frd: float, div: float = 0.0) -> dict:
        return {"FRC": frc, "FRD": frd, "FRDiv": div}

    ridge_res = [{"x": 0.0, "FRC": 0.2, "FRD": 55.0 / 10, "FRDiv": 0.0},
                 {"x": 1.0, "FRC": 0.1, "FRD": 65.0 / 10, "FRDiv": 0.04}]
    return {
        "metrics": {"model": row(model_frc, 50.0, div), "shuffled": row(shuffled_frc, 60.0, div),
                    "Ridge": row(2.0, 55.0), "Mime": row(0.6, 68.0), "Ideal": row(1.5, 65.0, 0.04)},
        "smoothness": smooth,
        "ridge_res_matched": quality_bench.matched_diversity(ridge_res, div),
    }


def test_matched_diversity_interpolates_the_curve_at_the_models_frdiv() -> None:
    curve = [{"x": 0.5, "FRC": 0.18, "FRD": 5.6, "FRDiv": 0.01}, {"x": 0.0, "FRC": 0.21, "FRD": 5.7, "FRDiv": 0.0},
             {"x": 1.0, "FRC": 0.14, "FRD": 6.8, "FRDiv": 0.04}]
    at = quality_bench.matched_diversity(curve, 0.02)  # a third of the way from s = 0.5 to s = 1
    assert at == pytest.approx({"x": 0.5 + 0.5 / 3, "FRDiv": 0.02, "FRC": 0.18 - 0.04 / 3, "FRD": 5.6 + 1.2 / 3})
    assert quality_bench.matched_diversity(curve, 0.005) == pytest.approx(
        {"x": 0.25, "FRDiv": 0.005, "FRC": 0.195, "FRD": 5.65})
    assert quality_bench.matched_diversity(curve, 0.0)["x"] == 0.0
    assert quality_bench.matched_diversity(curve, 0.05) is None  # beyond the curve: no extrapolation
    for point, ratio in zip(curve, (0.63, 0.6, 0.67), strict=True):
        point["shuffled"] = ratio  # RidgeRes's shuffled / matched FRC rides along
    assert quality_bench.matched_diversity(curve, 0.02)["shuffled"] == pytest.approx(0.63 + 0.04 / 3)
    curve[0].pop("shuffled")
    assert "shuffled" not in quality_bench.matched_diversity(curve, 0.02)  # only where both points have it


def test_ridge_residual_draws_the_same_clips_for_every_scale() -> None:
    ridge = np.zeros((3, 5, 2), dtype=np.float32)
    residuals = np.arange(4, dtype=np.float32)[:, None, None] + np.zeros((4, 5, 2), dtype=np.float32)
    curves = quality_bench.ridge_residual_predictions(ridge, residuals, 6, (0.0, 0.5, 1.0), seed=1)
    assert curves[0.0].shape == (3, 6, 5, 2) and not curves[0.0].any()
    np.testing.assert_allclose(curves[0.5], 0.5 * curves[1.0])
    assert len(np.unique(curves[1.0][..., 0, 0])) > 1  # reactions draw different clips
    again = quality_bench.ridge_residual_predictions(ridge, residuals, 6, (1.0,), seed=1)
    np.testing.assert_array_equal(again[1.0], curves[1.0])


def test_neighbour_set_holds_appropriate_listeners_only() -> None:
    listener = np.arange(4, dtype=np.float32)[:, None, None] + np.zeros((4, 3, 2), dtype=np.float32)
    matrix = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    chosen = quality_bench.neighbour_set(listener, matrix, 5, seed=0)
    assert chosen.shape == (4, 5, 3, 2)
    for n in range(4):
        assert set(chosen[n, :, 0, 0].astype(int)) == set(np.flatnonzero(matrix[n]))


def test_targets_and_summary_take_the_worst_seed() -> None:
    good = _result(2.0, 1.0, 1.1)
    assert all(quality_bench.checks(good, k=10).values())
    bad = quality_bench.checks(_result(1.4, 1.0, 1.8, div=0.005), k=10)
    assert bad["FRC >= 0.75 Ridge"] is False and bad["shuffled FRC <= 0.6"] is False
    assert bad["smoothness in [0.7, 1.5]"] is False and bad["FRDiv >= 0.25 Ideal"] is False
    assert bad["FRD < RidgeRes matched"] is True and bad["FRC > RidgeRes matched"] is False
    outside = quality_bench.checks(_result(2.0, 1.0, 1.1, div=0.08), k=10)  # beyond RidgeRes's curve
    assert outside["FRC > RidgeRes matched"] is False and outside["FRDiv >= 0.25 Ideal"] is True
    summary = quality_bench.summary({0: good, 5: _result(1.4, 1.0, 0.5)}, k=10)
    assert summary["FRC"]["worst"] == pytest.approx(0.14) and summary["FRC"]["mean"] == pytest.approx(0.17)
    assert summary["shuffled / matched FRC"]["worst"] == pytest.approx(1.0 / 1.4)
    assert summary["smoothness"]["worst"] == 0.5  # furthest from 1 on a log scale
    assert summary["FRDiv / Ideal FRDiv"]["worst"] == pytest.approx(0.5)


def test_curve_table_and_figure_are_written(tmp_path: Path) -> None:
    result = _result(2.0, 1.0, 1.1)
    for name in ("Ridge", "Ideal", "Mime"):
        result["metrics"][name]["N"] = 24
    result["metrics"]["model"]["N"] = 24
    result["metrics"]["Neighbours"] = {"FRC": 6.7, "FRD": 0.0, "FRDiv": 0.05}
    result["metrics"]["shuffled next"] = {"FRC": 1.5, "FRD": 58.0, "FRDiv": 0.02}
    result["curves"] = {
        "knob": "generation.sampled_emotion_weight", "default": 0.5,
        "model": [{"x": 0.0, "FRC": 0.21, "FRD": 5.6, "FRDiv": 0.002, "smoothness": 0.7},
                  {"x": 0.5, "FRC": 0.2, "FRD": 5.0, "FRDiv": 0.02, "smoothness": 1.1}],
        "RidgeRes": [{"x": 0.0, "FRC": 0.2, "FRD": 5.5, "FRDiv": 0.0, "smoothness": 0.6, "shuffled": 0.6},
                     {"x": 1.0, "FRC": 0.1, "FRD": 6.5, "FRDiv": 0.04, "smoothness": 1.6, "shuffled": 0.7}],
    }
    result["ridge_res_matched"] = quality_bench.matched_diversity(result["curves"]["RidgeRes"], 0.02)
    result["ideal_shuffled"] = {"shuffled": 0.42, "shuffled next": 0.61}
    table = quality_bench.curve_table(0, result, 10)
    assert ("| model | generation.sampled_emotion_weight = 0.5 (default) | 0.2000 | 5.000 | 0.02000 | 1.10 | "
            "0.500 |") in table  # shuffled 1.0 over matched 2.0
    assert "| model | generation.sampled_emotion_weight = 0 | 0.2100 | 5.600 | 0.00200 | 0.70 |  |" in table
    assert "| RidgeRes | s = 1 | 0.1000 | 6.500 | 0.04000 | 1.60 | 0.700 |" in table
    assert "| model, the next sample's speaker (earlier shuffle) | | | | | | 0.750 |" in table  # 1.5 / 2.0
    assert "| Ideal | | 0.1500 | 6.500 | 0.04000 | | 0.420 (next sample's speaker 0.610) |" in table
    assert "| RidgeRes at the model's FRDiv | s = 0.500 | 0.1500 | 6.000 | 0.02000 | | 0.650 |" in table
    png = tmp_path / "curves.png"
    quality_bench.plot_curves(0, result, 10, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


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
