"""Dynamic time warping for FRD, exact and fast.

The official FRD calls ``tslearn.metrics.dtw`` three times (dims 0:15, 15:17, 17:25) for every
speaker x reaction x appropriate neighbour: about 5 ms per 750 x 750 DTW, i.e. hours on a CPU.
This module computes the *same* numbers (square root of the minimum, over monotone paths with
steps (1,0), (0,1), (1,1) and no window, of the summed squared Euclidean distances; inputs cast to
float32 as the official code does, path sums in float64) much faster by

* **batching the K reactions of one speaker into SIMD lanes**: all K reactions are compared with the
  same neighbour, so one pass over the 750 x 750 grid serves K DTW problems (and all three dim
  blocks) with vectorised arithmetic (lanes are the innermost, contiguous axis);
* **early abandoning**: FRD keeps only the *minimum* over neighbours. Every row of a DTW grid is
  crossed by the optimal path, so the row minimum of the accumulated cost is a lower bound on the
  final value; once the weighted bound ``sum_b w_b sqrt(rowmin_b)`` exceeds the best distance found
  so far for every lane, that neighbour cannot win and the rest of its grid is skipped;
* **a good first threshold**: the diagonal (lock-step) path is a valid warping path, so its cost is
  an upper bound of every DTW; neighbours are visited in order of that bound and the thresholds
  start at its minimum, so abandoning works from the first neighbour on;
* **threads**: the kernels release the GIL (``nogil``), speakers run on a thread pool.

Squared distances of one cell are summed in float32 from float32 inputs (relative error about
1e-7, far below the 1e-5 the results must meet); the path sums are float64 like tslearn's.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: FRD's dim blocks and weights (AUs, valence/arousal, expression probabilities).
BLOCKS = ((0, 15), (15, 17), (17, 25))
WEIGHTS = (1.0 / 15.0, 1.0, 1.0 / 8.0)
#: Lanes per SIMD batch: a compile-time constant, so LLVM vectorises the lane loops (16 float32 =
#: one AVX-512 register); K reactions are padded up to a multiple of it.
LANES = 16
#: Rows between two early-abandon checks (a check costs about a tenth of a row).
CHECK_EVERY = 8
#: Relative slack on the lock-step upper bound used as the first threshold (rounding safety).
_SLACK = 1e-9


@njit(cache=True, nogil=True)
def dtw_single(a: np.ndarray, b: np.ndarray) -> float:  # pragma: no cover - compiled
    """DTW of two (n, c) / (m, c) float32 series: sqrt of the min path sum of squared distances."""
    n, m, c = a.shape[0], b.shape[0], a.shape[1]
    prev = np.full(m + 1, np.inf)
    cur = np.full(m + 1, np.inf)
    prev[0] = 0.0
    for i in range(n):
        cur[0] = np.inf
        for j in range(m):
            acc = np.float32(0.0)
            for d in range(c):
                diff = a[i, d] - b[j, d]
                acc += diff * diff
            best = prev[j]
            if prev[j + 1] < best:
                best = prev[j + 1]
            if cur[j] < best:
                best = cur[j]
            cur[j + 1] = np.float64(acc) + best
        prev, cur = cur, prev
        prev[0] = np.inf
    return np.sqrt(prev[m])


@njit(cache=True, nogil=True, boundscheck=False)
def _cost_row(x: np.ndarray, i: int, y: np.ndarray, cost: np.ndarray) -> None:  # pragma: no cover - compiled
    """Squared distances of row ``i`` of every lane of ``x`` to every frame of ``y``, per dim block.

    ``cost`` is (Ty, 3 * LANES) float32: block b of lane l at column ``b * LANES + l``. The dims are
    written out and summed as a tree: this is the layout LLVM turns into AVX-512 code (a loop over
    dims, or one plane per block, runs 3-7x slower).
    """
    for j in range(y.shape[0]):
        for lane in range(LANES):
            e0 = x[i, 0, lane] - y[j, 0]
            e1 = x[i, 1, lane] - y[j, 1]
            e2 = x[i, 2, lane] - y[j, 2]
            e3 = x[i, 3, lane] - y[j, 3]
            e4 = x[i, 4, lane] - y[j, 4]
            e5 = x[i, 5, lane] - y[j, 5]
            e6 = x[i, 6, lane] - y[j, 6]
            e7 = x[i, 7, lane] - y[j, 7]
            e8 = x[i, 8, lane] - y[j, 8]
            e9 = x[i, 9, lane] - y[j, 9]
            e10 = x[i, 10, lane] - y[j, 10]
            e11 = x[i, 11, lane] - y[j, 11]
            e12 = x[i, 12, lane] - y[j, 12]
            e13 = x[i, 13, lane] - y[j, 13]
            e14 = x[i, 14, lane] - y[j, 14]
            e15 = x[i, 15, lane] - y[j, 15]
            e16 = x[i, 16, lane] - y[j, 16]
            e17 = x[i, 17, lane] - y[j, 17]
            e18 = x[i, 18, lane] - y[j, 18]
            e19 = x[i, 19, lane] - y[j, 19]
            e20 = x[i, 20, lane] - y[j, 20]
            e21 = x[i, 21, lane] - y[j, 21]
            e22 = x[i, 22, lane] - y[j, 22]
            e23 = x[i, 23, lane] - y[j, 23]
            e24 = x[i, 24, lane] - y[j, 24]
            cost[j, lane] = (
                ((e0 * e0 + e1 * e1) + (e2 * e2 + e3 * e3)) + ((e4 * e4 + e5 * e5) + (e6 * e6 + e7 * e7))
            ) + (((e8 * e8 + e9 * e9) + (e10 * e10 + e11 * e11)) + ((e12 * e12 + e13 * e13) + e14 * e14))
            cost[j, LANES + lane] = e15 * e15 + e16 * e16
            cost[j, 2 * LANES + lane] = ((e17 * e17 + e18 * e18) + (e19 * e19 + e20 * e20)) + (
                (e21 * e21 + e22 * e22) + (e23 * e23 + e24 * e24)
            )


@njit(cache=True, nogil=True, boundscheck=False)
def _dp_row(prev: np.ndarray, cur: np.ndarray, cost: np.ndarray) -> None:  # pragma: no cover - compiled
    """One row of the DTW recursion for all blocks and lanes at once (float64 path sums)."""
    q_len = cost.shape[1]
    for q in range(q_len):
        cur[0, q] = np.inf
    for j in range(cost.shape[0]):
        for q in range(q_len):
            m = min(prev[j, q], prev[j + 1, q])
            cur[j + 1, q] = np.float64(cost[j, q]) + min(m, cur[j, q])


@njit(cache=True, nogil=True, boundscheck=False)
def _weighted(d0: float, d1: float, d2: float) -> float:  # pragma: no cover - compiled
    return WEIGHTS[0] * np.sqrt(d0) + WEIGHTS[1] * np.sqrt(d1) + WEIGHTS[2] * np.sqrt(d2)


@njit(cache=True, nogil=True, boundscheck=False)
def frd_lanes(x: np.ndarray, y: np.ndarray, thr: np.ndarray, check_every: int) -> np.ndarray:  # pragma: no cover
    """FRD's weighted three-block DTW distance of every lane of ``x`` against ``y``.

    ``x`` (Tx, 25, LANES) float32 with lanes innermost, ``y`` (Ty, 25) float32, ``thr`` (LANES,)
    the best distance found so far per lane (``inf``: never abandon; negative: a padding lane that
    never keeps the batch alive). Returns (LANES,) distances, all ``inf`` when the batch was
    abandoned because every lane's lower bound ``sum_b w_b sqrt(rowmin_b)`` exceeded its ``thr``.
    """
    tx = x.shape[0]
    ty = y.shape[0]
    q_len = 3 * LANES
    prev = np.full((ty + 1, q_len), np.inf)
    cur = np.full((ty + 1, q_len), np.inf)
    prev[0, :] = 0.0
    cost = np.empty((ty, q_len), dtype=np.float32)
    rowmin = np.empty(q_len)
    out = np.full(LANES, np.inf)
    for i in range(tx):
        _cost_row(x, i, y, cost)
        _dp_row(prev, cur, cost)
        prev, cur = cur, prev
        if check_every > 0 and i + 1 < tx and (i + 1) % check_every == 0:
            # every warping path crosses row i, so each row minimum bounds its block's final sum
            rowmin[:] = np.inf
            for j in range(1, ty + 1):
                for q in range(q_len):
                    rowmin[q] = min(rowmin[q], prev[j, q])
            alive = False
            for lane in range(LANES):
                if _weighted(rowmin[lane], rowmin[LANES + lane], rowmin[2 * LANES + lane]) <= thr[lane]:
                    alive = True
            if not alive:
                return out
    for lane in range(LANES):
        out[lane] = _weighted(prev[ty, lane], prev[ty, LANES + lane], prev[ty, 2 * LANES + lane])
    return out


@njit(cache=True, nogil=True, boundscheck=False)
def lockstep_lanes(x: np.ndarray, y: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """FRD distance along the diagonal path per lane: a valid warping path, so an upper bound."""
    q_len = 3 * LANES
    sums = np.zeros(q_len)
    cost = np.empty((1, q_len), dtype=np.float32)
    for i in range(x.shape[0]):
        _cost_row(x, i, y[i : i + 1], cost)
        for q in range(q_len):
            sums[q] += np.float64(cost[0, q])
    out = np.empty(LANES)
    for lane in range(LANES):
        out[lane] = _weighted(sums[lane], sums[LANES + lane], sums[2 * LANES + lane])
    return out


@njit(cache=True, nogil=True, boundscheck=False)
def frd_by_neighbour_lanes(
    reactions: np.ndarray, groups: np.ndarray, n_valid: np.ndarray, check_every: int
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """min over one speaker's appropriate neighbours of the FRD distance, for each reaction.

    ``reactions`` (K, T, 25) float32; ``groups`` (G, T, 25, LANES) float32 the neighbours' real
    listener emotions packed 16 to a batch (DTW is symmetric, so the neighbours fill the lanes and
    each reaction is the broadcast side); ``n_valid`` (G,) the used lanes of each group. For every
    reaction the groups are visited in order of their best lock-step upper bound, whose minimum is
    the first threshold; a group is abandoned once none of its lanes can beat the best so far.
    Returns the (K,) minima and counts (groups visited, groups abandoned).
    """
    k_total = reactions.shape[0]
    g_total = groups.shape[0]
    best = np.full(k_total, np.inf)
    stats = np.zeros(2, dtype=np.int64)
    if g_total == 0:
        return best, stats
    same_length = reactions.shape[1] == groups.shape[1]
    thr = np.empty(LANES)
    for k in range(k_total):
        y = reactions[k]
        start = np.inf
        score = np.zeros(g_total)
        if same_length and check_every > 0:
            for g in range(g_total):
                ub = lockstep_lanes(groups[g], y)
                low = np.inf
                for lane in range(n_valid[g]):
                    low = min(low, ub[lane])
                score[g] = low
                start = min(start, low * (1.0 + _SLACK) + _SLACK)
        order = np.argsort(score)
        current = start
        for a in range(g_total):
            g = order[a]
            for lane in range(LANES):
                thr[lane] = current if lane < n_valid[g] else -1.0
            d = frd_lanes(groups[g], y, thr, check_every)
            stats[0] += 1
            if np.isinf(d[0]):
                stats[1] += 1
            for lane in range(n_valid[g]):
                if d[lane] < best[k]:
                    best[k] = d[lane]
            current = min(current, best[k])
        if best[k] == np.inf:
            # rounding safety net (cannot happen in exact arithmetic): redo without abandoning
            thr[:] = np.inf
            for g in range(g_total):
                d = frd_lanes(groups[g], y, thr, 0)
                for lane in range(n_valid[g]):
                    best[k] = min(best[k], d[lane])
    return best, stats


@njit(cache=True, nogil=True, boundscheck=False)
def frd_by_reaction_lanes(
    x: np.ndarray, n_valid: int, gts: np.ndarray, neighbours: np.ndarray, check_every: int
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """The same minima with the speaker's reactions in the lanes: better when neighbours are few.

    ``x`` (T, 25, LANES) float32 reactions (lanes >= ``n_valid`` are padding), ``gts`` (N, T, 25)
    float32, ``neighbours`` indices into ``gts``. Neighbours are visited in order of their summed
    lock-step bound; each lane keeps its own threshold. Returns (LANES,) minima and counts.
    """
    m = neighbours.shape[0]
    best = np.full(LANES, np.inf)
    thr = np.full(LANES, np.inf)
    stats = np.zeros(2, dtype=np.int64)
    if m == 0:
        return best, stats
    order = np.arange(m)
    if x.shape[0] == gts.shape[1] and check_every > 0:
        score = np.empty(m)
        for a in range(m):
            ub = lockstep_lanes(x, gts[neighbours[a]])
            total = 0.0
            for lane in range(n_valid):
                total += ub[lane]
                thr[lane] = min(thr[lane], ub[lane] * (1.0 + _SLACK) + _SLACK)
            score[a] = total
        order = np.argsort(score)
    for lane in range(n_valid, LANES):
        thr[lane] = -1.0
    for a in range(m):
        d = frd_lanes(x, gts[neighbours[order[a]]], thr, check_every)
        stats[0] += 1
        if np.isinf(d[0]):
            stats[1] += 1
        for lane in range(n_valid):
            if d[lane] < best[lane]:
                best[lane] = d[lane]
                thr[lane] = min(thr[lane], d[lane])
    full = np.full(LANES, np.inf)
    for lane in range(n_valid):
        if best[lane] == np.inf:
            # rounding safety net (cannot happen in exact arithmetic): redo without abandoning
            for a in range(m):
                d = frd_lanes(x, gts[neighbours[a]], full, 0)
                for other in range(n_valid):
                    best[other] = min(best[other], d[other])
            break
    return best, stats
