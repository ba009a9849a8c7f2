"""Read the organisers' test-stage output, ``results.pt``, for scoring with reactcli.

Their 2025/2026 trainers save ``{"GT": [...], "PRED": [...]}`` (plus ``GT_EEG``, ``PRED_EEG`` and
``EEG_MASK`` in 2026 when EEG is evaluated): one entry per sample, in the order of their test
loader. ``PRED[n]`` is (K, L_n, 25) float32 with the AUs rounded; the EEG entries are (K, n, 14)
predictions and (1, n, 14) ground truth and mask. The file carries no sample ids, so the order is
taken to be the split's sorted sample order (``Recording.sort_key``, the order reactcli scores in);
the reader checks the count and, given the inputs' lengths, every L_n, so a file from another split
or order fails with one line instead of being scored against the wrong ground truths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reactcli.editions import EEG_DIM
from reactcli.errors import file_error
from reactcli.vocab import EMOTION_DIM

_EEG_KEYS = ("PRED_EEG", "GT_EEG", "EEG_MASK")


@dataclass
class MarsResults:
    """The arrays of one ``results.pt`` as float32 numpy, per sample in the file's order."""

    predictions: list[np.ndarray]  # (K, L, 25)
    targets: list[np.ndarray] | None  # the organisers' aligned GT (G, L, 25), when saved
    eeg_predictions: list[np.ndarray] | None  # (K, n, 14)
    eeg_targets: list[np.ndarray] | None  # (1, n, 14)
    eeg_masks: list[np.ndarray] | None  # (1, n, 14)


def _as_list(path: Path, key: str, value: object, count: int) -> list[np.ndarray]:
    import torch

    if isinstance(value, torch.Tensor) and value.ndim >= 1:
        value = list(value.unbind(0))  # a stacked (N, ...) tensor when every length is equal
    if not isinstance(value, (list, tuple)):
        raise file_error(path, f"'{key}' is a {type(value).__name__}, expected a list with one tensor per sample")
    if len(value) != count:
        raise file_error(path, f"'{key}' has {len(value)} entries, the split has {count} samples (sorted order)")
    out = []
    for n, item in enumerate(value):
        if not isinstance(item, torch.Tensor):
            raise file_error(path, f"'{key}'[{n}] is a {type(item).__name__}, expected a tensor")
        array = item.detach().to("cpu", torch.float32).numpy()
        if array.ndim == 2:
            array = array[None]
        out.append(array)
    return out


def load_torch_object(path: str | Path, what: str = "results file") -> object:
    """``torch.load(weights_only=True)`` of a file we did not write; every failure is one line naming it."""
    from reactcli.torch_files import load_weights_only  # imports torch

    path = Path(path)
    if not path.is_file():
        raise file_error(path, f"{what} not found (the organisers' test stage writes results.pt)")
    return load_weights_only(path, "a readable PyTorch file", f"a {what}")


def is_results(data: object) -> bool:
    """Whether a loaded torch object is a test-stage results dict (rather than a bare prediction tensor)."""
    return isinstance(data, Mapping)


def read_results(
    path: str | Path,
    sample_ids: Sequence[str],
    lengths: Sequence[int] | None = None,
    tolerance: int = 0,
    data: object = None,
) -> MarsResults:
    """Load and check ``results.pt`` against the split's samples (``sample_ids`` in the sorted order).

    ``lengths`` (each input's frame count) makes a prediction whose length differs by more than
    ``tolerance`` frames an error: the official test loader takes L from the face-crop video, which
    may differ from the facial attributes by a frame or two, so evaluation passes a tolerance and
    aligns the ground truths to the prediction's own length. ``data`` is the file's already loaded
    content (:func:`load_torch_object`). Every problem is one ``ReactError`` line naming the file,
    the key and the sample.
    """
    path = Path(path)
    if data is None:
        data = load_torch_object(path)
    if not isinstance(data, Mapping) or "PRED" not in data:
        raise file_error(path, "has no 'PRED' entry (a test-stage results.pt is a dict with PRED and GT)")
    if isinstance(data["PRED"], Mapping):
        raise file_error(path, "'PRED' is a dict of named predictions (a baseline results file?), expected a list")
    count = len(sample_ids)
    preds = _as_list(path, "PRED", data["PRED"], count)
    for n, pred in enumerate(preds):
        where = f"'PRED'[{n}] ({sample_ids[n]})"
        if pred.ndim != 3 or pred.shape[-1] != EMOTION_DIM or pred.shape[0] < 2:
            raise file_error(path, f"{where} has shape {pred.shape}, expected (K >= 2, L, {EMOTION_DIM})")
        if lengths is not None and abs(pred.shape[1] - int(lengths[n])) > tolerance:
            allowed = f" (more than {tolerance} frames apart)" if tolerance else ""
            raise file_error(path, f"{where} has {pred.shape[1]} frames, the input has {int(lengths[n])}{allowed}")
        if not np.isfinite(pred).all():
            raise file_error(path, f"{where} holds NaN or infinite values")
    targets = None
    if "GT" in data and data["GT"] is not None:
        targets = _as_list(path, "GT", data["GT"], count)
        for n, (gt, pred) in enumerate(zip(targets, preds, strict=True)):
            if gt.ndim != 3 or gt.shape[1:] != pred.shape[1:]:
                raise file_error(path, f"'GT'[{n}] ({sample_ids[n]}) has shape {gt.shape}, PRED has {pred.shape}")
    present = [k for k in _EEG_KEYS if data.get(k) is not None]
    eeg = {k: None for k in _EEG_KEYS}
    if present:
        if "PRED_EEG" not in present or "GT_EEG" not in present:
            raise file_error(path, f"has {', '.join(present)} but the EEG metrics need PRED_EEG and GT_EEG")
        for key in present:
            eeg[key] = _as_list(path, key, data[key], count)
        for n in range(count):
            p, g = eeg["PRED_EEG"][n], eeg["GT_EEG"][n]
            m = eeg["EEG_MASK"][n] if eeg["EEG_MASK"] is not None else None
            where = f"sample {n} ({sample_ids[n]})"
            if p.ndim != 3 or p.shape[-1] != EEG_DIM:
                raise file_error(path, f"'PRED_EEG' of {where} has shape {p.shape}, expected (K, n, {EEG_DIM})")
            if g.ndim != 3 or g.shape[-1] != EEG_DIM:
                raise file_error(path, f"'GT_EEG' of {where} has shape {g.shape}, expected (1, n, {EEG_DIM})")
            if m is not None and m.shape != g.shape:
                raise file_error(path, f"'EEG_MASK' of {where} has shape {m.shape}, 'GT_EEG' has {g.shape}")
    return MarsResults(preds, targets, eeg["PRED_EEG"], eeg["GT_EEG"], eeg["EEG_MASK"])
