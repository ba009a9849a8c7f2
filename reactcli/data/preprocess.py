"""Preprocessing, the stage: check every clip, fill the feature cache, compute the train statistics.

``react preprocess`` parses its options, calls :func:`preprocess_dataset` and prints the result.
The loop is resumable: a clip whose three cache files are readable arrays of the right shape and
newer than the clip's source files is skipped (:func:`cache_is_fresh`), so a killed run continues
where it stopped and a dataset regenerated in place is never served stale features. Problems are
collected for the whole dataset instead of stopping at the first (see ``data/validate.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reactcli.atomic import save_npy
from reactcli.config import ReactConfig
from reactcli.data.cache import FeatureCache, write_face_stats
from reactcli.data.features import FeatureExtractor
from reactcli.data.layout import DatasetLayout, check_split, mirrored, read_pairs
from reactcli.data.validate import Problem, check_clip, check_neighbours
from reactcli.errors import ReactError
from reactcli.progress import make_progress
from reactcli.vocab import CLIP_FRAMES, EMOTION_DIM, EMOTION_FRAMES, FACE_DIM


@dataclass
class SplitCounts:
    clips: int = 0
    cached: int = 0  # computed in this run
    skipped: int = 0  # already cached and fresh


@dataclass
class PreprocessResult:
    root: Path
    feature_tag: str
    counts: dict[str, SplitCounts]
    problems: list[Problem] = field(default_factory=list)
    face_stats: Path | None = None  # written when the train split was chosen and had no problem


def source_mtime(layout: DatasetLayout, split: str, clip: str) -> float | None:
    """Newest modification time of a clip's source files (None if one is missing)."""
    try:
        sources = [layout.face3dmm(split, clip), layout.emotion(split, clip), layout.audio(split, clip)]
        return max(p.stat().st_mtime for p in sources)
    except (ReactError, OSError):
        return None


def cache_is_fresh(path: Path, rows: int, cols: int | None, newer_than: float | None) -> bool:
    """A cache file counts as done only if it is a readable array of the right shape that is
    newer than its sources (a dataset regenerated in place must not reuse stale features)."""
    if newer_than is None or not path.is_file() or path.stat().st_mtime < newer_than:
        return False
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return False
    return array.ndim == 2 and array.shape[0] == rows and (cols is None or array.shape[1] == cols)


def preprocess_dataset(root: Path, cfg: ReactConfig, splits: list[str], device: str) -> PreprocessResult:
    """Check and cache every clip of ``splits`` under ``root``; write the train 3DMM statistics."""
    layout = DatasetLayout(root)
    cache = FeatureCache(root, cfg)
    extractor = FeatureExtractor(cfg.audio, device)
    chosen = [check_split(s) for s in splits]

    problems: list[Problem] = []
    jobs: list[tuple[str, str]] = []
    for split in chosen:
        try:
            samples = mirrored(read_pairs(layout.root, split))
        except ReactError as exc:
            problems.append(Problem.of(split, exc, layout.root / f"{split}.csv"))
            continue
        problems += check_neighbours(layout, split, samples)
        clips = dict.fromkeys(c for s in samples for c in (s.speaker, s.listener))
        jobs += [(split, clip) for clip in clips]

    counts = {split: SplitCounts() for split in chosen}
    with make_progress() as progress:
        task = progress.add_task("preprocess clips", total=len(jobs), info="")
        for split, clip in jobs:
            counts[split].clips += 1
            audio_path, face_path, emotion_path = cache.clip_paths(split, clip)
            source_time = source_mtime(layout, split, clip)
            if (
                cache_is_fresh(audio_path, CLIP_FRAMES, extractor.dim, source_time)
                and cache_is_fresh(face_path, CLIP_FRAMES, FACE_DIM, source_time)
                and cache_is_fresh(emotion_path, EMOTION_FRAMES, EMOTION_DIM, source_time)
            ):
                counts[split].skipped += 1
                progress.advance(task)
                continue
            clip_problems, loaded = check_clip(layout, split, clip)
            problems += clip_problems
            if not clip_problems:
                save_npy(face_path, loaded["face"])
                save_npy(emotion_path, loaded["emotion"])
                save_npy(audio_path, extractor(loaded["wave"], int(loaded["rate"])))
                counts[split].cached += 1
            progress.update(task, advance=1, info=f"{len(problems)} problems")

    result = PreprocessResult(layout.root, extractor.tag, counts, problems)
    if "train" in chosen and not any(p.split == "train" for p in problems):
        write_face_stats(cache, [clip for split, clip in jobs if split == "train"])
        result.face_stats = cache.face_stats()
    return result
