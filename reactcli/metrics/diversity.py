"""FRDiv, FRDvs and FRVar: how much the reactions differ from each other and move over time.

Pairwise sums of squared distances use ``sum_{a,b} ||x_a - x_b||^2 = 2 M sum_a ||x_a - mean||^2``
(M items), in float64, one speaker or one reaction slot at a time, so that val-scale inputs
(1124 x 10 x 750 x 25) never need an N x N matrix or a float64 copy of the whole array (the
official code builds (10, N, N) with ``torch.cdist``).
"""

from __future__ import annotations

import numpy as np

#: Speakers converted to float64 at once: 128 x 10 x 750 x 25 x 8 B = 192 MB (plus numpy's temporaries).
CHUNK = 128


def _pairwise_sq_sum(items: np.ndarray) -> float:
    """sum over ordered pairs (a, b) of ||items[a] - items[b]||^2, items flattened (M, L)."""
    flat = np.asarray(items, dtype=np.float64).reshape(items.shape[0], -1)
    centred = flat - flat.mean(axis=0)
    return 2.0 * flat.shape[0] * float(np.sum(centred * centred))


def frdiv(preds: np.ndarray) -> float:
    """FRDiv = mean_n sum_{i,j} ||P[n,i] - P[n,j]||^2 / (K (K-1) L), L = T * 25; 0 when K = 1."""
    n_total, k_total = preds.shape[:2]
    if k_total < 2:
        return 0.0
    length = int(np.prod(preds.shape[2:]))
    total = sum(_pairwise_sq_sum(preds[n]) for n in range(n_total))
    return total / (k_total * (k_total - 1) * length) / n_total


def frdvs(preds: np.ndarray) -> float:
    """FRDvs = sum_k sum_{a,b} ||P[a,k] - P[b,k]||^2 / (N (N-1) K L): diversity across speakers."""
    n_total, k_total = preds.shape[:2]
    if n_total < 2:
        return 0.0
    length = int(np.prod(preds.shape[2:]))
    total = 0.0
    for k in range(k_total):
        # two passes over speaker chunks: the mean, then the centred sum of squares
        mean = np.zeros(length)
        for start in range(0, n_total, CHUNK):
            mean += np.asarray(preds[start : start + CHUNK, k], dtype=np.float64).reshape(-1, length).sum(axis=0)
        mean /= n_total
        squares = 0.0
        for start in range(0, n_total, CHUNK):
            block = np.asarray(preds[start : start + CHUNK, k], dtype=np.float64).reshape(-1, length) - mean
            squares += float(np.sum(block * block))
        total += 2.0 * n_total * squares
    return total / (n_total * (n_total - 1) * k_total * length)


def frvar(preds: np.ndarray) -> float:
    """FRVar = mean over (n, k, d) of the unbiased (T-1) variance over time."""
    n_total = preds.shape[0]
    total = 0.0
    count = 0
    for start in range(0, n_total, CHUNK):
        block = np.asarray(preds[start : start + CHUNK], dtype=np.float64)
        var = block.var(axis=-2, ddof=1)
        total += float(var.sum())
        count += var.size
    return total / count
