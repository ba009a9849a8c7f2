"""In-memory training corpora and reproducible window sampling, for REACT 2024 clips and MARS recordings.

Both stages train on short windows cut from whole recordings. We load every sample of a split once
(from the preprocessing cache: ``ReactClipDataset`` for 2024, ``MarsTrainingSet`` for MARS),
because the predictor needs *speaker tokens computed exactly as at generation time* — whole
recordings, tokenizer windows aligned to frame 0 — and tokenising them once is far cheaper than
re-running the tokenizer in every step. The edition comes from the dataset root; the stages run one
code path on both:

- **REACT 2024**: every clip has 751 frames, so a corpus array is stacked, (N, 751, ...);
- **MARS**: recordings have 58 to more than 20 000 frames, so a corpus array is a list of (T_i, ...)
  arrays (the release's audio features memory-mapped, not copied).

**Windows** (:class:`WindowBatches`). Each row of a batch picks a recording, then a window start
uniformly inside it. Recordings are drawn uniformly, each once per epoch (a shuffled, sharded
permutation), not in proportion to their length: MARS lengths span three orders of magnitude, and
length-proportional sampling would spend most steps on a few long conversations, while the
official metrics weigh every sample the same whatever its length (FRC, FRD, FRVar are means over
samples). On 2024's equal-length clips the rule is the one it always was, so its batches are
unchanged bit for bit. A recording shorter than the window is taken whole and padded after its
end; the batch then carries ``padding`` (B, W), True on padded frames, which both models' losses
and the predictor's key-padding mask honour (padding after the real frames never reaches them
through causal attention). Window starts and batch order are pure functions of (seed, step, rank),
so a resumed or multi-process run draws exactly the batches the uninterrupted run would have.

**Whole recordings** (validation, tokenising): :func:`piece_batches` cuts recordings longer than a
chunk into consecutive pieces and groups pieces of equal length, so no batch needs padding and
2024's batches of whole clips stay what they were.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from reactcli.config import ReactConfig
from reactcli.data.dataset import ReactClipDataset
from reactcli.data.mars_dataset import MarsTrainingSet, training_edition
from reactcli.editions import Edition
from reactcli.errors import ReactError
from reactcli.progress import track

PADDING = "padding"  # the batch key of the (B, W) padded-frame mask
HISTORY = "_history"  # suffix of the history windows' keys
HISTORY_PADDING = "history_padding"  # (B, H) True where the history reaches before the recording's start
PERSONALITY = "listener_personality"  # the listener's (5,) traits, per sample
PAST = "listener_history"  # the listener's (H, 84) history before the recording, per sample (data/mars_history.py)
FACE_KEYS = ("listener_3dmm", "listener_emotion")

#: A corpus array: stacked (N, T, ...) for equal lengths (2024), or one array per recording (MARS).
Frames = np.ndarray | torch.Tensor | Sequence[np.ndarray] | Sequence[torch.Tensor]


def load_clips(root: Path, split: str, cfg: ReactConfig, keys: tuple[str, ...]) -> dict[str, Any]:
    """The requested arrays of every training sample of ``split``, as float32.

    REACT 2024: stacked (N, 751, ...) over the mirrored samples. MARS: lists of (T_i, ...) arrays
    (per-recording arrays such as ``listener_personality`` (5,) or ``listener_history`` (H, 84)) in the official sample
    order of the configured direction, each cut to its training length.
    """
    edition = training_edition(root, cfg)
    if not edition.is_mars:
        _refuse_mars_settings(cfg, edition)
        if PERSONALITY in keys:
            raise ReactError(f"predictor.personality: REACT {edition.name} has no personality data (a REACT 2026 "
                             "MARS root with personality/listener.csv has)")
        if PAST in keys:
            raise ReactError(f"predictor.history_frames = {cfg.predictor.history_frames}: the history condition "
                             f"needs a MARS root (REACT {edition.name} clips have no previous recordings)")
        dataset = ReactClipDataset(root, split, cfg)
        if len(dataset) == 0:
            raise ReactError(f"{Path(root) / (split + '.csv')}: the {split} split has no pairs")
        rows: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        for i in track(range(len(dataset)), f"loading {split} clips"):
            clip = dataset.clip(i)
            for k in keys:
                rows[k].append(clip[k])
        return {k: np.stack(v).astype(np.float32) for k, v in rows.items()}
    mars = _mars_set(root, split, cfg, edition, personality=PERSONALITY in keys)
    out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for i in track(range(len(mars)), f"loading {split} recordings"):
        sample = mars.sample(i, keys)
        for k in keys:
            out[k].append(_float32(sample[k]))
    return out


def load_faces(root: Path, split: str, cfg: ReactConfig) -> dict[str, Any]:
    """What the tokenizer trains on: listener faces (3DMM and emotion) of every 2024 mirrored sample
    (so every clip in both roles), or every paired MARS recording once (speakers too: the predictor
    tokenises their faces)."""
    edition = training_edition(root, cfg)
    if not edition.is_mars:
        return load_clips(root, split, cfg, FACE_KEYS)
    mars = _mars_set(root, split, cfg, edition)
    out: dict[str, list[np.ndarray]] = {k: [] for k in FACE_KEYS}
    for recording in track(mars.face_recordings(), f"loading {split} faces"):
        face, emotion = mars.face(recording)
        out["listener_3dmm"].append(_float32(face))
        out["listener_emotion"].append(_float32(emotion))
    return out


def _mars_set(root: Path, split: str, cfg: ReactConfig, edition: Edition, personality: bool = False) -> MarsTrainingSet:
    mars = MarsTrainingSet(root, split, cfg, edition, personality)
    if len(mars) == 0:
        wanted = " and listener traits (personality/listener.csv)" if personality else ""
        raise ReactError(f"{Path(root) / split}: the MARS {split} split has no samples (input and target both "
                         f"valid{wanted})")
    return mars


def _refuse_mars_settings(cfg: ReactConfig, edition: Edition) -> None:
    """The MARS data settings have no meaning on a 2024 root: refused rather than ignored."""
    if cfg.data.bidirectional is not None:
        raise ReactError(f"data.bidirectional = {cfg.data.bidirectional}: REACT {edition.name} always trains on its "
                         "mirrored pairs (the setting is for MARS roots)")


def _float32(array: np.ndarray) -> np.ndarray:
    """float32 without copying what already is (a memory-mapped file stays mapped)."""
    return array if array.dtype == np.float32 else array.astype(np.float32)


def lengths_of(frames: Frames) -> list[int]:
    """Frames of every recording of a corpus array."""
    if isinstance(frames, (np.ndarray, torch.Tensor)):
        return [int(frames.shape[1])] * int(frames.shape[0])
    return [len(item) for item in frames]


def piece_batches(lengths: Sequence[int], chunk: int, batch: int) -> list[list[tuple[int, int, int]]]:
    """Batches of (recording, start, end) pieces covering every recording once.

    A recording longer than ``chunk`` frames becomes consecutive pieces of ``chunk`` frames (the
    last one shorter); pieces are grouped, in a stable order by length, into batches of at most
    ``batch`` pieces of one length, so no batch is padded. Equal-length recordings shorter than
    ``chunk`` (REACT 2024) give batches of consecutive whole recordings.
    """
    pieces = [(i, lo, min(lo + chunk, n)) for i, n in enumerate(lengths) for lo in range(0, n, chunk)]
    pieces.sort(key=lambda p: p[2] - p[1])
    out: list[list[tuple[int, int, int]]] = []
    for piece in pieces:
        size = piece[2] - piece[1]
        if out and len(out[-1]) < batch and out[-1][0][2] - out[-1][0][1] == size:
            out[-1].append(piece)
        else:
            out.append([piece])
    return out


def gather(frames: Frames, batch: Sequence[tuple[int, int, int]]) -> torch.Tensor:
    """The pieces of one :func:`piece_batches` batch, stacked (B, T, ...)."""
    return torch.stack([torch.as_tensor(np.asarray(frames[i][lo:hi])) if not isinstance(frames[i], torch.Tensor)
                        else frames[i][lo:hi] for i, lo, hi in batch])


@dataclass
class Rows:
    """Where the rows of one batch come from, decided on the host: recording, window start, real
    frames (the rest of the row is padding) and one generator per row for extra randomness."""

    clips: list[int]
    starts: list[int]
    real: list[int]
    rngs: list[np.random.Generator]


class WindowBatches:
    """Batches of aligned windows over N recordings: batch ``step`` is fixed by (seed, step, rank).

    ``arrays`` are per-frame corpus arrays (stacked or one per recording, see the module docstring),
    ``static`` per-recording ones (e.g. the listener's personality (5,)), gathered per row.
    With ``history`` > 0 every key of ``history_keys`` also gets ``<key>_history``: the ``history``
    frames before the window's start (zeros before the recording's start, marked in
    ``history_padding``), the listener's own past as a condition.

    A ``DistributedSampler`` shards the (repeated) recording indices across ranks and reshuffles them
    per epoch; the list is repeated so that even a tiny split fills one global batch.

    ``device``: keep the corpus there (copied once, :class:`DeviceCorpus`) and cut every batch there
    with one index gather per array, so a step copies a few small index arrays instead of the
    windows (what a CUDA run does). Without it batches are cut on the host, as they always were.
    Either way the windows are the same values (tests/test_batching.py).
    """

    def __init__(
        self,
        arrays: Mapping[str, Frames],
        window: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
        static: Mapping[str, Frames] | None = None,
        history: int = 0,
        history_keys: Sequence[str] = (),
        device: torch.device | str | None = None,
    ) -> None:
        self.arrays = arrays
        self.static = dict(static or {})
        self.lengths = lengths_of(next(iter(arrays.values())))
        self.n_clips = len(self.lengths)
        longest = max(self.lengths)
        if window > longest:
            raise ReactError(f"training window of {window} frames is longer than the clips ({longest} frames at most)")
        self.padded = min(self.lengths) < window  # then every batch carries the padding mask
        self.window = window
        self.batch_size = batch_size
        self.seed = seed
        self.history = history
        self.history_keys = tuple(history_keys) if history > 0 else ()
        repeats = max(1, math.ceil(batch_size * world / self.n_clips))
        self.indices = list(range(self.n_clips)) * repeats
        self.sampler = DistributedSampler(
            self.indices, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.per_epoch = max(1, len(self.sampler) // batch_size)
        self._epoch = -1
        self._order: list[int] = []
        self.store = None if device is None else DeviceCorpus(arrays, self.static, torch.device(device))

    def rng(self, step: int, slot: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, step, slot, self.sampler.rank])

    def rows(self, step: int) -> Rows:
        """The recordings, starts and per-row generators of training step ``step`` (host only)."""
        epoch, within = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self.sampler.set_epoch(epoch)
            self._order = [self.indices[i] for i in self.sampler]
            self._epoch = epoch
        clips = self._order[within * self.batch_size : (within + 1) * self.batch_size]
        rngs = [self.rng(step, j) for j in range(len(clips))]
        room = [max(0, self.lengths[c] - self.window) for c in clips]  # 0: the whole (short) recording
        starts = [int(r.integers(0, n + 1)) for r, n in zip(rngs, room, strict=True)]
        real = [min(self.lengths[c], self.window) for c in clips]
        return Rows(clips, starts, real, rngs)

    def batch(self, step: int) -> tuple[dict[str, torch.Tensor], list[np.random.Generator]]:
        """The windows of training step ``step`` and one generator per row for extra randomness."""
        rows = self.rows(step)
        return self.gather(rows), rows.rngs

    def gather(self, rows: Rows) -> dict[str, torch.Tensor]:
        """The windows of ``rows``: on the corpus's device with a :class:`DeviceCorpus`, else on the host."""
        if self.store is not None:
            return self._gather_on_device(rows)
        clips, starts = rows.clips, rows.starts
        out = {k: _windows(v, clips, starts, self.window) for k, v in self.arrays.items()}
        if self.padded:
            real = torch.tensor(rows.real)
            out[PADDING] = torch.arange(self.window)[None, :] >= real[:, None]
        for key, values in self.static.items():
            out[key] = torch.stack([_tensor(values[c]) for c in clips])
        if self.history_keys:
            starts_before = [s - self.history for s in starts]
            for key in self.history_keys:
                out[key + HISTORY] = _windows(self.arrays[key], clips, starts_before, self.history)
            out[HISTORY_PADDING] = (torch.tensor(starts_before)[:, None] + torch.arange(self.history)[None, :]) < 0
        return out

    def _gather_on_device(self, rows: Rows) -> dict[str, torch.Tensor]:
        store = self.store
        assert store is not None
        clips = np.asarray(rows.clips, dtype=np.int64)
        starts = np.asarray(rows.starts, dtype=np.int64)
        index = store.to_device(store.frame_index(clips, starts, self.window))
        out = {k: store.take(k, index) for k in self.arrays}
        if self.padded:
            real = np.asarray(rows.real, dtype=np.int64)
            out[PADDING] = store.to_device(np.arange(self.window)[None, :] >= real[:, None])
        if self.static:
            rows_index = store.to_device(clips)
            for key in self.static:
                out[key] = store.static[key].index_select(0, rows_index)
        if self.history_keys:
            before = starts - self.history
            index = store.to_device(store.frame_index(clips, before, self.history))
            for key in self.history_keys:
                out[key + HISTORY] = store.take(key, index)
            out[HISTORY_PADDING] = store.to_device((before[:, None] + np.arange(self.history)[None, :]) < 0)
        return out


class DeviceCorpus:
    """Corpus arrays copied once to a device, each as one flat (sum of frames + 1, ...) tensor whose
    last row is zeros; a window is one index gather (frames before a recording's start or past its
    end read the zero row, as :func:`_windows` pads them).

    The index arrays are built on the host (numpy, from the host-side rows) and copied through
    pinned memory without waiting (``non_blocking``), so cutting a batch never makes the host wait
    for the device."""

    def __init__(self, arrays: Mapping[str, Frames], static: Mapping[str, Frames], device: torch.device) -> None:
        self.device = device
        lengths = np.asarray(lengths_of(next(iter(arrays.values()))), dtype=np.int64)
        self.lengths = lengths
        self.offsets = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
        self.zero_row = int(lengths.sum())
        self.flat = {k: _flat_on(v, device) for k, v in arrays.items()}
        self.static = {k: (v if isinstance(v, torch.Tensor) else torch.stack([_tensor(x) for x in v])).to(device)
                       for k, v in static.items()}

    def frame_index(self, clips: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
        """(B, window) rows of the flat arrays: frame ``start + t`` of each row's recording, the zero
        row where that frame is outside the recording."""
        frame = starts[:, None] + np.arange(window)[None, :]
        inside = (frame >= 0) & (frame < self.lengths[clips][:, None])
        return np.where(inside, self.offsets[clips][:, None] + frame, self.zero_row)

    def take(self, key: str, index: torch.Tensor) -> torch.Tensor:
        flat = self.flat[key]
        return flat.index_select(0, index.flatten()).view(*index.shape, *flat.shape[1:])

    def to_device(self, array: np.ndarray) -> torch.Tensor:
        return host_to_device(torch.from_numpy(np.ascontiguousarray(array)), self.device)


def host_to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` on ``device``; to CUDA through pinned memory without waiting for the device
    (a pageable copy would synchronise the stream)."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def corpus_bytes(arrays: Mapping[str, Frames]) -> int:
    """Bytes of the corpus arrays (what a :class:`DeviceCorpus` copies to the device)."""
    total = 0
    for value in arrays.values():
        items = [value] if isinstance(value, (np.ndarray, torch.Tensor)) else value
        for item in items:
            total += int(np.prod(item.shape)) * (item.element_size() if isinstance(item, torch.Tensor)
                                                 else np.dtype(item.dtype).itemsize)
    return total


def corpus_device(arrays: Mapping[str, Frames], device: torch.device, share: float = 0.5) -> torch.device | None:
    """Where a stage keeps its training corpus: on a CUDA device when it takes at most ``share`` of
    the free device memory, else None (batches cut on the host and copied per step). On the CPU
    the host path is the one that always ran (its batches are the same values, and no copy)."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return device if corpus_bytes(arrays) <= share * free else None


def batch_to(batch: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """A host-cut batch on ``device`` (no copy where it already is)."""
    return {k: v if v.device == device else host_to_device(v, device) for k, v in batch.items()}


def _flat_on(frames: Frames, device: torch.device) -> torch.Tensor:
    """One recording after the other, then a zero row, as one tensor on ``device``."""
    if isinstance(frames, (np.ndarray, torch.Tensor)):
        parts = [_tensor(frames).flatten(0, 1)]
    else:
        parts = [_tensor(item) for item in frames]
    zero = parts[0].new_zeros((1, *parts[0].shape[1:]))
    return torch.cat([*(p.to(device) for p in parts), zero.to(device)])


def _tensor(array: np.ndarray | torch.Tensor) -> torch.Tensor:
    return array if isinstance(array, torch.Tensor) else torch.as_tensor(np.asarray(array))


def _windows(frames: Frames, clips: Sequence[int], starts: Sequence[int], window: int) -> torch.Tensor:
    """Rows ``frames[c][s : s + window]`` stacked, zeros where a row reaches before frame 0 or past
    the recording's end (history windows and short recordings)."""
    if isinstance(frames, torch.Tensor) and all(s >= 0 for s in starts) \
            and all(s + window <= frames.shape[1] for s in starts):
        idx = torch.tensor(list(clips))
        offs = torch.tensor(list(starts))[:, None] + torch.arange(window)[None, :]
        return frames[idx[:, None], offs]  # the 2024 gather, kept as it was
    rows = []
    for c, start in zip(clips, starts, strict=True):
        item = frames[c]
        lo, hi = min(max(start, 0), len(item)), min(max(start + window, 0), len(item))
        piece = _tensor(item[lo:hi])
        before = min(window, lo - start)
        after = window - before - (hi - lo)
        if before or after:
            shape = tuple(piece.shape[1:])
            piece = torch.cat([piece.new_zeros((before, *shape)), piece, piece.new_zeros((after, *shape))])
        rows.append(piece)
    return torch.stack(rows)
