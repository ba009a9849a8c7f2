"""Checks of every clip of a split, collected as (file, problem) rows instead of stopping at the first.

A dataset copied from a licence-gated release often has a few broken clips; a researcher wants
the whole list at once, not one error per rerun.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reactcli.data.layout import CLIP_FRAMES, EMOTION_FRAMES, DatasetLayout, Sample
from reactcli.data.loaders import list_frame_files, load_audio, load_emotion, load_face3dmm, load_neighbours
from reactcli.errors import ReactError


@dataclass(frozen=True)
class Problem:
    split: str
    path: str
    problem: str


def _message(exc: ReactError, path: Path) -> str:
    text = str(exc)
    prefix = f"{path}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def check_clip(layout: DatasetLayout, split: str, clip: str) -> tuple[list[Problem], dict[str, np.ndarray]]:
    """Load and check one clip's audio, 3DMM and emotion; returns problems and what loaded."""
    problems: list[Problem] = []
    loaded: dict[str, np.ndarray] = {}
    face_path = layout.face3dmm(split, clip)
    try:
        raw = np.load(face_path, allow_pickle=False, mmap_mode="r") if face_path.is_file() else None
        loaded["face"] = load_face3dmm(face_path)
        if raw is not None and raw.shape[0] != CLIP_FRAMES:
            problems.append(Problem(split, str(face_path), f"{raw.shape[0]} frames, expected {CLIP_FRAMES}"))
    except (ReactError, ValueError) as exc:
        problems.append(Problem(split, str(face_path), _message(exc, face_path) if isinstance(exc, ReactError) else str(exc)))
    try:
        emotion_path = layout.emotion(split, clip)
        loaded["emotion"] = load_emotion(emotion_path, frames=EMOTION_FRAMES)
        rows = sum(1 for _ in open(emotion_path)) - 1
        if "face" in loaded and rows != EMOTION_FRAMES:
            problems.append(
                Problem(split, str(emotion_path), f"{rows} rows for {CLIP_FRAMES} 3DMM frames (expected {EMOTION_FRAMES})")
            )
    except ReactError as exc:
        problems.append(Problem(split, str(exc).split(": ")[0], str(exc).split(": ", 1)[-1]))
    audio_path = layout.audio(split, clip)
    try:
        loaded["wave"], rate = load_audio(audio_path)
        loaded["rate"] = np.asarray(rate)
    except ReactError as exc:
        problems.append(Problem(split, str(audio_path), _message(exc, audio_path)))
    video_root = layout.root / split / "Video_files"
    if video_root.is_dir():
        video = layout.video(split, clip)
        if video is None:
            problems.append(Problem(split, str(video_root / clip), "video not found (.mp4 or frame folder)"))
        elif video.is_dir():
            try:
                count = len(list_frame_files(video))
                if count < CLIP_FRAMES:
                    problems.append(Problem(split, str(video), f"{count} frames, expected {CLIP_FRAMES}"))
            except ReactError as exc:
                problems.append(Problem(split, str(video), _message(exc, video)))
    return problems, loaded


def check_neighbours(layout: DatasetLayout, split: str, samples: list[Sample]) -> list[Problem]:
    path = layout.neighbours(split)
    if split == "train" or not path.is_file():
        return [] if split == "train" else [Problem(split, str(path), "neighbour matrix not found")]
    try:
        load_neighbours(path, len(samples))
    except ReactError as exc:
        return [Problem(split, str(path), _message(exc, path))]
    return []
