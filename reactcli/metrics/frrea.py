"""FRRea as the REACT organisers compute it: PIRender frames of the predictions against real frames.

The realism score is an FID, and an FID depends on which frames go in. Published FRRea values are
comparable only under one frame protocol, so the protocol is named in the metrics JSON with the
frame counts and the extractor. Three protocols:

- ``official-2024`` (the REACT 2024 baseline's): the first of the K generated reactions of each
  sample, frames 0, 30, 60, ... of the 750 evaluated ones (25 per clip), and only the samples the
  baseline's evaluation loop saves, those in batches ``batch_idx % 25 == 0`` at batch size 4,
  i.e. samples ``n`` with ``(n // 4) % 25 == 0`` (about 48 clips and 1,200 frames per side on val);
- ``all``: the same frames and reaction for every REACT 2024 sample, more frames and so a steadier
  estimate;
- ``official-mars`` (REACT 2025/2026, :func:`prepare_frrea_mars`; the one readable MARS FRRea,
  CaReDiff's ``render_frames_for_fid``): prediction 0 of **every** sample, every 30th frame (one per
  second at 30 fps): fake frames 0, 30, ... of the prediction, real frames 0, 30, ... of the
  listener's ``video-face-crop`` video (each side over its own length, so they may differ by a
  frame per sample), the reference image frame 0 of that video, both through Resize 224 +
  CenterCrop 224, the translation z handed to PIRender minus mean_face[57] (``render/photo.py``
  explains why); all samples pooled, one FID.

Fake frames are PIRender renders (``reactcli.render.photo``: the listener's first video frame as
reference, 27-frame clamped windows of the whole clip, truncation to uint8); real frames are the
listener's video frames through the same resize, crop and conversion. Both are written as
224 x 224 PNGs named ``<sample>_<frame>.png`` under ``<dir>/real`` and ``<dir>/fake``, and the FID
of the two folders is computed as ``react fid`` (and ``python -m pytorch_fid``) computes it, so
``react fid <dir>/real <dir>/fake`` reproduces the number. Videos are decoded in one streaming pass
per sample and each real frame is written as it is decoded, so a 20 000-frame recording costs one
decoded chunk of memory.

This is the one metric that renders, so it imports ``reactcli.render`` (the layer below); render
never imports metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reactcli.atomic import atomic_path, save_json
from reactcli.data.layout import DatasetLayout, Sample, mirrored, read_pairs
from reactcli.errors import ReactError, file_error
from reactcli.freshness import identity, read_record, same_sources
from reactcli.predictions import DENSE_FILES, RAGGED_FILES, PredictionSet, sample_ids
from reactcli.render.face_space import FaceSpace, face_space
from reactcli.vocab import EVAL_FRAMES

#: Frame protocols of ``react evaluate --realism-protocol`` (REACT 2024).
PROTOCOLS = ("official-2024", "all")
#: The REACT 2025/2026 protocol (:func:`prepare_frrea_mars`).
MARS_PROTOCOL = "official-mars"
#: Every 30th frame of a clip is scored.
FRAME_STEP = 30
#: The baseline evaluates in batches of 4 and saves frames of every 25th batch.
OFFICIAL_BATCH = 4
OFFICIAL_EVERY = 25
#: The generated reaction the protocol renders (the first of the K).
REACTION = 0
#: Which inputs made the PNGs of an FRRea folder (see :func:`write_fid_frames`).
SOURCES_FILE = "sources.json"


def protocol_samples(protocol: str, n_samples: int) -> list[int]:
    """The mirrored sample indices a protocol scores."""
    if protocol not in PROTOCOLS:
        raise ReactError(f"--realism-protocol {protocol}: expected one of {', '.join(PROTOCOLS)}")
    if protocol == "all":
        return list(range(n_samples))
    return [n for n in range(n_samples) if (n // OFFICIAL_BATCH) % OFFICIAL_EVERY == 0]


def protocol_frames(length: int) -> list[int]:
    """Frame indices 0, 30, 60, ... of the first min(length, 750) frames: 25 for a REACT clip."""
    return list(range(0, min(length, EVAL_FRAMES), FRAME_STEP))


@dataclass(frozen=True)
class FidFrame:
    """Frame ``frame`` of sample ``sample`` (whose listener is ``listener``), and which sides take it:
    ``real`` (the listener's video frame) and ``fake`` (the rendered prediction); REACT 2024 takes
    both, MARS each side over its own length."""

    sample: int
    listener: str
    frame: int
    real: bool = True
    fake: bool = True

    @property
    def name(self) -> str:
        return f"{self.sample:05d}_{self.frame:04d}.png"


def plan_frames(
    samples: list[Sample], protocol: str, length: int | Sequence[int], max_images: int | None = None
) -> list[FidFrame]:
    """The protocol's frames in sample order; ``length`` is the generated clips' frames (one for all,
    or one per sample); ``max_images`` keeps only the first ones (a quick look)."""
    lengths = [length] * len(samples) if isinstance(length, int) else list(length)
    frames = [
        FidFrame(n, samples[n].listener, t)
        for n in protocol_samples(protocol, len(samples))
        for t in protocol_frames(lengths[n])
    ]
    return frames if max_images is None else frames[:max_images]


def mars_frames(prediction_frames: int, video_frames: int) -> list[tuple[int, bool, bool]]:
    """``(frame, real, fake)`` of one MARS sample: every 30th frame, 0, 30, ..., of the listener's
    video (real) and of the prediction (fake), each over its own length."""
    last = max(prediction_frames, video_frames)
    return [(t, t < video_frames, t < prediction_frames) for t in range(0, last, FRAME_STEP)]


def plan_mars_frames(
    listeners: Sequence[str],
    prediction_frames: Sequence[int],
    video_frames: Sequence[int],
    max_images: int | None = None,
) -> list[FidFrame]:
    """The ``official-mars`` frames of every sample in order (:func:`mars_frames` per sample);
    ``max_images`` keeps only the first entries (a quick look)."""
    frames = [
        FidFrame(n, listener, t, real, fake)
        for n, (listener, p, v) in enumerate(zip(listeners, prediction_frames, video_frames, strict=True))
        for t, real, fake in mars_frames(p, v)
    ]
    return frames if max_images is None else frames[:max_images]


def _save_png(path: Path, pixels: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")


def _images(directory: Path) -> list[Path]:
    """Every image ``react fid`` would read from ``directory`` (any of its extensions)."""
    from reactcli.metrics.inception import IMAGE_EXTENSIONS

    return [p for ext in IMAGE_EXTENSIONS for p in directory.glob(f"*.{ext}") if p.is_file()]


@dataclass
class FrameFolders:
    """What :func:`write_fid_frames` left on disk."""

    real: Path
    fake: Path
    files: tuple[list[Path], list[Path]]
    rendered: int = 0  # fake frames rendered now
    reused: int = 0  # fake frames kept from an earlier run
    removed: int = 0  # stale PNGs of another protocol or run, deleted so the folders hold exactly this one


@dataclass
class FrreaJob:
    """Everything FRRea needs, checked before any metric runs (a bad file fails in seconds, not after FRD)."""

    root: Path
    split: str
    predictions: PredictionSet  # checked against the split; holds the generated 3DMM
    photo: Any  # reactcli.render.photo.PhotoRenderer (its .path is the weights file)
    inception: Any  # reactcli.metrics.inception.FIDInceptionV3
    device: torch.device
    folder: Path
    protocol: str
    plan: list[FidFrame]
    videos: dict[str, Path]
    full_count: int  # entries of the protocol's plan before --realism-max-images
    batch_size: int = 50
    space: FaceSpace = field(default_factory=FaceSpace)  # how the predictions' 3DMM becomes raw
    full_sides: tuple[int, int] | None = None  # MARS: (real, fake) frames of the whole protocol
    selection: str = ""  # the samples and frames in words, for the note

    @property
    def images(self) -> int:
        return len(self.plan)

    @property
    def real_count(self) -> int:
        return sum(item.real for item in self.plan)

    @property
    def fake_count(self) -> int:
        return sum(item.fake for item in self.plan)

    @property
    def face_path(self) -> Path:
        return self.predictions.face_path  # type: ignore[return-value] (prepare_frrea requires it)


def prepare_frrea(
    root: Path,
    split: str,
    predictions: Path,
    pirender: Path,
    inception: Path,
    folder: Path,
    protocol: str = "official-2024",
    max_images: int | None = None,
    device: torch.device | str = "cpu",
    batch: int = 8,
) -> FrreaJob:
    """Load and check the two weights files, the generated 3DMM and the listener videos of the protocol."""
    from reactcli.metrics.inception import load_inception
    from reactcli.render.photo import PhotoRenderer

    protocol_samples(protocol, 0)  # an unknown protocol fails before anything is loaded
    preds = _generated_set(predictions)
    layout = DatasetLayout(root)
    samples = mirrored(read_pairs(layout.root, split))
    source = f"the {split} split: 2 x {len(samples) // 2} rows, mirrored order"
    preds.validate_against(sample_ids(samples), source=source, face_lengths=EVAL_FRAMES, exact=False)
    whole = plan_frames(samples, protocol, preds.face_lengths or [])
    plan = whole[:max_images] if max_images is not None else whole
    if len(plan) < 2:
        raise ReactError(f"FRRea: the {protocol} protocol selects {len(plan)} frame(s) here; FID needs at least 2")
    videos: dict[str, Path] = {}
    for item in plan:
        if item.listener not in videos:
            videos[item.listener] = layout.require_video(
                split, item.listener, "no listener video: FRRea's real frames and PIRender's reference come from it"
            )
    # NaN or absurd values fail now, not after FRD and some PNGs
    preds.check_values("face3dmm", sorted({item.sample for item in plan}), reactions=[REACTION])
    dev = torch.device(device)
    photo = PhotoRenderer.load(pirender, dev, batch)
    network = load_inception(inception, dev)
    selection = "every sample" if protocol == "all" else "samples with (n // 4) % 25 == 0"
    return FrreaJob(
        root=layout.root, split=split, predictions=preds, photo=photo,
        inception=network, device=dev, folder=Path(folder), protocol=protocol, plan=plan, videos=videos,
        full_count=len(whole), space=face_space(preds.record, preds.path),
        selection=f"reaction {REACTION} of each sample, every {FRAME_STEP}th frame, {selection}",
    )  # fmt: skip


def _generated_set(predictions: Path) -> PredictionSet:
    """The ``react generate`` folder ``predictions`` names (or a file in it), which must hold 3DMM."""
    predictions = Path(predictions)
    generated = predictions if predictions.is_dir() else predictions.parent
    names = {*DENSE_FILES.values(), *RAGGED_FILES.values()}
    preds = PredictionSet.open(generated) if any((generated / name).is_file() for name in names) else None
    if preds is None or not preds.has_face3dmm:
        raise file_error(
            predictions,
            "FRRea renders the generated 3DMM, so --predictions must be a react generate folder holding face3dmm.npy",
        )
    return preds


def prepare_frrea_mars(
    root: Path,
    split: str,
    predictions: Path,
    pirender: Path,
    inception: Path,
    folder: Path,
    *,
    edition: str | None = None,
    bidirectional: bool | None = None,
    max_images: int | None = None,
    device: torch.device | str = "cpu",
    batch: int = 8,
    shift_translation: bool = True,
) -> FrreaJob:
    """The ``official-mars`` FRRea of a REACT 2025/2026 split (module docstring), checked up front.

    ``predictions`` is a ``react generate`` folder (ragged or dense) whose ids are the split's
    samples in the official order (``bidirectional`` fixes the direction; by default the one the ids
    match, as ``react render`` does); each prediction within one second of its input recording.
    Every listener's ``video-face-crop`` mp4 must exist: its frame count sets the real frames.
    ``shift_translation=False`` leaves translation z as it is (a non-official variant, named
    ``mars-unshifted`` in the renderer record). The job then runs with :func:`run_frrea`.
    """
    from reactcli.data.mars_loaders import video_frame_count
    from reactcli.metrics.inception import load_inception
    from reactcli.render.mars_clips import check_length, open_mars_clips
    from reactcli.render.photo import PhotoRenderer, mars_protocol

    clips, preds = open_mars_clips(
        root, split, _generated_set(predictions).path, edition, bidirectional,
        why="FRRea renders the generated 3DMM",
    )  # fmt: skip
    why = "no listener face-crop video: FRRea's real frames and PIRender's reference come from it"
    videos: dict[str, Path] = {}
    video_frames: list[int] = []
    for n, sample in enumerate(clips.samples):
        check_length(clips, preds, n)
        video = videos.setdefault(sample.target.id, clips.require_video(sample.target.id, why))
        video_frames.append(video_frame_count(video))
    whole = plan_mars_frames([s.target.id for s in clips.samples], preds.face_lengths or [], video_frames)
    plan = whole[:max_images] if max_images is not None else whole
    real, fake = sum(item.real for item in plan), sum(item.fake for item in plan)
    if min(real, fake) < 2:
        raise ReactError(f"FRRea: the {MARS_PROTOCOL} protocol selects {real} real and {fake} fake frame(s) here; "
                         "FID needs at least 2 of each")  # fmt: skip
    videos = {item.listener: videos[item.listener] for item in plan}
    preds.check_values("face3dmm", sorted({item.sample for item in plan if item.fake}), reactions=[REACTION])
    dev = torch.device(device)
    photo = PhotoRenderer.load(pirender, dev, batch, mars_protocol(shift_translation))
    network = load_inception(inception, dev)
    return FrreaJob(
        root=Path(root), split=split, predictions=preds, photo=photo, inception=network, device=dev,
        folder=Path(folder), protocol=MARS_PROTOCOL, plan=plan, videos=videos, full_count=len(whole),
        space=face_space(preds.record, preds.path),
        full_sides=(sum(item.real for item in whole), sum(item.fake for item in whole)),
        selection=f"prediction {REACTION} of all {len(clips.samples)} samples, every {FRAME_STEP}th frame of the "
        "prediction (fake) and of the listener's video-face-crop (real)",
    )  # fmt: skip


def write_fid_frames(job: FrreaJob, on_progress: Callable[[int], None] | None = None) -> FrameFolders:
    """Write the real and fake PNGs of ``job.plan``; reuse fresh ones, delete stale ones.

    ``<folder>/sources.json`` is the identity record (``reactcli.freshness``) of what made each side:
    real, the dataset, the split and the listener videos; fake, the generated 3DMM, the PIRender
    weights and the same videos (PIRender's reference frame), each by path, size and modification
    time. When a side's record differs from this job's, none of its images is reused: file times
    alone would take another, older predictions folder's frames for current ones. Images of other
    frames (another protocol, any extension ``react fid`` reads) are removed, so that each folder
    holds exactly the frames scored and ``react fid`` on them gives FRRea. The record is written
    before the PNGs it describes, which are each written atomically: after a kill, the PNGs present
    are this record's, and a rerun makes the rest. ``on_progress(n)`` counts fake frames (rendered
    or reused).
    """
    from reactcli.render.photo import REACT_2024, iter_video_picks

    real_dir, fake_dir = job.folder / "real", job.folder / "fake"
    real_dir.mkdir(parents=True, exist_ok=True)
    fake_dir.mkdir(parents=True, exist_ok=True)
    videos = {listener: identity(video) for listener, video in sorted(job.videos.items())}
    sources: dict[str, dict[str, Any]] = {
        "real": {"data": str(Path(job.root).resolve()), "split": job.split, "videos": videos},
        "fake": {"predictions": identity(job.face_path), "pirender": identity(job.photo.path), "videos": videos},
    }
    protocol = job.photo.protocol
    if protocol != REACT_2024:  # REACT 2024's records stay as they were
        transform = {"name": protocol.name, "resize": protocol.resize, "z_offset": protocol.translation_z_offset}
        sources["real"]["transform"] = {"resize": protocol.resize}
        sources["fake"]["transform"] = transform
    if not job.space.is_raw:
        sources["fake"]["face3dmm"] = job.space.record()
    stored = read_record(job.folder / SOURCES_FILE)
    names = {
        "real": {item.name for item in job.plan if item.real},
        "fake": {item.name for item in job.plan if item.fake},
    }
    removed = 0
    for side, directory in (("real", real_dir), ("fake", fake_dir)):
        keep = names[side] if same_sources(stored.get(side), sources[side]) else set()
        for stale in _images(directory):
            if stale.name not in keep:
                stale.unlink()
                removed += 1
    save_json(job.folder / SOURCES_FILE, sources)  # what is left, and what is written next, is from these
    files = ([real_dir / i.name for i in job.plan if i.real], [fake_dir / i.name for i in job.plan if i.fake])
    result = FrameFolders(real_dir, fake_dir, files, removed=removed)
    by_sample: dict[int, list[FidFrame]] = {}
    for item in job.plan:
        by_sample.setdefault(item.sample, []).append(item)
    for sample, items in by_sample.items():
        video = job.videos[items[0].listener]
        fakes = [i for i in items if i.fake]
        need_fake = [i for i in fakes if not (fake_dir / i.name).is_file()]
        need_real = {i.frame: i for i in items if i.real and not (real_dir / i.name).is_file()}
        result.reused += len(fakes) - len(need_fake)
        if on_progress is not None and len(fakes) > len(need_fake):
            on_progress(len(fakes) - len(need_fake))
        if not need_fake and not need_real:
            continue
        first: np.ndarray | None = None  # frame 0, PIRender's reference
        for index, frame in iter_video_picks(video, ({0} if need_fake else set()) | set(need_real)):
            if index == 0:
                first = frame
            if index in need_real:  # written as decoded: memory stays at one chunk of the video
                _save_png(real_dir / need_real[index].name, job.photo.real(frame))
        if need_fake:
            coeffs = job.space.to_raw(job.predictions.face3dmm(sample)[REACTION])  # type: ignore[index]
            reference = job.photo.reference(first)
            chosen = [i.frame for i in need_fake]
            start = 0
            for block in job.photo.iter_frames(coeffs, reference, chosen):
                for offset, pixels in enumerate(block):
                    _save_png(fake_dir / need_fake[start + offset].name, pixels)
                start += len(block)
                result.rendered += len(block)
                if on_progress is not None:
                    on_progress(len(block))
    return result


def run_frrea(
    job: FrreaJob,
    on_frames: Callable[[int], None] | None = None,
    on_features: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Render/collect the frames, compute the FID; returns the FRRea keys of the metrics JSON."""
    from reactcli.metrics.inception import fid_of_folders

    start = time.perf_counter()
    folders = write_fid_frames(job, on_frames)
    rendered = time.perf_counter()
    fid = fid_of_folders(
        folders.real, folders.fake, job.inception, job.batch_size, job.device, on_features, files=folders.files
    )
    done = time.perf_counter()
    partial = job.images < job.full_count
    cut = f"; only the first {job.images} of the protocol's {job.full_count} frames (not comparable)"
    space = job.space
    space_note = "" if space.is_raw else f"; 3DMM de-normalised ({space.normalization}, {space.stats} statistics)"
    note = (
        f"FID of {job.real_count} real vs {job.fake_count} PIRender frames under the {job.protocol} protocol "
        f"({job.selection}); {fid['extractor']}; frames in {job.folder}" + space_note + (cut if partial else "")
    )
    frames: dict[str, Any] = {"real": fid["real_images"], "fake": fid["fake_images"], "protocol": job.full_count}
    renderer = f"PIRender ({job.photo.path.name}), reference = listener's first video frame, 224 x 224"
    if job.full_sides is not None:  # MARS: the sides differ, and the stride is part of the protocol
        frames.update({
            "protocol_real": job.full_sides[0], "protocol_fake": job.full_sides[1], "stride": FRAME_STEP,
            "samples": len({item.sample for item in job.plan}),
        })  # fmt: skip
        renderer = (
            f"PIRender ({job.photo.path.name}), reference = frame 0 of the listener's video-face-crop, "
            f"{job.photo.protocol.describe()}"
        )
    return {
        "FRRea": fid["fid"],
        "FRRea_protocol": job.protocol,
        "FRRea_frames": frames,
        "FRRea_extractor": fid["extractor"],
        "FRRea_renderer": renderer,
        "FRRea_dir": str(job.folder),
        "FRRea_note": note,
        "FRRea_timings": {
            "frames": round(rendered - start, 3),
            "fid": round(done - rendered, 3),
            "rendered": folders.rendered,
            "reused": folders.reused,
        },
    }


def merge_frrea(result: dict[str, Any], realism: dict[str, Any]) -> dict[str, Any]:
    """Put FRRea and its record into a metrics dict of ``evaluate_arrays`` (note and timing included)."""
    from reactcli.metrics.evaluate import null_non_finite

    note = realism.pop("FRRea_note")
    timings = realism.pop("FRRea_timings")
    result.update(realism)
    result["notes"]["FRRea"] = note
    result["timings"]["FRRea"] = round(timings["frames"] + timings["fid"], 4)
    result["FRRea_work"] = timings
    return null_non_finite(result)


__all__ = [
    "FRAME_STEP",
    "MARS_PROTOCOL",
    "PROTOCOLS",
    "FidFrame",
    "FrreaJob",
    "mars_frames",
    "merge_frrea",
    "plan_frames",
    "plan_mars_frames",
    "prepare_frrea",
    "prepare_frrea_mars",
    "protocol_frames",
    "protocol_samples",
    "run_frrea",
    "write_fid_frames",
]
