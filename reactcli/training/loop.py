"""The training loop shared by both stages: one optimiser step per batch, nothing hidden.

Per step: reseed torch's RNG from (seed, step, rank) — so dropout noise, like the batch itself, is
a function of the step and a resumed run continues bit-for-bit — forward under bf16 autocast on
CUDA only, backward, gradient clipping, AdamW step, one scheduler step. Validation and
checkpointing happen every ``val_every`` steps and at the end; the callbacks decide what to write
(rank 0 only under DDP). Every ``log_every`` steps (and at every validation, at the last step of a
phase and when stopped) one row goes to the stage's :class:`~reactcli.training.log.TrainingLog`:
the loss averaged over the steps since the last row, its parts, lr, gradient norm, frames per
second and the validation figures. The progress bar shows that same running mean, and it is the
``final_loss`` the loop returns (over ``final_steps`` steps), so the summary a command prints is the
number the bar last showed.

A signal (:mod:`reactcli.training.stop`) stops the loop after the step in progress; every rank
stops after the same step, and the stage keeps a checkpoint.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from reactcli.errors import ReactError
from reactcli.progress import make_progress
from reactcli.runtime import derive_seed
from reactcli.training.ddp import DistContext, all_reduce_mean
from reactcli.training.log import PHASE, TrainingLog
from reactcli.training.stop import StopRequest


@dataclass
class LoopConfig:
    description: str
    max_steps: int
    start_step: int
    grad_clip: float
    val_every: int
    log_every: int
    seed: int
    frames_per_step: int = 0  # frames in one (per-rank) batch, for the throughput column
    phase: Callable[[int], str] | None = None  # the phase of step i (0-based) for the log's phase column


@dataclass
class LoopResult:
    final_loss: float  # mean train loss over the last ``final_steps`` steps (what the progress bar showed)
    final_steps: int
    stopped_at: int | None = None  # the last step done when a signal stopped the loop, else None
    signal: str | None = None


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; full precision on CPU (CPU bf16 is slow and changes results)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def run_loop(
    cfg: LoopConfig,
    ctx: DistContext,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    loss_at: Callable[[int], tuple[Tensor, dict[str, float]]],
    on_eval: Callable[[int, float], dict[str, float] | None] | None = None,
    on_step: Callable[[int], None] | None = None,
    log: TrainingLog | None = None,
    stop: StopRequest | None = None,
) -> LoopResult:
    """Train steps ``start_step .. max_steps-1``; ``loss_at(step)`` builds the batch and returns its loss.

    ``on_eval(step, train_loss)`` may return validation figures (``val_loss`` and the log's val
    columns); they go into that step's log row. With ``stop``, a signal ends the loop after the
    step in progress (``LoopResult.stopped_at``).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    window: list[tuple[float, dict[str, float]]] = []  # steps since the last log row
    final = (float("nan"), 0)
    tick = time.perf_counter()
    with make_progress(disable=not ctx.is_main) as progress, stop.armed() if stop else contextlib.nullcontext():
        task = progress.add_task(cfg.description, total=cfg.max_steps, completed=cfg.start_step, info="")
        for step in range(cfg.start_step, cfg.max_steps):
            model.train()
            torch.manual_seed(derive_seed("step", cfg.seed, step, ctx.rank))
            with autocast(ctx.device):
                loss, info = loss_at(step)
            if not torch.isfinite(loss):
                raise ReactError(f"{cfg.description}: loss became {loss.item()} at step {step}; lower the LR")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # clip_grad_norm_ with an infinite bound only measures, so the log has the norm either way
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else math.inf))
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            # one all-reduce carries the loss and whether any rank was asked to stop
            asked = float(stop is not None and stop.requested is not None)
            reduced = all_reduce_mean(torch.stack((loss.detach().float(), loss.new_tensor(asked).float())), ctx)
            last, stopping = float(reduced[0]), float(reduced[1]) > 0
            window.append((last, info))
            done = step + 1
            running = sum(v for v, _ in window) / len(window)
            final = (running, len(window))
            progress.update(task, completed=done, info=f"loss {running:.4f} lr {lr:.2e}")
            trained = time.perf_counter()  # throughput excludes validation time
            val = None
            if on_eval is not None and (done % max(1, cfg.val_every) == 0 or done == cfg.max_steps):
                val = on_eval(done, last)
            phase_ends = cfg.phase is not None and done < cfg.max_steps and cfg.phase(step) != cfg.phase(done)
            if log is not None and (
                done % max(1, cfg.log_every) == 0 or done == cfg.max_steps or val or phase_ends or stopping
            ):
                log.write(done, {
                    **({PHASE: cfg.phase(step)} if cfg.phase is not None else {}),
                    "loss": running, **_mean_parts([i for _, i in window]), "lr": lr, "grad_norm": grad_norm,
                    "frames_per_s": cfg.frames_per_step * ctx.world * len(window) / max(trained - tick, 1e-9),
                    **(val or {}),
                })
                window, tick = [], time.perf_counter()
            if stopping:
                return LoopResult(*final, stopped_at=done, signal=stop.requested if stop else None)
            if on_step is not None:
                on_step(done)
    return LoopResult(*final)


def _mean_parts(infos: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each loss part over the steps that reported it (the tokenizer's face part stops early)."""
    names = dict.fromkeys(k for info in infos for k in info)
    return {k: sum(i[k] for i in infos if k in i) / sum(k in i for i in infos) for k in names}


def stopped_message(description: str, result: LoopResult, max_steps: int, ctx: DistContext, kept: str) -> str:
    """The one line a stage raises when a signal stopped its loop (``kept``: what rank 0 wrote)."""
    by = result.signal or "a signal to another rank"
    where = f"after step {result.stopped_at} of {max_steps}"
    if not ctx.is_main:
        return f"{description}: rank {ctx.rank} stopped by {by} {where}; rank 0 keeps the checkpoint"
    return f"{description}: stopped by {by} {where}; {kept}"
