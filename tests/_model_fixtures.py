"""Fixtures for the model tests: tiny random models and one tiny trained run (built once per session).

Import the fixtures you need into a test module (``from _model_fixtures import trained_run``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reactcli.config import ReactConfig, load_config
from reactcli.models.checkpoint import ReactionModel, build_models

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.toml"

# Small enough for a few seconds of CPU training, same architecture as the presets.
FAST = [
    "tokenizer.dim=32", "tokenizer.depth=1", "tokenizer.decoder_depth=1", "tokenizer.heads=4",
    "predictor.dim=32", "predictor.heads=4", "predictor.self_depth=1", "predictor.cross_depth=1",
    "predictor.context_frames=32", "predictor.patch=8",
    "training.tokenizer_max_steps=12", "training.predictor_max_steps=8", "training.tokenizer_batch_size=16",
    "training.predictor_batch_size=4", "training.predictor_crop_frames=48", "training.val_every=4",
    "training.tokenizer_warmup_steps=2", "training.predictor_warmup_steps=2",
]


def set_args() -> list[str]:
    return [arg for item in FAST for arg in ("--set", item)]


def run_cli(*args: str) -> None:
    from reactcli.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise AssertionError(f"react {' '.join(map(str, args))} exited with {exc.code}") from None


def random_model(
    audio_dim: int = 10, patch: int = 4, context: int = 16, seed: int = 0, smoothing: float = 0.0,
    emotion_skip: int = 0, linear_dims: str = "none", valid_emotion: bool = False,
    emotion_head: bool = True,
) -> ReactionModel:
    """A random tokenizer + predictor with open gates (alpha != 0) so cross-attention matters."""
    torch.manual_seed(seed)
    cfg = load_config(None, {
        "generation": {"smoothing": smoothing, "valid_emotion": valid_emotion},
        "tokenizer": {"dim": 32, "depth": 2, "decoder_depth": 2, "heads": 4, "window_frames": 8, "dropout": 0.0},
        "predictor": {"dim": 32, "heads": 4, "self_depth": 2, "cross_depth": 2, "context_frames": context,
                      "patch": patch, "dropout": 0.0, "emotion_skip": emotion_skip, "emotion_head": emotion_head,
                      "linear_emotion_dims": linear_dims},
    }, environ={})
    tokenizer, predictor = build_models(cfg, audio_dim)
    for module in predictor.modules():
        if hasattr(module, "alpha"):
            module.alpha.data.fill_(0.7)
    if predictor.emotion_skip is not None:
        torch.nn.init.normal_(predictor.emotion_skip.weight, std=0.3)  # trained weights are not 0 either
    valid = torch.zeros(predictor.vocab_size, dtype=torch.bool)
    valid[: tokenizer.codebook_size] = True
    return ReactionModel(cfg, tokenizer.eval(), predictor.eval(), valid, Path("random.ckpt"))


@pytest.fixture(scope="session")
def trained_run(preprocessed_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tokenizer.ckpt, predictor.ckpt and predictor_last.ckpt trained for a few steps on synth_root."""
    out = tmp_path_factory.mktemp("run")
    run_cli("train-tokenizer", "--config", TINY, "--data", preprocessed_root, "--out", out, "--device", "cpu",
            *set_args())
    run_cli("train-predictor", "--config", TINY, "--data", preprocessed_root, "--tokenizer", out / "tokenizer.ckpt",
            "--out", out, "--device", "cpu", *set_args())
    return out


def fast_config() -> ReactConfig:
    """configs/tiny.toml with the FAST overrides (the dataset root is not a setting: each stage
    takes it as an argument)."""
    from reactcli.config import parse_overrides

    return load_config(TINY, parse_overrides(FAST), environ={})
