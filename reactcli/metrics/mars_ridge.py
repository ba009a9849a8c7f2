"""Ridge and RidgeRes on REACT 2025/2026 (MARS): the linear rows next to the organisers' naive ones.

The same causal regression as REACT 2024's ``Ridge`` (``metrics/ridge.py``: the target's facial
attributes at frame t from the input's at frames ``t - lag``, ``lag = 0, step, ... < lookback``;
closed-form ridge accumulated recording by recording), fitted on the **train** split's samples of
the evaluated direction, whatever their length. What the input offers:

* its facial attributes (T, 25), always;
* its ``audio-features`` (the release's 768-d wav2vec2 features, one row per frame) when every
  train input has them: 768 dims times the lags would make a normal matrix of 15 000 squared, so
  they are reduced to their first :data:`AUDIO_COMPONENTS` principal components (fitted on the
  train inputs' frames, float64). Without them the row uses the attributes alone, and says so.

A training sample uses the minimum length of the input's attributes, the target's attributes and
the input's audio features (the official personalised loader's rule). At prediction time a
prediction has the input's facial-attributes length; audio features a frame or two shorter are
extended with their last row (an earlier frame, so still online).

``RidgeRes`` adds ``s`` times real train residuals (the target minus Ridge's in-sample fit),
drawn per reaction; a residual shorter than the clip is followed by further drawn residuals, each
from its frame 0 (``metrics/ridge.py``: :func:`residual_plan`), which reads nothing of the test
speaker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reactcli.data.mars import MarsSample, Recording, list_recordings
from reactcli.data.mars_loaders import load_attributes, load_audio_features
from reactcli.editions import AUDIO_FEATURE_DIM, MARS_LISTING_MODALITY
from reactcli.errors import ReactError
from reactcli.metrics.ridge import (
    RidgeBaseline,
    add_residuals,
    fit_ridge,
    residual_plan,
    train_residuals,
)

#: Principal components of the 768-d audio features the regression reads.
AUDIO_COMPONENTS = 32
AUDIO_FOLDER = "audio-features"


def _fit_length(array: np.ndarray, frames: int) -> np.ndarray:
    """The first ``frames`` rows; a shorter array is extended with its last row (a past frame)."""
    if array.shape[0] >= frames:
        return array[:frames]
    return np.concatenate([array, np.repeat(array[-1:], frames - array.shape[0], axis=0)])


@dataclass
class MarsRidge:
    """A Ridge fitted on a MARS train split, and what it needs to predict and to give residuals."""

    root: Path
    model: RidgeBaseline
    audio_mean: np.ndarray | None  # (768,) or None: attributes only
    audio_basis: np.ndarray | None  # (768, C)
    train_samples: list[MarsSample]
    train_lengths: list[int]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def uses_audio(self) -> bool:
        return self.audio_basis is not None

    def inputs(self, split: str, recording: Recording, frames: int) -> tuple[np.ndarray, np.ndarray]:
        """(frames, 25) attributes and (frames, C) audio components of an input (C = 0 without audio)."""
        return _inputs(self.root / split, recording, frames, self.audio_mean, self.audio_basis)

    def predict(self, split: str, recording: Recording, frames: int) -> np.ndarray:
        """(frames, 25): the regression's reaction to ``recording`` of ``split``."""
        return self.model.predict(*self.inputs(split, recording, frames))

    def residual(self, i: int) -> np.ndarray:
        """Train sample i's target minus Ridge's in-sample fit, (train_lengths[i], 25)."""
        sample, frames = self.train_samples[i], self.train_lengths[i]
        target = load_attributes(self.root / "train" / MARS_LISTING_MODALITY / f"{sample.target.id}.npy")
        return target[:frames] - self.predict("train", sample.input, frames)

    def record(self) -> dict[str, Any]:
        """What the row used, for the baselines JSON."""
        inputs = "facial attributes" + (
            f" + audio-features (first {self.audio_basis.shape[1]} principal components)" if self.uses_audio else ""
        )
        return {
            **self.settings,
            "inputs": inputs,
            "train_samples": len(self.train_samples),
            "train_frames": int(sum(self.train_lengths)),
        }


def _inputs(
    split_dir: Path, recording: Recording, frames: int, mean: np.ndarray | None, basis: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    attrs = _fit_length(load_attributes(split_dir / MARS_LISTING_MODALITY / f"{recording.id}.npy"), frames)
    if basis is None:
        return attrs, np.zeros((frames, 0), np.float32)
    audio = load_audio_features(split_dir / AUDIO_FOLDER / f"{recording.id}.npy")
    projected = (audio[:frames].astype(np.float64) - mean) @ basis
    return attrs, _fit_length(projected.astype(np.float32), frames)


def _audio_components(
    root: Path, inputs: list[Recording], lengths: list[int], count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean (768,) and the top ``count`` principal directions (768, count) of the train inputs' audio frames."""
    total = np.zeros(AUDIO_FEATURE_DIM)
    outer = np.zeros((AUDIO_FEATURE_DIM, AUDIO_FEATURE_DIM))
    frames = 0
    for rec, length in zip(inputs, lengths, strict=True):
        x = load_audio_features(root / "train" / AUDIO_FOLDER / f"{rec.id}.npy")[:length].astype(np.float64)
        total += x.sum(0)
        outer += x.T @ x
        frames += x.shape[0]
    mean = total / frames
    cov = outer / frames - np.outer(mean, mean)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][: min(count, AUDIO_FEATURE_DIM)]
    return mean, vectors[:, order]


def fit_mars_ridge(
    root: str | Path,
    bidirectional: bool,
    lookback: int,
    step: int,
    alpha: float,
    components: int = AUDIO_COMPONENTS,
) -> MarsRidge:
    """Fit the regression on every train sample of the direction (one line if the train split is unusable)."""
    root = Path(root)
    listing = list_recordings(root, "train")
    samples = listing.samples(bidirectional)
    if not samples:
        raise ReactError(path=listing.folder, problem="Ridge needs train samples (recordings with their dyad partner)")
    audio_dir = root / "train" / AUDIO_FOLDER
    use_audio = audio_dir.is_dir() and all((audio_dir / f"{s.input.id}.npy").is_file() for s in samples)
    attrs_dir = root / "train" / MARS_LISTING_MODALITY
    inputs, targets, lengths = [], [], []
    for sample in samples:
        x = load_attributes(attrs_dir / f"{sample.input.id}.npy")
        y = load_attributes(attrs_dir / f"{sample.target.id}.npy")
        length = min(x.shape[0], y.shape[0])
        if use_audio:
            length = min(length, load_audio_features(audio_dir / f"{sample.input.id}.npy").shape[0])
        inputs.append(x[:length])
        targets.append(y[:length])
        lengths.append(length)
    mean = basis = None
    if use_audio:
        mean, basis = _audio_components(root, [s.input for s in samples], lengths, components)
    audio = [_inputs(root / "train", s.input, n, mean, basis)[1] for s, n in zip(samples, lengths, strict=True)]
    model = fit_ridge(inputs, audio, targets, lookback, step, alpha)
    settings = {"lookback": lookback, "step": step, "alpha": alpha, "bidirectional": bidirectional}
    return MarsRidge(root, model, mean, basis, samples, lengths, settings)


def mars_ridge_predictions(
    ridge: MarsRidge, split: str, samples: list[MarsSample], lengths: list[int], k: int
) -> list[np.ndarray]:
    """Ridge: K identical copies (read-only views) of the regression's reaction, per sample."""
    out = []
    for sample, frames in zip(samples, lengths, strict=True):
        pred = ridge.predict(split, sample.input, frames)
        out.append(np.broadcast_to(pred, (k, *pred.shape)))
    return out


def mars_ridge_res_predictions(
    ridge: MarsRidge,
    split: str,
    samples: list[MarsSample],
    lengths: list[int],
    k: int,
    scale: float,
    seed: int,
) -> list[np.ndarray]:
    """RidgeRes: per sample (K, T, 25), the Ridge reaction plus ``scale`` times drawn train residuals."""
    plan = residual_plan(ridge.train_lengths, lengths, k, seed)
    residuals = train_residuals(plan, ridge.residual)
    return [
        add_residuals(ridge.predict(split, sample.input, frames), plan[n], residuals, scale)
        for n, (sample, frames) in enumerate(zip(samples, lengths, strict=True))
    ]
