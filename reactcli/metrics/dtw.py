"""Dynamic time warping for FRD, exact and fast.

The official FRD calls ``tslearn.metrics.dtw`` three times (dims 0:15, 15:17, 17:25) for every
speaker x reaction x appropriate neighbour, about 8 ms per pair of 750-frame series: hours on a
CPU. FRD keeps only the *minimum* over neighbours, so most of that work decides nothing. These
kernels return the same numbers (square root of the minimum, over monotone paths with steps
(1,0), (0,1), (1,1) and no window, of the summed squared Euclidean distances; float32 inputs,
path sums in float64); :mod:`reactcli.metrics.nearest` decides what they run on.

* **Search** (:func:`frd_search_column`, float32). One real listener reaction is the shared
  column series; each of ``SEARCH_LANES`` SIMD lanes runs one predicted reaction against it, row
  by row. Every warping path crosses every row, so the smallest accumulated cost in a row bounds
  the final one; a lane whose weighted bound ``sum_b w_b sqrt(rowmin_b)`` exceeds its reaction's
  best distance so far is abandoned and *refilled* with the next reaction at once, so lanes stay
  busy however unevenly pairs are abandoned. Ground-truth AUs are 0/1, so a column series has a
  few dozen distinct AU rows: each step costs every lane's row against those few rows once, and
  the cells read that tiny table instead of computing 15 dims (a ~3x cheaper cell). Each cell's
  cost feeds its DP update directly and every buffer starts on a cache line (:func:`_aligned`):
  together 1.7x faster per step than staging costs in numba's default (misaligned) buffers.
* **Exact** (:func:`frd_exact_lanes`, float64 path sums like tslearn's). Float32 path sums are
  within about 1e-4 (relative) of the float64 ones; the pairs that matter are recomputed here,
  and abandoning keeps a margin of ``MARGIN``, so it never drops the true winner.

Kernels release the GIL (``nogil``); the caller runs them on a thread pool.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: FRD's dim blocks and weights (AUs, valence/arousal, expression probabilities).
BLOCKS = ((0, 15), (15, 17), (17, 25))
WEIGHTS = (1.0 / 15.0, 1.0, 1.0 / 8.0)
#: Lanes of the float32 search: compile-time, so LLVM vectorises the lane loops (two AVX-512
#: registers; 32 beats 16 by ~25 % because the per-column broadcasts are shared by more lanes).
SEARCH_LANES = 32
#: Lanes of the float64 exact kernel (16 float32 costs = one AVX-512 register).
EXACT_LANES = 16
#: Rows between two abandon checks (a check costs about a tenth of a row).
CHECK_EVERY = 8
#: Relative slack for float32 decisions: at least 10x the float32 path-sum error at 750 frames.
MARGIN = 1e-3
_INF32 = np.float32(np.inf)
_U32 = 2.0**-24


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
def _weighted(d0: float, d1: float, d2: float) -> float:  # pragma: no cover - compiled
    return WEIGHTS[0] * np.sqrt(d0) + WEIGHTS[1] * np.sqrt(d1) + WEIGHTS[2] * np.sqrt(d2)


@njit(cache=True, nogil=True, boundscheck=False)
def _aligned(rows: int, cols: int, sample: np.ndarray, fill: float) -> np.ndarray:  # pragma: no cover - compiled
    """A (rows, cols) buffer of ``sample``'s dtype, filled, starting on a 64-byte boundary.

    Numba starts small allocations 32 bytes into a cache line, so every AVX-512 access to a lane
    vector straddled two lines: aligning the kernels' buffers made a search step ~1.4x faster.
    """
    n = rows * cols
    buf = np.empty(n + 16, dtype=sample.dtype)
    skip = ((64 - buf.ctypes.data % 64) % 64) // sample.itemsize
    out = buf[skip : skip + n].reshape((rows, cols))
    out[:] = fill
    return out


# ----------------------------------------------------------------------------- exact, float64
@njit(cache=True, nogil=True, boundscheck=False)
def _exact_cost_row(x: np.ndarray, i: int, y: np.ndarray, cost: np.ndarray) -> None:  # pragma: no cover
    """Squared distances of row ``i`` of every lane of ``x`` to every frame of ``y``, per dim block.

    ``cost`` is (Ty, 3 * EXACT_LANES) float32: block b of lane l at column ``b * EXACT_LANES + l``.
    The dims are written out and summed as a tree: the layout LLVM turns into AVX-512 code.
    """
    for j in range(y.shape[0]):
        for lane in range(EXACT_LANES):
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
            cost[j, EXACT_LANES + lane] = e15 * e15 + e16 * e16
            cost[j, 2 * EXACT_LANES + lane] = ((e17 * e17 + e18 * e18) + (e19 * e19 + e20 * e20)) + (
                (e21 * e21 + e22 * e22) + (e23 * e23 + e24 * e24)
            )


@njit(cache=True, nogil=True, boundscheck=False)
def frd_exact_lanes(x: np.ndarray, y: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """FRD's weighted three-block DTW distance of every lane of ``x`` against ``y``, float64 sums.

    ``x`` (Tx, 25, EXACT_LANES) float32 with lanes innermost, ``y`` (Ty, 25) float32; any lengths.
    The left neighbour of each cell is carried in a small buffer rather than re-read from the row
    just written (re-reading it serialises the loop on store forwarding: 4x slower).
    """
    tx, ty = x.shape[0], y.shape[0]
    q_len = 3 * EXACT_LANES
    f64, f32 = np.empty(0), np.empty(0, dtype=np.float32)
    prev = _aligned(ty + 1, q_len, f64, np.inf)
    cur = _aligned(ty + 1, q_len, f64, np.inf)
    prev[0, :] = 0.0
    cost = _aligned(ty, q_len, f32, 0.0)
    left = _aligned(1, q_len, f64, np.inf)[0]
    for i in range(tx):
        _exact_cost_row(x, i, y, cost)
        for q in range(q_len):
            left[q] = np.inf
            cur[0, q] = np.inf
        for j in range(ty):
            for q in range(q_len):
                v = np.float64(cost[j, q]) + min(min(prev[j, q], prev[j + 1, q]), left[q])
                left[q] = v
                cur[j + 1, q] = v
        prev, cur = cur, prev
    out = np.empty(EXACT_LANES)
    for lane in range(EXACT_LANES):
        out[lane] = _weighted(prev[ty, lane], prev[ty, EXACT_LANES + lane], prev[ty, 2 * EXACT_LANES + lane])
    return out


@njit(cache=True, nogil=True)
def search_margin(tx: int, ty: int) -> float:  # pragma: no cover - compiled
    """Relative slack of float32 decisions: ``MARGIN``, or 8x the path-sum rounding bound if larger."""
    return max(MARGIN, 8.0 * (tx + ty + 32) * _U32)


@njit(cache=True, nogil=True, boundscheck=False)
def _reset_lane(prev: np.ndarray, lane: int) -> None:  # pragma: no cover - compiled
    """Row -1 of a new DTW in ``lane``: 0 before the first column, infinity elsewhere."""
    for j in range(prev.shape[0]):
        for b in range(3):
            prev[j, b * SEARCH_LANES + lane] = _INF32
    for b in range(3):
        prev[0, b * SEARCH_LANES + lane] = np.float32(0.0)


# ----------------------------------------------------------------------------- search, float32
@njit(cache=True, nogil=True, boundscheck=False, fastmath={"contract"})
def _column_step(
    prev: np.ndarray,
    cur: np.ndarray,
    xrow: np.ndarray,
    col: np.ndarray,
    col_local: np.ndarray,
    au_cost: np.ndarray,
    left: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """One DP row for every lane against the shared column series ``col`` (Tc, 25).

    ``xrow`` (10, SEARCH_LANES) holds the lanes' current valence..expression values; the AU-block
    cost of a lane's row against column ``jj`` is ``au_cost[col_local[jj], lane]`` (a column has
    only a few distinct AU rows, so that table is tiny and read, never copied). Each cell's cost
    goes straight into its DP update: staging the costs in a buffer cost ~20 % in stores and loads.
    """
    lanes = SEARCH_LANES
    for q in range(3 * lanes):
        cur[0, q] = _INF32
        left[q] = _INF32
    for jj in range(col.shape[0]):
        u = col_local[jj]
        y15 = col[jj, 15]
        y16 = col[jj, 16]
        y17 = col[jj, 17]
        y18 = col[jj, 18]
        y19 = col[jj, 19]
        y20 = col[jj, 20]
        y21 = col[jj, 21]
        y22 = col[jj, 22]
        y23 = col[jj, 23]
        y24 = col[jj, 24]
        for lane in range(lanes):
            e15 = xrow[0, lane] - y15
            e16 = xrow[1, lane] - y16
            e17 = xrow[2, lane] - y17
            e18 = xrow[3, lane] - y18
            e19 = xrow[4, lane] - y19
            e20 = xrow[5, lane] - y20
            e21 = xrow[6, lane] - y21
            e22 = xrow[7, lane] - y22
            e23 = xrow[8, lane] - y23
            e24 = xrow[9, lane] - y24
            va = e15 * e15 + e16 * e16
            expr = ((e17 * e17 + e18 * e18) + (e19 * e19 + e20 * e20)) + (
                (e21 * e21 + e22 * e22) + (e23 * e23 + e24 * e24)
            )
            # the three updates stay written out: moved into an inline helper, a fresh compile
            # no longer vectorised this loop (7x slower, measured)
            q = lane
            v = au_cost[u, lane] + min(min(prev[jj, q], prev[jj + 1, q]), left[q])
            left[q] = v
            cur[jj + 1, q] = v
            q = lanes + lane
            v = va + min(min(prev[jj, q], prev[jj + 1, q]), left[q])
            left[q] = v
            cur[jj + 1, q] = v
            q = 2 * lanes + lane
            v = expr + min(min(prev[jj, q], prev[jj + 1, q]), left[q])
            left[q] = v
            cur[jj + 1, q] = v


@njit(cache=True, nogil=True, boundscheck=False, fastmath={"contract"})
def _au_costs(xau: np.ndarray, patterns: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """AU-block cost of every lane's current row (``xau`` (15, lanes)) to each of a column's AU rows."""
    for u in range(patterns.shape[0]):
        p0, p1, p2, p3, p4 = patterns[u, 0], patterns[u, 1], patterns[u, 2], patterns[u, 3], patterns[u, 4]
        p5, p6, p7, p8, p9 = patterns[u, 5], patterns[u, 6], patterns[u, 7], patterns[u, 8], patterns[u, 9]
        p10, p11, p12, p13, p14 = patterns[u, 10], patterns[u, 11], patterns[u, 12], patterns[u, 13], patterns[u, 14]
        for lane in range(SEARCH_LANES):
            e0 = xau[0, lane] - p0
            e1 = xau[1, lane] - p1
            e2 = xau[2, lane] - p2
            e3 = xau[3, lane] - p3
            e4 = xau[4, lane] - p4
            e5 = xau[5, lane] - p5
            e6 = xau[6, lane] - p6
            e7 = xau[7, lane] - p7
            e8 = xau[8, lane] - p8
            e9 = xau[9, lane] - p9
            e10 = xau[10, lane] - p10
            e11 = xau[11, lane] - p11
            e12 = xau[12, lane] - p12
            e13 = xau[13, lane] - p13
            e14 = xau[14, lane] - p14
            out[u, lane] = (
                ((e0 * e0 + e1 * e1) + (e2 * e2 + e3 * e3)) + ((e4 * e4 + e5 * e5) + (e6 * e6 + e7 * e7))
            ) + (((e8 * e8 + e9 * e9) + (e10 * e10 + e11 * e11)) + ((e12 * e12 + e13 * e13) + e14 * e14))


@njit(cache=True, nogil=True, boundscheck=False)
def frd_search_column(
    col: np.ndarray,
    col_ids: np.ndarray,
    au_rows: np.ndarray,
    reactions: np.ndarray,
    items: np.ndarray,
    thr: np.ndarray,
    check_every: int,
    out: np.ndarray,
) -> np.ndarray:  # pragma: no cover - compiled
    """Float32 FRD distance of one real reaction ``col`` (Tc, 25) to each ``reactions[items[e]]``.

    ``col_ids`` (Tc,) numbers ``col``'s AU rows in ``au_rows`` (U, 15). ``thr`` (I,) is each
    reaction's best distance so far (an upper bound of its minimum, ``inf`` if none), lowered
    here when a DTW finishes below it; a lane is abandoned once its row bound exceeds its own
    reaction's ``thr`` by the float32 margin. Writes ``out[e]`` (``inf``: abandoned) and returns
    counts (pairs, abandoned, rows). ``check_every`` 0 computes every pair in full.
    """
    lanes = SEARCH_LANES
    m = items.shape[0]
    tc, tr = col.shape[0], reactions.shape[1]
    stats = np.zeros(3, dtype=np.int64)
    if m == 0:
        return stats
    margin = search_margin(tc, tr)
    # the column's distinct AU rows, numbered locally
    distinct = np.unique(col_ids)
    col_local = np.searchsorted(distinct, col_ids)
    n_local = distinct.shape[0]
    patterns = np.empty((n_local, 15), dtype=np.float32)
    for jj in range(tc):
        for d in range(15):
            patterns[col_local[jj], d] = au_rows[col_ids[jj], d]
    f32 = np.empty(0, dtype=np.float32)
    au_cost = _aligned(n_local, lanes, f32, 0.0)
    prev = _aligned(tc + 1, 3 * lanes, f32, 0.0)
    cur = _aligned(tc + 1, 3 * lanes, f32, 0.0)
    xrow = _aligned(10, lanes, f32, 0.0)
    xau = _aligned(15, lanes, f32, 0.0)
    left = _aligned(1, 3 * lanes, f32, 0.0)[0]
    rowmin = _aligned(1, 3 * lanes, f32, 0.0)[0]
    lane_pair = np.full(lanes, -1)
    lane_row = np.zeros(lanes, dtype=np.int64)
    for lane in range(lanes):
        _reset_lane(prev, lane)
    queued = 0
    active = 0
    steps = 0
    while True:
        for lane in range(lanes):
            if lane_pair[lane] < 0 and queued < m:
                lane_pair[lane] = queued
                queued += 1
                lane_row[lane] = 0
                active += 1
        if active == 0:
            break
        for lane in range(lanes):
            e = lane_pair[lane]
            if e < 0:
                continue
            it = items[e]
            i = lane_row[lane]
            for d in range(10):
                xrow[d, lane] = reactions[it, i, 15 + d]
            for d in range(15):
                xau[d, lane] = reactions[it, i, d]
        _au_costs(xau, patterns, au_cost)
        _column_step(prev, cur, xrow, col, col_local, au_cost, left)
        prev, cur = cur, prev
        steps += 1
        check = check_every > 0 and steps % check_every == 0
        if check:
            for q in range(3 * lanes):
                rowmin[q] = _INF32
            for jj in range(1, tc + 1):
                for q in range(3 * lanes):
                    rowmin[q] = min(rowmin[q], prev[jj, q])
        for lane in range(lanes):
            e = lane_pair[lane]
            if e < 0:
                continue
            it = items[e]
            stats[2] += 1
            lane_row[lane] += 1
            if lane_row[lane] == tr:
                value = _weighted(prev[tc, lane], prev[tc, lanes + lane], prev[tc, 2 * lanes + lane])
                out[e] = value
                thr[it] = min(thr[it], value)
            elif check:
                bound_now = _weighted(rowmin[lane], rowmin[lanes + lane], rowmin[2 * lanes + lane])
                if bound_now <= thr[it] * (1.0 + margin):
                    continue
                out[e] = np.inf
                stats[1] += 1
            else:
                continue
            stats[0] += 1
            _reset_lane(prev, lane)
            lane_pair[lane] = -1
            active -= 1
    return stats
