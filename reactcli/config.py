"""Typed configuration: one pydantic model per concern, filled by one layered loader.

Every command that reads settings goes through :func:`load_config`. Precedence (highest first):
CLI flags (``--set section.key=value`` and the dedicated options of each command) >
``REACT_<SECTION>__<KEY>`` environment variables > the TOML file given with ``--config`` > the
base layer (the defaults below, or for ``react generate`` the configuration stored in the
checkpoint). A command may restrict which sections the upper layers can change (generation only
changes ``generation.*``). Every model forbids unknown keys, and we check each layer ourselves
first so that a typo is reported with the layer (file name, environment variable, ``--set``,
checkpoint) and the full dotted key instead of pydantic's anonymous "extra inputs are not
permitted".

Settings that depend on each other are checked by validators on the sections (and on
:class:`ReactConfig` for rules across sections) while the configuration is loaded; a broken rule
names every key it involves with its value and the layer it came from, so a contradiction is found
before a model is built or a corpus tokenised. A rule broken by the base layer's values alone (a
checkpoint's stored configuration) is not raised: the stored run was built that way and its weights
match it.

Keys renamed since earlier versions are listed in :data:`RENAMED` (and renamed values in
:data:`RENAMED_VALUES`): a config file that still uses an old name gets an error naming the new one,
and a configuration stored in a checkpoint is upgraded when it is read (:func:`config_from_dict`),
so checkpoints written before the rename keep loading. Keys dropped are in :data:`REMOVED` (with
why), and knobs retired after they lost a measured comparison in :data:`RETIRED`: a stored config
that holds the retired knob's "off" value loads, one that used the knob is refused with the reason.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from reactcli.errors import ReactError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENV_PREFIX = "REACT_"
ENV_DELIMITER = "__"
DEFAULTS = "the defaults"  # the layer name of a value nobody set


class RuleError(ValueError):
    """A rule between settings is broken; ``keys`` are the dotted keys it involves."""

    def __init__(self, keys: tuple[str, ...], problem: str) -> None:
        super().__init__(problem)
        self.keys = keys
        self.problem = problem


def rule(info: ValidationInfo, ok: bool, keys: tuple[str, ...], problem: str) -> None:
    """Raise :class:`RuleError` unless ``ok``, or unless every key involved comes from the base layer.

    ``info.context`` (set by :func:`load_config`) maps ``(section, key)`` to the layer each value came
    from and names the base layer; without it (a plain ``ReactConfig(...)`` or an assignment) every
    rule applies.
    """
    if ok:
        return
    context = info.context or {}
    base, origin = context.get("base"), context.get("origin", {})
    if base is not None and all(origin.get(tuple(k.split(".", 1))) == base for k in keys):
        return
    raise RuleError(keys, problem)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Section):
    """Where the preprocessing cache and face statistics live, and what a MARS root trains on.

    The dataset root itself is not a setting: every command takes it as ``--data`` and passes it on
    as an argument, so it travels one way only. Both training stages validate on the val split.
    """

    cache_dir: Path | None = Field(
        default=None, description="feature/statistics cache; default <root>/.react_cache"
    )
    mean_face: Path | None = Field(
        default=None, description="(58,) mean 3DMM .npy; default: the train mean computed by preprocess"
    )
    std_face: Path | None = Field(default=None, description="(58,) std 3DMM .npy; default: from preprocess")
    face_stats: Literal["train", "react2024"] = Field(
        default="train",
        description="3DMM statistics the tokenizer normalises with (unless mean_face/std_face are given): the train "
        "split's, computed by preprocess, or the packaged REACT 2024 mean_face/std_face the organisers' MARS "
        "loaders use",
    )
    bidirectional: bool | None = Field(
        default=None,
        description="MARS: also train on listener -> speaker samples (default: the edition's rule, 2025 both "
        "directions, 2026 speaker -> listener); REACT 2024 always trains on its mirrored pairs",
    )

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> DataConfig:
        rule(info, self.face_stats == "train" or (self.mean_face is None and self.std_face is None),
             ("data.face_stats", "data.mean_face", "data.std_face"),
             "data.face_stats = 'react2024' takes both statistics from the package: drop data.mean_face and "
             "data.std_face, or use data.face_stats = 'train' with them")
        return self


class AudioConfig(Section):
    """Speaker audio front end; features are computed once by ``react preprocess``."""

    encoder: Literal["mfcc", "logmel", "wav2vec2", "release"] = Field(
        default="mfcc",
        description="causal features computed by preprocess (mfcc, logmel, wav2vec2), or a MARS release's own "
        "768-d audio-features ('release': NOT causal, the model is then an offline model)",
    )
    pretrained: Path | None = Field(default=None, description="local wav2vec2 folder (save_pretrained)")
    sample_rate: int = Field(default=16000, gt=0, description="rate the encoder sees after resampling")
    n_mfcc: int = Field(default=26, gt=0, description="MFCC coefficients; with deltas the feature is 3x")
    n_mels: int = Field(default=80, gt=0)


class TokenizerConfig(Section):
    """FSQ face tokenizer (stage 1)."""

    dim: int = 252
    depth: int = 12
    decoder_depth: int = 12
    heads: int = 12
    levels: list[int] = [8, 5, 5, 5]
    window_frames: int = Field(
        default=32, ge=1, description="frames the tokenizer encodes together (its attention window and training crop)"
    )
    dropout: float = 0.1
    normalization: Literal["zero_center", "standard"] = Field(
        default="zero_center",
        description="3DMM in model space: x - mean_face (zero_center) or (x - mean_face) / std_face (standard), "
        "the two rules of the organisers' normalize_3dmm; the statistics are stored in the checkpoint",
    )

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> TokenizerConfig:
        rule(info, self.dim % self.heads == 0, ("tokenizer.dim", "tokenizer.heads"),
             f"tokenizer.dim ({self.dim}) must be a multiple of tokenizer.heads ({self.heads})")
        return self


class PredictorConfig(Section):
    """Cross-modal reaction predictor (stage 2)."""

    dim: int = 360
    heads: int = 12
    self_depth: int = 8
    cross_depth: int = 8
    context_frames: int = Field(default=256, ge=1, description="frames of attention context (speaker and listener)")
    patch: int = Field(default=32, description="frames predicted per step")
    dropout: float = 0.1
    emotion_skip: int = Field(
        default=0, ge=0, description="frames of speaker input in the emotion head's causal linear skip path (0 = off)"
    )
    gate_init: float = Field(default=1.0, description="initial cross-modal gate (FIBER and the paper: 0)")
    code_embedding: Literal["grid", "table"] = Field(
        default="grid", description="token input: Linear over FSQ coordinates (grid) or an embedding table"
    )
    speaker_emotion: bool = Field(
        default=True, description="feed the speaker's 25-D emotion (frames <= t) into the audio stream"
    )
    emotion_head: bool = Field(
        default=True,
        description="emit emotion from a regression head on the listener state (else decode it from the tokens)",
    )
    personality: bool = Field(
        default=False,
        description="add a learned projection of the listener's five traits ((x - 1) / 4) to the listener stream "
        "(REACT 2026: a MARS root with personality/listener.csv; samples without traits are left out)",
    )
    history_frames: int = Field(
        default=0,
        ge=0,
        description="frames of the listener's own past (the last frames of their previous recording in the split, "
        "3DMM and attributes) pooled into one vector added to the listener stream; 0 = off (REACT 2026's history "
        "condition: MARS roots only, docs/mars.md)",
    )
    eeg_head: bool = Field(
        default=False,
        description="also predict the listener's 14 EEG targets from the listener state, read out once per second "
        "at each second's last frame (REACT 2026: a MARS root with eeg_processed; trained with the EEG mask)",
    )
    linear_emotion_dims: Literal["none", "valence_arousal", "valence_arousal_expressions"] = Field(
        default="none",
        description="emotion dims given by the fixed linear path alone, no learned residual (needs emotion_skip)",
    )

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> PredictorConfig:
        # rotary positions rotate pairs of channels, so each head needs an even width
        rule(info, self.dim % self.heads == 0 and (self.dim // self.heads) % 2 == 0,
             ("predictor.dim", "predictor.heads"),
             f"predictor.dim ({self.dim}) must split into predictor.heads ({self.heads}) heads of an even width")
        rule(info, self.emotion_skip == 0 or self.emotion_head, ("predictor.emotion_skip", "predictor.emotion_head"),
             "predictor.emotion_skip adds a linear path to the emotion head: it needs predictor.emotion_head = true "
             "(or emotion_skip = 0)")
        rule(info, self.linear_emotion_dims == "none" or (self.emotion_head and self.emotion_skip > 0),
             ("predictor.linear_emotion_dims", "predictor.emotion_head", "predictor.emotion_skip"),
             "predictor.linear_emotion_dims takes dims from the linear path alone: it needs predictor.emotion_head "
             "= true and predictor.emotion_skip > 0")
        return self


class TrainingConfig(Section):
    """Optimisation settings shared by both training stages."""

    tokenizer_lr: float = 1e-3
    predictor_lr: float = 1e-3
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    tokenizer_warmup_steps: int = 300
    predictor_warmup_steps: int = 200
    tokenizer_max_steps: int = 20000
    predictor_max_steps: int = 20000
    tokenizer_batch_size: int = 8
    predictor_batch_size: int = 16
    predictor_crop_frames: int = Field(default=288, ge=2, description="length of the predictor's training crops")
    select_by: Literal["val_loss", "val_unheard_mse"] = Field(
        default="val_loss",
        description="the validation figure (a predictor log column) that picks predictor.ckpt: the teacher-forced "
        "val loss, or the emotion MSE with every listener input MASKed (needs predictor.emotion_head)",
    )
    emotion_only_fraction: float = Field(default=0.2, ge=0.0, lt=1.0)
    truncate_prob: float = 0.5
    grad_clip: float = 1.0
    val_every: int = 500
    log_every: int = 50
    listener_dropout: float = Field(
        default=0.5, ge=0.0, lt=1.0,
        description="probability that a listener input token is replaced by MASK (forces use of the speaker)",
    )
    self_sampling: float = Field(
        default=0.0, ge=0.0, le=1.0,
        description="fraction of real listener input tokens swapped for the model's own samples (scheduled sampling)",
    )
    valence_arousal_weight: float = Field(
        default=1.0, gt=0.0,
        description="extra weight of valence and arousal in the emotion MSE (FRD weighs their distance 1, AUs 1/15)",
    )
    emotion_loss_weight: float = Field(default=2.0, ge=0.0, description="weight of the emotion head's MSE")
    eeg_loss_weight: float = Field(
        default=0.3, ge=0.0,
        description="weight of the EEG head's masked MSE (standardised units; predictor.eeg_head; at 1 the shared "
        "listener state lost facial FRC on the synthetic data, docs/mars.md)",
    )
    tensorboard: bool = Field(default=False, description="also write TensorBoard events under <out>/tb/")
    compile: bool = Field(
        default=False,
        description="train the model through torch.compile (fewer, fused kernels; the first steps compile)",
    )
    peak_tflops: float | None = Field(
        default=None, gt=0.0,
        description="the device's peak TFLOPS for the log's mfu column (default: the CUDA device's dense bf16 "
        "peak when known, none on a CPU; docs/performance.md)",
    )


class GenerationConfig(Section):
    """Sampling and the post-processing of emitted frames (``react generate``, ``react live``, baselines' K)."""

    samples: int = Field(default=10, ge=1, description="reactions per speaker (K)")
    top_k: int = Field(default=512, ge=1)
    temperature: float = Field(default=1.0, gt=0.0)
    smoothing: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="causal exponential smoothing of the emitted frames (0 = off)"
    )
    emotion_residual_scale: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="shrink the emotion head's learned part towards the linear skip path (towards the train "
        "mean without one): 1 = as trained, 0 = the linear path alone",
    )
    sampled_emotion_weight: float = Field(
        default=0.0,
        ge=0.0,
        description="carry each reaction's sampled face path into its emotion: the head's emotion plus this "
        "weight x the reaction's decoded emotion minus the K reactions' mean (the AUs); 0 = off",
    )
    sampled_emotion_smoothing: float = Field(
        default=0.0, ge=0.0, lt=1.0,
        description="causal exponential smoothing of that spread, per reaction (0 = off; nothing to smooth at "
        "weight 0)",
    )
    valid_emotion: bool = Field(
        default=True,
        description="project each emitted emotion frame onto the valid set (AUs in [0, 1], valence/arousal in "
        "[-1, 1], expression probabilities on the simplex)",
    )


class RenderConfig(Section):
    """Mesh videos (``react render``): official camera at ``size``, 25 fps by default."""

    backend: Literal["builtin", "pytorch3d"] = "builtin"
    face_model: Path | None = Field(default=None, description="faceverse_simple_v2.npy")
    reference: Path | None = Field(default=None, description="reference_full.npy (identity)")
    size: int = Field(default=224, ge=32, le=2048, description="panel size in pixels (even)")
    fps: int = Field(default=25, ge=1)
    chunk: int = Field(default=16, ge=1, description="frames rasterized/encoded per step")
    threads: int = Field(default=1, ge=0, description="torch CPU threads while rendering (0 = torch default)")


class ReactConfig(BaseModel):
    """All settings of the toolkit; each command reads the sections it needs.

    A plain model: the layers (file, ``REACT_*`` environment, ``--set``) are merged by
    :func:`load_config`, which knows where each value came from.
    """

    model_config = ConfigDict(extra="forbid")

    data: DataConfig = DataConfig()
    audio: AudioConfig = AudioConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    predictor: PredictorConfig = PredictorConfig()
    training: TrainingConfig = TrainingConfig()
    generation: GenerationConfig = GenerationConfig()
    render: RenderConfig = RenderConfig()

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> ReactConfig:
        head = self.predictor.emotion_head
        rule(info, self.training.select_by != "val_unheard_mse" or head,
             ("training.select_by", "predictor.emotion_head"),
             "training.select_by = 'val_unheard_mse' scores the emotion head: it needs predictor.emotion_head = true")
        rule(info, self.generation.emotion_residual_scale == 1.0 or head,
             ("generation.emotion_residual_scale", "predictor.emotion_head"),
             "generation.emotion_residual_scale shrinks the emotion head's learned part: it needs "
             "predictor.emotion_head = true (or a scale of 1)")
        rule(info, self.generation.sampled_emotion_weight == 0.0 or head,
             ("generation.sampled_emotion_weight", "predictor.emotion_head"),
             "generation.sampled_emotion_weight adds the sampled path's spread to the emotion head's output: it "
             "needs predictor.emotion_head = true (or a weight of 0)")
        rule(info, self.training.eeg_loss_weight == 0.3 or self.predictor.eeg_head,
             ("training.eeg_loss_weight", "predictor.eeg_head"),
             "training.eeg_loss_weight weighs the EEG head's loss: it needs predictor.eeg_head = true "
             "(or the default weight, 0.3)")
        return self


SECTIONS: dict[str, type[Section]] = {
    name: field.annotation  # type: ignore[misc]
    for name, field in ReactConfig.model_fields.items()
}

# (section, old key) -> new key: names changed so that each window says what it is.
RENAMED: dict[tuple[str, str], str] = {
    ("tokenizer", "normalize_std"): "normalization",
    ("tokenizer", "window"): "window_frames",
    ("predictor", "context"): "context_frames",
    ("training", "predictor_window"): "predictor_crop_frames",
}
# (section, key) -> {old value: new value}: values renamed (the selection criterion is named by its log column).
RENAMED_VALUES: dict[tuple[str, str], dict[Any, Any]] = {
    ("training", "select_by"): {"unheard_emotion": "val_unheard_mse"},
    # the boolean became one of the organisers' two rules (a renamed key with its values)
    ("tokenizer", "normalization"): {False: "zero_center", True: "standard"},
}
# Keys dropped (no code read them, or they travelled twice) -> why; dropped from stored configs.
REMOVED: dict[tuple[str, str], str] = {
    ("data", "root"): "the dataset root is given as --data",
    ("data", "window_frames"): "no code read it",
    ("data", "num_workers"): "no code read it",
    ("data", "splits"): "it only chose the tokenizer's validation split; both stages validate on val",
}
# Knobs retired after they lost a measured comparison -> (the value that meant "off", why).
# A stored config holding the "off" value loads; one that used the knob cannot be rebuilt.
RETIRED: dict[tuple[str, str], tuple[Any, str]] = {
    ("predictor", "speaker_emotion_dims"): (
        "none", "emotion dims from the speaker memory alone lost to the linear path, docs/quality.md"
    ),
}

Layer = Mapping[str, Mapping[str, Any]]


def _nearest(word: str, candidates: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or nothing when none is close."""
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_known_keys(data: Mapping[str, Any], origin: str) -> None:
    for section, values in data.items():
        if section not in SECTIONS:
            raise ReactError(f"{origin}: unknown config section '{section}'{_nearest(section, list(SECTIONS))} "
                             f"(known: {', '.join(SECTIONS)})")
        if not isinstance(values, Mapping):
            raise ReactError(f"{origin}: '{section}' must be a table of settings, got {values!r}")
        fields = SECTIONS[section].model_fields
        for key, value in values.items():
            if (section, key) in RENAMED:
                new_key = RENAMED[section, key]
                mapped = _renamed_value(section, new_key, value)
                hint = f" = {mapped!r}" if mapped is not value else ""
                raise ReactError(f"{origin}: '{section}.{key}' is now called '{section}.{new_key}'{hint}")
            if (section, key) in RETIRED:
                raise ReactError(f"{origin}: '{section}.{key}' was retired: {RETIRED[section, key][1]}")
            if (section, key) in REMOVED:
                raise ReactError(f"{origin}: '{section}.{key}' was removed: {REMOVED[section, key]}")
            new = RENAMED_VALUES.get((section, key), {})
            if isinstance(value, str) and value in new:
                raise ReactError(f"{origin}: {section}.{key} = '{value}' is now called '{new[value]}'")
            if key not in fields:
                raise ReactError(
                    f"{origin}: unknown config key '{section}.{key}'{_nearest(key, list(fields))} "
                    f"(known in [{section}]: {', '.join(fields)})"
                )


def read_toml(path: Path) -> dict[str, Any]:
    """Read a config file and reject unknown keys, naming the file."""
    if not path.is_file():
        raise ReactError(f"{path}: config file not found")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ReactError(f"{path}: not valid TOML ({exc})") from None
    _check_known_keys(data, str(path))
    return data


def env_name(section: str, key: str) -> str:
    """The environment variable of a setting: ``REACT_TRAINING__PREDICTOR_MAX_STEPS``."""
    return f"{ENV_PREFIX}{section.upper()}{ENV_DELIMITER}{key.upper()}"


def _env_names() -> dict[str, str]:
    return {env_name(s, k): f"{s}.{k}" for s, model in SECTIONS.items() for k in model.model_fields}


def settings_shaped(name: str) -> bool:
    """Whether a ``REACT_*`` variable is meant as one of our settings (and so must be one).

    The ``REACT_`` prefix is shared: React's own tooling reads ``REACT_APP_*``, ``REACT_EDITOR`` and
    ``REACT_NATIVE_*``, and our browser test reads ``REACT_UPDATE_SCREENSHOT``. A variable is ours when
    it has the section delimiter ``__``, starts with a section name and ``_``
    (``REACT_TRAINING_PREDICTOR_MAX_STEPS``), or is one typo away from a setting's variable
    (``REACT_GENERATON_SAMPLES``); anything else is left to whoever set it.
    """
    rest = name.upper()[len(ENV_PREFIX):]
    if ENV_DELIMITER in rest or any(rest.startswith(f"{section.upper()}_") for section in SECTIONS):
        return True
    return bool(difflib.get_close_matches(name.upper(), list(_env_names()), n=1, cutoff=0.8))


def read_env(environ: Mapping[str, str] | None = None) -> dict[str, dict[str, str]]:
    """Collect ``REACT_SECTION__KEY`` variables; a settings-shaped one that names no setting is an
    error naming the variable and the nearest real one (:func:`settings_shaped`)."""
    environ = os.environ if environ is None else environ
    found: dict[str, dict[str, str]] = {}
    names = _env_names()
    for name, value in environ.items():
        if not name.upper().startswith(ENV_PREFIX) or not settings_shaped(name):
            continue
        section, delimiter, key = name[len(ENV_PREFIX) :].lower().partition(ENV_DELIMITER)
        if name.upper() not in names and (section, key) not in RENAMED and (section, key) not in REMOVED \
                and (section, key) not in RETIRED:
            close = difflib.get_close_matches(name.upper(), list(names), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]} ({names[close[0]]})?" if close else ""
            shape = "" if delimiter else f" (a setting is {ENV_PREFIX}<SECTION>{ENV_DELIMITER}<KEY>)"
            raise ReactError(f"environment variable {name}: no such setting{shape}{hint}")
        _check_known_keys({section: {key: value}}, f"environment variable {name}")
        found.setdefault(section, {})[key] = value
    return found


def parse_overrides(assignments: list[str]) -> dict[str, dict[str, Any]]:
    """Turn ``--set section.key=value`` strings into a nested dict (values parsed as TOML if possible)."""
    result: dict[str, dict[str, Any]] = {}
    for item in assignments:
        dotted, sep, raw = item.partition("=")
        section, dot, key = dotted.strip().partition(".")
        if not sep or not dot:
            raise ReactError(f"--set {item}: expected section.key=value")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        result.setdefault(section, {})[key] = value
    _check_known_keys(result, "--set")
    return result


def upgrade_stored(data: Mapping[str, Any], name: str = "stored config") -> dict[str, dict[str, Any]]:
    """A stored configuration with renamed keys and values under their new names, removed keys
    dropped, and retired knobs dropped where they hold their "off" value (any other value is an
    error naming ``name``: the model it describes cannot be rebuilt)."""
    out: dict[str, dict[str, Any]] = {}
    for section, values in data.items():
        if not isinstance(values, Mapping):
            out[section] = values  # type: ignore[assignment]  # reported by _check_known_keys
            continue
        kept: dict[str, Any] = {}
        for key, value in values.items():
            if (section, key) in RETIRED:
                off, why = RETIRED[section, key]
                if value != off:
                    raise ReactError(f"{name}: {section}.{key} = {value!r} is a retired knob ({why}); this "
                                     "version cannot rebuild a model trained with it")
                continue
            if (section, key) in REMOVED:
                continue
            new_key = RENAMED.get((section, key), key)
            kept[new_key] = _renamed_value(section, new_key, value)
        out[section] = kept
    return out


def _renamed_value(section: str, key: str, value: Any) -> Any:
    """``value`` under its new name (:data:`RENAMED_VALUES`); strings and booleans are renamed, other
    values (and values without a new name) come back as they are."""
    if not isinstance(value, (str, bool)):
        return value
    renamed = RENAMED_VALUES.get((section, key), {})
    return next((new for old, new in renamed.items() if type(old) is type(value) and old == value), value)


def _merge(layers: list[tuple[str, Layer]]) -> tuple[dict, dict]:
    merged: dict[str, dict[str, Any]] = {}
    origin: dict[tuple[str, str], str] = {}
    for name, layer in layers:
        for section, values in layer.items():
            for key, value in values.items():
                merged.setdefault(section, {})[key] = value
                origin[(section, key)] = name
    return merged, origin


def load_config(
    path: str | Path | None = None,
    overrides: Layer | None = None,
    environ: Mapping[str, str] | None = None,
    base: tuple[str, Layer] | None = None,
    only: frozenset[str] | None = None,
    fixed: frozenset[str] | None = None,
) -> ReactConfig:
    """Build the configuration from base (defaults, or ``base``) < file < environment < CLI overrides.

    ``base`` is ``(name, stored config dict)``, e.g. a checkpoint's configuration, named in errors
    by ``name``; its old key names are upgraded. With ``only``, the upper layers may change just
    those sections: a file or ``--set`` value elsewhere is an error naming its layer, while
    ``REACT_*`` variables of other sections are ignored (they are usually exported for training).
    ``fixed`` sections take their values from ``base``: an upper layer may repeat a value but one
    that differs is an error naming its layer (``react train-predictor``: the tokenizer section of
    the tokenizer checkpoint). Rules between settings are checked last (see the module docstring).
    """
    layers: list[tuple[str, Layer]] = []
    if base is not None:
        stored = upgrade_stored(base[1], base[0])
        _check_known_keys(stored, base[0])
        layers.append((base[0], stored))
    upper: list[tuple[str, Layer]] = []
    if path is not None:
        upper.append((str(path), read_toml(Path(path))))
    env = read_env(environ)
    if only is not None:
        env = {section: values for section, values in env.items() if section in only}
    upper.append(("environment", env))
    if overrides:
        _check_known_keys(overrides, "command line")
        upper.append(("command line", overrides))
    if only is not None:
        for name, layer in upper:
            for section, values in layer.items():
                if section not in only and values:
                    key = next(iter(values))
                    raise ReactError(
                        f"{name}: {section}.{key} cannot be changed here: it comes from "
                        f"{base[0] if base else DEFAULTS}; only {', '.join(f'{s}.*' for s in sorted(only))} "
                        "can be set"
                    )
    merged, origin = _merge(layers + upper)
    order = [DEFAULTS, *(name for name, _ in layers + upper)]
    context = {"origin": origin, "base": base[0] if base else None}
    try:
        cfg = ReactConfig.model_validate({name: merged.get(name, {}) for name in SECTIONS}, context=context)
    except ValidationError as exc:
        raise _config_error(exc, merged, origin, order) from None
    if fixed and base is not None:
        _check_fixed(cfg, fixed, base, origin)
    return cfg


def _config_error(
    exc: ValidationError, merged: Mapping[str, Mapping[str, Any]], origin: Mapping[tuple[str, str], str],
    order: list[str],
) -> ReactError:
    """The first problem as one line naming the layer: a bad value's, or for a broken rule the
    highest layer among the keys involved (the value set last), each key with its value and layer."""
    err = exc.errors()[0]
    broken = (err.get("ctx") or {}).get("error")
    if isinstance(broken, RuleError):
        def where(dotted: str) -> tuple[str, str, Any]:
            section, key = dotted.split(".", 1)
            layer = origin.get((section, key), DEFAULTS)
            value = merged.get(section, {}).get(key, SECTIONS[section].model_fields[key].default)
            return dotted, layer, value

        involved = [where(k) for k in broken.keys]
        source = max((layer for _, layer, _ in involved), key=order.index)
        detail = "; ".join(f"{k} = {v!r} from {_label(layer)}" for k, layer, v in involved)
        return ReactError(f"{source}: {broken.problem} ({detail})")
    section = str(err["loc"][0]) if err["loc"] else "?"
    key = str(err["loc"][1]) if len(err["loc"]) > 1 else "?"
    source = origin.get((section, key), "config")
    value = merged.get(section, {}).get(key)
    return ReactError(f"{source}: {section}.{key}: {err['msg']} (got {value!r})")


def _label(layer: str) -> str:
    return f"the {layer}" if layer in ("command line", "environment") else layer


def _check_fixed(
    cfg: ReactConfig, fixed: frozenset[str], base: tuple[str, Layer], origin: Mapping[tuple[str, str], str]
) -> None:
    """Every value of a ``fixed`` section must be the base layer's (an upper layer may only repeat it)."""
    stored = load_config(base=(base[0], {s: v for s, v in base[1].items() if s in fixed}), environ={},
                         only=frozenset())
    for section in sorted(fixed):
        want, got = getattr(stored, section).model_dump(), getattr(cfg, section).model_dump()
        for key, value in got.items():
            if value != want[key]:
                raise ReactError(
                    f"{origin.get((section, key), DEFAULTS)}: {section}.{key} = {value!r} differs from "
                    f"{want[key]!r} in {base[0]}; {section}.* comes from there (drop the setting, or train a new one)"
                )


def config_to_dict(cfg: ReactConfig) -> dict[str, Any]:
    """A JSON/TOML-friendly dict (paths as strings), used to store configs inside checkpoints."""
    return cfg.model_dump(mode="json")


def config_from_dict(data: Mapping[str, Any], name: str = "stored config") -> ReactConfig:
    """Rebuild a config stored by :func:`config_to_dict` (e.g. from a checkpoint), old key names included."""
    return load_config(base=(name, data), environ={}, only=frozenset())
