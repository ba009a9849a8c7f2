"""Config precedence (flag > env > file > default) and unknown-key errors that name the key and file."""

from __future__ import annotations

from pathlib import Path

import pytest

from reactcli.config import ReactConfig, config_from_dict, config_to_dict, load_config, parse_overrides
from reactcli.errors import ReactError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_defaults_without_file() -> None:
    cfg = load_config(None, None, environ={})
    assert cfg.tokenizer.levels == [8, 5, 5, 5]
    assert cfg.audio.encoder == "mfcc"


def test_precedence_flag_over_env_over_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[tokenizer]\ndim = 16\ndepth = 3\nheads = 2\n[generation]\ntop_k = 7\n")
    env = {"REACT_TOKENIZER__DIM": "32", "REACT_TOKENIZER__DEPTH": "5"}
    cfg = load_config(path, parse_overrides(["tokenizer.dim=64"]), environ=env)
    assert cfg.tokenizer.dim == 64  # flag beats env and file
    assert cfg.tokenizer.depth == 5  # env beats file
    assert cfg.tokenizer.heads == 2  # file beats default
    assert cfg.generation.top_k == 7
    assert cfg.tokenizer.decoder_depth == ReactConfig().tokenizer.decoder_depth  # default


def test_unknown_key_in_file_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[tokenizer]\ndimm = 16\n")
    with pytest.raises(ReactError, match=r"c\.toml.*tokenizer\.dimm"):
        load_config(path, None, environ={})


def test_unknown_section_in_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[tokeniser]\ndim = 16\n")
    with pytest.raises(ReactError, match=r"c\.toml.*tokeniser"):
        load_config(path, None, environ={})


def test_unknown_env_variable_is_named() -> None:
    with pytest.raises(ReactError, match="REACT_PREDICTOR__DEPHT"):
        load_config(None, None, environ={"REACT_PREDICTOR__DEPHT": "3"})


def test_unknown_set_override() -> None:
    with pytest.raises(ReactError, match="generation.topk"):
        parse_overrides(["generation.topk=3"])
    with pytest.raises(ReactError, match="section.key=value"):
        parse_overrides(["top_k=3"])


def test_bad_value_names_source_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[generation]\ntemperature = -1.0\n")
    with pytest.raises(ReactError, match=r"c\.toml: generation\.temperature"):
        load_config(path, None, environ={})
    with pytest.raises(ReactError, match=r"environment: audio\.encoder"):
        load_config(None, None, environ={"REACT_AUDIO__ENCODER": "mp3"})


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ReactError, match="not valid TOML"):
        load_config(write(tmp_path, "[tokenizer\n"), None, environ={})
    with pytest.raises(ReactError, match="config file not found"):
        load_config(tmp_path / "nope.toml", None, environ={})


@pytest.mark.parametrize("preset", sorted(p.name for p in CONFIGS.glob("*.toml")))
def test_presets_load(preset: str) -> None:
    cfg = load_config(CONFIGS / preset, None, environ={})
    assert cfg.tokenizer.dim % cfg.tokenizer.heads == 0
    assert cfg.predictor.dim % cfg.predictor.heads == 0


def test_round_trip_through_dict() -> None:
    cfg = load_config(None, parse_overrides(["predictor.dim=48", "data.cache_dir='/x'"]), environ={})
    again = config_from_dict(config_to_dict(cfg))
    assert again == cfg
    assert str(again.data.cache_dir) == "/x"


def test_stored_config_with_old_key_names_is_upgraded() -> None:
    """Checkpoints written before the window renames (and with the dropped data keys) still load."""
    stored = config_to_dict(load_config(None, None, environ={}))
    stored["tokenizer"]["window"] = stored["tokenizer"].pop("window_frames") * 2
    stored["predictor"]["context"] = 100
    del stored["predictor"]["context_frames"]
    stored["training"]["predictor_window"] = stored["training"].pop("predictor_crop_frames") + 1
    stored["data"].update(root="/data", window_frames=160, num_workers=0)
    cfg = config_from_dict(stored)
    assert cfg.tokenizer.window_frames == 64 and cfg.predictor.context_frames == 100
    assert cfg.training.predictor_crop_frames == 289 and "root" not in config_to_dict(cfg)["data"]


def test_normalize_std_became_the_normalization_rule(tmp_path: Path) -> None:
    """``tokenizer.normalize_std`` (a boolean) became ``tokenizer.normalization``, one of the
    organisers' two rules: stored configs are upgraded value by value, a file gets the new spelling."""
    for old, new in ((False, "zero_center"), (True, "standard")):
        stored = config_to_dict(load_config(None, None, environ={}))
        del stored["tokenizer"]["normalization"]
        stored["tokenizer"]["normalize_std"] = old
        assert config_from_dict(stored).tokenizer.normalization == new
    with pytest.raises(ReactError, match=r"c\.toml: 'tokenizer\.normalize_std' is now called "
                                         r"'tokenizer\.normalization' = 'standard'"):
        load_config(write(tmp_path, "[tokenizer]\nnormalize_std = true\n"), None, environ={})
    with pytest.raises(ReactError, match="tokenizer.normalization: Input should be 'zero_center' or 'standard'"):
        load_config(None, parse_overrides(["tokenizer.normalization='minmax'"]), environ={})


def test_packaged_face_stats_exclude_the_statistics_files(tmp_path: Path) -> None:
    with pytest.raises(ReactError, match=r"data\.face_stats = 'react2024' takes both statistics from the package"):
        load_config(None, parse_overrides(["data.face_stats='react2024'", "data.mean_face='m.npy'"]), environ={})
    assert load_config(None, parse_overrides(["data.mean_face='m.npy'"]), environ={}).data.face_stats == "train"


def test_old_key_in_file_or_env_names_the_new_one(tmp_path: Path) -> None:
    with pytest.raises(ReactError, match=r"c\.toml: 'predictor\.context' is now called 'predictor\.context_frames'"):
        load_config(write(tmp_path, "[predictor]\ncontext = 64\n"), None, environ={})
    with pytest.raises(ReactError, match="REACT_TRAINING__PREDICTOR_WINDOW.*predictor_crop_frames"):
        load_config(None, None, environ={"REACT_TRAINING__PREDICTOR_WINDOW": "64"})
    with pytest.raises(ReactError, match="'data.num_workers' was removed: no code read it"):
        load_config(write(tmp_path, "[data]\nnum_workers = 4\n"), None, environ={})
    with pytest.raises(ReactError, match="'data.splits' was removed: .*both stages validate on val"):
        load_config(write(tmp_path, "[data]\nsplits = ['train']\n"), None, environ={})
    with pytest.raises(ReactError, match="--set: training.select_by = 'unheard_emotion' is now called "
                                         "'val_unheard_mse'"):
        load_config(None, parse_overrides(["training.select_by='unheard_emotion'"]), environ={})


def test_base_layer_with_only_some_sections_changeable(tmp_path: Path) -> None:
    """``react generate``: the checkpoint's config is the base; only generation.* may change, and a
    refused or bad value names its layer."""
    stored = config_to_dict(load_config(None, parse_overrides(["predictor.dim=48", "generation.top_k=5"]), environ={}))
    only = frozenset({"generation"})
    env = {"REACT_GENERATION__TEMPERATURE": "0.5", "REACT_PREDICTOR__DIM": "96"}  # the second is ignored
    cfg = load_config(None, parse_overrides(["generation.samples=3"]), environ=env, base=("run/p.ckpt", stored),
                      only=only)
    assert (cfg.predictor.dim, cfg.generation.top_k, cfg.generation.temperature, cfg.generation.samples) == (
        48, 5, 0.5, 3)
    with pytest.raises(ReactError, match=r"command line: predictor\.dim cannot be changed here: it comes from "
                                         r"run/p\.ckpt; only generation\.\* can be set"):
        load_config(None, parse_overrides(["predictor.dim=64"]), environ={}, base=("run/p.ckpt", stored), only=only)
    with pytest.raises(ReactError, match=r"command line: generation\.top_k"):
        load_config(None, parse_overrides(["generation.top_k=0"]), environ={}, base=("run/p.ckpt", stored), only=only)
    with pytest.raises(ReactError, match=r"environment: generation\.temperature"):
        load_config(None, None, environ={"REACT_GENERATION__TEMPERATURE": "-1"}, base=("run/p.ckpt", stored),
                    only=only)
    stored["predictor"]["dim"] = "wide"
    with pytest.raises(ReactError, match=r"run/p\.ckpt: predictor\.dim"):
        load_config(None, None, environ={}, base=("run/p.ckpt", stored), only=only)


def test_unknown_key_suggests_the_nearest(tmp_path: Path) -> None:
    with pytest.raises(ReactError, match=r"unknown config key 'training.predictor_max_step' \(did you mean "
                                         r"'predictor_max_steps'\?\)"):
        load_config(write(tmp_path, "[training]\npredictor_max_step = 5\n"), None, environ={})


@pytest.mark.parametrize(("name", "nearest"), [
    ("REACT_TRAINING_PREDICTOR_MAX_STEPS", "REACT_TRAINING__PREDICTOR_MAX_STEPS"),  # one underscore
    ("REACT_GENERATON_SAMPLES", "REACT_GENERATION__SAMPLES"),  # a typo in the section, one underscore
    ("REACT_TRAINNG__PREDICTOR_MAX_STEPS", "REACT_TRAINING__PREDICTOR_MAX_STEPS"),  # unknown section
    ("react_training__predictor_max_stepz", "REACT_TRAINING__PREDICTOR_MAX_STEPS"),  # lower case, typo
])
def test_unknown_settings_variable_names_itself_and_the_nearest_setting(name: str, nearest: str) -> None:
    """Issue 26: a misspelt REACT_* variable was silently ignored; it is an error naming the nearest
    real variable, also where only some sections may change (``react generate``)."""
    for only in (None, frozenset({"generation"})):
        with pytest.raises(ReactError, match=rf"environment variable {name}: no such setting.*did you mean {nearest}"):
            load_config(None, None, environ={name: "5"}, only=only)


def test_other_react_variables_are_left_alone() -> None:
    """The REACT_ prefix is shared with React's tooling and our browser test's switch: those are not ours."""
    env = {"REACT_APP_API_URL": "http://x", "REACT_EDITOR": "code", "REACT_NATIVE_PACKAGER_HOSTNAME": "h",
           "REACT_UPDATE_SCREENSHOT": "1", "REACT_GENERATION__SAMPLES": "3"}
    assert load_config(None, None, environ=env).generation.samples == 3


def test_rules_between_settings_name_every_layer(tmp_path: Path) -> None:
    """A contradiction is an error at load: the layer that set a value last is named first, and
    every key the rule involves is listed with its value and layer."""
    path = write(tmp_path, "[predictor]\nemotion_skip = 8\nlinear_emotion_dims = 'valence_arousal'\n")
    assert load_config(path, None, environ={}).predictor.linear_emotion_dims == "valence_arousal"
    with pytest.raises(ReactError, match=r"^command line: predictor\.linear_emotion_dims takes .* needs "
                                         r"predictor\.emotion_head = true and predictor\.emotion_skip > 0 "
                                         r"\(predictor\.linear_emotion_dims = 'valence_arousal' from .*c\.toml; "
                                         r"predictor\.emotion_head = True from the defaults; "
                                         r"predictor\.emotion_skip = 0 from the command line\)$"):
        load_config(path, parse_overrides(["predictor.emotion_skip=0"]), environ={})
    with pytest.raises(ReactError, match=r"^environment: predictor\.emotion_skip adds .* needs "
                                         r"predictor\.emotion_head = true"):
        load_config(None, None, environ={"REACT_PREDICTOR__EMOTION_HEAD": "false",
                                         "REACT_PREDICTOR__EMOTION_SKIP": "4"})
    for setting, message in (
        ("training.select_by='val_unheard_mse'", "training.select_by = 'val_unheard_mse' scores the emotion head"),
        ("generation.emotion_residual_scale=0.5", "generation.emotion_residual_scale shrinks"),
    ):
        with pytest.raises(ReactError, match=rf"^command line: {message}"):
            load_config(None, parse_overrides(["predictor.emotion_head=false", setting]), environ={})
    with pytest.raises(ReactError, match=r"^command line: predictor\.dim \(36\) must split into predictor\.heads "
                                         r"\(12\) heads of an even width"):
        load_config(None, parse_overrides(["predictor.dim=36"]), environ={})
    with pytest.raises(ReactError, match=r"c\.toml: tokenizer\.dim \(30\) must be a multiple of tokenizer\.heads"):
        load_config(write(tmp_path, "[tokenizer]\ndim = 30\nheads = 4\n"), None, environ={})


def test_a_stored_config_is_not_refused_for_its_own_contradictions() -> None:
    """A rule broken by the stored values alone (a run trained before the rule existed, when the knob
    was silently ignored) still loads; a value from an upper layer that breaks a rule does not."""
    stored = config_to_dict(load_config(None, None, environ={}))
    stored["predictor"].update(emotion_head=False, emotion_skip=40)
    stored["training"]["select_by"] = "unheard_emotion"  # the old spelling, upgraded
    cfg = load_config(base=("run/p.ckpt", stored), environ={}, only=frozenset({"generation"}))
    assert (cfg.predictor.emotion_skip, cfg.training.select_by) == (40, "val_unheard_mse")
    with pytest.raises(ReactError, match=r"^command line: generation\.emotion_residual_scale shrinks .*"
                                         r"predictor\.emotion_head = False from run/p\.ckpt"):
        load_config(None, parse_overrides(["generation.emotion_residual_scale=0.5"]), environ={},
                    base=("run/p.ckpt", stored), only=frozenset({"generation"}))


def test_retired_knob_loads_when_off_and_is_refused_when_used(tmp_path: Path) -> None:
    """``predictor.speaker_emotion_dims`` lost (docs/quality.md): a checkpoint that left it "none"
    loads, one that used it says it cannot be rebuilt, a config file that sets it is told why."""
    stored = config_to_dict(load_config(None, None, environ={}))
    stored["predictor"]["speaker_emotion_dims"] = "none"
    stored["data"]["splits"] = ["train", "val"]  # removed key: dropped
    assert config_from_dict(stored) == load_config(None, None, environ={})
    stored["predictor"]["speaker_emotion_dims"] = "valence_arousal"
    with pytest.raises(ReactError, match=r"^old\.ckpt: predictor\.speaker_emotion_dims = 'valence_arousal' is a "
                                         r"retired knob \(.*\); this version cannot rebuild a model trained with it"):
        config_from_dict(stored, "old.ckpt")
    with pytest.raises(ReactError, match=r"c\.toml: 'predictor\.speaker_emotion_dims' was retired: .*quality\.md"):
        load_config(write(tmp_path, "[predictor]\nspeaker_emotion_dims = 'none'\n"), None, environ={})


def test_fixed_section_may_be_repeated_not_changed(tmp_path: Path) -> None:
    """``react train-predictor``: tokenizer.* is the tokenizer checkpoint's; a layer may repeat a
    value (the same preset for both stages) but a different one names the layer and the key."""
    stored = {"tokenizer": config_to_dict(load_config(CONFIGS / "tiny.toml", None, environ={}))["tokenizer"]}
    base, fixed = ("run/tokenizer.ckpt", stored), frozenset({"tokenizer"})
    assert load_config(None, None, environ={}, base=base, fixed=fixed).tokenizer.dim == 64  # not the default 252
    assert load_config(CONFIGS / "tiny.toml", None, environ={}, base=base, fixed=fixed).tokenizer.dim == 64
    with pytest.raises(ReactError, match=r"^command line: tokenizer\.depth = 3 differs from 2 in run/tokenizer\.ckpt"):
        load_config(None, parse_overrides(["tokenizer.depth=3"]), environ={}, base=base, fixed=fixed)
    with pytest.raises(ReactError, match=r"paper\.toml: tokenizer\.dim = 252 differs from 64 in run/tokenizer\.ckpt"):
        load_config(CONFIGS / "paper.toml", None, environ={}, base=base, fixed=fixed)


def test_valid_emotion_is_on_by_default_and_in_the_presets() -> None:
    assert load_config(None, None, environ={}).generation.valid_emotion
    for preset in CONFIGS.glob("*.toml"):
        assert load_config(preset, None, environ={}).generation.valid_emotion, preset.name
