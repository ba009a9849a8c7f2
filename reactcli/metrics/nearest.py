"""FRD's inner minimum: the exact smallest distance from each predicted reaction to its candidates.

One engine serves REACT 2024 (every prediction against its speaker's appropriate real reactions,
all 750 frames) and REACT 2025/2026 on MARS (each sample's K predictions against its own G aligned
ground truths, 58 to 20 000+ frames): the work is a list of :class:`Block` s, each holding
predictions and real reactions of one length and, per prediction, the candidates to minimise over.
The compiled kernels are in :mod:`reactcli.metrics.dtw`; this module decides what they run on:

1. **Bounds.** Where a prediction has few candidates and both series have the same length (MARS
   after alignment, 2024 with few neighbours), the diagonal (a valid warping path) bounds each
   pair from above for free: the smallest is the prediction's first threshold, and each block's
   diagonal sum bounds that block's path sum.
2. **Rank.** A prediction with more than one candidate ranks them by a DTW on every
   ``COARSE_STEP``-th frame (1/25 of the cells; at most ``COARSE_FRAMES`` frames per series).
3. **Head, exact.** Its best-ranked candidate (usually the winner) is computed in float64 first,
   which makes the threshold the real distance from the start and leaves the winner nothing to
   recompute; the best path along a diagonal shifted by up to ``MAX_LAG`` frames bounds it first.
4. **The rest, float32 search.** Every other candidate, abandoning a pair once its row bound
   passes the threshold. Pairs that share a real reaction go through one kernel call with the
   predictions in the SIMD lanes (32 lanes, or 16 for a column with few), so lanes stay full
   however few candidates each prediction has; calls with more best-ranked pairs go first.
5. **Exact where float32 cannot decide.** Only searched pairs that finished within the float32
   rounding bound of the threshold (near ties: few) are recomputed in float64.

Float64 pairs of a real reaction with several of them run in the float64 column kernel; the others
(the heads of a MARS sample spread over its ten ground truths, near ties) one at a time in
:func:`dtw.exact_pair`, pruned by the diagonal or float32 bound, instead of leaving 15 of 16 lanes
idle. Every threshold is a rigorous upper bound of the true minimum and every abandon a rigorous
proof that the pair is larger (the margins are the rounding bounds of :func:`dtw.margin`), so the
result is the float64 minimum, equal to tslearn's loop to ~1e-15. Calls run on ``workers``
threads, longest first; two threads lowering the same threshold can only leave it a little high
(still a real bound). The whole plan also runs on a torch device (:mod:`dtw_torch`), float64
throughout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from reactcli.metrics.dtw import (
    CHECK_EVERY,
    DIAGONAL_SLACK,
    FLOAT32,
    FLOAT64,
    POPCOUNT15,
    SEARCH,
    diagonal_bounds,
    exact_pair,
    lag_bounds,
    margin,
    weighted,
)
from reactcli.metrics.frd_plan import Block, Pairs

#: Frame step of the ranking pass (5 frames = 0.2 s at 25 fps).
COARSE_STEP = 5
#: Coarse frames at most per series (longer MARS recordings are subsampled more: ranking stays cheap).
COARSE_FRAMES = 200
#: Candidates at most for which every diagonal bound is computed (it costs 1/T of a DTW each).
DIAGONAL_MAX = 32
#: Lags (frames) of the lagged-diagonal paths that bound a best-ranked pair before its exact DTW.
MAX_LAG = 32
#: A real reaction with fewer float64 pairs than this computes them one at a time, pruned.
SCALAR_BELOW = 4
#: Search statistics, summed over calls: (prediction, candidate) pairs, pairs abandoned early, DP
#: rows computed (float32 search and float64 exact together), rows of all pairs in full, float64 DTWs.
COUNT_KEYS = ("pairs", "abandoned", "rows", "full_rows", "exact")


def _groups(pairs: Pairs, chosen: np.ndarray) -> list[np.ndarray]:
    """``chosen`` split by (block, real reaction): the pairs of one kernel call each."""
    order = chosen[np.lexsort((pairs.target[chosen], pairs.block[chosen]))]
    keys = pairs.block[order] * (1 << 32) + pairs.target[order]
    return np.split(order, np.flatnonzero(np.diff(keys)) + 1)


class _Runner:
    """Groups pairs by real reaction into kernel calls and runs them on a thread pool, longest first."""

    exact_search = False  # float32 search: float64 decides the pairs near the minimum

    def __init__(
        self,
        blocks: Sequence[Block],
        pool: ThreadPoolExecutor,
        workers: int,
        counts: dict,
        progress: Callable[[float], None],
    ):
        self.blocks = blocks
        self.pool = pool
        self.workers = workers
        self.counts = counts
        self.progress = progress

    def run(
        self,
        pairs: Pairs,
        chosen: np.ndarray,
        thr: list[np.ndarray],
        dtype: type,
        check: int,
        out: np.ndarray,
        coarse: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
        weight: float = 0.0,
    ) -> None:
        """Distances of the pairs ``chosen`` into ``out[chosen]`` (``inf`` where abandoned).

        ``thr`` holds one threshold array per block (lowered in place); ``coarse`` replaces each
        block's series by its subsampled copy (the ranking pass, not counted). Calls run longest
        first, and among equals those holding more best-ranked pairs first (their thresholds help
        the calls after them).
        """
        if not chosen.size:
            self.progress(weight)
            return
        sample = FLOAT64 if dtype is np.float64 else FLOAT32

        def arrays(b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            blk = self.blocks[b]
            return coarse[b] if coarse is not None else (blk.queries, blk.targets, blk.au_ids)

        def cost(group: np.ndarray) -> float:
            queries, targets, _ = arrays(int(pairs.block[group[0]]))
            return float(group.size) * queries.shape[1] * targets.shape[1]

        groups = _groups(pairs, chosen)
        groups.sort(key=lambda g: (-cost(g), -int((pairs.rank[g] == 0).sum())))
        total = sum(cost(g) for g in groups)

        def one(group: np.ndarray) -> np.ndarray:
            b, j = int(pairs.block[group[0]]), int(pairs.target[group[0]])
            queries, targets, au_ids = arrays(b)
            part = np.full(group.size, np.inf)
            part_sums = np.full((group.size, 3), np.inf)
            stats = SEARCH[_lanes(group.size, dtype)](
                targets[j], au_ids[j], self.blocks[b].au_rows, queries, pairs.query[group], thr[b], check,
                margin(queries.shape[1], targets.shape[1], dtype), sample, part, part_sums,
            )  # fmt: skip
            out[group] = part
            if coarse is None and dtype is np.float32:
                pairs.sums32[group] = part_sums
            return stats

        for group, stats in zip(groups, self.pool.map(one, groups), strict=True):
            if coarse is None:
                self.counts["abandoned"] += int(stats[1])
                self.counts["rows"] += int(stats[2])
                if dtype is np.float64:
                    self.counts["exact"] += int(stats[0])
            self.progress(weight * cost(group) / total)

    def run_exact(self, pairs: Pairs, chosen: np.ndarray, thr: list[np.ndarray], weight: float) -> None:
        """Float64 distances of ``chosen`` into ``pairs.value64``, lowering ``thr``.

        A real reaction with several of them goes through the float64 column kernel (lanes
        abandoned against ``thr``); one with fewer than ``SCALAR_BELOW`` through
        :func:`dtw.exact_pair`, one pair at a time and pruned by ``pairs.bound``: there a
        16-lane call would leave most lanes idle.
        """
        groups = _groups(pairs, chosen) if chosen.size else []
        lanes = np.concatenate([g for g in groups if g.size >= SCALAR_BELOW] or [np.zeros(0, dtype=np.int64)])
        alone = np.concatenate([g for g in groups if g.size < SCALAR_BELOW] or [np.zeros(0, dtype=np.int64)])
        share = weight * lanes.size / max(chosen.size, 1)
        self.run(pairs, lanes, thr, np.float64, CHECK_EVERY, pairs.value64, weight=share)
        if not alone.size:
            self.progress(weight - share)
            return
        # longest first, in chunks of about equal work for the thread pool
        t_query = np.array([blk.queries.shape[1] for blk in self.blocks], dtype=np.float64)
        work = t_query[pairs.block[alone]] ** 2
        alone = alone[np.argsort(-work, kind="stable")]
        chunks = np.array_split(alone, min(alone.size, 8 * self.workers))

        def one(chunk: np.ndarray) -> int:
            cells = 0
            sums = np.empty(3)
            for e in chunk:
                blk = self.blocks[int(pairs.block[e])]
                x, y = blk.queries[pairs.query[e]], blk.targets[pairs.target[e]]
                cells += exact_pair(x, y, pairs.bound[e], sums, POPCOUNT15)
                if not np.isfinite(sums).all():  # a bound that was not one: never expected, costs nothing
                    cells += exact_pair(x, y, np.full(3, np.inf), sums, POPCOUNT15)
                value = weighted(sums)
                pairs.value64[e] = value
                b, q = int(pairs.block[e]), int(pairs.query[e])
                slack = 1.0 + margin(x.shape[0], y.shape[0], np.float64)
                thr[b][q] = min(thr[b][q], value * slack)
            return cells

        for chunk, cells in zip(chunks, self.pool.map(one, chunks), strict=True):
            self.counts["exact"] += int(chunk.size)
            t_len = t_query[pairs.block[chunk]]
            self.counts["rows"] += int(round(cells / max(float(np.mean(t_len)), 1.0)))
            self.progress((weight - share) * chunk.size / alone.size)


def _lanes(items: int, dtype: type) -> int:
    """Lanes for a call with ``items`` pairs: 32 only for float32 (float64 holds half as many per register)."""
    return 32 if items > 16 and dtype is np.float32 else 16


def nearest(
    blocks: Sequence[Block],
    workers: int = 1,
    early_abandon: bool = True,
    on_progress: Callable[[float], None] | None = None,
    device: str | None = None,
    memory: int | None = None,
) -> tuple[list[np.ndarray], dict[str, int]]:
    """Per block, min over ``cands[r]`` of d(queries[r], targets[j]) for every r (float64, exact), and counts.

    ``early_abandon=False`` computes every pair in full in float64 (the plain exhaustive minimum).
    ``on_progress`` receives fractions of the whole job (summing to 1). ``device`` ``"cuda"``,
    ``"cuda:N"`` (or ``"auto"`` with CUDA present) runs the DTWs as a float64 wavefront there
    (:mod:`reactcli.metrics.dtw_torch`, batches of at most ``memory`` bytes), as does
    ``"torch-cpu"`` on the CPU; ``None`` or ``"cpu"`` uses the numba kernels on ``workers`` threads.
    """
    counts = dict.fromkeys(COUNT_KEYS, 0)
    progress = on_progress or (lambda _fraction: None)
    offsets = np.cumsum([0] + [blk.queries.shape[0] for blk in blocks])
    sizes = np.array([c.size for blk in blocks for c in blk.cands], dtype=np.int64)
    owner = np.repeat(np.arange(sizes.size), sizes)
    block_of = np.repeat(np.arange(len(blocks)), np.diff(offsets))
    candidates = [c for blk in blocks for c in blk.cands]
    pairs = Pairs(
        block=block_of[owner],
        query=owner - offsets[block_of[owner]],
        target=np.concatenate(candidates) if owner.size else np.zeros(0, dtype=np.int64),
        owner=owner,
    )
    t_query = np.array([blk.queries.shape[1] for blk in blocks], dtype=np.int64)
    counts["pairs"] = owner.size
    counts["full_rows"] = int(t_query[pairs.block].sum())
    thr32_flat = np.full(sizes.size, np.inf)
    thr64_flat = np.full(sizes.size, np.inf)
    thr32 = [thr32_flat[offsets[b] : offsets[b + 1]] for b in range(len(blocks))]
    thr64 = [thr64_flat[offsets[b] : offsets[b + 1]] for b in range(len(blocks))]
    single = sizes[owner] == 1
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        runner = _runner(blocks, pool, max(1, workers), counts, progress, device, memory)
        if not early_abandon:
            runner.run(pairs, np.arange(owner.size), thr64, np.float64, 0, pairs.value64, weight=1.0)
        else:
            _bounds(blocks, pairs, sizes, thr32_flat, pool)
            _rank(blocks, pairs, sizes, runner)
            head = np.flatnonzero((pairs.rank == 0) | single)
            _lag_bounds(blocks, pairs, head, thr32_flat, pool, max(1, workers))
            runner.run_exact(pairs, head, thr32, weight=0.2)
            rest = np.flatnonzero((pairs.rank > 0) & ~single)
            runner.run(pairs, rest, thr32, np.float32, CHECK_EVERY, pairs.value32, weight=0.7)
            if runner.exact_search:
                pairs.value64[rest] = pairs.value32[rest]
                progress(0.1)
            else:
                thr64_flat[:] = thr32_flat
                runner.run_exact(pairs, _near_minimum(blocks, pairs, thr32_flat, rest), thr64, weight=0.1)
    best = np.full(sizes.size, np.inf)
    np.minimum.at(best, owner, pairs.value64)
    best[sizes == 0] = np.nan
    return [best[offsets[b] : offsets[b + 1]] for b in range(len(blocks))], counts


def _runner(
    blocks: Sequence[Block],
    pool: ThreadPoolExecutor,
    workers: int,
    counts: dict,
    progress: Callable[[float], None],
    device: str | None,
    memory: int | None,
) -> _Runner:
    """The numba runner for ``None``/``"cpu"``, else the torch wavefront's on that device.

    ``"auto"`` is CUDA when present, else the numba kernels; ``"torch-cpu"`` runs the wavefront on
    the CPU (how the tests check the device code path on a machine without a GPU).
    """
    if device is None or device == "cpu":
        return _Runner(blocks, pool, workers, counts, progress)
    from reactcli.metrics.dtw_torch import TorchRunner
    from reactcli.runtime import resolve_device

    resolved = resolve_device("cpu" if device == "torch-cpu" else device)
    if resolved.type == "cpu" and device != "torch-cpu":
        return _Runner(blocks, pool, workers, counts, progress)
    return TorchRunner(blocks, resolved, counts, progress, memory)  # type: ignore[return-value]


def _bounds(
    blocks: Sequence[Block], pairs: Pairs, sizes: np.ndarray, thr: np.ndarray, pool: ThreadPoolExecutor
) -> None:
    """Diagonal bounds of predictions with few same-length candidates: first thresholds, and
    ``pairs.bound`` for the float64 pass (a single candidate skips the search)."""
    same = np.array([blk.queries.shape[1] == blk.targets.shape[1] for blk in blocks], dtype=bool)
    chosen = np.flatnonzero(same[pairs.block] & (sizes[pairs.owner] <= DIAGONAL_MAX))
    if not chosen.size:
        return
    values = np.empty(chosen.size)
    sums = np.empty((chosen.size, 3))
    # pairs are in block order: one kernel call per block
    cuts = np.flatnonzero(np.diff(pairs.block[chosen])) + 1
    spans = list(zip(np.r_[0, cuts], np.r_[cuts, chosen.size], strict=True))

    def one(span: tuple[int, int]) -> None:
        lo, hi = span
        mine = chosen[lo:hi]
        blk = blocks[int(pairs.block[mine[0]])]
        diagonal_bounds(blk.queries, blk.targets, pairs.query[mine], pairs.target[mine], values[lo:hi], sums[lo:hi])

    list(pool.map(one, spans))
    np.minimum.at(thr, pairs.owner[chosen], values * (1.0 + DIAGONAL_SLACK))
    pairs.bound[chosen] = sums * (1.0 + DIAGONAL_SLACK)


def _lag_bounds(
    blocks: Sequence[Block], pairs: Pairs, chosen: np.ndarray, thr: np.ndarray, pool: ThreadPoolExecutor, workers: int
) -> None:
    """Tighter bounds for the pairs computed exactly first: the best lagged-diagonal path (``MAX_LAG``)."""
    same = np.array([blk.queries.shape[1] == blk.targets.shape[1] for blk in blocks], dtype=bool)
    chosen = chosen[same[pairs.block[chosen]]]
    if not chosen.size:
        return
    sums = np.full((chosen.size, 3), np.inf)

    def one(part: np.ndarray) -> None:
        for e in part:
            blk = blocks[int(pairs.block[chosen[e]])]
            x, y = blk.queries[pairs.query[chosen[e]]], blk.targets[pairs.target[chosen[e]]]
            lag_bounds(x, y, MAX_LAG, sums[e])

    list(pool.map(one, np.array_split(np.arange(chosen.size), min(chosen.size, 8 * workers))))
    bound = sums * (1.0 + DIAGONAL_SLACK)
    pairs.bound[chosen] = np.minimum(pairs.bound[chosen], bound)
    values = np.array([weighted(row) for row in bound])
    np.minimum.at(thr, pairs.owner[chosen], values)


def _rank(blocks: Sequence[Block], pairs: Pairs, sizes: np.ndarray, runner: _Runner) -> None:
    """``pairs.rank``: each pair's place among its prediction's candidates by the coarse DTW."""
    ranked = np.flatnonzero(sizes[pairs.owner] > 1)
    if not ranked.size:
        return
    coarse = []
    for blk in blocks:
        # every 5th frame, or fewer for long series: at most COARSE_FRAMES coarse frames per series
        step = max(COARSE_STEP, -(-max(blk.queries.shape[1], blk.targets.shape[1]) // COARSE_FRAMES))
        coarse.append(
            (
                np.ascontiguousarray(blk.queries[:, ::step]),
                np.ascontiguousarray(blk.targets[:, ::step]),
                np.ascontiguousarray(blk.au_ids[:, ::step]),
            )
        )
    values = np.full(pairs.block.size, np.inf)
    no_thr = [np.full(blk.queries.shape[0], np.inf) for blk in blocks]
    runner.run(pairs, ranked, no_thr, np.float32, 0, values, coarse=coarse)
    order = ranked[np.lexsort((values[ranked], pairs.owner[ranked]))]
    owners = pairs.owner[order]
    starts = np.flatnonzero(np.r_[True, np.diff(owners) != 0])
    first = np.repeat(starts, np.diff(np.r_[starts, owners.size]))
    pairs.rank[order] = np.arange(order.size) - first


def _near_minimum(blocks: Sequence[Block], pairs: Pairs, thr: np.ndarray, searched: np.ndarray) -> np.ndarray:
    """The searched pairs float64 must decide: those that finished within float32 rounding of the threshold.

    A pair whose float32 distance exceeds ``thr * (1 + margin)`` is truly larger than ``thr``, an
    upper bound of the minimum, so it cannot hold it. A prediction with no float64 value and no
    such pair (float32 overflow on absurd magnitudes) sends all its searched pairs.
    """
    t_query = np.array([blk.queries.shape[1] for blk in blocks], dtype=np.int64)
    t_target = np.array([blk.targets.shape[1] for blk in blocks], dtype=np.int64)
    slack = 1.0 + (t_query + t_target + 16)[pairs.block] * float(np.finfo(np.float32).eps) / 2.0
    in_search = np.zeros(pairs.block.size, dtype=bool)
    in_search[searched] = True
    near = in_search & np.isfinite(pairs.value32) & (pairs.value32 <= thr[pairs.owner] * slack)
    covered = np.bincount(pairs.owner[near | np.isfinite(pairs.value64)], minlength=thr.size) > 0
    # a finished float32 path sum bounds the float64 one (its rounding bound, tripled for safety)
    tight = pairs.sums32 * (1.0 + 3.0 * (slack - 1.0))[:, None]
    pairs.bound[near] = np.minimum(pairs.bound[near], tight[near])
    return np.flatnonzero(near | (in_search & ~covered[pairs.owner]))
