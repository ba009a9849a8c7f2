"""The ``Ridge`` baseline: a causal linear regression from the speaker to the listener's emotion.

"Does the deep model beat a linear regression?" is the first question a reviewer asks, so
``react baselines`` reports one. The listener's emotion at frame t is regressed on the speaker's
emotion and audio features at frames ``t - lag`` for ``lag = 0, step, 2*step, ... < lookback``:
only frames <= t, so the baseline is online like the model. Inputs are standardised with train
statistics; a frame before 0 reads 0 (the train mean). The fit is closed-form ridge on the
normal equations, accumulated clip by clip in float64 (the real train split, 3,188 samples x 750
frames, never has to be held as one design matrix).

``RidgeRes`` makes it stochastic the plainest way: each of the K reactions is the Ridge prediction
plus ``s`` times a *real* residual (a train listener minus Ridge's in-sample fit of it) of a train
clip drawn for that reaction. Ridge's K copies are identical (FRDiv 0); RidgeRes has the diversity
of real listening behaviour at the cost of some accuracy, so it is the stochastic row a generative
model has to beat at equal diversity (issue 25). It stays online: a residual is a whole train series
taken from its frame 0, which depends on nothing of the test speaker, and the Ridge part is causal.
When a residual is shorter than the clip (MARS lengths vary), further drawn residuals follow it, each
from its frame 0, until the clip is covered (:func:`residual_plan`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reactcli.config import ReactConfig
from reactcli.errors import ReactError
from reactcli.linear import lagged, solve_lagged
from reactcli.runtime import derive_seed
from reactcli.vocab import EMOTION_DIM, EVAL_FRAMES

DEFAULT_LOOKBACK = 40  # frames: 1.6 s, longer than the typical reaction delay
DEFAULT_STEP = 2
DEFAULT_ALPHA = 0.01
DEFAULT_RESIDUAL_SCALE = 0.5  # RidgeRes: s; 0.25-0.5 keeps most of Ridge's accuracy (issue 25's table)
#: A residual piece: (train sample index, frames taken from its frame 0).
Piece = tuple[int, int]


@dataclass
class RidgeBaseline:
    """Weights of the fitted regression and the standardisation it was fitted with."""

    lags: np.ndarray  # (L,) frame offsets, 0 first
    mean: np.ndarray  # (F,) per-frame input mean (speaker emotion, then audio features)
    std: np.ndarray  # (F,)
    weights: np.ndarray  # (L * F, 25)
    bias: np.ndarray  # (25,)

    def predict(self, speaker_emotion: np.ndarray, audio: np.ndarray) -> np.ndarray:
        """(T, 25) listener emotion from the speaker's (T, 25) emotion and (>= T, A) audio features."""
        x = lagged(standardise(speaker_emotion, audio, self.mean, self.std), self.lags)
        return (x @ self.weights + self.bias).astype(np.float32)


def standardise(emotion: np.ndarray, audio: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    frames = len(emotion)
    if len(audio) < frames:
        raise ReactError(f"Ridge: {len(audio)} audio frames for {frames} emotion frames")
    return (np.concatenate([emotion, audio[:frames]], axis=1) - mean) / std


def fit_ridge(
    speaker_emotion: list[np.ndarray],
    speaker_audio: list[np.ndarray],
    listener_emotion: list[np.ndarray],
    lookback: int = DEFAULT_LOOKBACK,
    step: int = DEFAULT_STEP,
    alpha: float = DEFAULT_ALPHA,
) -> RidgeBaseline:
    """Fit on train clips: lists of (T, 25) speaker emotion, (>= T, A) audio, (T, 25) listener emotion.

    ``alpha`` is the ridge strength per training frame (the penalty is ``alpha * frames * |w|^2``
    on standardised inputs), so one default suits the demo's 36,000 frames and the real 2.4 M.
    """
    if lookback < 1 or step < 1:
        raise ReactError(f"Ridge: look-back ({lookback}) and step ({step}) must be >= 1 frame")
    if alpha <= 0:
        raise ReactError(f"Ridge: the ridge strength must be > 0, got {alpha}")
    if not speaker_emotion:
        raise ReactError("Ridge: no training clips")
    lags = np.arange(0, lookback, step)
    no_scaling = (0.0, 1.0)
    per_frame = [standardise(e, a, *no_scaling) for e, a in zip(speaker_emotion, speaker_audio, strict=True)]
    stacked = np.concatenate(per_frame).astype(np.float64)
    mean, std = stacked.mean(0), np.maximum(stacked.std(0), 1e-6)
    inputs = [standardise(e, a, mean, std) for e, a in zip(speaker_emotion, speaker_audio, strict=True)]
    weights, bias = solve_lagged(inputs, listener_emotion, lags, alpha)
    return RidgeBaseline(lags, mean, std, weights, bias)


def ridge_from_cache(root: Path, cfg: ReactConfig, lookback: int, step: int, alpha: float) -> RidgeBaseline:
    """Fit on the train split of a preprocessed dataset (cached audio features of ``cfg.audio``)."""
    from reactcli.data.dataset import ReactClipDataset

    train = ReactClipDataset(root, "train", cfg)
    if len(train) == 0:
        raise ReactError(f"{Path(root) / 'train.csv'}: Ridge needs train pairs")
    clips = [train.clip(i) for i in range(len(train))]
    return fit_ridge(
        [c["speaker_emotion"][:EVAL_FRAMES] for c in clips],
        [c["speaker_audio"] for c in clips],
        [c["listener_emotion"][:EVAL_FRAMES] for c in clips],
        lookback, step, alpha,
    )


def ridge_predictions(model: RidgeBaseline, root: Path, split: str, cfg: ReactConfig, k: int) -> np.ndarray:
    """(N, K, 750, 25) Ridge reactions for every mirrored sample of ``split``: K identical copies."""
    from reactcli.data.dataset import ReactClipDataset
    from reactcli.metrics.baselines import repeat_k

    data = ReactClipDataset(root, split, cfg)
    preds = []
    for i in range(len(data)):
        clip = data.clip(i)
        preds.append(model.predict(clip["speaker_emotion"][:EVAL_FRAMES], clip["speaker_audio"]))
    out = np.stack(preds)
    if out.shape[-1] != EMOTION_DIM:
        raise ReactError(f"Ridge: predicted {out.shape[-1]} emotion dims, expected {EMOTION_DIM}")
    return repeat_k(out, k)


def ridge_res_predictions(
    model: RidgeBaseline, root: Path, split: str, cfg: ReactConfig, k: int, scale: float, seed: int
) -> np.ndarray:
    """(N, K, 750, 25) RidgeRes reactions for every mirrored sample of ``split`` (module docstring)."""
    from reactcli.data.dataset import ReactClipDataset

    data = ReactClipDataset(root, split, cfg)
    train = ReactClipDataset(root, "train", cfg)
    if len(train) == 0:
        raise ReactError(f"{Path(root) / 'train.csv'}: RidgeRes needs train pairs")
    plan = residual_plan([EVAL_FRAMES] * len(train), [EVAL_FRAMES] * len(data), k, seed)

    def residual(i: int) -> np.ndarray:
        clip = train.clip(i)
        fit = model.predict(clip["speaker_emotion"][:EVAL_FRAMES], clip["speaker_audio"])
        return clip["listener_emotion"][:EVAL_FRAMES] - fit

    residuals = train_residuals(plan, residual)
    out = np.empty((len(data), k, EVAL_FRAMES, EMOTION_DIM), np.float32)
    for n in range(len(data)):
        clip = data.clip(n)
        base = model.predict(clip["speaker_emotion"][:EVAL_FRAMES], clip["speaker_audio"])
        out[n] = add_residuals(base, plan[n], residuals, scale)
    return out


# -- RidgeRes: the shared machinery (REACT 2024 above, MARS in metrics/mars_ridge.py) ----------------
def residual_plan(
    train_lengths: Sequence[int], lengths: Sequence[int], k: int, seed: int
) -> list[list[list[Piece]]]:
    """For every sample n and reaction: the train residuals that cover its ``lengths[n]`` frames.

    Each reaction draws a train sample uniformly (with replacement) and takes its residual from
    frame 0; when that is shorter than the clip, further draws follow until the clip is covered
    (REACT 2024's equal lengths need one draw; MARS's 58 to 20 000+ frames may need several). The
    draws of sample n come from their own generator, ``derive_seed(seed, "RidgeRes", n)``, so a
    sample's reactions do not change when other samples are added or removed.
    """
    if not train_lengths or min(train_lengths) < 1:
        raise ReactError("RidgeRes: no train residuals to draw from")
    if k < 1:
        raise ReactError(f"RidgeRes: K must be at least 1, got {k}")
    plans = []
    for n, length in enumerate(lengths):
        rng = np.random.default_rng(derive_seed(seed, "RidgeRes", n))
        reactions = []
        for _ in range(k):
            pieces: list[Piece] = []
            left = int(length)
            while left > 0:
                i = int(rng.integers(len(train_lengths)))
                take = min(int(train_lengths[i]), left)
                pieces.append((i, take))
                left -= take
            reactions.append(pieces)
        plans.append(reactions)
    return plans


def train_residuals(plan: list[list[list[Piece]]], residual: Callable[[int], np.ndarray]) -> dict[int, np.ndarray]:
    """The residuals the plan uses, computed once each and cut to the most frames any piece takes."""
    longest: dict[int, int] = {}
    for reactions in plan:
        for pieces in reactions:
            for i, take in pieces:
                longest[i] = max(longest.get(i, 0), take)
    out = {}
    for i in sorted(longest):
        series = np.asarray(residual(i), dtype=np.float32)
        if series.shape[0] < longest[i]:
            raise ReactError(f"RidgeRes: train residual {i} has {series.shape[0]} frames, the plan needs {longest[i]}")
        out[i] = series[: longest[i]]
    return out


def add_residuals(
    base: np.ndarray, reactions: list[list[Piece]], residuals: Mapping[int, np.ndarray], scale: float
) -> np.ndarray:
    """(K, T, D): the (T, D) ``base`` plus ``scale`` times each reaction's residual pieces laid end to end."""
    base = np.asarray(base, dtype=np.float32)
    out = np.empty((len(reactions), *base.shape), np.float32)
    for r, pieces in enumerate(reactions):
        noise = np.concatenate([residuals[i][:take] for i, take in pieces], axis=0)
        if noise.shape[0] != base.shape[0]:
            raise ReactError(f"RidgeRes: residual pieces cover {noise.shape[0]} frames, the clip has {base.shape[0]}")
        out[r] = base + np.float32(scale) * noise
    return out
