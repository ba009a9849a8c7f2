"""The plan of an FRD computation: which predictions meet which real reactions, and each pair's state.

:mod:`reactcli.metrics.nearest` plans and runs it on the CPU; :mod:`reactcli.metrics.dtw_torch` runs the
same plan on a torch device. Both read these types, so they live below both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reactcli.vocab import ACTION_UNITS, AU_DIMS


def au_row_ids(series: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Number the distinct AU rows (dims 0:15) of (N, T, 25) float32 series: ids (N, T), rows (U, 15).

    Real AUs are 0/1, so a split has a few hundred distinct rows; the kernels tabulate their cost
    once per row of a prediction instead of recomputing it in every cell.
    """
    rows = np.ascontiguousarray(series[..., AU_DIMS], dtype=np.float32).reshape(-1, len(ACTION_UNITS))
    keys = rows.view(np.dtype((np.void, rows.itemsize * len(ACTION_UNITS)))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return np.asarray(inverse, dtype=np.int64).reshape(series.shape[:2]), np.ascontiguousarray(rows[first])


@dataclass
class Block:
    """Predictions (R, Tq, 25) and real reactions (J, Tt, 25), float32, and per prediction its candidates.

    ``cands[r]`` holds distinct indices into ``targets``; an empty one gives NaN.
    """

    queries: np.ndarray
    targets: np.ndarray
    cands: list[np.ndarray]
    au_ids: np.ndarray = field(init=False, repr=False)
    au_rows: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.queries = np.ascontiguousarray(self.queries, dtype=np.float32)
        self.targets = np.ascontiguousarray(self.targets, dtype=np.float32)
        self.cands = [np.asarray(c, dtype=np.int64) for c in self.cands]
        if len(self.cands) != self.queries.shape[0]:
            raise ValueError(f"Block: {len(self.cands)} candidate lists for {self.queries.shape[0]} predictions")
        self.au_ids, self.au_rows = au_row_ids(self.targets)


@dataclass
class Pairs:
    """Every (prediction, candidate) pair of all blocks, flat and in block order, with its state."""

    block: np.ndarray
    query: np.ndarray  # index in its block
    target: np.ndarray  # index in its block
    owner: np.ndarray  # global prediction index
    rank: np.ndarray = field(init=False)
    value32: np.ndarray = field(init=False)  # float32 search distance (inf: not searched or abandoned)
    value64: np.ndarray = field(init=False)  # float64 distance (inf: not computed or abandoned)
    sums32: np.ndarray = field(init=False)  # (n, 3) float32 search path sums of finished pairs
    bound: np.ndarray = field(init=False)  # (n, 3) upper bounds of the three float64 path sums

    def __post_init__(self) -> None:
        n = self.block.size
        self.rank = np.zeros(n, dtype=np.int64)
        self.value32 = np.full(n, np.inf)
        self.value64 = np.full(n, np.inf)
        self.sums32 = np.full((n, 3), np.inf)
        self.bound = np.full((n, 3), np.inf)
