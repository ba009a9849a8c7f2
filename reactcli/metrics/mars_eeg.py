"""The five masked EEG metrics of REACT 2026 (``compute_eeg_metrics``), as the organisers compute them.

Per sample: predictions (K, n, C), ground truth (G, n', C) (G = 1 in the test stage: the paired
listener) and a 0/1 mask shaped like the ground truth (None: everything valid). n counts one EEG
vector per generated window or chunk, so these series are short. Predictions and ground truth are
cut to the shorter length and the fewer channels. A frame counts in a channel when its mask is > 0.5
and both values are finite.

* ``EEG_FRC`` (higher): masked CCC per channel (undefined with fewer than 2 valid frames, 0 when a
  standard deviation is below 1e-8), the mean over channels, the max over ground truths, the **sum**
  over K, the mean over samples that have any score.
* ``EEG_FRD`` (lower): per channel a 1-D DTW on the valid frames only, the mean over channels, the
  min over ground truths, the sum over K, the mean over samples.
* ``EEG_TLCC`` (lower): against ground truth 0 only, lags -2..2 (2 s at 1 vector per second); per
  channel the lag of the highest masked CCC (the first on ties), |lag| averaged over channels, over
  **all** K (unlike the facial FRSyn) and over samples.
* ``EEG_smse`` (higher): the facial FRDiv formula without masks, 0 for K < 2.
* ``EEG_FRVar`` (higher): population variance over time, averaged over the channels with any valid
  frame; samples whose mask is empty are skipped.

A metric with no score at all is NaN, as in the organisers' code.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from reactcli.editions import EEG_METRICS, EEG_TLCC_FPS, EEG_TLCC_SECONDS, OFFICIAL_METRIC_NAMES
from reactcli.errors import ReactError
from reactcli.metrics.dtw import dtw_single

#: ``_masked_ccc_1d``: a standard deviation below this makes the CCC 0.
STD_FLOOR = 1e-8
#: The organisers' keys, in their order (EEG_FRC, EEG_FRD, EEG_TLCC, EEG_smse, EEG_FRVar).
EEG_NAMES = tuple(OFFICIAL_METRIC_NAMES[name] for name in EEG_METRICS)


def _sets(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x[None] if x.ndim == 2 else x


def _trimmed(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    pred, target = _sets(pred), _sets(target)
    length = min(pred.shape[1], target.shape[1])
    dims = min(pred.shape[2], target.shape[2])
    return pred[:, :length, :dims], target[:, :length, :dims], length, dims


def _mask_for(mask: np.ndarray | None, j: int, length: int, dims: int) -> np.ndarray:
    """The (length, dims) mask of ground truth j: the only mask row, or row min(j, last)."""
    if mask is None:
        return np.ones((length, dims), dtype=np.float32)
    mask = _sets(mask)
    row = mask[0] if mask.shape[0] == 1 else mask[min(j, mask.shape[0] - 1)]
    return row[:length, :dims]


def masked_ccc(target: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> float | None:
    """CCC of one channel on its valid frames; None with fewer than 2, 0 for a near-constant side."""
    valid = (mask > 0.5) & np.isfinite(target) & np.isfinite(pred)
    if int(valid.sum()) < 2:
        return None
    y_true, y_pred = target[valid], pred[valid]
    std_true, std_pred = np.std(y_true), np.std(y_pred)
    if std_true < STD_FLOOR or std_pred < STD_FLOOR:
        return 0.0
    cor = np.corrcoef(y_true, y_pred)[0, 1]
    denominator = np.var(y_true) + np.var(y_pred) + (np.mean(y_true) - np.mean(y_pred)) ** 2 + 1e-8
    return (2 * cor * std_true * std_pred) / denominator


def _channel_mean_ccc(target: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> float | None:
    scores = []
    for c in range(target.shape[-1]):
        score = masked_ccc(target[:, c], pred[:, c], mask[:, c])
        if score is not None and np.isfinite(score):
            scores.append(score)
    return float(np.mean(scores)) if scores else None


def _channel_mean_dtw(target: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> float | None:
    scores = []
    for c in range(target.shape[-1]):
        valid = (mask[:, c] > 0.5) & np.isfinite(target[:, c]) & np.isfinite(pred[:, c])
        if not valid.any():
            continue
        a = np.ascontiguousarray(pred[valid, c], dtype=np.float32)[:, None]
        b = np.ascontiguousarray(target[valid, c], dtype=np.float32)[:, None]
        scores.append(dtw_single(a, b))
    return float(np.mean(scores)) if scores else None


def _best_over_targets(preds, targets, masks, score, pick) -> float:
    """sum over k of pick_j score(target_j, pred_k), then the mean over samples with any score."""
    sample_scores = []
    for n, (pred, target) in enumerate(zip(preds, targets, strict=True)):
        pred, target, length, dims = _trimmed(pred, target)
        mask = masks[n] if masks is not None else None
        per_pred = []
        for k in range(pred.shape[0]):
            found = [
                s
                for j in range(target.shape[0])
                if (s := score(target[j], pred[k], _mask_for(mask, j, length, dims))) is not None
            ]
            if found:
                per_pred.append(pick(found))
        if per_pred:
            sample_scores.append(float(np.sum(per_pred)))
    return float(np.mean(sample_scores)) if sample_scores else float("nan")


def eeg_frc(preds: Sequence[np.ndarray], targets: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None) -> float:
    return _best_over_targets(preds, targets, masks, _channel_mean_ccc, max)


def eeg_frd(preds: Sequence[np.ndarray], targets: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None) -> float:
    return _best_over_targets(preds, targets, masks, _channel_mean_dtw, min)


def _shift(a: np.ndarray, b: np.ndarray, m: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prediction, target, mask) paired at ``lag``: prediction frame t with target frame t - lag."""
    if lag > 0:
        return a[lag:], b[:-lag], m[:-lag]
    if lag < 0:
        return a[:lag], b[-lag:], m[-lag:]
    return a, b, m


def eeg_tlcc(preds: Sequence[np.ndarray], targets: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None) -> float:
    max_lag = int(EEG_TLCC_SECONDS * EEG_TLCC_FPS)
    sample_offsets = []
    for n, (pred, target) in enumerate(zip(preds, targets, strict=True)):
        pred, target, length, dims = _trimmed(pred, target)
        mask = _mask_for(masks[n] if masks is not None else None, 0, length, dims)
        truth = target[0]
        per_pred = []
        for k in range(pred.shape[0]):
            per_channel = []
            for c in range(dims):
                scored = []
                for lag in range(-max_lag, max_lag + 1):
                    a, b, m = _shift(pred[k, :, c], truth[:, c], mask[:, c], lag)
                    ccc = masked_ccc(b, a, m)
                    if ccc is not None:
                        scored.append((ccc, lag))
                if scored:
                    per_channel.append(abs(max(scored, key=lambda item: item[0])[1]))  # first best lag
            if per_channel:
                per_pred.append(float(np.mean(per_channel)))
        if per_pred:
            sample_offsets.append(float(np.mean(per_pred)))
    return float(np.mean(sample_offsets)) if sample_offsets else float("nan")


def eeg_smse(preds: Sequence[np.ndarray]) -> float:
    import torch

    distances = []
    for pred in preds:
        flat = torch.from_numpy(np.ascontiguousarray(_sets(pred))).reshape(_sets(pred).shape[0], -1)
        k_total = flat.shape[0]
        if k_total < 2:
            distances.append(torch.tensor(0.0))
            continue
        distances.append(torch.sum(torch.pow(torch.cdist(flat, flat), 2)) / (k_total * (k_total - 1) * flat.shape[1]))
    return float(torch.stack(distances).mean().item()) if distances else float("nan")


def eeg_frvar(preds: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None) -> float:
    import torch

    values = []
    for n, pred in enumerate(preds):
        pred_t = torch.from_numpy(np.ascontiguousarray(_sets(pred)))
        if masks is None:
            values.append(torch.var(pred_t, dim=1, unbiased=False).mean())
            continue
        mask = torch.from_numpy(np.ascontiguousarray(_sets(masks[n])))[0]
        length = min(pred_t.shape[1], mask.shape[0])
        dims = min(pred_t.shape[2], mask.shape[1])
        valid = mask[:length, :dims] > 0.5
        if not bool(valid.any()):
            continue
        var = torch.var(pred_t[:, :length, :dims], dim=1, unbiased=False)
        channels = valid.any(dim=0)
        values.append(var[:, channels].mean())
    return float(torch.stack(values).mean().item()) if values else float("nan")


def score_eeg(
    preds: Sequence[np.ndarray], targets: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None = None
) -> dict[str, float]:
    """The five EEG metrics in the organisers' order (``EEG_NAMES``)."""
    if len(preds) != len(targets) or (masks is not None and len(masks) != len(preds)):
        masked = f", {len(masks)} masks" if masks is not None else ""
        raise ReactError(f"the EEG inputs disagree: {len(preds)} prediction sets, {len(targets)} ground truths{masked}")
    return {
        "EEG_FRC": eeg_frc(preds, targets, masks),
        "EEG_FRD": eeg_frd(preds, targets, masks),
        "EEG_TLCC": eeg_tlcc(preds, targets, masks),
        "EEG_smse": eeg_smse(preds),
        "EEG_FRVar": eeg_frvar(preds, masks),
    }
