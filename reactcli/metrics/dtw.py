"""Dynamic time warping for FRD, exact and fast.

The official FRD calls ``tslearn.metrics.dtw`` three times (dims 0:15, 15:17, 17:25) for every
speaker x reaction x appropriate neighbour, about 8 ms per pair of 750-frame series: hours on a
CPU. FRD keeps only the *minimum* over neighbours, so most of that work decides nothing. This
module returns the same numbers (square root of the minimum, over monotone paths with steps
(1,0), (0,1), (1,1) and no window, of the summed squared Euclidean distances; float32 inputs, path
sums in float64) in two passes:

1. **Search** (:func:`frd_search`, float32). One reaction against all its neighbours: each of
   ``SEARCH_LANES`` SIMD lanes runs one (reaction, neighbour) DTW row by row, the reaction being
   the shared column series. Every warping path crosses every row, so the smallest accumulated
   cost in a row bounds the final one; a lane whose weighted bound ``sum_b w_b sqrt(rowmin_b)``
   exceeds the best distance found so far (started at the best lock-step, i.e. diagonal-path,
   distance) is abandoned and *refilled* with the next neighbour at once, so lanes stay busy
   however unevenly neighbours are abandoned. Neighbours are visited best lock-step first.
   Ground-truth AUs are 0/1, so a clip has a few dozen distinct AU rows: the 15-dim AU cost of
   every distinct row against every reaction frame is tabulated once per reaction and the lanes
   read it instead of recomputing it per cell (a ~3x cheaper cell).
2. **Exact** (:func:`frd_exact_lanes`, float64 path sums like tslearn's). Float32 path sums are
   within about 1e-4 (relative) of the float64 ones, so the neighbours that finished within
   ``MARGIN`` of the best float32 distance (usually one) are recomputed exactly and the minimum
   of those is the result. Abandoning uses the same margin, so it never drops the true winner.

Kernels release the GIL (``nogil``); the caller runs speakers on a thread pool.
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
#: Most distinct AU rows tabulated per reaction; beyond it the AU cost is computed per lane row.
MAX_AU_TABLE = 4096
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
    prev = np.full((ty + 1, q_len), np.inf)
    cur = np.full((ty + 1, q_len), np.inf)
    prev[0, :] = 0.0
    cost = np.empty((ty, q_len), dtype=np.float32)
    left = np.empty(q_len)
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


# ----------------------------------------------------------------------------- search, float32
@njit(cache=True, nogil=True, boundscheck=False, fastmath={"contract"})
def _search_step(
    prev: np.ndarray,
    cur: np.ndarray,
    xrow: np.ndarray,
    y: np.ndarray,
    au: np.ndarray,
    cost: np.ndarray,
    left: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """One DP row for every lane: ``prev``/``cur`` (Ty + 1, 3 * SEARCH_LANES) accumulated costs,
    ``xrow`` (10, SEARCH_LANES) the lanes' current valence..expression values, ``y`` the shared
    (Ty, 25) column series, ``au`` (Ty, SEARCH_LANES) the AU-block cost of each lane's row.

    Costs first, recursion second: fused, LLVM cannot prove the arrays apart and stays scalar.
    ``left`` carries each cell's left neighbour (see :func:`frd_exact_lanes`).
    """
    lanes = SEARCH_LANES
    q_len = 3 * lanes
    for q in range(q_len):
        cur[0, q] = _INF32
        left[q] = _INF32
    for j in range(y.shape[0]):
        y15 = y[j, 15]
        y16 = y[j, 16]
        y17 = y[j, 17]
        y18 = y[j, 18]
        y19 = y[j, 19]
        y20 = y[j, 20]
        y21 = y[j, 21]
        y22 = y[j, 22]
        y23 = y[j, 23]
        y24 = y[j, 24]
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
            cost[lane] = au[j, lane]
            cost[lanes + lane] = e15 * e15 + e16 * e16
            cost[2 * lanes + lane] = ((e17 * e17 + e18 * e18) + (e19 * e19 + e20 * e20)) + (
                (e21 * e21 + e22 * e22) + (e23 * e23 + e24 * e24)
            )
        for q in range(q_len):
            v = cost[q] + min(min(prev[j, q], prev[j + 1, q]), left[q])
            left[q] = v
            cur[j + 1, q] = v


@njit(cache=True, nogil=True, boundscheck=False)
def _au_cost_column(g: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """Squared AU-block distance of one 15-dim row ``g`` to every frame of ``y``."""
    for j in range(y.shape[0]):
        acc = np.float32(0.0)
        for d in range(15):
            e = g[d] - y[j, d]
            acc += e * e
        out[j] = acc


@njit(cache=True, nogil=True, boundscheck=False)
def _block_costs(a: np.ndarray, i: int, b: np.ndarray, j: int, out: np.ndarray) -> None:  # pragma: no cover
    """Squared distances of frame ``i`` of ``a`` and frame ``j`` of ``b`` per dim block, float64."""
    for blk in range(3):
        acc = 0.0
        for d in range(BLOCKS[blk][0], BLOCKS[blk][1]):
            e = np.float64(a[i, d] - b[j, d])
            acc += e * e
        out[blk] = acc


@njit(cache=True, nogil=True, boundscheck=False)
def path_upper_bound(y: np.ndarray, g: np.ndarray, step: int) -> float:  # pragma: no cover - compiled
    """An upper bound of FRD's distance between equal-length ``y`` and ``g``, from a coarse warping path.

    Any warping path bounds every block's DTW from above. The path is the optimal one between
    every ``step``-th frame of both series (one path for the three blocks, on their weighted
    cost), stretched back to full resolution; the diagonal path is tried too. Cheap (1/step^2 of
    a DTW) and usually within a few tens of percent of the true distance, which lets the search
    abandon losers from its first lanes on instead of waiting for the first finished DTW.
    """
    t = y.shape[0]
    tc = (t - 1) // step + 1
    block = np.empty(3)
    acc = np.full((tc + 1, tc + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(tc):
        for j in range(tc):
            _block_costs(g, i * step, y, j * step, block)
            c = WEIGHTS[0] * block[0] + WEIGHTS[1] * block[1] + WEIGHTS[2] * block[2]
            acc[i + 1, j + 1] = c + min(acc[i, j], min(acc[i, j + 1], acc[i + 1, j]))
    # backtrack the coarse path, then walk it at full resolution summing each block's costs
    path_i = np.empty(2 * tc, dtype=np.int64)
    path_j = np.empty(2 * tc, dtype=np.int64)
    n = 0
    i, j = tc, tc
    while i > 0 and j > 0:
        path_i[n] = i - 1
        path_j[n] = j - 1
        n += 1
        diag, up, left = acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]
        if diag <= up and diag <= left:
            i, j = i - 1, j - 1
        elif up <= left:
            i -= 1
        else:
            j -= 1
    sums = np.zeros(3)
    diagonal = np.zeros(3)
    fi, fj = 0, 0
    _block_costs(g, 0, y, 0, block)
    sums += block
    for k in range(n - 2, -1, -1):
        di = path_i[k] - path_i[k + 1]
        dj = path_j[k] - path_j[k + 1]
        for _ in range(step):
            fi += di
            fj += dj
            _block_costs(g, fi, y, fj, block)
            sums += block
    while fi < t - 1 or fj < t - 1:
        fi = min(fi + 1, t - 1)
        fj = min(fj + 1, t - 1)
        _block_costs(g, fi, y, fj, block)
        sums += block
    for k in range(t):
        _block_costs(g, k, y, k, block)
        diagonal += block
    return min(_weighted(sums[0], sums[1], sums[2]), _weighted(diagonal[0], diagonal[1], diagonal[2]))


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


@njit(cache=True, nogil=True, boundscheck=False)
def frd_search(
    y: np.ndarray,
    gts: np.ndarray,
    cand: np.ndarray,
    au_ids: np.ndarray,
    au_rows: np.ndarray,
    check_every: int,
    upper: float,
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Float32 FRD distance of reaction ``y`` (Ty, 25) to each neighbour ``gts[cand[c]]`` (Tx, 25).

    Neighbours are started in the order of ``cand`` (best first pays: the threshold tightens
    early); ``upper`` is a known upper bound of the best distance (``inf`` if none).
    ``au_ids`` (N, Tx) numbers the distinct AU rows of ``gts``, listed in ``au_rows`` (U, 15).
    Returns (M,) distances (``inf``: abandoned, it cannot be within MARGIN of the best) and counts
    (pairs, abandoned, rows computed). ``check_every`` 0 computes every pair in full.
    """
    lanes = SEARCH_LANES
    m = cand.shape[0]
    tx, ty = gts.shape[1], y.shape[0]
    out = np.full(m, np.inf)
    stats = np.zeros(3, dtype=np.int64)
    if m == 0:
        return out, stats
    margin = search_margin(tx, ty)
    thr = upper * (1.0 + margin)
    # the distinct AU rows these neighbours use, tabulated against every reaction frame
    local = np.full(au_rows.shape[0], -1, dtype=np.int64)
    n_local = 0
    for c in range(m):
        ids = au_ids[cand[c]]
        for i in range(tx):
            if local[ids[i]] < 0:
                local[ids[i]] = n_local
                n_local += 1
    tabulate = n_local <= MAX_AU_TABLE
    table = np.empty((n_local if tabulate else 0, ty), dtype=np.float32)
    if tabulate:
        for p in range(au_rows.shape[0]):
            if local[p] >= 0:
                _au_cost_column(au_rows[p], y, table[local[p]])

    prev = np.empty((ty + 1, 3 * lanes), dtype=np.float32)
    cur = np.empty((ty + 1, 3 * lanes), dtype=np.float32)
    au = np.zeros((ty, lanes), dtype=np.float32)
    xrow = np.zeros((10, lanes), dtype=np.float32)
    cost = np.empty(3 * lanes, dtype=np.float32)
    left = np.empty(3 * lanes, dtype=np.float32)
    rowmin = np.empty(3 * lanes, dtype=np.float32)
    lane_pair = np.full(lanes, -1)
    lane_row = np.zeros(lanes, dtype=np.int64)
    lane_au = np.full(lanes, -1)
    changed = np.empty(lanes, dtype=np.int64)
    source = np.empty(lanes, dtype=np.int64)
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
                lane_au[lane] = -1
                active += 1
        if active == 0:
            break
        n_changed = 0
        for lane in range(lanes):
            c = lane_pair[lane]
            if c < 0:
                continue
            # plain indexing only: a view per lane and step costs atomic refcounts shared by threads
            nb = cand[c]
            i = lane_row[lane]
            for d in range(10):
                xrow[d, lane] = gts[nb, i, 15 + d]
            p = au_ids[nb, i]
            if p != lane_au[lane]:
                lane_au[lane] = p
                changed[n_changed] = lane
                if tabulate:
                    source[n_changed] = local[p]
                n_changed += 1
        # new AU rows: refill those lanes' AU costs, all lanes per column at once (cache-line friendly)
        if tabulate:
            for j in range(ty):
                for a in range(n_changed):
                    au[j, changed[a]] = table[source[a], j]
        else:
            for a in range(n_changed):
                lane = changed[a]
                nb = cand[lane_pair[lane]]
                i = lane_row[lane]
                for j in range(ty):
                    acc = np.float32(0.0)
                    for d in range(15):
                        e = gts[nb, i, d] - y[j, d]
                        acc += e * e
                    au[j, lane] = acc
        _search_step(prev, cur, xrow, y, au, cost, left)
        prev, cur = cur, prev
        steps += 1
        check = check_every > 0 and steps % check_every == 0
        if check:
            for q in range(3 * lanes):
                rowmin[q] = _INF32
            for j in range(1, ty + 1):
                for q in range(3 * lanes):
                    rowmin[q] = min(rowmin[q], prev[j, q])
        for lane in range(lanes):
            c = lane_pair[lane]
            if c < 0:
                continue
            stats[2] += 1
            lane_row[lane] += 1
            if lane_row[lane] == tx:
                value = _weighted(prev[ty, lane], prev[ty, lanes + lane], prev[ty, 2 * lanes + lane])
                out[c] = value
                thr = min(thr, value)
            elif check:
                bound_now = _weighted(rowmin[lane], rowmin[lanes + lane], rowmin[2 * lanes + lane])
                if bound_now <= thr * (1.0 + margin):
                    continue
                stats[1] += 1
            else:
                continue
            stats[0] += 1
            _reset_lane(prev, lane)
            lane_pair[lane] = -1
            active -= 1
    return out, stats
