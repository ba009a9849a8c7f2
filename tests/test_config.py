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


def test_old_key_in_file_or_env_names_the_new_one(tmp_path: Path) -> None:
    with pytest.raises(ReactError, match=r"c\.toml: 'predictor\.context' is now called 'predictor\.context_frames'"):
        load_config(write(tmp_path, "[predictor]\ncontext = 64\n"), None, environ={})
    with pytest.raises(ReactError, match="REACT_TRAINING__PREDICTOR_WINDOW.*predictor_crop_frames"):
        load_config(None, None, environ={"REACT_TRAINING__PREDICTOR_WINDOW": "64"})
    with pytest.raises(ReactError, match="unknown config key 'data.num_workers'"):
        load_config(write(tmp_path, "[data]\nnum_workers = 4\n"), None, environ={})


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
