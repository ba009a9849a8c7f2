"""Dynamic time warping for FRD, exact and fast: the compiled kernels.

The official FRD calls ``tslearn.metrics.dtw`` three times (dims 0:15, 15:17, 17:25) for every
prediction x appropriate real reaction: the square root of the minimum, over monotone paths with
steps (1,0), (0,1), (1,1) and no window, of the summed squared Euclidean distances, the inputs cast
to float32 and then (inside tslearn) to float64, so costs and path sums are float64. FRD keeps
only the *minimum* over the real reactions, so most of that work decides nothing.
:mod:`reactcli.metrics.nearest` decides what these kernels run on and in which order.

* **One column kernel** (:func:`column_kernel`), compiled for a lane count (32 or 16, a
  compile-time constant, or LLVM does not vectorise the lane loops) and for a working dtype (the
  dtype of the ``sample`` array passed in): float32 for the *search*, float64 for the *exact*
  values. One real reaction is the shared column series; each lane runs one predicted reaction
  against it, row by row, with O(column length) memory (no L x L matrix, so 20 000-frame series
  are fine). Every warping path crosses every row, so the smallest accumulated cost in a row
  bounds the final one; a lane whose weighted bound ``sum_b w_b sqrt(rowmin_b)`` exceeds its
  reaction's threshold is abandoned and *refilled* with the next reaction at once. Real AUs are
  0/1, so a column has a few dozen distinct AU rows: each step costs every lane's row against
  those few rows once, and the cells read that tiny table instead of computing 15 dims.
* **Rounding, made rigorous.** A path sum of n cells rounded in a dtype with unit roundoff u is
  within a factor (1 +- (n + 6) u) of the exact one (costs: one rounding for the difference, one
  for the square, four for the tree sum; then one per addition along the path; min is exact). So
  a float32 distance is within a relative ``margin(tx, ty, float32)`` of the true one and a row
  bound never overstates by more; thresholds carry that factor, so abandoning never drops the
  true winner, and the few pairs that finish within it are recomputed in float64, whose values
  equal tslearn's to ~1e-15 (tslearn sums the dims in another order; nothing else differs).
* **One pair at a time** (:func:`exact_pair`, float64): PrunedDTW per block, each row computed
  only between its first and last cell that is still below an upper bound of the block's path
  sum; bit for bit the full DP, for the few float64 pairs that would leave most lanes idle.
* :func:`diagonal_bounds`: the weighted distance along the diagonal path, a free upper bound of
  FRD's distance when both series have the same length (the diagonal is a valid warping path).
* :func:`dtw_single`: the plain reference (tslearn's arithmetic, O(m) memory).

Kernels release the GIL (``nogil``); the caller runs them on a thread pool. Buffers come from
:func:`_aligned`: numba starts small arrays 32 bytes into a cache line, which made every vector
access split across two lines (~1.4x slower search).
"""

from __future__ import annotations

import types
from collections.abc import Callable

import numpy as np
from numba import njit

#: FRD's dim blocks and weights (AUs, valence/arousal, expression probabilities).
BLOCKS = ((0, 15), (15, 17), (17, 25))
WEIGHTS = (1.0 / 15.0, 1.0, 1.0 / 8.0)
#: Lane counts the column kernel is compiled for: 32 (the per-column broadcasts are shared by more
#: lanes: ~20 % faster per pair than 16 when a column has many reactions) and 16 (columns with few;
#: a step costs about the same whether a lane is busy or idle, and 8 lanes vectorised worse: slower).
LANES = (32, 16)
#: Rows between two abandon checks (a check costs about a tenth of a row).
CHECK_EVERY = 8
#: Slack of the diagonal bound (computed in float64 over at most ~1e5 cells: error < 1e-11).
DIAGONAL_SLACK = 1e-9


def margin(tx: int, ty: int, dtype: type | np.dtype) -> float:
    """Relative error bound of a kernel distance between series of tx and ty frames in ``dtype``.

    (tx + ty + 16) u: the path-sum bound (n + 6) u with n <= tx + ty - 1 cells, doubled for the
    square root, the weighted sum and their own roundings (see the module docstring).
    """
    return (tx + ty + 16) * float(np.finfo(dtype).eps) / 2.0


@njit(cache=True, nogil=True)
def dtw_single(a: np.ndarray, b: np.ndarray) -> float:  # pragma: no cover - compiled
    """tslearn's DTW of (n, c) / (m, c) series: float64 differences and path sums, O(m) memory."""
    n, m, c = a.shape[0], b.shape[0], a.shape[1]
    prev = np.full(m + 1, np.inf)
    cur = np.full(m + 1, np.inf)
    prev[0] = 0.0
    for i in range(n):
        cur[0] = np.inf
        for j in range(m):
            acc = 0.0
            for d in range(c):
                diff = np.float64(a[i, d]) - np.float64(b[j, d])
                acc += diff * diff
            best = prev[j]
            if prev[j + 1] < best:
                best = prev[j + 1]
            if cur[j] < best:
                best = cur[j]
            cur[j + 1] = acc + best
        prev, cur = cur, prev
        prev[0] = np.inf
    return np.sqrt(prev[m])


def weighted(sums: np.ndarray) -> float:
    """FRD's distance from the three blocks' path sums: sum_b w_b sqrt(sums[b])."""
    return float(sum(w * np.sqrt(s) for w, s in zip(WEIGHTS, sums, strict=True)))


@njit(cache=True, nogil=True, boundscheck=False)
def _weighted(d0: float, d1: float, d2: float) -> float:  # pragma: no cover - compiled
    return (
        WEIGHTS[0] * np.sqrt(np.float64(d0))
        + WEIGHTS[1] * np.sqrt(np.float64(d1))
        + WEIGHTS[2] * np.sqrt(np.float64(d2))
    )


@njit(cache=True, nogil=True, boundscheck=False)
def _aligned(rows: int, cols: int, sample: np.ndarray, fill: float) -> np.ndarray:  # pragma: no cover - compiled
    """A (rows, cols) buffer of ``sample``'s dtype, filled, starting on a 64-byte boundary."""
    n = rows * cols
    buf = np.empty(n + 16, dtype=sample.dtype)
    skip = ((64 - buf.ctypes.data % 64) % 64) // sample.itemsize
    out = buf[skip : skip + n].reshape((rows, cols))
    out[:] = fill
    return out


@njit(cache=True, nogil=True, boundscheck=False, inline="always")
def _add_cell(
    x: np.ndarray, i: int, y: np.ndarray, j: int, s0: float, s1: float, s2: float
) -> tuple[float, float, float]:  # pragma: no cover - compiled
    """The path sums ``s0, s1, s2`` of FRD's three blocks (AU, valence/arousal, expressions) after
    the cell (row ``i`` of ``x``, row ``j`` of ``y``), in float64, each sum grown dim by dim: the
    one cell step the diagonal and lagged-diagonal bounds share. Inlined at numba's IR level: as a
    call it cost the bounds ~5% (measured); inlined they run as fast as the loops written out, and
    the sums grow in the same order, so the bounds are bit-identical."""
    for d in range(15):
        diff = np.float64(x[i, d]) - np.float64(y[j, d])
        s0 += diff * diff
    for d in range(15, 17):
        diff = np.float64(x[i, d]) - np.float64(y[j, d])
        s1 += diff * diff
    for d in range(17, 25):
        diff = np.float64(x[i, d]) - np.float64(y[j, d])
        s2 += diff * diff
    return s0, s1, s2


@njit(cache=True, nogil=True, boundscheck=False)
def diagonal_bounds(
    queries: np.ndarray, targets: np.ndarray, q_idx: np.ndarray, t_idx: np.ndarray, out: np.ndarray, sums: np.ndarray
) -> None:  # pragma: no cover - compiled
    """FRD's weighted distance along the diagonal of each pair (equal lengths), float64: an upper bound.

    ``sums`` (P, 3) receives the three blocks' diagonal path sums, bounds of their DTW path sums.
    """
    for e in range(q_idx.shape[0]):
        x = queries[q_idx[e]]
        y = targets[t_idx[e]]
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        for i in range(x.shape[0]):
            s0, s1, s2 = _add_cell(x, i, y, i, s0, s1, s2)
        out[e] = _weighted(s0, s1, s2)
        sums[e, 0] = s0
        sums[e, 1] = s1
        sums[e, 2] = s2


@njit(cache=True, nogil=True, boundscheck=False)
def lag_bounds(x: np.ndarray, y: np.ndarray, max_lag: int, sums: np.ndarray) -> None:  # pragma: no cover
    """Per block, the smallest path sum over the lagged-diagonal paths of one equal-length pair.

    For a lag l >= 0 the path runs along the first row for l cells, then along the diagonal
    shifted by l, then down the last column (l < 0: the same with the roles swapped): a valid
    warping path, so its sum bounds the block's DTW path sum from above (lag 0 is the diagonal).
    A prediction that lags its real reaction by a few frames makes one of these nearly optimal,
    which is what lets :func:`exact_pair` prune its exact DTW to a narrow band. ``sums`` (3,) float64.
    """
    n = x.shape[0]
    for b in range(3):
        sums[b] = np.inf
    top = min(max_lag, n - 1)
    for lag in range(-top, top + 1):
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        shift = abs(lag)
        for k in range(n + shift):
            # the k-th cell of the path: first ``shift`` cells along the first row (or column), then the
            # shifted diagonal, then down the last column (or along the last row)
            if k < shift:
                i, j = 0, k
            elif k < n:
                i, j = k - shift, k
            else:
                i, j = k - shift, n - 1
            if lag < 0:
                i, j = j, i
            s0, s1, s2 = _add_cell(x, i, y, j, s0, s1, s2)
        sums[0] = min(sums[0], s0)
        sums[1] = min(sums[1], s1)
        sums[2] = min(sums[2], s2)


def pruned_kernel(codes: bool) -> Callable[..., int]:
    """PrunedDTW of FRD's three blocks at once, float64; ``codes`` picks the AU cost (compile-time).

    Returns ``pruned(xa, ya, xv, yv, xe, ye, ub, table, sums) -> cells run``: ``xa``/``ya`` are the
    AU rows, (T, 16) float64 padded with a zero dim, or with ``codes`` (T, 1) int64 bit codes of
    0/1 rows whose cost is ``table[x ^ y]`` (the number of differing AUs: the integer the float sum
    gives); ``xv``/``yv`` (T, 2) and ``xe``/``ye`` (T, 8) the valence/arousal and expression dims
    in float64. ``ub`` (3,) bounds each block's final path sum from above (``inf``: unknown). Path
    sums only grow along a path, so a cell above its block's bound cannot lie on that block's
    optimal path: each row is computed from the first cell still live in some block to the last,
    plus what left neighbours keep alive. Skipped cells read as infinity, which only raises cells
    off every optimal path, so ``sums`` (3,) are bit for bit the full DP's (``inf`` for a block no
    path meets: its bound was not one). The three blocks share the loop because each block's DP is
    a dependency chain along the row: three chains run in the time of one.
    """

    @njit(cache=True, nogil=True, boundscheck=False, fastmath={"contract"})
    def pruned(
        xa: np.ndarray,
        ya: np.ndarray,
        xv: np.ndarray,
        yv: np.ndarray,
        xe: np.ndarray,
        ye: np.ndarray,
        ub: np.ndarray,
        table: np.ndarray,
        sums: np.ndarray,
    ) -> int:  # pragma: no cover - compiled
        tx, ty = xa.shape[0], ya.shape[0]
        prev = np.full((ty + 1, 3), np.inf)
        cur = np.full((ty + 1, 3), np.inf)
        prev[0, :] = 0.0
        u0, u1, u2 = ub[0], ub[1], ub[2]
        filled_prev, filled_cur = 0, 0  # highest index written in each buffer
        start, last = 0, -1  # live columns of the previous row (row -1: only the origin, column -1)
        cells = 0
        for i in range(tx):
            cur[start, 0] = np.inf
            cur[start, 1] = np.inf
            cur[start, 2] = np.inf
            new_start, new_last = -1, -1
            l0, l1, l2 = np.inf, np.inf, np.inf
            j = start
            while j < ty:
                if j > last + 1 and not (l0 <= u0 or l1 <= u1 or l2 <= u2):
                    break
                if codes:
                    c0 = table[xa[i, 0] ^ ya[j, 0]]
                else:
                    c0 = 0.0
                    for d in range(16):
                        diff = xa[i, d] - ya[j, d]
                        c0 += diff * diff
                d0 = xv[i, 0] - yv[j, 0]
                d1 = xv[i, 1] - yv[j, 1]
                c1 = d0 * d0 + d1 * d1
                c2 = 0.0
                for d in range(8):
                    diff = xe[i, d] - ye[j, d]
                    c2 += diff * diff
                l0 = c0 + min(min(prev[j, 0], prev[j + 1, 0]), l0)
                l1 = c1 + min(min(prev[j, 1], prev[j + 1, 1]), l1)
                l2 = c2 + min(min(prev[j, 2], prev[j + 1, 2]), l2)
                cur[j + 1, 0] = l0
                cur[j + 1, 1] = l1
                cur[j + 1, 2] = l2
                if l0 <= u0 or l1 <= u1 or l2 <= u2:
                    if new_start < 0:
                        new_start = j
                    new_last = j
                j += 1
            cells += j - start
            # what the next row may read past this row's end must be infinite, not an older row's
            for k in range(j + 1, max(filled_cur, j) + 1):
                cur[k, 0] = np.inf
                cur[k, 1] = np.inf
                cur[k, 2] = np.inf
            filled_cur = j
            if new_start < 0:  # nothing within the bounds: no path meets them
                sums[:] = np.inf
                return cells
            start, last = new_start, new_last
            prev, cur = cur, prev
            filled_prev, filled_cur = filled_cur, filled_prev
        for b in range(3):
            # a block whose own bound no path met (while another kept the row alive) is not exact
            sums[b] = prev[ty, b] if prev[ty, b] <= ub[b] else np.inf
        return cells

    return pruned


#: The three-block PrunedDTW with the AU rows as float64 dims, and with 0/1 AUs as bit codes.
_PRUNED_FLOAT, _PRUNED_CODES = pruned_kernel(False), pruned_kernel(True)
#: Differing bits of two 15-bit AU codes, as float64 (the AU block's cost of 0/1 rows).
POPCOUNT15 = np.array([bin(code).count("1") for code in range(1 << 15)], dtype=np.float64)


@njit(cache=True, nogil=True, boundscheck=False)
def _au_codes(series: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """(T, 1) int64 bit codes of the AU rows (dims 0:15), or an empty array if any AU is not 0 or 1."""
    out = np.zeros((series.shape[0], 1), dtype=np.int64)
    for t in range(series.shape[0]):
        code = 0
        for d in range(15):
            v = series[t, d]
            if v == 1.0:
                code |= 1 << d
            elif v != 0.0:
                return np.zeros((0, 1), dtype=np.int64)
        out[t, 0] = code
    return out


@njit(cache=True, nogil=True, boundscheck=False)
def _block_copy(series: np.ndarray, lo: int, hi: int, dims: int) -> np.ndarray:  # pragma: no cover - compiled
    """Dims ``lo:hi`` of a float32 series as a contiguous float64 (T, dims) array, zero-padded."""
    out = np.zeros((series.shape[0], dims))
    for t in range(series.shape[0]):
        for d in range(hi - lo):
            out[t, d] = series[t, lo + d]
    return out


@njit(cache=True, nogil=True, boundscheck=False)
def exact_pair(
    x: np.ndarray, y: np.ndarray, ub: np.ndarray, sums: np.ndarray, table: np.ndarray
) -> int:  # pragma: no cover - compiled
    """FRD's three block path sums of one pair (float64, pruned by ``ub`` (3,)) into ``sums``; cells run.

    Same arithmetic as tslearn but for the order of the dims in each cost (a zero dim pads the AUs);
    0/1 AUs on both sides (the rounded AUs of the official predictions, the binary ground truth) cost
    one table look-up per cell. ``table`` is :data:`POPCOUNT15`.
    """
    xv, yv = _block_copy(x, 15, 17, 2), _block_copy(y, 15, 17, 2)
    xe, ye = _block_copy(x, 17, 25, 8), _block_copy(y, 17, 25, 8)
    cx, cy = _au_codes(x), _au_codes(y)
    if cx.shape[0] == x.shape[0] and cy.shape[0] == y.shape[0]:
        return _PRUNED_CODES(cx, cy, xv, yv, xe, ye, ub, table, sums)
    xa, ya = _block_copy(x, 0, 15, 16), _block_copy(y, 0, 15, 16)
    return _PRUNED_FLOAT(xa, ya, xv, yv, xe, ye, ub, table, sums)


def column_kernel(lanes: int) -> Callable[..., np.ndarray]:
    """The column kernel for ``lanes`` SIMD lanes (a compile-time constant of every loop below).

    Returns ``search(col, col_ids, au_rows, reactions, items, thr, check_every, margin, sample,
    out, out_blocks) -> stats``: FRD's distance of one real reaction ``col`` (Tc, 25) float32 to each
    ``reactions[items[e]]`` ((R, Tr, 25) float32), computed in ``sample``'s dtype. ``col_ids``
    (Tc,) numbers ``col``'s AU rows in ``au_rows`` (U, 15). ``thr`` (R,) holds an upper bound of
    each reaction's minimum (``inf`` if none); a finished pair lowers it to ``value * (1 +
    margin)`` and a lane is abandoned once its row bound exceeds ``thr * (1 + margin)``, so a pair
    that can hold the minimum always finishes. Writes ``out[e]`` (``inf``: abandoned) and the three
    blocks' path sums ``out_blocks[e]`` (m, 3) of finished pairs, and returns (pairs, abandoned,
    rows). ``check_every`` 0 computes every pair in full.
    """

    @njit(cache=True, nogil=True, boundscheck=False)
    def reset_lane(prev: np.ndarray, lane: int) -> None:  # pragma: no cover - compiled
        """Row -1 of a new DTW in ``lane``: 0 before the first column, infinity elsewhere."""
        for j in range(prev.shape[0]):
            for b in range(3):
                prev[j, b * lanes + lane] = np.inf
        for b in range(3):
            prev[0, b * lanes + lane] = 0.0

    @njit(cache=True, nogil=True, boundscheck=False, fastmath={"contract"})
    def au_costs(xau: np.ndarray, patterns: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
        """AU-block cost of every lane's current row (``xau`` (15, lanes)) to each of a column's AU rows."""
        for u in range(patterns.shape[0]):
            p0, p1, p2, p3, p4 = patterns[u, 0], patterns[u, 1], patterns[u, 2], patterns[u, 3], patterns[u, 4]
            p5, p6, p7, p8, p9 = patterns[u, 5], patterns[u, 6], patterns[u, 7], patterns[u, 8], patterns[u, 9]
            p10, p11, p12, p13, p14 = (
                patterns[u, 10],
                patterns[u, 11],
                patterns[u, 12],
                patterns[u, 13],
                patterns[u, 14],
            )
            for lane in range(lanes):
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

    @njit(cache=True, nogil=True, boundscheck=False, fastmath={"contract"})
    def column_step(
        prev: np.ndarray,
        cur: np.ndarray,
        xrow: np.ndarray,
        colv: np.ndarray,
        col_local: np.ndarray,
        au_cost: np.ndarray,
        left: np.ndarray,
    ) -> None:  # pragma: no cover - compiled
        """One DP row for every lane against the shared column (``colv``: its dims 15..24, (Tc, 10)).

        ``xrow`` (10, lanes) holds the lanes' current valence..expression values; the AU-block cost
        of a lane's row against column ``jj`` is ``au_cost[col_local[jj], lane]``. The left
        neighbour is carried in ``left`` rather than re-read from the row just written (re-reading
        it serialises the loop on store forwarding), and each cell's cost feeds its update directly.
        """
        for q in range(3 * lanes):
            cur[0, q] = np.inf
            left[q] = np.inf
        for jj in range(colv.shape[0]):
            u = col_local[jj]
            y15 = colv[jj, 0]
            y16 = colv[jj, 1]
            y17 = colv[jj, 2]
            y18 = colv[jj, 3]
            y19 = colv[jj, 4]
            y20 = colv[jj, 5]
            y21 = colv[jj, 6]
            y22 = colv[jj, 7]
            y23 = colv[jj, 8]
            y24 = colv[jj, 9]
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

    def search(
        col: np.ndarray,
        col_ids: np.ndarray,
        au_rows: np.ndarray,
        reactions: np.ndarray,
        items: np.ndarray,
        thr: np.ndarray,
        check_every: int,
        margin: float,
        sample: np.ndarray,
        out: np.ndarray,
        out_blocks: np.ndarray,
    ) -> np.ndarray:  # pragma: no cover - compiled
        m = items.shape[0]
        tc, tr = col.shape[0], reactions.shape[1]
        stats = np.zeros(3, dtype=np.int64)
        if m == 0:
            return stats
        slack = 1.0 + margin
        # the column's distinct AU rows, numbered locally, and its other dims, in the working dtype
        distinct = np.unique(col_ids)
        col_local = np.searchsorted(distinct, col_ids)
        n_local = distinct.shape[0]
        patterns = _aligned(n_local, 15, sample, 0.0)
        colv = _aligned(tc, 10, sample, 0.0)
        for jj in range(tc):
            for d in range(15):
                patterns[col_local[jj], d] = au_rows[col_ids[jj], d]
            for d in range(10):
                colv[jj, d] = col[jj, 15 + d]
        au_cost = _aligned(n_local, lanes, sample, 0.0)
        prev = _aligned(tc + 1, 3 * lanes, sample, 0.0)
        cur = _aligned(tc + 1, 3 * lanes, sample, 0.0)
        xrow = _aligned(10, lanes, sample, 0.0)
        xau = _aligned(15, lanes, sample, 0.0)
        left = _aligned(1, 3 * lanes, sample, 0.0)[0]
        rowmin = _aligned(1, 3 * lanes, sample, 0.0)[0]
        lane_pair = np.full(lanes, -1)
        lane_row = np.zeros(lanes, dtype=np.int64)
        for lane in range(lanes):
            _reset_lane_k(prev, lane)
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
            _au_costs_k(xau, patterns, au_cost)
            _column_step_k(prev, cur, xrow, colv, col_local, au_cost, left)
            prev, cur = cur, prev
            steps += 1
            check = check_every > 0 and steps % check_every == 0
            if check:
                for q in range(3 * lanes):
                    rowmin[q] = np.inf
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
                    for b in range(3):
                        out_blocks[e, b] = prev[tc, b * lanes + lane]
                    thr[it] = min(thr[it], value * slack)
                elif check:
                    bound_now = _weighted(rowmin[lane], rowmin[lanes + lane], rowmin[2 * lanes + lane])
                    if bound_now <= thr[it] * slack:
                        continue
                    out[e] = np.inf
                    stats[1] += 1
                else:
                    continue
                stats[0] += 1
                _reset_lane_k(prev, lane)
                lane_pair[lane] = -1
                active -= 1
        return stats

    # ``search`` reaches its helpers through its globals, not its closure: numba keys a cached
    # function on its closure's pickled contents, and a compiled helper pickles differently in every
    # process (a fresh uuid), so a closure over them recompiled ``search`` (~10 s) in every process.
    # The closure keeps only ``lanes``, which tells the cached variants apart.
    env = dict(globals(), _reset_lane_k=reset_lane, _au_costs_k=au_costs, _column_step_k=column_step)
    kernel = types.FunctionType(search.__code__, env, search.__name__, search.__defaults__, search.__closure__)
    kernel.__qualname__ = search.__qualname__
    kernel.__doc__ = search.__doc__
    return njit(cache=True, nogil=True, boundscheck=False)(kernel)


#: Placeholders for the helper names each kernel variant binds in its own globals (column_kernel).
_reset_lane_k = _au_costs_k = _column_step_k = None

#: The compiled column kernels by lane count (each compiles per working dtype on first use).
SEARCH: dict[int, Callable[..., np.ndarray]] = {lanes: column_kernel(lanes) for lanes in LANES}
#: Zero-length arrays whose dtype selects the kernels' working precision.
FLOAT32 = np.empty(0, dtype=np.float32)
FLOAT64 = np.empty(0, dtype=np.float64)
