"""``react render`` over a split: which clips, which predictions, one mp4 + one PNG per clip.

A clip's video has up to four equal 224 x 224 panels, left to right: the speaker's video, the
listener's ground-truth video (when the dataset has video), the listener's ground-truth 3DMM mesh
and the generated reaction mesh, at the data's frame rate with the speaker's audio; ``--photo`` adds
a fifth, the generated reaction rendered photo-realistically by PIRender (``reactcli.render.photo``).
Where the clips come from is a :class:`ClipData`: :class:`DatasetClips` here for REACT 2024 (sample
``n`` of the mirrored order, rows then roles swapped, 25 fps, at most 751 frames) and
``render/mars_clips.py`` for REACT 2025/2026 (MARS: 30 fps, any length). A video is named after its
sample's speaker clip (MARS: its input recording): ``<out>/<clip slug>.mp4`` and ``<out>/<clip
slug>_emotion.png``. Frames are produced in chunks (video decode -> rasterize -> compose -> encode),
so memory stays flat however long the clip. Each video is written to a
temp name and renamed; ``<out>/render.json`` then records it (sources by identity, reaction, frames,
panel width, size and sha256), so a rerun skips exactly the finished videos and
``react package-submission`` can tell a finished video from a stale or foreign one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from reactcli.atomic import atomic_path, save_json
from reactcli.data.layout import SUBMISSION_CLIPS, DatasetLayout, Sample, clip_slug, mirrored, read_pairs
from reactcli.data.loaders import iter_video_frames
from reactcli.errors import ReactError, file_error
from reactcli.freshness import identity, read_record, same_sources, sha256_file
from reactcli.predictions import PredictionSet, sample_ids
from reactcli.render.camera import Camera
from reactcli.render.compose import Label, fit_square, pad_frames, side_by_side
from reactcli.render.face_model import FaceModel
from reactcli.render.face_space import FaceSpace
from reactcli.render.video import Mp4Writer
from reactcli.vocab import CLIP_FRAMES, EVAL_FRAMES, FPS, GENERATION_FILE

if TYPE_CHECKING:
    from reactcli.render.photo import PhotoRenderer


@dataclass(frozen=True)
class ClipJob:
    """One video to make: mirrored sample ``index`` (speaker drives, listener reacts)."""

    index: int
    speaker: str
    listener: str

    @property
    def name(self) -> str:
        return clip_slug(self.speaker)


def video_name(clip: str) -> str:
    """The file name ``react render`` gives the video of the sample whose speaker is ``clip``."""
    return f"{clip_slug(clip)}.mp4"


def plot_name(clip: str) -> str:
    return f"{clip_slug(clip)}_emotion.png"


def select_jobs(root: Path, split: str, submit_only: bool, limit: int | None) -> tuple[list[ClipJob], list[str]]:
    """The samples to render and, for ``submit_only``, the submission clips the split lacks.

    Submission clips are speaker paths of CSV rows, i.e. the first half of the mirrored order. If
    any is missing (a split other than val, or a reduced val list), the first four samples are
    rendered instead so that the command still shows something.
    """
    pairs = read_pairs(root, split)
    samples = mirrored(pairs)
    jobs = [ClipJob(n, s.speaker, s.listener) for n, s in enumerate(samples)]
    missing: list[str] = []
    if submit_only:
        row_of = {p.speaker: i for i, p in enumerate(pairs)}
        missing = [clip for clip in SUBMISSION_CLIPS if clip not in row_of]
        jobs = [jobs[row_of[clip]] for clip in SUBMISSION_CLIPS] if not missing else jobs[:4]
    if limit is not None:
        jobs = jobs[:limit]
    return jobs, missing


def open_predictions(path: Path, root: Path, split: str) -> PredictionSet:
    """The prediction set to render (``reactcli.predictions``), checked against the split: its samples
    in the mirrored order, a 3DMM of at least 750 frames each (the emotion is optional: plots)."""
    preds = PredictionSet.open(path)
    preds.require("face3dmm", "react render draws the generated 3DMM")
    samples: list[Sample] = mirrored(read_pairs(root, split))
    source = f"the {split} split: 2 x {len(samples) // 2} rows, mirrored order"
    return preds.validate_against(sample_ids(samples), EVAL_FRAMES, source, face_lengths=EVAL_FRAMES, exact=False)


class ClipData(Protocol):
    """What ``react render`` reads about a sample's two people from a dataset (by clip or recording id).

    ``fps`` is the data's frame rate (the plots' time axis; MARS videos are written at it, REACT
    2024 ones at ``render.fps``); ``max_frames`` caps a video (REACT 2024: 751, None: any length);
    ``fit_audio`` makes the sound exactly as long as the video (MARS wavs differ from their videos
    by a fraction of a second); ``default_reaction`` is the reaction shown without ``--sample``
    (None: one drawn from the seed); ``plot_frames`` cuts the emotion plot; ``entry`` adds keys to
    each ``render.json`` entry.
    """

    split: str
    fps: int
    max_frames: int | None
    fit_audio: bool
    default_reaction: int | None
    plot_frames: int | None
    entry: dict[str, Any]

    def video(self, clip: str) -> Path | None: ...
    def require_video(self, clip: str, why: str) -> Path: ...
    def audio(self, clip: str) -> Path: ...
    def face3dmm(self, clip: str) -> np.ndarray: ...
    def emotion(self, clip: str) -> np.ndarray: ...


@dataclass
class DatasetClips:
    """REACT 2024 clips of one split (``DatasetLayout``): 751 frames at 25 fps, mp4 or frame folders."""

    layout: DatasetLayout
    split: str
    fps: int = FPS
    max_frames: int | None = CLIP_FRAMES
    fit_audio: bool = False
    default_reaction: int | None = None
    plot_frames: int | None = EVAL_FRAMES
    entry: dict[str, Any] = field(default_factory=dict)

    def video(self, clip: str) -> Path | None:
        return self.layout.video(self.split, clip)

    def require_video(self, clip: str, why: str) -> Path:
        return self.layout.require_video(self.split, clip, why)

    def audio(self, clip: str) -> Path:
        return self.layout.audio(self.split, clip)

    def face3dmm(self, clip: str) -> np.ndarray:
        from reactcli.data.loaders import load_face3dmm

        return load_face3dmm(self.layout.face3dmm(self.split, clip))

    def emotion(self, clip: str) -> np.ndarray:
        from reactcli.data.loaders import load_emotion

        return load_emotion(self.layout.emotion(self.split, clip))


class _ChunkReader:
    """Hands out exactly ``n`` frames at a time from a video, resized to the panel size."""

    def __init__(self, path: Path | None, size: int, chunk: int) -> None:
        self.size = size
        self._it: Iterator[np.ndarray] | None = None if path is None else iter_video_frames(path, chunk)
        self._buf = np.zeros((0, size, size, 3), np.uint8)
        self._last: np.ndarray | None = None

    def take(self, n: int) -> np.ndarray:
        while self._it is not None and len(self._buf) < n:
            nxt = next(self._it, None)
            if nxt is None:
                self._it = None
                break
            self._buf = np.concatenate([self._buf, fit_square(nxt, self.size)])
        out, self._buf = self._buf[:n], self._buf[n:]
        if len(out):
            self._last = out[-1:]
        return pad_frames(out if len(out) else self._last, n, self.size)

    def close(self) -> None:
        """Stop the decoder (its ffmpeg process) when a clip ends before the video does."""
        if self._it is not None:
            self._it.close()  # type: ignore[attr-defined]
            self._it = None


@dataclass
class RenderContext:
    """Everything shared by the clips of one ``react render`` call."""

    data: ClipData
    predictions: PredictionSet
    model: FaceModel
    renderer: object  # MeshRenderer or Pytorch3dRenderer: .render(vertices) -> (B, S, S, 3) uint8
    camera: Camera
    out: Path
    fps: int = 25
    chunk: int = 16
    max_frames: int | None = None
    sample: int | None = None
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    photo: PhotoRenderer | None = None  # --photo: PIRender adds the "generated (photo)" panel
    reference_image: np.ndarray | None = None  # --reference-image: replaces the listener's first frame
    face_space: FaceSpace = field(default_factory=FaceSpace)  # the predictions' 3DMM space (raw for ours)

    @property
    def split(self) -> str:
        return self.data.split

    def sample_for(self, job: ClipJob) -> int:
        chosen = self.sample if self.sample is not None else self.data.default_reaction
        return choose_reaction(self.predictions.K, chosen, self.seed, job.index)

    def frames_for(self, job: ClipJob) -> int:
        """Frames of ``job``'s video: its generated clip, at most a REACT 2024 clip, cut by ``--max-frames``."""
        length = self.predictions.face_lengths[job.index]  # type: ignore[index] (open_predictions requires it)
        return min(length, self.data.max_frames or length, self.max_frames or length)


def choose_reaction(samples: int, sample: int | None, seed: int, index: int) -> int:
    """``--sample`` when given, else one of the K reactions drawn from (seed, sample index)."""
    if sample is not None:
        if not 0 <= sample < samples:
            raise ReactError(f"--sample {sample}: the predictions hold K = {samples} reactions (0..{samples - 1})")
        return sample
    return int(np.random.default_rng([seed, index]).integers(samples))


def _clip_coeffs(ctx: RenderContext, job: ClipJob, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ground truth and generated raw coefficients cut to the frames shown, plus the whole generated
    clip (the photo renderer's 27-frame windows look past the last frame of a ``--max-frames``
    preview). A ground truth shorter than the video (MARS: a frame or two) repeats its last frame."""
    gt = ctx.data.face3dmm(job.listener)
    ctx.predictions.check_values("face3dmm", [job.index], reactions=[k])
    gen = ctx.face_space.to_raw(ctx.predictions.face3dmm(job.index)[k])  # type: ignore[index] (a copy of the mmap)
    frames = ctx.frames_for(job)
    gt = gt[:frames] if len(gt) >= frames else np.concatenate([gt, np.repeat(gt[-1:], frames - len(gt), axis=0)])
    return gt, gen[:frames], gen


def photo_reference_source(ctx: RenderContext, job: ClipJob) -> Path | None:
    """Where the reference image of ``job`` comes from: the listener's video (None with --reference-image).

    A dataset without listener video cannot drive PIRender, so that is one error naming the path
    that was looked for, raised before any clip is rendered.
    """
    if ctx.reference_image is not None:
        return None
    return ctx.data.require_video(
        job.listener,
        "no listener video (mp4 or frame folder): --photo takes its reference image from the listener's "
        "first ground-truth frame; give --reference-image PNG for data without video",
    )


def panel_count(ctx: RenderContext, job: ClipJob) -> int:
    """Panels of ``job``'s video: the speaker and listener videos that exist, two meshes, the photo one."""
    videos = sum(ctx.data.video(clip) is not None for clip in (job.speaker, job.listener))
    return videos + 2 + (ctx.photo is not None)


def render_clip(ctx: RenderContext, job: ClipJob, on_frames: object = None) -> tuple[Path, int]:
    """Write ``<out>/<slug>.mp4`` for one sample; returns the path and the reaction index shown.

    ``on_frames(n)`` is called after each chunk (progress reporting).
    """
    from reactcli.render.photo import first_video_frame

    k = ctx.sample_for(job)
    gt, gen, whole = _clip_coeffs(ctx, job, k)
    audio = ctx.data.audio(job.speaker)
    if not audio.is_file():
        raise file_error(audio, "speaker audio not found (needed for the video's sound)")
    size = ctx.camera.size
    sources = []
    for clip, label in ((job.speaker, "speaker"), (job.listener, "listener (real)")):
        path = ctx.data.video(clip)
        if path is not None:
            sources.append((_ChunkReader(path, size, ctx.chunk), Label.make(label, size)))
    mesh_labels = [Label.make("listener GT 3DMM", size), Label.make(f"generated reaction #{k}", size)]
    reference = None
    if ctx.photo is not None:
        source = photo_reference_source(ctx, job)
        frame = ctx.reference_image if source is None else first_video_frame(source)
        reference = ctx.photo.reference(frame)
        mesh_labels.append(Label.make(f"generated (photo) #{k}", size))
    width = size * panel_count(ctx, job)
    target = ctx.out / video_name(job.speaker)
    frames = len(gt)
    ctx.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        seconds = frames / ctx.fps if ctx.data.fit_audio else None  # the sound ends with the last frame
        writer = Mp4Writer(tmp, width, size, fps=ctx.fps, audio=audio, audio_seconds=seconds)
        try:
            for start in range(0, frames, ctx.chunk):
                n = min(ctx.chunk, frames - start)
                coeffs = torch.from_numpy(np.concatenate([gt[start : start + n], gen[start : start + n]]))
                meshes = ctx.renderer.render(ctx.model.vertices(coeffs.to(ctx.device))).cpu().numpy()  # type: ignore[attr-defined]
                panels = [reader.take(n) for reader, _ in sources] + [meshes[:n], meshes[n:]]
                if reference is not None:  # set exactly when ctx.photo is
                    photo = ctx.photo.render(whole, reference, range(start, start + n))
                    panels.append(fit_square(photo, size))
                labels = [label for _, label in sources] + mesh_labels
                writer.write(side_by_side(panels, labels))
                if callable(on_frames):
                    on_frames(n)
        finally:
            for reader, _ in sources:
                reader.close()
            writer.close()
    return target, k


def render_plot(ctx: RenderContext, job: ClipJob, k: int) -> Path | None:
    """``<out>/<slug>_emotion.png`` (None when the predictions have no emotion.npy)."""
    from reactcli.render.plots import plot_emotion

    if not ctx.predictions.has_emotion:
        return None
    frames = ctx.data.plot_frames
    ctx.predictions.check_values("emotion", [job.index], frames=frames)
    generated = np.asarray(ctx.predictions.emotion(job.index)[:, :frames], dtype=np.float32)
    truth = ctx.data.emotion(job.listener)
    target = ctx.out / plot_name(job.speaker)
    title = f"{ctx.split} sample {job.index}: {job.speaker} -> {job.listener}"
    plot_emotion(target, generated, truth, k, title, fps=ctx.data.fps)
    return target


@dataclass
class ClipResult:
    job: ClipJob
    video: Path
    plot: Path | None
    reaction: int
    status: str  # "rendered" or "skipped (exists)"


#: ``<out>/render.json``: which finished video shows what (see :func:`record_video`).
RENDER_MANIFEST = "render.json"
RENDER_FORMAT = "reactcli-render/1"


def video_sources(ctx: RenderContext) -> dict[str, Any]:
    """The identity of what a video is made from (``reactcli.freshness``): the generated 3DMM file,
    the prediction set's record (by sha256, so the check survives copying the run folder) and,
    with ``--photo``, the PIRender weights."""
    face = ctx.predictions.face_path
    record = ctx.predictions.path / GENERATION_FILE
    return {
        "predictions": identity(face) if face is not None else None,
        "record_sha256": sha256_file(record) if record.is_file() else None,
        "pirender": identity(ctx.photo.path) if ctx.photo is not None and ctx.photo.path is not None else None,
    }


def video_entry(ctx: RenderContext, job: ClipJob, k: int) -> dict[str, Any]:
    """What ``render.json`` records for ``job``'s video: the sample, the reaction shown, the frame
    count and panel width asked for, and its sources."""
    return {
        "sample": job.index, "speaker": job.speaker, "reaction": k, "frames": ctx.frames_for(job),
        "width": panel_count(ctx, job) * ctx.camera.size, "sources": video_sources(ctx), **ctx.data.entry,
    }  # fmt: skip


def read_manifest(folder: Path) -> dict[str, Any]:
    """The ``videos`` of ``<folder>/render.json`` (empty when there is none or it is unreadable)."""
    videos = read_record(Path(folder) / RENDER_MANIFEST).get("videos")
    return videos if isinstance(videos, dict) else {}


def record_video(folder: Path, video: Path, entry: dict[str, Any]) -> None:
    """Add a finished ``video`` to ``<folder>/render.json`` with its ``entry`` plus its size and sha256.

    Called after the video (and its plot) is in place, so the manifest only ever lists finished
    videos: a rerun skips exactly those whose entry and file still match (:func:`finished`), and
    ``react package-submission`` refuses a video the manifest does not vouch for.
    """
    videos = read_manifest(folder)
    videos[video.name] = {**entry, "bytes": video.stat().st_size, "sha256": sha256_file(video)}
    save_json(Path(folder) / RENDER_MANIFEST, {"format": RENDER_FORMAT, "videos": dict(sorted(videos.items()))})


def finished(video: Path, entry: dict[str, Any], manifest: dict[str, Any]) -> bool:
    """A video from an earlier run counts as done only if ``render.json`` lists it with today's entry
    (same sources by identity, reaction, frame count and panel width: a retrained model's reactions
    do not hide behind old videos, nor does a mesh-only video pass for a ``--photo`` one) and the
    file is the one recorded (size and sha256)."""
    stored = manifest.get(video.name)
    if not isinstance(stored, dict) or not video.is_file():
        return False
    recorded = {key: value for key, value in stored.items() if key not in ("bytes", "sha256")}
    if not same_sources(recorded, entry):
        return False
    return stored.get("bytes") == video.stat().st_size and stored.get("sha256") == sha256_file(video)


def recorded_video_problem(folder: Path, name: str, record: Path | None = None) -> str | None:
    """Why ``<folder>/<name>`` is not a finished video of ``react render`` (None when it is): not in
    ``render.json``, changed since, or (given the run's ``generation.json``) rendered from other
    predictions. ``react package-submission`` asks this of every submission video."""
    video = Path(folder) / name
    stored = read_manifest(folder).get(name)
    if not isinstance(stored, dict):
        return f"not in {RENDER_MANIFEST} (an unfinished or older render; render it again)"
    if stored.get("bytes") != video.stat().st_size or stored.get("sha256") != sha256_file(video):
        return f"differs from the video {RENDER_MANIFEST} records (changed after rendering; render it again)"
    sources = stored.get("sources")
    made_from = sources.get("record_sha256") if isinstance(sources, dict) else None
    if record is not None and record.is_file() and made_from is not None and made_from != sha256_file(record):
        return f"rendered from other predictions than {record} (its record differs); render it again"
    return None


def render_jobs(ctx: RenderContext, jobs: list[ClipJob]) -> list[ClipResult]:
    """Render every job with a progress bar over clips and one over the current clip's frames."""
    from reactcli.progress import make_progress

    if ctx.photo is not None:
        for job in jobs:  # a missing listener video fails now, not after hours of rendering
            photo_reference_source(ctx, job)
    results: list[ClipResult] = []
    manifest = read_manifest(ctx.out)
    with make_progress() as progress:
        clips_task = progress.add_task("clips", total=len(jobs), info="")
        frames_task = progress.add_task("frames", total=ctx.frames_for(jobs[0]) if jobs else 0, info="")
        for job in jobs:
            video = ctx.out / video_name(job.speaker)
            k = ctx.sample_for(job)
            entry = video_entry(ctx, job, k)
            if finished(video, entry, manifest):
                status = "skipped (exists)"
            else:
                progress.reset(frames_task, total=entry["frames"], info=job.name)
                video, k = render_clip(ctx, job, on_frames=lambda n: progress.advance(frames_task, n))
                status = "rendered"
            plot = ctx.out / plot_name(job.speaker)
            if status == "rendered" or not plot.is_file():
                plot = render_plot(ctx, job, k)
            if status == "rendered":
                record_video(ctx.out, video, entry)  # last: the manifest lists finished videos only
            results.append(ClipResult(job, video, plot, k, status))
            progress.advance(clips_task)
    return results
