"""The speaker's 25-D emotion in live mode: the training mean, optionally with AUs read off blendshapes.

A model trained with ``predictor.speaker_emotion`` reads the speaker's emotion (15 AU occurrences,
valence, arousal, 8 expression probabilities) next to the audio. In live mode there is no emotion
annotator, so the input is held at the training mean that the predictor stored when it was trained
(``predictor.emotion_mean``): after the model's own standardisation that is an all-zero input, the
"nothing known" value. Valence, arousal and the expression probabilities have no honest estimate
from blendshapes and stay there. Thirteen of the 15 AUs have an ARKit blendshape that describes the
same facial action (ARKit's blendshapes are defined after FACS), so with a camera they can be set to
an occurrence, 1 when the blendshape score reaches ``threshold``: a rough estimate, used only when
the camera is on (the REACT AU labels come from a different detector with its own operating point). AU23 (lip tightener)
and AU25 (lips part) have no one-to-one blendshape and stay at the mean. docs/live_inputs.md lists
the table.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from reactcli.errors import ReactError
from reactcli.live.mediapipe import MEDIAPIPE_BLENDSHAPES, check_blendshapes
from reactcli.vocab import ACTION_UNITS, EMOTION_DIM

if TYPE_CHECKING:
    from reactcli.models.checkpoint import ReactionModel

#: FACS action unit -> the ARKit blendshapes (left/right pairs) that describe the same action.
AU_BLENDSHAPES: dict[str, tuple[str, ...]] = {
    "AU1": ("browInnerUp",),  # inner brow raiser
    "AU2": ("browOuterUpLeft", "browOuterUpRight"),  # outer brow raiser
    "AU4": ("browDownLeft", "browDownRight"),  # brow lowerer
    "AU6": ("cheekSquintLeft", "cheekSquintRight"),  # cheek raiser
    "AU7": ("eyeSquintLeft", "eyeSquintRight"),  # lid tightener
    "AU9": ("noseSneerLeft", "noseSneerRight"),  # nose wrinkler
    "AU10": ("mouthUpperUpLeft", "mouthUpperUpRight"),  # upper lip raiser
    "AU12": ("mouthSmileLeft", "mouthSmileRight"),  # lip corner puller
    "AU14": ("mouthDimpleLeft", "mouthDimpleRight"),  # dimpler
    "AU15": ("mouthFrownLeft", "mouthFrownRight"),  # lip corner depressor
    "AU17": ("mouthShrugLower",),  # chin raiser
    "AU24": ("mouthPressLeft", "mouthPressRight"),  # lip pressor
    "AU26": ("jawOpen",),  # jaw drop
}


@cache
def _au_columns() -> tuple[tuple[int, tuple[int, ...]], ...]:
    """(emotion column of the AU, MediaPipe indices of its blendshapes), looked up once, not per frame."""
    return tuple(
        (ACTION_UNITS.index(au), tuple(MEDIAPIPE_BLENDSHAPES.index(name) for name in names))
        for au, names in AU_BLENDSHAPES.items()
    )


def speaker_emotion_fallback(model: ReactionModel) -> np.ndarray | None:
    """(25,) float32 training-mean speaker emotion stored in the model, or None if it takes none."""
    pred = model.predictor
    if not pred.cfg.speaker_emotion:
        return None
    return pred.emotion_mean.detach().cpu().numpy().astype(np.float32)


def speaker_emotion_from_blendshapes(
    blendshapes: np.ndarray, fallback: np.ndarray, threshold: float = 0.5
) -> np.ndarray:
    """(52,) MediaPipe scores -> (25,) emotion: the fallback with the mapped AUs set to 0 or 1."""
    b = check_blendshapes(blendshapes)
    out = np.asarray(fallback, np.float32).copy()
    if out.shape != (EMOTION_DIM,):
        raise ReactError(f"speaker emotion fallback must have {EMOTION_DIM} values, got shape {out.shape}")
    for column, indices in _au_columns():
        out[column] = 1.0 if b[list(indices)].max() >= threshold else 0.0
    return out
