"""The speaker's face in live mode when there is no dataset clip: the webcam's MediaPipe output, or
the training mean.

- :class:`BlendshapeToFaceVerse`: MediaPipe Face Landmarker's 52 blendshape scores + its 4x4 facial
  transformation matrix -> the (58,) raw FaceVerse 3DMM vector of the REACT data (52 ARKit
  expression weights, 3 Euler angles, 3 translations; ``reactcli.vocab``).
- :func:`neutral_face`: the face without a camera, the training mean.

The map is hand-designed and sparse (:func:`raw_faceverse`): each expression dim copies the
MediaPipe score of the same ARKit name, and the pose is converted geometrically
(:mod:`reactcli.live.head_pose`). It is not rescaled per user: both sides are ARKit weights in
[0, 1], and no recording of the user exists to fit a rescaling on. Outputs are clipped to a few
training stds around the training mean so that a failed detection cannot push the model far outside
its training data. docs/live_inputs.md explains every choice. The speaker's emotion is
:mod:`reactcli.live.emotion_source`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np

from reactcli.errors import ReactError
from reactcli.live.head_pose import REFERENCE_DISTANCE_CM, mediapipe_pose_to_faceverse
from reactcli.live.mediapipe import MEDIAPIPE_FOV_DEG, blendshape_index, check_blendshapes
from reactcli.vocab import EXPRESSION, EXPRESSION_DIM, EXPRESSION_NAMES, FACE_DIM, ROTATION, TRANSLATION

if TYPE_CHECKING:
    from reactcli.models.checkpoint import ReactionModel

#: FaceVerse expression dims MediaPipe does not estimate: held at the training mean.
FILLER_DIMS: tuple[int, ...] = (EXPRESSION["tongueOut"],)
#: For each FaceVerse expression dim, the MediaPipe index with the same ARKit name (-1: filler).
MEDIAPIPE_INDEX = np.array([blendshape_index(n) for n in EXPRESSION_NAMES])


@dataclass(frozen=True)
class FaceStats:
    """Per-dim mean and std of the raw 58-D 3DMM over a training set."""

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            value = np.asarray(getattr(self, name), np.float64).reshape(-1)
            if value.shape != (FACE_DIM,) or not np.isfinite(value).all():
                raise ReactError(f"face statistics: {name} must be {FACE_DIM} finite values, got shape {value.shape}")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "std", np.maximum(self.std, 1e-6))

    @classmethod
    def packaged(cls) -> FaceStats:
        """The real REACT 2024 train statistics shipped with reactcli (resources/face_stats_react2024.npz)."""
        with resources.files("reactcli.resources").joinpath("face_stats_react2024.npz").open("rb") as fh:
            stats = np.load(fh)
            return cls(stats["mean"], stats["std"])

    @classmethod
    def from_model(cls, model: ReactionModel) -> FaceStats:
        """The statistics of the data the model was trained on, kept in its tokenizer."""
        tok = model.tokenizer
        return cls(tok.mean_face.detach().cpu().double().numpy(), tok.std_face.detach().cpu().double().numpy())


def neutral_face(stats: FaceStats | None = None) -> np.ndarray:
    """(58,) float32 speaker face without a camera: the training mean (packaged REACT stats by default).

    The mean is what the tokenizer subtracts, so the model sees a zero face input: no expression
    and the average head pose, the least surprising input it knows.
    """
    return (stats or FaceStats.packaged()).mean.astype(np.float32)


def raw_faceverse(
    blendshapes: np.ndarray,
    matrix: np.ndarray,
    reference: FaceStats,
    fov_deg: float = MEDIAPIPE_FOV_DEG,
    reference_distance_cm: float = REFERENCE_DISTANCE_CM,
) -> np.ndarray:
    """The sparse hand-designed map before clipping: (52,) scores + (4, 4) pose -> (58,).

    Expression dim e copies the MediaPipe score of the same ARKit name; fillers take the reference
    mean. The pose goes through :func:`reactcli.live.head_pose.mediapipe_pose_to_faceverse`.
    """
    b = check_blendshapes(blendshapes)
    out = reference.mean.copy()
    named = MEDIAPIPE_INDEX >= 0
    out[:EXPRESSION_DIM][named] = b[MEDIAPIPE_INDEX[named]]
    rot, trans = mediapipe_pose_to_faceverse(
        matrix, reference.mean[ROTATION], reference.mean[TRANSLATION], fov_deg, reference_distance_cm
    )
    out[ROTATION] = rot
    out[TRANSLATION] = trans
    return out


class BlendshapeToFaceVerse:
    """MediaPipe blendshapes + head pose -> (58,) raw FaceVerse coefficients for ``ReactionStream.push``.

    ``target`` is the training distribution (default: the packaged REACT stats; the server uses
    ``FaceStats.from_model(model)``, the statistics of the data the model was trained on): its mean
    fills the dims MediaPipe does not estimate and sets the depth a user at
    ``reference_distance_cm`` maps to, and every output is clipped to ``clip_std`` of its stds
    around that mean, so a bad detection cannot throw the model far outside what it was trained on
    (it also caps blendshapes that are rare in training, such as a full cheek puff).
    """

    def __init__(
        self,
        target: FaceStats | None = None,
        *,
        clip_std: float = 4.0,
        fov_deg: float = MEDIAPIPE_FOV_DEG,
        reference_distance_cm: float = REFERENCE_DISTANCE_CM,
    ) -> None:
        if clip_std <= 0 or fov_deg <= 0 or reference_distance_cm <= 0:
            raise ReactError("clip_std, fov_deg and reference_distance_cm must be > 0")
        self.target = target or FaceStats.packaged()
        self.clip_std = float(clip_std)
        self.fov_deg = float(fov_deg)
        self.reference_distance_cm = float(reference_distance_cm)

    def __call__(self, blendshapes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """One camera frame -> (58,) float32 raw FaceVerse coefficients."""
        t = self.target
        raw = raw_faceverse(blendshapes, matrix, t, self.fov_deg, self.reference_distance_cm)
        out = np.clip(raw, t.mean - self.clip_std * t.std, t.mean + self.clip_std * t.std)
        out[list(FILLER_DIMS)] = t.mean[list(FILLER_DIMS)]
        return out.astype(np.float32)
