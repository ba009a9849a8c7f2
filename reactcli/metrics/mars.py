"""The REACT 2025/2026 (MARS) metrics on ragged samples, computed as the organisers' code computes them.

Every sample n has its own length L_n: predictions (K, L_n, 25), the ground truths already aligned to
that length (G, L_n, 25, see ``models/post_processor.py``), and the input's own attributes (T_n, 25),
raw. The organisers' names are in brackets; ``editions.OFFICIAL_METRIC_NAMES`` maps ours to theirs.

* **FRC** (FRC, higher): per sample, sum over k of max over j of CCC(target_j, pred_k), then the mean
  over samples; a sum over K, so at most K. CCC is the mean over the 25 dims of
  ``2 r sd_t sd_p / (var_t + var_p + (mean_t - mean_p)^2 + 1e-8)``: means, variances and standard
  deviations are population statistics in float32 (numpy on float32 arrays), r comes from
  ``np.cov`` in float64, divided by both standard deviations, ``nan_to_num``, clipped to [-1, 1] (a
  constant channel gives r = 0, so even the ground truth scores below K).
* **FRD** (FRD, lower): per sample, sum over k of min over j of the weighted 3-block DTW, then the
  mean; computed by the exact pruned engine ``appropriateness.frd_sets`` (``frd_device`` "cuda" runs
  its torch wavefront; :mod:`reactcli.metrics.mars_frd` is the plain reference the tests compare with).
* **FRSyn** (TLCC, lower): for **prediction 0 only**, prediction and input cut to the shorter of the
  two, lags -49..49 (2 s at **25 fps** although MARS is 30 fps), r(lag) = float32 mean of the 25
  per-dim Pearson correlations of ``(x[lag:], s[:-lag])`` / ``(x[:lag], s[-lag:])``; the offset is
  ``|49 - argmax r|`` where a NaN (any constant window) counts as the maximum, the first NaN or the
  first tie wins; the float32 mean of offsets over samples.
* **FRSyn_fixed** (ours, lower): every prediction, lags of +-2 s at the data's frame rate (+-59 at
  30 fps), constant dims left out of each lag's mean, lags with no usable dim skipped; predictions
  with no usable lag are left out and counted (``FRSyn_fixed_excluded``); the code of 2024's
  FRSyn_all (``metrics/synchrony.py``) with these lags.
* **FRDiv** (smse, higher): per sample ``sum_ij ||p_i - p_j||^2 / (K (K-1) L 25)`` with ``torch.cdist``
  in float32; the float32 mean over samples. K must be at least 2.
* **FRVar** (FRVar, higher): the unbiased variance over time of every (sample, k, dim) in float32,
  averaged with each sample weighing the same whatever its length.
* **MAE** (MAE, lower; the 2026 baseline script): dims 15:25 only, ``mean_i mean_j |target_j - pred_i|``
  with j over range(K) (so G >= K), float32 as numpy computes it, the mean over samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from reactcli.editions import MARS_FPS, TLCC_FPS, TLCC_SECONDS
from reactcli.errors import ReactError
from reactcli.metrics.appropriateness import frd_sets
from reactcli.metrics.synchrony import first_nan_argmax, lag_correlations, nan_aware_offsets
from reactcli.vocab import EMOTION_DIM, VALENCE_AROUSAL_DIMS

#: ``compute_metrics``' CCC denominator term.
CCC_EPS = 1e-8
#: GT_identical's check before its FRC is forced to K (``torch.allclose(atol=1e-6, rtol=0)``).
IDENTITY_ATOL = 1e-6


# ------------------------------------------------------------------------------------- inputs
def check_samples(
    speakers: Sequence[np.ndarray],
    predictions: Sequence[np.ndarray],
    targets: Sequence[np.ndarray] | None,
    names: Sequence[str] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray] | None]:
    """Float32 copies of the three lists after the checks the organisers' code skips (it crashes later).

    Predictions (K >= 2, L, 25); ground truths (G >= 1, L, 25) with the prediction's L; inputs
    (T, 25); all finite. Every problem is one ``ReactError`` line naming the sample.
    """
    n_total = len(predictions)
    if len(speakers) != n_total or (targets is not None and len(targets) != n_total):
        counts = f"{n_total} prediction sets, {len(speakers)} inputs" + (
            f", {len(targets)} ground-truth sets" if targets is not None else ""
        )
        raise ReactError(f"the metric inputs disagree: {counts}")
    label = (lambda n: names[n]) if names is not None else (lambda n: f"sample {n}")
    preds_out, spk_out, tgt_out = [], [], []
    for n in range(n_total):
        pred = np.asarray(predictions[n], dtype=np.float32)
        if pred.ndim != 3 or pred.shape[-1] != EMOTION_DIM or pred.shape[0] < 2 or pred.shape[1] < 1:
            raise ReactError(f"{label(n)}: predictions have shape {pred.shape}, expected (K >= 2, L, {EMOTION_DIM})")
        spk = np.asarray(speakers[n], dtype=np.float32)
        if spk.ndim != 2 or spk.shape[-1] != EMOTION_DIM or spk.shape[0] < 1:
            raise ReactError(f"{label(n)}: input attributes have shape {spk.shape}, expected (T, {EMOTION_DIM})")
        for what, array in (("predictions", pred), ("input attributes", spk)):
            if not np.isfinite(array).all():
                raise ReactError(f"{label(n)}: {what} hold NaN or infinite values")
        preds_out.append(pred)
        spk_out.append(spk)
        if targets is not None:
            tgt = np.asarray(targets[n], dtype=np.float32)
            if tgt.ndim != 3 or tgt.shape[0] < 1 or tgt.shape[1:] != pred.shape[1:]:
                raise ReactError(
                    f"{label(n)}: ground truths have shape {tgt.shape}, expected (G, {pred.shape[1]}, {EMOTION_DIM}) "
                    "(aligned to the prediction length)"
                )
            if not np.isfinite(tgt).all():
                raise ReactError(f"{label(n)}: ground truths hold NaN or infinite values")
            tgt_out.append(tgt)
    return spk_out, preds_out, (tgt_out if targets is not None else None)


# ------------------------------------------------------------------------------------- FRC
def ccc_sets(preds: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(K, G) CCC(target_j, pred_k) by the official formula (module docstring), float64."""
    x = np.ascontiguousarray(np.asarray(preds, dtype=np.float32).transpose(0, 2, 1))  # (K, D, L)
    y = np.ascontiguousarray(np.asarray(targets, dtype=np.float32).transpose(0, 2, 1))  # (G, D, L)
    length = x.shape[-1]
    # float32 moments, reduced along contiguous rows as numpy reduces one column of the official loop
    mx, vx, sx = x.mean(axis=-1), x.var(axis=-1), x.std(axis=-1)
    my, vy, sy = y.mean(axis=-1), y.var(axis=-1), y.std(axis=-1)
    # r as np.cov (float64, ddof 1) then the official corrcoef: divide, nan_to_num, clip
    xc = x.astype(np.float64)
    xc -= xc.mean(axis=-1, keepdims=True)
    yc = y.astype(np.float64)
    yc -= yc.mean(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.true_divide(1, length - 1)
        cxy = np.matmul(xc.transpose(1, 0, 2), yc.transpose(1, 2, 0)).transpose(1, 2, 0) * scale  # (K, G, D)
        sdx = np.sqrt(np.einsum("kdl,kdl->kd", xc, xc) * scale)
        sdy = np.sqrt(np.einsum("gdl,gdl->gd", yc, yc) * scale)
        r = cxy / sdy[None, :, :] / sdx[:, None, :]  # corrcoef divides by the target's sd first
    r = np.clip(np.nan_to_num(r), -1.0, 1.0)
    numerator = 2 * r * sy[None, :, :].astype(np.float64) * sx[:, None, :].astype(np.float64)
    denominator = (vy[None, :, :] + vx[:, None, :] + (my[None, :, :] - mx[:, None, :]) ** 2) + np.float32(CCC_EPS)
    return (numerator / denominator).mean(axis=-1)


def frc_per_sample(predictions: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> np.ndarray:
    """(N,) sum over k of max over j of CCC, summed in k order as the official loop does."""
    return np.array(
        [float(sum(float(v) for v in ccc_sets(p, t).max(axis=1))) for p, t in zip(predictions, targets, strict=True)]
    )


# ------------------------------------------------------------------------------------- FRSyn
def _pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-column ``np.corrcoef(a_d, b_d)[0, 1]`` (float64; NaN for a constant or too short window)."""
    n = a.shape[0]
    if n < 2:
        return np.full(a.shape[1], np.nan)
    ac = a - a.mean(axis=0)
    bc = b - b.mean(axis=0)
    scale = 1.0 / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (np.einsum("td,td->d", ac, bc) * scale) / np.sqrt(np.einsum("td,td->d", ac, ac) * scale)
        r = r / np.sqrt(np.einsum("td,td->d", bc, bc) * scale)
    return np.clip(r, -1.0, 1.0)


def _shifted(x: np.ndarray, s: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    if lag > 0:
        return x[lag:], s[:-lag]
    if lag < 0:
        return x[:lag], s[-lag:]
    return x, s


def tlcc_offset(prediction: np.ndarray, speaker: np.ndarray) -> int:
    """The official ``|offset|`` of one (L, 25) prediction against the (T, 25) input (cut to the shorter)."""
    import torch

    n = min(prediction.shape[0], speaker.shape[0])
    x = np.asarray(prediction[:n], dtype=np.float32).astype(np.float64)
    s = np.asarray(speaker[:n], dtype=np.float32).astype(np.float64)
    max_lag = int(TLCC_SECONDS * TLCC_FPS - 1)
    r = np.stack([_pearson_columns(*_shifted(x, s, lag)) for lag in range(-max_lag, max_lag + 1)])
    means = torch.from_numpy(r.astype(np.float32)).mean(dim=1).numpy()  # the official float32 torch.mean
    return abs(max_lag - first_nan_argmax(means))


def frsyn_official(predictions: Sequence[np.ndarray], speakers: Sequence[np.ndarray]) -> tuple[float, np.ndarray]:
    """Official FRSyn (TLCC) and the per-sample offsets (prediction 0 of each sample)."""
    import torch

    offsets = np.array([tlcc_offset(p[0], s) for p, s in zip(predictions, speakers, strict=True)], dtype=np.int64)
    return float(torch.tensor(offsets, dtype=torch.float32).mean().item()), offsets


@dataclass
class FixedSynchrony:
    value: float | None  # mean |offset| over the scored predictions (None if none)
    scored: int
    excluded: int  # predictions with no usable dim at any lag


def frsyn_fixed(
    predictions: Sequence[np.ndarray], speakers: Sequence[np.ndarray], fps: int = MARS_FPS
) -> FixedSynchrony:
    """FRSyn over every prediction, lags of +-2 s at ``fps``, NaN-aware (module docstring)."""
    max_lag = int(TLCC_SECONDS * fps - 1)
    offsets: list[int] = []
    excluded = 0
    for preds, spk in zip(predictions, speakers, strict=True):
        n = min(preds.shape[1], spk.shape[0])
        scored, none = nan_aware_offsets(lag_correlations(preds[:, :n], spk[:n], max_lag), max_lag)
        offsets += scored
        excluded += none
    return FixedSynchrony(float(np.mean(offsets)) if offsets else None, len(offsets), excluded)


# ------------------------------------------------------------------------------------- diversity, MAE
def frdiv(predictions: Sequence[np.ndarray]) -> float:
    """smse: per sample sum_ij ||p_i - p_j||^2 / (K (K-1) L 25) by ``torch.cdist`` in float32, then the mean."""
    import torch

    total = 0
    for pred in predictions:
        flat = torch.from_numpy(np.ascontiguousarray(pred, dtype=np.float32)).reshape(pred.shape[0], -1)
        k_total = flat.shape[0]
        total = total + torch.sum(torch.pow(torch.cdist(flat, flat), 2)) / (k_total * (k_total - 1) * flat.shape[1])
    return float(total / len(predictions))


def frvar(predictions: Sequence[np.ndarray]) -> float:
    """The mean over (sample, k, dim) of ``torch.var`` over time (unbiased, float32)."""
    import torch

    per = [torch.var(torch.from_numpy(np.ascontiguousarray(p, dtype=np.float32)), dim=1) for p in predictions]
    return float(torch.mean(torch.stack(per, dim=0)).item())


def mae_per_sample(predictions: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> np.ndarray:
    """(N,) float32: mean_i mean_j |target_j - pred_i| over dims 15:25, j over range(K), as numpy computes it."""
    out = []
    va = VALENCE_AROUSAL_DIMS.start  # dims 15:25, valence onwards
    for pred, tgt in zip(predictions, targets, strict=True):
        k_total = pred.shape[0]
        if tgt.shape[0] < k_total:
            raise ReactError(
                f"MAE pairs ground truth j with prediction j: {tgt.shape[0]} ground truths for K = {k_total}"
            )
        total = np.float32(0)
        for i in range(k_total):
            total = total + np.mean([np.mean(np.abs(tgt[j][:, va:] - pred[i][:, va:])) for j in range(k_total)])
        out.append(total / np.float32(k_total))
    return np.array(out, dtype=np.float32)


# ------------------------------------------------------------------------------------- everything
@dataclass
class MarsScores:
    """Metric values (our names; ``editions.OFFICIAL_METRIC_NAMES`` has the organisers'), per-sample values,
    timings and warnings."""

    values: dict[str, float | int | None]
    per_sample: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def score_mars(
    speakers: Sequence[np.ndarray],
    predictions: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    *,
    mae: bool = False,
    fixed: bool = True,
    fps: int = MARS_FPS,
    force_identity_frc: bool = False,
    workers: int | None = None,
    names: Sequence[str] | None = None,
    on_metric: Callable[[str], None] | None = None,
    frd_device: str | None = None,
) -> MarsScores:
    """FRC, FRD, FRSyn, FRDiv, FRVar (+ MAE with ``mae``, + FRSyn_fixed with ``fixed``) of ragged samples.

    ``force_identity_frc`` is the baseline script's GT_identical rule: when every prediction equals
    its ground truths (same shapes, ``allclose`` with atol 1e-6), FRC is reported as the mean K
    instead of being computed; otherwise a warning and the computed FRC.
    """
    speakers, predictions, targets = check_samples(speakers, predictions, targets, names)
    scores = MarsScores({"N": len(predictions)})
    if not predictions:
        raise ReactError("no samples to score")

    def timed(name: str, fn: Callable[[], object]) -> object:
        if on_metric is not None:
            on_metric(name)
        t0 = time.perf_counter()
        value = fn()
        scores.seconds[name] = time.perf_counter() - t0
        return value

    identical = force_identity_frc and all(
        p.shape == t.shape and np.allclose(p, t, rtol=0.0, atol=IDENTITY_ATOL)
        for p, t in zip(predictions, targets, strict=True)
    )
    if force_identity_frc and not identical:
        scores.warnings.append("GT_identical: predictions differ from the ground truths; FRC computed, not forced")
    if identical:
        scores.values["FRC"] = float(np.mean([p.shape[0] for p in predictions]))
    else:
        frc = timed("FRC", lambda: frc_per_sample(predictions, targets))
        scores.per_sample["FRC"] = frc
        scores.values["FRC"] = float(np.mean(frc))
    frd = timed("FRD", lambda: frd_sets(predictions, targets, workers, device=frd_device))
    scores.per_sample["FRD"] = frd
    scores.values["FRD"] = float(np.mean(frd))
    frsyn, offsets = timed("FRSyn", lambda: frsyn_official(predictions, speakers))
    scores.per_sample["FRSyn"] = offsets
    scores.values["FRSyn"] = frsyn
    scores.values["FRDiv"] = timed("FRDiv", lambda: frdiv(predictions))
    scores.values["FRVar"] = timed("FRVar", lambda: frvar(predictions))
    if mae:
        per = timed("MAE", lambda: mae_per_sample(predictions, targets))
        scores.per_sample["MAE"] = per
        scores.values["MAE"] = float(np.mean(per))
    if fixed:
        result = timed("FRSyn_fixed", lambda: frsyn_fixed(predictions, speakers, fps))
        scores.values["FRSyn_fixed"] = result.value
        scores.values["FRSyn_fixed_scored"] = result.scored
        scores.values["FRSyn_fixed_excluded"] = result.excluded
    return scores
