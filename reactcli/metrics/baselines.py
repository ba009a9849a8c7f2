"""The naive rows the challenge reports next to every model (docs/metrics.md), K copies each.

* ``GT``: the real listener reaction, repeated (FRD 0, FRDiv 0).
* ``Mime``: the speaker's own emotion, repeated, with no lag. (The published "Mime" row copies the
  speaker with a lag that is not documented; we do not guess it.)
* ``Random``: U[0, 1) in every dim, from ``--seed``.
* ``MeanSeq``: the per-frame mean of every training listener sequence (all train clips, since the
  mirrored order makes each clip a listener once), the same for every sample.
* ``MeanFr``: the per-dim global mean of the training emotion, constant over time.
* ``Ridge``: a causal linear regression fitted on the train split (``metrics/ridge.py``); it needs
  the preprocessing cache (speaker audio features), so it is computed by the command, not here.

Copies are ``np.broadcast_to`` views, so a val-scale baseline costs the memory of one copy; the
FRD search computes identical reactions once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reactcli.data.layout import DatasetLayout, read_pairs
from reactcli.data.loaders import load_emotion
from reactcli.errors import ReactError
from reactcli.vocab import EVAL_FRAMES

BASELINE_NAMES = ("GT", "Mime", "Random", "MeanSeq", "MeanFr", "Ridge")
#: Rows computed from the split's emotion alone (Ridge also needs cached audio features).
EMOTION_BASELINES = BASELINE_NAMES[:5]


def repeat_k(series: np.ndarray, k: int) -> np.ndarray:
    """(N, T, D) -> read-only (N, K, T, D) view with K identical reactions."""
    return np.broadcast_to(series[:, None], (series.shape[0], k, *series.shape[1:]))


def train_emotion(root: Path) -> np.ndarray:
    """(clips, 750, 25) emotion of every train clip; a clear error when the train split has none."""
    layout = DatasetLayout(root)
    pairs = read_pairs(layout.root, "train")
    clips = list(dict.fromkeys([p.speaker for p in pairs] + [p.listener for p in pairs]))
    try:
        return np.stack([load_emotion(layout.emotion("train", clip), EVAL_FRAMES) for clip in clips])
    except ReactError as exc:
        raise ReactError(f"MeanSeq/MeanFr need the train split's Emotion files: {exc}") from None


def baseline_predictions(
    name: str, listener: np.ndarray, speaker: np.ndarray, k: int, seed: int, train: np.ndarray | None
) -> np.ndarray:
    """The (N, K, 750, 25) predictions of one baseline row."""
    n, t, d = listener.shape
    if name == "GT":
        return repeat_k(listener, k)
    if name == "Mime":
        return repeat_k(speaker, k)
    if name == "Random":
        return np.random.default_rng(seed).random((n, k, t, d), dtype=np.float32)
    if train is None:
        raise ReactError(f"baseline {name} needs the train split's emotion")
    if name == "MeanSeq":
        mean = train.astype(np.float64).mean(axis=0).astype(np.float32)
    elif name == "MeanFr":
        mean = np.broadcast_to(train.astype(np.float64).mean(axis=(0, 1)).astype(np.float32), (t, d))
    else:
        raise ReactError(f"unknown baseline '{name}' (expected one of {', '.join(EMOTION_BASELINES)})")
    return np.broadcast_to(mean, (n, k, t, d))
