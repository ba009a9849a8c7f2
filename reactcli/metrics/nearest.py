"""FRD's inner minimum: the exact smallest distance from one reaction to a set of real reactions.

The compiled kernels are in :mod:`reactcli.metrics.dtw`; this module decides the order they run
in. For every predicted reaction: rank its neighbours by a cheap DTW on every ``COARSE_STEP``-th
frame (the same search kernel at 1/25 of the cells); compute the best-ranked 16 exactly (float64,
one kernel call), whose minimum is a tight threshold from the first row on; search the others in
float32 with abandoning, grouped by real reaction so one kernel call serves every predicted
reaction that has it as a neighbour; recompute in float64 the few that finished within the
float32 margin of the threshold. The ranking usually puts the winner in the first 16, so there
is rarely more than the one exact call per reaction.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from reactcli.metrics.dtw import CHECK_EVERY, EXACT_LANES, frd_exact_lanes, frd_search_column, search_margin
from reactcli.vocab import ACTION_UNITS, AU_DIMS

#: Frame step of the ranking pass (5 frames = 0.2 s).
COARSE_STEP = 5
#: Search statistics, summed over calls.
COUNT_KEYS = ("pairs", "abandoned", "rows", "full_rows", "exact")


def au_row_ids(series: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Number the distinct AU rows (dims 0:15) of (N, T, 25) float32 series: ids (N, T), rows (U, 15).

    Real AUs are 0/1, so a split has a few hundred distinct rows; the search tabulates their
    cost once per reaction instead of recomputing it in every cell.
    """
    rows = np.ascontiguousarray(series[..., AU_DIMS], dtype=np.float32).reshape(-1, len(ACTION_UNITS))
    keys = rows.view(np.dtype((np.void, rows.itemsize * len(ACTION_UNITS)))).ravel()
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

    def exact_min(self, y: np.ndarray, cand: np.ndarray) -> float:
        """Float64 minimum of d(y, G[j]) over ``cand``, 16 neighbours per kernel call."""
        best = np.inf
        for start, group in zip(range(0, cand.size, EXACT_LANES), pack_lanes(self.gts[cand]), strict=True):
            used = min(EXACT_LANES, cand.size - start)
            best = min(best, float(frd_exact_lanes(group, y)[:used].min()))
        return best

    def nearest_many(
        self,
        reactions: np.ndarray,
        items: np.ndarray,
        cands: list[np.ndarray],
        early_abandon: bool = True,
        on_column: Callable[[float], None] | None = None,
        workers: int = 1,
    ) -> tuple[np.ndarray, dict]:
        """min over ``cands[a]`` of d(reactions[items[a]], G[j]) for every a, exact, and search counts.

        ``reactions`` (R, T, 25) float32; ``items`` (A,) distinct rows of it (each row has one
        threshold); ``cands`` A index arrays into G.
        All pairs with the same real reaction j go through one kernel call (they share its columns),
        so the more reactions are asked at once, the fuller the SIMD lanes. Calls run on ``workers``
        threads; two threads may race to lower the same threshold, which can only leave it a little
        high (still a real distance, so still a valid bound). ``early_abandon=False`` computes every
        pair in full. ``on_column`` gets the fraction of the main pass done after each real reaction.
        """
        if np.unique(items).size != items.size:
            raise ValueError("nearest_many: items must be distinct rows (one threshold per row)")
        t_len = self.gts.shape[1]
        sizes = np.array([c.size for c in cands], dtype=np.int64)
        owner = np.repeat(np.arange(len(cands)), sizes)
        nbs = np.concatenate(cands).astype(np.int64) if len(cands) else np.zeros(0, dtype=np.int64)
        starts = np.concatenate(([0], np.cumsum(sizes)))
        counts = dict.fromkeys(COUNT_KEYS, 0)
        counts["full_rows"] = int(nbs.size) * t_len
        head_best = np.full(len(cands), np.inf)
        searched = np.ones(nbs.size, dtype=bool)
        check = 0
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            if early_abandon and reactions.shape[1] == t_len:
                check = CHECK_EVERY
                heads = self._heads(pool, reactions, items, owner, nbs, sizes, starts)
                for head in heads:
                    searched[head] = False
                    counts["pairs"] += head.size
                    counts["rows"] += head.size * t_len
                    counts["exact"] += head.size
                exact_head = lambda a: self.exact_min(reactions[items[a]], nbs[heads[a]])  # noqa: E731
                head_best[:] = list(pool.map(exact_head, range(len(cands))))
            thr = np.full(reactions.shape[0], np.inf)
            np.minimum.at(thr, items, head_best)
            d32 = np.full(nbs.size, np.inf)
            d32[searched] = self._columns(
                pool, self.gts, self.au_ids, reactions, items[owner[searched]], nbs[searched], thr, check, counts,
                on_column,
            )
            margin = 1.0 + search_margin(t_len, reactions.shape[1])

            def finish(a: int) -> tuple[float, int]:
                """Float64 for the searched neighbours that may beat the threshold given float32 rounding."""
                lo, hi = starts[a], starts[a + 1]
                part, limit = d32[lo:hi], thr[items[a]]
                # all of them if float32 overflowed (absurd magnitudes): float64 decides
                near = nbs[lo:hi][(part <= limit * margin) & searched[lo:hi]] if np.isfinite(limit) else nbs[lo:hi]
                if not near.size:
                    return head_best[a], 0
                return min(head_best[a], self.exact_min(reactions[items[a]], near)), near.size

            done = list(pool.map(finish, range(len(cands))))
        counts["exact"] += sum(n for _, n in done)
        return np.array([v for v, _ in done], dtype=np.float64), counts

    def _heads(
        self,
        pool: ThreadPoolExecutor,
        reactions: np.ndarray,
        items: np.ndarray,
        owner: np.ndarray,
        nbs: np.ndarray,
        sizes: np.ndarray,
        starts: np.ndarray,
    ) -> list[np.ndarray]:
        """Per reaction, the pair positions of its EXACT_LANES best neighbours by the coarse DTW."""
        ranked = sizes[owner] > EXACT_LANES
        coarse = np.full(nbs.size, np.inf)
        coarse[ranked] = self._columns(
            pool,
            self.coarse_gts,
            self.coarse_ids,
            np.ascontiguousarray(reactions[:, ::COARSE_STEP]),
            items[owner[ranked]],
            nbs[ranked],
            np.full(reactions.shape[0], np.inf),
            0,
            None,
        )
        bounds = zip(starts[:-1], starts[1:], strict=True)
        return [lo + np.argsort(coarse[lo:hi], kind="stable")[:EXACT_LANES] for lo, hi in bounds]

    def _columns(
        self,
        pool: ThreadPoolExecutor,
        gts: np.ndarray,
        au_ids: np.ndarray,
        reactions: np.ndarray,
        rows: np.ndarray,
        nbs: np.ndarray,
        thr: np.ndarray,
        check: int,
        counts: dict | None,
        on_column: Callable[[float], None] | None = None,
    ) -> np.ndarray:
        """Float32 distances of pairs (reactions[rows[e]], gts[nbs[e]]), one kernel call per real reaction."""
        out = np.full(nbs.size, np.inf)
        by_column = np.argsort(nbs, kind="stable")
        bounds = np.flatnonzero(np.diff(nbs[by_column])) + 1
        groups = np.split(by_column, bounds) if nbs.size else []
        if not groups and on_column is not None:
            on_column(1.0)

        def one(group: np.ndarray) -> np.ndarray:
            j = int(nbs[group[0]])
            part = np.full(group.size, np.inf)
            stats = frd_search_column(gts[j], au_ids[j], self.au_rows, reactions, rows[group], thr, check, part)
            out[group] = part
            return stats

        for stats in pool.map(one, groups):
            if counts is not None:
                for key, value in zip(COUNT_KEYS[:3], stats, strict=True):
                    counts[key] += int(value)
            if on_column is not None:
                on_column(1.0 / len(groups))
        return out
