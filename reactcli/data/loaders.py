"""Readers for every REACT file format, each validating what it reads.

Every loader names the file and the problem in its error (wrong shape, NaN/inf, truncated audio,
unreadable file), because a corrupt clip among thousands is otherwise found only as a NaN loss
hours into training.
"""

from __future__ import annotations

import contextlib
import csv
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from reactcli.errors import file_error
from reactcli.vocab import CLIP_FRAMES, EMOTION_COLUMNS, EMOTION_DIM, EMOTION_FRAMES, FACE_DIM, FPS

#: The shortest audio accepted: 30 s clips at 25 fps need 751 frames; allow one frame of slack.
MIN_AUDIO_SECONDS = (CLIP_FRAMES - 1) / FPS


def _check_finite(path: Path, array: np.ndarray) -> np.ndarray:
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise file_error(path, f"contains {bad} NaN/inf values")
    return array


def load_npy(path: str | Path, what: str, mmap_mode: str | None = None, pickled: str | None = None) -> np.ndarray:
    """``np.load`` without pickles; a missing or unreadable file is a ReactError naming ``what``.

    ``pickled`` is the problem to report for a file of pickled data (``np.load`` refuses it) where
    the caller knows why such a file turns up (MARS: archive metadata); otherwise it is unreadable.
    """
    path = Path(path)
    if not path.is_file():
        raise file_error(path, f"{what} not found")
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        if pickled is not None and isinstance(exc, ValueError) and "pickled" in str(exc):
            raise file_error(path, pickled) from None
        raise file_error(path, f"not a readable .npy file ({exc})") from None


def load_face3dmm(path: str | Path, frames: int = CLIP_FRAMES, exact: bool = False) -> np.ndarray:
    """A (frames, 58) float32 array from a (T, 1, 58) or (T, 58) floating-point ``.npy`` file.

    Integer arrays are refused: FaceVerse coefficients are fractions (rotation x is about pi), so an
    int16 file is a wrong export, and casting it would feed the model a flattened face. Longer files
    are cut to ``frames`` unless ``exact`` (then any other length is an error, as for a dataset clip).
    """
    path = Path(path)
    array = load_npy(path, "3DMM file")
    if array.ndim == 3 and array.shape[1] == 1:
        array = array[:, 0, :]
    if array.ndim != 2 or array.shape[1] != FACE_DIM:
        expected = f"({frames}, 1, {FACE_DIM}) or ({frames}, {FACE_DIM})"
        raise file_error(path, f"3DMM has shape {array.shape}, expected {expected}")
    if not np.issubdtype(array.dtype, np.floating):
        raise file_error(path, f"3DMM has dtype {array.dtype}, expected floating point (FaceVerse coefficients)")
    if array.shape[0] < frames or (exact and array.shape[0] != frames):
        raise file_error(path, f"3DMM has {array.shape[0]} frames, expected {frames}")
    return _check_finite(path, np.ascontiguousarray(array[:frames], dtype=np.float32))


def load_emotion(path: str | Path, frames: int = EMOTION_FRAMES) -> np.ndarray:
    """A (frames, 25) float32 array from an emotion CSV with a header row.

    ``np.loadtxt`` stays the parser: pandas reads one 750 x 25 file faster on its own (3.7 vs 5.2 ms
    on the demo data), but inside ``react preprocess`` the two took the same time per file and
    importing pandas (0.4 s) made the demo's preprocess slower, not faster. Only when loadtxt fails
    is the file scanned again, to name the line and column of the first bad cell.
    """
    path = Path(path)
    if not path.is_file():
        raise file_error(path, "emotion file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            array = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    except (ValueError, UserWarning) as exc:
        raise file_error(path, _emotion_csv_problem(path, frames) or f"not a numeric emotion CSV ({exc})") from None
    if array.shape[1] != EMOTION_DIM:
        header = _emotion_header(path)
        missing = [name for name in EMOTION_COLUMNS if name not in header]
        # the missing names only mean something when the header uses the standard ones
        hint = f" (missing {', '.join(missing)})" if missing and set(header) <= set(EMOTION_COLUMNS) else ""
        raise file_error(path, f"emotion CSV has {array.shape[1]} columns, expected {EMOTION_DIM}{hint}")
    if array.shape[0] < frames:
        raise file_error(path, f"emotion CSV has {array.shape[0]} rows, expected {frames}")
    array = np.ascontiguousarray(array[:frames], dtype=np.float32)
    finite = np.isfinite(array)
    if not finite.all():
        row, col = (int(v) for v in np.argwhere(~finite)[0])
        header = _emotion_header(path)
        name = f" ({header[col]})" if col < len(header) else ""
        raise file_error(
            path, f"contains {int((~finite).sum())} NaN/inf values (first at line {row + 2}, column {col + 1}{name})"
        )
    return array


def pad_emotion(emotion: np.ndarray, frames: int = CLIP_FRAMES) -> np.ndarray:
    """Emotion rows for ``frames`` video frames: short ones padded by repeating the last row.

    REACT has 750 emotion rows for 751 video frames; the dataset (training, ``react generate``) and
    single-clip generation give the last frame the last row by this one rule. Longer input is cut
    to ``frames``; empty input stays empty.
    """
    if len(emotion) >= frames or len(emotion) == 0:
        return emotion[:frames]
    return np.concatenate([emotion, np.repeat(emotion[-1:], frames - len(emotion), 0)])


def _emotion_header(path: Path) -> list[str]:
    """The column names of an emotion CSV (used only to word an error)."""
    with open(path, newline="", errors="replace") as fh:
        return [name.strip() for name in next(csv.reader(fh), [])]


def _emotion_csv_problem(path: Path, frames: int) -> str | None:
    """Where an emotion CSV that ``np.loadtxt`` rejected goes wrong: line, column and cell.

    loadtxt's own message counts data rows from 0 after the header and cannot tell an empty file
    from a bad cell; a researcher fixing the file needs the line number an editor shows.
    """
    with open(path, newline="", errors="replace") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return f"emotion CSV is empty (expected a header row and {frames} rows)"
    header = [name.strip() for name in rows[0]]
    data = [(line, row) for line, row in enumerate(rows[1:], start=2) if any(cell.strip() for cell in row)]
    if not data:
        return f"emotion CSV has 0 rows, expected {frames}"
    first_line, first = data[0]
    for line, row in data:
        if len(row) != len(first):
            return f"not a numeric emotion CSV: line {line} has {len(row)} fields, line {first_line} has {len(first)}"
        for col, cell in enumerate(row):
            try:
                float(cell)
            except ValueError:
                name = f" ({header[col]})" if col < len(header) else ""
                what = f"'{cell.strip()}' is not a number" if cell.strip() else "the cell is empty"
                return f"not a numeric emotion CSV: line {line}, column {col + 1}{name}: {what}"
    return None


def load_audio(path: str | Path, min_seconds: float = MIN_AUDIO_SECONDS) -> tuple[np.ndarray, int]:
    """Mono float32 samples in [-1, 1] and the sample rate; stereo is averaged to mono."""
    from scipy.io import wavfile

    path = Path(path)
    if not path.is_file():
        raise file_error(path, "audio file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            rate, data = wavfile.read(path)
    except (ValueError, OSError, EOFError) as exc:
        raise file_error(path, f"not a readable wav file ({exc})") from None
    if np.issubdtype(data.dtype, np.integer):
        scale = float(np.iinfo(data.dtype).max) + 1.0
        wave = data.astype(np.float32) / scale
        if data.dtype == np.uint8:
            wave = (data.astype(np.float32) - 128.0) / 128.0
    else:
        wave = data.astype(np.float32)
    if wave.ndim == 2:
        wave = wave.mean(axis=1)
    if wave.ndim != 1 or wave.size == 0:
        raise file_error(path, f"audio has shape {data.shape}, expected (samples,) or (samples, channels)")
    seconds = wave.size / rate
    if seconds < min_seconds:
        raise file_error(path, f"audio is {seconds:.2f} s long, expected at least {min_seconds:.2f} s (truncated?)")
    return _check_finite(path, wave), int(rate)


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Polyphase resampling (scipy), the replacement for torchaudio's resampler here."""
    from math import gcd

    from scipy.signal import resample_poly

    if rate == target:
        return wave.astype(np.float32, copy=False)
    g = gcd(int(rate), int(target))
    return resample_poly(wave, target // g, rate // g).astype(np.float32)


def _frame_number(path: Path) -> int:
    match = re.search(r"(\d+)$", path.stem)
    return int(match.group(1)) if match else -1


def list_frame_files(folder: Path) -> list[Path]:
    """Numbered PNG/JPG frames of a frame folder, in numeric (not lexical) order."""
    files = [p for p in folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"}]
    if not files:
        raise file_error(folder, "video frame folder has no .png/.jpg frames")
    return sorted(files, key=_frame_number)


def iter_video_frames(path: str | Path, chunk: int) -> Iterator[np.ndarray]:
    """(t, H, W, 3) uint8 chunks of an mp4 (imageio-ffmpeg) or a folder of numbered images.

    Streaming keeps memory flat when a 751-frame clip is composed into a video frame by frame.
    """
    path = Path(path)
    if path.is_dir():
        from PIL import Image

        files = list_frame_files(path)
        size = None
        for start in range(0, len(files), chunk):
            frames = [np.asarray(Image.open(f).convert("RGB")) for f in files[start : start + chunk]]
            size = size or frames[0].shape
            if any(f.shape != size for f in frames):
                raise file_error(path, "video frames have different sizes")
            yield np.stack(frames)
        return
    if not path.is_file():
        raise file_error(path, "video not found")
    import imageio_ffmpeg

    try:
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        meta = next(reader)
    except (RuntimeError, OSError, StopIteration) as exc:
        raise file_error(path, f"not a readable video ({str(exc).strip()[-200:]})") from None
    width, height = meta["size"]
    buf: list[np.ndarray] = []
    try:
        for raw in reader:
            buf.append(np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3))
            if len(buf) == chunk:
                yield np.stack(buf)
                buf = []
    except RuntimeError as exc:
        raise file_error(path, f"video could not be decoded ({str(exc).strip()[-200:]})") from None
    finally:
        reader.close()
    if buf:
        yield np.stack(buf)


def read_video_frames(path: str | Path, max_frames: int | None = None) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of an mp4 or a frame folder (the first ``max_frames`` if given)."""
    blocks: list[np.ndarray] = []
    count = 0
    with contextlib.closing(iter_video_frames(path, chunk=min(max_frames or 64, 64))) as chunks:
        for block in chunks:
            blocks.append(block)
            count += len(block)
            if max_frames is not None and count >= max_frames:
                break
    if not blocks:
        raise file_error(path, "video has no frames")
    return np.concatenate(blocks)[:max_frames]


def load_neighbours(path: str | Path, n_samples: int) -> np.ndarray:
    """The (N, N) appropriateness matrix as bool; a size other than N is an error naming both."""
    path = Path(path)
    matrix = load_npy(path, "neighbour (appropriateness) matrix")
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise file_error(path, f"neighbour matrix has shape {matrix.shape}, expected square ({n_samples}, {n_samples})")
    if matrix.shape[0] != n_samples:
        raise file_error(
            path,
            f"neighbour matrix is {matrix.shape[0]} x {matrix.shape[1]} but the split has {n_samples} "
            f"mirrored samples (2 x {n_samples // 2} rows)",
        )
    _check_finite(path, matrix.astype(np.float64))
    return matrix.astype(bool)
