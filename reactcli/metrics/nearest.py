"""FRD's inner minimum: the exact smallest distance from one reaction to a set of real reactions.

The compiled kernels are in :mod:`reactcli.metrics.dtw`; this module decides the order they run
in. Per reaction: rank the neighbours by a cheap DTW on every ``COARSE_STEP``-th frame (the
same search kernel at 1/25 of the cells); compute the best-ranked 16 exactly (float64, one
kernel call), whose minimum is a tight threshold from the first row on; search the others in
float32 with abandoning; recompute in float64 the few that finished within the float32 margin of
that threshold. The ranking usually puts the winner in the first 16, so there is rarely more
than the one exact call, and the float32 search abandons losers from its first lanes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reactcli.metrics.dtw import CHECK_EVERY, EXACT_LANES, frd_exact_lanes, frd_search, search_margin

#: Frame step of the ranking pass and of the coarse warping path (5 frames = 0.2 s).
COARSE_STEP = 5
#: Search statistics, summed over calls.
COUNT_KEYS = ("pairs", "abandoned", "rows", "full_rows", "exact")


def au_row_ids(series: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Number the distinct AU rows (dims 0:15) of (N, T, 25) float32 series: ids (N, T), rows (U, 15).

    Real AUs are 0/1, so a split has a few hundred distinct rows; the search tabulates their
    cost once per reaction instead of recomputing it in every cell.
    """
    rows = np.ascontiguousarray(series[..., :15], dtype=np.float32).reshape(-1, 15)
    keys = rows.view(np.dtype((np.void, rows.itemsize * 15))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return np.asarray(inverse, dtype=np.int64).reshape(series.shape[:2]), np.ascontiguousarray(rows[first])


def pack_lanes(series: np.ndarray) -> np.ndarray:
    """(G, T, D, EXACT_LANES) float32 batches of (M, T, D) series, lanes innermost.

    Padding lanes repeat the batch's first series (finite data; callers ignore them).
    """
    m = series.shape[0]
    n_groups = -(-m // EXACT_LANES)
    packed = np.empty((n_groups, *series.shape[1:], EXACT_LANES), dtype=np.float32)
    for g in range(n_groups):
        chunk = series[g * EXACT_LANES : (g + 1) * EXACT_LANES]
        packed[g, ..., : chunk.shape[0]] = np.moveaxis(chunk, 0, -1)
        packed[g, ..., chunk.shape[0] :] = chunk[0][..., None]
    return packed


@dataclass
class NeighbourIndex:
    """The real listener reactions (N, T, 25) prepared once for many nearest-distance queries."""

    gts: np.ndarray
    au_ids: np.ndarray
    au_rows: np.ndarray
    coarse_gts: np.ndarray = field(repr=False)
    coarse_ids: np.ndarray = field(repr=False)

    @classmethod
    def build(cls, listener: np.ndarray) -> NeighbourIndex:
        gts = np.ascontiguousarray(listener, dtype=np.float32)
        au_ids, au_rows = au_row_ids(gts)
        coarse_gts = np.ascontiguousarray(gts[:, ::COARSE_STEP])
        coarse_ids = np.ascontiguousarray(au_ids[:, ::COARSE_STEP])
        return cls(gts, au_ids, au_rows, coarse_gts, coarse_ids)

    def nearest(self, reaction: np.ndarray, idx: np.ndarray, early_abandon: bool = True) -> tuple[float, dict]:
        """min over ``idx`` of FRD's distance d(reaction, G[j]), exact, and the search counts.

        ``early_abandon=False`` computes every pair in full (the slow path tests compare with).
        """
        y = np.ascontiguousarray(reaction, dtype=np.float32)
        idx = np.asarray(idx, dtype=np.int64)
        t_len = self.gts.shape[1]
        counts = dict.fromkeys(COUNT_KEYS, 0)
        counts["full_rows"] = idx.size * t_len
        if not early_abandon:
            d32, stats = frd_search(y, self.gts, idx, self.au_ids, self.au_rows, 0, np.inf)
            return self._exact_within_margin(y, idx, d32, np.inf, counts, stats)
        order = idx
        if y.shape[0] == t_len and idx.size > EXACT_LANES:
            coarse, _ = frd_search(
                np.ascontiguousarray(y[::COARSE_STEP]), self.coarse_gts, idx, self.coarse_ids, self.au_rows, 0, np.inf
            )
            order = idx[np.argsort(coarse, kind="stable")]
        # the best-ranked neighbours exactly first: their minimum is a tight threshold from row one
        head, rest = order[:EXACT_LANES], order[EXACT_LANES:]
        best = self._exact(y, head)
        counts["exact"] = head.size
        d32, stats = frd_search(y, self.gts, rest, self.au_ids, self.au_rows, CHECK_EVERY, best)
        return self._exact_within_margin(y, rest, d32, best, counts, stats)

    def _exact(self, y: np.ndarray, cand: np.ndarray) -> float:
        """Float64 minimum of d(y, G[j]) over ``cand``, 16 neighbours per kernel call."""
        best = np.inf
        for start, group in zip(range(0, cand.size, EXACT_LANES), pack_lanes(self.gts[cand]), strict=True):
            used = min(EXACT_LANES, cand.size - start)
            best = min(best, float(frd_exact_lanes(group, y)[:used].min()))
        return best

    def _exact_within_margin(
        self, y: np.ndarray, cand: np.ndarray, d32: np.ndarray, best: float, counts: dict, stats: np.ndarray
    ) -> tuple[float, dict]:
        """Recompute in float64 the searched neighbours that may beat ``best`` given float32 rounding."""
        limit = min(best, float(d32.min()) if d32.size else np.inf)
        margin = 1.0 + search_margin(self.gts.shape[1], y.shape[0])
        # all of them if float32 overflowed (absurd magnitudes): float64 decides
        near = cand[d32 <= limit * margin] if np.isfinite(limit) else cand
        counts["pairs"] += int(stats[0]) + counts["exact"]
        counts["abandoned"] += int(stats[1])
        counts["rows"] += int(stats[2]) + counts["exact"] * self.gts.shape[1]
        counts["exact"] += near.size
        return min(best, self._exact(y, near)), counts
