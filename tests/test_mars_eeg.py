"""The masked EEG metrics of REACT 2026 against plain per-channel loops written from the definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tslearn.metrics import dtw as tslearn_dtw

from reactcli.errors import ReactError
from reactcli.metrics.mars_eeg import eeg_frc, eeg_frd, eeg_frvar, eeg_smse, eeg_tlcc, masked_ccc, score_eeg


@pytest.fixture(scope="module")
def eeg():
    """Six samples: predictions (K = 3, n, 14), GT (1, n', 14) with n' = n +- 2, masks with holes,
    a NaN cell, a constant channel, an all-masked channel and one sample whose mask is empty."""
    rng = np.random.default_rng(1)
    preds, gts, masks = [], [], []
    for i in range(6):
        n = int(rng.integers(4, 30))
        preds.append(rng.normal(size=(3, n, 14)).astype(np.float32))
        g = rng.normal(size=(1, n + int(rng.integers(-2, 3)), 14)).astype(np.float32)
        m = (rng.random(g.shape) > 0.25).astype(np.float32)
        g[m == 0] = 0.0
        g[0, :, 3] = 2.0  # constant channel: CCC 0
        m[0, :, 7] = 0.0  # never valid
        g[0, 1, 9] = np.nan
        if i == 4:
            m[:] = 0.0
        gts.append(g)
        masks.append(m)
    return preds, gts, masks


def valid_of(t, p, m):
    return (m > 0.5) & np.isfinite(t) & np.isfinite(p)


def ref_ccc(t, p, m):
    v = valid_of(t, p, m)
    if v.sum() < 2:
        return None
    a, b = t[v].astype(np.float64), p[v].astype(np.float64)
    if a.std() < 1e-8 or b.std() < 1e-8:
        return 0.0
    r = np.corrcoef(a, b)[0, 1]
    return 2 * r * a.std() * b.std() / (a.var() + b.var() + (a.mean() - b.mean()) ** 2 + 1e-8)


def cut(p, g, m):
    n = min(p.shape[1], g.shape[1])
    return p[:, :n], g[:, :n], m[:, :n]


def ref_per_prediction(preds, gts, masks, channel):
    """Per sample, per prediction k: the mean over the channels ``channel(p_kc, g_c, m_c)`` scores
    (None: the channel is skipped; a prediction with no scored channel is skipped)."""
    out = []
    for p, g, m in zip(preds, gts, masks, strict=True):
        p, g, m = cut(p, g, m)
        per_k = []
        for k in range(len(p)):
            scores = [s for c in range(14) if (s := channel(p[k, :, c], g[0, :, c], m[0, :, c])) is not None]
            if scores:
                per_k.append(np.mean(scores))
        out.append(per_k)
    return out


def ref_frc_frd(preds, gts, masks, dist):
    def channel(p, g, m):
        if not dist:
            return ref_ccc(g, p, m)
        v = valid_of(g, p, m)
        return tslearn_dtw(p[v], g[v]) if v.any() else None

    # the sum over K per sample, then the mean over the samples with any scored prediction
    return np.mean([np.sum(per_k) for per_k in ref_per_prediction(preds, gts, masks, channel) if per_k])


def ref_tlcc(preds, gts, masks):
    def channel(p, g, m):
        best, best_lag = None, None
        for lag in range(-2, 3):
            if lag > 0:
                s = ref_ccc(g[:-lag], p[lag:], m[:-lag])
            elif lag < 0:
                s = ref_ccc(g[-lag:], p[:lag], m[-lag:])
            else:
                s = ref_ccc(g, p, m)
            if s is not None and (best is None or s > best):
                best, best_lag = s, lag
        return None if best_lag is None else abs(best_lag)

    # the mean over K per sample, then the mean over the samples with any scored prediction
    return np.mean([np.mean(per_k) for per_k in ref_per_prediction(preds, gts, masks, channel) if per_k])


def test_masked_ccc_rules() -> None:
    t = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    assert masked_ccc(t, t, np.array([1, 0, 0, 0], np.float32)) is None  # fewer than 2 valid frames
    assert masked_ccc(t, np.full(4, 5.0, np.float32), np.ones(4, np.float32)) == 0.0  # constant side
    assert masked_ccc(t, t, np.ones(4, np.float32)) == pytest.approx(1.0, abs=1e-6)
    nan_t = t.copy()
    nan_t[0] = np.nan  # the NaN frame is dropped, the other three still agree
    assert masked_ccc(nan_t, t, np.ones(4, np.float32)) == pytest.approx(1.0, abs=1e-6)


def test_eeg_metrics_match_the_loops(eeg) -> None:
    preds, gts, masks = eeg
    assert eeg_frc(preds, gts, masks) == pytest.approx(ref_frc_frd(preds, gts, masks, dist=False), rel=1e-5)
    assert eeg_frd(preds, gts, masks) == pytest.approx(ref_frc_frd(preds, gts, masks, dist=True), rel=1e-5)
    assert eeg_tlcc(preds, gts, masks) == pytest.approx(ref_tlcc(preds, gts, masks), rel=1e-9)
    want_smse = np.mean(
        [sum(np.sum((p[i] - p[j]) ** 2.0) for i in range(3) for j in range(3)) / (3 * 2 * p[0].size) for p in preds]
    )
    assert eeg_smse(preds) == pytest.approx(want_smse, rel=1e-5)
    var = []
    for p, m in zip(preds, masks, strict=True):
        n = min(p.shape[1], m.shape[1])
        valid = m[0, :n] > 0.5
        if valid.any():
            var.append(p[:, :n].astype(np.float64).var(axis=1)[:, valid.any(axis=0)].mean())
    assert len(var) == 5  # the empty-mask sample is skipped
    assert eeg_frvar(preds, masks) == pytest.approx(np.mean(var), rel=1e-5)
    assert eeg_frvar(preds, None) == pytest.approx(
        np.mean([p.astype(np.float64).var(axis=1).mean() for p in preds]), rel=1e-5
    )


def test_eeg_edge_cases(eeg) -> None:
    preds, gts, masks = eeg
    nothing = [np.zeros_like(m) for m in masks]
    scores = score_eeg(preds, gts, nothing)
    assert all(math.isnan(scores[k]) for k in ("EEG_FRC", "EEG_FRD", "EEG_TLCC", "EEG_FRVar"))
    assert not math.isnan(scores["EEG_smse"])  # smse uses no mask
    assert eeg_smse([preds[0][:1]]) == 0.0  # K < 2
    # 2-D inputs count as one set; no mask means every finite frame is valid
    two_d = eeg_frc([preds[0]], [gts[0][0]], None)
    assert two_d == pytest.approx(eeg_frc([preds[0]], [gts[0]], [np.ones_like(gts[0])]))
    with pytest.raises(ReactError, match="3 prediction sets, 2 ground truths"):
        score_eeg(preds[:3], gts[:2], None)
