"""Readers for the files of a MARS release (REACT 2025/2026), each validating what it reads.

The arrays (``facial-attributes`` (T, 25), ``coefficients`` (T, 1, 58) or (T, 58),
``audio-features`` (T, 768)) are ``.npy`` files read without pickles; a file that numpy can only
read as a pickle is, in a MARS copy, almost always macOS or tar metadata saved under a recording's
name, and the error says so. Audio goes through :func:`reactcli.data.loaders.load_audio` (any rate).

The 2026 extras follow the organisers' personalised loader (docs/mars.md has the rules in words):

- **Personality** (``personality/listener.csv``, ``speaker.csv``): traits on a 1-5 scale become
  ``(x - 1) / 4``; a row is keyed by ``(session, stem)`` when its session cell is filled and always
  by ``stem`` (``Path(video_name).stem``, so ``x.mp4`` and ``x`` are the same key).
- **EEG** (``eeg_processed/<role>/<session>/<stem>.csv``, else a member of
  ``<split>/eeg_processed.tar.gz``): one row per second, 14 columns read by name, the four raw
  channels divided by 1000, a mask that is 1 only for a present, numeric, finite cell. A missing
  file gives no rows, which :func:`eeg_per_frame` turns into all-zero targets and mask.

The official reader crashes on a row with fewer cells than the header (``float(None)``); here such
cells are masked like blanks.
"""

from __future__ import annotations

import csv
import io
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from reactcli.data.loaders import load_audio, load_npy
from reactcli.data.mars import Recording
from reactcli.editions import (
    AUDIO_FEATURE_DIM,
    EEG_CHANNEL_SCALE,
    EEG_COLUMNS,
    EEG_DIM,
    EEG_RAW_CHANNELS,
    MARS_FPS,
    PERSONALITY_SCALE,
    PERSONALITY_TRAITS,
)
from reactcli.errors import file_error
from reactcli.vocab import EMOTION_COLUMNS, EMOTION_DIM, FACE_DIM

EEG_FOLDER = "eeg_processed"
EEG_TAR = f"{EEG_FOLDER}.tar.gz"
PERSONALITY_FOLDER = "personality"

PICKLED_NPY = (
    "is not a numeric .npy array but pickled data: probably an AppleDouble/archive metadata file "
    "(such as '._*.npy' from a macOS zip or tar) saved under a recording's name; remove it"
)


# -- arrays -----------------------------------------------------------------------------------------
def load_mars_npy(path: str | Path, what: str, mmap_mode: str | None = None) -> np.ndarray:
    """``np.load`` without pickles; a missing, unreadable or pickled file is a ReactError naming it."""
    return load_npy(path, f"{what} file", mmap_mode, pickled=PICKLED_NPY)


def _checked(path: Path, array: np.ndarray, what: str, columns: tuple[str, ...] | None) -> np.ndarray:
    """Float, at least one frame, finite; returned as contiguous float32."""
    if array.dtype.kind != "f":
        raise file_error(path, f"{what} has dtype {array.dtype}, expected float32")
    if array.shape[0] == 0:
        raise file_error(path, f"{what} has no frames")
    out = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(out)
    if not finite.all():
        frame, col = (int(v) for v in np.argwhere(~finite)[0])
        name = f" ({columns[col]})" if columns else ""
        raise file_error(
            path, f"{what} contains {int((~finite).sum())} NaN/inf values (first at frame {frame}, column {col}{name})"
        )
    return out


def load_attributes(path: str | Path) -> np.ndarray:
    """``facial-attributes``: (T, 25) float32 (15 AU occurrences, valence, arousal, 8 expressions)."""
    path = Path(path)
    array = load_mars_npy(path, "facial-attributes")
    if array.ndim != 2 or array.shape[1] != EMOTION_DIM:
        raise file_error(path, f"facial attributes have shape {array.shape}, expected (T, {EMOTION_DIM})")
    return _checked(path, array, "facial attributes", EMOTION_COLUMNS)


def load_coefficients(path: str | Path) -> np.ndarray:
    """``coefficients``: (T, 58) float32 from a (T, 1, 58) or (T, 58) file (the loaders squeeze)."""
    path = Path(path)
    array = load_mars_npy(path, "3DMM coefficients")
    if array.ndim == 3 and array.shape[1] == 1:
        array = array[:, 0, :]
    if array.ndim != 2 or array.shape[1] != FACE_DIM:
        raise file_error(
            path, f"3DMM coefficients have shape {array.shape}, expected (T, 1, {FACE_DIM}) or (T, {FACE_DIM})"
        )
    return _checked(path, array, "3DMM coefficients", None)


def load_audio_features(path: str | Path) -> np.ndarray:
    """``audio-features``: (T, 768) float32, the release's wav2vec2 features at the video rate."""
    path = Path(path)
    array = load_mars_npy(path, "audio-features", mmap_mode="r")
    if array.ndim != 2 or array.shape[1] != AUDIO_FEATURE_DIM:
        raise file_error(path, f"audio features have shape {array.shape}, expected (T, {AUDIO_FEATURE_DIM})")
    return _checked(path, array, "audio features", None)


def load_recording_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """``audio``: mono float32 samples and the rate (any rate; stereo averaged). The length is
    checked against the recording by the caller, who knows its frame count."""
    return load_audio(path, min_seconds=0.0)


def video_frame_count(path: str | Path) -> int:
    """Frames of an mp4, counted by ffmpeg without decoding (the generic loader takes T from it)."""
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise file_error(path, "video not found")
    try:
        frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    except (RuntimeError, OSError, ValueError) as exc:
        raise file_error(path, f"not a readable video ({str(exc).strip()[-200:]})") from None
    if frames <= 0:
        raise file_error(path, "video has no frames")
    return int(frames)


# -- personality ------------------------------------------------------------------------------------
@dataclass
class PersonalityTable:
    """One ``personality/<role>.csv``: traits as float32 (5,) vectors ``(x - 1) / 4`` by key."""

    path: Path
    role: str
    by_session: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    by_stem: dict[str, np.ndarray] = field(default_factory=dict)

    def lookup(self, recording: Recording) -> np.ndarray | None:
        """The official order: (session, stem) first, then the stem alone; None when neither is listed."""
        if recording.role != self.role:
            return None
        found = self.by_session.get((recording.session, recording.stem))
        return found if found is not None else self.by_stem.get(recording.stem)


def read_personality(path: str | Path, role: str) -> PersonalityTable:
    """Read ``personality/<role>.csv`` (utf-8 with or without BOM); later rows win, as officially.

    A missing file, a missing column, a trait that is not a number or lies outside 1-5 is a
    ReactError naming the file (and the line); rows with an empty ``video_name`` are skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise file_error(path, f"{role} personality file not found")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise file_error(path, f"not a readable UTF-8 CSV ({exc})") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in ("video_name", *PERSONALITY_TRAITS) if name not in header]
    if missing:
        raise file_error(path, f"personality CSV lacks the column(s) {', '.join(missing)}")
    table = PersonalityTable(path, role)
    low, high = PERSONALITY_SCALE
    for line, row in enumerate(reader, start=2):
        stem = PurePosixPath((row.get("video_name") or "").strip()).stem
        if not stem:
            continue
        values = []
        for name in PERSONALITY_TRAITS:
            cell = (row.get(name) or "").strip()
            try:
                value = float(cell)
            except ValueError:
                what = f"'{cell}' is not a number" if cell else "the cell is empty"
                raise file_error(path, f"line {line}, {name}: {what}") from None
            if not low <= value <= high:  # also refuses nan
                raise file_error(path, f"line {line}, {name}: {cell} is outside the {low:g}-{high:g} scale")
            values.append((value - low) / (high - low))
        vector = np.asarray(values, dtype=np.float32)
        session = (row.get("session") or "").strip()
        if session:
            table.by_session[(session, stem)] = vector
        table.by_stem[stem] = vector
    return table


# -- EEG --------------------------------------------------------------------------------------------
@dataclass
class EegTable:
    """One recording's EEG, one row per second: ``values`` and ``mask`` (R, 14) float32.

    ``source`` names the CSV (or ``tar!member``) it came from, None when there was none;
    ``masked_cells`` counts cells of the R rows that were blank, not numbers or not finite, and
    ``missing_columns`` the targets the header lacks (masked on every row).
    """

    values: np.ndarray
    mask: np.ndarray
    source: str | None
    masked_cells: int = 0
    missing_columns: tuple[str, ...] = ()

    @property
    def rows(self) -> int:
        return len(self.values)


def empty_eeg() -> EegTable:
    return EegTable(np.zeros((0, EEG_DIM), np.float32), np.zeros((0, EEG_DIM), np.float32), None)


def parse_eeg_csv(text: str, source: str) -> EegTable:
    """Parse an EEG CSV's text (BOM already removed) the way the official reader does."""
    reader = csv.DictReader(io.StringIO(text))
    rows = list(reader)
    header = set(reader.fieldnames or [])
    if not rows:
        table = empty_eeg()
        table.source = source
        return table
    values = np.zeros((len(rows), EEG_DIM), np.float32)
    mask = np.zeros((len(rows), EEG_DIM), np.float32)
    for r, row in enumerate(rows):
        for c, name in enumerate(EEG_COLUMNS):
            cell = row.get(name)
            if cell is None or cell == "":
                continue
            try:
                value = float(cell)
            except ValueError:
                continue
            if not np.isfinite(value):
                continue
            values[r, c] = value / EEG_CHANNEL_SCALE if name in EEG_RAW_CHANNELS else value
            mask[r, c] = 1.0
    missing = tuple(name for name in EEG_COLUMNS if name not in header)
    return EegTable(values, mask, source, int(mask.size - mask.sum()), missing)


def is_archive_metadata(name: str) -> bool:
    """The official EEG reader's test: an AppleDouble or Finder file, or under a PaxHeader folder."""
    parts = PurePosixPath(name).parts
    return bool(parts) and (parts[-1].startswith("._") or parts[-1] == ".DS_Store" or "PaxHeader" in parts)


class EegReader:
    """EEG of one split: the folder first, then (when ``use_tar``) ``<split>/eeg_processed.tar.gz``.

    The tar is read in one pass on first need, keeping the CSV members of ``wanted`` (all when
    None): a gzip tar has no index, and extracting member by member would reread it every time.
    Members are looked up as ``eeg_processed/<role>/<session>/<stem>.csv``, then
    ``<role>/<session>/<stem>.csv``; metadata members are skipped.
    """

    def __init__(self, split_dir: str | Path, use_tar: bool = True, wanted: Iterable[Recording] | None = None) -> None:
        self.split_dir = Path(split_dir)
        self.folder = self.split_dir / EEG_FOLDER
        self.tar = self.split_dir / EEG_TAR
        self.use_tar = use_tar
        self.wanted = None if wanted is None else {n for r in wanted for n in self.member_names(r)}
        self._members: dict[str, bytes] | None = None

    @staticmethod
    def member_names(recording: Recording) -> tuple[str, str]:
        inner = f"{recording.id}.csv"
        return f"{EEG_FOLDER}/{inner}", inner

    def available(self) -> bool:
        return self.folder.is_dir() or (self.use_tar and self.tar.is_file())

    def open(self) -> None:
        """Read the tar now (if it will be used), so a broken archive is reported once, up front."""
        if self.use_tar and self.tar.is_file():
            self._tar_members()

    def _tar_members(self) -> dict[str, bytes]:
        if self._members is None:
            members: dict[str, bytes] = {}
            try:
                with tarfile.open(self.tar, "r:gz") as tar:
                    for info in tar:
                        name = info.name[2:] if info.name.startswith("./") else info.name
                        if not info.isfile() or is_archive_metadata(name):
                            continue
                        if self.wanted is not None and name not in self.wanted:
                            continue
                        handle = tar.extractfile(info)
                        if handle is not None:
                            members[name] = handle.read()
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise file_error(self.tar, f"not a readable tar.gz archive ({exc})") from None
            self._members = members
        return self._members

    def read(self, recording: Recording) -> EegTable:
        """The recording's EEG table; no rows (and ``source`` None) when it has no file."""
        path = self.folder / f"{recording.id}.csv"
        if path.is_file():
            return parse_eeg_csv(_decode(path.read_bytes(), str(path)), str(path))
        if self.use_tar and self.tar.is_file():
            members = self._tar_members()
            for name in self.member_names(recording):
                if name in members:
                    source = f"{self.tar}!{name}"
                    return parse_eeg_csv(_decode(members[name], source), source)
        return empty_eeg()


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise file_error(source, f"EEG CSV is not UTF-8 text ({exc})") from None


def eeg_per_frame(table: EegTable, frames: int, fps: int = MARS_FPS) -> tuple[np.ndarray, np.ndarray]:
    """(frames, 14) targets and mask: frame t uses row ``floor(t / fps)``, clipped to the last row
    (so a short CSV repeats its last row, mask included); no rows gives zeros and a zero mask."""
    if table.rows == 0:
        zeros = np.zeros((frames, EEG_DIM), np.float32)
        return zeros, zeros.copy()
    rows = np.minimum(np.arange(frames) // fps, table.rows - 1)
    return table.values[rows], table.mask[rows]
