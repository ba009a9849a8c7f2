"""FRD's DTW on a torch device: an anti-diagonal wavefront over many pairs at once, in float64.

The cells of one anti-diagonal (i + j = d) depend only on the two diagonals before it, so a
whole diagonal of every pair in a batch is one set of tensor operations: the squared differences of
the diagonal's frames (the target series is stored reversed, so both operands are contiguous
slices), summed per dim block, plus the minimum of the three predecessors. State is three
diagonals per pair, O(length), so 20 000-frame series never hold an L x L matrix. Everything is
float64 (costs from the float32-cast inputs, path sums), the arithmetic of tslearn, so the values
equal the CPU engine's to ~1e-15 and no float64 recheck is needed.

Abandoning works as on the CPU: every path visits at least one of two consecutive diagonals (a
step moves i + j by 1 or 2), so the smallest accumulated cost over the last two diagonals bounds
the final one; pairs whose weighted bound exceeds their prediction's threshold are dropped and the
batch is compacted. :class:`TorchRunner` runs :mod:`reactcli.metrics.nearest`'s plan (bounds,
ranking, head, rest) on a device in place of the numba kernels. Written for CUDA; it runs
unchanged on the CPU, which is how the tests check it against the numba engine and tslearn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from reactcli.metrics.dtw import BLOCKS, WEIGHTS, margin
from reactcli.metrics.frd_plan import Block, Pairs

#: Diagonals between two abandon checks.
CHECK_EVERY = 32
#: Device memory a batch may use when the device does not say (CPU): 1 GiB.
DEFAULT_MEMORY = 1 << 30


def _block_matrix(device: torch.device) -> torch.Tensor:
    """(25, 3) float64 0/1: squared differences @ it = the three blocks' costs."""
    m = torch.zeros(25, 3, dtype=torch.float64, device=device)
    for b, (lo, hi) in enumerate(BLOCKS):
        m[lo:hi, b] = 1.0
    return m


def _weighted(d: torch.Tensor) -> torch.Tensor:
    """sum_b w_b sqrt(d[..., b])."""
    w = torch.tensor(WEIGHTS, dtype=torch.float64, device=d.device)
    return (d.clamp_min(0).sqrt() * w).sum(-1)


def frd_wavefront(
    x: torch.Tensor,
    y: torch.Tensor,
    thr: torch.Tensor | None = None,
    check_every: int = CHECK_EVERY,
) -> tuple[torch.Tensor, torch.Tensor]:
    """FRD's distance of every pair (x[p], y[p]): (P,) float64, ``inf`` where abandoned.

    ``x`` (P, Tx, 25), ``y`` (P, Ty, 25) on one device, any float dtype (cast to float64).
    ``thr`` (P,) float64: a pair is dropped once its bound exceeds ``thr * (1 + margin)``.
    Also returns how many diagonals each pair ran (P,) int64.
    """
    device = x.device
    p_total, tx, ty = x.shape[0], x.shape[1], y.shape[1]
    out = torch.full((p_total,), torch.inf, dtype=torch.float64, device=device)
    n_diag = tx + ty - 1
    ran = torch.full((p_total,), n_diag, dtype=torch.int64, device=device)
    if p_total == 0:
        return out, ran
    blocks = _block_matrix(device)
    x = x.to(torch.float64)  # once per batch, not per diagonal: float32 values are exact in float64
    yr = y.flip(1).to(torch.float64)
    alive = torch.arange(p_total, device=device)
    limit = None if thr is None else thr.to(device=device, dtype=torch.float64) * (1.0 + margin(tx, ty, np.float64))
    state = [torch.full((p_total, tx + 1, 3), torch.inf, dtype=torch.float64, device=device) for _ in range(3)]
    state[0][:, 0] = 0.0  # diagonal -2 holds the origin D(-1, -1) = 0
    for d in range(n_diag):
        lo, hi = max(0, d - (ty - 1)), min(tx - 1, d)
        n = hi - lo + 1
        a = ty - 1 - d + lo
        diff = x[:, lo : hi + 1] - yr[:, a : a + n]
        cost = (diff * diff) @ blocks
        m2, m1, cur = state
        cur.fill_(torch.inf)
        best = torch.minimum(torch.minimum(m1[:, lo : hi + 1], m1[:, lo + 1 : hi + 2]), m2[:, lo : hi + 1])
        cur[:, lo + 1 : hi + 2] = cost + best
        state = [m1, cur, m2]
        if limit is not None and check_every and d % check_every == check_every - 1 and d < n_diag - 1:
            bound = _weighted(torch.minimum(m1.amin(1), cur.amin(1)))
            keep = bound <= limit
            if not bool(keep.all()):
                ran[alive[~keep]] = d + 1
                x, yr, limit, alive = x[keep], yr[keep], limit[keep], alive[keep]
                state = [s[keep] for s in state]
                if alive.numel() == 0:
                    return out, ran
    out[alive] = _weighted(state[1][:, tx])
    return out, ran


def pair_bytes(tx: int, ty: int) -> int:
    """Device bytes one pair needs in :func:`frd_wavefront` (inputs, state, one diagonal's temporaries)."""
    return 8 * 25 * (tx + ty) * 2 + 8 * 3 * 3 * (tx + 1) + 8 * 25 * 4 * min(tx, ty) + 8 * 3 * 4 * min(tx, ty)


def batch_pairs(tx: int, ty: int, device: torch.device, memory: int | None = None) -> int:
    """How many pairs of these lengths one wavefront batch holds: a quarter of the free device memory."""
    if memory is None:
        memory = DEFAULT_MEMORY
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            memory = free // 4
    return max(1, memory // pair_bytes(tx, ty))


class TorchRunner:
    """Runs the pairs :func:`reactcli.metrics.nearest.nearest` asks for through :func:`frd_wavefront`.

    Same interface as the numba runner; every value it returns is already float64-exact.
    """

    exact_search = True

    def __init__(
        self,
        blocks: Sequence[Block],
        device: torch.device,
        counts: dict,
        progress: Callable[[float], None],
        memory: int | None = None,
    ):
        self.blocks = blocks
        self.device = device
        self.counts = counts
        self.progress = progress
        self.memory = memory

    def run_exact(self, pairs: Pairs, chosen: np.ndarray, thr: list[np.ndarray], weight: float) -> None:
        """Float64 distances of ``chosen`` into ``pairs.value64`` (every value here is float64)."""
        self.run(pairs, chosen, thr, np.float64, CHECK_EVERY, pairs.value64, weight=weight)

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
        """Distances of the pairs ``chosen`` into ``out[chosen]``; thresholds lowered per batch."""
        del dtype  # always float64 here
        if not chosen.size:
            self.progress(weight)
            return
        order = chosen[np.argsort(pairs.block[chosen], kind="stable")]
        cuts = np.flatnonzero(np.diff(pairs.block[order])) + 1
        by_block = np.split(order, cuts)

        def arrays(b: int) -> tuple[np.ndarray, np.ndarray]:
            if coarse is not None:
                return coarse[b][0], coarse[b][1]
            return self.blocks[b].queries, self.blocks[b].targets

        total = float(sum(g.size * arrays(int(pairs.block[g[0]]))[0].shape[1] for g in by_block))
        for group in by_block:
            b = int(pairs.block[group[0]])
            queries, targets = arrays(b)
            tx, ty = queries.shape[1], targets.shape[1]
            size = batch_pairs(tx, ty, self.device, self.memory)
            slack = 1.0 + margin(tx, ty, np.float64)
            for start in range(0, group.size, size):
                part = group[start : start + size]
                q, t = pairs.query[part], pairs.target[part]
                x = torch.from_numpy(queries[q]).to(self.device)
                y = torch.from_numpy(targets[t]).to(self.device)
                limit = torch.from_numpy(thr[b][q].copy()) if check else None
                values, ran = frd_wavefront(x, y, limit, CHECK_EVERY if check else 0)
                got = values.cpu().numpy()
                out[part] = got
                np.minimum.at(thr[b], q, got * slack)
                if coarse is None:
                    done = np.isfinite(got)
                    self.counts["abandoned"] += int((~done).sum())
                    self.counts["rows"] += int(ran.sum()) * tx // (tx + ty - 1)
                    self.counts["exact"] += int(part.size)
                self.progress(weight * part.size * tx / total)
