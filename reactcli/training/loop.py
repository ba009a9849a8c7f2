"""The training loop shared by both stages: one optimiser step per batch, nothing hidden.

Per step: reseed torch's RNG from (seed, step, rank) — so dropout noise, like the batch itself, is
a function of the step and a resumed run continues bit-for-bit — forward under bf16 autocast on
CUDA only, backward, gradient clipping, AdamW step, one scheduler step. Validation and
checkpointing happen every ``val_every`` steps and at the end; the callbacks decide what to write
(rank 0 only under DDP). Every ``log_every`` steps (and at every validation) one row goes to the
stage's :class:`~reactcli.training.log.TrainingLog`: the loss averaged over the steps since the
last row, its parts, lr, gradient norm, frames per second and the validation figures.
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
from reactcli.training.ddp import DistContext, all_reduce_mean
from reactcli.training.log import TrainingLog


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


@dataclass
class LoopResult:
    last_loss: float


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; full precision on CPU (CPU bf16 is slow and changes results)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 9_176 + rank * 7_919) % (2**63 - 1)


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
) -> LoopResult:
    """Train steps ``start_step .. max_steps-1``; ``loss_at(step)`` builds the batch and returns its loss.

    ``on_eval(step, train_loss)`` may return validation figures (``val_loss`` and the log's val
    columns); they go into that step's log row.
    """
    last = float("nan")
    params = [p for p in model.parameters() if p.requires_grad]
    window: list[tuple[float, dict[str, float]]] = []  # steps since the last log row
    tick = time.perf_counter()
    with make_progress(disable=not ctx.is_main) as progress:
        task = progress.add_task(cfg.description, total=cfg.max_steps, completed=cfg.start_step, info="")
        for step in range(cfg.start_step, cfg.max_steps):
            model.train()
            torch.manual_seed(step_seed(cfg.seed, step, ctx.rank))
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
            last = float(all_reduce_mean(loss.detach().float(), ctx))
            window.append((last, info))
            done = step + 1
            running = sum(v for v, _ in window) / len(window)
            progress.update(task, completed=done, info=f"loss {running:.4f} lr {lr:.2e}")
            trained = time.perf_counter()  # throughput excludes validation time
            val = None
            if on_eval is not None and (done % max(1, cfg.val_every) == 0 or done == cfg.max_steps):
                val = on_eval(done, last)
            if log is not None and (done % max(1, cfg.log_every) == 0 or done == cfg.max_steps or val):
                log.write(done, {
                    "loss": running, **_mean_parts([i for _, i in window]), "lr": lr, "grad_norm": grad_norm,
                    "frames_per_s": cfg.frames_per_step * ctx.world * len(window) / max(trained - tick, 1e-9),
                    **(val or {}),
                })
                window, tick = [], time.perf_counter()
            if on_step is not None:
                on_step(done)
    return LoopResult(last)


def _mean_parts(infos: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each loss part over the steps that reported it (the tokenizer's face part stops early)."""
    names = dict.fromkeys(k for info in infos for k in info)
    return {k: sum(i[k] for i in infos if k in i) / sum(k in i for i in infos) for k in names}
