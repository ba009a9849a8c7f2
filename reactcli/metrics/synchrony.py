"""FRSyn: time-lagged cross-correlation between a reaction and the speaker, official quirks included.

For lags L = -49..49, r(L) is the mean over the 25 dims of the Pearson correlation of
``x[t]`` and ``s[t - L]`` over the overlapping frames; offset = 49 - argmax(r) with NaN winning
(numpy/torch: the first NaN is the maximum); FRSyn = mean |offset|. The official script scores
only the first reaction of each speaker, and any constant slice (an AU that never fires) makes
r(L) NaN, so the offset saturates at 49. ``FRSyn_all`` is the corrected variant: all K reactions,
dims whose slices are constant are left out of the mean, lags with no usable dim are skipped, and
reactions with no usable lag at all are left out and counted.

All lags of one speaker (99 here) are computed at once by :func:`lag_correlations`, which takes
the lag range and clips of any length, so MARS's FRSyn_fixed (``metrics/mars.py``) runs on the same
code with its own lags: cross sums by one compiled loop over lags and frames (``_cross_sums``, as
fast as a matrix product against a lagged copy of the speaker series and free of BLAS thread
start-up), window sums and squares from prefix sums of series centred on their full-clip mean
(which keeps the float64 sums accurate), and constant windows found exactly from prefix counts of
value changes (never from a rounded variance).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

MAX_LAG = 49  # 2 s at 25 fps, minus one


@njit(cache=True, nogil=True)
def _cross_sums(x: np.ndarray, s: np.ndarray, max_lag: int) -> np.ndarray:  # pragma: no cover - compiled
    """cross[k, l, d] = sum_t x[k, t, d] * s[t - L_l, d] over the overlap, L_l = l - max_lag (dims innermost: SIMD).

    A plain compiled loop: as fast as a BLAS product against a lagged copy of ``s`` and free of
    BLAS thread start-up, which dominated on a busy 2-core machine.
    """
    k_total, t_len, d_total = x.shape
    out = np.zeros((k_total, 2 * max_lag + 1, d_total))
    for k in range(k_total):
        for li in range(2 * max_lag + 1):
            lag = li - max_lag
            for t in range(max(lag, 0), t_len + min(lag, 0)):
                for d in range(d_total):
                    out[k, li, d] += x[k, t, d] * s[t - lag, d]
    return out


def _prefix(centred: np.ndarray, raw: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prefix sums (leading 0) along ``axis`` of centred values and squares, and of value changes.

    ``change[v]`` counts the frames u in 1..v-1 with ``raw[u] != raw[u - 1]``, so the window
    [a, b) is constant exactly when ``change[b] - change[a + 1] == 0``.
    """
    pad = [(0, 0)] * centred.ndim
    pad[axis] = (1, 0)
    sums = np.pad(np.cumsum(centred, axis=axis), pad)
    squares = np.pad(np.cumsum(centred * centred, axis=axis), pad)
    pad[axis] = (2, 0)
    change = np.pad(np.cumsum(np.diff(raw, axis=axis) != 0, axis=axis), pad)
    return sums, squares, change


def lag_correlations(reactions: np.ndarray, speaker: np.ndarray, max_lag: int = MAX_LAG) -> np.ndarray:
    """(K, 2 max_lag + 1, D) Pearson correlations of every reaction dim with the speaker at every lag.

    ``reactions`` (K, T, D), ``speaker`` (T, D); lag L pairs ``x[t]`` with ``s[t - L]`` for
    L = -max_lag..max_lag. NaN where either window is constant (as ``np.corrcoef``) or has fewer
    than 2 frames, values clipped to [-1, 1]. Inputs are cast to float32 first (the official code
    does), then computed in float64. REACT 2024 (49 lags each way at 25 fps) and MARS's
    FRSyn_fixed (+-2 s at the data's fps, clips of any length) share it.
    """
    x = np.asarray(reactions, dtype=np.float32).astype(np.float64)
    s = np.asarray(speaker, dtype=np.float32).astype(np.float64)
    t_len = x.shape[1]
    lags = np.arange(-max_lag, max_lag + 1)
    # per lag, the first and one-past-last frame of x that pairs with s[t - L] (empty when L >= T)
    start = np.clip(lags, 0, t_len)
    stop = np.maximum(np.clip(t_len + np.minimum(lags, 0), 0, t_len), start)
    count = (stop - start).astype(np.float64)
    x_c = x - x.mean(axis=1, keepdims=True)
    s_c = s - s.mean(axis=0, keepdims=True)
    cross = _cross_sums(np.ascontiguousarray(x_c), np.ascontiguousarray(s_c), max_lag)  # (K, lags, D)
    xs, xq, xch = _prefix(x_c, x, 1)
    ss, sq, sch = _prefix(s_c, s, 0)
    s_start, s_stop = np.clip(start - lags, 0, t_len), np.clip(stop - lags, 0, t_len)
    n = count[None, :, None]
    sx, sxx = xs[:, stop] - xs[:, start], xq[:, stop] - xq[:, start]
    sy, syy = (ss[s_stop] - ss[s_start])[None], (sq[s_stop] - sq[s_start])[None]
    short = (count < 2)[None, :, None]
    # a window [a, b) is constant when no value changes between frames a and b - 1
    first = np.minimum(start + 1, t_len)
    s_first = np.minimum(s_start + 1, t_len)
    x_const = (xch[:, np.maximum(stop, first)] - xch[:, first]) == 0
    s_const = ((sch[np.maximum(s_stop, s_first)] - sch[s_first]) == 0)[None]
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = cross - sx * sy / n
        var_x = np.clip(sxx - sx * sx / n, 0.0, None)
        var_s = np.clip(syy - sy * sy / n, 0.0, None)
        r = np.clip(cov / np.sqrt(var_x * var_s), -1.0, 1.0)
    r[np.broadcast_to(short, r.shape) | x_const | np.broadcast_to(s_const, r.shape)] = np.nan
    return r


def first_nan_argmax(values: np.ndarray) -> int:
    """``torch.argmax`` / ``np.argmax`` semantics: the first NaN if any, else the first maximum."""
    nan = np.flatnonzero(np.isnan(values))
    return int(nan[0]) if nan.size else int(np.argmax(values))


def official_offset(r_mean: np.ndarray) -> int:
    """49 - argmax over lags where NaN counts as the largest value (the first NaN wins)."""
    return MAX_LAG - first_nan_argmax(r_mean)


def nan_aware_offsets(r: np.ndarray, max_lag: int) -> tuple[list[int], int]:
    """The corrected offsets of (K, lags, D) correlations, and how many reactions had none.

    Per reaction and lag the mean over the dims that are not NaN; lags with no such dim are
    skipped; the offset is ``|max_lag - argmax|``. A reaction with no usable lag is left out and
    counted (FRSyn_all of 2024, FRSyn_fixed of MARS).
    """
    counts = (~np.isnan(r)).sum(axis=-1)
    with np.errstate(invalid="ignore"):
        mean = np.where(counts > 0, np.nansum(r, axis=-1) / np.maximum(counts, 1), np.nan)
    offsets: list[int] = []
    excluded = 0
    for row in mean:
        if np.isnan(row).all():
            excluded += 1
        else:
            offsets.append(abs(max_lag - int(np.nanargmax(row))))
    return offsets, excluded


@dataclass
class SynchronyResult:
    frsyn: float
    frsyn_all: float | None
    excluded: int  # reactions left out of FRSyn_all (no usable dim at any lag)
    scored: int  # reactions scored by FRSyn_all


def frsyn(preds: np.ndarray, speaker: np.ndarray) -> SynchronyResult:
    """Official FRSyn (first reaction of each speaker) and the corrected FRSyn_all, one speaker at a time."""
    t_len = preds.shape[-2]
    if t_len <= MAX_LAG + 1:
        raise ValueError(f"FRSyn needs more than {MAX_LAG + 1} frames, got {t_len}")
    official: list[int] = []
    corrected: list[int] = []
    excluded = 0
    for n in range(preds.shape[0]):
        r = lag_correlations(preds[n], speaker[n])  # (K, 99, D)
        official.append(abs(official_offset(r[0].mean(axis=-1))))
        offsets, none = nan_aware_offsets(r, MAX_LAG)
        corrected += offsets
        excluded += none
    return SynchronyResult(
        frsyn=float(np.mean(official)),
        frsyn_all=float(np.mean(corrected)) if corrected else None,
        excluded=excluded,
        scored=len(corrected),
    )
