"""One type for generated reactions: :class:`PredictionSet` opens and checks them, :class:`PredictionWriter`
writes them, and every stage (generate, evaluate, render, FRRea, package-submission) goes through the two.

**A prediction set** is N samples (ids in a fixed order), K reactions each, and per sample an emotion
series (K, T_i, 25) and optionally a raw 3DMM series (K, T'_i, 58), plus a *record* of how it was made.
On disk it is a folder (what ``react generate --out`` writes):

- ``generation.json`` — the record: ``format``, ``layout``, ``edition``, ``split``, ``N``, ``K``,
  ``seed``, ``checkpoint`` and ``checkpoint_sha256``, the whole ``generation`` config section (so
  a run can be reproduced from it), ``order``, the array shapes and the sample ``ids``;
- **dense** layout (every sample the same length; REACT 2024's submission format, byte for byte
  what ``np.save`` writes): ``emotion.npy`` (N, K, T, 25) and ``face3dmm.npy`` (N, K, T', 58),
  float32;
- **ragged** layout (clips of different lengths, as in REACT 2025/2026: 58 to 20 000+ frames):
  ``emotion_ragged.npy`` (sum_i K T_i, 25) and ``face3dmm_ragged.npy`` (sum_i K T'_i, 58), sample i's
  (K, T_i, D) block stored contiguously after sample i - 1's; the record holds ``emotion_frames``
  and ``face3dmm_frames`` (T_i per sample), from which the offsets follow.

**EEG** (REACT 2026, optional): a set may also hold each sample's EEG estimate, (K, n_i, D) with
one row per second of the clip (``data/eeg_windows.py``: n_i = ceil(T_i / fps)) and D the EEG
targets (14 on MARS; the set takes D from its arrays and the scorer checks it), in the same two
layouts: ``eeg.npy`` (N, K, n, D) or ``eeg_ragged.npy`` (sum_i K n_i, D) with the record's
``eeg_frames``. ``has_eeg``, ``eeg(i)`` and ``eeg_lengths`` read it; ``PredictionWriter(...,
kinds=(*KINDS, EEG))`` writes it (``add(..., eeg=)``).

Both layouts are memory-mapped on open, so a sample costs only its own pages. In either, sample
i's block is C-ordered (K, T_i, D) and the blocks follow each other, so a dense file *is* a ragged
file of equal lengths with a 4-D header: the writer streams every sample to disk as it comes (memory
bounded by one sample) and only chooses the header — dense when all lengths agree — at commit.

The opener also takes what ``react evaluate`` always took: a bare ``.npy`` or torch ``.pt`` emotion
array (N, K, T, 25) and a generate folder without ``generation.json`` (then the ids are unknown, and
only their number is checked).

Sample ids: REACT 2024 names a mirrored sample ``"<speaker clip>-><listener clip>"``
(:func:`sample_id`); REACT 2025/2026 name it by its input recording. Sizes and file names come
from ``vocab``; this module imports nothing above ``atomic``/``errors``/``vocab``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from reactcli.atomic import StagedFolder, save_json, write_error
from reactcli.errors import ReactError, file_error
from reactcli.vocab import EMOTION_DIM, EMOTION_FILE, FACE3DMM_FILE, FACE_DIM, GENERATION_FILE

FORMAT = "reactcli-predictions/1"
DENSE, RAGGED = "dense", "ragged"
KINDS = ("emotion", "face3dmm")
EEG = "eeg"  # the optional per-second EEG estimate (REACT 2026), its width taken from the arrays
ALL_KINDS = (*KINDS, EEG)
DIMS = {"emotion": EMOTION_DIM, "face3dmm": FACE_DIM}
DENSE_FILES = {"emotion": EMOTION_FILE, "face3dmm": FACE3DMM_FILE, EEG: "eeg.npy"}
RAGGED_FILES = {"emotion": "emotion_ragged.npy", "face3dmm": "face3dmm_ragged.npy", EEG: "eeg_ragged.npy"}
FRAMES_KEYS = {"emotion": "emotion_frames", "face3dmm": "face3dmm_frames", EEG: "eeg_frames"}
SHAPE_KEYS = {"emotion": "emotion_shape", "face3dmm": "face3dmm_shape", EEG: "eeg_shape"}
#: Everything a predictions folder may hold: ``react generate`` replaces such a folder as a whole.
FILES = frozenset({*DENSE_FILES.values(), *RAGGED_FILES.values(), GENERATION_FILE})
#: The sane range of a predicted value. Emotion lies in [-1, 1] and raw 3DMM coefficients within a
#: few units (rotation x is about pi), so only a broken model or file exceeds 1e3 — and values near
#: float32's limit turn the metrics' sums of squares into inf, so such sets are refused before scoring.
VALUE_LIMIT = 1e3
#: What ``order`` says for REACT 2024 sets.
ORDER_2024 = "mirrored samples (rows, then roles swapped); reactions along dim 1"
_HEADER_BYTES = 128  # np.save's header for any shape we write; the writer reserves it up front
_DTYPE = np.dtype("<f4")


class _Pair(Protocol):
    speaker: str
    listener: str


def sample_id(speaker: str, listener: str) -> str:
    """The id of a REACT 2024 mirrored sample: ``"<speaker clip>-><listener clip>"``."""
    return f"{speaker}->{listener}"


def sample_ids(samples: Iterable[_Pair]) -> list[str]:
    """Ids of mirrored samples (``data.layout.Sample``), in their order."""
    return [sample_id(s.speaker, s.listener) for s in samples]


def shape_problem(kind: str, shape: Sequence[int]) -> str | None:
    """What is wrong with the shape of a dense ``kind`` ("emotion"/"face3dmm"/"eeg") array, or None."""
    shape = tuple(int(s) for s in shape)
    dim = DIMS.get(kind, shape[-1] if shape and shape[-1] >= 1 else "D")
    if len(shape) != 4 or shape[3] != dim:
        return f"predictions have shape {shape}, expected (N, K, T, {dim})"
    if shape[1] < 1:
        return "predictions hold K = 0 reactions per sample"
    return None


def predicted_bytes(samples: int, emotion_frames: Sequence[int], face_frames: Sequence[int] | None = None) -> int:
    """Bytes a set of K = ``samples`` reactions with these per-sample lengths takes on disk."""
    total = samples * EMOTION_DIM * int(sum(emotion_frames))
    if face_frames is not None:
        total += samples * FACE_DIM * int(sum(face_frames))
    return total * _DTYPE.itemsize + 2 * _HEADER_BYTES + 65536  # + the record


# -- reading ------------------------------------------------------------------------------------------
@dataclass
class _Series:
    """One kind of array of a set: where it is, the array (memory-mapped) and each sample's length."""

    kind: str
    file: Path
    array: np.ndarray  # dense (N, K, T, D); ragged (sum K T_i, D)
    lengths: np.ndarray  # (N,) frames per sample
    offsets: np.ndarray | None  # ragged: first row of each sample's block; None when dense
    samples: int  # K

    def block(self, i: int) -> np.ndarray:
        if self.offsets is None:
            return self.array[i]
        start, frames = int(self.offsets[i]), int(self.lengths[i])
        return self.array[start : start + self.samples * frames].reshape(self.samples, frames, -1)


def _load_array(path: Path) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise file_error(path, f"not a readable .npy file ({exc})") from None
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.number):
        raise file_error(path, f"predictions have dtype {getattr(array, 'dtype', '?')}, expected numbers")
    return array


def _load_torch(path: Path) -> np.ndarray:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise file_error(path, f"not a readable torch tensor file ({exc})") from None
    if not isinstance(obj, torch.Tensor):
        raise file_error(path, f"expected a single tensor, found {type(obj).__name__}")
    return obj.detach().to(torch.float32).numpy()


def _read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise file_error(path, f"not a readable prediction record ({exc})") from None
    if not isinstance(record, dict):
        raise file_error(path, f"expected a JSON object, found {type(record).__name__}")
    return record


def _dense_series(kind: str, path: Path, array: np.ndarray) -> _Series:
    problem = shape_problem(kind, array.shape)
    if problem:
        raise file_error(path, problem)
    n, k, t = (int(s) for s in array.shape[:3])
    return _Series(kind, path, array, np.full(n, t, dtype=np.int64), None, k)


class PredictionSet:
    """Generated reactions, opened (memory-mapped) from what :class:`PredictionWriter` or ``react
    generate`` wrote, or from a bare emotion array. See the module docstring for the layouts.

    ``ids`` (sample ids in order; ``#i`` placeholders when the source names none, ``named`` False),
    ``K``, ``lengths`` (emotion frames per sample; the 3DMM's when there is no emotion),
    ``face_lengths``, ``record`` (the stored ``generation.json``, ``{}`` without one), ``layout``,
    ``emotion(i)`` -> (K, T_i, 25), ``face3dmm(i)`` -> (K, T'_i, 58) or None, ``dense_emotion()`` ->
    (N, K, T, 25) when all lengths agree, ``validate_against`` and ``check_values``.
    """

    def __init__(self, path: Path, series: dict[str, _Series], record: dict[str, Any], layout: str) -> None:
        self.path = path
        self._series = series
        self.record = record
        self.layout = layout
        first = next(iter(series.values()))
        self.K = first.samples
        ids = record.get("ids")
        self.named = isinstance(ids, list)
        self.ids: list[str] = [str(i) for i in ids] if self.named else [f"#{i}" for i in range(len(first.lengths))]

    # -- opening -------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path) -> PredictionSet:
        """A ``react generate`` folder (dense or ragged), or an emotion array in a ``.npy``/``.pt`` file."""
        path = Path(path)
        if path.is_dir():
            return cls._open_folder(path)
        if not path.is_file():
            raise file_error(path, "predictions not found")
        suffix = path.suffix.lower()
        if suffix == ".npy":
            array = _load_array(path)
        elif suffix in (".pt", ".pth"):
            array = _load_torch(path)
        else:
            raise file_error(path, "predictions must be a .npy or .pt file, or a react generate folder")
        return cls(path, {"emotion": _dense_series("emotion", path, array)}, {}, DENSE)

    @classmethod
    def _open_folder(cls, folder: Path) -> PredictionSet:
        record_path = folder / GENERATION_FILE
        record = _read_record(record_path) if record_path.is_file() else {}
        layout = record.get("layout", DENSE)
        if layout == DENSE:
            series = {
                kind: _dense_series(kind, folder / name, _load_array(folder / name))
                for kind, name in DENSE_FILES.items()
                if (folder / name).is_file()
            }
        elif layout == RAGGED:
            series = cls._ragged_series(folder, record, record_path)
        else:
            raise file_error(record_path, f"layout '{layout}' is not one of {DENSE}, {RAGGED}")
        if not any(kind in series for kind in KINDS):
            raise file_error(
                folder, f"prediction folder has no {EMOTION_FILE} or {FACE3DMM_FILE} (expected a react generate folder)"
            )
        main = series.get("emotion") or series["face3dmm"]
        for other in series.values():
            have, found = (len(main.lengths), main.samples), (len(other.lengths), other.samples)
            if found != have:
                raise file_error(main.file, f"has (N, K) = {have} but {other.file.name} has {found}")
        n = len(main.lengths)
        ids = record.get("ids")
        if ids is not None and (not isinstance(ids, list) or len(ids) != n):
            count = len(ids) if isinstance(ids, list) else type(ids).__name__
            raise file_error(record_path, f"lists {count} sample ids but the arrays hold {n} samples")
        return cls(folder, series, record, layout)

    @staticmethod
    def _ragged_series(folder: Path, record: dict[str, Any], record_path: Path) -> dict[str, _Series]:
        k = record.get("K")
        if not isinstance(k, int) or k < 1:
            raise file_error(record_path, f"K = {k!r}: a ragged set needs K >= 1 in its record")
        series = {}
        for kind, name in RAGGED_FILES.items():
            path = folder / name
            if not path.is_file():
                continue
            frames = record.get(FRAMES_KEYS[kind])
            if not isinstance(frames, list) or not all(isinstance(t, int) and t >= 0 for t in frames):
                raise file_error(record_path, f"a ragged set needs '{FRAMES_KEYS[kind]}' (frames per sample)")
            array = _load_array(path)
            lengths = np.asarray(frames, dtype=np.int64)
            rows = k * int(lengths.sum())
            dim = DIMS.get(kind, array.shape[-1] if array.ndim == 2 and array.shape[-1] >= 1 else "D")
            if array.ndim != 2 or array.shape[1] != dim or array.shape[0] != rows:
                raise file_error(
                    path, f"has shape {array.shape}, its record says ({rows}, {dim}) (K x the frames listed)"
                )
            offsets = np.concatenate([[0], np.cumsum(lengths[:-1]) * k]).astype(np.int64)
            series[kind] = _Series(kind, path, array, lengths, offsets, k)
        return series

    # -- access --------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    @property
    def has_emotion(self) -> bool:
        return "emotion" in self._series

    @property
    def has_face3dmm(self) -> bool:
        return "face3dmm" in self._series

    @property
    def has_eeg(self) -> bool:
        """Whether the set holds EEG estimates (REACT 2026, a model with ``predictor.eeg_head``)."""
        return EEG in self._series

    @property
    def eeg_lengths(self) -> list[int] | None:
        """EEG vectors (seconds) per sample, or None without EEG."""
        return [int(t) for t in self._series[EEG].lengths] if self.has_eeg else None

    @property
    def eeg_path(self) -> Path | None:
        return self._series[EEG].file if self.has_eeg else None

    def eeg(self, i: int) -> np.ndarray | None:
        """Sample i's EEG estimate (K, n_i, D), one row per second, or None when the set has none."""
        return self._series[EEG].block(i) if self.has_eeg else None

    @property
    def emotion_path(self) -> Path | None:
        return self._series["emotion"].file if self.has_emotion else None

    @property
    def face_path(self) -> Path | None:
        return self._series["face3dmm"].file if self.has_face3dmm else None

    @property
    def lengths(self) -> list[int]:
        """Frames of each sample's emotion (of its 3DMM in a set without emotion)."""
        main = self._series.get("emotion") or self._series["face3dmm"]
        return [int(t) for t in main.lengths]

    @property
    def face_lengths(self) -> list[int] | None:
        return [int(t) for t in self._series["face3dmm"].lengths] if self.has_face3dmm else None

    def require(self, kind: str, why: str) -> None:
        """A one-line error naming the set when it lacks ``kind`` ("emotion"/"face3dmm")."""
        if kind not in self._series:
            raise file_error(self.path, f"{why}, but this prediction set has no {DENSE_FILES[kind]}")

    def emotion(self, i: int) -> np.ndarray:
        """Sample i's emotion (K, T_i, 25), a read-only view of the file (as stored: float32)."""
        self.require("emotion", "emotion was asked for")
        return self._series["emotion"].block(i)

    def face3dmm(self, i: int) -> np.ndarray | None:
        """Sample i's raw 3DMM (K, T'_i, 58), or None when the set has none."""
        return self._series["face3dmm"].block(i) if self.has_face3dmm else None

    def dense_emotion(self) -> np.ndarray:
        """All emotion as one (N, K, T, 25) array (a view when possible); an error when lengths differ."""
        self.require("emotion", "a dense emotion array was asked for")
        return self._dense(self._series["emotion"])

    def dense_face3dmm(self) -> np.ndarray:
        self.require("face3dmm", "a dense 3DMM array was asked for")
        return self._dense(self._series["face3dmm"])

    def _dense(self, series: _Series) -> np.ndarray:
        if series.offsets is None:
            return series.array
        lengths = series.lengths
        if len(lengths) and (lengths != lengths[0]).any():
            raise file_error(
                series.file,
                f"samples have different lengths ({int(lengths.min())} to {int(lengths.max())} frames): "
                "they can only be read one by one",
            )
        t = int(lengths[0]) if len(lengths) else 0
        return series.array.reshape(len(lengths), series.samples, t, DIMS[series.kind])

    # -- checks --------------------------------------------------------------------------------------
    def _main_file(self) -> Path:
        return self.emotion_path or self.face_path or self.path

    def _id_note(self, i: int) -> str:
        return f" (sample id '{self.ids[i]}')" if self.named else ""

    def validate_against(
        self,
        ids: Sequence[str],
        lengths: int | Sequence[int] | None = None,
        source: str = "the split",
        *,
        face_lengths: int | Sequence[int] | None = None,
        exact: bool = True,
    ) -> PredictionSet:
        """Check the set against what ``source`` (the split, say) expects: the number of samples, their
        ids (when the set names them), and the frames of each sample's emotion (``lengths``) and 3DMM
        (``face_lengths``) — equal, or with ``exact=False`` at least that many. One-line errors naming
        the file; returns ``self``."""
        main = self._main_file()
        n, m = len(self), len(ids)
        if n != m:
            raise file_error(main, f"predictions hold {n} samples, expected N = {m} ({source})")
        if self.named:
            for i, (have, want) in enumerate(zip(self.ids, ids, strict=True)):
                if have != want:
                    raise file_error(
                        self.path / GENERATION_FILE if self.path.is_dir() else self.path,
                        f"sample {i} is '{have}' but {source} has '{want}' there (another split or order?)",
                    )
        for kind, want in (("emotion", lengths), ("face3dmm", face_lengths)):
            if want is None or kind not in self._series:
                continue
            series = self._series[kind]
            expected = np.broadcast_to(np.asarray(want, dtype=np.int64), (n,))
            bad = series.lengths != expected if exact else series.lengths < expected
            if bad.any():
                i = int(np.argmax(bad))
                need = f"{'' if exact else 'at least '}{int(expected[i])}"
                where = "predictions have" if series.offsets is None else f"sample {i}{self._id_note(i)} has"
                raise file_error(series.file, f"{where} T = {int(series.lengths[i])} frames, expected {need}")
        return self

    def check_values(
        self,
        kind: str = "emotion",
        samples: Iterable[int] | None = None,
        reactions: Sequence[int] | None = None,
        frames: int | None = None,
        limit: float = VALUE_LIMIT,
    ) -> None:
        """Refuse NaN/inf and values beyond ``limit`` (:data:`VALUE_LIMIT`), naming the file, the
        sample, the reaction and where. Sample by sample, so memory stays at one sample; ``reactions``
        and ``frames`` limit the check to what a stage will read."""
        self.require(kind, f"{kind} values were to be checked")
        series = self._series[kind]
        for i in range(len(self)) if samples is None else samples:
            block = series.block(i)
            chosen = list(range(block.shape[0])) if reactions is None else list(reactions)
            block = np.asarray(block[chosen, :frames])
            finite = np.isfinite(block)
            if not finite.all():
                r, t, d = (int(v) for v in np.argwhere(~finite)[0])
                raise file_error(
                    series.file,
                    f"sample {i} reaction {chosen[r]} contains NaN/inf values ({int((~finite).sum())}, first at "
                    f"frame {t}, dim {d}){self._id_note(i)}",
                )
            size = np.abs(block)
            if block.size and float(size.max()) > limit:
                r, t, d = (int(v) for v in np.argwhere(size > limit)[0])
                raise file_error(
                    series.file,
                    f"sample {i} reaction {chosen[r]} has |x| up to {float(size.max()):.3g} (first at frame {t}, "
                    f"dim {d}), outside the sane range |x| <= {limit:g}{self._id_note(i)}",
                )


# -- writing ------------------------------------------------------------------------------------------
def _npy_header(shape: Sequence[int]) -> bytes:
    """The exact header ``np.save`` writes for a C-ordered float32 array of ``shape``."""
    buffer = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(_DTYPE), "fortran_order": False, "shape": tuple(shape)}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def _write_block(fh: io.BufferedWriter, block: np.ndarray) -> None:
    """Append one sample's (K, T, D) float32 block (the one place samples reach the disk)."""
    fh.write(memoryview(np.ascontiguousarray(block, dtype=_DTYPE)).cast("B"))


def _finish_npy(path: Path, shape: Sequence[int]) -> None:
    """Give a streamed data file its real ``.npy`` header (in place when it fits the reserved bytes)."""
    header = _npy_header(shape)
    if len(header) == _HEADER_BYTES:
        with open(path, "r+b") as fh:
            fh.write(header)
        return
    moved = path.with_name(path.name + ".part")
    with open(path, "rb") as src, open(moved, "wb") as dst:
        dst.write(header)
        src.seek(_HEADER_BYTES)
        shutil.copyfileobj(src, dst, 1 << 22)
    os.replace(moved, path)


class PredictionWriter:
    """Write a prediction set sample by sample, all-or-nothing: ``add`` each sample, then ``commit``.

    Everything goes into a temporary folder beside ``target`` (checked for free space up front
    when ``need_bytes`` is given, see :func:`predicted_bytes`) that replaces ``target`` as a whole
    at :meth:`commit`; an error, Ctrl-C or a kill before that leaves an older set in ``target``
    untouched. A ``target`` holding files other than a prediction set's is refused. Memory is one
    sample: each is appended to the data files as it comes, and the layout (dense when every sample
    has the same lengths, else ragged) is chosen at commit. ``record`` is the caller's part of
    ``generation.json`` (edition, split, seed, checkpoint, generation settings, order); the writer
    adds format, layout, N, K, shapes, frames and ids.
    """

    def __init__(
        self,
        target: str | Path,
        samples: int,
        record: Mapping[str, Any] | None = None,
        *,
        kinds: Sequence[str] = KINDS,
        need_bytes: int | None = None,
    ) -> None:
        if samples < 1:
            raise ValueError("K must be >= 1")
        if not set(kinds) & set(KINDS) or not set(kinds) <= set(ALL_KINDS):
            raise ValueError(f"kinds {tuple(kinds)}: emotion and/or face3dmm, optionally {EEG}")
        self.target = Path(target)
        self.K = int(samples)
        self.record = dict(record or {})
        self.kinds = tuple(kinds)
        self.dims = {kind: DIMS.get(kind, 0) for kind in self.kinds}  # EEG: from the first sample's block
        self.ids: list[str] = []
        self._seen: set[str] = set()
        self.frames: dict[str, list[int]] = {kind: [] for kind in self.kinds}
        self._staged = StagedFolder(self.target, replaces=FILES, need_bytes=need_bytes)
        self._files: dict[str, io.BufferedWriter] = {}
        try:
            for kind in self.kinds:
                fh = open(self._staged.path / DENSE_FILES[kind], "wb")  # noqa: SIM115 (closed in commit/abort)
                self._files[kind] = fh
                fh.write(b"\0" * _HEADER_BYTES)
        except OSError as exc:
            self.abort()
            raise write_error(self.target, exc) from None

    def add(
        self, sample: str, emotion: np.ndarray | None = None, face3dmm: np.ndarray | None = None,
        eeg: np.ndarray | None = None,
    ) -> None:
        """Append one sample: ``emotion`` (K, T, 25), ``face3dmm`` (K, T', 58) and ``eeg`` (K, n, D),
        as the writer's kinds say (D the same for every sample).

        A NaN/inf or a value beyond :data:`VALUE_LIMIT` is refused (nothing is written): such output
        means a broken model, and every reader would refuse it anyway.
        """
        if sample in self._seen:
            raise ReactError(path=self.target, problem=f"sample id '{sample}' given twice")
        blocks = {"emotion": emotion, "face3dmm": face3dmm, EEG: eeg}
        for kind in ALL_KINDS:
            block = blocks[kind]
            if (block is None) == (kind in self.kinds):
                raise ValueError(f"{kind}: this writer {'takes' if kind in self.kinds else 'does not take'} it")
            if block is None:
                continue
            dim = self.dims[kind] or (block.shape[-1] if block.ndim == 3 and block.shape[-1] >= 1 else "D")
            if block.ndim != 3 or block.shape[0] != self.K or block.shape[2] != dim:
                raise ValueError(f"{kind} of {sample}: shape {block.shape}, expected ({self.K}, T, {dim})")
            self.dims[kind] = int(dim)
            finite = np.isfinite(block)
            if not finite.all() or float(np.abs(np.where(finite, block, 0)).max(initial=0)) > VALUE_LIMIT:
                self.abort()
                raise ReactError(
                    path=self.target,
                    problem=f"sample {len(self.ids)} ('{sample}'): the generated {kind} holds NaN/inf or values beyond "
                    f"|x| <= {VALUE_LIMIT:g}; nothing was written (is the checkpoint damaged?)",
                )
        try:
            for kind in self.kinds:
                _write_block(self._files[kind], blocks[kind])  # type: ignore[arg-type]
        except OSError as exc:
            self.abort()
            raise write_error(self.target, exc) from None
        for kind in self.kinds:
            self.frames[kind].append(int(blocks[kind].shape[1]))  # type: ignore[union-attr]
        self.ids.append(sample)
        self._seen.add(sample)

    def commit(self) -> PredictionSet:
        """Finish the files, write ``generation.json`` last, swap the folder in; returns the set as opened."""
        n = len(self.ids)
        if n == 0:
            self.abort()
            raise ReactError(path=self.target, problem="no samples were generated; nothing was written")
        dense = all(len(set(frames)) == 1 for frames in self.frames.values())
        layout = DENSE if dense else RAGGED
        shapes: dict[str, Any] = {}
        try:
            for kind, fh in self._files.items():
                fh.close()
                dim = self.dims[kind]
                frames = self.frames[kind]
                shape = (n, self.K, frames[0], dim) if dense else (self.K * sum(frames), dim)
                path = self._staged.path / DENSE_FILES[kind]
                _finish_npy(path, shape)
                if not dense:
                    os.replace(path, self._staged.path / RAGGED_FILES[kind])
                shapes[SHAPE_KEYS[kind]] = list(shape)
            record: dict[str, Any] = {"format": FORMAT, "layout": layout, **self.record, "N": n, "K": self.K, **shapes}
            if not dense:
                record.update({FRAMES_KEYS[kind]: frames for kind, frames in self.frames.items()})
            record["ids"] = self.ids
            save_json(self._staged.path / GENERATION_FILE, record)
        except OSError as exc:
            self.abort()
            raise write_error(self.target, exc) from None
        except ReactError:
            self.abort()
            raise
        self._staged.commit()
        return PredictionSet.open(self.target)

    def abort(self) -> None:
        """Drop everything written so far; ``target`` stays as it was."""
        for fh in self._files.values():
            with contextlib.suppress(OSError):  # a full disk fails the flush too; the folder goes anyway
                fh.close()
        self._staged.abort()

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: object) -> None:
        if not self._staged.done:
            self.abort()  # an exception, or a block left without commit(): nothing is published
