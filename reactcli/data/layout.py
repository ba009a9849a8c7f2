"""Where every file of a REACT 2024 dataset lives, and the mirrored sample order.

The layout is the one docs/dataset.md describes: pair lists at the root, one folder per
modality under each split, clip paths like ``NoXI/<session>/Expert_video/<clip>``. The 2024
release renamed the Emotion folders to ``P1``/``P2``; both spellings are accepted.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from reactcli.errors import ReactError, file_error

SPLITS = ("train", "val", "test")
#: The four clips the challenge asked every team to render (speaker paths of val rows).
SUBMISSION_CLIPS = (
    "NoXI/001_2016-03-17_Paris/Expert_video/21",
    "NoXI/023_2016-04-25_Paris/Expert_video/25",
    "NoXI/019_2016-04-20_Paris/Expert_video/13",
    "RECOLA/group-2/P41/2",
)

_RECOLA_P1 = {"P25", "P41", "P45"}
_RECOLA_P2 = {"P26", "P42", "P46"}


@dataclass(frozen=True)
class Pair:
    """One row of ``{split}.csv``: column 1 is the NoXI expert / first RECOLA person."""

    index: int
    speaker: str
    listener: str


@dataclass(frozen=True)
class Sample:
    """One mirrored sample: whose face and voice drive, whose reaction is generated."""

    speaker: str
    listener: str


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ReactError(f"unknown split '{split}' (expected one of {', '.join(SPLITS)})")
    return split


def read_pairs(root: Path, split: str) -> list[Pair]:
    """Read ``<root>/<split>.csv`` (header ``,speaker_path,listener_path``)."""
    path = Path(root) / f"{check_split(split)}.csv"
    if not path.is_file():
        raise file_error(path, f"pair list for split '{split}' not found")
    pairs: list[Pair] = []
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or [c.strip() for c in rows[0][1:3]] != ["speaker_path", "listener_path"]:
        raise file_error(path, "expected the header ',speaker_path,listener_path'")
    for line_no, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < 3 or not row[1].strip() or not row[2].strip():
            raise file_error(path, f"line {line_no}: expected '<index>,<speaker path>,<listener path>'")
        try:
            index = int(row[0]) if row[0].strip() else line_no - 2
        except ValueError:
            raise file_error(path, f"line {line_no}: index '{row[0]}' is not an integer") from None
        pairs.append(Pair(index, row[1].strip(), row[2].strip()))
    if not pairs:
        raise file_error(path, "no pairs listed")
    return pairs


def mirrored(pairs: list[Pair]) -> list[Sample]:
    """Rows as listed, then the same rows with roles swapped: the order of metrics and matrices."""
    return [Sample(p.speaker, p.listener) for p in pairs] + [Sample(p.listener, p.speaker) for p in pairs]


def p1p2_name(clip: str) -> str:
    """The 2024 Emotion-folder spelling of a clip path (Expert/P25/P41/P45 -> P1, others -> P2)."""
    parts = clip.split("/")
    if parts[0] == "NoXI" and len(parts) >= 4:
        parts[2] = {"Expert_video": "P1", "Novice_video": "P2"}.get(parts[2], parts[2])
    elif parts[0] == "RECOLA" and len(parts) >= 4:
        if parts[2] in _RECOLA_P1:
            parts[2] = "P1"
        elif parts[2] in _RECOLA_P2:
            parts[2] = "P2"
    return "/".join(parts)


def clip_slug(clip: str) -> str:
    """A file-name-safe form of a clip path (for outputs named per clip)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", clip)


class DatasetLayout:
    """Paths of every modality of a clip under one dataset root."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise file_error(self.root, "dataset root not found")

    def _base(self, split: str, modality: str) -> Path:
        return self.root / check_split(split) / modality

    def audio(self, split: str, clip: str) -> Path:
        return self._base(split, "Audio_files") / f"{clip}.wav"

    def face3dmm(self, split: str, clip: str) -> Path:
        return self._base(split, "3D_FV_files") / f"{clip}.npy"

    def emotion_candidates(self, split: str, clip: str) -> list[Path]:
        base = self._base(split, "Emotion")
        names = dict.fromkeys([clip, p1p2_name(clip)])
        return [base / f"{name}.csv" for name in names]

    def emotion(self, split: str, clip: str) -> Path:
        """The emotion CSV in the role-named or the P1/P2 folder; an error lists every path tried."""
        candidates = self.emotion_candidates(split, clip)
        for path in candidates:
            if path.is_file():
                return path
        tried = " or ".join(str(p) for p in candidates)
        raise ReactError(path=tried, problem="emotion file not found")

    def video(self, split: str, clip: str) -> Path | None:
        """An mp4 file or a folder of numbered PNG/JPG frames, or None when the split has no video."""
        base = self._base(split, "Video_files")
        mp4 = base / f"{clip}.mp4"
        if mp4.is_file():
            return mp4
        folder = base / clip
        if folder.is_dir():
            return folder
        return None

    def require_video(self, split: str, clip: str, why: str) -> Path:
        """:meth:`video`, or one error naming the mp4 that was looked for and ``why`` it is needed."""
        video = self.video(split, clip)
        if video is None:
            raise file_error(self._base(split, "Video_files") / f"{clip}.mp4", why)
        return video

    def neighbours(self, split: str) -> Path:
        return self.root / f"neighbour_emotion_{check_split(split)}.npy"
