"""FRC and FRD: how close each reaction comes to *some* appropriate real listener reaction.

Both are sums over the K reactions (not means) of a max/min over the speaker's appropriate
neighbours, averaged over speakers, exactly as the official scripts (see spec/metrics.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from reactcli.metrics.dtw import CHECK_EVERY, LANES

#: Added to the CCC denominator by the official code.
CCC_EPS = 1e-8


def neighbour_lists(matrix: np.ndarray) -> list[np.ndarray]:
    """Indices j with ``matrix[n, j]`` set, per row n."""
    return [np.flatnonzero(row) for row in np.asarray(matrix).astype(bool)]


def _moments(series: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centred series, mean, population variance and a constant-dim mask over the time axis (-2)."""
    mean = series.mean(axis=-2, keepdims=True)
    centred = series - mean
    var = (centred**2).mean(axis=-2)
    constant = series.max(axis=-2) == series.min(axis=-2)
    return centred, mean[..., 0, :], var, constant


def ccc_matrix(preds: np.ndarray, reals: np.ndarray) -> np.ndarray:
    """CCC(real j, pred k) for every pair: (K, J) from (K, T, D) predictions and (J, T, D) reals.

    Per dim: Pearson rho (NaN for a constant series -> 0, clipped to [-1, 1]), then
    ``2 rho sd_y sd_x / (var_y + var_x + (mean_y - mean_x)^2 + 1e-8)`` with population moments;
    averaged over dims. Everything in float64.
    """
    xc, mx, vx, cx = _moments(np.asarray(preds, dtype=np.float64))
    yc, my, vy, cy = _moments(np.asarray(reals, dtype=np.float64))
    t_len = xc.shape[-2]
    # (D, K, T) @ (D, T, J) -> (D, K, J): one BLAS call per dim instead of K x J x D loops
    cov = np.matmul(xc.transpose(2, 0, 1), yc.transpose(2, 1, 0)).transpose(1, 2, 0) / t_len
    sx, sy = np.sqrt(vx), np.sqrt(vy)
    sxy = sx[:, None, :] * sy[None, :, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = cov / sxy
    rho[cx[:, None, :] | cy[None, :, :]] = 0.0
    rho = np.clip(np.nan_to_num(rho, nan=0.0), -1.0, 1.0)
    denom = vx[:, None, :] + vy[None, :, :] + (mx[:, None, :] - my[None, :, :]) ** 2 + CCC_EPS
    return (2.0 * rho * sxy / denom).mean(axis=-1)


def frc(preds: np.ndarray, listener: np.ndarray, neighbours: list[np.ndarray]) -> float:
    """FRC = mean_n sum_k max_{j in A(n)} CCC(G[j], P[n, k]) (higher is better, at most K)."""
    total = 0.0
    for n, idx in enumerate(neighbours):
        if idx.size == 0:
            continue
        total += float(ccc_matrix(preds[n], listener[idx]).max(axis=1).sum())
    return total / len(neighbours)


def pack_lanes(series: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(G, T, D, LANES) float32 batches of (M, T, D) series, lanes innermost, plus used lanes per batch.

    Padding lanes repeat the batch's first series (finite data; the kernel ignores them).
    """
    m = series.shape[0]
    n_groups = -(-m // LANES)
    packed = np.empty((n_groups, *series.shape[1:], LANES), dtype=np.float32)
    n_valid = np.empty(n_groups, dtype=np.int64)
    for g in range(n_groups):
        chunk = series[g * LANES : (g + 1) * LANES]
        n_valid[g] = chunk.shape[0]
        packed[g, ..., : chunk.shape[0]] = np.moveaxis(chunk, 0, -1)
        packed[g, ..., chunk.shape[0] :] = chunk[0][..., None]
    return packed, n_valid


def frd_per_reaction(
    preds: np.ndarray,
    listener: np.ndarray,
    neighbours: list[np.ndarray],
    workers: int | None = None,
    early_abandon: bool = True,
    on_speaker: Callable[[], None] | None = None,
) -> tuple[np.ndarray, dict[str, int]]:
    """min_{j in A(n)} d(P[n, k], G[j]) for every (n, k), as (N, K) float64, plus search counts.

    Identical reactions of a speaker (the K copies of a baseline) are computed once. Speakers
    run on a thread pool (the numba kernels release the GIL). A speaker without any neighbour
    gets NaN; :func:`frd` counts it as 0 in the mean, as the official script does.
    """
    from reactcli.metrics.dtw import frd_by_neighbour_lanes, frd_by_reaction_lanes

    n_total, k_total = preds.shape[:2]
    gts = np.asarray(listener, dtype=np.float32)
    result = np.full((n_total, k_total), np.nan)
    counts = {"visited": 0, "abandoned": 0}
    check = CHECK_EVERY if early_abandon else 0

    def one(n: int) -> tuple[int, np.ndarray, np.ndarray]:
        idx = np.asarray(neighbours[n], dtype=np.int64)
        values = np.full(k_total, np.nan)
        stats = np.zeros(2, dtype=np.int64)
        if idx.size:
            reactions = np.ascontiguousarray(preds[n], dtype=np.float32)
            flat = reactions.reshape(k_total, -1)
            _, first, inverse = np.unique(flat, axis=0, return_index=True, return_inverse=True)
            unique = np.ascontiguousarray(reactions[first])
            n_unique, m = unique.shape[0], idx.size
            best = np.empty(n_unique)
            if n_unique * -(-m // LANES) <= -(-n_unique // LANES) * m:
                groups, n_valid = pack_lanes(gts[idx])
                best, stats = frd_by_neighbour_lanes(unique, groups, n_valid, check)
            else:
                lanes, n_valid = pack_lanes(unique)
                for g in range(lanes.shape[0]):
                    part, st = frd_by_reaction_lanes(lanes[g], int(n_valid[g]), gts, idx, check)
                    best[g * LANES : g * LANES + n_valid[g]] = part[: n_valid[g]]
                    stats += st
            values = best[np.asarray(inverse).reshape(-1)]
        return n, values, stats

    workers = max(1, workers or os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for n, values, stats in pool.map(one, range(n_total)):
            result[n] = values
            counts["visited"] += int(stats[0])
            counts["abandoned"] += int(stats[1])
            if on_speaker is not None:
                on_speaker()
    return result, counts


def frd(
    preds: np.ndarray,
    listener: np.ndarray,
    neighbours: list[np.ndarray],
    workers: int | None = None,
    early_abandon: bool = True,
    on_speaker: Callable[[], None] | None = None,
) -> float:
    """FRD = mean_n sum_k min_{j in A(n)} d(P[n, k], G[j]) (lower is better)."""
    per, _ = frd_per_reaction(preds, listener, neighbours, workers, early_abandon, on_speaker)
    return float(np.nansum(per) / len(neighbours))
