"""Which space a prediction set's 3DMM is in, and the way back to raw FaceVerse coefficients.

Everything that draws a face (the mesh renderer, PIRender) needs *raw* coefficients: rotation x
near pi, translation z near 1.84. ``react generate`` writes raw coefficients (the tokenizer
de-normalises what it decodes), but sets made elsewhere (converted from another team's outputs, or
from the organisers' trainers, whose models work in normalised space) may carry the organisers'
``normalize_3dmm`` space instead. Such a set says so in its record (``generation.json``):

- ``face3dmm_normalization``: ``"raw"`` (also what a record without the key means), ``"zero_center"``
  (``x - mean_face``) or ``"standard"`` (``(x - mean_face) / std_face``);
- ``face3dmm_stats``: the statistics of that rule, ``"react2024"`` (the organisers' ``mean_face.npy``
  / ``std_face.npy``, which their MARS loaders use and reactcli ships as
  ``resources/face_stats_react2024.npz``; the default) or ``{"mean": [58 numbers], "std": [58
  numbers]}``.

The matching ``transform_reverse`` is then applied per sample as it is read: ``standard`` x * std +
mean, ``zero_center`` x + mean. A record key with another value is refused, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from reactcli.errors import file_error
from reactcli.vocab import FACE_DIM, GENERATION_FILE

NORMALIZATION_KEY = "face3dmm_normalization"
STATS_KEY = "face3dmm_stats"
RAW, ZERO_CENTER, STANDARD = "raw", "zero_center", "standard"
NORMALIZATIONS = (RAW, ZERO_CENTER, STANDARD)
PACKAGED_STATS = "react2024"


def packaged_face_stats() -> tuple[np.ndarray, np.ndarray]:
    """The organisers' REACT 2024 ``mean_face``/``std_face`` (58,) float32, as shipped with reactcli."""
    with resources.files("reactcli.resources").joinpath("face_stats_react2024.npz").open("rb") as fh:
        stats = np.load(fh)
        return stats["mean"].astype(np.float32), stats["std"].astype(np.float32)


@dataclass(frozen=True)
class FaceSpace:
    """The space of a set's 3DMM and how to leave it: ``to_raw`` applies the inverse rule."""

    normalization: str = RAW
    stats: str | None = None  # "react2024" or "record" (numbers given in the record); None when raw
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    @property
    def is_raw(self) -> bool:
        return self.normalization == RAW

    def to_raw(self, block: np.ndarray) -> np.ndarray:
        """(..., 58) coefficients in this space -> raw float32 (a new array; raw input is only copied)."""
        out = np.array(block, dtype=np.float32)
        if self.normalization == STANDARD:
            out = out * self.std + self.mean  # type: ignore[operator]
        elif self.normalization == ZERO_CENTER:
            out = out + self.mean  # type: ignore[operator]
        return out.astype(np.float32, copy=False)

    def record(self) -> dict[str, Any]:
        """What render.json and the FRRea record note about it."""
        return {"normalization": self.normalization, "stats": self.stats}


def _vector(record_path: Path, value: Any, name: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        array = np.zeros(0)
    if array.shape != (FACE_DIM,) or not np.isfinite(array).all():
        raise file_error(record_path, f"'{STATS_KEY}.{name}' must be {FACE_DIM} finite numbers")
    return array.astype(np.float32)


def face_space(record: dict[str, Any], path: Path) -> FaceSpace:
    """The space a prediction set's record declares (module docstring); ``path`` is the set's folder.

    A record without ``face3dmm_normalization`` holds raw coefficients, as ``react generate`` writes.
    """
    record_path = Path(path) / GENERATION_FILE
    rule = record.get(NORMALIZATION_KEY, RAW)
    if rule not in NORMALIZATIONS:
        raise file_error(record_path, f"'{NORMALIZATION_KEY}' is {rule!r}, expected one of {', '.join(NORMALIZATIONS)}")
    if rule == RAW:
        return FaceSpace()
    stats = record.get(STATS_KEY, PACKAGED_STATS)
    if stats == PACKAGED_STATS:
        mean, std = packaged_face_stats()
        return FaceSpace(rule, PACKAGED_STATS, mean, std)
    if not isinstance(stats, dict):
        raise file_error(
            record_path, f"'{STATS_KEY}' must be \"{PACKAGED_STATS}\" or {{\"mean\": [...], \"std\": [...]}}"
        )
    mean = _vector(record_path, stats.get("mean"), "mean")
    std = _vector(record_path, stats.get("std"), "std") if rule == STANDARD else None
    return FaceSpace(rule, "record", mean, std)


__all__ = [
    "NORMALIZATIONS",
    "NORMALIZATION_KEY",
    "STATS_KEY",
    "FaceSpace",
    "face_space",
    "packaged_face_stats",
]
