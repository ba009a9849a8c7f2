"""The REACT 2024 vocabulary, defined once: sizes, the names of every dimension, metric names and
directions, and the names of the files that commands hand to each other.

A low-floor module (it imports nothing from the package), so the data
layer, the models, the renderer, the metrics and the commands can all read it without pulling in
torch or each other. docs/dataset.md explains the 3DMM vector and the emotion columns in words;
docs/metrics.md the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

# -- time bases and clip sizes --------------------------------------------------------------------
FPS = 25  # video, 3DMM and emotion frames per second
CLIP_FRAMES = 751  # video / 3DMM frames of one 30 s clip
EMOTION_FRAMES = 750  # emotion rows of one clip (frames 0..749)
EVAL_FRAMES = 750  # frames the metrics compare
AUDIO_RATE = 44100  # the dataset's wav sample rate

# -- the 58-D FaceVerse 3DMM vector ---------------------------------------------------------------
#: The 52 expression coefficients, ARKit blendshapes in the order of the REACT vector ([0:52]).
EXPRESSION_NAMES: tuple[str, ...] = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "eyeBlinkLeft", "eyeBlinkRight",
    "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight",
    "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft",
    "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper",
    "mouthShrugLower", "mouthShrugUpper",
    "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight", "tongueOut",
)  # fmt: skip
EXPRESSION_DIM = len(EXPRESSION_NAMES)  # 52
EXPRESSION: dict[str, int] = {name: i for i, name in enumerate(EXPRESSION_NAMES)}  # name -> index
ROTATION = slice(EXPRESSION_DIM, EXPRESSION_DIM + 3)  # Euler angles x, y, z in radians (x ~ pi)
TRANSLATION = slice(EXPRESSION_DIM + 3, EXPRESSION_DIM + 6)
FACE_DIM = EXPRESSION_DIM + 6  # 58

#: Face-part groups (name, start, stop) covering all 58 dims: the tokenizer's grouped loss and reports.
FACE_GROUPS: tuple[tuple[str, int, int], ...] = (
    ("brow", 0, 5),
    ("cheek", 5, 8),
    ("eyeBlink", 8, 10),
    ("eyeLook", 10, 18),
    ("eyeSquint", 18, 20),
    ("eyeWide", 20, 22),
    ("jaw", 22, 26),
    ("mouth", 26, 43),
    ("smile", 43, 45),
    ("mouthStretch+UpperUp", 45, 49),
    ("nose+tongue", 49, 52),
    ("rotation", ROTATION.start, ROTATION.stop),
    ("translation", TRANSLATION.start, TRANSLATION.stop),
)

# -- the 25-D emotion vector ----------------------------------------------------------------------
ACTION_UNITS: tuple[str, ...] = (
    "AU1", "AU2", "AU4", "AU6", "AU7", "AU9", "AU10", "AU12", "AU14", "AU15", "AU17", "AU23", "AU24",
    "AU25", "AU26",
)  # fmt: skip
EXPRESSIONS_8: tuple[str, ...] = ("Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt")
#: Column order of the emotion CSVs and of every (…, 25) emotion array.
EMOTION_COLUMNS: tuple[str, ...] = (*ACTION_UNITS, "valence", "arousal", *EXPRESSIONS_8)
EMOTION_DIM = len(EMOTION_COLUMNS)  # 25
VALENCE_AROUSAL = (EMOTION_COLUMNS.index("valence"), EMOTION_COLUMNS.index("arousal"))  # (15, 16)
#: The three blocks of the emotion vector as slices (FRD weighs each block's DTW on its own).
AU_DIMS = slice(0, len(ACTION_UNITS))  # [0:15] AU occurrences, 0/1
VALENCE_AROUSAL_DIMS = slice(VALENCE_AROUSAL[0], VALENCE_AROUSAL[1] + 1)  # [15:17] in [-1, 1]
EXPRESSIONS_8_DIMS = slice(VALENCE_AROUSAL[1] + 1, EMOTION_DIM)  # [17:25] probabilities


# -- metrics --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Metric:
    """One metric: its metrics.json key and whether a larger value is the better one."""

    name: str
    higher_is_better: bool
    meaning: str

    @property
    def arrow(self) -> str:
        """The direction as tables show it next to the name (↑ higher is better, ↓ lower)."""
        return "↑" if self.higher_is_better else "↓"


#: Display order (that of metrics.json): appropriateness, diversity, synchrony, realism.
METRICS: tuple[Metric, ...] = (
    Metric("FRC", True, "appropriateness: concordance with the closest appropriate reaction (sum over K)"),
    Metric("FRD", False, "appropriateness: DTW distance to the closest appropriate reaction (sum over K)"),
    Metric("FRDiv", True, "diversity among the K reactions of one speaker"),
    Metric("FRVar", True, "variance over time within one reaction"),
    Metric("FRDvs", True, "diversity across speakers"),
    Metric("FRSyn", False, "synchrony: mean |TLCC offset| to the speaker, official protocol"),
    Metric("FRSyn_all", False, "synchrony over all K reactions, constant dims ignored"),
    Metric("FRRea", False, "realism: Frechet Inception Distance of rendered frames (null without its weights)"),
)
METRIC_KEYS: tuple[str, ...] = tuple(m.name for m in METRICS)

# -- files that one command writes and another reads ----------------------------------------------
TOKENIZER_CKPT = "tokenizer.ckpt"
PREDICTOR_CKPT = "predictor.ckpt"  # best by validation loss
PREDICTOR_LAST_CKPT = "predictor_last.ckpt"  # last step, with the optimiser state for --resume
TOKENIZER_LAST_CKPT = "tokenizer_last.ckpt"  # the same for train-tokenizer --resume
EMOTION_FILE = "emotion.npy"  # (N, K, 750, 25) generated emotion
FACE3DMM_FILE = "face3dmm.npy"  # (N, K, 751, 58) generated raw 3DMM
GENERATION_FILE = "generation.json"  # how the predictions were generated
METRICS_FILE = "metrics.json"
BASELINES_FILE = "baselines.json"
