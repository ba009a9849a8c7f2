"""The metric math against slow, obviously-correct references (tslearn DTW, numpy corrcoef, loops)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from tslearn.metrics import dtw as tslearn_dtw

from reactcli.metrics.appropriateness import ccc_matrix, frc, frd, frd_per_reaction, neighbour_lists
from reactcli.metrics.diversity import frdiv, frdvs, frvar
from reactcli.metrics.dtw import (
    FLOAT32,
    FLOAT64,
    LANES,
    POPCOUNT15,
    SEARCH,
    _aligned,
    diagonal_bounds,
    dtw_single,
    exact_pair,
    lag_bounds,
    margin,
)
from reactcli.metrics.frd_plan import Block, au_row_ids
from reactcli.metrics.nearest import nearest
from reactcli.metrics.realism import frechet_distance, frechet_distance_features
from reactcli.metrics.synchrony import frsyn, lag_correlations

BLOCKS = [(0, 15, 1 / 15), (15, 17, 1.0), (17, 25, 1 / 8)]


# ---------------------------------------------------------------- references (slow and plain)
def ref_d(x: np.ndarray, y: np.ndarray) -> float:
    """The official per-pair FRD distance: three tslearn DTWs on float32 inputs."""
    x, y = x.astype(np.float32), y.astype(np.float32)
    return sum(w * tslearn_dtw(x[:, a:b], y[:, a:b]) for a, b, w in BLOCKS)


def ref_frd(preds: np.ndarray, gt: np.ndarray, nbrs: list[np.ndarray]) -> np.ndarray:
    return np.array(
        [[min(ref_d(preds[n, k], gt[j]) for j in nbrs[n]) for k in range(preds.shape[1])] for n in range(len(nbrs))]
    )


def ref_ccc(y: np.ndarray, x: np.ndarray) -> float:
    y, x = y.astype(np.float64), x.astype(np.float64)
    values = []
    for d in range(y.shape[1]):
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            rho = np.corrcoef(y[:, d], x[:, d])[0, 1]
        rho = 0.0 if np.isnan(rho) else float(np.clip(rho, -1, 1))
        num = 2 * rho * y[:, d].std() * x[:, d].std()
        den = y[:, d].var() + x[:, d].var() + (y[:, d].mean() - x[:, d].mean()) ** 2 + 1e-8
        values.append(num / den)
    return float(np.mean(values))


def ref_frc(preds: np.ndarray, gt: np.ndarray, nbrs: list[np.ndarray]) -> float:
    total = 0.0
    for n, idx in enumerate(nbrs):
        total += sum(max(ref_ccc(gt[j], preds[n, k]) for j in idx) for k in range(preds.shape[1]))
    return total / len(nbrs)


def shift(x: np.ndarray, s: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    if lag > 0:
        return x[lag:], s[:-lag]
    if lag < 0:
        return x[:lag], s[-lag:]
    return x, s


def ref_r(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """(99, D) corrcoef per lag and dim, NaN for constant windows (numpy's own behaviour)."""
    out = np.empty((99, x.shape[1]))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for li, lag in enumerate(range(-49, 50)):
            for d in range(x.shape[1]):
                a, b = shift(x[:, d].astype(np.float64), s[:, d].astype(np.float64), lag)
                out[li, d] = np.corrcoef(a, b)[0, 1]
    return out


def ref_frsyn(preds: np.ndarray, speaker: np.ndarray) -> tuple[float, float | None, int]:
    official, corrected, excluded = [], [], 0
    for n in range(preds.shape[0]):
        rs = ref_r(preds[n, 0], speaker[n]).mean(axis=1)  # NaN if any dim is NaN
        nan = np.flatnonzero(np.isnan(rs))
        official.append(abs(49 - (nan[0] if nan.size else int(np.argmax(rs)))))
        for k in range(preds.shape[1]):
            r = ref_r(preds[n, k], speaker[n])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                per_lag = np.nanmean(r, axis=1)
            if np.isnan(per_lag).all():
                excluded += 1
                continue
            corrected.append(abs(49 - int(np.nanargmax(per_lag))))
    return float(np.mean(official)), (float(np.mean(corrected)) if corrected else None), excluded


def emotion_like(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random series shaped like REACT emotion: binary AUs, valence/arousal in [-1, 1], probabilities."""
    x = np.empty((*shape, 25), dtype=np.float32)
    x[..., :15] = rng.random((*shape, 15)) < 0.3
    x[..., 15:17] = np.cumsum(rng.normal(0, 0.05, (*shape, 2)), axis=-2).clip(-1, 1)
    logits = rng.normal(0, 1, (*shape, 8))
    x[..., 17:] = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return x


# ---------------------------------------------------------------- DTW
def column_distances(col: np.ndarray, reactions: np.ndarray, lanes: int, sample: np.ndarray, **kw) -> np.ndarray:
    """One column-kernel call: FRD distance of every reaction to ``col``, no thresholds unless given."""
    ids, rows = au_row_ids(col[None])
    items = kw.pop("items", np.arange(reactions.shape[0]))
    thr = kw.pop("thr", np.full(reactions.shape[0], np.inf))
    out, sums = np.full(items.size, np.inf), np.full((items.size, 3), np.inf)
    m = margin(reactions.shape[1], col.shape[0], sample.dtype)
    stats = SEARCH[lanes](col, ids[0], rows, reactions, items, thr, kw.pop("check", 0), m, sample, out, sums)
    np.testing.assert_array_equal(np.isfinite(sums).all(axis=1), np.isfinite(out))  # sums of finished pairs
    return out if not kw.pop("stats", False) else (out, stats)


@pytest.mark.parametrize("n,m,c", [(1, 1, 3), (1, 6, 2), (5, 1, 15), (2, 2, 8), (2, 3, 1), (7, 13, 15), (31, 17, 2)])
def test_dtw_single_equals_tslearn_on_edge_lengths(n: int, m: int, c: int) -> None:
    rng = np.random.default_rng(n * 100 + m)
    a = rng.normal(size=(n, c)).astype(np.float32)
    b = rng.normal(size=(m, c)).astype(np.float32)
    assert dtw_single(a, b) == pytest.approx(tslearn_dtw(a, b), rel=1e-13, abs=1e-12)


def test_dtw_single_equals_tslearn_at_750_frames() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random((750, 15), dtype=np.float32), rng.random((750, 15), dtype=np.float32)
    assert dtw_single(a, b) == pytest.approx(tslearn_dtw(a, b), rel=1e-13)


@pytest.mark.parametrize("lanes", LANES)
@pytest.mark.parametrize("tx,ty", [(1, 1), (2, 5), (9, 4), (40, 40)])
def test_float64_kernel_equals_three_tslearn_dtws(lanes: int, tx: int, ty: int) -> None:
    """Float64 costs and sums (tslearn's arithmetic), more reactions than lanes (lanes refilled)."""
    rng = np.random.default_rng(tx + 7 * ty + lanes)
    reactions = emotion_like(rng, (lanes + 5, tx))
    reactions[3, :, :15] = rng.random((tx, 15))  # a prediction with continuous AUs
    col = emotion_like(rng, (ty,))
    got = column_distances(col, reactions, lanes, FLOAT64)
    want = np.array([ref_d(x, col) for x in reactions])
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("lanes", LANES)
@pytest.mark.parametrize("tx,ty,au_values", [(1, 1, "binary"), (3, 8, "binary"), (40, 40, "binary"), (40, 40, "real")])
def test_float32_search_is_within_its_margin_of_tslearn(lanes: int, tx: int, ty: int, au_values: str) -> None:
    """More reactions than lanes, so lanes are refilled; continuous AUs make every column row distinct."""
    rng = np.random.default_rng(tx * 3 + ty)
    gts = emotion_like(rng, (2, ty))
    if au_values == "real":
        gts[..., :15] = rng.random(gts[..., :15].shape)
    reactions = emotion_like(rng, (lanes + 9, tx))
    items = rng.permutation(reactions.shape[0])
    out, stats = column_distances(gts[1], reactions, lanes, FLOAT32, items=items, stats=True)
    want = np.array([ref_d(reactions[i], gts[1]) for i in items])
    np.testing.assert_allclose(out, want, rtol=margin(tx, ty, np.float32))
    assert stats.tolist() == [items.size, 0, items.size * tx]


def test_float32_rounding_bound_holds_on_long_series() -> None:
    """The margin is a bound of the float32 search error: checked at 600 frames on varied data."""
    rng = np.random.default_rng(21)
    col = emotion_like(rng, (600,))
    reactions = emotion_like(rng, (16, 600))
    reactions[8:] = rng.random((8, 600, 25), dtype=np.float32) * 3  # large costs: bigger rounding
    v32 = column_distances(col, reactions, 16, FLOAT32)
    v64 = column_distances(col, reactions, 16, FLOAT64)
    worst = np.max(np.abs(v32 - v64) / v64)
    assert 0 < worst <= margin(600, 600, np.float32)


def test_search_kernel_abandons_only_pairs_that_cannot_win() -> None:
    rng = np.random.default_rng(3)
    gt = emotion_like(rng, (1, 60))
    reactions = emotion_like(rng, (40, 60))
    full = column_distances(gt[0], reactions, 32, FLOAT32)
    # each reaction's threshold: just above its own distance for half of them (they must finish,
    # exactly as without abandoning), half of it for the others (they cannot win: abandoned)
    items = np.arange(40)
    m = margin(60, 60, np.float32)
    thr = np.where(items % 2 == 0, full * (1 + m), full / 2)
    got, stats = column_distances(gt[0], reactions, 32, FLOAT32, thr=thr.copy(), check=4, stats=True)
    np.testing.assert_array_equal(got[::2], full[::2])
    losers = got[1::2]
    assert np.isinf(losers).sum() == stats[1] >= 15
    np.testing.assert_array_equal(losers[np.isfinite(losers)], full[1::2][np.isfinite(losers)])
    assert stats[2] < 20 * 60 + 0.7 * 20 * 60  # the winners in full, the losers stopped well before the end


def test_diagonal_bound_is_the_diagonal_path_and_bounds_the_distance() -> None:
    rng = np.random.default_rng(8)
    x = emotion_like(rng, (5, 30))
    y = emotion_like(rng, (3, 30))
    q, t = np.repeat(np.arange(5), 3), np.tile(np.arange(3), 5)
    out, sums = np.empty(15), np.empty((15, 3))
    diagonal_bounds(x, y, q, t, out, sums)
    by_hand = [
        sum(w * np.sqrt(((x[a, :, lo:hi].astype(np.float64) - y[b, :, lo:hi]) ** 2).sum()) for lo, hi, w in BLOCKS)
        for a, b in zip(q, t, strict=True)
    ]
    np.testing.assert_allclose(out, by_hand, rtol=1e-12)
    assert all(out[e] >= ref_d(x[a], y[b]) for e, (a, b) in enumerate(zip(q, t, strict=True)))
    np.testing.assert_allclose(sums[:, 1], ((x[q, :, 15:17].astype(np.float64) - y[t, :, 15:17]) ** 2).sum((1, 2)))


def test_lagged_diagonal_paths_bound_each_block_and_find_a_shift() -> None:
    rng = np.random.default_rng(17)
    y = emotion_like(rng, (80,))
    x = np.concatenate([y[:1].repeat(6, axis=0), y[:-6]])  # y, 6 frames late
    x[:, 15:] += rng.normal(0, 0.01, (80, 10)).astype(np.float32)
    diag, lagged, full = np.empty(3), np.empty(3), np.empty(3)
    lag_bounds(x, y, 0, diag)
    lag_bounds(x, y, 8, lagged)
    exact_pair(x, y, np.full(3, np.inf), full, POPCOUNT15)
    by_hand = [((x[:, lo:hi].astype(np.float64) - y[:, lo:hi]) ** 2).sum() for lo, hi, _ in BLOCKS]
    np.testing.assert_allclose(diag, by_hand)
    assert (lagged >= full * (1 - 1e-12)).all() and (lagged <= diag).all()  # one rounding apart at most
    assert lagged[0] < 0.5 * diag[0]  # the shift by 6 frames is one of the paths
    for n in (1, 2, 5):  # lags longer than the series are cut to it
        lag_bounds(x[:n], y[:n], 8, lagged)
        exact_pair(x[:n], y[:n], np.full(3, np.inf), full, POPCOUNT15)
        assert (lagged >= full * (1 - 1e-12)).all()


@pytest.mark.parametrize("kind", ["model", "random"])
def test_pruned_exact_pair_is_the_full_dp_bit_for_bit(kind: str) -> None:
    """PrunedDTW with the pair's own path sums as bounds: same sums, and (near a path) fewer cells."""
    rng = np.random.default_rng(13)
    for tx, ty in [(1, 1), (1, 7), (6, 1), (3, 5), (90, 90), (120, 80)]:
        y = emotion_like(rng, (ty,))
        x = emotion_like(rng, (tx,)) if kind == "random" or tx != ty else y + np.float32(0.02)
        full, bounded = np.empty(3), np.empty(3)
        cells_full = exact_pair(x, y, np.full(3, np.inf), full, POPCOUNT15)
        cells = exact_pair(x, y, full.copy(), bounded, POPCOUNT15)
        np.testing.assert_array_equal(bounded, full)
        want = [tslearn_dtw(x[:, lo:hi], y[:, lo:hi]) ** 2 for lo, hi, _ in BLOCKS]
        np.testing.assert_allclose(full, want, rtol=1e-13)
        assert cells_full == tx * ty and cells <= cells_full
        if kind == "model" and tx == ty == 90:
            assert cells < 0.5 * cells_full
    # a bound below the path sum: nothing meets it (the engine then recomputes without bounds)
    exact_pair(x, y, full * 0.5, bounded, POPCOUNT15)
    assert np.isinf(bounded).all()


def test_nearest_equals_the_plain_minimum_and_mostly_skips_work() -> None:
    """Ranked head, abandoning search and float64 near the minimum: the exact minimum, most rows skipped."""
    rng = np.random.default_rng(11)
    base = np.cumsum(rng.normal(0, 0.1, (60, 25)), axis=0).astype(np.float32)
    gts = base[None] + rng.normal(0, 0.3, (50, 60, 25)).astype(np.float32)
    gts[..., :15] = gts[..., :15] > 0.5
    reactions = gts[[7, 30]] + rng.normal(0, 0.02, (2, 60, 25)).astype(np.float32)
    cands = [np.arange(50), np.arange(20, 50)]
    (got,), counts = nearest([Block(reactions, gts, cands)], workers=2)
    want = [min(ref_d(reactions[a], gts[j]) for j in cands[a]) for a in range(2)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert counts["pairs"] == 80 and counts["abandoned"] > 30 and counts["rows"] < 0.7 * counts["full_rows"]
    assert counts["exact"] <= 4  # float64 only where the float32 search could not decide


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_buffers_start_on_a_cache_line(dtype: type) -> None:
    """Numba's small arrays start mid-line; the kernels' buffers must not (AVX-512 split loads)."""
    for rows, cols in [(1, 96), (10, 32), (7, 48), (751, 96)]:
        buf = _aligned(rows, cols, np.empty(0, dtype=dtype), 2.5)
        assert buf.shape == (rows, cols) and buf.dtype == dtype and buf.flags.c_contiguous
        assert buf.ctypes.data % 64 == 0
        assert (buf == 2.5).all()


# ---------------------------------------------------------------- FRD and FRC
@pytest.mark.parametrize("n_samples,k,density", [(5, 3, 0.5), (4, 17, 0.6), (40, 2, 0.9)])
def test_frd_equals_tslearn_reference(n_samples: int, k: int, density: float) -> None:
    """Few and many neighbours (lanes idle or refilled), K > 16, duplicated reactions, abandoning."""
    rng = np.random.default_rng(n_samples + k)
    t_len = 30
    gt = emotion_like(rng, (n_samples, t_len))
    preds = emotion_like(rng, (n_samples, k, t_len))
    preds[0, 0] = gt[0]  # an exact match: distance 0
    preds[1, :] = preds[1, :1]  # identical reactions are computed once
    a = rng.random((n_samples, n_samples)) < density
    np.fill_diagonal(a, True)
    a[2] = False
    a[2, 3] = True  # a speaker with a single neighbour: straight to float64
    nbrs = neighbour_lists(a)
    sub = slice(0, 3)  # the tslearn reference is slow: compare the first speakers
    want = ref_frd(preds[sub], gt, nbrs[sub])
    pairs = sum(len(nb) * (1 if n == 1 else k) for n, nb in enumerate(nbrs))
    for early in (True, False):
        got, counts = frd_per_reaction(preds, gt, nbrs, workers=2, early_abandon=early)
        np.testing.assert_allclose(got[sub], want, rtol=1e-12)
        assert got[0, 0] == 0.0
        # speaker 1's K copies are one distinct reaction: its neighbours are searched once
        assert counts["pairs"] == counts["full_rows"] // t_len == pairs
        if early:
            assert counts["exact"] < pairs
        else:
            assert counts["abandoned"] == 0 and counts["rows"] == counts["full_rows"] and counts["exact"] == pairs
    assert frd(preds[sub], gt, nbrs[sub]) == pytest.approx(want.sum(axis=1).mean(), rel=1e-12)


def test_frd_of_ground_truth_is_zero_and_speakers_without_neighbours_count_as_zero() -> None:
    rng = np.random.default_rng(5)
    gt = emotion_like(rng, (4, 50))
    preds = np.broadcast_to(gt[:, None], (4, 10, 50, 25))
    nbrs = neighbour_lists(np.eye(4, dtype=bool))
    assert frd(preds, gt, nbrs) == 0.0
    nbrs[2] = np.array([], dtype=np.int64)
    preds2 = emotion_like(rng, (4, 2, 50))
    per, _ = frd_per_reaction(preds2, gt, nbrs)
    assert np.isnan(per[2]).all()
    assert frd(preds2, gt, nbrs) == pytest.approx(np.nansum(per) / 4)


def test_ccc_and_frc_equal_the_corrcoef_reference_with_constant_dims() -> None:
    rng = np.random.default_rng(11)
    gt = emotion_like(rng, (6, 40))
    gt[:, :, 2] = 0.0  # an AU that never fires: NaN correlation -> 0
    preds = emotion_like(rng, (6, 3, 40))
    preds[1, 1, :, 5] = 1.0
    preds[2, 0] = gt[2]
    got = ccc_matrix(preds[0], gt[:4])
    want = np.array([[ref_ccc(gt[j], preds[0, k]) for j in range(4)] for k in range(3)])
    np.testing.assert_allclose(got, want, atol=1e-9)
    a = rng.random((6, 6)) < 0.5
    np.fill_diagonal(a, True)
    nbrs = neighbour_lists(a)
    assert frc(preds, gt, nbrs) == pytest.approx(ref_frc(preds, gt, nbrs), rel=1e-9)
    # ground truth: K copies of the real reaction score the per-dim CCC of identical series
    gt_preds = np.broadcast_to(gt[:, None], (6, 3, 40, 25))
    assert frc(gt_preds, gt, neighbour_lists(np.eye(6, dtype=bool))) == pytest.approx(3 * 24 / 25, rel=1e-6)


# ---------------------------------------------------------------- diversity
def test_diversity_equals_loops() -> None:
    rng = np.random.default_rng(2)
    p = rng.normal(size=(5, 4, 12, 25)).astype(np.float32)
    n, k, length = 5, 4, 12 * 25
    flat = p.astype(np.float64).reshape(n, k, -1)
    div = np.mean([sum(np.sum((flat[i, a] - flat[i, b]) ** 2) for a in range(k) for b in range(k)) for i in range(n)])
    dvs = sum(np.sum((flat[a, kk] - flat[b, kk]) ** 2) for kk in range(k) for a in range(n) for b in range(n))
    assert frdiv(p) == pytest.approx(div / (k * (k - 1) * length), abs=1e-12)
    assert frdvs(p) == pytest.approx(dvs / (n * (n - 1) * k * length), abs=1e-12)
    assert frvar(p) == pytest.approx(float(np.mean(flat.reshape(n, k, 12, 25).var(axis=2, ddof=1))), abs=1e-12)
    assert frdiv(p[:, :1]) == 0.0


def test_uniform_predictions_give_the_analytic_values() -> None:
    p = np.random.default_rng(0).random((6, 10, 750, 25), dtype=np.float32)
    assert frvar(p) == pytest.approx(1 / 12, abs=1e-3)
    assert frdiv(p) == pytest.approx(1 / 6, abs=1e-3)
    assert frdvs(p) == pytest.approx(1 / 6, abs=2e-3)


def test_ground_truth_copies_have_zero_diversity() -> None:
    gt = emotion_like(np.random.default_rng(1), (3, 50))
    assert frdiv(np.broadcast_to(gt[:, None], (3, 10, 50, 25))) == 0.0


# ---------------------------------------------------------------- synchrony
def test_lag_correlations_equal_corrcoef_including_nan_windows() -> None:
    rng = np.random.default_rng(4)
    x = emotion_like(rng, (2, 90))
    s = emotion_like(rng, (90,))
    x[0, :, 3] = 0.0  # never fires
    x[1, :, 4] = np.arange(90) < 30  # constant in the windows of large positive lags
    s[:, 7] = np.arange(90) > 80
    got = lag_correlations(x, s)
    for k in range(2):
        want = ref_r(x[k], s)
        np.testing.assert_array_equal(np.isnan(got[k]), np.isnan(want))
        np.testing.assert_allclose(got[k][~np.isnan(want)], want[~np.isnan(want)], atol=1e-9)


def test_frsyn_equals_reference_and_reproduces_the_nan_saturation() -> None:
    rng = np.random.default_rng(6)
    t_len = 120
    speaker = rng.random((3, t_len, 25)).astype(np.float32)
    preds = rng.random((3, 2, t_len, 25)).astype(np.float32)
    # speaker 0: a copy of the speaker delayed by 5 frames, but one AU never fires
    preds[0, :, 5:] = speaker[0, None, :-5]
    preds[0, :, :5] = speaker[0, None, :5]
    preds[0, :, :, 0] = 0.0
    # speaker 2: every dim constant in reaction 1 -> no usable dim
    preds[2, 1] = 0.5
    got = frsyn(preds, speaker)
    want = ref_frsyn(preds, speaker)
    assert got.frsyn == pytest.approx(want[0], abs=1e-6)
    assert got.frsyn_all == pytest.approx(want[1], abs=1e-6)
    assert got.excluded == want[2] == 1
    # the constant AU saturates the official offset at 49; FRSyn_all finds the 5-frame delay
    single = frsyn(preds[:1], speaker[:1])
    assert single.frsyn == 49.0
    assert single.frsyn_all == 5.0


def test_frsyn_refuses_clips_no_longer_than_its_lags() -> None:
    """The lag search needs more frames than 49 lags each way; a shorter clip is an error, not NaN."""
    rng = np.random.default_rng(7)
    with pytest.raises(ValueError, match="more than 50 frames, got 50"):
        frsyn(rng.random((1, 2, 50, 25)), rng.random((1, 50, 25)))
    assert frsyn(rng.random((1, 2, 51, 25)), rng.random((1, 51, 25))).frsyn >= 0


# ---------------------------------------------------------------- realism
def test_frechet_distance_matches_closed_forms() -> None:
    mu1, mu2 = np.array([0.0, 1.0]), np.array([3.0, -1.0])
    s1, s2 = np.diag([1.0, 4.0]), np.diag([9.0, 1.0])
    # diagonal covariances: |mu1-mu2|^2 + sum (sqrt(a) - sqrt(b))^2
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(13.0 + (1 - 3) ** 2 + (2 - 1) ** 2)
    feats = np.random.default_rng(0).normal(size=(500, 4))
    assert frechet_distance_features(feats, feats) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance_features(feats, feats + 2.0) == pytest.approx(16.0, rel=1e-6)
