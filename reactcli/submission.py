"""``react package-submission``: a validated, self-describing REACT 2024 submission archive.

The run folder it reads (what ``bash run.bash demo`` writes to ``runs/demo/``)::

    RUN/predictions/emotion.npy     (N, 10, 750, 25) float, mirrored sample order     required
    RUN/predictions/face3dmm.npy    (N, 10, 751 or 750, 58) raw 3DMM coefficients     required
    RUN/predictions/generation.json what `react generate` recorded (split, seed, ...)  optional
    RUN/videos/<clip>.mp4           `react render` output; the four submission clips   required
    RUN/videos/render.json          `react render`'s record of its finished videos      required
    RUN/videos/*_emotion.png        emotion plots                                       optional
    RUN/metrics.json                `react evaluate` output                             required
    RUN/baselines.json              `react baselines` output                            optional
    RUN/*.ckpt                      checkpoints (tokenizer.ckpt, predictor.ckpt)        optional
    RUN/*.toml                      configs used                                        optional

The archive keeps those relative paths and adds ``manifest.json`` (every file with its sha256 and
size, arrays with shape and dtype, model type "online", N, K, T, split, toolkit version) and a
short ``README.md``. Everything is validated *before* writing (the prediction set as
``reactcli.predictions`` opens it, then the challenge's own rules: dense, K = 10, T = 750, float,
no NaN/inf or values beyond ``VALUE_LIMIT``; the four videos present, 25 fps, with sound, and
vouched for by ``render.json`` — finished, unchanged, made from these predictions); a failure
lists every problem and leaves no zip behind (the archive is written to a temp name and
renamed). ``check_archive`` re-reads an archive and verifies hashes, shapes and the same rules.
Zip entries carry a fixed timestamp, so the same run folder gives a byte-identical archive.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from reactcli import __version__
from reactcli.atomic import atomic_path
from reactcli.data.layout import SUBMISSION_CLIPS
from reactcli.errors import ReactError, file_error
from reactcli.predictions import RAGGED, VALUE_LIMIT, PredictionSet, shape_problem
from reactcli.vocab import (
    BASELINES_FILE,
    EMOTION_FILE,
    EVAL_FRAMES,
    FACE3DMM_FILE,
    FPS,
    GENERATION_FILE,
    METRIC_KEYS,
    METRICS_FILE,
)

SUBMISSION_K = 10
FORMAT = "reactcli-submission/1"
MANIFEST = "manifest.json"
README = "README.md"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_CHUNK = 1 << 22
PRED_EMOTION = f"predictions/{EMOTION_FILE}"
PRED_FACE3DMM = f"predictions/{FACE3DMM_FILE}"
PRED_GENERATION = f"predictions/{GENERATION_FILE}"
_STORED_SUFFIXES = {".mp4", ".png", ".ckpt", ".pt", ".zip"}  # already compressed


def submission_video(clip: str) -> str:
    """Archive path of the rendered video of a submission clip (as ``react render`` names it)."""
    from reactcli.render.clips import video_name

    return f"videos/{video_name(clip)}"


def render_manifest() -> str:
    """Archive path of ``react render``'s record of finished videos."""
    from reactcli.render.clips import RENDER_MANIFEST

    return f"videos/{RENDER_MANIFEST}"


class _HashingReader:
    """A read-only file wrapper that feeds every byte read into a sha256."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()
        self.bytes = 0

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.sha.update(data)
        self.bytes += len(data)
        return data


@dataclass
class FileFacts:
    """What the manifest records for one file; arrays add shape, dtype and whether all are finite."""

    sha256: str
    bytes: int
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    finite: bool | None = None
    peak: float | None = None  # largest |value| of a float array with only finite values

    def manifest_entry(self, path: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"path": path, "sha256": self.sha256, "bytes": self.bytes}
        if self.shape is not None:
            entry.update(shape=list(self.shape), dtype=self.dtype)
        return entry


def scan(fh: IO[bytes], is_npy: bool) -> FileFacts:
    """Hash a stream in one pass; for ``.npy`` also read its header and check every value is finite."""
    reader = _HashingReader(fh)
    if not is_npy:
        while reader.read(_CHUNK):
            pass
        return FileFacts(reader.sha.hexdigest(), reader.bytes)
    version = np.lib.format.read_magic(reader)  # type: ignore[arg-type]
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read_header(reader)  # type: ignore[arg-type]
    if dtype.hasobject:
        raise ValueError("holds Python objects (pickled), not numbers")
    finite = True
    peak = 0.0
    step = max(dtype.itemsize, (_CHUNK // dtype.itemsize) * dtype.itemsize)
    expected = int(np.prod(shape)) * dtype.itemsize
    seen = 0
    while True:
        data = reader.read(step)
        if not data:
            break
        seen += len(data)
        if finite and np.issubdtype(dtype, np.inexact):
            usable = len(data) - len(data) % dtype.itemsize
            values = np.frombuffer(data[:usable], dtype=dtype)
            finite = bool(np.isfinite(values).all())
            if finite and values.size:
                peak = max(peak, float(np.abs(values).max()))
    if seen != expected:
        raise ValueError(f"array data is {seen} bytes, its header says {expected} (truncated?)")
    is_float = np.issubdtype(dtype, np.inexact)
    shape_ = tuple(int(s) for s in shape)
    return FileFacts(reader.sha.hexdigest(), reader.bytes, shape_, dtype.str, finite, peak if is_float else None)


def scan_file(path: Path) -> FileFacts:
    try:
        with open(path, "rb") as fh:
            return scan(fh, path.suffix == ".npy")
    except (ValueError, OSError, EOFError) as exc:
        raise file_error(path, f"not readable ({exc})") from None


# --------------------------------------------------------------------------- rules


def prediction_problems(name: str, facts: FileFacts, kind: str) -> list[str]:
    """Problems of ``emotion`` or ``face3dmm`` predictions as a submission (empty list = fine): a
    prediction set's shape rules (``predictions.shape_problem``), then the challenge's: K = 10,
    T = 750 (751 allowed for the 3DMM), N even (mirrored pairs), float, finite, within VALUE_LIMIT."""
    shape = facts.shape or ()
    generic = shape_problem(kind, shape)
    if generic:
        return [f"{name}: {generic}"]
    frames = (EVAL_FRAMES,) if kind == "emotion" else (EVAL_FRAMES + 1, EVAL_FRAMES)
    problems = []
    if shape[1] != SUBMISSION_K:
        problems.append(f"{name}: K = {shape[1]} reactions per speaker, the challenge expects K = {SUBMISSION_K}")
    if shape[2] not in frames:
        problems.append(f"{name}: T = {shape[2]} frames, expected {' or '.join(map(str, frames))}")
    if shape[0] == 0 or shape[0] % 2:
        problems.append(f"{name}: N = {shape[0]} samples, expected an even number (2 x rows, mirrored order)")
    if facts.dtype is None or np.dtype(facts.dtype).kind != "f":
        problems.append(f"{name}: dtype {facts.dtype}, expected floating point")
    elif facts.finite is False:
        problems.append(f"{name}: contains NaN/inf values")
    elif facts.peak is not None and facts.peak > VALUE_LIMIT:
        problems.append(f"{name}: |x| up to {facts.peak:.3g}, outside the sane range |x| <= {VALUE_LIMIT:g}")
    return problems


def video_problems(name: str, path: Path) -> list[str]:
    from reactcli.render.video import probe

    try:
        info = probe(path)
    except ReactError as exc:
        return [f"{name}: {exc}"]
    problems = []
    if abs(info.fps - FPS) > 1e-3:
        problems.append(f"{name}: {info.fps:g} fps, expected {FPS}")
    if info.audio_codec is None:
        problems.append(f"{name}: no audio stream (render with the speaker's audio)")
    if info.frames == 0:
        problems.append(f"{name}: no frames")
    return problems


def _read_json(path: Path, problems: list[str], label: str) -> Any:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(f"{label}: not valid JSON ({exc})")
        return None
    if not isinstance(data, dict):
        problems.append(f"{label}: expected a JSON object, got {type(data).__name__}")
        return None
    return data


# --------------------------------------------------------------------------- packaging


@dataclass
class RunContents:
    """Files of a run folder to archive (archive path -> local path) and the facts checked so far."""

    files: dict[str, Path] = field(default_factory=dict)
    facts: dict[str, FileFacts] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    split: str | None = None
    n: int | None = None
    t: int = EVAL_FRAMES
    metrics: dict[str, Any] | None = None


def collect_run(run: Path) -> RunContents:
    """Find, scan and validate everything a submission needs; ``problems`` lists what is wrong."""
    run = Path(run)
    if not run.is_dir():
        raise file_error(run, "run folder not found")
    rc = RunContents()
    for rel, kind in ((PRED_EMOTION, "emotion"), (PRED_FACE3DMM, "face3dmm")):
        path = run / rel
        if not path.is_file():
            rc.problems.append(f"{rel}: missing (write it with `react generate --out {run}/predictions`)")
            continue
        try:
            facts = scan_file(path)
        except ReactError as exc:
            rc.problems.append(str(exc))
            continue
        rc.files[rel], rc.facts[rel] = path, facts
        rc.problems += prediction_problems(rel, facts, kind)
    shapes = [rc.facts[r].shape for r in (PRED_EMOTION, PRED_FACE3DMM) if r in rc.facts]
    if shapes and shapes[0]:
        rc.n = int(shapes[0][0])

    splits: dict[str, str] = {}
    generation = run / PRED_GENERATION
    if generation.is_file():
        rc.files[PRED_GENERATION] = generation
    if not rc.problems:  # the files are there and shaped: read them as the prediction set they are
        try:
            preds = PredictionSet.open(run / "predictions")
        except ReactError as exc:
            rc.problems.append(str(exc))
        else:
            if preds.layout == RAGGED:
                rc.problems.append("predictions: a ragged set (clips of different lengths) is no REACT 2024 submission")
            if "split" in preds.record:
                splits[PRED_GENERATION] = str(preds.record["split"])
    metrics = run / METRICS_FILE
    if not metrics.is_file():
        rc.problems.append(f"metrics.json: missing (write it with `react evaluate --out {metrics}`)")
    else:
        rc.files[METRICS_FILE] = metrics
        rc.metrics = _read_json(metrics, rc.problems, METRICS_FILE)
        if rc.metrics:
            if "split" in rc.metrics:
                splits[METRICS_FILE] = str(rc.metrics["split"])
            for key, have in (("N", rc.n), ("K", shapes[0][1] if shapes and shapes[0] else None)):
                if key in rc.metrics and have is not None and rc.metrics[key] != have:
                    rc.problems.append(
                        f"metrics.json: {key} = {rc.metrics[key]} but the predictions have {key} = {have}"
                    )
    if (run / BASELINES_FILE).is_file():
        rc.files[BASELINES_FILE] = run / BASELINES_FILE
        _read_json(run / BASELINES_FILE, rc.problems, BASELINES_FILE)
    if len(set(splits.values())) > 1:
        rc.problems.append("split disagrees: " + ", ".join(f"{k} says '{v}'" for k, v in splits.items()))
    rc.split = next(iter(splits.values()), None)

    from reactcli.render.clips import recorded_video_problem

    videos = run / "videos"
    for clip in SUBMISSION_CLIPS:
        rel = submission_video(clip)
        if not (run / rel).is_file():
            rc.problems.append(f"{rel}: missing (render it with `react render --submit-only --out {run}/videos`)")
            continue
        problems = video_problems(rel, run / rel)
        unvouched = recorded_video_problem(videos, Path(rel).name, generation)
        rc.problems += problems or ([f"{rel}: {unvouched}"] if unvouched else [])
    if videos.is_dir():
        for path in sorted(videos.iterdir()):
            if path.is_file() and path.suffix in (".mp4", ".png") and not path.name.startswith("."):
                rc.files[f"videos/{path.name}"] = path
    if (run / render_manifest()).is_file():
        rc.files[render_manifest()] = run / render_manifest()
    for path in sorted(run.iterdir()):
        if path.is_file() and path.suffix in (".ckpt", ".toml") and not path.name.startswith("."):
            rc.files[path.name] = path
    return rc


def _run_files_line(manifest: dict[str, Any]) -> list[str]:
    """The README line for the run's checkpoints and configs: only the ones the zip holds."""
    held = [e["path"] for e in manifest["files"] if "/" not in e["path"] and e["path"].endswith((".ckpt", ".toml"))]
    if not held:
        return []
    return [f"- {', '.join(f'`{name}`' for name in held)}: the run's checkpoints and configs"]


def _readme(manifest: dict[str, Any], metrics: dict[str, Any] | None) -> str:
    lines = [
        "# REACT 2024 submission",
        "",
        f"Made by reactcli {manifest['toolkit_version']} (`react package-submission`). Model type: "
        f"{manifest['model_type']} (listener frame t uses speaker input up to frame t only).",
        "",
        f"- split: {manifest['split']}, N = {manifest['N']} samples in the mirrored order (CSV rows as listed, "
        f"then roles swapped), K = {manifest['K']} reactions each, T = {manifest['T']} frames",
        "- `predictions/emotion.npy` (N, K, 750, 25) and `predictions/face3dmm.npy` (N, K, T, 58, raw FaceVerse "
        "coefficients)",
        "- `videos/`: 25 fps mp4s with the speaker's audio (speaker | listener | listener GT mesh | generated "
        "mesh), emotion-curve PNGs and `render.json` (which predictions each video shows)",
        "- `metrics.json` (and `baselines.json`): `react evaluate` / `react baselines` output",
        *_run_files_line(manifest),
        "- `manifest.json`: sha256, size and array shapes of every file",
        "",
        "Verify with `react package-submission --check <this zip>`.",
    ]
    if metrics:
        official = (k for k in METRIC_KEYS if k != "FRSyn_all")  # the challenge's own metrics
        shown = {k: metrics[k] for k in official if k in metrics}
        if shown:
            lines += ["", "## Metrics", "", *(f"- {k}: {v}" for k, v in shown.items())]
    return "\n".join(lines) + "\n"


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.external_attr = 0o644 << 16
    stored = Path(name).suffix in _STORED_SUFFIXES
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    return info


def build_manifest(rc: RunContents) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "challenge": "REACT 2024",
        "toolkit": "reactcli",
        "toolkit_version": __version__,
        "model_type": "online",
        "split": rc.split,
        "N": rc.n,
        "K": SUBMISSION_K,
        "T": rc.t,
        "sample_order": "mirrored: CSV rows as listed, then the same rows with roles swapped",
        "submission_videos": [submission_video(c) for c in SUBMISSION_CLIPS],
        "files": [rc.facts[name].manifest_entry(name) for name in sorted(rc.files)],
    }


def package_run(run: Path, out: Path) -> dict[str, Any]:
    """Validate ``run`` and write the archive to ``out`` (atomically); returns the manifest."""
    from reactcli.progress import make_progress

    rc = collect_run(run)
    if rc.problems:
        raise ReactError(f"{run}: not packaged, {len(rc.problems)} problem(s): " + "; ".join(rc.problems))
    for name, path in rc.files.items():
        if name not in rc.facts:
            rc.facts[name] = scan_file(path)
    manifest = build_manifest(rc)
    readme = _readme(manifest, rc.metrics)
    readme_bytes = readme.encode()
    rc.facts[README] = FileFacts(hashlib.sha256(readme_bytes).hexdigest(), len(readme_bytes))
    manifest["files"].append(rc.facts[README].manifest_entry(README))
    total = sum(rc.facts[name].bytes for name in rc.files)
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", allowZip64=True) as zf, make_progress() as progress:
        task = progress.add_task("packaging", total=total, info="")
        for name in sorted(rc.files):
            with open(rc.files[name], "rb") as src, zf.open(_zip_info(name), "w", force_zip64=True) as dst:
                reader = _HashingReader(src)
                while chunk := reader.read(_CHUNK):
                    dst.write(chunk)
                    progress.advance(task, len(chunk))
            if reader.sha.hexdigest() != rc.facts[name].sha256:
                raise file_error(rc.files[name], "changed while it was being packaged; run again")
        zf.writestr(_zip_info(README), readme_bytes)
        zf.writestr(_zip_info(MANIFEST), json.dumps(manifest, indent=2) + "\n")
    return manifest


# --------------------------------------------------------------------------- checking


def check_archive(path: Path) -> tuple[list[str], dict[str, Any] | None]:
    """Problems found in a submission zip (empty = OK) and its manifest (None if unreadable)."""
    path = Path(path)
    if not path.is_file():
        raise file_error(path, "archive not found")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise file_error(path, f"not a zip archive ({exc})") from None
    problems: list[str] = []
    with zf:
        names = set(zf.namelist())
        if MANIFEST not in names:
            return [f"{MANIFEST} missing"], None
        try:
            manifest = json.loads(zf.read(MANIFEST))
            entries = {e["path"]: e for e in manifest["files"]}
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
            return [f"{MANIFEST}: unreadable ({exc})"], None
        for key, want in (("format", FORMAT), ("model_type", "online"), ("K", SUBMISSION_K), ("T", EVAL_FRAMES)):
            if manifest.get(key) != want:
                problems.append(f"{MANIFEST}: {key} = {manifest.get(key)!r}, expected {want!r}")
        for extra in sorted(names - set(entries) - {MANIFEST}):
            problems.append(f"{extra}: in the archive but not in the manifest")
        for name, entry in sorted(entries.items()):
            if name not in names:
                problems.append(f"{name}: listed in the manifest but missing from the archive")
                continue
            try:
                with zf.open(name) as fh:
                    facts = scan(fh, name.endswith(".npy"))
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
                problems.append(f"{name}: unreadable ({exc})")
                continue
            if facts.sha256 != entry.get("sha256"):
                problems.append(f"{name}: sha256 {facts.sha256[:12]}... does not match the manifest (modified?)")
            if facts.bytes != entry.get("bytes"):
                problems.append(f"{name}: {facts.bytes} bytes, the manifest says {entry.get('bytes')}")
            if facts.shape is not None and list(facts.shape) != entry.get("shape"):
                problems.append(f"{name}: shape {list(facts.shape)}, the manifest says {entry.get('shape')}")
            if name == PRED_EMOTION:
                problems += prediction_problems(name, facts, "emotion")
            elif name == PRED_FACE3DMM:
                problems += prediction_problems(name, facts, "face3dmm")
        for required in (PRED_EMOTION, PRED_FACE3DMM, METRICS_FILE):
            if required not in entries:
                problems.append(f"{required}: not in the archive")
        for clip in SUBMISSION_CLIPS:
            if submission_video(clip) not in entries:
                problems.append(f"{submission_video(clip)}: submission video not in the archive")
        problems += _render_record_problems(zf, entries)
    return problems, manifest


def _render_record_problems(zf: zipfile.ZipFile, entries: dict[str, Any]) -> list[str]:
    """When the archive holds ``videos/render.json``, every submission video must be the one it records."""
    name = render_manifest()
    if name not in entries or name not in zf.namelist():
        return []
    try:
        videos = json.loads(zf.read(name)).get("videos", {})
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        return [f"{name}: unreadable ({exc})"]
    problems = []
    for clip in SUBMISSION_CLIPS:
        rel = submission_video(clip)
        stored = videos.get(Path(rel).name) if isinstance(videos, dict) else None
        if rel in entries and (not isinstance(stored, dict) or stored.get("sha256") != entries[rel].get("sha256")):
            problems.append(f"{rel}: not the video {name} records")
    return problems
