"""The training loop shared by both stages: one optimiser step per batch, nothing hidden.

Per step: reseed torch's RNG from (seed, step, rank) — so dropout noise, like the batch itself, is
a function of the step and a resumed run continues bit-for-bit — forward under bf16 autocast on
CUDA only, backward, gradient clipping, AdamW step, one scheduler step. Validation and
checkpointing happen every ``val_every`` steps and at the end; the callbacks decide what to write
(rank 0 only under DDP).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from reactcli.errors import ReactError
from reactcli.progress import make_progress
from reactcli.training.ddp import DistContext, all_reduce_mean


@dataclass
class LoopConfig:
    description: str
    max_steps: int
    start_step: int
    grad_clip: float
    val_every: int
    log_every: int
    seed: int


@dataclass
class LoopResult:
    step: int
    last_loss: float
    history: list[dict] = field(default_factory=list)


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
    on_eval: Callable[[int, float], None] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> LoopResult:
    """Train steps ``start_step .. max_steps-1``; ``loss_at(step)`` builds the batch and returns its loss."""
    history: list[dict] = []
    last = float("nan")
    params = [p for p in model.parameters() if p.requires_grad]
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
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            last = float(all_reduce_mean(loss.detach().float(), ctx))
            done = step + 1
            if done % max(1, cfg.log_every) == 0 or done == cfg.max_steps:
                history.append({"step": done, "loss": last, "lr": scheduler.get_last_lr()[0], **info})
            progress.update(task, completed=done, info=f"loss {last:.4f} lr {scheduler.get_last_lr()[0]:.2e}")
            if on_eval is not None and (done % max(1, cfg.val_every) == 0 or done == cfg.max_steps):
                on_eval(done, last)
            if on_step is not None:
                on_step(done)
    return LoopResult(cfg.max_steps, last, history)
