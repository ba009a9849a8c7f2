"""Small MARS models and fast MARS training settings shared by the MARS test files.

A random model of ``configs/mars_tiny.toml``'s design at test sizes, with the gates of its
cross-modal blocks opened (at init they are closed, so the speaker would not reach the listener and
an online or conditioning test could pass for the wrong reason), saved as ``react train-predictor``
saves one. The condition a test is about (traits, history, EEG head) is switched on with
``extra`` overrides and made to matter with ``tweak``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from reactcli.config import ReactConfig, load_config, parse_overrides
from reactcli.data.features import audio_feature_dim
from reactcli.models.checkpoint import PREDICTOR_KIND, ReactionModel, build_models, predictor_payload, save_checkpoint

REPO = Path(__file__).resolve().parents[1]
MARS_TINY = REPO / "configs" / "mars_tiny.toml"

#: Test sizes of the MARS preset's design, for generation tests.
SMALL = [
    "tokenizer.dim=32", "tokenizer.depth=1", "tokenizer.decoder_depth=1", "tokenizer.heads=4",
    "predictor.dim=32", "predictor.heads=4", "predictor.context_frames=30", "predictor.dropout=0.0",
    "generation.samples=3",
]  # fmt: skip

#: Sizes and batches for a few seconds of MARS training; each file adds its step counts.
FAST = [
    "tokenizer.dim=32", "tokenizer.depth=1", "tokenizer.decoder_depth=1", "tokenizer.heads=4",
    "predictor.dim=32", "predictor.heads=4", "predictor.context_frames=48",
    "training.tokenizer_batch_size=8", "training.predictor_batch_size=4", "training.predictor_crop_frames=128",
    "training.log_every=2", "training.tokenizer_warmup_steps=2", "training.predictor_warmup_steps=2",
]  # fmt: skip


def random_mars_model(
    *extra: str, seed: int = 0, tweak: Callable[[torch.nn.Module], None] | None = None
) -> ReactionModel:
    """The small model with ``extra`` overrides on top of :data:`SMALL`; ``tweak(predictor)`` runs
    under ``no_grad`` after the gates are opened."""
    cfg: ReactConfig = load_config(MARS_TINY, parse_overrides([*SMALL, *extra]), environ={})
    torch.manual_seed(seed)
    tokenizer, predictor = build_models(cfg, audio_feature_dim(cfg.audio))
    with torch.no_grad():
        for module in predictor.modules():
            if hasattr(module, "alpha"):
                module.alpha.fill_(0.7)  # open gates: the speaker reaches the listener
        if tweak is not None:
            tweak(predictor)
    valid = torch.zeros(predictor.vocab_size, dtype=torch.bool)
    valid[: tokenizer.codebook_size] = True
    return ReactionModel(cfg, tokenizer.eval(), predictor.eval(), valid, Path("random.ckpt"))


def save_mars_model(path: Path, model: ReactionModel, edition: str = "2026", causal: bool = True) -> Path:
    """``model`` as train-predictor writes it (edition and audio causality recorded)."""
    payload = predictor_payload(model.config, model.tokenizer, model.predictor, model.valid_codes,
                                edition=edition, audio_causal=causal)
    save_checkpoint(path, PREDICTOR_KIND, payload)
    return path


def preprocessed_root(root: Path, write: Callable[[Path], object], *preprocess_args: str) -> Path:
    """``write(root)`` (a MARS release writer), then ``react preprocess`` with the MARS preset."""
    from conftest import run_cli

    write(root)
    assert run_cli(["preprocess", "--data", str(root), "--config", str(MARS_TINY), *preprocess_args]) == 0
    return root


def synthetic_release(root: Path, dyads: dict[str, int], sessions: int) -> Path:
    """A small synthetic 2026 release (recordings of 58-140 frames, no video), preprocessed."""
    from reactcli.data.synth_mars import make_mars_dataset

    def write(out: Path) -> None:
        make_mars_dataset(out, "2026", {"test": 0, **dyads}, sessions=sessions, frames=(58, 140), video="none")

    return preprocessed_root(root, write, "--device", "cpu")


def generate_set(checkpoint: Path, root: Path, out: Path, seed: int) -> Path:
    """``react generate`` of the val split into ``out/pred`` and ``out/results.pt`` (3 clips a batch)."""
    from conftest import run_cli

    args = ["generate", "--checkpoint", str(checkpoint), "--data", str(root), "--split", "val", "--out",
            str(out / "pred"), "--results-pt", str(out / "results.pt"), "--seed", str(seed), "--batch-clips", "3"]
    assert run_cli(args) == 0
    return out
