"""FRSyn: time-lagged cross-correlation between a reaction and the speaker, official quirks included.

For lags L = -49..49, r(L) is the mean over the 25 dims of the Pearson correlation of
``x[t]`` and ``s[t - L]`` over the overlapping frames; offset = 49 - argmax(r) with NaN winning
(numpy/torch: the first NaN is the maximum); FRSyn = mean |offset|. The official script scores
only the first reaction of each speaker, and any constant slice (an AU that never fires) makes
r(L) NaN, so the offset saturates at 49. ``FRSyn_all`` is the corrected variant: all K reactions,
dims whose slices are constant are left out of the mean, lags with no usable dim are skipped, and
reactions with no usable lag at all are left out and counted.

All 99 lags of one speaker are computed at once: cross sums by one compiled loop over lags and
frames (``_cross_sums``, as fast as a matrix product against a lagged copy of the speaker series
and free of BLAS thread start-up), window sums and squares from prefix sums of series centred on
their full-clip mean (which keeps the float64 sums accurate), and constant windows found exactly
from prefix counts of value changes (never from a rounded variance).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

MAX_LAG = 49  # 2 s at 25 fps, minus one
LAGS = np.arange(-MAX_LAG, MAX_LAG + 1)


@njit(cache=True, nogil=True)
def _cross_sums(x: np.ndarray, s: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """cross[k, l, d] = sum_t x[k, t, d] * s[t - L_l, d] over the overlap (dims innermost: SIMD).

    A plain compiled loop: as fast as a BLAS product against a lagged copy of ``s`` and free of
    BLAS thread start-up, which dominated on a busy 2-core machine.
    """
    k_total, t_len, d_total = x.shape
    out = np.zeros((k_total, 2 * MAX_LAG + 1, d_total))
    for k in range(k_total):
        for li in range(2 * MAX_LAG + 1):
            lag = li - MAX_LAG
            for t in range(max(lag, 0), t_len + min(lag, 0)):
                for d in range(d_total):
                    out[k, li, d] += x[k, t, d] * s[t - lag, d]
    return out


def _windows(t_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Per lag, the first and one-past-last frame of x that pairs with s[t - L]."""
    start = np.maximum(LAGS, 0)
    stop = t_len + np.minimum(LAGS, 0)
    return start, stop


def _prefix(centred: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prefix sums (leading 0) along axis -2 of centred values and squares, and of value changes.

    ``change[v]`` counts the frames u in 1..v-1 with ``raw[u] != raw[u - 1]``, so the window
    [a, b) is constant exactly when ``change[b] - change[a + 1] == 0``.
    """
    shape = list(centred.shape)
    shape[-2] = 1
    zero = np.zeros(shape)
    sums = np.concatenate([zero, np.cumsum(centred, axis=-2)], axis=-2)
    squares = np.concatenate([zero, np.cumsum(centred * centred, axis=-2)], axis=-2)
    changes = np.cumsum(np.diff(raw, axis=-2) != 0, axis=-2)
    change = np.concatenate([zero, zero, changes], axis=-2)
    return sums, squares, change


def lag_correlations(reactions: np.ndarray, speaker: np.ndarray) -> np.ndarray:
    """(K, 99, D) Pearson correlations of every reaction dim with the speaker at every lag.

    ``reactions`` (K, T, D), ``speaker`` (T, D); NaN where either window is constant (as
    ``np.corrcoef``), values clipped to [-1, 1]. Inputs are cast to float32 first (the official
    code does), then computed in float64.
    """
    x = np.asarray(reactions, dtype=np.float32).astype(np.float64)
    s = np.asarray(speaker, dtype=np.float32).astype(np.float64)
    t_len = x.shape[-2]
    if t_len <= MAX_LAG + 1:
        raise ValueError(f"FRSyn needs more than {MAX_LAG + 1} frames, got {t_len}")
    x_c = x - x.mean(axis=-2, keepdims=True)
    s_c = s - s.mean(axis=-2, keepdims=True)
    start, stop = _windows(t_len)
    n = (stop - start).astype(np.float64)[None, :, None]
    cross = _cross_sums(np.ascontiguousarray(x_c), np.ascontiguousarray(s_c))  # (K, 99, D)
    xs, xq, xch = _prefix(x_c, x)
    ss, sq, sch = _prefix(s_c, s)
    sx = xs[:, stop] - xs[:, start]
    sxx = xq[:, stop] - xq[:, start]
    s_start, s_stop = start - LAGS, stop - LAGS
    sy = (ss[s_stop] - ss[s_start])[None]
    syy = (sq[s_stop] - sq[s_start])[None]
    # a window [a, b) is constant when no value changes between frames a and b - 1
    x_const = (xch[:, stop] - xch[:, start + 1]) == 0
    s_const = ((sch[s_stop] - sch[s_start + 1]) == 0)[None]
    cov = cross - sx * sy / n
    var_x = sxx - sx * sx / n
    var_s = syy - sy * sy / n
    with np.errstate(divide="ignore", invalid="ignore"):
        r = cov / np.sqrt(np.clip(var_x, 0.0, None) * np.clip(var_s, 0.0, None))
    r = np.clip(r, -1.0, 1.0)
    r[x_const | s_const] = np.nan
    return r


def official_offset(r_mean: np.ndarray) -> int:
    """49 - argmax over lags where NaN counts as the largest value (the first NaN wins)."""
    nan = np.flatnonzero(np.isnan(r_mean))
    index = int(nan[0]) if nan.size else int(np.argmax(r_mean))
    return MAX_LAG - index


@dataclass
class SynchronyResult:
    frsyn: float
    frsyn_all: float | None
    excluded: int  # reactions left out of FRSyn_all (no usable dim at any lag)
    scored: int  # reactions scored by FRSyn_all


def frsyn(preds: np.ndarray, speaker: np.ndarray) -> SynchronyResult:
    """Official FRSyn (first reaction of each speaker) and the corrected FRSyn_all, one speaker at a time."""
    official: list[int] = []
    corrected: list[int] = []
    excluded = 0
    for n in range(preds.shape[0]):
        r = lag_correlations(preds[n], speaker[n])  # (K, 99, D)
        official.append(abs(official_offset(r[0].mean(axis=-1))))
        usable = ~np.isnan(r)
        counts = usable.sum(axis=-1)
        with np.errstate(invalid="ignore"):
            r_all = np.where(counts > 0, np.nansum(r, axis=-1) / np.maximum(counts, 1), np.nan)
        for k in range(r_all.shape[0]):
            if np.isnan(r_all[k]).all():
                excluded += 1
                continue
            corrected.append(abs(MAX_LAG - int(np.nanargmax(r_all[k]))))
    return SynchronyResult(
        frsyn=float(np.mean(official)),
        frsyn_all=float(np.mean(corrected)) if corrected else None,
        excluded=excluded,
        scored=len(corrected),
    )
