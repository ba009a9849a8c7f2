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

On a MARS root (REACT 2025/2026, found from the root's folders) the same stage trains on every
paired recording's face at 30 fps, windows drawn as ``training/corpus.py`` describes (a window past
a short recording's end is padded and left out of the loss), and reports on the val recordings.
The 3DMM statistics are the preprocessed train split's or, with ``data.face_stats = "react2024"``,
the packaged REACT 2024 mean_face/std_face the organisers' MARS loaders use; ``tokenizer.normalization``
picks their rule (``zero_center`` or ``standard``). Both are stored in the checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from reactcli.config import ReactConfig
from reactcli.data.cache import load_face_stats
from reactcli.data.mars_dataset import training_edition
from reactcli.models.checkpoint import TOKENIZER_KIND, load_tokenizer, save_checkpoint, tokenizer_payload
from reactcli.models.layers import frame_aligned
from reactcli.models.tokenizer import FaceTokenizer, codebook_usage
from reactcli.runtime import seed_everything
from reactcli.training.corpus import (
    PADDING,
    Frames,
    WindowBatches,
    batch_to,
    corpus_device,
    gather,
    lengths_of,
    load_faces,
    piece_batches,
)
from reactcli.training.ddp import DistContext, barrier
from reactcli.training.flops import peak_flops, tokenizer_step_flops
from reactcli.training.log import TrainingLog
from reactcli.training.loop import LoopConfig, compiled, run_loop, run_stage
from reactcli.training.resume import read_resume_point, restore_optimizer, training_state
from reactcli.training.schedule import make_optimizer, make_scheduler
from reactcli.training.stop import StopRequest
from reactcli.vocab import FACE_GROUPS, TOKENIZER_CKPT, TOKENIZER_LAST_CKPT

PIECE_FRAMES = 1024  # whole recordings are encoded in pieces of about this many frames (2024 clips: whole)


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
    edition: str = "2024"  # the dataset's REACT edition
    recordings: int = 0  # train recordings (2024: mirrored clips) the windows came from


def piece_frames(window: int) -> int:
    """Frames per encoded piece of a long recording: a multiple of the tokenizer's window, so that
    a piece starts where a window does and encodes exactly as the whole recording would (attention
    and positions restart every window)."""
    return max(window, PIECE_FRAMES // window * window)


@torch.no_grad()
def evaluate_tokenizer(
    model: FaceTokenizer, faces: Frames, emotions: Frames, batch: int = 16
) -> tuple[dict[str, float], float, float, torch.Tensor]:
    """Per-group L1 (raw units), 3DMM L1, emotion L1 and code counts over whole recordings
    (stacked 2024 clips or a list of MARS recordings of any length)."""
    model.eval()
    device = next(model.parameters()).device
    sums = np.zeros(len(FACE_GROUPS))
    face_sum = emo_sum = 0.0
    counts = torch.zeros(model.codebook_size, dtype=torch.long)
    n = 0
    for pieces in piece_batches(lengths_of(faces), piece_frames(model.cfg.window_frames), batch):
        face = gather(faces, pieces).to(device)
        emo = gather(emotions, pieces).to(device)
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


def tokenizer_steps(
    train_model: nn.Module, batches: WindowBatches, device: torch.device, emotion_from: int,
    aligned: bool | None = None,
) -> Callable[[int], tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """``loss_at(step)`` for :func:`~reactcli.training.loop.run_loop`: grouped 3DMM L1 + emotion L1
    (emotion L1 alone from step ``emotion_from``) of the batch of ``step``, parts left on the device.
    On CUDA the windows are cut on the device and attention runs in its mask-free form
    (:func:`~reactcli.models.layers.frame_aligned`: a training window is one causal block;
    ``aligned``, default: on CUDA)."""
    aligned = device.type == "cuda" if aligned is None else aligned

    def loss_at(step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        batch = batch_to(batches.batch(step)[0], device)
        valid = ~batch[PADDING] if PADDING in batch else None
        with frame_aligned(aligned):
            loss, parts = train_model(batch["listener_3dmm"], batch["listener_emotion"],
                                      emotion_only=step >= emotion_from, valid=valid)
        info = {"emotion_l1": parts["emotion"]}
        if "face" in parts:
            info["face_l1"] = parts["face"]
        return loss, info

    return loss_at


# What ``--resume`` takes from the command line (the rest of the run comes from tokenizer_last.ckpt);
# compile and peak_tflops change how fast a run goes, not what it computes.
RESUME_FROM_COMMAND_LINE = ("tokenizer_max_steps", "val_every", "log_every", "tensorboard", "compile", "peak_tflops")
# training.* keys stage 1 reads besides the tokenizer_* ones
_SHARED_TRAINING = ("emotion_only_fraction", "weight_decay", "betas", "grad_clip")
FULL, EMOTION_ONLY = "face_and_emotion", "emotion_only"  # the log's phase column


def run_key(section: str, key: str) -> bool:
    """The settings a tokenizer run reads: its architecture and its optimisation settings."""
    if section == "training":
        return key.startswith("tokenizer_") or key in _SHARED_TRAINING
    return section == "tokenizer"


def face_statistics(cfg: ReactConfig, root: Path) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) (58,) the tokenizer normalises with, by ``data.face_stats``: the train statistics
    of ``react preprocess`` (or the ``data.mean_face`` / ``data.std_face`` files), or the packaged
    REACT 2024 ones, equal bit for bit to the organisers' mean_face.npy / std_face.npy."""
    if cfg.data.face_stats == "train":
        return load_face_stats(cfg, root)
    from reactcli.data.synth import face_stats as packaged

    mean, std = packaged()
    return mean, np.maximum(std, 1e-6).astype(np.float32)


def _as_frames(frames: np.ndarray | list[np.ndarray]) -> Frames:
    """Stacked 2024 arrays as one tensor (as before); MARS lists stay numpy (sliced per window)."""
    return torch.from_numpy(frames) if isinstance(frames, np.ndarray) else frames


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
        edition = training_edition(root, cfg)
        train, held = (
            {k: _as_frames(v) for k, v in load_faces(root, split, cfg).items()} for split in ("train", "val")
        )
        if point is None:
            mean, std = face_statistics(cfg, root)
            model = FaceTokenizer(cfg.tokenizer, torch.from_numpy(mean), torch.from_numpy(std))
        else:
            model, _, _ = load_tokenizer(last_path)  # the face statistics are in its state
        model.to(device)
        tc = cfg.training
        optimizer = make_optimizer(model, tc.tokenizer_lr, tc.weight_decay, tc.betas, device)
        scheduler = make_scheduler(optimizer, tc.tokenizer_warmup_steps, tc.tokenizer_max_steps)
        start = 0
        if point is not None:
            restore_optimizer(point, optimizer, scheduler)
            start = point.step
        train_model = DistributedDataParallel(model, find_unused_parameters=True) if ctx.distributed else model
        train_model = compiled(train_model, tc.compile)
        batches = WindowBatches(train, cfg.tokenizer.window_frames, tc.tokenizer_batch_size, seed, ctx.rank, ctx.world,
                                device=corpus_device(train, device))
        emotion_from = emotion_only_from(tc.tokenizer_max_steps, tc.emotion_only_fraction)

        def save_last(step: int) -> None:
            state = training_state(optimizer, scheduler, step, seed)
            save_checkpoint(last_path, TOKENIZER_KIND, tokenizer_payload(cfg, model, training_state=state))
            stop.kept = f"kept {last_path} (step {step}); continue with the same command and --resume"

        loss_at = tokenizer_steps(train_model, batches, device, emotion_from)

        def on_eval(step: int, train_loss: float) -> dict[str, float] | None:
            val = None
            if ctx.is_main:
                _, face_l1, emo_l1, _ = evaluate_tokenizer(model, held["listener_3dmm"], held["listener_emotion"])
                val = {"val_loss": face_l1 + emo_l1, "val_face_l1": face_l1, "val_emotion_l1": emo_l1}
                save_last(step)
            barrier(ctx)
            return val

        step_flops = {phase: tokenizer_step_flops(cfg, phase) for phase in (False, True)}
        loop = LoopConfig(
            "train tokenizer", tc.tokenizer_max_steps, start, tc.grad_clip, tc.val_every, tc.log_every, seed,
            frames_per_step=tc.tokenizer_batch_size * cfg.tokenizer.window_frames,
            phase=lambda step: EMOTION_ONLY if step >= emotion_from else FULL,
            flops=lambda step: step_flops[step >= emotion_from], peak_flops=peak_flops(device, tc.peak_tflops),
        )
        log = TrainingLog(out_dir, "tokenizer", ("face_l1", "emotion_l1"), ("val_face_l1", "val_emotion_l1"),
                          resume_step=start if resume else None, tensorboard=tc.tensorboard,
                          phases=True) if ctx.is_main else None
        result, curves = run_stage(
            lambda: run_loop(loop, ctx, train_model, optimizer, scheduler, loss_at, on_eval, on_step, log, stop),
            loop, ctx, log, stop, save_last,
        )
        if not ctx.is_main:
            return None
        groups, face_l1, emo_l1, _ = evaluate_tokenizer(model, held["listener_3dmm"], held["listener_emotion"])
        *_, train_counts = evaluate_tokenizer(model, train["listener_3dmm"], train["listener_emotion"])
        used, perplexity = codebook_usage(train_counts)
        report = TokenizerReport(
            "val", groups, face_l1, emo_l1, used, perplexity, model.codebook_size, tc.tokenizer_max_steps,
            time.perf_counter() - t0, result.final_loss, result.final_steps,
            EMOTION_ONLY if tc.tokenizer_max_steps > emotion_from else FULL, emotion_from, log.path, curves,
            edition.name, batches.n_clips,
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
