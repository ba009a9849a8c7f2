"""FRC and FRD: how close each reaction comes to *some* appropriate real listener reaction.

Both are sums over the K reactions (not means) of a max/min over the speaker's appropriate
neighbours, averaged over speakers, exactly as the official scripts (see docs/metrics.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from reactcli.errors import ReactError
from reactcli.vocab import EMOTION_DIM

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


def _distinct(reactions: np.ndarray) -> tuple[list[int], np.ndarray]:
    """First index of each distinct reaction, and which of them each reaction equals.

    Keyed on the raw bytes: ``np.unique(axis=0)`` sorts 18,750-value rows lexicographically and
    took longer than the FRD search itself on val-size inputs (5.8 s for 128 speakers).
    """
    first: list[int] = []
    seen: dict[bytes, int] = {}
    inverse = np.empty(reactions.shape[0], dtype=np.int64)
    for k, reaction in enumerate(reactions):
        key = reaction.tobytes()
        if key not in seen:
            seen[key] = len(first)
            first.append(k)
        inverse[k] = seen[key]
    return first, inverse


def frd_per_reaction(
    preds: np.ndarray,
    listener: np.ndarray,
    neighbours: list[np.ndarray],
    workers: int | None = None,
    early_abandon: bool = True,
    on_progress: Callable[[float], None] | None = None,
    device: str | None = None,
) -> tuple[np.ndarray, dict[str, int]]:
    """min_{j in A(n)} d(P[n, k], G[j]) for every (n, k), as (N, K) float64, plus search counts.

    Identical reactions of a speaker (the K copies of a baseline) are computed once. The distinct
    reactions of all speakers form one block of :func:`reactcli.metrics.nearest.nearest`: the
    pairs that share a real reaction j go through one kernel call, so SIMD lanes stay full however
    few neighbours a speaker has, and those calls run on ``workers`` threads (the numba kernels
    release the GIL). ``device`` (``cuda``, ``cuda:N``, ``auto``) runs the DTWs on a torch device
    instead; ``None``/``cpu`` uses the CPU kernels. The values are the same either way (float64).
    A speaker without any neighbour gets NaN; :func:`frd` counts it as 0 in the mean, as the
    official script does. ``on_progress`` receives speakers' worth of progress (N in total).
    Counts: ``pairs`` (reaction, neighbour) pairs, ``abandoned`` early, DP ``rows`` computed
    (search and exact passes) out of ``full_rows`` (every pair in full), and ``exact`` float64 DTWs.
    """
    from reactcli.metrics.frd_plan import Block
    from reactcli.metrics.nearest import nearest

    n_total, k_total = preds.shape[:2]
    flat = np.ascontiguousarray(np.asarray(preds), dtype=np.float32).reshape(n_total * k_total, *preds.shape[2:])
    result = np.full((n_total, k_total), np.nan)
    # one candidate list per row of ``flat``: a speaker's neighbours for its distinct reactions,
    # none for the copies (no float copy of the predictions is made)
    empty = np.zeros(0, dtype=np.int64)
    cands: list[np.ndarray] = [empty] * flat.shape[0]
    copies = []
    for n in range(n_total):
        idx = np.asarray(neighbours[n], dtype=np.int64)
        if not idx.size:
            continue
        first, inverse = _distinct(flat[n * k_total : (n + 1) * k_total])
        rows = n * k_total + np.asarray(first, dtype=np.int64)
        copies.append((n, rows[inverse]))
        for row in rows:
            cands[row] = idx

    def progress(fraction: float) -> None:
        if on_progress is not None:
            on_progress(fraction * n_total)

    workers = max(1, workers or os.cpu_count() or 1)
    (best,), counts = nearest([Block(flat, listener, cands)], workers, early_abandon, progress, device)
    for n, rows in copies:
        result[n] = best[rows]
    return result, counts


def frd(
    preds: np.ndarray,
    listener: np.ndarray,
    neighbours: list[np.ndarray],
    workers: int | None = None,
    early_abandon: bool = True,
    on_progress: Callable[[float], None] | None = None,
    device: str | None = None,
) -> float:
    """FRD = mean_n sum_k min_{j in A(n)} d(P[n, k], G[j]) (lower is better)."""
    per, _ = frd_per_reaction(preds, listener, neighbours, workers, early_abandon, on_progress, device)
    return float(np.nansum(per) / len(neighbours))


def frd_set_minima(
    predictions: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    workers: int | None = None,
    early_abandon: bool = True,
    on_progress: Callable[[float], None] | None = None,
    device: str | None = None,
) -> tuple[list[np.ndarray], dict[str, int]]:
    """Per sample n, min over j of d(predictions[n][k], targets[n][j]) for every k: (K_n,) float64, and counts.

    The MARS form of FRD's inner minimum (REACT 2025/2026): ragged lists of (K, L_n, 25)
    predictions and (G, L_n, 25) ground truths aligned to the prediction's length, L_n from 58 to
    20 000+ frames. Each sample is one block of :func:`reactcli.metrics.nearest.nearest` (diagonal
    bounds, ranking, float32 search with abandoning across the G ground truths, float64 where it
    decides), with O(L) memory per pair. Inputs are cast to float32 as the official code does;
    identical predictions of a sample (a baseline's K copies) are computed once.
    Shapes that do not fit, an empty set or a NaN/inf value raise ``ReactError`` naming the sample.
    ``on_progress`` receives samples' worth of progress (N in total).
    """
    from reactcli.metrics.frd_plan import Block
    from reactcli.metrics.nearest import nearest

    if len(predictions) != len(targets):
        raise ReactError(path="FRD", problem=f"{len(predictions)} prediction sets but {len(targets)} ground-truth sets")
    blocks, copies = [], []
    for n, (pred, target) in enumerate(zip(predictions, targets, strict=True)):
        pred = _set_array(pred, n, "predictions")
        target = _set_array(target, n, "ground truths")
        # identical predictions of a sample (a baseline's K copies) are computed once
        first, inverse = _distinct(pred)
        copies.append(inverse)
        blocks.append(Block(pred[first], target, [np.arange(target.shape[0])] * len(first)))

    def progress(fraction: float) -> None:
        if on_progress is not None:
            on_progress(fraction * len(blocks))

    workers = max(1, workers or os.cpu_count() or 1)
    minima, counts = nearest(blocks, workers, early_abandon, progress, device)
    return [best[inverse] for best, inverse in zip(minima, copies, strict=True)], counts


def frd_sets(
    predictions: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    workers: int | None = None,
    early_abandon: bool = True,
    on_progress: Callable[[float], None] | None = None,
    device: str | None = None,
) -> np.ndarray:
    """Per sample, sum over k of min over j of d(predictions[n][k], targets[n][j]): (N,) float64.

    FRD on MARS is the mean of this over samples (the official ``compute_metrics``).
    See :func:`frd_set_minima` for the inputs.
    """
    minima, _ = frd_set_minima(predictions, targets, workers, early_abandon, on_progress, device)
    return np.array([float(m.sum()) for m in minima], dtype=np.float64)


def _set_array(values: np.ndarray, n: int, what: str) -> np.ndarray:
    """One sample's (count, L, 25) set as float32, or a ReactError naming the sample."""
    array = np.asarray(values)
    if array.ndim != 3 or array.shape[0] < 1 or array.shape[1] < 1 or array.shape[2] != EMOTION_DIM:
        raise ReactError(
            path=f"FRD sample {n}",
            problem=f"{what} have shape {array.shape}, expected (count >= 1, L >= 1, {EMOTION_DIM})",
        )
    with np.errstate(over="ignore", invalid="ignore"):
        array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise ReactError(path=f"FRD sample {n}", problem=f"{what} contain NaN or inf values (as float32)")
    return array
