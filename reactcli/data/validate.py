"""Checks of every clip of a split, collected as (file, problem) rows instead of stopping at the first.

A dataset copied from a licence-gated release often has a few broken clips; a researcher wants
the whole list at once, not one error per rerun.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reactcli.data.layout import DatasetLayout, Sample
from reactcli.data.loaders import list_frame_files, load_audio, load_emotion, load_face3dmm, load_neighbours
from reactcli.errors import ReactError
from reactcli.vocab import CLIP_FRAMES, EMOTION_FRAMES


@dataclass(frozen=True)
class Problem:
    split: str
    path: str
    problem: str

    @classmethod
    def of(cls, split: str, exc: ReactError, path: str | Path) -> Problem:
        """The row for an error: its own path and problem, or ``path`` for an error that names no file."""
        return cls(split, str(path) if exc.path is None else exc.path, exc.problem)


def check_clip(layout: DatasetLayout, split: str, clip: str) -> tuple[list[Problem], dict[str, np.ndarray]]:
    """Load and check one clip's 3DMM, emotion, audio and video; returns problems and what loaded."""
    problems: list[Problem] = []
    loaded: dict[str, np.ndarray] = {}

    def problem(path: Path, text: str) -> None:
        problems.append(Problem(split, str(path), text))

    face_path = layout.face3dmm(split, clip)
    try:
        loaded["face"] = load_face3dmm(face_path)
        frames = np.load(face_path, allow_pickle=False, mmap_mode="r").shape[0]
        if frames != CLIP_FRAMES:  # more frames than 751: readable, but not the REACT time base
            problem(face_path, f"3DMM has {frames} frames, expected {CLIP_FRAMES}")
    except ReactError as exc:
        problems.append(Problem.of(split, exc, face_path))
    try:
        emotion_path = layout.emotion(split, clip)
    except ReactError as exc:  # neither spelling exists: the error's path lists both
        problems.append(Problem.of(split, exc, layout.root / split / "Emotion" / clip))
    else:
        try:
            loaded["emotion"] = load_emotion(emotion_path, frames=EMOTION_FRAMES)
            with open(emotion_path) as fh:
                rows = sum(1 for line in fh if line.strip()) - 1
            if rows != EMOTION_FRAMES:  # 750 rows for 751 frames is expected; anything else is not
                problem(emotion_path, f"emotion CSV has {rows} rows, expected {EMOTION_FRAMES}")
        except ReactError as exc:
            problems.append(Problem.of(split, exc, emotion_path))
    audio_path = layout.audio(split, clip)
    try:
        loaded["wave"], rate = load_audio(audio_path)
        loaded["rate"] = np.asarray(rate)
    except ReactError as exc:
        problems.append(Problem.of(split, exc, audio_path))
    video_root = layout.root / split / "Video_files"
    if video_root.is_dir():  # video is optional for a split, but then every clip needs one
        video = layout.video(split, clip)
        if video is None:
            problem(video_root / clip, "video not found (neither .mp4 nor a frame folder)")
        elif video.is_dir():
            try:
                count = len(list_frame_files(video))
                if count != CLIP_FRAMES:
                    problem(video, f"frame folder has {count} frames, expected {CLIP_FRAMES}")
            except ReactError as exc:
                problems.append(Problem.of(split, exc, video))
    return problems, loaded


def check_neighbours(layout: DatasetLayout, split: str, samples: list[Sample]) -> list[Problem]:
    path = layout.neighbours(split)
    if split == "train" or not path.is_file():
        return [] if split == "train" else [Problem(split, str(path), "neighbour matrix not found")]
    try:
        load_neighbours(path, len(samples))
    except ReactError as exc:
        return [Problem.of(split, exc, path)]
    return []
