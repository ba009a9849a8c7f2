"""Stage 1 training: fit the FSQ tokenizer on listener faces, then report what it learned.

Steps before ``(1 - emotion_only_fraction) * max_steps`` train everything on grouped 3DMM L1 +
emotion L1; the rest train only the emotion decoder (encoder, codes and 3DMM decoder frozen), as
in the paper. The train loss drops there because it loses its 3DMM term: the log's ``phase`` column
and a line on the curves say so. The report is computed on the val split's whole clips, tokenised
exactly as generation does it. ``tokenizer_last.ckpt`` and ``--resume`` work as the predictor's
(``training/resume.py``, ``training/stop.py``).

Under torchrun it trains like the predictor: DistributedDataParallel averages the gradients, each
rank draws its own shard of every batch (``WindowBatches`` by rank), and rank 0 alone validates,
logs, reports and writes ``tokenizer.ckpt``. The emotion-only phase leaves the encoder and the 3DMM
decoder without gradients, so DDP is told to expect unused parameters.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from reactcli.config import ReactConfig
from reactcli.data.cache import load_face_stats
from reactcli.errors import Interrupted
from reactcli.models.checkpoint import TOKENIZER_KIND, load_tokenizer, save_checkpoint, tokenizer_payload
from reactcli.models.tokenizer import FaceTokenizer, codebook_usage
from reactcli.runtime import seed_everything
from reactcli.training.corpus import WindowBatches, load_clips
from reactcli.training.ddp import DistContext, barrier
from reactcli.training.log import TrainingLog
from reactcli.training.loop import LoopConfig, run_loop, stopped_message
from reactcli.training.resume import read_resume_point, restore_optimizer, training_state
from reactcli.training.schedule import make_optimizer, make_scheduler
from reactcli.training.stop import StopRequest
from reactcli.vocab import FACE_GROUPS, TOKENIZER_CKPT, TOKENIZER_LAST_CKPT

FACE_KEYS = ("listener_3dmm", "listener_emotion")


@dataclass
class TokenizerReport:
    split: str
    group_l1: dict[str, float]  # mean |error| per face-part group, raw coefficient units
    face_l1: float
    emotion_l1: float
    codes_used_pct: float
    perplexity: float
    codebook_size: int
    steps: int
    seconds: float
    final_loss: float  # mean train loss over the last ``final_steps`` steps (the progress bar's last figure)
    final_steps: int
    final_phase: str  # what that loss is: FULL (3DMM + emotion L1) or EMOTION_ONLY (emotion L1 alone)
    emotion_only_from: int  # the first step of the emotion-only phase
    log: Path | None = None  # tokenizer_log.csv
    curves: Path | None = None  # tokenizer_curves.png


@torch.no_grad()
def evaluate_tokenizer(
    model: FaceTokenizer, faces: torch.Tensor, emotions: torch.Tensor, batch: int = 16
) -> tuple[dict[str, float], float, float, torch.Tensor]:
    """Per-group L1 (raw units), 3DMM L1, emotion L1 and code counts over whole clips."""
    model.eval()
    device = next(model.parameters()).device
    sums = np.zeros(len(FACE_GROUPS))
    face_sum = emo_sum = 0.0
    counts = torch.zeros(model.codebook_size, dtype=torch.long)
    n = 0
    for lo in range(0, len(faces), batch):
        face = faces[lo : lo + batch].to(device)
        emo = emotions[lo : lo + batch].to(device)
        _, tokens = model.encode(face)
        rec, emo_hat = model.decode_tokens(tokens)
        err = (rec - face).abs()
        sums += np.array([float(err[..., a:b].mean(-1).sum()) for _, a, b in FACE_GROUPS])
        face_sum += float(err.mean(-1).sum())
        emo_sum += float((emo_hat - emo).abs().mean(-1).sum())
        counts += torch.bincount(tokens.flatten().cpu(), minlength=model.codebook_size)
        n += face.shape[0] * face.shape[1]
    groups = {name: float(s / n) for (name, _, _), s in zip(FACE_GROUPS, sums, strict=True)}
    return groups, face_sum / n, emo_sum / n, counts


# What ``--resume`` takes from the command line (the rest of the run comes from tokenizer_last.ckpt).
RESUME_FROM_COMMAND_LINE = ("tokenizer_max_steps", "val_every", "log_every", "tensorboard")
# training.* keys stage 1 reads besides the tokenizer_* ones
_SHARED_TRAINING = ("emotion_only_fraction", "weight_decay", "betas", "grad_clip")
FULL, EMOTION_ONLY = "face_and_emotion", "emotion_only"  # the log's phase column


def run_key(section: str, key: str) -> bool:
    """The settings a tokenizer run reads: its architecture and its optimisation settings."""
    if section == "training":
        return key.startswith("tokenizer_") or key in _SHARED_TRAINING
    return section == "tokenizer"


def emotion_only_from(max_steps: int, fraction: float) -> int:
    """The first step that trains the emotion decoder alone."""
    return int(round(max_steps * (1.0 - fraction)))


def train_tokenizer(
    root: Path, cfg: ReactConfig, out_dir: Path, seed: int, ctx: DistContext, resume: bool = False,
    on_step: Callable[[int], None] | None = None,
) -> TokenizerReport | None:
    """Train (or resume), write ``out_dir/tokenizer.ckpt`` atomically, and return the reconstruction
    report (rank 0; the other ranks of a torchrun job return None).

    ``tokenizer_last.ckpt`` (weights, optimiser, step) is written at every validation and when
    SIGINT/SIGTERM stops the run after the step in progress (then :class:`~reactcli.errors.Interrupted`
    says so); ``resume`` continues from it.
    """
    device = ctx.device
    t0 = time.perf_counter()
    last_path = out_dir / TOKENIZER_LAST_CKPT
    with StopRequest("train tokenizer", ctx.distributed) as stop:
        point = None
        if resume:
            point = read_resume_point(last_path, TOKENIZER_KIND, cfg, run_key, RESUME_FROM_COMMAND_LINE)
            cfg, seed = point.config, point.seed
            stop.kept = f"{last_path} (step {point.step}) is kept as it was; continue with --resume"
        seed_everything(seed)
        train, held = ({k: torch.from_numpy(v) for k, v in load_clips(root, split, cfg, FACE_KEYS).items()}
                       for split in ("train", "val"))
        if point is None:
            mean, std = load_face_stats(cfg, root)
            model = FaceTokenizer(cfg.tokenizer, torch.from_numpy(mean), torch.from_numpy(std))
        else:
            model, _, _ = load_tokenizer(last_path)  # the face statistics are in its state
        model.to(device)
        tc = cfg.training
        optimizer = make_optimizer(model, tc.tokenizer_lr, tc.weight_decay, tc.betas)
        scheduler = make_scheduler(optimizer, tc.tokenizer_warmup_steps, tc.tokenizer_max_steps)
        start = 0
        if point is not None:
            restore_optimizer(point, optimizer, scheduler)
            start = point.step
        train_model = DistributedDataParallel(model, find_unused_parameters=True) if ctx.distributed else model
        batches = WindowBatches(train, cfg.tokenizer.window_frames, tc.tokenizer_batch_size, seed, ctx.rank, ctx.world)
        emotion_from = emotion_only_from(tc.tokenizer_max_steps, tc.emotion_only_fraction)

        def save_last(step: int) -> None:
            state = training_state(optimizer, scheduler, step, seed)
            save_checkpoint(last_path, TOKENIZER_KIND, tokenizer_payload(cfg, model, training_state=state))
            stop.kept = f"kept {last_path} (step {step}); continue with the same command and --resume"

        def loss_at(step: int) -> tuple[torch.Tensor, dict[str, float]]:
            batch, _ = batches.batch(step)
            loss, parts = train_model(
                batch["listener_3dmm"].to(device), batch["listener_emotion"].to(device),
                emotion_only=step >= emotion_from,
            )
            info = {"emotion_l1": float(parts["emotion"])}
            if "face" in parts:
                info["face_l1"] = float(parts["face"])
            return loss, info

        def on_eval(step: int, train_loss: float) -> dict[str, float] | None:
            val = None
            if ctx.is_main:
                _, face_l1, emo_l1, _ = evaluate_tokenizer(model, held["listener_3dmm"], held["listener_emotion"])
                val = {"val_loss": face_l1 + emo_l1, "val_face_l1": face_l1, "val_emotion_l1": emo_l1}
                save_last(step)
            barrier(ctx)
            return val

        loop = LoopConfig(
            "train tokenizer", tc.tokenizer_max_steps, start, tc.grad_clip, tc.val_every, tc.log_every, seed,
            frames_per_step=tc.tokenizer_batch_size * cfg.tokenizer.window_frames,
            phase=lambda step: EMOTION_ONLY if step >= emotion_from else FULL,
        )
        log = TrainingLog(out_dir, "tokenizer", ("face_l1", "emotion_l1"), ("val_face_l1", "val_emotion_l1"),
                          resume_step=start if resume else None, tensorboard=tc.tensorboard,
                          phases=True) if ctx.is_main else None
        try:
            result = run_loop(loop, ctx, train_model, optimizer, scheduler, loss_at, on_eval, on_step, log, stop)
        finally:
            curves = log.close() if log is not None else None
        if result.stopped_at is not None:
            if ctx.is_main:
                save_last(result.stopped_at)
            barrier(ctx)
            raise Interrupted(stopped_message("train tokenizer", result, tc.tokenizer_max_steps, ctx, stop.kept))
        if not ctx.is_main:
            return None
        groups, face_l1, emo_l1, _ = evaluate_tokenizer(model, held["listener_3dmm"], held["listener_emotion"])
        *_, train_counts = evaluate_tokenizer(model, train["listener_3dmm"], train["listener_emotion"])
        used, perplexity = codebook_usage(train_counts)
        report = TokenizerReport(
            "val", groups, face_l1, emo_l1, used, perplexity, model.codebook_size, tc.tokenizer_max_steps,
            time.perf_counter() - t0, result.final_loss, result.final_steps,
            EMOTION_ONLY if tc.tokenizer_max_steps > emotion_from else FULL, emotion_from, log.path, curves,
        )
        save_checkpoint(
            out_dir / TOKENIZER_CKPT,
            TOKENIZER_KIND,
            tokenizer_payload(
                cfg, model.cpu(), seed=seed, steps=tc.tokenizer_max_steps, code_counts=train_counts,
                report={"split": "val", "group_l1": groups, "face_l1": face_l1, "emotion_l1": emo_l1,
                        "codes_used_pct": used, "perplexity": perplexity},
            ),
        )
    return report
