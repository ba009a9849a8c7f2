"""FRRea as the REACT 2024 baseline computes it: PIRender frames of the predictions against real frames.

The realism score is an FID, and an FID depends on which frames go in. Published FRRea values are
comparable only under one frame protocol, so the protocol is named in the metrics JSON with the
frame counts and the extractor. Two protocols:

- ``official-2024`` (the baseline's): the first of the K generated reactions of each sample,
  frames 0, 30, 60, ... of the 750 evaluated ones (25 per clip), and only the samples the
  baseline's evaluation loop saves, those in batches ``batch_idx % 25 == 0`` at batch size 4,
  i.e. samples ``n`` with ``(n // 4) % 25 == 0`` (about 48 clips and 1,200 frames per side on val);
- ``all``: the same frames and reaction for every sample, more frames and so a steadier estimate.

Fake frames are PIRender renders (``reactcli.render.photo``: the listener's first video frame as
reference, 27-frame clamped windows of the whole clip, truncation to uint8); real frames are the
listener's video frames at the same indices through the same resize, crop and conversion. Both
are written as 224 x 224 PNGs with matching names under ``<dir>/real`` and ``<dir>/fake``, and the
FID of the two folders is computed as ``react fid`` (and ``python -m pytorch_fid``) computes it, so
``react fid <dir>/real <dir>/fake`` reproduces the number.

This is the one metric that renders, so it imports ``reactcli.render`` (the layer below); render
never imports metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reactcli.atomic import atomic_path, save_json
from reactcli.data.layout import DatasetLayout, Sample, mirrored, read_pairs
from reactcli.errors import ReactError, file_error
from reactcli.freshness import identity, read_record, same_sources
from reactcli.predictions import DENSE_FILES, RAGGED_FILES, PredictionSet, sample_ids
from reactcli.vocab import EVAL_FRAMES

#: Frame protocols of ``react evaluate --realism-protocol``.
PROTOCOLS = ("official-2024", "all")
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
    """One image pair of the protocol: frame ``frame`` of mirrored sample ``sample``."""

    sample: int
    listener: str
    frame: int

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

    layout: DatasetLayout
    split: str
    predictions: PredictionSet  # checked against the split; holds the generated 3DMM
    photo: Any  # reactcli.render.photo.PhotoRenderer (its .path is the weights file)
    inception: Any  # reactcli.metrics.inception.FIDInceptionV3
    device: torch.device
    folder: Path
    protocol: str
    plan: list[FidFrame]
    videos: dict[str, Path]
    full_count: int  # frames of the protocol before --realism-max-images
    batch_size: int = 50

    @property
    def images(self) -> int:
        return len(self.plan)

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
    predictions = Path(predictions)
    generated = predictions if predictions.is_dir() else predictions.parent
    names = {*DENSE_FILES.values(), *RAGGED_FILES.values()}
    preds = PredictionSet.open(generated) if any((generated / name).is_file() for name in names) else None
    if preds is None or not preds.has_face3dmm:
        raise file_error(
            predictions,
            "FRRea renders the generated 3DMM, so --predictions must be a react generate folder holding face3dmm.npy",
        )
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
    return FrreaJob(
        layout=layout, split=split, predictions=preds, photo=photo,
        inception=network, device=dev, folder=Path(folder), protocol=protocol, plan=plan, videos=videos,
        full_count=len(whole),
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
    from reactcli.render.photo import pick_video_frames, real_frame

    real_dir, fake_dir = job.folder / "real", job.folder / "fake"
    real_dir.mkdir(parents=True, exist_ok=True)
    fake_dir.mkdir(parents=True, exist_ok=True)
    videos = {listener: identity(video) for listener, video in sorted(job.videos.items())}
    sources = {
        "real": {"data": str(job.layout.root.resolve()), "split": job.split, "videos": videos},
        "fake": {"predictions": identity(job.face_path), "pirender": identity(job.photo.path), "videos": videos},
    }
    stored = read_record(job.folder / SOURCES_FILE)
    names = {item.name for item in job.plan}
    removed = 0
    for side, directory in (("real", real_dir), ("fake", fake_dir)):
        keep = names if same_sources(stored.get(side), sources[side]) else set()
        for stale in _images(directory):
            if stale.name not in keep:
                stale.unlink()
                removed += 1
    save_json(job.folder / SOURCES_FILE, sources)  # what is left, and what is written next, is from these
    files = ([real_dir / i.name for i in job.plan], [fake_dir / i.name for i in job.plan])
    result = FrameFolders(real_dir, fake_dir, files, removed=removed)
    by_sample: dict[int, list[FidFrame]] = {}
    for item in job.plan:
        by_sample.setdefault(item.sample, []).append(item)
    for sample, items in by_sample.items():
        video = job.videos[items[0].listener]
        need_fake = [i for i in items if not (fake_dir / i.name).is_file()]
        need_real = [i for i in items if not (real_dir / i.name).is_file()]
        result.reused += len(items) - len(need_fake)
        if on_progress is not None and len(items) > len(need_fake):
            on_progress(len(items) - len(need_fake))
        if not need_fake and not need_real:
            continue
        indices = {0} | {i.frame for i in need_real}
        decoded = pick_video_frames(video, indices)
        for item in need_real:
            _save_png(real_dir / item.name, real_frame(decoded[item.frame]))
        if need_fake:
            coeffs = np.array(job.predictions.face3dmm(sample)[REACTION], dtype=np.float32)  # type: ignore[index]
            reference = job.photo.reference(decoded[0])
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
    note = (
        f"FID of {job.images} real vs {job.images} PIRender frames under the {job.protocol} protocol "
        f"(reaction {REACTION} of each sample, every {FRAME_STEP}th frame"
        + (", samples with (n // 4) % 25 == 0" if job.protocol == "official-2024" else ", every sample")
        + f"); {fid['extractor']}; frames in {job.folder}"
        + (cut if partial else "")
    )
    return {
        "FRRea": fid["fid"],
        "FRRea_protocol": job.protocol,
        "FRRea_frames": {"real": fid["real_images"], "fake": fid["fake_images"], "protocol": job.full_count},
        "FRRea_extractor": fid["extractor"],
        "FRRea_renderer": f"PIRender ({job.photo.path.name}), reference = listener's first video frame, 224 x 224",
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
    "PROTOCOLS",
    "FidFrame",
    "FrreaJob",
    "merge_frrea",
    "plan_frames",
    "prepare_frrea",
    "protocol_frames",
    "protocol_samples",
    "run_frrea",
    "write_fid_frames",
]
