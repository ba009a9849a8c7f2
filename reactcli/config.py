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

Keys renamed since earlier versions are listed in :data:`RENAMED`: a config file that still uses an
old name gets an error naming the new one, and a configuration stored in a checkpoint is upgraded
when it is read (:func:`config_from_dict`), so checkpoints written before the rename keep loading.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reactcli.errors import ReactError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENV_PREFIX = "REACT_"
ENV_DELIMITER = "__"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Section):
    """Where the preprocessing cache and face statistics live, and which splits are used.

    The dataset root itself is not a setting: every command takes it as ``--data`` and passes it on
    as an argument, so it travels one way only.
    """

    cache_dir: Path | None = Field(
        default=None, description="feature/statistics cache; default <root>/.react_cache"
    )
    mean_face: Path | None = Field(
        default=None, description="(58,) mean 3DMM .npy; default: the train mean computed by preprocess"
    )
    std_face: Path | None = Field(default=None, description="(58,) std 3DMM .npy; default: from preprocess")
    splits: list[Literal["train", "val", "test"]] = ["train", "val"]


class AudioConfig(Section):
    """Speaker audio front end; features are computed once by ``react preprocess``."""

    encoder: Literal["mfcc", "logmel", "wav2vec2"] = "mfcc"
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
    normalize_std: bool = Field(default=False, description="divide by std_face as well as subtract mean")


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
    speaker_emotion_dims: Literal["none", "valence_arousal", "all"] = Field(
        default="none",
        description="emotion dims the head reads from the speaker memory alone (no listener history)",
    )
    linear_emotion_dims: Literal["none", "valence_arousal", "valence_arousal_expressions"] = Field(
        default="none",
        description="emotion dims given by the fixed linear path alone, no learned residual (needs emotion_skip)",
    )


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
    select_by: Literal["val_loss", "unheard_emotion"] = Field(
        default="val_loss",
        description="best checkpoint by teacher-forced val loss, or by the emotion MSE with no listener history",
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
    tensorboard: bool = Field(default=False, description="also write TensorBoard events under <out>/tb/")


class GenerationConfig(Section):
    samples: int = Field(default=10, ge=1)
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
    valid_emotion: bool = Field(
        default=False,
        description="project each emitted emotion frame onto the valid set (AUs and valence/arousal in range, "
        "expression probabilities summing to 1)",
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


SECTIONS: dict[str, type[Section]] = {
    name: field.annotation  # type: ignore[misc]
    for name, field in ReactConfig.model_fields.items()
}

# (section, old key) -> new key: names changed so that each window says what it is.
RENAMED: dict[tuple[str, str], str] = {
    ("tokenizer", "window"): "window_frames",
    ("predictor", "context"): "context_frames",
    ("training", "predictor_window"): "predictor_crop_frames",
}
# Keys that no code read (or, for data.root, that travelled twice): dropped from stored configs.
REMOVED: frozenset[tuple[str, str]] = frozenset({("data", "root"), ("data", "window_frames"), ("data", "num_workers")})

Layer = Mapping[str, Mapping[str, Any]]


def _check_known_keys(data: Mapping[str, Any], origin: str) -> None:
    for section, values in data.items():
        if section not in SECTIONS:
            raise ReactError(f"{origin}: unknown config section '{section}' (known: {', '.join(SECTIONS)})")
        if not isinstance(values, Mapping):
            raise ReactError(f"{origin}: '{section}' must be a table of settings, got {values!r}")
        fields = SECTIONS[section].model_fields
        for key in values:
            if (section, key) in RENAMED:
                raise ReactError(f"{origin}: '{section}.{key}' is now called '{section}.{RENAMED[section, key]}'")
            if key not in fields:
                raise ReactError(
                    f"{origin}: unknown config key '{section}.{key}' (known in [{section}]: {', '.join(fields)})"
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


def read_env(environ: Mapping[str, str] | None = None) -> dict[str, dict[str, str]]:
    """Collect ``REACT_SECTION__KEY`` variables; an unknown one is an error naming the variable."""
    environ = os.environ if environ is None else environ
    found: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.upper().startswith(ENV_PREFIX) or ENV_DELIMITER not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition(ENV_DELIMITER)
        if (section, key) in RENAMED:
            raise ReactError(f"environment variable {name}: '{section}.{key}' is now called "
                             f"'{section}.{RENAMED[section, key]}'")
        if section not in SECTIONS or key not in SECTIONS[section].model_fields:
            raise ReactError(f"environment variable {name}: no such setting '{section}.{key}'")
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


def upgrade_stored(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A stored configuration with renamed keys under their new names and removed keys dropped."""
    out: dict[str, dict[str, Any]] = {}
    for section, values in data.items():
        if not isinstance(values, Mapping):
            out[section] = values  # type: ignore[assignment]  # reported by _check_known_keys
            continue
        out[section] = {
            RENAMED.get((section, key), key): value for key, value in values.items() if (section, key) not in REMOVED
        }
    return out


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
) -> ReactConfig:
    """Build the configuration from base (defaults, or ``base``) < file < environment < CLI overrides.

    ``base`` is ``(name, stored config dict)``, e.g. a checkpoint's configuration, named in errors
    by ``name``; its old key names are upgraded. With ``only``, the upper layers may change just
    those sections: a file or ``--set`` value elsewhere is an error naming its layer, while
    ``REACT_*`` variables of other sections are ignored (they are usually exported for training).
    """
    layers: list[tuple[str, Layer]] = []
    if base is not None:
        stored = upgrade_stored(base[1])
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
                        f"{base[0] if base else 'the defaults'}; only {', '.join(f'{s}.*' for s in sorted(only))} "
                        "can be set"
                    )
    merged, origin = _merge(layers + upper)
    return ReactConfig.model_construct(
        **{name: _validate_section(name, merged.get(name, {}), origin) for name in SECTIONS}
    )


def _validate_section(name: str, values: Mapping[str, Any], origin: Mapping[tuple[str, str], str]) -> Section:
    try:
        return SECTIONS[name].model_validate(dict(values))
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else "?"
        source = origin.get((name, key), "config")
        raise ReactError(f"{source}: {name}.{key}: {err['msg']} (got {values.get(key)!r})") from None


def config_to_dict(cfg: ReactConfig) -> dict[str, Any]:
    """A JSON/TOML-friendly dict (paths as strings), used to store configs inside checkpoints."""
    return cfg.model_dump(mode="json")


def config_from_dict(data: Mapping[str, Any], name: str = "stored config") -> ReactConfig:
    """Rebuild a config stored by :func:`config_to_dict` (e.g. from a checkpoint), old key names included."""
    return load_config(base=(name, data), environ={}, only=frozenset())
