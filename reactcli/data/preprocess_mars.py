"""Preprocessing a MARS release (REACT 2025/2026): check every recording, cache what training needs.

``react preprocess`` on a MARS root calls :func:`preprocess_mars`. Per split it

1. lists the recordings of ``facial-attributes`` with the official junk rules (``data/mars.py``)
   and keeps the list of what was skipped;
2. reads every modality of every recording (``data/mars_loaders.py``): shapes, dtypes, finite
   values, and lengths against the facial attributes (see *Lengths* below);
3. lists the recordings whose dyad partner is missing (a speaker stem without its listener, and
   the reverse): they are not samples;
4. (2026) reads the personality tables and each recording's EEG (folder, else the tar), noting
   blank cells, short files and recordings without EEG (handled as the official reader does);
5. caches the facial attributes, coefficients and EEG tables and, unless ``audio.encoder`` is
   ``release`` (the release's own, non-causal features, read in place by training), the causal
   audio features of ``audio.*`` computed from ``audio/`` at the edition's 30 fps, one row per
   facial-attributes frame (``data/features.py``); writes the split's ``index.json``
   (``data/cache.py``: :class:`MarsIndex`);
6. with the train split and no problem in it, writes the train 3DMM mean/std over every
   coefficient frame to the same statistics file as for 2024.

**Problems** (the run fails, as for 2024) are input that cannot be used: a missing or unreadable
file, a wrong shape or dtype, NaN/inf, a recording shorter than 58 frames, a modality more than
one second longer or shorter than the facial attributes. **Notes** are differences the official
loaders absorb and that we handle the same way: a modality a few frames off (training uses the
minimum of both people's attributes and coefficients and the input's audio features, the
personalised loader's rule; scoring uses the input's facial-attributes length, the naive-baseline
script's rule), a listener a few frames shorter than its speaker, EEG blanks, short or missing EEG.

**Resume.** A recording whose source files have the size and modification time recorded in the
index, and whose cached arrays (audio features of the current setting included) are readable with
the recorded lengths, is not read again; the index is saved every 64 recordings so a killed run
keeps most of its work.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from math import ceil
from pathlib import Path

import numpy as np

from reactcli.atomic import save_npy
from reactcli.config import ReactConfig
from reactcli.data.cache import FeatureCache, MarsEntry, MarsIndex, save_mars_index, write_face_stats_of
from reactcli.data.features import RELEASE_ENCODER, FeatureExtractor
from reactcli.data.mars import ROLES, MarsListing, Recording, list_recordings, mars_samples
from reactcli.data.mars_dataset import audio_kind
from reactcli.data.mars_loaders import (
    EEG_FOLDER,
    PERSONALITY_FOLDER,
    EegReader,
    PersonalityTable,
    load_attributes,
    load_audio_features,
    load_coefficients,
    load_recording_audio,
    read_personality,
    video_frame_count,
)
from reactcli.data.validate import Problem
from reactcli.editions import EEG_DIM, SPLITS, Edition
from reactcli.errors import ReactError
from reactcli.progress import make_progress

LENGTH_TOLERANCE_S = 1.0  # modalities further apart than this are not the same recording
INDEX_FLUSH = 64  # recordings between two saves of a partial index
#: The per-recording files read, by modality folder (video-raw is never read).
MODALITY_FILES = {
    "facial-attributes": ".npy",
    "coefficients": ".npy",
    "audio-features": ".npy",
    "audio": ".wav",
    "video-face-crop": ".mp4",
}


@dataclass
class MarsSplitCounts:
    recordings: int = 0  # listed (valid or not)
    samples: int = 0  # valid samples in the edition's default direction
    cached: int = 0  # read and cached in this run
    skipped: int = 0  # unchanged since the last run
    junk: int = 0
    unpaired: int = 0


@dataclass
class MarsPreprocessResult:
    root: Path
    edition: Edition
    counts: dict[str, MarsSplitCounts]
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)
    junk: list[Problem] = field(default_factory=list)
    unpaired: list[Problem] = field(default_factory=list)
    indexes: dict[str, Path] = field(default_factory=dict)
    face_stats: Path | None = None


@dataclass
class SplitContext:
    """What every recording of one split is read with."""

    split: str
    base: Path  # <root>/<split>
    edition: Edition
    folders: dict[str, bool]  # modality folder -> present
    eeg: EegReader | None = None
    personality: dict[str, PersonalityTable] = field(default_factory=dict)
    features: FeatureExtractor | None = None  # the causal audio features to cache (None: the release's are used)

    @property
    def usable(self) -> bool:
        """Whether recordings can be checked at all: coefficients and some audio are there."""
        return self.folders["coefficients"] and (self.folders["audio"] or self.folders["audio-features"])

    def path(self, modality: str, recording: Recording) -> Path:
        return self.base / modality / f"{recording.id}{MODALITY_FILES[modality]}"

    def sources(self, recording: Recording) -> dict[str, list[int]]:
        """Identity of every source file of ``recording``: relative path -> [size, mtime_ns]."""
        paths = [self.path(m, recording) for m, present in self.folders.items() if present]
        if self.eeg is not None:
            csv = self.eeg.folder / f"{recording.id}.csv"
            paths.append(csv if csv.is_file() else self.eeg.tar)
        out: dict[str, list[int]] = {}
        for path in paths:
            if path.is_file():
                stat = path.stat()
                out[str(path.relative_to(self.base))] = [stat.st_size, stat.st_mtime_ns]
        return out


def preprocess_mars(
    root: str | Path, cfg: ReactConfig, splits: list[str], edition: Edition, device: str = "cpu"
) -> MarsPreprocessResult:
    """Check and cache every recording of ``splits`` of the MARS release at ``root`` (audio
    features on ``device``)."""
    root = Path(root)
    cache = FeatureCache(root, cfg)
    result = MarsPreprocessResult(root, edition, {})
    extractor = None if cfg.audio.encoder == RELEASE_ENCODER else FeatureExtractor(cfg.audio, device, edition.fps)
    for split in splits:
        if split not in SPLITS:
            raise ReactError(f"unknown split '{split}' (expected one of {', '.join(SPLITS)})")
        result.counts[split] = MarsSplitCounts()
        try:
            listing = list_recordings(root, split)
        except ReactError as exc:
            result.problems.append(Problem(split, exc.path or str(root / split), exc.problem))
            continue
        index = _preprocess_split(root, cache, listing, edition, result, extractor)
        if index is None:
            continue
        result.indexes[split] = save_mars_index(cache, index)
        if split == "train" and index.entries and not any(p.split == "train" for p in result.problems):
            write_face_stats_of(
                cache,
                (cache.load(cache.mars_array(split, "coefficients", e.recording)) for e in index.entries.values()),
            )
            result.face_stats = cache.face_stats()
    return result


def _split_context(
    root: Path, split: str, edition: Edition, listing: MarsListing, result: MarsPreprocessResult,
    extractor: FeatureExtractor | None,
) -> SplitContext:
    """The split's folders, EEG reader and personality tables; split-level problems and notes."""
    base = root / split
    ctx = SplitContext(split, base, edition, {m: (base / m).is_dir() for m in MODALITY_FILES})

    def problem(path: Path | str, text: str) -> None:
        result.problems.append(Problem(split, str(path), text))

    def note(path: Path | str, text: str) -> None:
        result.notes.append(Problem(split, str(path), text))

    if not ctx.folders["coefficients"]:
        problem(base / "coefficients", "coefficients folder not found (every recording needs its 3DMM)")
    if not ctx.folders["audio"] and not ctx.folders["audio-features"]:
        problem(base / "audio-features", "neither audio-features nor audio folder found (speakers need their audio)")
    elif extractor is None and not ctx.folders["audio-features"]:
        problem(base / "audio-features", "audio.encoder = 'release' reads the release's audio-features, and this "
                "split has none (choose a causal encoder: mfcc, logmel or wav2vec2)")
    elif extractor is not None and not ctx.folders["audio"]:
        note(base / "audio", f"no audio folder: the {extractor.cfg.encoder} features cannot be computed; only "
             "audio.encoder = 'release' (the release's non-causal features) can train on this split")
    elif extractor is not None:
        ctx.features = extractor
    if edition.has_eeg:
        reader = EegReader(base, wanted=listing.recordings)
        if not reader.available():
            note(base / EEG_FOLDER, "no EEG folder or eeg_processed.tar.gz: every EEG target is zero and masked")
        else:
            try:
                reader.open()
                ctx.eeg = reader
            except ReactError as exc:
                problem(exc.path or reader.tar, exc.problem)
                ctx.eeg = EegReader(base, use_tar=False) if reader.folder.is_dir() else None
    if PERSONALITY_FOLDER in edition.modalities:
        folder = base / PERSONALITY_FOLDER
        if not folder.is_dir():
            note(folder, "no personality folder: the personalised conditions have no traits for this split")
        for role in ROLES if folder.is_dir() else ():
            path = folder / f"{role}.csv"
            if not path.is_file():
                if role == "listener":  # the official reader requires it; speaker.csv is optional
                    problem(path, "listener personality file not found")
                continue
            try:
                ctx.personality[role] = read_personality(path, role)
            except ReactError as exc:
                problem(exc.path or path, exc.problem)
    return ctx


def _read_index(cache: FeatureCache, split: str) -> MarsIndex | None:
    """The previous run's index, or None when there is none or it cannot be read (then all is redone)."""
    path = cache.mars_index(split)
    try:
        return MarsIndex.from_json(json.loads(path.read_text())) if path.is_file() else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _still_cached(cache: FeatureCache, split: str, entry: MarsEntry, features: str | None) -> bool:
    """The cached arrays of ``entry`` (with the audio features of kind ``features``) are readable
    .npy files with the lengths it records."""
    wanted = [("facial-attributes", entry.frames["facial-attributes"]), ("coefficients", entry.frames["coefficients"])]
    if entry.eeg_rows:
        wanted += [("eeg", entry.eeg_rows), ("eeg-mask", entry.eeg_rows)]
    if features is not None:
        wanted.append((features, entry.frames["facial-attributes"]))
    for kind, rows in wanted:
        path = cache.mars_array(split, kind, entry.recording)
        try:
            if np.load(path, mmap_mode="r", allow_pickle=False).shape[0] != rows:
                return False
        except (ValueError, OSError, EOFError):
            return False
    return True


def _preprocess_split(
    root: Path, cache: FeatureCache, listing: MarsListing, edition: Edition, result: MarsPreprocessResult,
    extractor: FeatureExtractor | None,
) -> MarsIndex | None:
    split = listing.split
    counts = result.counts[split]
    counts.recordings = len(listing.recordings)
    counts.junk = len(listing.junk)
    result.junk += [Problem(split, j.path, j.reason) for j in listing.junk]
    ctx = _split_context(root, split, edition, listing, result, extractor)
    features = None if ctx.features is None else audio_kind(ctx.features.tag)
    if not ctx.usable:
        return None  # a whole modality is missing: every recording would repeat the same problem
    previous = _read_index(cache, split)
    old = previous.entries if previous is not None and previous.edition == edition.name else {}
    entries: dict[str, MarsEntry] = {}
    with make_progress() as progress:
        task = progress.add_task(f"preprocess {split}", total=len(listing.recordings), info="")
        for number, rec in enumerate(listing.recordings, start=1):
            sources = ctx.sources(rec)
            entry = old.get(rec.id)
            if entry is not None and entry.sources == sources and _still_cached(cache, split, entry, features):
                counts.skipped += 1
            else:
                problems, entry, arrays = check_recording(ctx, rec)
                result.problems += problems
                if entry is None:
                    progress.update(task, advance=1, info=f"{len(result.problems)} problems")
                    continue
                entry.sources = sources
                for kind, array in arrays.items():
                    save_npy(cache.mars_array(split, kind, rec), array)
                counts.cached += 1
            entry.personality = _traits(ctx, rec)
            result.notes += [Problem(split, path, text) for path, text in entry.notes]
            entries[rec.id] = entry
            if number % INDEX_FLUSH == 0:  # keep finished work if the run is killed
                partial = {**{k: v for k, v in old.items() if k not in entries}, **entries}
                save_mars_index(cache, MarsIndex(edition.name, split, edition.fps, partial))
            progress.update(task, advance=1, info=f"{len(result.problems)} problems")

    unpaired = listing.unpaired()
    counts.unpaired = len(unpaired)
    for rec in unpaired:
        partner = rec.opposite()
        text = f"its {partner.role} recording {partner.id} is not listed: not a sample"
        result.unpaired.append(Problem(split, str(ctx.path("facial-attributes", rec)), text))
    for sample in mars_samples((e.recording for e in entries.values()), bidirectional=False):
        speaker, listener = entries[sample.input.id], entries[sample.target.id]
        _dyad_notes(ctx, speaker, listener, result)
    index = MarsIndex(edition.name, split, edition.fps, entries, list(listing.junk), [r.id for r in unpaired])
    counts.samples = len(index.samples(edition.bidirectional))
    return index


def _traits(ctx: SplitContext, rec: Recording) -> list[float] | None:
    table = ctx.personality.get(rec.role)
    found = table.lookup(rec) if table is not None else None
    return None if found is None else [float(v) for v in found]


def _dyad_notes(ctx: SplitContext, speaker: MarsEntry, listener: MarsEntry, result: MarsPreprocessResult) -> None:
    path = str(ctx.path("facial-attributes", listener.recording))
    if speaker.length != listener.length:
        text = (
            f"{listener.length} frames, its speaker has {speaker.length}: training uses the shorter, "
            "predictions have the speaker's length"
        )
        result.notes.append(Problem(ctx.split, path, text))
    if "listener" in ctx.personality and listener.personality is None:
        text = "no row in personality/listener.csv: the sample is left out when personality is used"
        result.notes.append(Problem(ctx.split, path, text))


def check_recording(ctx: SplitContext, rec: Recording) -> tuple[list[Problem], MarsEntry | None, dict[str, np.ndarray]]:
    """Read every modality of one recording: its problems, its index entry (None when it has a
    problem) and the arrays to cache."""
    problems: list[Problem] = []
    notes: list[tuple[str, str]] = []
    frames: dict[str, int] = {}
    arrays: dict[str, np.ndarray] = {}

    def problem(path: Path | str | None, text: str) -> None:
        problems.append(Problem(ctx.split, str(path), text))

    loaders = {
        "facial-attributes": load_attributes,
        "coefficients": load_coefficients,
        "audio-features": load_audio_features,
    }
    for modality, loader in loaders.items():
        if not ctx.folders[modality]:
            continue
        path = ctx.path(modality, rec)
        try:
            array = loader(path)
        except ReactError as exc:
            problem(exc.path or path, exc.problem)
            continue
        frames[modality] = len(array)
        if modality != "audio-features":  # the release's features are read in place, not copied
            arrays[modality] = array
    seconds = None
    if ctx.folders["audio"]:
        path = ctx.path("audio", rec)
        try:
            wave, rate = load_recording_audio(path)
            seconds = len(wave) / rate
            frames["audio"] = int(round(seconds * ctx.edition.fps))
            if ctx.features is not None and "facial-attributes" in frames:  # one row per attributes frame
                arrays[audio_kind(ctx.features.tag)] = ctx.features(wave, rate, frames["facial-attributes"])
        except ReactError as exc:
            problem(exc.path or path, exc.problem)
    if ctx.folders["video-face-crop"]:
        path = ctx.path("video-face-crop", rec)
        try:
            frames["video-face-crop"] = video_frame_count(path)
        except ReactError as exc:
            problem(exc.path or path, exc.problem)
    if "facial-attributes" in frames:
        _check_lengths(ctx, rec, frames, seconds, problem, notes)
    eeg_rows = None
    if ctx.eeg is not None and "facial-attributes" in frames:
        try:
            eeg_rows = _read_eeg(ctx, rec, frames["facial-attributes"], arrays, notes)
        except ReactError as exc:
            problem(exc.path or ctx.eeg.folder, exc.problem)
    if problems:
        return problems, None, {}
    return [], MarsEntry(rec, frames, eeg_rows=eeg_rows, notes=notes), arrays


def _check_lengths(
    ctx: SplitContext,
    rec: Recording,
    frames: dict[str, int],
    seconds: float | None,
    problem: Callable[[Path | str | None, str], None],
    notes: list[tuple[str, str]],
) -> None:
    """Every modality against the facial attributes: > 1 s apart is a problem, any gap a note."""
    fps = ctx.edition.fps
    length = frames["facial-attributes"]
    tolerance = LENGTH_TOLERANCE_S * fps
    if length < ctx.edition.min_frames:
        problem(
            ctx.path("facial-attributes", rec),
            f"{length} frames: shorter than the {ctx.edition.min_frames} frames a MARS recording has at least",
        )
    for modality in ("coefficients", "audio-features", "video-face-crop"):
        if modality not in frames or frames[modality] == length:
            continue
        path = str(ctx.path(modality, rec))
        text = f"{frames[modality]} frames, facial-attributes has {length}"
        if abs(frames[modality] - length) > tolerance:
            problem(path, f"{text} (more than {LENGTH_TOLERANCE_S:g} s apart: not the same recording?)")
        else:
            notes.append((path, f"{text}: training uses the shortest, predictions have the facial-attributes length"))
    if seconds is not None:
        path = str(ctx.path("audio", rec))
        gap = seconds * fps - length
        text = f"{seconds:.2f} s of audio for {length} frames ({length / fps:.2f} s)"
        if abs(gap) > tolerance:
            problem(path, text + (" (truncated?)" if gap < 0 else " (not the same recording?)"))
        elif abs(gap) >= 1:
            notes.append((path, text))


def _read_eeg(
    ctx: SplitContext, rec: Recording, length: int, arrays: dict[str, np.ndarray], notes: list[tuple[str, str]]
) -> int:
    """Read and note one recording's EEG table; returns its rows (0 when it has none)."""
    assert ctx.eeg is not None
    table = ctx.eeg.read(rec)
    fps = ctx.edition.fps
    if table.rows == 0:
        if rec.role == "listener":  # the official targets; speakers' EEG is only read when bidirectional
            where = table.source or str(ctx.eeg.folder / f"{rec.id}.csv")
            notes.append((where, "no EEG rows (not in the folder or the tar): the target and its mask are all zero"))
        return 0
    source = str(table.source)
    seconds = ceil(length / fps)
    if table.rows < seconds:
        notes.append((source, f"{table.rows} rows for {length} frames ({seconds} s): the last row repeats, mask too"))
    if table.masked_cells:
        total = table.rows * EEG_DIM
        notes.append((source, f"{table.masked_cells} of {total} cells blank, not numbers or not finite: masked"))
    if table.missing_columns:
        notes.append((source, f"no column {', '.join(table.missing_columns)}: masked on every row"))
    arrays["eeg"] = table.values
    arrays["eeg-mask"] = table.mask
    return table.rows
