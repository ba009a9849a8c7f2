"""The 2026 naive baselines: B_Random's draws, B_MeanFr's mean, and the rows' expected values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reactcli.errors import ReactError
from reactcli.metrics.mars import score_mars
from reactcli.metrics.mars_baselines import MARS_BASELINES, b_random, naive_rows, train_mean_frame


def test_b_random_consumes_the_generator_like_the_script() -> None:
    targets = [np.zeros((10, 64, 25), np.float32), np.zeros((10, 20, 25), np.float32)]
    got = b_random(targets, torch.Generator().manual_seed(3))
    torch.manual_seed(3)  # the script: torch's global generator, sample by sample
    for target, ours in zip(targets, got, strict=True):
        shape = target.shape[:2]
        au = torch.randint(0, 2, (*shape, 15), dtype=torch.float32)
        va = torch.empty((*shape, 2))
        todo = torch.ones((*shape, 2), dtype=torch.bool)
        while todo.any():
            new = torch.randn((*shape, 2)) * 0.5
            va[todo] = new[todo]
            todo = (va < -1) | (va > 1)
        raw = torch.rand((*shape, 8))
        np.testing.assert_array_equal(ours, torch.cat([au, va, raw / raw.sum(-1, keepdim=True)], -1).numpy())
    assert set(np.unique(got[0][..., :15])) == {0.0, 1.0}
    assert np.abs(got[0][..., 15:17]).max() <= 1.0
    np.testing.assert_allclose(got[0][..., 17:].sum(-1), 1.0, rtol=1e-6)


def test_train_mean_frame() -> None:
    a = np.full((3, 25), 1.0, np.float32)
    b = np.full((1, 25), 5.0, np.float32)
    np.testing.assert_allclose(train_mean_frame([a, b]), 2.0)  # frames weigh the same, not files
    assert train_mean_frame([a]).dtype == np.float32
    with pytest.raises(ReactError, match="no frames"):
        train_mean_frame([])


def test_rows_and_their_expected_values() -> None:
    rng = np.random.default_rng(0)
    lengths = [58, 70, 90]
    speakers = [(rng.random((t, 25)) < 0.4).astype(np.float32) for t in lengths]
    aligned = [(rng.random((10, t, 25)) < 0.4).astype(np.float32) for t in lengths]
    mean = rng.random(25).astype(np.float32)
    makers = naive_rows(speakers, aligned, torch.Generator().manual_seed(0), mean)
    rows = {name: make() for name, make in makers.items()}  # in order: B_Random draws from the generator
    assert list(rows) == list(MARS_BASELINES)
    assert rows["B_Mime"][1].shape == (10, 70, 25) and rows["B_MeanFr"][2].shape == (10, 90, 25)
    assert list(naive_rows(speakers, aligned, None, None)) == list(MARS_BASELINES[:3])  # no train mean: no B_MeanFr
    scores = {  # as run_mars_baselines scores them: GT_identical's FRC forced
        name: score_mars(speakers, preds, aligned, mae=True, fixed=False, force_identity_frc=name == "GT_identical",
                         workers=2)
        for name, preds in rows.items()
    }  # fmt: skip
    gt = scores["GT_identical"].values
    assert gt["FRC"] == 10.0 and gt["FRD"] == pytest.approx(0.0, abs=1e-9) and gt["MAE"] > 0
    meanfr = scores["B_MeanFr"].values
    assert meanfr["FRC"] == pytest.approx(0.0, abs=1e-12) and meanfr["FRDiv"] == 0.0 and meanfr["FRVar"] == 0.0
    assert scores["B_Mime"].values["FRDiv"] == 0.0
    assert scores["B_Random"].values["FRDiv"] > 0.1
    assert all("MAE" in s.values for s in scores.values())
