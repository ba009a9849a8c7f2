"""REACT 2026's EEG readout: one vector of the 14 EEG targets per second of a clip, at the second's last frame.

The organisers' test stage scores EEG once per generated window, taking the target at the
window's last frame (``_eeg_targets_from_motion_lengths``); their online models generate windows
of 30 frames at 30 fps, so that is once per second. reactcli generates frame by frame, so it
*reads* its EEG estimate out at the same frames: window r ends at frame
``min((r + 1) * fps - 1, L - 1)``, r = 0 .. ceil(L / fps) - 1 (the last window of a clip whose
length is not a whole number of seconds ends at the clip's last frame). An estimate read at frame
t depends on speaker frames <= t only, so the 1 Hz output stays online.

The ground truth of window r is the paired listener's EEG at that same frame (row
``floor(t / fps)`` of its CSV, the last row repeated, mask included: ``mars_loaders.eeg_per_frame``),
read from the release (``eeg_processed/`` or its tar.gz) at the prediction's length. Generation
(``--results-pt``'s ``GT_EEG``/``EEG_MASK``) and evaluation (a prediction set's EEG) both take it
from here, so the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reactcli.data.mars import MarsSample
from reactcli.data.mars_loaders import EegReader, EegTable, eeg_per_frame
from reactcli.editions import MARS_FPS


def eeg_window_ends(frames: int, fps: int = MARS_FPS) -> np.ndarray:
    """(ceil(frames / fps),) int64: the last frame of each one-second window of a clip of ``frames``."""
    if frames < 1 or fps < 1:
        raise ValueError(f"eeg_window_ends: frames ({frames}) and fps ({fps}) must be >= 1")
    ends = np.arange(1, -(-frames // fps) + 1, dtype=np.int64) * fps - 1
    return np.minimum(ends, frames - 1)


def eeg_window_count(frames: int, fps: int = MARS_FPS) -> int:
    """How many EEG vectors a clip of ``frames`` has (one per started second)."""
    return -(-int(frames) // fps)


def eeg_window_targets(table: EegTable, frames: int, fps: int = MARS_FPS) -> tuple[np.ndarray, np.ndarray]:
    """(n, 14) targets and mask at the window ends of a clip of ``frames`` (module docstring)."""
    values, mask = eeg_per_frame(table, frames, fps)
    ends = eeg_window_ends(frames, fps)
    return values[ends], mask[ends]


def split_eeg_targets(
    root: str | Path, split: str, samples: Sequence[MarsSample], lengths: Sequence[int], fps: int = MARS_FPS,
    use_tar: bool = True,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per sample the (1, n, 14) EEG ground truth and mask of its target (the paired listener) at
    the window ends of a clip of ``lengths[i]`` frames: the organisers' ``GT_EEG`` and ``EEG_MASK``.
    A recording without an EEG file gives zeros and an all-zero mask, as their reader does."""
    reader = EegReader(Path(root) / split, use_tar, wanted=[s.target for s in samples])
    reader.open()
    targets, masks = [], []
    for sample, frames in zip(samples, lengths, strict=True):
        values, mask = eeg_window_targets(reader.read(sample.target), int(frames), fps)
        targets.append(values[None].astype(np.float32))
        masks.append(mask[None].astype(np.float32))
    return targets, masks
