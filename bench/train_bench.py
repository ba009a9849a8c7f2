"""Training speed, two ways.

1. **Synthetic timing** (``time_training``, what ``bench/gpu_bench.py``'s training section runs): one
   preset's tokenizer or predictor with random weights on random data made on the spot, trained
   through the stages' own step functions and loop (``predictor_steps`` / ``tokenizer_steps``,
   ``run_loop``) on any device: frames/s, ms per step and MFU from ``training/flops.py``; also the
   host syncs per step (CUDA) and which attention calls a fused kernel may take.

2. **Before/after on the CPU** (this script's command line): the demo's two training stages run by
   two source trees, alternating, on the same preprocessed data, with the wall time of each
   command, the loop's frames/s from its log, and whether the two trees' checkpoints are equal bit
   for bit::

       git archive <old commit> | tar -x -C /tmp/before
       .venv/bin/python bench/train_bench.py --before /tmp/before --after . --data runs/demo/data \\
           --rounds 2 --threads 1

   (``--data``: a root after ``react synth`` and ``react preprocess``.)
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from reactcli.config import ReactConfig, load_config
from reactcli.models.checkpoint import build_models
from reactcli.training.corpus import WindowBatches, corpus_device
from reactcli.training.ddp import DistContext
from reactcli.training.flops import peak_flops, predictor_step_flops, tokenizer_step_flops
from reactcli.training.loop import LoopConfig, autocast, compiled, run_loop
from reactcli.training.predictor_stage import emotion_weights, predictor_steps
from reactcli.training.schedule import make_optimizer, make_scheduler
from reactcli.training.tokenizer_stage import tokenizer_steps

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
AUDIO_DIM = {"tiny": 78, "paper": 512}  # MFCC+deltas / wav2vec2 conv features
CLIP_FRAMES = 751


def preset_config(preset: str, batch: int | None = None, stage: str = "predictor") -> ReactConfig:
    """The preset's settings, with the stage's batch size replaced by ``batch`` when given."""
    cfg = load_config(CONFIGS / f"{preset}.toml", environ={})
    if batch is not None:
        key = "predictor_batch_size" if stage == "predictor" else "tokenizer_batch_size"
        cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={key: batch})})
    return cfg


def synthetic_corpus(stage: str, audio_dim: int, clips: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    """Stacked random clips of the dataset's length with the arrays the stage windows (speed does not
    depend on their content)."""
    g = torch.Generator().manual_seed(seed)
    shape = (clips, CLIP_FRAMES)
    if stage == "tokenizer":
        return {"listener_3dmm": torch.randn(*shape, 58, generator=g) * 0.1,
                "listener_emotion": torch.rand(*shape, 25, generator=g)}
    return {"speaker_audio": torch.randn(*shape, audio_dim, generator=g),
            "speaker_emotion": torch.rand(*shape, 25, generator=g),
            "speaker_tokens": torch.randint(0, 1000, shape, generator=g),
            "listener_tokens": torch.randint(0, 1000, shape, generator=g),
            "listener_emotion": torch.rand(*shape, 25, generator=g)}


@dataclass
class Trainer:
    """One stage ready to step: the model, its step function, optimiser and the loop's sizes."""

    cfg: ReactConfig
    stage: str
    model: torch.nn.Module
    loss_at: object
    optimizer: torch.optim.Optimizer
    scheduler: object
    frames_per_step: int
    flops_per_step: int
    device: torch.device


def make_trainer(preset: str, stage: str, device: torch.device, batch: int | None = None, compile: bool = False,
                 aligned: bool | None = None) -> Trainer:
    """A stage of ``preset`` with random weights (seed 0) on a synthetic corpus kept on ``device``."""
    cfg = preset_config(preset, batch, stage)
    torch.manual_seed(0)
    tokenizer, predictor = build_models(cfg, AUDIO_DIM[preset])
    corpus = synthetic_corpus(stage, AUDIO_DIM[preset])
    tc = cfg.training
    if stage == "tokenizer":
        model = tokenizer.to(device)
        window, size = cfg.tokenizer.window_frames, tc.tokenizer_batch_size
        batches = WindowBatches(corpus, window, size, 0, device=corpus_device(corpus, device))
        loss_at = tokenizer_steps(compiled(model, compile), batches, device, emotion_from=10**9, aligned=aligned)
        flops = tokenizer_step_flops(cfg, emotion_only=False)
    else:
        model = predictor.to(device)
        window, size = tc.predictor_crop_frames, tc.predictor_batch_size
        windows = WindowBatches(corpus, window, size, 0, device=corpus_device(corpus, device))
        valid = torch.ones(model.vocab_size, dtype=torch.bool)
        loss_at = predictor_steps(model, compiled(model, compile), windows, cfg, device, valid,
                                  emotion_weights(tc.valence_arousal_weight).to(device), aligned)
        flops = predictor_step_flops(cfg, AUDIO_DIM[preset])
    optimizer = make_optimizer(model, 1e-4, tc.weight_decay, tc.betas, device)
    scheduler = make_scheduler(optimizer, 1, 10**6)
    return Trainer(cfg, stage, model, loss_at, optimizer, scheduler, window * size, flops, device)


def run_steps(trainer: Trainer, start: int, stop: int) -> float:
    """Train steps start..stop-1 through the stages' loop (one log row, at the end); wall seconds
    until the device has finished them."""
    ctx = DistContext(0, 1, 0, trainer.device)
    loop = LoopConfig(f"{trainer.stage} steps", stop, start, 1.0, 10**9, 10**9, 0)
    sync(trainer.device)
    t0 = time.perf_counter()
    run_loop(loop, ctx, trainer.model, trainer.optimizer, trainer.scheduler, trainer.loss_at)
    sync(trainer.device)
    return time.perf_counter() - t0


@dataclass
class TrainTiming:
    preset: str
    stage: str
    batch: int
    frames_per_step: int
    compiled: bool
    steps: int
    first_seconds: float  # the warm-up steps (with compile: the compile)
    seconds: float  # the timed steps
    flops_per_step: int
    peak: float | None

    @property
    def step_ms(self) -> float:
        return 1000 * self.seconds / self.steps

    @property
    def frames_per_s(self) -> float:
        return self.frames_per_step * self.steps / self.seconds

    @property
    def mfu(self) -> float | None:
        return self.flops_per_step * self.steps / self.seconds / self.peak if self.peak else None


def time_training(preset: str, stage: str, device: torch.device, batch: int | None = None, compile: bool = False,
                  steps: int = 10, warmup: int = 3, peak_tflops: float | None = None) -> TrainTiming:
    trainer = make_trainer(preset, stage, device, batch, compile)
    first = run_steps(trainer, 0, warmup)
    seconds = run_steps(trainer, warmup, warmup + steps)
    tc = trainer.cfg.training
    size = tc.tokenizer_batch_size if stage == "tokenizer" else tc.predictor_batch_size
    timing = TrainTiming(preset, stage, size, trainer.frames_per_step, compile, steps, first, seconds,
                         trainer.flops_per_step, peak_flops(device, peak_tflops))
    release(trainer)
    return timing


def count_syncs(preset: str, stage: str, device: torch.device, steps: int = 8) -> int:
    """Host-device synchronisations in ``steps`` steps with one log row (CUDA's sync debug mode):
    the loop reads the device once per row, so a count near ``steps`` or above means a per-step wait."""
    trainer = make_trainer(preset, stage, device)
    run_steps(trainer, 0, 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run_steps(trainer, 2, 2 + steps)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    release(trainer)
    return sum("synchroniz" in str(w.message) for w in caught)


def attention_calls(preset: str, stage: str, device: torch.device, batch: int = 2) -> list[dict]:
    """Every scaled_dot_product_attention call of one training step in its CUDA form (under the
    loop's autocast), with whether a fused kernel may take it: on CUDA torch's own checks (flash,
    memory-efficient, cuDNN); elsewhere the flash rules that depend on the call (no mask; with
    is_causal as many queries as keys; head dim <= 256)."""
    trainer = make_trainer(preset, stage, device, batch, aligned=True)
    calls: list[dict] = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, **kw):  # noqa: ANN001, ANN202
        calls.append({"work": q.shape[0] * q.shape[2] * k.shape[2], "fused": fused_eligible(q, k, v, attn_mask,
                                                                                            is_causal)})
        return real(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, **kw)

    F.scaled_dot_product_attention = spy
    try:
        with torch.no_grad(), autocast(device):
            trainer.loss_at(0)
    finally:
        F.scaled_dot_product_attention = real
    release(trainer)
    return calls


def fused_eligible(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                   is_causal: bool) -> bool:
    if q.is_cuda:
        from torch.backends.cuda import (
            SDPAParams,
            can_use_cudnn_attention,
            can_use_efficient_attention,
            can_use_flash_attention,
        )

        params = SDPAParams(q, k, v, mask, 0.0, is_causal, False)
        return can_use_flash_attention(params) or can_use_efficient_attention(params) or \
            can_use_cudnn_attention(params)
    return mask is None and q.shape[-1] <= 256 and (not is_causal or q.shape[2] == k.shape[2])


def aligned_parity(preset: str, device: torch.device, batch: int = 2, steps: int = 3) -> float:
    """Largest relative difference between the loss of the CPU step form and of the CUDA form
    (truncated rows moved to the front, mask-free attention) on the same batches, in float32
    without dropout."""
    worst = 0.0
    losses = []
    for aligned in (False, True):
        trainer = make_trainer(preset, "predictor", device, batch, aligned=aligned)
        trainer.model.eval()
        with torch.no_grad():
            losses.append([trainer.loss_at(step)[0].double() for step in range(steps)])
        release(trainer)
    for a, b in zip(*losses, strict=True):
        worst = max(worst, float((a - b).abs() / a.abs()))
    return worst


def release(trainer: Trainer) -> None:
    if trainer.device.type == "cuda":
        del trainer.model, trainer.optimizer, trainer.loss_at
        torch.cuda.empty_cache()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- before/after on the CPU ----------------------------------------------------------------------
def _react(tree: Path, threads: int, *args: str) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, of the child) of one ``react`` command run from ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": str(threads)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "reactcli.cli", *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"react {' '.join(args)} under {tree} failed:\n{proc.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _mean_fps(log: Path) -> float:
    with open(log, newline="") as fh:
        rows = [float(r["frames_per_s"]) for r in csv.DictReader(fh) if r["frames_per_s"]]
    return float(np.mean(rows))


def _same_weights(a: Path, b: Path) -> bool:
    x, y = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    keys = [k for k in x if k.endswith("state") and isinstance(x[k], dict) and k != "training_state"]
    return bool(keys) and all(x[k].keys() == y[k].keys() and all(torch.equal(x[k][n], y[k][n]) for n in x[k])
                              for k in keys)


def main() -> None:
    parser = argparse.ArgumentParser(description="the demo's two training stages: two source trees, alternating")
    parser.add_argument("--before", type=Path, required=True, help="the older source tree (a git archive)")
    parser.add_argument("--after", type=Path, required=True, help="the newer source tree")
    parser.add_argument("--data", type=Path, required=True, help="a synthesised, preprocessed dataset root")
    parser.add_argument("--out", type=Path, default=Path("/tmp/train_bench"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokenizer-steps", type=int, default=None, help="default: the tiny preset's")
    parser.add_argument("--predictor-steps", type=int, default=None, help="default: the tiny preset's")
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    times: dict[str, dict[str, list[float]]] = {name: {"tokenizer": [], "predictor": []} for name in trees}
    cpu: dict[str, dict[str, list[float]]] = {name: {"tokenizer": [], "predictor": []} for name in trees}
    fps: dict[str, dict[str, list[float]]] = {name: {"tokenizer": [], "predictor": []} for name in trees}
    same: list[bool] = []
    for r in range(args.rounds):
        order = list(trees) if r % 2 == 0 else list(trees)[::-1]  # ABBA: drift in the machine's load cancels
        for name in order:
            tree, out = trees[name], args.out / f"{name}{r}"
            common = ["--config", str(tree / "configs" / "tiny.toml"), "--data", str(args.data), "--out", str(out),
                      "--device", "cpu", "--threads", str(args.threads), "--seed", "0"]
            tok = ["--max-steps", str(args.tokenizer_steps)] if args.tokenizer_steps else []
            pred = ["--max-steps", str(args.predictor_steps)] if args.predictor_steps else []
            runs = {"tokenizer": _react(tree, args.threads, "train-tokenizer", *common, *tok),
                    "predictor": _react(tree, args.threads, "train-predictor", *common, *pred,
                                        "--tokenizer", str(out / "tokenizer.ckpt"))}
            for stage, (wall, cpu_s) in runs.items():
                times[name][stage].append(wall)
                cpu[name][stage].append(cpu_s)
                fps[name][stage].append(_mean_fps(out / f"{stage}_log.csv"))
            print(f"round {r} {name}: " + ", ".join(f"{stage} {wall:.1f} s wall, {cpu_s:.1f} s CPU, "
                                                     f"{fps[name][stage][-1]:.0f} frames/s"
                                                     for stage, (wall, cpu_s) in runs.items()), flush=True)
        same.append(all(_same_weights(args.out / f"before{r}" / f, args.out / f"after{r}" / f)
                        for f in ("tokenizer.ckpt", "predictor.ckpt")))
    print(f"\n{'stage':10} {'wall before':>12} {'after':>7} {'ratio':>6}  {'CPU before':>11} {'after':>7} "
          f"{'ratio':>6}  {'frames/s before':>16} {'after':>7}")
    for stage in ("tokenizer", "predictor"):
        b, a = np.median(times["before"][stage]), np.median(times["after"][stage])
        cb, ca = np.median(cpu["before"][stage]), np.median(cpu["after"][stage])
        fb, fa = np.median(fps["before"][stage]), np.median(fps["after"][stage])
        print(f"{stage:10} {b:12.1f} {a:7.1f} {a / b:6.3f}  {cb:11.1f} {ca:7.1f} {ca / cb:6.3f}  {fb:16.0f} {fa:7.0f}")
    print(f"(medians of {args.rounds} rounds, alternating; seconds of each whole command, the CPU seconds it used "
          "(user + system), the loop's frames/s from its log)")
    print(f"checkpoints equal bit for bit in every round: {all(same)}")


if __name__ == "__main__":
    main()
