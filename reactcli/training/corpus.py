"""In-memory training corpora and reproducible window sampling.

Both stages train on short windows cut from whole clips. We load every clip of a split once
(from the preprocessing cache, via ``ReactClipDataset``) into stacked arrays, because the
predictor needs *speaker tokens computed exactly as at generation time* — whole clips, tokenizer
windows aligned to frame 0 — and tokenising whole clips once is far cheaper than re-running the
tokenizer in every step. Window starts and batch order are pure functions of (seed, epoch, index),
so a resumed or multi-process run draws exactly the batches the uninterrupted run would have.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from reactcli.config import ReactConfig
from reactcli.data.dataset import ReactClipDataset
from reactcli.errors import ReactError
from reactcli.progress import track


def load_clips(root: Path, split: str, cfg: ReactConfig, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Stack the requested arrays of every mirrored sample of ``split`` into (N, 751, ...) float32."""
    dataset = ReactClipDataset(root, split, cfg)
    if len(dataset) == 0:
        raise ReactError(f"{Path(root) / (split + '.csv')}: the {split} split has no pairs")
    rows: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for i in track(range(len(dataset)), f"loading {split} clips"):
        clip = dataset.clip(i)
        for k in keys:
            rows[k].append(clip[k])
    return {k: np.stack(v).astype(np.float32) for k, v in rows.items()}


class WindowBatches:
    """Batches of aligned windows over N clips: batch ``step`` is fixed by (seed, step, rank).

    A ``DistributedSampler`` shards the (repeated) clip indices across ranks and reshuffles them
    per epoch; the clip list is repeated so that even a tiny split fills one global batch.
    """

    def __init__(
        self, arrays: dict[str, torch.Tensor], window: int, batch_size: int, seed: int, rank: int = 0, world: int = 1
    ) -> None:
        self.arrays = arrays
        self.n_clips, self.frames = next(iter(arrays.values())).shape[:2]
        if window > self.frames:
            raise ReactError(f"training window of {window} frames is longer than the clips ({self.frames})")
        self.window = window
        self.batch_size = batch_size
        self.seed = seed
        repeats = max(1, math.ceil(batch_size * world / self.n_clips))
        self.indices = list(range(self.n_clips)) * repeats
        self.sampler = DistributedSampler(
            self.indices, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.per_epoch = max(1, len(self.sampler) // batch_size)
        self._epoch = -1
        self._order: list[int] = []

    def rng(self, step: int, slot: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, step, slot, self.sampler.rank])

    def batch(self, step: int) -> tuple[dict[str, torch.Tensor], list[np.random.Generator]]:
        """The windows of training step ``step`` and one generator per row for extra randomness."""
        epoch, within = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self.sampler.set_epoch(epoch)
            self._order = [self.indices[i] for i in self.sampler]
            self._epoch = epoch
        clips = self._order[within * self.batch_size : (within + 1) * self.batch_size]
        rngs = [self.rng(step, j) for j in range(len(clips))]
        starts = [int(r.integers(0, self.frames - self.window + 1)) for r in rngs]
        idx = torch.tensor(clips)
        offs = torch.tensor(starts)[:, None] + torch.arange(self.window)[None, :]
        out = {k: v[idx[:, None], offs] for k, v in self.arrays.items()}
        return out, rngs
