"""The history encoder (``predictor.history_frames``): the listener's own past as one vector.

The history condition of REACT 2026 gives the model a window of the listener's behaviour before
the clip (``data/mars_history.py``: the last H frames of their previous recording, 3DMM,
attributes and a real-frame flag). What persists from one session to the next is the person's
style (resting face, how much and how they react), not the moment-to-moment timing, so the window
is pooled into one vector that is added to every frame of the listener stream, as the traits
are: each frame through Linear(58 + 25 -> d) and GELU, a mean over the real frames, then
Linear(d -> d). A listener without a past (all frames flagged 0) gets the last layer's bias, a
learned "no history" vector.

The 3DMM part enters in the tokenizer's model space (:func:`history_model_space`: its stored
mean/std and normalisation rule), as the raw coefficients mix scales (rotation x near pi,
translation z near 1.84).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from reactcli.data.mars_history import HISTORY_DIM
from reactcli.vocab import FACE_DIM


class HistoryEncoder(nn.Module):
    """(B, H, 84) history -> (B, d): masked mean of per-frame features, then a projection."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.frame = nn.Linear(HISTORY_DIM - 1, d)
        self.out = nn.Linear(d, d)

    def forward(self, history: Tensor) -> Tensor:
        if history.dim() != 3 or history.shape[-1] != HISTORY_DIM:
            raise ValueError(f"history: expected (B, H, {HISTORY_DIM}), got {tuple(history.shape)}")
        real = history[..., -1:]
        features = nn.functional.gelu(self.frame(history[..., :-1])) * real
        pooled = features.sum(1) / real.sum(1).clamp(min=1.0)
        return self.out(pooled)


def history_model_space(history: Tensor, tokenizer: nn.Module) -> Tensor:
    """``history`` with its 3DMM columns normalised as ``tokenizer`` normalises faces (padding
    rows stay zero: their flag keeps them out of the pool anyway)."""
    face = tokenizer.normalize(history[..., :FACE_DIM]) * history[..., -1:]
    return torch.cat((face, history[..., FACE_DIM:]), -1)
