"""The preprocessing cache: audio features, fast .npy copies of faces/emotions, face statistics.

Training reads thousands of windows; parsing CSVs and resampling wavs inside the loop would
dominate a CPU run (the released code even re-ran wav2vec2 every step). ``react preprocess``
writes everything here once; the datasets only ``np.load`` from it.

A MARS root (REACT 2025/2026) caches under ``<cache>/mars/<split>/``: per recording the
facial attributes (T, 25) and 3DMM coefficients (T, 58) as read (float32, squeezed, checked), the
EEG table (R, 14) and its mask (one row per second) where there is one, and ``index.json``
(:class:`MarsIndex`): every valid recording with the frame count of each modality, its traits,
notes, and the identity of its source files (size and mtime, the resume rule). The release's
768-d ``audio-features`` are not copied (they are the largest files and already ``.npy``); the
index records their lengths and readers memory-map them from the release.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reactcli.atomic import atomic_path, save_json
from reactcli.config import ReactConfig
from reactcli.data.features import feature_tag
from reactcli.data.loaders import load_npy
from reactcli.data.mars import Junk, MarsSample, Recording, mars_samples
from reactcli.errors import file_error
from reactcli.vocab import FACE_DIM

MARS_INDEX_FORMAT = 1


class FeatureCache:
    def __init__(self, root: Path, cfg: ReactConfig) -> None:
        self.root = Path(root)
        self.dir = Path(cfg.data.cache_dir) if cfg.data.cache_dir else self.root / ".react_cache"
        self.tag = feature_tag(cfg.audio)
        self.cfg = cfg

    def audio_features(self, split: str, clip: str) -> Path:
        return self.dir / "audio" / self.tag / split / f"{clip}.npy"

    def face3dmm(self, split: str, clip: str) -> Path:
        return self.dir / "face3dmm" / split / f"{clip}.npy"

    def emotion(self, split: str, clip: str) -> Path:
        return self.dir / "emotion" / split / f"{clip}.npy"

    def face_stats(self) -> Path:
        return self.dir / "stats" / "face3dmm_train.npz"

    def mars_array(self, split: str, kind: str, recording: Recording) -> Path:
        """A cached MARS array: ``kind`` is facial-attributes, coefficients, eeg or eeg-mask."""
        return self.dir / "mars" / split / kind / f"{recording.id}.npy"

    def mars_index(self, split: str) -> Path:
        return self.dir / "mars" / split / "index.json"

    def clip_paths(self, split: str, clip: str) -> tuple[Path, Path, Path]:
        return self.audio_features(split, clip), self.face3dmm(split, clip), self.emotion(split, clip)

    def load(self, path: Path) -> np.ndarray:
        if not path.is_file():
            raise file_error(path, "not in the preprocessing cache; run `react preprocess` on this dataset first")
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise file_error(path, f"corrupt cache file ({exc}); delete it and rerun `react preprocess`") from None


def _load_vector(path: Path, what: str) -> np.ndarray:
    vec = load_npy(path, f"{what} file").astype(np.float32).reshape(-1)
    if vec.shape != (FACE_DIM,) or not np.isfinite(vec).all():
        raise file_error(path, f"{what} must be {FACE_DIM} finite values, got shape {vec.shape}")
    return vec


def load_face_stats(cfg: ReactConfig, root: Path) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) of the 3DMM: the configured files, else the train statistics of preprocess under ``root``."""
    mean = _load_vector(Path(cfg.data.mean_face), "mean_face") if cfg.data.mean_face else None
    std = _load_vector(Path(cfg.data.std_face), "std_face") if cfg.data.std_face else None
    if mean is None or std is None:
        path = FeatureCache(Path(root), cfg).face_stats()
        if not path.is_file():
            raise file_error(path, "3DMM statistics missing; run `react preprocess` (with the train split) first")
        with np.load(path) as stats:
            mean = stats["mean"].astype(np.float32) if mean is None else mean
            std = stats["std"].astype(np.float32) if std is None else std
    return mean, np.maximum(std, 1e-6).astype(np.float32)


def write_face_stats(cache: FeatureCache, clips: list[str]) -> None:
    """Mean/std of the cached train 3DMM over every frame of ``clips``, accumulated in float64, to
    ``cache.face_stats()`` (read back by :func:`load_face_stats`)."""
    write_face_stats_of(cache, (cache.load(cache.face3dmm("train", clip)) for clip in clips))


def write_face_stats_of(cache: FeatureCache, faces: Iterable[np.ndarray]) -> None:
    """Mean/std over every frame of the (T, 58) arrays ``faces`` (float64 sums), to ``cache.face_stats()``."""
    total = np.zeros(FACE_DIM)
    total_sq = np.zeros(FACE_DIM)
    count = 0
    for array in faces:
        face = array.astype(np.float64)
        total += face.sum(0)
        total_sq += (face * face).sum(0)
        count += len(face)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean * mean, 0.0))
    with atomic_path(cache.face_stats()) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, mean=mean.astype(np.float32), std=std.astype(np.float32), frames=count)


# -- the MARS index -------------------------------------------------------------------------------
@dataclass
class MarsEntry:
    """One valid recording of a preprocessed MARS split.

    ``frames`` maps each modality found to its frame count (``audio``: the wav's duration in
    frames, rounded); ``personality`` is the (5,) ``(x - 1) / 4`` vector or None; ``eeg_rows`` the
    seconds of EEG cached (0: none found, None: the edition has no EEG); ``sources`` the identity
    of the files read (path -> [size, mtime_ns]); ``notes`` what was handled rather than refused.
    """

    recording: Recording
    frames: dict[str, int]
    personality: list[float] | None = None
    eeg_rows: int | None = None
    sources: dict[str, list[int]] = field(default_factory=dict)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (file, what was handled)

    @property
    def length(self) -> int:
        """The recording's length: its facial-attributes rows (what predictions are scored at)."""
        return self.frames["facial-attributes"]

    def to_json(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "personality": self.personality,
            "eeg_rows": self.eeg_rows,
            "sources": self.sources,
            "notes": [list(note) for note in self.notes],
        }


@dataclass
class MarsIndex:
    """What ``react preprocess`` learnt about one MARS split, and the length rules built on it."""

    edition: str
    split: str
    fps: int
    entries: dict[str, MarsEntry]  # recording id -> entry, in the official sorted order
    junk: list[Junk] = field(default_factory=list)
    unpaired: list[str] = field(default_factory=list)

    def samples(self, bidirectional: bool) -> list[MarsSample]:
        """The samples whose input and target are both valid, in the official order."""
        return mars_samples((e.recording for e in self.entries.values()), bidirectional)

    def eval_frames(self, sample: MarsSample) -> int:
        """Frames a prediction for ``sample`` has: the input's facial-attributes length (the
        naive-baseline script's rule; the ground truths are aligned to it at full length)."""
        return self.entries[sample.input.id].length

    def train_frames(self, sample: MarsSample) -> int:
        """Frames a training sample uses: the minimum over both people's facial attributes and
        coefficients and the input's audio features (the official personalised loader's rule)."""
        src, dst = self.entries[sample.input.id], self.entries[sample.target.id]
        lengths = [src.frames["facial-attributes"], dst.frames["facial-attributes"]]
        lengths += [src.frames["coefficients"], dst.frames["coefficients"]]
        if "audio-features" in src.frames:
            lengths.append(src.frames["audio-features"])
        return min(lengths)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MARS_INDEX_FORMAT,
            "edition": self.edition,
            "split": self.split,
            "fps": self.fps,
            "recordings": {rid: e.to_json() for rid, e in self.entries.items()},
            "junk": [[j.path, j.reason] for j in self.junk],
            "unpaired": self.unpaired,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MarsIndex:
        entries = {
            rid: MarsEntry(
                Recording.from_id(rid),
                {k: int(v) for k, v in e["frames"].items()},
                e.get("personality"),
                e.get("eeg_rows"),
                {k: list(v) for k, v in e.get("sources", {}).items()},
                [(str(path), str(text)) for path, text in e.get("notes", [])],
            )
            for rid, e in data["recordings"].items()
        }
        junk = [Junk(path, reason) for path, reason in data.get("junk", [])]
        return cls(str(data["edition"]), str(data["split"]), int(data["fps"]), entries, junk, list(data["unpaired"]))


def save_mars_index(cache: FeatureCache, index: MarsIndex) -> Path:
    path = cache.mars_index(index.split)
    save_json(path, index.to_json())
    return path


def load_mars_index(cache: FeatureCache, split: str) -> MarsIndex:
    """The index ``react preprocess`` wrote for ``split``; a missing or foreign file is a ReactError."""
    path = cache.mars_index(split)
    if not path.is_file():
        raise file_error(path, f"MARS split '{split}' is not preprocessed; run `react preprocess` on the dataset first")
    try:
        data = json.loads(path.read_text())
        if data.get("format") != MARS_INDEX_FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {MARS_INDEX_FORMAT}")
        return MarsIndex.from_json(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise file_error(path, f"corrupt MARS index ({exc}); delete it and rerun `react preprocess`") from None
