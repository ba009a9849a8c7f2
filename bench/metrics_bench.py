"""FRD speed against the official tslearn loop, measured in the same run, and val-scale memory.

Workload: a synthetic val split of the real val size from ``react synth`` (562 pairs, N = 1124;
real layout, real neighbour-matrix rule: the listeners whose speakers had the same latent
behaviour, about 1/4 of all samples, so ~280 neighbours per speaker as on the real val split);
FRD is timed on the first ``--speakers`` speakers with all their neighbours, K = 10 reactions
per speaker of two kinds:

* ``model``: what a model that learned something produces: the real reaction of another
  appropriate sample, shifted by 0-1 s, with noise on the continuous dims and 5% of AU frames flipped;
* ``random``: U[0, 1) in every dim (the Random baseline; no neighbour is much better than another,
  the worst case for early abandoning).

The reference is the official loop: for every speaker x reaction x neighbour, three
``tslearn.metrics.dtw`` calls on float32 slices, on one core (its multiprocessing pool spreads the
same work over processes). Its cost per pair does not depend on the data, so it is timed on the
pairs used for the equality check (all neighbours of a few (speaker, reaction) items) and scaled
to the whole workload. Ours runs the whole workload on all cores. Making the dataset takes ~3 min.

    .venv/bin/python bench/metrics_bench.py [--pairs 562] [--speakers 128] [--check-items 4] [--workers N]
                                            [--skip-memory]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from tslearn.metrics import dtw

from reactcli.data.synth import make_synthetic_dataset
from reactcli.metrics.appropriateness import frc, frd_per_reaction, neighbour_lists
from reactcli.metrics.diversity import frdiv, frdvs, frvar
from reactcli.metrics.evaluate import load_truth
from reactcli.metrics.synchrony import frsyn

BLOCKS = [(0, 15, 1 / 15), (15, 17, 1.0), (17, 25, 1 / 8)]
VAL_N, K = 1124, 10


def official_pair(pred: np.ndarray, gt: np.ndarray) -> float:
    """The official per-pair distance, written as the official script does."""
    res = 0.0
    for st, ed, weight in BLOCKS:
        res += weight * dtw(pred.astype(np.float32)[:, st:ed], gt.astype(np.float32)[:, st:ed])
    return res


def model_like(truth_listener: np.ndarray, nbrs: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """K reactions for each speaker of ``nbrs``."""
    n, (t, d) = len(nbrs), truth_listener.shape[1:]
    preds = np.empty((n, K, t, d), dtype=np.float32)
    for i in range(n):
        others = nbrs[i][nbrs[i] != i]
        pool = others if others.size else nbrs[i]
        for k in range(K):
            src = truth_listener[rng.choice(pool)]
            lag = int(rng.integers(0, 26))
            x = np.concatenate([np.repeat(src[:1], lag, axis=0), src[: t - lag]]).copy()
            x[:, 15:] += rng.normal(0, 0.05, (t, d - 15)).astype(np.float32)
            flip = rng.random((t, 15)) < 0.05
            x[:, :15] = np.where(flip, 1 - x[:, :15], x[:, :15])
            preds[i, k] = x
    return preds


def bench_frd(name: str, preds: np.ndarray, gt: np.ndarray, nbrs: list[np.ndarray], args: argparse.Namespace) -> None:
    rng = np.random.default_rng(1)
    n = preds.shape[0]
    total_pairs = sum(len(nbrs[i]) for i in range(n)) * K
    # ours on the whole workload (numba compiled and cached by a warm-up call)
    frd_per_reaction(preds[:1, :1, :50], gt[:, :50], [np.array([0])], workers=1)
    start = time.perf_counter()
    ours, counts = frd_per_reaction(preds, gt, nbrs, workers=args.workers)
    ours_s = time.perf_counter() - start
    # the official loop on a few (speaker, reaction) items, all their neighbours
    official_pair(preds[0, 0, :20], gt[0, :20])  # tslearn's numba warm-up
    items = [(int(rng.integers(n)), int(rng.integers(K))) for _ in range(args.check_items)]
    worst, calls = 0.0, 0
    start = time.perf_counter()
    for i, k in items:
        ref = min(official_pair(preds[i, k], gt[j]) for j in nbrs[i])
        calls += len(nbrs[i])
        worst = max(worst, abs(ref - ours[i, k]) / max(ref, 1e-12) if ref > 0 else abs(ours[i, k]))
    official_items_s = time.perf_counter() - start
    official_per_pair = official_items_s / calls
    official_s = official_per_pair * total_pairs
    print(f"\n[{name}] N={n}, K={K}, {total_pairs} (speaker, reaction, neighbour) pairs = {3 * total_pairs} DTWs")
    per_pair_ms = official_per_pair * 1e3
    print(f"  official tslearn loop: {per_pair_ms:.2f} ms/pair (timed on {calls} pairs) -> {official_s:.1f} s")
    ours_ms = ours_s / total_pairs * 1e3
    print(f"  reactcli FRD         : {ours_s:.2f} s on {args.workers} thread(s) ({ours_ms:.3f} ms/pair)")
    print(f"  speed-up             : {official_s / ours_s:.1f}x (whole workload, all threads)")
    print(f"  equal values         : max relative difference {worst:.2e} over {len(items)} items ({calls} pairs)")
    print(
        f"  search               : {counts['pairs']} pairs, {counts['abandoned']} abandoned early, "
        f"{counts['rows'] / counts['full_rows']:.1%} of the DTW rows computed, {counts['exact']} float64 DTWs"
    )
    m_val = float(np.mean([len(x) for x in nbrs]))
    val_pairs = VAL_N * K * m_val
    print(
        f"  projected val (N={VAL_N}, K={K}, {m_val:.0f} neighbours/speaker): "
        f"official {official_per_pair * val_pairs / 3600:.1f} h on one core, "
        f"reactcli {ours_s / total_pairs * val_pairs / 60:.1f} min on {args.workers} thread(s)"
    )


def bench_memory(args: argparse.Namespace) -> None:
    """Val-scale inputs through every metric but FRD/FRC (those on a slice); peak RSS of the process."""
    rng = np.random.default_rng(0)
    preds = rng.random((VAL_N, K, 750, 25), dtype=np.float32)  # 843 MB
    listener = rng.random((VAL_N, 750, 25), dtype=np.float32)
    speaker = rng.random((VAL_N, 750, 25), dtype=np.float32)
    a = rng.random((VAL_N, VAL_N)) < 0.02
    np.fill_diagonal(a, True)
    nbrs = neighbour_lists(a)
    timings = {}
    for name, fn in [
        ("FRDiv", lambda: frdiv(preds)),
        ("FRVar", lambda: frvar(preds)),
        ("FRDvs", lambda: frdvs(preds)),
        ("FRSyn", lambda: frsyn(preds, speaker)),
        ("FRC", lambda: frc(preds, listener, nbrs)),
        ("FRD (8 speakers)", lambda: frd_per_reaction(preds[:8], listener, nbrs[:8], workers=args.workers)),
    ]:
        start = time.perf_counter()
        fn()
        timings[name] = time.perf_counter() - start
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"\n[memory] val-scale random inputs (N={VAL_N}, K={K}, 750 x 25; 2% neighbour density for FRC)")
    print("  wall: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    print(f"  peak RSS {peak_gib:.2f} GiB (limit 4 GiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=VAL_N // 2, help="synthetic val rows (N = 2 x pairs)")
    parser.add_argument("--speakers", type=int, default=128, help="speakers whose FRD is timed (all neighbours)")
    parser.add_argument("--check-items", type=int, default=4, help="(speaker, reaction) items checked with tslearn")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        make_synthetic_dataset(root, {"train": 0, "val": args.pairs, "test": 0}, video="none", seed=0)
        truth = load_truth(root, "val")
    nbrs = neighbour_lists(truth.neighbours)[: args.speakers]
    rng = np.random.default_rng(0)
    bench_frd("model-like predictions", model_like(truth.listener, nbrs, rng), truth.listener, nbrs, args)
    random = rng.random((len(nbrs), K, 750, 25), dtype=np.float32)
    bench_frd("random U[0,1) predictions", random, truth.listener, nbrs, args)
    if not args.skip_memory:
        bench_memory(args)


if __name__ == "__main__":
    main()
