"""The REACT challenge editions as facts, and telling them apart from a dataset root.

Three editions share the task (generate a listener's facial reaction to a speaker) but differ in
almost every number around it:

- **2024** (NoXI + RECOLA): 25 fps, every clip 751 frames (750 emotion rows), pair lists at the
  root, an appropriateness (neighbour) matrix for val/test, each pair used in both directions
  ("mirrored"), the 2024 metric set including FRDvs.
- **2025** (MARS): 30 fps, recordings of 58 frames up to more than 20 000, no pair list (a dyad is
  the same stem under ``speaker/`` and ``listener/`` of one session), no matrix: the appropriate
  reactions of an input are the opposite-role recordings of the same session (10 ground truths per
  sample), every recording is also an input (bidirectional).
- **2026** (MARS again): as 2025, plus the listener's EEG and personality, MAE and five EEG
  metrics, and speaker -> listener only by default.

Code that depends on the edition reads it from an :class:`Edition` here instead of spelling the
number again, so that 30 fps is written once. A floor module: it imports only the vocabulary and
the error type (docs/DEVELOPING.md, layers). docs/mars.md explains detection in words.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from reactcli.errors import ReactError
from reactcli.vocab import CLIP_FRAMES, EMOTION_FRAMES, FPS, METRIC_KEYS, Metric

SPLITS = ("train", "val", "test")

# -- the MARS vocabulary (REACT 2025/2026) --------------------------------------------------------
MARS_FPS = 30
MARS_MIN_FRAMES = 58  # the shortest recording the organisers' loaders mention
MARS_GT_COUNT = 10  # ground truths per sample: the paired recording + 9 of the same session
MARS_GT_SEED = 1234  # the naive-baseline script's --seed: its GT draw (and its torch stream)
#: Frames per segment of the post-processor (the organisers' ``post_clip_length`` / ``clip_len_test``).
POST_PROCESSOR_CLIP = 1000
#: ``calculate_tlcc``'s defaults, which no official caller overrides: 2 s at **25 fps** (lags -49..49)
#: although MARS runs at 30 fps. FRSyn_fixed keeps the 2 s and uses the data's rate.
TLCC_SECONDS, TLCC_FPS = 2, 25
#: ``_compute_eeg_tlcc``'s defaults: 2 s at one EEG vector per second (lags -2..2).
EEG_TLCC_SECONDS, EEG_TLCC_FPS = 2, 1
AUDIO_FEATURE_DIM = 768  # the release's wav2vec2-base-960h features, one row per video frame
#: The 14 EEG targets in the order the official reader uses (columns are read by name).
EEG_COLUMNS: tuple[str, ...] = (
    "TP9", "AF7", "AF8", "TP10",
    "Delta_TP9", "Theta_TP9", "Alpha_TP9", "Beta_TP9", "Gamma_TP9",
    "Delta_TP10", "Theta_TP10", "Alpha_TP10", "Beta_TP10", "Gamma_TP10",
)  # fmt: skip
EEG_RAW_CHANNELS: tuple[str, ...] = ("TP9", "AF7", "AF8", "TP10")  # divided by EEG_CHANNEL_SCALE
EEG_CHANNEL_SCALE = 1000.0
EEG_DIM = len(EEG_COLUMNS)  # 14
#: The Big Five columns of ``personality/{listener,speaker}.csv``, in the official vector order.
PERSONALITY_TRAITS: tuple[str, ...] = ("Extraversion", "Agreeableness", "Conscientiousness", "Neuroticism", "Openness")
PERSONALITY_SCALE = (1.0, 5.0)  # traits are on a 1-5 scale; the model sees (x - 1) / 4

#: Modality folders under ``<root>/<split>/`` of a MARS release.
MARS_GENERIC_MODALITIES: tuple[str, ...] = (
    "video-raw", "video-face-crop", "facial-attributes", "coefficients", "audio", "audio-features",
)  # fmt: skip
MARS_2026_MODALITIES: tuple[str, ...] = ("eeg_processed", "personality")
MARS_LISTING_MODALITY = "facial-attributes"  # the folder whose files define the recordings

# -- the metric sets (the project's names; MARS's official keys in OFFICIAL_METRIC_NAMES) ---------
#: The MARS metrics reactcli reports, in display order, with their directions (``vocab.Metric``). A
#: name shared with REACT 2024 (FRC, FRD, FRDiv, FRVar, FRSyn) keeps its 2024 direction
#: (tests/test_compare_export.py checks it); ``metrics/names.py`` looks both tables up.
MARS_METRIC_INFO: tuple[Metric, ...] = (
    Metric("FRC", True, "appropriateness: sum over K of the best CCC against the 10 ground truths"),
    Metric("FRD", False, "appropriateness: sum over K of the smallest DTW distance to the 10 ground truths"),
    Metric("FRSyn", False, "synchrony: official TLCC (prediction 0 only, 25 fps lags, first NaN wins)"),
    Metric("FRSyn_fixed", False, "synchrony over all K, lags at the data's fps, constant dims ignored"),
    Metric("FRDiv", True, "diversity among the K reactions (official smse)"),
    Metric("FRVar", True, "variance over time within one reaction"),
    Metric("MAE", False, "2026: mean |GT - prediction| of valence, arousal and expressions"),
    Metric("EEG_FRC", True, "2026 EEG: masked CCC, best GT, sum over K"),
    Metric("EEG_FRD", False, "2026 EEG: masked DTW, best GT, sum over K"),
    Metric("EEG_FRSyn", False, "2026 EEG: masked TLCC offset against the paired GT"),
    Metric("EEG_FRDiv", True, "2026 EEG: diversity among the K EEG predictions"),
    Metric("EEG_FRVar", True, "2026 EEG: variance over time of the EEG predictions"),
)
MARS_METRIC_KEYS: tuple[str, ...] = tuple(m.name for m in MARS_METRIC_INFO)
MARS_METRICS: tuple[str, ...] = ("FRC", "FRD", "FRSyn", "FRSyn_fixed", "FRDiv", "FRVar")
EEG_METRICS: tuple[str, ...] = ("EEG_FRC", "EEG_FRD", "EEG_FRSyn", "EEG_FRDiv", "EEG_FRVar")
#: Our metric name -> the key the organisers' 2025/2026 code prints.
OFFICIAL_METRIC_NAMES: dict[str, str] = {
    "FRC": "FRC", "FRD": "FRD", "FRSyn": "TLCC", "FRDiv": "smse", "FRVar": "FRVar", "MAE": "MAE",
    "EEG_FRC": "EEG_FRC", "EEG_FRD": "EEG_FRD", "EEG_FRSyn": "EEG_TLCC", "EEG_FRDiv": "EEG_smse",
    "EEG_FRVar": "EEG_FRVar",
}  # fmt: skip

# direction defaults
MIRRORED = "mirrored"  # 2024: the pair rows as listed, then the same rows with roles swapped
BIDIRECTIONAL = "bidirectional"  # 2025: every speaker input, then every listener input
SPEAKER_TO_LISTENER = "speaker_to_listener"  # 2026 default: speaker inputs only

# ground-truth rules
NEIGHBOUR_MATRIX = "neighbour_matrix"  # 2024: neighbour_emotion_<split>.npy marks appropriate samples
SESSION_POOL = "session_pool"  # MARS: the opposite-role recordings of the input's session


@dataclass(frozen=True)
class Edition:
    """The facts of one challenge edition that code must not spell twice.

    ``fixed_frames`` is the clip length when every clip has the same one (2024: 751 video/3DMM
    frames, ``emotion_frames`` 750 rows), None when lengths vary from ``min_frames`` up (MARS).
    """

    name: str
    dataset: str
    fps: int
    fixed_frames: int | None
    emotion_frames: int | None
    min_frames: int
    gt_rule: str
    gt_count: int | None  # ground truths per sample; None = every sample the matrix marks
    metrics: tuple[str, ...]
    direction: str
    modalities: tuple[str, ...]

    @property
    def is_mars(self) -> bool:
        return self.dataset == "MARS"

    @property
    def variable_length(self) -> bool:
        return self.fixed_frames is None

    @property
    def bidirectional(self) -> bool:
        """Whether listener recordings are inputs too by default (2024's mirrored order counts)."""
        return self.direction != SPEAKER_TO_LISTENER

    @property
    def has_eeg(self) -> bool:
        return "eeg_processed" in self.modalities


#: REACT 2025 on MARS; 2026 is the same release with EEG and personality, MAE and the EEG metrics,
#: and speaker inputs only by default.
_MARS_2025 = Edition(
    name="2025",
    dataset="MARS",
    fps=MARS_FPS,
    fixed_frames=None,
    emotion_frames=None,
    min_frames=MARS_MIN_FRAMES,
    gt_rule=SESSION_POOL,
    gt_count=MARS_GT_COUNT,
    metrics=MARS_METRICS,
    direction=BIDIRECTIONAL,
    modalities=MARS_GENERIC_MODALITIES,
)

EDITIONS: dict[str, Edition] = {
    "2024": Edition(
        name="2024",
        dataset="NoXI+RECOLA",
        fps=FPS,
        fixed_frames=CLIP_FRAMES,
        emotion_frames=EMOTION_FRAMES,
        min_frames=CLIP_FRAMES,
        gt_rule=NEIGHBOUR_MATRIX,
        gt_count=None,
        metrics=METRIC_KEYS,
        direction=MIRRORED,
        modalities=("Video_files", "3D_FV_files", "Emotion", "Audio_files"),
    ),
    "2025": _MARS_2025,
    "2026": replace(
        _MARS_2025,
        name="2026",
        metrics=(*MARS_METRICS, "MAE", *EEG_METRICS),
        direction=SPEAKER_TO_LISTENER,
        modalities=MARS_GENERIC_MODALITIES + MARS_2026_MODALITIES,
    ),
}


def edition(name: str | int) -> Edition:
    """The edition called ``name`` ("2024", "2025" or "2026"); anything else is a ReactError."""
    key = str(name).strip()
    if key not in EDITIONS:
        raise ReactError(f"--edition {name}: expected one of {', '.join(EDITIONS)}")
    return EDITIONS[key]


def _is_2024_root(root: Path) -> bool:
    if any((root / f"{split}.csv").is_file() for split in SPLITS):
        return True
    return any((root / split / folder).is_dir() for split in SPLITS for folder in ("Emotion", "3D_FV_files"))


def _is_mars_root(root: Path) -> bool:
    return any((root / split / MARS_LISTING_MODALITY).is_dir() for split in SPLITS)


def _has_2026_data(root: Path) -> bool:
    for split in SPLITS:
        base = root / split
        if (base / "eeg_processed").is_dir() or (base / "eeg_processed.tar.gz").is_file():
            return True
        if (base / "personality").is_dir():
            return True
    return False


def detect_edition(root: str | Path, requested: str | int | None = None) -> Edition:
    """The edition of the dataset at ``root``, from its folders (``requested`` = ``--edition``).

    - A root with pair lists (``train.csv``...) or 2024 modality folders (``<split>/Emotion``,
      ``<split>/3D_FV_files``) is 2024.
    - A root with ``<split>/facial-attributes`` is MARS. With ``eeg_processed`` (folder or
      ``.tar.gz``) or ``personality`` in any split it is 2026. Without them 2025 and 2026 cannot be
      told apart (a 2026 copy may leave the optional folders out, and the two editions score a
      different sample set), so ``--edition`` is then required rather than guessed.
    - A requested MARS edition is honoured on any MARS root (2025 on a 2026 release simply does
      not read the EEG and personality); asking for 2024 on a MARS root, or the reverse, is an error.
    """
    root = Path(root)
    wanted = edition(requested) if requested is not None else None
    if not root.is_dir():
        raise ReactError(path=root, problem="dataset root not found")
    is_2024, is_mars = _is_2024_root(root), _is_mars_root(root)
    if is_2024 and is_mars:
        raise ReactError(
            path=root,
            problem="holds both a REACT 2024 layout (pair lists, Emotion folders) and a MARS layout "
            "(<split>/facial-attributes); keep one dataset per root",
        )
    if not is_2024 and not is_mars:
        if (root / MARS_LISTING_MODALITY).is_dir() or (root / "Emotion").is_dir():
            hint = f"; it looks like one split folder: pass its parent ({root.parent})"
        else:
            hint = ""
        raise ReactError(
            path=root,
            problem="neither a REACT 2024 dataset (train.csv, <split>/Emotion) nor a MARS dataset "
            f"(<split>/facial-attributes){hint}",
        )
    if is_2024:
        if wanted is not None and wanted.is_mars:
            raise ReactError(path=root, problem=f"is a REACT 2024 dataset, not MARS (--edition {wanted.name})")
        return EDITIONS["2024"]
    if wanted is not None:
        if not wanted.is_mars:
            raise ReactError(path=root, problem="is a MARS dataset (REACT 2025/2026), not REACT 2024 (--edition 2024)")
        return wanted
    if _has_2026_data(root):
        return EDITIONS["2026"]
    raise ReactError(
        path=root,
        problem="is a MARS dataset without eeg_processed or personality folders, so REACT 2025 cannot be "
        "told from 2026: pass --edition 2025 or --edition 2026",
    )
