"""Stage 1 training: fit the FSQ tokenizer on listener faces, then report what it learned.

Steps before ``(1 - emotion_only_fraction) * max_steps`` train everything on grouped 3DMM L1 +
emotion L1; the rest train only the emotion decoder (encoder, codes and 3DMM decoder frozen), as
in the paper. The report is computed on whole clips, tokenised exactly as generation does it.

Under torchrun it trains like the predictor: DistributedDataParallel averages the gradients, each
rank draws its own shard of every batch (``WindowBatches`` by rank), and rank 0 alone validates,
logs, reports and writes ``tokenizer.ckpt``. The emotion-only phase leaves the encoder and the 3DMM
decoder without gradients, so DDP is told to expect unused parameters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from reactcli.config import ReactConfig
from reactcli.data.cache import load_face_stats
from reactcli.models.checkpoint import TOKENIZER_KIND, save_checkpoint, tokenizer_payload
from reactcli.models.tokenizer import FaceTokenizer, codebook_usage
from reactcli.runtime import seed_everything
from reactcli.training.corpus import WindowBatches, load_clips
from reactcli.training.ddp import DistContext, barrier
from reactcli.training.log import TrainingLog
from reactcli.training.loop import LoopConfig, run_loop
from reactcli.training.schedule import make_optimizer, make_scheduler
from reactcli.vocab import FACE_GROUPS, TOKENIZER_CKPT

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
    final_loss: float
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


def train_tokenizer(root: Path, cfg: ReactConfig, out_dir: Path, seed: int, ctx: DistContext) -> TokenizerReport | None:
    """Train, write ``out_dir/tokenizer.ckpt`` atomically, and return the reconstruction report
    (rank 0; the other ranks of a torchrun job return None)."""
    device = ctx.device
    seed_everything(seed)
    t0 = time.perf_counter()
    mean, std = load_face_stats(cfg, root)
    train = {k: torch.from_numpy(v) for k, v in load_clips(root, "train", cfg, FACE_KEYS).items()}
    report_split = "val" if "val" in cfg.data.splits else "train"
    held = train if report_split == "train" else {
        k: torch.from_numpy(v) for k, v in load_clips(root, "val", cfg, FACE_KEYS).items()
    }
    model = FaceTokenizer(cfg.tokenizer, torch.from_numpy(mean), torch.from_numpy(std)).to(device)
    tc = cfg.training
    optimizer = make_optimizer(model, tc.tokenizer_lr, tc.weight_decay, tc.betas)
    scheduler = make_scheduler(optimizer, tc.tokenizer_warmup_steps, tc.tokenizer_max_steps)
    train_model = DistributedDataParallel(model, find_unused_parameters=True) if ctx.distributed else model
    batches = WindowBatches(train, cfg.tokenizer.window_frames, tc.tokenizer_batch_size, seed, ctx.rank, ctx.world)
    emotion_from = int(round(tc.tokenizer_max_steps * (1.0 - tc.emotion_only_fraction)))

    def loss_at(step: int) -> tuple[torch.Tensor, dict[str, float]]:
        batch, _ = batches.batch(step)
        loss, parts = train_model(
            batch["listener_3dmm"].to(device), batch["listener_emotion"].to(device), emotion_only=step >= emotion_from
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
        barrier(ctx)
        return val

    loop = LoopConfig("train tokenizer", tc.tokenizer_max_steps, 0, tc.grad_clip, tc.val_every,
                      tc.log_every, seed, frames_per_step=tc.tokenizer_batch_size * cfg.tokenizer.window_frames)
    log = TrainingLog(out_dir, "tokenizer", ("face_l1", "emotion_l1"), ("val_face_l1", "val_emotion_l1"),
                      tensorboard=tc.tensorboard) if ctx.is_main else None
    try:
        result = run_loop(loop, ctx, train_model, optimizer, scheduler, loss_at, on_eval, log=log)
    finally:
        curves = log.close() if log is not None else None
    if not ctx.is_main:
        return None
    groups, face_l1, emo_l1, _ = evaluate_tokenizer(model, held["listener_3dmm"], held["listener_emotion"])
    *_, train_counts = evaluate_tokenizer(model, train["listener_3dmm"], train["listener_emotion"])
    used, perplexity = codebook_usage(train_counts)
    report = TokenizerReport(
        report_split, groups, face_l1, emo_l1, used, perplexity, model.codebook_size, tc.tokenizer_max_steps,
        time.perf_counter() - t0, result.last_loss, log.path, curves,
    )
    save_checkpoint(
        out_dir / TOKENIZER_CKPT,
        TOKENIZER_KIND,
        tokenizer_payload(
            cfg, model.cpu(), seed=seed, steps=tc.tokenizer_max_steps, code_counts=train_counts,
            report={"split": report_split, "group_l1": groups, "face_l1": face_l1, "emotion_l1": emo_l1,
                    "codes_used_pct": used, "perplexity": perplexity},
        ),
    )
    return report
