"""The MARS metrics on ragged samples against slow, plain transcriptions of the organisers' definitions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from tslearn.metrics import dtw as tslearn_dtw

from reactcli.errors import ReactError
from reactcli.metrics.mars import (
    ccc_sets,
    check_samples,
    frc_per_sample,
    frdiv,
    frsyn_fixed,
    frsyn_official,
    frvar,
    mae_per_sample,
    score_mars,
    tlcc_offset,
)
from reactcli.metrics.mars_frd import frd_sets

BLOCKS = [(0, 15, 1 / 15), (15, 17, 1.0), (17, 25, 1 / 8)]


def emotion(rng: np.random.Generator, t: int, constant_aus: tuple[int, ...] = ()) -> np.ndarray:
    x = np.zeros((t, 25), np.float32)
    x[:, :15] = rng.random((t, 15)) < 0.3
    x[:, list(constant_aus)] = 0.0
    x[:, 15:17] = np.tanh(np.cumsum(rng.normal(0, 0.2, (t, 2)), axis=0))
    e = np.exp(rng.normal(0, 1, (t, 8)))
    x[:, 17:] = e / e.sum(axis=1, keepdims=True)
    return x


@pytest.fixture(scope="module")
def ragged():
    """Five samples of lengths 58..140, K = 4 predictions, G = 5 aligned GTs, some constant AU channels."""
    rng = np.random.default_rng(0)
    lengths = [58, 61, 140, 90, 75]
    speakers = [emotion(rng, t + (3 if i == 2 else 0), (2, 5) if i % 2 else ()) for i, t in enumerate(lengths)]
    preds = [np.stack([emotion(rng, t, (1,) if k == 0 else ()) for k in range(4)]) for t in lengths]
    targets = [np.stack([emotion(rng, t, (0, 4)) for _ in range(5)]) for t in lengths]
    targets[3][2] = preds[3][1]  # one exact match
    return speakers, preds, targets


# ---------------------------------------------------------------- references
def ref_ccc(target: np.ndarray, pred: np.ndarray) -> float:
    """Per dim: np.cov r (nan_to_num, clip), float32 numpy moments, the official formula; mean over dims."""
    values = []
    for d in range(25):
        yt, yp = target[:, d], pred[:, d]
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            c = np.cov(yt, yp)
            sd = np.sqrt(np.diag(c))
            r = np.clip(np.nan_to_num(c[0, 1] / sd[0] / sd[1]), -1, 1)
        den = np.var(yt) + np.var(yp) + (np.mean(yt) - np.mean(yp)) ** 2 + np.float32(1e-8)
        values.append(2 * r * np.std(yt) * np.std(yp) / den)
    return float(np.mean(values))


def ref_frd_sample(preds: np.ndarray, targets: np.ndarray) -> float:
    def d(x, y):
        return sum(w * tslearn_dtw(x[:, a:b].astype(np.float32), y[:, a:b].astype(np.float32)) for a, b, w in BLOCKS)

    return sum(min(d(p, t) for t in targets) for p in preds)


def ref_offset(x: np.ndarray, s: np.ndarray, max_lag: int = 49) -> int:
    n = min(len(x), len(s))
    x, s = x[:n], s[:n]
    rs = []
    for lag in range(-max_lag, max_lag + 1):
        a, b = (x[lag:], s[:-lag]) if lag > 0 else (x[:lag], s[-lag:]) if lag < 0 else (x, s)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            per = [np.corrcoef(a[:, d], b[:, d])[0, 1] for d in range(25)]
        rs.append(torch.mean(torch.tensor(per, dtype=torch.float32)))
    return abs(max_lag - int(torch.argmax(torch.stack(rs))))


def ref_fixed(x: np.ndarray, s: np.ndarray, max_lag: int) -> int | None:
    n = min(len(x), len(s))
    x, s = x[:n].astype(np.float64), s[:n].astype(np.float64)
    best, best_lag = -np.inf, None
    for lag in range(-max_lag, max_lag + 1):
        a, b = (x[lag:], s[:-lag]) if lag > 0 else (x[:lag], s[-lag:]) if lag < 0 else (x, s)
        per = []
        for d in range(25):
            if len(a) < 2 or np.ptp(a[:, d]) == 0 or np.ptp(b[:, d]) == 0:
                continue
            per.append(np.corrcoef(a[:, d], b[:, d])[0, 1])
        if per and np.mean(per) > best:
            best, best_lag = np.mean(per), lag
    return None if best_lag is None else abs(best_lag)


# ---------------------------------------------------------------- the metrics
def test_frc_matches_the_per_dim_reference(ragged) -> None:
    _, preds, targets = ragged
    for p, t in zip(preds, targets, strict=True):
        want = np.array([[ref_ccc(t[j], p[k]) for j in range(len(t))] for k in range(len(p))])
        np.testing.assert_allclose(ccc_sets(p, t), want, rtol=1e-10, atol=1e-12)
    want = [sum(max(ref_ccc(tj, pk) for tj in t) for pk in p) for p, t in zip(preds, targets, strict=True)]
    np.testing.assert_allclose(frc_per_sample(preds, targets), want, rtol=1e-10)
    # a constant channel scores r = 0: the ground truth (AUs 0 and 4 constant) scores 23/25 per reaction
    assert frc_per_sample([targets[0]], [targets[0]])[0] == pytest.approx(5 * 23 / 25, rel=1e-6)


def test_frd_matches_tslearn(ragged) -> None:
    _, preds, targets = ragged
    want = [ref_frd_sample(p, t) for p, t in zip(preds, targets, strict=True)]
    got = frd_sets(preds, targets, workers=2)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # identical predictions and ground truths are computed once but still counted K times
    copies = [np.repeat(preds[0][:1], 4, axis=0)]
    np.testing.assert_allclose(frd_sets(copies, [targets[0]]), [ref_frd_sample(copies[0], targets[0])], rtol=1e-5)
    # ragged lengths inside one sample (DTW does not need equal lengths)
    np.testing.assert_allclose(frd_sets([preds[0]], [targets[2]]), [ref_frd_sample(preds[0], targets[2])], rtol=1e-5)


def test_frsyn_official_quirks(ragged) -> None:
    speakers, preds, _ = ragged
    for p, s in zip(preds, speakers, strict=True):
        assert tlcc_offset(p[0], s) == ref_offset(p[0], s)
    value, offsets = frsyn_official(preds, speakers)
    # prediction 0 has a constant AU, so every lag's mean is NaN and the first NaN (lag -49) wins
    assert list(offsets) == [49] * len(preds)
    assert value == pytest.approx(49.0)
    # without constant dims the offsets come from real correlations; the speaker is cut to the prediction
    rng = np.random.default_rng(4)
    x = rng.normal(size=(130, 25)).astype(np.float32)
    s = np.roll(x, -7, axis=0)[:127] + 0.1 * rng.normal(size=(127, 25)).astype(np.float32)
    assert tlcc_offset(x, s) == ref_offset(x, s) == 7
    assert frsyn_official([np.stack([x, x])], [s])[0] == pytest.approx(7.0)


def test_frsyn_fixed_uses_every_prediction_and_30_fps_lags(ragged) -> None:
    speakers, preds, _ = ragged
    result = frsyn_fixed(preds, speakers, fps=30)
    want = [ref_fixed(p[k], s, 59) for p, s in zip(preds, speakers, strict=True) for k in range(len(p))]
    scored = [w for w in want if w is not None]
    assert result.scored == len(scored) and result.excluded == len(want) - len(scored)
    assert result.value == pytest.approx(np.mean(scored), rel=1e-12)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 25)).astype(np.float32)
    s = np.roll(x, -55, axis=0) + 0.05 * rng.normal(size=(200, 25)).astype(np.float32)  # a lag beyond 49
    assert frsyn_fixed([np.stack([x, x])], [s], fps=30).value == 55
    flat = np.zeros((2, 70, 25), np.float32)
    assert frsyn_fixed([flat], [x[:70]]).excluded == 2  # nothing usable: left out and counted


def test_diversity_variance_and_mae(ragged) -> None:
    _, preds, targets = ragged
    want_div = np.mean(
        [
            sum(np.sum((p[i].astype(np.float64) - p[j]) ** 2) for i in range(len(p)) for j in range(len(p)))
            / (len(p) * (len(p) - 1) * p[0].size)
            for p in preds
        ]
    )
    assert frdiv(preds) == pytest.approx(want_div, rel=1e-5)
    want_var = np.mean([p.astype(np.float64).var(axis=1, ddof=1) for p in preds])  # every sample weighs the same
    assert frvar(preds) == pytest.approx(want_var, rel=1e-5)
    want_mae = [
        np.mean([np.mean([np.abs(t[j][:, 15:] - p[i][:, 15:]).mean() for j in range(len(p))]) for i in range(len(p))])
        for p, t in zip(preds, targets, strict=True)
    ]
    np.testing.assert_allclose(mae_per_sample(preds, targets), want_mae, rtol=1e-6)
    with pytest.raises(ReactError, match="MAE pairs"):
        mae_per_sample([preds[0]], [targets[0][:2]])


def test_score_mars_and_the_identity_rule(ragged) -> None:
    speakers, preds, targets = ragged
    scores = score_mars(speakers, preds, targets, mae=True, workers=2)
    assert set(scores.values) >= {"FRC", "FRD", "FRSyn", "FRDiv", "FRVar", "MAE", "FRSyn_fixed"}
    assert scores.values["FRC"] == pytest.approx(np.mean(frc_per_sample(preds, targets)))
    assert scores.values["N"] == 5 and scores.warnings == []
    same = score_mars(speakers, targets, targets, force_identity_frc=True, fixed=False)
    assert same.values["FRC"] == 5.0 and same.values["FRD"] == pytest.approx(0.0, abs=1e-9)
    assert "FRC" not in same.per_sample
    forced = score_mars(speakers, preds, targets, force_identity_frc=True, fixed=False)
    assert forced.values["FRC"] < 4 and "not forced" in forced.warnings[0]


def test_check_samples_errors(ragged) -> None:
    speakers, preds, targets = ragged
    with pytest.raises(ReactError, match="x/2: ground truths have shape"):
        check_samples(
            speakers,
            preds,
            [targets[0], targets[1], targets[0], targets[3], targets[4]],
            names=list("x/" + c for c in "01234"),
        )
    with pytest.raises(ReactError, match=r"K >= 2"):
        check_samples(speakers[:1], [preds[0][:1]], [targets[0]])
    bad = preds[0].copy()
    bad[1, 3, 4] = np.nan
    with pytest.raises(ReactError, match="sample 0: predictions hold NaN"):
        check_samples(speakers[:1], [bad], [targets[0]])
    with pytest.raises(ReactError, match="disagree"):
        check_samples(speakers, preds[:2], targets)
