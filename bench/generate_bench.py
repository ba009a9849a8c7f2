"""Real-time factor of online generation on CPU: one 30 s reaction, tiny and paper presets, +/- KV cache.

RTF = clip seconds / wall seconds (> 1 is faster than real time). Random weights: speed does not
depend on training. The no-cache figure recomputes every stream from frame 0 at each step, the
reference the cache is measured against in the same run. Targets on 2 cores: tiny >= 20x,
paper >= 3x (with the cache).

    .venv/bin/python bench/generate_bench.py [--threads 2] [--skip-paper-nocache]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from reactcli.config import load_config
from reactcli.generate import generate_reactions
from reactcli.models.checkpoint import ReactionModel, build_models
from reactcli.models.layers import count_parameters

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FRAMES, FPS = 751, 25
AUDIO_DIM = {"tiny": 78, "paper": 512}  # MFCC+deltas / wav2vec2 conv features


def build(preset: str) -> ReactionModel:
    torch.manual_seed(0)
    cfg = load_config(CONFIGS / f"{preset}.toml", environ={})
    tokenizer, predictor = build_models(cfg, AUDIO_DIM[preset])
    valid = torch.zeros(predictor.vocab_size, dtype=torch.bool)
    valid[: tokenizer.codebook_size] = True
    return ReactionModel(cfg, tokenizer.eval(), predictor.eval(), valid, Path(f"{preset}-random"))


def rtf(model: ReactionModel, use_cache: bool, chunk: int | None) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    audio = rng.normal(size=(FRAMES, model.predictor.audio_dim)).astype(np.float32)
    face = rng.normal(size=(FRAMES, 58)).astype(np.float32) * 0.1
    emotion = rng.random(size=(FRAMES, 25)).astype(np.float32)
    t0 = time.perf_counter()
    generate_reactions(model, audio, face, emotion, samples=1, seed=0, use_cache=use_cache, chunk=chunk)
    wall = time.perf_counter() - t0
    return FRAMES / FPS / wall, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-paper-nocache", action="store_true", help="the slow reference run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"one {FRAMES / FPS:.2f} s reaction (K = 1), CPU, {args.threads} threads, random weights")
    print(f"{'preset':8s} {'params':>8s} {'input':>14s} {'KV cache':>9s} {'wall s':>8s} {'RTF':>8s}")
    for preset in ("tiny", "paper"):
        model = build(preset)
        params = count_parameters(model.predictor) + count_parameters(model.tokenizer)
        patch = model.predictor.cfg.patch
        chunks = f"{patch}-frame chunks"
        runs = [(True, patch, chunks), (True, 1, "frame by frame"), (False, patch, chunks)]
        for use_cache, chunk, label in runs:
            if preset == "paper" and not use_cache and args.skip_paper_nocache:
                continue
            if preset == "paper" and chunk == 1:
                continue  # per-frame steps on the 100M-parameter preset are a latency, not a throughput, mode
            factor, wall = rtf(model, use_cache, chunk)
            print(f"{preset:8s} {params / 1e6:7.1f}M {label:>14s} {'yes' if use_cache else 'no':>9s} "
                  f"{wall:8.2f} {factor:7.1f}x")


if __name__ == "__main__":
    main()
