"""Each reaction's own sampled face path, carried into its emotion (``generation.sampled_emotion_weight``).

Why the K reactions of the emotion-head model were near copies (docs/quality.md, fifth round): the
emotion comes from a regression head and a fixed linear path, both trained for the conditional
mean, and the head hardly reads the listener history in which the K reactions differ (listener
inputs are dropped half the time in training). Raising the sampling temperature changes the
sampled faces, not the emotion.

The sampled face tokens *are* a per-reaction commitment: each reaction has its own face trajectory
(when it smiles, blinks, opens the jaw, how it moves), and the tokenizer's emotion decoder turns
that trajectory into emotion. That decoded emotion's *mean* over reactions follows the speaker less
well than the head does, but its *spread* is the model's own distribution of reactions. So the
emitted emotion of reaction k is the head's estimate plus ``weight`` times how reaction k's decoded
emotion departs from the mean of the K reactions' decoded emotion at the same frame:

    spread_k(t) = decoded_k(t) - mean_j decoded_j(t)                  (the 15 AUs)
    emotion_k(t) = head_k(t) + weight * smooth(spread_k)(t)

The mean is over the K reactions generated together, frame by frame, so the rule is online
(frame t uses tokens <= t of the K streams) and the differences between reactions are ``weight``
times those of their (smoothed) face paths: FRDiv does not see the common term removed. K = 1 has
no spread: its emotion is the head's. ``smooth`` is a causal exponential moving average
(``generation.sampled_emotion_smoothing``, per reaction, continued across steps through a state
tensor updated in place, so a captured CUDA-graph step holds it like the KV caches): token sampling
is per frame, and half of the raw spread is frame-to-frame flicker that made the curves rougher
than real ones and cost FRD on some datasets. Valence/arousal and the expression probabilities
keep the head's value: their spread helped on one dataset and hurt on another, the AUs' helped on
all three (docs/quality.md, fifth round).
"""

from __future__ import annotations

import torch
from torch import Tensor

from reactcli.vocab import AU_DIMS, EMOTION_DIM

#: Dims that take the sampled path's spread: the 15 AUs.
SAMPLED_DIMS = AU_DIMS
SAMPLED_COUNT = len(range(EMOTION_DIM)[SAMPLED_DIMS])


def check_sampled_path(weight: float, smoothing: float) -> None:
    """The rule's two settings (the config checks them too; this guards direct callers)."""
    if weight < 0 or not 0.0 <= smoothing < 1.0:
        raise ValueError(f"sampled path: weight {weight} must be >= 0 and smoothing {smoothing} in [0, 1)")


def sampled_emotion(
    head: Tensor, decoded: Tensor, samples: int, weight: float, smoothing: float, last: Tensor, pos: Tensor
) -> Tensor:
    """(R, m, 25) emotion for the next m frames of R = B x K rows (clip-major: the K reactions of a
    clip are adjacent): ``head`` plus ``weight`` x the smoothed spread of ``decoded`` (R, m, 25), the
    emotion decoded from the same frames' sampled tokens.

    ``last`` (R, 15) is the smoothed spread of the frame before ``pos[0]`` and is updated in place;
    a frame at position 0 starts the average afresh. No value is read back to the host.
    """
    if head.shape != decoded.shape:
        raise ValueError(f"head emotion {tuple(head.shape)} and decoded emotion {tuple(decoded.shape)} differ")
    rows, frames = decoded.shape[0], decoded.shape[1]
    au = decoded[..., SAMPLED_DIMS].reshape(rows // samples, samples, frames, SAMPLED_COUNT)
    spread = (au - au.mean(1, keepdim=True)).reshape(rows, frames, SAMPLED_COUNT)
    if smoothing > 0 and frames:
        prev, smoothed = last, []
        for i in range(frames):
            x = spread[:, i]
            prev = torch.where(pos[i] == 0, x, smoothing * prev + (1.0 - smoothing) * x)
            smoothed.append(prev)
        last.copy_(prev)
        spread = torch.stack(smoothed, 1)
    out = head.clone()
    out[..., SAMPLED_DIMS] += weight * spread
    return out
