"""FRD speed against the official tslearn loop, measured in the same run, and val-scale memory.

Cases (``--cases``, default all):

* ``val``: a synthetic val split of the real val size from ``react synth`` (562 pairs, N = 1124;
  real layout, real neighbour-matrix rule: the listeners whose speakers had the same latent
  behaviour, about 1/4 of all samples, so ~280 neighbours per speaker as on the real val split);
  FRD on the first ``--speakers`` speakers with all their neighbours. Making the data takes ~3 min.
* ``small``: the small-neighbourhood case (issue 24): 40 speakers with ~13 neighbours each (a
  synthetic val split of 26 pairs, N = 52, its first 40 speakers). Nothing much can be pruned.
* ``mars``: REACT 2025/2026 on MARS at val size: 571 samples, K = 10 predictions against 10 aligned
  ground truths each, lengths log-uniform in 58-3 000 frames with a tail of ``--mars-tail`` samples
  up to 20 000 (the longest exactly 20 000); synthetic emotion series (persistent binary AUs, random
  walk valence/arousal, softmax expressions).

Both 2024 cases score K = 10 reactions per speaker of two kinds, as does ``mars`` (``--mars-kinds``):

* ``model``: what a model that learned something produces: a real reaction of another appropriate
  sample (MARS: one of the sample's ground truths), shifted by 0-1 s, with noise on the continuous
  dims and 5 % of AU frames flipped;
* ``random``: U[0, 1) in every dim (the Random baseline; no neighbour is much better than another,
  the worst case for early abandoning).

The reference is the official loop: for every prediction x neighbour, three ``tslearn.metrics.dtw``
calls on float32 slices, on one core (its multiprocessing pool spreads the same work over
processes). Its cost per pair-cell does not depend on the data, so it is timed on the pairs of the
equality check (all neighbours of a few predictions), once before and once after our run (this
machine is shared: the two timings show the drift), and scaled to the whole workload by pairs
(2024, all 750 frames) or by pair-frames squared (MARS). Ours runs the whole workload on
``--workers`` threads. ``memory``: val-scale arrays through every metric, peak RSS.

    .venv/bin/python bench/metrics_bench.py [--cases val,small,mars,memory] [--workers N]
        [--pairs 562] [--speakers 64] [--check-items 4] [--mars-samples 571] [--mars-tail 6]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tslearn.metrics import dtw

from reactcli.data.synth import make_synthetic_dataset
from reactcli.metrics.appropriateness import frc, frd_per_reaction, frd_set_minima, neighbour_lists
from reactcli.metrics.diversity import frdiv, frdvs, frvar
from reactcli.metrics.evaluate import load_truth
from reactcli.metrics.synchrony import frsyn

BLOCKS = [(0, 15, 1 / 15), (15, 17, 1.0), (17, 25, 1 / 8)]
VAL_N, K = 1124, 10
CASES = ("val", "small", "mars", "memory")


def official_pair(pred: np.ndarray, gt: np.ndarray) -> float:
    """The official per-pair distance, written as the official script does."""
    res = 0.0
    for st, ed, weight in BLOCKS:
        res += weight * dtw(pred.astype(np.float32)[:, st:ed], gt.astype(np.float32)[:, st:ed])
    return res


class Clock:
    """Wall seconds and CPU seconds of this process (all threads) over a ``with`` block."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def timed_official(items: list[tuple[np.ndarray, list[np.ndarray]]]) -> tuple[list[float], Clock]:
    """The official minimum of each item (a prediction and its neighbours), and its clock."""
    with Clock() as clock:
        values = [min(official_pair(pred, gt) for gt in gts) for pred, gts in items]
    return values, clock


def model_like(truth_listener: np.ndarray, nbrs: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """K reactions for each speaker of ``nbrs``."""
    n, (t, d) = len(nbrs), truth_listener.shape[1:]
    preds = np.empty((n, K, t, d), dtype=np.float32)
    for i in range(n):
        others = nbrs[i][nbrs[i] != i]
        pool = others if others.size else nbrs[i]
        for k in range(K):
            preds[i, k] = perturbed(truth_listener[rng.choice(pool)], rng)
    return preds


def perturbed(src: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A model-like reaction from a real one: shifted by 0-1 s, noisy continuous dims, 5 % AU flips."""
    t, d = src.shape
    lag = int(rng.integers(0, min(26, t)))
    x = np.concatenate([np.repeat(src[:1], lag, axis=0), src[: t - lag]]).copy()
    x[:, 15:] += rng.normal(0, 0.05, (t, d - 15)).astype(np.float32)
    flip = rng.random((t, 15)) < 0.05
    x[:, :15] = np.where(flip, 1 - x[:, :15], x[:, :15])
    return x


def report(pairs: int, ours: Clock, before: Clock, after: Clock, scale: float, calls: int, worst: float) -> float:
    """Print the comparison (the official clocks scaled to the whole workload); returns its projected seconds.

    The machine may be shared: the CPU-time ratio (our threads' CPU seconds against the loop's) is
    what the code does per core; the wall ratio is what a user waits, on however many cores were free.
    """
    official_s = (before.wall + after.wall) / 2 * scale
    official_cpu = (before.cpu + after.cpu) / 2 * scale
    print(f"  official tslearn loop: {official_s:.1f} s projected on one core (timed on {calls} pairs: ", end="")
    print(f"{before.wall * scale:.1f} s before, {after.wall * scale:.1f} s after our run)")
    per_pair = ours.wall / pairs * 1e3
    print(f"  reactcli FRD         : {ours.wall:.2f} s on {ARGS.workers} thread(s) ({per_pair:.3f} ms/pair), ", end="")
    print(f"{ours.cpu:.2f} CPU s")
    print(
        f"  speed-up             : {official_s / ours.wall:.1f}x wall (whole workload, all threads), "
        f"{official_cpu / ours.cpu:.1f}x in CPU time"
    )
    print(f"  equal values         : max relative difference {worst:.2e} ({calls} pairs checked with tslearn)")
    return official_s


def search_line(counts: dict) -> None:
    print(
        f"  search               : {counts['pairs']} pairs, {counts['abandoned']} abandoned early, "
        f"{counts['rows'] / max(counts['full_rows'], 1):.1%} of the DTW rows computed (float32 search and "
        f"float64 together), {counts['exact']} float64 DTWs"
    )


def bench_frd(name: str, preds: np.ndarray, gt: np.ndarray, nbrs: list[np.ndarray], items_count: int) -> None:
    rng = np.random.default_rng(1)
    n = preds.shape[0]
    total_pairs = sum(len(nbrs[i]) for i in range(n)) * K
    official_pair(preds[0, 0, :20], gt[0, :20])  # tslearn's numba warm-up
    items = [(int(rng.integers(n)), int(rng.integers(K))) for _ in range(items_count)]
    work = [(preds[i, k], [gt[j] for j in nbrs[i]]) for i, k in items]
    calls = sum(len(nbrs[i]) for i, _ in items)
    want, before = timed_official(work)
    # numba compiled or loaded, every kernel: 32- and 16-lane search, float64 lanes, one pair at a time
    warm = [np.array([0, 1])] * (min(n, 40) - 2) + [np.array([2])] * 2
    frd_per_reaction(preds[:40, :, :60], gt[:, :60], warm, workers=ARGS.workers)
    with Clock() as clock:
        ours, counts = frd_per_reaction(preds, gt, nbrs, workers=ARGS.workers)
    _, after = timed_official(work)
    worst = max(abs(w - ours[i, k]) / w if w > 0 else abs(ours[i, k]) for (i, k), w in zip(items, want, strict=True))
    print(f"\n[{name}] N={n}, K={K}, {total_pairs} (speaker, reaction, neighbour) pairs = {3 * total_pairs} DTWs")
    official_s = report(total_pairs, clock, before, after, total_pairs / calls, calls, worst)
    search_line(counts)
    m_val = float(np.mean([len(x) for x in nbrs]))
    val_pairs = VAL_N * K * m_val
    print(
        f"  projected val (N={VAL_N}, K={K}, {m_val:.0f} neighbours/speaker): "
        f"official {official_s / total_pairs * val_pairs / 3600:.1f} h on one core, "
        f"reactcli {clock.wall / total_pairs * val_pairs / 60:.1f} min on {ARGS.workers} thread(s)"
    )


def synthetic_split(pairs: int) -> tuple[np.ndarray, list[np.ndarray]]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        make_synthetic_dataset(root, {"train": 0, "val": pairs, "test": 0}, video="none", seed=0)
        truth = load_truth(root, "val")
    return truth.listener, neighbour_lists(truth.neighbours)


def case_2024(pairs: int, speakers: int, label: str, items: int) -> None:
    listener, nbrs = synthetic_split(pairs)
    nbrs = nbrs[:speakers]
    rng = np.random.default_rng(0)
    bench_frd(f"{label}, model-like predictions", model_like(listener, nbrs, rng), listener, nbrs, items)
    random = rng.random((len(nbrs), K, 750, 25), dtype=np.float32)
    bench_frd(f"{label}, random U[0,1) predictions", random, listener, nbrs, items)


# ----------------------------------------------------------------------------- MARS
def emotion_series(rng: np.random.Generator, count: int, length: int) -> np.ndarray:
    """(count, length, 25) float32 emotion-like series: persistent 0/1 AUs, smooth VA, expression softmax."""
    x = np.empty((count, length, 25), dtype=np.float32)
    # an AU toggles with probability 2 % per frame, so it holds for ~1.7 s at 30 fps
    toggles = rng.random((count, length, 15)) < 0.02
    x[..., :15] = (np.cumsum(toggles, axis=1) + rng.integers(0, 2, (count, 1, 15))) % 2
    x[..., 15:17] = np.cumsum(rng.normal(0, 0.03, (count, length, 2)), axis=1).clip(-1, 1)
    logits = np.cumsum(rng.normal(0, 0.1, (count, length, 8)), axis=1)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    x[..., 17:] = e / e.sum(-1, keepdims=True)
    return x


def mars_lengths(rng: np.random.Generator, samples: int, tail: int) -> np.ndarray:
    """Log-uniform lengths in 58-3 000 frames, ``tail`` of them in 3 000-20 000 (the last exactly 20 000)."""
    body = np.exp(rng.uniform(np.log(58), np.log(3000), samples - tail))
    long = np.exp(rng.uniform(np.log(3000), np.log(20000), tail))
    if tail:
        long[-1] = 20000
    lengths = np.concatenate([body, long]).astype(np.int64)
    return lengths[rng.permutation(samples)]


def case_mars(samples: int, tail: int, kinds: list[str]) -> None:
    rng = np.random.default_rng(0)
    lengths = mars_lengths(rng, samples, tail)
    gts = [emotion_series(rng, 10, int(n)) for n in lengths]
    cells = float(sum(K * 10 * int(n) ** 2 for n in lengths))
    make: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "model": lambda gt: np.stack([perturbed(gt[rng.integers(10)], rng) for _ in range(K)]),
        "random": lambda gt: rng.random((K, *gt.shape[1:]), dtype=np.float32),
    }
    # the official loop on one prediction of a few samples of typical lengths (L x L matrices: <= 3 000)
    order = np.argsort(lengths)
    body = order[lengths[order] <= 3000]
    picks = [int(body[int(q * (body.size - 1))]) for q in (0.3, 0.5, 0.7, 0.9)]
    official_pair(gts[0][0, :20], gts[0][1, :20])  # tslearn's numba warm-up
    frd_set_minima([make["model"](gt[:, :60]) for gt in gts[:20]], [gt[:, :60] for gt in gts[:20]])  # compiled/loaded
    for kind in kinds:
        preds = [make[kind](gt) for gt in gts]
        work = [(preds[n][0], list(gts[n])) for n in picks]
        sample_cells = float(sum(10 * int(lengths[n]) ** 2 for n in picks))
        want, before = timed_official(work)
        with Clock() as clock:
            minima, counts = frd_set_minima(preds, gts, workers=ARGS.workers)
        _, after = timed_official(work)
        worst = max(abs(w - minima[n][0]) / w for n, w in zip(picks, want, strict=True))
        frd_value = float(np.mean([m.sum() for m in minima]))
        print(
            f"\n[MARS val-size, {kind} predictions] {samples} samples, K={K}, 10 ground truths, lengths "
            f"{lengths.min()}-{lengths.max()} (median {int(np.median(lengths))}, {tail} over 3 000), "
            f"{K * 10 * samples} pairs, {cells:.2e} pair-cells; FRD {frd_value:.3f}"
        )
        report(K * 10 * samples, clock, before, after, cells / sample_cells, 10 * len(picks), worst)
        search_line(counts)


# ----------------------------------------------------------------------------- memory
def bench_memory() -> None:
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
        ("FRD (8 speakers)", lambda: frd_per_reaction(preds[:8], listener, nbrs[:8], workers=ARGS.workers)),
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
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--pairs", type=int, default=VAL_N // 2, help="val: synthetic val rows (N = 2 x pairs)")
    parser.add_argument("--speakers", type=int, default=64, help="val: speakers whose FRD is timed")
    parser.add_argument("--check-items", type=int, default=4, help="val: predictions checked with tslearn")
    parser.add_argument("--small-items", type=int, default=12, help="small: predictions checked with tslearn")
    parser.add_argument("--mars-samples", type=int, default=571)
    parser.add_argument("--mars-tail", type=int, default=6, help="mars: samples longer than 3 000 frames")
    parser.add_argument("--mars-kinds", default="model", help="mars: model, random or model,random")
    global ARGS
    ARGS = parser.parse_args()
    cases = ARGS.cases.split(",")
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}")
    if "small" in cases:
        case_2024(26, 40, "small neighbourhoods", ARGS.small_items)
    if "mars" in cases:
        case_mars(ARGS.mars_samples, ARGS.mars_tail, ARGS.mars_kinds.split(","))
    if "val" in cases:
        case_2024(ARGS.pairs, ARGS.speakers, "val-size neighbourhoods", ARGS.check_items)
    if "memory" in cases:
        bench_memory()


ARGS = argparse.Namespace(workers=os.cpu_count() or 1)

if __name__ == "__main__":
    main()
