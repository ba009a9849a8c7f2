"""FRD on ragged sets, exact and plain: the slow stand-in for the fast MARS FRD engine.

``frd_sets(predictions, targets, workers)`` returns, per sample, sum over the K predictions of the
minimum over the G ground truths of ``d = DTW(AU)/15 + DTW(VA) + DTW(expr)/8`` (full DTW, no window,
float32 inputs), which is what the organisers' ``compute_FRD`` sums before averaging. It runs
:func:`reactcli.metrics.dtw.dtw_single` on every distinct (prediction, ground truth) pair, with O(L)
memory per pair, on a thread pool (the kernel releases the GIL). The fast engine
(``reactcli.metrics.appropriateness.frd_sets``) has the same signature and results.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from reactcli.metrics.dtw import BLOCKS, WEIGHTS, dtw_single


def _distinct(series: np.ndarray) -> tuple[list[int], list[int]]:
    """First index of each distinct (L, 25) series, and which distinct one each series is."""
    first: list[int] = []
    seen: dict[bytes, int] = {}
    which = []
    for i, item in enumerate(series):
        key = item.tobytes()
        if key not in seen:
            seen[key] = len(first)
            first.append(i)
        which.append(seen[key])
    return first, which


def _blocks(series: np.ndarray) -> list[np.ndarray]:
    return [np.ascontiguousarray(series[:, a:b], dtype=np.float32) for a, b in BLOCKS]


def pair_distance(pred: np.ndarray, target: np.ndarray) -> float:
    """The weighted three-block DTW distance of one (L, 25) prediction and one (T, 25) ground truth."""
    return float(sum(w * dtw_single(p, t) for w, p, t in zip(WEIGHTS, _blocks(pred), _blocks(target), strict=True)))


def frd_sets(
    predictions: Sequence[np.ndarray], targets: Sequence[np.ndarray], workers: int | None = None
) -> np.ndarray:
    """Per-sample FRD sums, (N,) float64: sum_k min_j d(predictions[n][k], targets[n][j])."""
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} prediction sets for {len(targets)} ground-truth sets")
    jobs = []
    plans = []
    for n, (preds, gts) in enumerate(zip(predictions, targets, strict=True)):
        preds = np.asarray(preds, dtype=np.float32)
        gts = np.asarray(gts, dtype=np.float32)
        pred_first, pred_which = _distinct(preds)
        gt_first, _ = _distinct(gts)
        plans.append((n, pred_which, len(gt_first)))
        for k in pred_first:
            for j in gt_first:
                jobs.append((preds[k], gts[j]))
    workers = max(1, workers or os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        distances = list(pool.map(lambda job: pair_distance(*job), jobs))
    out = np.zeros(len(predictions))
    at = 0
    for n, pred_which, n_gts in plans:
        n_preds = max(pred_which) + 1 if pred_which else 0
        block = np.array(distances[at : at + n_preds * n_gts]).reshape(n_preds, n_gts)
        at += n_preds * n_gts
        best = block.min(axis=1) if n_gts else np.zeros(n_preds)
        out[n] = float(sum(best[w] for w in pred_which))
    return out
