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

    emotion_k(t) = head_k(t) + weight * (decoded_k(t) - mean_j decoded_j(t))   (AUs, valence/arousal)

The mean is over the K reactions generated together, frame by frame, so the rule is online
(frame t uses tokens <= t of the K streams) and the differences between reactions are exactly
``weight`` times those of their face paths (FRDiv does not see the common term removed). K = 1
has no spread: its emotion is the head's. The expression probabilities keep the head's value: their
spread added little diversity and cost correlation (docs/quality.md).
"""

from __future__ import annotations

from torch import Tensor

from reactcli.vocab import VALENCE_AROUSAL_DIMS

#: Dims that take the sampled path's spread: the 15 AUs and valence/arousal (emotion[..., :17]).
SAMPLED_DIMS = slice(0, VALENCE_AROUSAL_DIMS.stop)


def sampled_path_emotion(head: Tensor, decoded: Tensor, weight: float) -> Tensor:
    """(K, m, 25) head emotion plus ``weight`` x each reaction's departure from the K reactions' mean
    decoded emotion (``decoded``: (K, m, 25), from the sampled tokens of the same frames)."""
    if head.shape != decoded.shape:
        raise ValueError(f"head emotion {tuple(head.shape)} and decoded emotion {tuple(decoded.shape)} differ")
    out = head.clone()
    spread = decoded[..., SAMPLED_DIMS] - decoded[..., SAMPLED_DIMS].mean(0, keepdim=True)
    out[..., SAMPLED_DIMS] += weight * spread
    return out
