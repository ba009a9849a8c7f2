"""Whole clips from the preprocessing cache, in the mirrored sample order.

:class:`ReactClipDataset` is what every stage reads: training stacks its clips into memory
(``training/corpus.py``, where the training windows are cut by ``WindowBatches``), generation and
the Ridge baseline walk it clip by clip.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from reactcli.config import ReactConfig
from reactcli.data.cache import FeatureCache
from reactcli.data.layout import Sample, mirrored, read_pairs
from reactcli.data.loaders import pad_emotion
from reactcli.errors import file_error
from reactcli.vocab import CLIP_FRAMES, EMOTION_DIM, FACE_DIM


class _ClipStore:
    """Loads (and memoises) the cached arrays of one clip, validating their shapes."""

    def __init__(self, root: Path, split: str, cfg: ReactConfig) -> None:
        self.cache = FeatureCache(root, cfg)
        self.split = split
        self.arrays = lru_cache(maxsize=8192)(self._load)

    def _load(self, clip: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        audio_path, face_path, emotion_path = self.cache.clip_paths(self.split, clip)
        audio, face, emotion = (self.cache.load(p) for p in (audio_path, face_path, emotion_path))
        if audio.shape[0] != CLIP_FRAMES or face.shape != (CLIP_FRAMES, FACE_DIM) or emotion.shape[1] != EMOTION_DIM:
            raise file_error(audio_path.parent, f"cached arrays of {clip} have unexpected shapes; rerun preprocess")
        emotion = pad_emotion(emotion, CLIP_FRAMES)  # 750 rows for 751 video frames
        return audio.astype(np.float32), face.astype(np.float32), emotion.astype(np.float32)


class ReactClipDataset(Dataset):
    """Whole 751-frame clips: ``clip(i)`` gives numpy arrays, ``dataset[i]`` tensors plus ``index``."""

    def __init__(self, root: Path, split: str, cfg: ReactConfig) -> None:
        self.root = Path(root)
        self.split = split
        self.samples: list[Sample] = mirrored(read_pairs(self.root, split))
        self.store = _ClipStore(self.root, split, cfg)

    def __len__(self) -> int:
        return len(self.samples)

    def clip(self, index: int) -> dict[str, np.ndarray]:
        sample = self.samples[index]
        s_audio, s_face, s_emotion = self.store.arrays(sample.speaker)
        _, l_face, l_emotion = self.store.arrays(sample.listener)
        return {
            "speaker_audio": s_audio,
            "speaker_3dmm": s_face,
            "speaker_emotion": s_emotion,
            "listener_3dmm": l_face,
            "listener_emotion": l_emotion,
        }

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = {k: torch.from_numpy(v) for k, v in self.clip(index).items()}
        item["index"] = torch.tensor(index)
        return item
