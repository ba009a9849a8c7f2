"""The preprocessing cache: audio features, fast .npy copies of faces/emotions, face statistics.

Training reads thousands of windows; parsing CSVs and resampling wavs inside the loop would
dominate a CPU run (the released code even re-ran wav2vec2 every step). ``react preprocess``
writes everything here once; the datasets only ``np.load`` from it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reactcli.atomic import atomic_path
from reactcli.config import ReactConfig
from reactcli.data.features import feature_tag
from reactcli.data.loaders import load_npy
from reactcli.errors import file_error
from reactcli.vocab import FACE_DIM


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
    total = np.zeros(FACE_DIM)
    total_sq = np.zeros(FACE_DIM)
    count = 0
    for clip in clips:
        face = cache.load(cache.face3dmm("train", clip)).astype(np.float64)
        total += face.sum(0)
        total_sq += (face * face).sum(0)
        count += len(face)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean * mean, 0.0))
    with atomic_path(cache.face_stats()) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, mean=mean.astype(np.float32), std=std.astype(np.float32), frames=count)
