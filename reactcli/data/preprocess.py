"""Preprocessing, the stage: check every clip, fill the feature cache, compute the train statistics.

``react preprocess`` parses its options, calls :func:`preprocess_dataset` and prints the result.
The loop is resumable: a clip whose three cache files are readable arrays of the right shape and
whose identity record (``reactcli.freshness``: path, size and time of each source file) matches
today's sources is skipped (:func:`cache_is_fresh`), so a killed run continues where it stopped and
a dataset regenerated or copied in place is never served stale features. Problems are
collected for the whole dataset instead of stopping at the first (see ``data/validate.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reactcli.atomic import save_json, save_npy
from reactcli.config import ReactConfig
from reactcli.data.cache import FeatureCache, write_face_stats
from reactcli.data.features import FeatureExtractor
from reactcli.data.layout import DatasetLayout, check_split, mirrored, read_pairs
from reactcli.data.validate import Problem, check_clip, check_neighbours
from reactcli.errors import ReactError
from reactcli.freshness import identities, read_record, same_sources
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


def clip_sources(layout: DatasetLayout, split: str, clip: str) -> list[Path] | None:
    """The files a clip's cache entries are made from (None when one is missing: check_clip says which)."""
    try:
        return [layout.face3dmm(split, clip), layout.emotion(split, clip), layout.audio(split, clip)]
    except ReactError:
        return None


def sources_record(audio_features: Path) -> Path:
    """Where a clip's identity record lives: beside its audio features (one per feature setting),
    written after the three cache files, so a cache entry without it is unfinished."""
    return audio_features.with_name(audio_features.stem + ".sources.json")


def cache_is_fresh(record: Path, sources: list[Path] | None, outputs: list[tuple[Path, int, int | None]]) -> bool:
    """A clip's cache entry counts as done only if its identity record (``reactcli.freshness``) equals
    today's sources — path, size and time of the clip's 3DMM, emotion and wav, so a dataset
    regenerated or copied in place is never served stale features — and every output is a readable
    array of the right (rows, cols) shape (a file cut short by a full disk is not)."""
    if sources is None or not same_sources(read_record(record).get("sources"), identities(sources)):
        return False
    for path, rows, cols in outputs:
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError):
            return False
        if array.ndim != 2 or array.shape[0] != rows or (cols is not None and array.shape[1] != cols):
            return False
    return True


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
            sources = clip_sources(layout, split, clip)
            outputs = [
                (audio_path, CLIP_FRAMES, extractor.dim),
                (face_path, CLIP_FRAMES, FACE_DIM),
                (emotion_path, EMOTION_FRAMES, EMOTION_DIM),
            ]
            if cache_is_fresh(sources_record(audio_path), sources, outputs):
                counts[split].skipped += 1
                progress.advance(task)
                continue
            clip_problems, loaded = check_clip(layout, split, clip)
            problems += clip_problems
            if not clip_problems:
                save_npy(face_path, loaded["face"])
                save_npy(emotion_path, loaded["emotion"])
                save_npy(audio_path, extractor(loaded["wave"], int(loaded["rate"])))
                if sources is not None:  # written last: the entry is finished
                    save_json(sources_record(audio_path), {"sources": identities(sources)})
                counts[split].cached += 1
            progress.update(task, advance=1, info=f"{len(problems)} problems")

    result = PreprocessResult(layout.root, extractor.tag, counts, problems)
    if "train" in chosen and not any(p.split == "train" for p in problems):
        write_face_stats(cache, [clip for split, clip in jobs if split == "train"])
        result.face_stats = cache.face_stats()
    return result
