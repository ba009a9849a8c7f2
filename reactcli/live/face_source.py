"""Speaker face and emotion inputs for live mode, when there is no dataset clip to replay.

- :class:`BlendshapeToFaceVerse`: the browser's MediaPipe Face Landmarker output (52 blendshape
  scores + the 4x4 facial transformation matrix) -> the (58,) raw FaceVerse 3DMM vector of the
  REACT data (52 ARKit expression weights, 3 Euler angles, 3 translations; ``reactcli.vocab``).
- :func:`neutral_face`: the fallback face without a camera, the training mean.
- :func:`speaker_emotion_fallback` / :func:`speaker_emotion_from_blendshapes`: the 25-D speaker
  emotion a model with ``predictor.speaker_emotion`` needs, held at the training mean (optionally
  with rough AU occurrences read off the blendshapes).

The mapping is a hand-designed sparse map (each FaceVerse dim reads one MediaPipe output or the
head pose, :func:`raw_faceverse`) followed by a per-dim affine calibration that gives the output the
training set's mean and std: ``out = mean_t + std_t * (raw - mean_s) / std_s``. The source moments
``mean_s, std_s`` come from a recording of the user (:meth:`BlendshapeToFaceVerse.fit`), from
running statistics (``adapt_frames``), or default to the target moments (the identity on the raw
map: both sides are ARKit weights in [0, 1], and the pose is converted geometrically).
docs/live_inputs.md explains every choice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from reactcli.errors import ReactError, file_error
from reactcli.live.emotion_source import (  # noqa: F401  (re-exported: the speaker inputs in one place)
    AU_BLENDSHAPES,
    speaker_emotion_fallback,
    speaker_emotion_from_blendshapes,
)
from reactcli.live.head_pose import MEDIAPIPE_FOV_DEG, REFERENCE_DISTANCE_CM, mediapipe_pose_to_faceverse
from reactcli.vocab import EXPRESSION, EXPRESSION_DIM, EXPRESSION_NAMES, FACE_DIM, ROTATION, TRANSLATION

if TYPE_CHECKING:
    from reactcli.models.checkpoint import ReactionModel

#: MediaPipe Face Landmarker's 52 blendshape categories, in its output order (index 0 is ``_neutral``,
#: which has no FaceVerse counterpart; MediaPipe has no ``tongueOut``).
MEDIAPIPE_BLENDSHAPES: tuple[str, ...] = ("_neutral", *EXPRESSION_NAMES[:-1])
BLENDSHAPE_DIM = len(MEDIAPIPE_BLENDSHAPES)  # 52
#: FaceVerse expression dims MediaPipe does not estimate: held at the training mean.
FILLER_DIMS: tuple[int, ...] = (EXPRESSION["tongueOut"],)
#: For each FaceVerse expression dim, the MediaPipe index with the same ARKit name (-1: filler).
MEDIAPIPE_INDEX = np.array(
    [MEDIAPIPE_BLENDSHAPES.index(n) if n in MEDIAPIPE_BLENDSHAPES else -1 for n in EXPRESSION_NAMES]
)
CALIBRATION_FORMAT = "reactcli.blendshape_calibration/1"


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


def check_blendshapes(blendshapes: np.ndarray) -> np.ndarray:
    """Validate MediaPipe's 52 blendshape scores (one-line ReactErrors); returns float64."""
    b = np.asarray(blendshapes, dtype=np.float64)
    if b.shape != (BLENDSHAPE_DIM,):
        raise ReactError(f"blendshapes must be {BLENDSHAPE_DIM} scores in MediaPipe order, got shape {b.shape}")
    if not np.isfinite(b).all():
        raise ReactError("blendshapes contain NaN or inf")
    return b


def raw_faceverse(
    blendshapes: np.ndarray,
    matrix: np.ndarray,
    reference: FaceStats,
    fov_deg: float = MEDIAPIPE_FOV_DEG,
    reference_distance_cm: float = REFERENCE_DISTANCE_CM,
) -> np.ndarray:
    """The sparse hand-designed map before calibration: (52,) scores + (4, 4) pose -> (58,).

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
    """MediaPipe blendshapes + head pose -> (58,) raw FaceVerse coefficients, calibrated to training stats.

    ``target`` is the training distribution to match (default: the packaged REACT stats; use
    ``FaceStats.from_model(model)`` for a model trained elsewhere). ``source`` holds the moments of
    the raw map on this user (default: equal to ``target``, i.e. no rescaling). With
    ``adapt_frames > 0`` each call also updates running source moments, weighted as if the prior
    had been seen for that many frames, so that a user's offsets (a webcam above the screen, a
    permanently raised brow) are calibrated away while they talk. Outputs are clipped to
    ``clip_std`` training stds around the training mean so a bad detection cannot throw the model
    far outside what it was trained on.
    """

    def __init__(
        self,
        target: FaceStats | None = None,
        source: FaceStats | None = None,
        *,
        adapt_frames: int = 0,
        clip_std: float = 4.0,
        fov_deg: float = MEDIAPIPE_FOV_DEG,
        reference_distance_cm: float = REFERENCE_DISTANCE_CM,
    ) -> None:
        self.target = target or FaceStats.packaged()
        self.source = source or self.target
        if adapt_frames < 0 or clip_std <= 0 or fov_deg <= 0 or reference_distance_cm <= 0:
            raise ReactError("adapt_frames must be >= 0 and clip_std, fov_deg, reference_distance_cm > 0")
        self.adapt_frames = int(adapt_frames)
        self.clip_std = float(clip_std)
        self.fov_deg = float(fov_deg)
        self.reference_distance_cm = float(reference_distance_cm)
        self._count = 0
        self._sum = np.zeros(FACE_DIM)
        self._sumsq = np.zeros(FACE_DIM)

    @classmethod
    def from_stats(
        cls, mean: np.ndarray | None = None, std: np.ndarray | None = None, **kwargs: float
    ) -> BlendshapeToFaceVerse:
        """A mapper whose target is the given (58,) mean/std (both None: the packaged REACT stats)."""
        if (mean is None) != (std is None):
            raise ReactError("give both the mean and the std of the training 3DMM, or neither")
        target = FaceStats.packaged() if mean is None else FaceStats(mean, std)
        return cls(target, **kwargs)

    def raw(self, blendshapes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """The uncalibrated (58,) vector (float64)."""
        return raw_faceverse(blendshapes, matrix, self.target, self.fov_deg, self.reference_distance_cm)

    def fit(self, blendshapes: np.ndarray, matrices: np.ndarray) -> BlendshapeToFaceVerse:
        """Set the source moments from a recording of the user: (T, 52) scores and (T, 4, 4) poses."""
        b = np.asarray(blendshapes)
        m = np.asarray(matrices)
        if b.ndim != 2 or m.ndim != 3 or len(b) != len(m) or len(b) < 2:
            raise ReactError(
                f"calibration needs (T, 52) blendshapes and (T, 4, 4) matrices, T >= 2; got {b.shape} and {m.shape}"
            )
        raw = np.stack([self.raw(bi, mi) for bi, mi in zip(b, m, strict=True)])
        self.source = FaceStats(raw.mean(0), raw.std(0))
        return self

    def __call__(self, blendshapes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """One camera frame -> (58,) float32 raw FaceVerse coefficients for ``ReactionStream.push``."""
        raw = self.raw(blendshapes, matrix)
        source = self._adapt(raw) if self.adapt_frames else self.source
        t = self.target
        out = t.mean + t.std * (raw - source.mean) / np.maximum(source.std, 1e-3 * t.std)
        out = np.clip(out, t.mean - self.clip_std * t.std, t.mean + self.clip_std * t.std)
        out[list(FILLER_DIMS)] = t.mean[list(FILLER_DIMS)]
        return out.astype(np.float32)

    def _adapt(self, raw: np.ndarray) -> FaceStats:
        """Running source moments, shrunk towards the prior ``self.source`` by ``adapt_frames``."""
        self._count += 1
        self._sum += raw
        self._sumsq += raw * raw
        n0, n = self.adapt_frames, self._count
        prior = self.source
        mean = (n0 * prior.mean + self._sum) / (n0 + n)
        second = (n0 * (prior.std**2 + prior.mean**2) + self._sumsq) / (n0 + n)
        return FaceStats(mean, np.sqrt(np.maximum(second - mean * mean, 0.0)))

    # -- calibration files (JSON: readable, and nothing in it can run code) --------------------------
    def save(self, path: str | Path) -> None:
        """Write the calibration (target and source moments, camera settings) as JSON."""
        data = {
            "format": CALIBRATION_FORMAT,
            "target_mean": self.target.mean.tolist(), "target_std": self.target.std.tolist(),
            "source_mean": self.source.mean.tolist(), "source_std": self.source.std.tolist(),
            "adapt_frames": self.adapt_frames, "clip_std": self.clip_std,
            "fov_deg": self.fov_deg, "reference_distance_cm": self.reference_distance_cm,
        }  # fmt: skip
        Path(path).write_text(json.dumps(data, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> BlendshapeToFaceVerse:
        """Read a calibration written by :meth:`save`; any defect is a one-line error naming the file."""
        path = Path(path)
        if not path.is_file():
            raise file_error(path, "blendshape calibration file not found")
        try:
            data = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise file_error(path, f"not a JSON blendshape calibration ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != CALIBRATION_FORMAT:
            raise file_error(path, f"not a blendshape calibration (expected format {CALIBRATION_FORMAT!r})")
        try:
            return cls(
                FaceStats(np.array(data["target_mean"], float), np.array(data["target_std"], float)),
                FaceStats(np.array(data["source_mean"], float), np.array(data["source_std"], float)),
                adapt_frames=int(data["adapt_frames"]), clip_std=float(data["clip_std"]),
                fov_deg=float(data["fov_deg"]), reference_distance_cm=float(data["reference_distance_cm"]),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError, ReactError) as exc:
            raise file_error(path, f"invalid blendshape calibration ({exc})") from None
