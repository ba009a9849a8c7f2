"""``react render`` (and FRRea) on a REACT 2025/2026 (MARS) split: samples, files, predictions, clip choice.

MARS differs from REACT 2024 in everything ``react render`` reads (docs/mars.md): a sample is an input
recording and its dyad partner (:class:`reactcli.data.mars.MarsSample`, id = the input's
``<role>/session<k>/<stem>``), listed in the official sorted order, one direction (2026:
speaker -> listener) or both (2025); recordings run from 58 to more than 20 000 frames at 30 fps;
the files are ``<root>/<split>/<modality>/<id>.<ext>``. :class:`MarsClips` is the
:class:`reactcli.render.clips.ClipData` of such a split, so the rest of rendering (chunked decode ->
rasterize -> compose -> encode, ``render.json``) is shared with REACT 2024.

Choices, all documented in docs/mars.md ("Rendering and FRRea"):

- **Which predictions.** A ragged (or dense) ``PredictionSet`` whose ids are the split's sample ids
  in order. The direction is the one whose sample list the ids match (the edition's default tried
  first), so a 2025 bidirectional set and a 2026 speaker -> listener set both render without an
  option; a set without ids is matched by its sample count. Its 3DMM is read through
  :mod:`reactcli.render.face_space` (raw unless the record says otherwise).
- **Lengths.** A video has the prediction's frames (``--max-frames`` cuts it); a prediction may
  differ from its input recording's facial-attributes length by at most one second, as
  ``react evaluate`` allows (the official loader takes the length from the face-crop video, which
  can be a frame or two off); the listener's ground-truth mesh repeats its last frame if it is
  shorter, and a face-crop video likewise.
- **Which clips.** MARS has no submission list: by default :data:`DEFAULT_CLIPS` samples, the
  first of each session in the sorted order (so they show different scripted sessions), then the
  next ones in order if there are fewer sessions; ``--clips ID,...`` names samples, ``--limit N``
  takes the first N in order, ``--all`` every sample.
- **Reaction.** Prediction 0 unless ``--sample`` says otherwise (FRRea renders prediction 0 too).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reactcli.data.mars import MarsSample, Recording, list_recordings
from reactcli.data.mars_loaders import load_attributes, load_coefficients, load_mars_npy
from reactcli.editions import MARS_FPS, Edition, detect_edition
from reactcli.errors import ReactError, file_error
from reactcli.predictions import PredictionSet
from reactcli.render.clips import ClipJob

#: Frames a prediction may differ from its input's facial-attributes length (one second), as in
#: ``react evaluate``.
LENGTH_TOLERANCE = MARS_FPS
#: Samples rendered when neither --clips, --limit nor --all is given.
DEFAULT_CLIPS = 4
VIDEO_FOLDER = "video-face-crop"
EXTENSIONS = {"facial-attributes": ".npy", "coefficients": ".npy", "audio": ".wav", VIDEO_FOLDER: ".mp4"}


def render_edition(root: Path, requested: str | None, record: dict[str, Any] | None = None) -> Edition:
    """The edition of ``root`` (``--edition`` when given). A MARS root that cannot tell 2025 from
    2026 takes the prediction set's recorded edition instead of asking, when it names one."""
    try:
        return detect_edition(root, requested)
    except ReactError:
        recorded = (record or {}).get("edition")
        if requested is None and recorded in ("2025", "2026"):
            return detect_edition(root, recorded)
        raise


@dataclass
class MarsClips:
    """The MARS split a render or FRRea reads: its samples and each recording's files.

    Implements :class:`reactcli.render.clips.ClipData` (clips are recording ids). A split without a
    ``video-face-crop`` folder renders without video panels (as REACT 2024 data without video);
    with the folder, every recording must have its mp4.
    """

    root: Path
    split: str
    edition: Edition
    samples: list[MarsSample]
    fps: int = MARS_FPS
    max_frames: int | None = None
    fit_audio: bool = True
    default_reaction: int | None = 0
    plot_frames: int | None = None
    entry: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fps = self.edition.fps
        self.entry = {"edition": self.edition.name, "fps": self.fps}

    @property
    def base(self) -> Path:
        return Path(self.root) / self.split

    @property
    def has_video(self) -> bool:
        return (self.base / VIDEO_FOLDER).is_dir()

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.samples]

    def path(self, modality: str, clip: str) -> Path:
        return self.base / modality / f"{clip}{EXTENSIONS[modality]}"

    def video(self, clip: str) -> Path | None:
        """The recording's face-crop mp4; None when the split has no ``video-face-crop`` folder."""
        if not self.has_video:
            return None
        return self.require_video(clip, f"face-crop video missing (the split's {VIDEO_FOLDER} folder lacks it)")

    def require_video(self, clip: str, why: str) -> Path:
        path = self.path(VIDEO_FOLDER, clip)
        if not path.is_file():
            raise file_error(path, why)
        return path

    def audio(self, clip: str) -> Path:
        return self.path("audio", clip)

    def face3dmm(self, clip: str) -> np.ndarray:
        return load_coefficients(self.path("coefficients", clip))

    def emotion(self, clip: str) -> np.ndarray:
        return load_attributes(self.path("facial-attributes", clip))

    def input_frames(self, index: int) -> int:
        """Frames of sample ``index``'s input recording: its facial attributes' rows (header only)."""
        path = self.path("facial-attributes", self.samples[index].id)
        return int(load_mars_npy(path, "facial-attributes", mmap_mode="r").shape[0])

    def jobs(self) -> list[ClipJob]:
        """Every sample as a render job: the input drives, its partner reacts."""
        return [ClipJob(n, s.input.id, s.target.id) for n, s in enumerate(self.samples)]

    def check_jobs(self, jobs: Iterable[ClipJob], predictions: PredictionSet) -> None:
        """Everything a clip will read, before the first is rendered: each prediction's length against
        its input recording (:func:`check_length`), the speaker's wav, the listener's coefficients
        (the ground-truth mesh) and, when the split has video, both people's mp4s."""
        for job in jobs:
            check_length(self, predictions, job.index)
            audio = self.audio(job.speaker)
            if not audio.is_file():
                raise file_error(audio, "speaker audio not found (needed for the video's sound)")
            coefficients = self.path("coefficients", job.listener)
            if not coefficients.is_file():
                raise file_error(coefficients, "listener 3DMM coefficients not found (the ground-truth mesh panel)")
            for clip in (job.speaker, job.listener):
                self.video(clip)


def check_length(clips: MarsClips, predictions: PredictionSet, index: int) -> None:
    """Sample ``index``'s 3DMM must be within :data:`LENGTH_TOLERANCE` frames of its input recording."""
    have = predictions.face_lengths[index]  # type: ignore[index] (sets here hold 3DMM)
    want = clips.input_frames(index)
    if abs(have - want) > LENGTH_TOLERANCE:
        raise file_error(
            predictions.face_path or predictions.path,
            f"sample {index} ('{clips.samples[index].id}') has {have} frames of 3DMM but its input recording has "
            f"{want} (more than {LENGTH_TOLERANCE} frames, one second, apart): predictions of another split or length",
        )


def mars_samples_for(
    root: Path, split: str, predictions: PredictionSet, edition: Edition, bidirectional: bool | None = None
) -> list[MarsSample]:
    """The split's samples the prediction set is in (module docstring: ids decide the direction).

    ``bidirectional`` fixes the direction (``--bidirectional``); otherwise the edition's default is
    tried first, then the other. A set that matches neither is the one-line error of
    ``validate_against`` for the edition's direction, naming the first sample that differs.
    """
    listing = list_recordings(root, split)
    order = [bidirectional] if bidirectional is not None else [edition.bidirectional, not edition.bidirectional]
    for both in order:
        samples = listing.samples(both)
        ids = [s.id for s in samples]
        if (predictions.named and predictions.ids == ids) or (not predictions.named and len(predictions) == len(ids)):
            return samples
    samples = listing.samples(order[0])
    direction = "both directions" if order[0] else "speaker -> listener"
    source = f"the {split} split's {len(samples)} samples ({direction}, in the official sorted order)"
    predictions.validate_against([s.id for s in samples], source=source)
    raise file_error(predictions.path, f"does not match {source}")  # validate_against found the difference


def open_mars_clips(
    root: Path,
    split: str,
    predictions: Path,
    requested_edition: str | None = None,
    bidirectional: bool | None = None,
    why: str = "react render draws the generated 3DMM",
) -> tuple[MarsClips, PredictionSet]:
    """The split's :class:`MarsClips` and the prediction set (3DMM required), matched to each other."""
    preds = PredictionSet.open(predictions)
    preds.require("face3dmm", why)
    edition = render_edition(root, requested_edition, preds.record)
    if not edition.is_mars:
        raise ReactError(path=root, problem="is a REACT 2024 dataset, not MARS")
    samples = mars_samples_for(root, split, preds, edition, bidirectional)
    return MarsClips(Path(root), split, edition, samples), preds


def parse_clip_ids(values: Sequence[str] | None) -> list[str] | None:
    """``--clips`` values (repeatable, each comma-separated) as ids, in the order given, without repeats."""
    if not values:
        return None
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            text = part.strip().strip("/")
            if text and text not in out:
                out.append(text)
    return out or None


def select_mars_jobs(
    clips: MarsClips, chosen: Sequence[str] | None = None, limit: int | None = None, every: bool = False
) -> list[ClipJob]:
    """The samples to render, in the split's order (module docstring): ``chosen`` ids, else all
    (``every``) or the first ``limit``, else :func:`default_jobs`; ``limit`` also caps a choice."""
    jobs = clips.jobs()
    if chosen:
        by_id = {job.speaker: job for job in jobs}
        for clip in chosen:
            if clip not in by_id:
                try:
                    Recording.from_id(clip)
                    why = "is not an input of this split's samples"
                except ValueError as exc:
                    why = str(exc).removeprefix(f"'{clip}' ")
                example = f" (e.g. '{jobs[0].speaker}')" if jobs else ""
                raise ReactError(f"--clips {clip}: {why} in {clips.split}; sample ids are input recordings{example}")
        wanted = set(chosen)
        jobs = [job for job in jobs if job.speaker in wanted]
    elif not every and limit is None:
        jobs = default_jobs(jobs)
    return jobs if limit is None else jobs[:limit]


def default_jobs(jobs: list[ClipJob], count: int = DEFAULT_CLIPS) -> list[ClipJob]:
    """The first sample of each session in order (different scripted sessions), topped up with the
    next samples in order when the split has fewer sessions; at most ``count``, in the split's order."""
    picked: list[ClipJob] = []
    sessions: set[str] = set()
    for job in jobs:
        session = Recording.from_id(job.speaker).session
        if session not in sessions and len(picked) < count:
            sessions.add(session)
            picked.append(job)
    for job in jobs:
        if len(picked) >= count:
            break
        if job not in picked:
            picked.append(job)
    return sorted(picked, key=lambda job: job.index)


__all__ = [
    "DEFAULT_CLIPS",
    "LENGTH_TOLERANCE",
    "MarsClips",
    "check_length",
    "default_jobs",
    "mars_samples_for",
    "open_mars_clips",
    "parse_clip_ids",
    "render_edition",
    "select_mars_jobs",
]
