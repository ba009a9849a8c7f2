"""FRD on ragged sets (REACT 2025/2026 on MARS) and the torch wavefront, against tslearn's loop."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_metrics import emotion_like
from tslearn.metrics import dtw as tslearn_dtw

from reactcli.errors import ReactError
from reactcli.metrics.appropriateness import frd_per_reaction, frd_set_minima, frd_sets, neighbour_lists
from reactcli.metrics.dtw import margin
from reactcli.metrics.dtw_torch import batch_pairs, frd_wavefront, pair_bytes
from reactcli.metrics.frd_plan import Block
from reactcli.metrics.nearest import nearest

BLOCKS = [(0, 15, 1 / 15), (15, 17, 1.0), (17, 25, 1 / 8)]
ROOT = Path(__file__).resolve().parents[1]


def ref_d(x: np.ndarray, y: np.ndarray) -> float:
    """The official per-pair FRD distance: three tslearn DTWs on float32 inputs."""
    x, y = x.astype(np.float32), y.astype(np.float32)
    return sum(w * tslearn_dtw(x[:, a:b], y[:, a:b]) for a, b, w in BLOCKS)


def ref_sets(preds: list[np.ndarray], gts: list[np.ndarray]) -> list[np.ndarray]:
    """The official loop: per sample, per prediction, the minimum over every ground truth."""
    return [np.array([min(ref_d(p, g) for g in gt) for p in pred]) for pred, gt in zip(preds, gts, strict=True)]


def ragged_case(seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Samples of 1 to 130 frames, K = 3, G = 4, with an exact match, a duplicate and a near tie."""
    rng = np.random.default_rng(seed)
    lengths = [1, 2, 7, 58, 130]
    preds = [emotion_like(rng, (3, n)) for n in lengths]
    gts = [emotion_like(rng, (4, n)) for n in lengths]
    preds[3][0] = gts[3][1]  # an exact match: distance 0
    gts[4][2] = gts[4][0]  # two identical ground truths
    # a ground truth a hair's breadth from another: the float32 search cannot tell them apart,
    # float64 must decide between them
    gts[2][3] = gts[2][1]
    gts[2][3, 3, 15] += np.float32(1e-6)
    preds[2][1] = gts[2][1] + np.float32(0.01)
    preds[1][2, :, :15] = rng.random((2, 15))  # continuous AUs in a prediction
    return preds, gts


@pytest.mark.parametrize("seed", [0, 1])
def test_frd_sets_equals_the_tslearn_loop_on_ragged_samples(seed: int) -> None:
    preds, gts = ragged_case(seed)
    want = ref_sets(preds, gts)
    got, counts = frd_set_minima(preds, gts, workers=2)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)
    assert got[3][0] == 0.0
    np.testing.assert_allclose(frd_sets(preds, gts, workers=2), [w.sum() for w in want], rtol=1e-9)
    assert counts["pairs"] == sum(p.shape[0] * g.shape[0] for p, g in zip(preds, gts, strict=True))
    assert counts["exact"] < counts["pairs"]  # float64 only where float32 cannot decide


def test_frd_sets_pruning_changes_nothing_and_skips_work() -> None:
    """Model-like predictions (a noisy copy of one ground truth): most pairs abandoned, same minima."""
    rng = np.random.default_rng(4)
    preds, gts = [], []
    for n in (90, 240, 400):
        gt = emotion_like(rng, (10, n))
        pick = rng.integers(0, 10, 10)
        pred = gt[pick].copy()
        pred[..., 15:] += rng.normal(0, 0.05, pred[..., 15:].shape).astype(np.float32)
        preds.append(pred)
        gts.append(gt)
    pruned, counts = frd_set_minima(preds, gts, workers=2)
    full, full_counts = frd_set_minima(preds, gts, workers=2, early_abandon=False)
    for a, b in zip(pruned, full, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert full_counts["exact"] == full_counts["pairs"] == 300
    assert counts["abandoned"] > 200 and counts["rows"] < 0.5 * counts["full_rows"]
    sub = [preds[0][:2]], [gts[0]]
    np.testing.assert_allclose(frd_set_minima(*sub)[0][0], ref_sets(*sub)[0], rtol=1e-9)


def test_identical_predictions_are_computed_once_and_no_samples_give_nothing() -> None:
    rng = np.random.default_rng(10)
    gt = emotion_like(rng, (4, 30))
    pred = np.repeat(emotion_like(rng, (1, 30)), 10, axis=0)  # a baseline's K copies
    pred[7] = gt[2]
    (got,), counts = frd_set_minima([pred], [gt])
    assert counts["pairs"] == 2 * 4 and got[7] == 0.0
    np.testing.assert_allclose(got[[0, 9]], ref_sets([pred[:1]], [gt])[0].repeat(2), rtol=1e-9)
    assert frd_sets([], []).shape == (0,)


def test_frd_sets_accepts_ground_truths_of_another_length() -> None:
    """Without the aligner's equal lengths there is no diagonal bound, but DTW is still defined."""
    rng = np.random.default_rng(9)
    preds, gts = [emotion_like(rng, (2, 20))], [emotion_like(rng, (3, 33))]
    np.testing.assert_allclose(frd_set_minima(preds, gts)[0][0], ref_sets(preds, gts)[0], rtol=1e-9)


@pytest.mark.parametrize(
    "preds,gts,message",
    [
        ([np.zeros((2, 5, 25))], [], "1 prediction sets but 0 ground-truth sets"),
        ([np.zeros((2, 5, 24))], [np.zeros((1, 5, 25))], "FRD sample 0: predictions have shape (2, 5, 24)"),
        ([np.zeros((2, 5, 25))], [np.zeros((0, 5, 25))], "FRD sample 0: ground truths have shape (0, 5, 25)"),
        ([np.zeros((2, 5, 25)), np.full((1, 4, 25), np.nan)], [np.zeros((1, 5, 25))] * 2, "FRD sample 1: pred"),
        ([np.zeros((1, 5, 25))], [np.full((1, 5, 25), 1e39)], "ground truths contain NaN or inf values"),
    ],
)
def test_frd_sets_bad_input_is_one_line_naming_the_sample(preds: list, gts: list, message: str) -> None:
    with pytest.raises(ReactError) as err:
        frd_sets(preds, gts)
    assert message in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------- torch wavefront (the CUDA path, run on the CPU)
@pytest.mark.parametrize("tx,ty", [(1, 1), (1, 4), (6, 1), (5, 9), (40, 40)])
def test_wavefront_equals_tslearn(tx: int, ty: int) -> None:
    rng = np.random.default_rng(tx * 10 + ty)
    x, y = emotion_like(rng, (5, tx)), emotion_like(rng, (5, ty))
    got, ran = frd_wavefront(torch.from_numpy(x), torch.from_numpy(y))
    want = [ref_d(a, b) for a, b in zip(x, y, strict=True)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    assert got.dtype == torch.float64 and (ran == tx + ty - 1).all()


def test_wavefront_abandons_only_pairs_above_their_threshold() -> None:
    rng = np.random.default_rng(2)
    x, y = emotion_like(rng, (12, 80)), emotion_like(rng, (12, 80))
    full, _ = frd_wavefront(torch.from_numpy(x), torch.from_numpy(y))
    thr = full.clone()
    thr[1::2] = full[1::2] / 3  # these cannot finish below their threshold
    got, ran = frd_wavefront(torch.from_numpy(x), torch.from_numpy(y), thr, check_every=4)
    np.testing.assert_array_equal(got[::2].numpy(), full[::2].numpy())  # at the threshold: never dropped
    assert torch.isinf(got[1::2]).all() and (ran[1::2] < 159).all()


def test_torch_engine_equals_numba_and_tslearn_for_2024_and_ragged_sets() -> None:
    rng = np.random.default_rng(6)
    gt = emotion_like(rng, (6, 35))
    preds = emotion_like(rng, (6, 3, 35))
    preds[2, 1] = gt[4]
    a = rng.random((6, 6)) < 0.5
    np.fill_diagonal(a, True)
    nbrs = neighbour_lists(a)
    cpu, _ = frd_per_reaction(preds, gt, nbrs, workers=2)
    dev, counts = frd_per_reaction(preds, gt, nbrs, device="torch-cpu")
    want = np.array([[min(ref_d(preds[n, k], gt[j]) for j in nbrs[n]) for k in range(3)] for n in range(6)])
    np.testing.assert_allclose(dev, cpu, rtol=1e-12)
    np.testing.assert_allclose(dev, want, rtol=1e-9, atol=1e-12)
    assert counts["exact"] == counts["pairs"] and counts["abandoned"] > 0  # every DTW in float64
    ragged_p, ragged_g = ragged_case(3)
    got, _ = frd_set_minima(ragged_p, ragged_g, device="torch-cpu")
    for g, w in zip(got, ref_sets(ragged_p, ragged_g), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)


def test_torch_engine_batches_by_memory_and_long_pairs_match_the_cpu() -> None:
    """A 1 500-frame sample through batches of 3 pairs: O(L) state per pair, same values as numba."""
    rng = np.random.default_rng(12)
    pred, gt = emotion_like(rng, (2, 1500)), emotion_like(rng, (3, 1500))
    memory = 3 * pair_bytes(1500, 1500) + 1
    assert batch_pairs(1500, 1500, torch.device("cpu"), memory) == 3
    (dev,), _ = nearest([Block(pred, gt, [np.arange(3)] * 2)], device="torch-cpu", memory=memory)
    (cpu,), _ = nearest([Block(pred, gt, [np.arange(3)] * 2)], workers=2)
    np.testing.assert_allclose(dev, cpu, rtol=1e-12)


# ---------------------------------------------------------------- a 20 000-frame pair
LONG_PAIR = """
import json
import numpy as np
from reactcli.metrics.appropriateness import frd_set_minima
from reactcli.metrics.dtw import BLOCKS, WEIGHTS, dtw_single
rng = np.random.default_rng(0)
n = 20000
x = np.empty((1, n, 25), np.float32); y = np.empty((1, n, 25), np.float32)
for s in (x, y):
    s[..., :15] = rng.random((1, n, 15)) < 0.3
    s[..., 15:] = rng.random((1, n, 10))
frd_set_minima([x[:, :40]], [y[:, :40]])  # compiled (or loaded) before measuring
def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets the peak (VmHWM) to the current resident size
before = status("VmRSS")
(got,), counts = frd_set_minima([x], [y], workers=1)
peak = status("VmHWM")
want = sum(w * dtw_single(x[0, :, a:b], y[0, :, a:b]) for (a, b), w in zip(BLOCKS, WEIGHTS))
print(json.dumps({"growth": peak - before, "got": float(got[0]), "want": float(want)}))
"""


@pytest.mark.slow
def test_a_20000_frame_pair_needs_no_length_squared_memory() -> None:
    """An L x L float64 matrix would be 3.2 GB; the row-by-row DP needs a few MB."""
    run = subprocess.run(
        [sys.executable, "-c", LONG_PAIR], capture_output=True, text=True, cwd=ROOT, timeout=900, check=True
    )
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["growth"] < 200 * 2**20
    assert report["got"] == pytest.approx(report["want"], rel=1e-12)
    assert margin(20000, 20000, np.float64) < 1e-11
