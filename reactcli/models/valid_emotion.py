"""Project generated emotion frames onto the set of emotions that can exist.

REACT's 25-D emotion has hard limits: the 15 AU occurrences lie in [0, 1] (the labels are 0/1),
valence and arousal in [-1, 1], and the 8 expression probabilities form a probability vector
(non-negative, sum 1). A regression head, a linear skip path or the tokenizer's decoder can step
outside those limits. The set of valid frames is convex and holds every real frame, so the
Euclidean projection onto it moves a generated frame *closer* to every real frame at once: each
block's squared distance to any ground-truth frame can only shrink, hence so can every DTW path
cost behind FRD. The projection acts on each frame alone, so it adds no look-ahead.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from reactcli.vocab import AU_DIMS, EMOTION_DIM, EXPRESSIONS_8_DIMS, VALENCE_AROUSAL_DIMS


def project_to_simplex(values: Tensor) -> Tensor:
    """Euclidean projection of each row (last dim) onto the probability simplex.

    The sort-based method: the projection is ``max(v - theta, 0)`` for the one threshold theta that
    makes the result sum to 1, found from the sorted values in O(n log n) per row.
    """
    ordered, _ = torch.sort(values, dim=-1, descending=True)
    cumulative = ordered.cumsum(-1) - 1.0
    ranks = torch.arange(1, values.shape[-1] + 1, device=values.device, dtype=values.dtype)
    support = (ordered - cumulative / ranks) > 0  # true for a prefix of the sorted values
    count = support.sum(-1, keepdim=True).clamp_min(1)
    theta = cumulative.gather(-1, count - 1) / count.to(values.dtype)
    return (values - theta).clamp_min(0.0)


def project_emotion(emotion: Tensor | np.ndarray) -> Tensor:
    """(..., 25) emotion frames -> the nearest valid frames (AUs and VA clipped, expressions on the simplex)."""
    x = torch.as_tensor(emotion)
    if x.shape[-1] != EMOTION_DIM:
        raise ValueError(f"expected (..., {EMOTION_DIM}) emotion, got {tuple(x.shape)}")
    out = x.clone()
    out[..., AU_DIMS] = x[..., AU_DIMS].clamp(0.0, 1.0)
    out[..., VALENCE_AROUSAL_DIMS] = x[..., VALENCE_AROUSAL_DIMS].clamp(-1.0, 1.0)
    out[..., EXPRESSIONS_8_DIMS] = project_to_simplex(x[..., EXPRESSIONS_8_DIMS])
    return out
