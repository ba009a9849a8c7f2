"""The training loop shared by both stages: one optimiser step per batch, nothing hidden.

Per step: reseed torch's RNG from (seed, step, rank) — so dropout noise, like the batch itself, is
a function of the step and a resumed run continues bit-for-bit — forward under bf16 autocast on
CUDA only, backward, gradient clipping, AdamW step, one scheduler step. Validation and
checkpointing happen every ``val_every`` steps and at the end; the callbacks decide what to write
(rank 0 only under DDP). Every ``log_every`` steps (and at every validation, at the last step of a
phase and when stopped) one row goes to the stage's :class:`~reactcli.training.log.TrainingLog`:
the loss averaged over the steps since the last row, its parts, lr, gradient norm, frames per
second, ``mfu`` (:mod:`reactcli.training.flops`) and the validation figures. The progress bar
shows that same running mean, and it is the ``final_loss`` the loop returns (over ``final_steps``
steps), so the summary a command prints is the number the bar last showed.

**No waiting for the device between log rows.** The losses, their parts and the gradient norm stay
on the device, summed in float64 there (so a row's mean is the same number the host would have
summed), and are read once per row; a non-finite loss is noted on the device (the first such
step) and raised at the next row or validation, before anything is written. The host then queues
the next steps while the device computes, which is most of a small model's speed.

A signal (:mod:`reactcli.training.stop`) stops the loop after the step in progress; every rank
stops after the same step (a flag all-reduced each step over a CPU group under torchrun, no device
wait), and the stage keeps a checkpoint.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from reactcli.errors import Interrupted, ReactError
from reactcli.progress import make_progress
from reactcli.runtime import derive_seed
from reactcli.training.ddp import DistContext, all_reduce_flag, all_reduce_mean, barrier
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
    flops: Callable[[int], float] | None = None  # model FLOPs of step i (per rank), for the mfu column
    peak_flops: float | None = None  # the device's peak FLOP/s (training/flops.py); None: no mfu


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


def compiled(model: nn.Module, enabled: bool) -> nn.Module:
    """``model`` through ``torch.compile`` when ``training.compile`` asks for it (the module itself,
    whose parameters the compiled one shares, is what checkpoints save)."""
    return torch.compile(model) if enabled else model


class NonFinite(Exception):
    def __init__(self, value: float, step: int) -> None:
        super().__init__(value, step)
        self.value, self.step = value, step


class StepSums:
    """The losses of the steps since the last log row, summed on the device (float64).

    ``add`` queues a few device additions and never reads a value; ``read`` returns the means
    (after an all-reduce over the ranks), the last step's loss and the gradient norm, reading the
    device once. A part a step did not report (the tokenizer's face loss in its emotion-only
    phase) is averaged over the steps that did, as the host-side lists did.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, int] = {}
        self.steps = 0
        self.last: Tensor | None = None
        self.grad_norm: Tensor | None = None
        self.bad_step = torch.full((), -1, dtype=torch.long, device=device)  # first non-finite loss, -1: none
        self.bad_value = torch.zeros((), device=device)  # and its value

    def add(self, step: int, loss: Tensor, parts: Mapping[str, Tensor | float], grad_norm: Tensor) -> None:
        loss = loss.detach().float()
        first = (self.bad_step < 0) & ~torch.isfinite(loss)
        self.bad_step = torch.where(first, step, self.bad_step)
        self.bad_value = torch.where(first, loss, self.bad_value)
        for name, value in (("loss", loss), *parts.items()):
            value = torch.as_tensor(value, device=self.device).detach().double()
            self.sums[name] = self.sums[name] + value if name in self.sums else value
            self.counts[name] = self.counts.get(name, 0) + 1
        self.steps += 1
        self.last, self.grad_norm = loss, grad_norm

    def read(self, ctx: DistContext) -> tuple[dict[str, float], float, float]:
        """(mean of each name, last step's loss, gradient norm); a non-finite loss since the last
        read raises (naming its step)."""
        names = list(self.sums)
        packed = torch.stack([self.sums[n] for n in names] + [self.last.double(), self.grad_norm.double()])
        values = all_reduce_mean(packed, ctx).tolist()
        if int(self.bad_step) >= 0:
            raise NonFinite(float(self.bad_value), int(self.bad_step))
        means = {n: v / self.counts[n] for n, v in zip(names, values, strict=False)}
        return means, values[-2], values[-1]

    def clear(self) -> None:
        self.sums, self.counts, self.steps = {}, {}, 0


def run_loop(
    cfg: LoopConfig,
    ctx: DistContext,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    loss_at: Callable[[int], tuple[Tensor, Mapping[str, Tensor | float]]],
    on_eval: Callable[[int, float], dict[str, float] | None] | None = None,
    on_step: Callable[[int], None] | None = None,
    log: TrainingLog | None = None,
    stop: StopRequest | None = None,
) -> LoopResult:
    """Train steps ``start_step .. max_steps-1``; ``loss_at(step)`` builds the batch and returns its
    loss and the loss's parts (tensors, left on the device).

    ``on_eval(step, train_loss)`` may return validation figures (``val_loss`` and the log's val
    columns); they go into that step's log row. With ``stop``, a signal ends the loop after the
    step in progress (``LoopResult.stopped_at``).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    sums = StepSums(ctx.device)
    final = (float("nan"), 0)
    flops = 0.0
    tick = time.perf_counter()
    with make_progress(disable=not ctx.is_main) as progress, stop.armed() if stop else contextlib.nullcontext():
        task = progress.add_task(cfg.description, total=cfg.max_steps, completed=cfg.start_step, info="")
        for step in range(cfg.start_step, cfg.max_steps):
            model.train()
            torch.manual_seed(derive_seed("step", cfg.seed, step, ctx.rank))
            with autocast(ctx.device):
                loss, info = loss_at(step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # clip_grad_norm_ with an infinite bound only measures, so the log has the norm either way
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            sums.add(step, loss, info, grad_norm)
            if cfg.flops is not None:
                flops += cfg.flops(step)
            # every rank agrees on the stop after this step (a host flag; no device wait)
            stopping = all_reduce_flag(stop is not None and stop.requested is not None, ctx)
            done = step + 1
            progress.update(task, completed=done)
            evaluating = on_eval is not None and (done % max(1, cfg.val_every) == 0 or done == cfg.max_steps)
            phase_ends = cfg.phase is not None and done < cfg.max_steps and cfg.phase(step) != cfg.phase(done)
            if not (done % max(1, cfg.log_every) == 0 or done == cfg.max_steps or evaluating or phase_ends
                    or stopping):
                if on_step is not None:
                    on_step(done)
                continue
            # a log row: the one place the loop reads the device
            try:
                means, last, norm = sums.read(ctx)
            except NonFinite as exc:
                raise _nonfinite(cfg, exc) from None
            running, steps = means.pop("loss"), sums.steps
            final = (running, steps)
            progress.update(task, info=f"loss {running:.4f} lr {lr:.2e}")
            trained = time.perf_counter()  # throughput excludes validation time
            seconds = max(trained - tick, 1e-9)
            val = on_eval(done, last) if evaluating else None
            if log is not None:
                mfu = flops / seconds / cfg.peak_flops if cfg.peak_flops and cfg.flops is not None else None
                log.write(done, {
                    **({PHASE: cfg.phase(step)} if cfg.phase is not None else {}),
                    "loss": running, **means, "lr": lr, "grad_norm": norm,
                    "frames_per_s": cfg.frames_per_step * ctx.world * steps / seconds, "mfu": mfu,
                    **(val or {}),
                })
            sums.clear()
            flops, tick = 0.0, time.perf_counter()
            if stopping:
                return LoopResult(*final, stopped_at=done, signal=stop.requested if stop else None)
            if on_step is not None:
                on_step(done)
    return LoopResult(*final)


def _nonfinite(cfg: LoopConfig, exc: NonFinite) -> ReactError:
    return ReactError(f"{cfg.description}: loss became {exc.value} at step {exc.step}; lower the LR")


def stopped_message(description: str, result: LoopResult, max_steps: int, ctx: DistContext, kept: str) -> str:
    """The one line a stage raises when a signal stopped its loop (``kept``: what rank 0 wrote)."""
    by = result.signal or "a signal to another rank"
    where = f"after step {result.stopped_at} of {max_steps}"
    if not ctx.is_main:
        return f"{description}: rank {ctx.rank} stopped by {by} {where}; rank 0 keeps the checkpoint"
    return f"{description}: stopped by {by} {where}; {kept}"


def run_stage(
    run: Callable[[], LoopResult],
    cfg: LoopConfig,
    ctx: DistContext,
    log: TrainingLog | None,
    stop: StopRequest,
    save_last: Callable[[int], None],
) -> tuple[LoopResult, Path | None]:
    """``run()`` (the stage's :func:`run_loop` call) as a training stage runs it: the log is closed
    whatever happens (its curves are returned), and after a stop signal rank 0 keeps the checkpoint
    of the step the loop stopped after (``save_last(step)``), every rank waits for it, then raises
    ``Interrupted`` with :func:`stopped_message`. Both stages end their loop this way, so they stop
    alike."""
    try:
        result = run()
    finally:
        curves = log.close() if log is not None else None
    if result.stopped_at is not None:
        if ctx.is_main:
            save_last(result.stopped_at)
        barrier(ctx)
        raise Interrupted(stopped_message(cfg.description, result, cfg.max_steps, ctx, stop.kept))
    return result, curves
