"""Stage 2 training: the reaction predictor on tokenised clips, with best/last checkpoints and resume.

Speaker and listener faces of every clip are tokenised once with the frozen tokenizer, exactly as
generation does it (whole clips, windows aligned to frame 0). Each step draws windows of
``predictor_crop_frames`` frames; with probability ``truncate_prob`` a window is left-truncated (the
cut part becomes key padding, the first listener inputs after it become MASK) so the model also
learns from short contexts, as at the start of a conversation. Validation is the cross-entropy
over whole val clips with the same windowed causal attention as generation.

``predictor_last.ckpt`` holds the optimiser and scheduler state and the step (written at every
validation and when a signal stops the run); batches and dropout noise are functions of (seed, step,
rank), so ``--resume`` after a kill continues the very same run (``training/resume.py``).
``predictor.ckpt`` is the best by ``training.select_by``, a validation column of the log. Both are
written by rank 0 only, atomically.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from reactcli.config import ReactConfig
from reactcli.data.features import audio_feature_dim
from reactcli.errors import Interrupted, ReactError, file_error
from reactcli.models.checkpoint import (
    PREDICTOR_KIND,
    load_reaction_model,
    load_tokenizer,
    predictor_payload,
    save_checkpoint,
)
from reactcli.models.layers import count_parameters
from reactcli.models.predictor import ReactionPredictor, build_predictor
from reactcli.models.tokenizer import FaceTokenizer
from reactcli.training.corpus import WindowBatches, load_clips
from reactcli.training.ddp import DistContext, barrier
from reactcli.training.log import TrainingLog
from reactcli.training.loop import LoopConfig, run_loop, stopped_message
from reactcli.training.resume import read_resume_point, restore_optimizer, training_state
from reactcli.training.schedule import make_optimizer, make_scheduler
from reactcli.training.stop import StopRequest
from reactcli.vocab import EMOTION_DIM, PREDICTOR_CKPT, PREDICTOR_LAST_CKPT, VALENCE_AROUSAL

KEYS = ("speaker_audio", "speaker_3dmm", "speaker_emotion", "listener_3dmm", "listener_emotion")
WINDOW_KEYS = ("speaker_audio", "speaker_emotion", "speaker_tokens", "listener_tokens", "listener_emotion")
IGNORE = -100


@dataclass
class PredictorReport:
    steps: int
    start_step: int
    final_loss: float  # mean train loss over the last ``final_steps`` steps (the progress bar's last figure)
    final_steps: int
    best_val: float  # the best ``selected_by`` figure
    best_step: int
    parameters: int
    codes_valid: int
    seconds: float
    log: Path | None = None  # predictor_log.csv (rank 0)
    curves: Path | None = None  # predictor_curves.png
    selected_by: str = "val_loss"  # the validation figure (a log column) that picked predictor.ckpt


@torch.no_grad()
def tokenize_corpus(tokenizer: FaceTokenizer, clips: dict[str, np.ndarray], device: torch.device) -> dict:
    """Whole-clip speaker/listener tokens (N, T) as generation computes them, plus audio (N, T, A)."""
    tokenizer.eval()
    out: dict[str, list[torch.Tensor]] = {"speaker_tokens": [], "listener_tokens": []}
    for lo in range(0, len(clips["speaker_3dmm"]), 16):
        for side in ("speaker", "listener"):
            face = torch.from_numpy(clips[f"{side}_3dmm"][lo : lo + 16]).to(device)
            out[f"{side}_tokens"].append(tokenizer.encode(face)[1].cpu())
    return {
        **{k: torch.from_numpy(clips[k]) for k in ("speaker_audio", "speaker_emotion", "listener_emotion")},
        **{k: torch.cat(v) for k, v in out.items()},
    }


def make_batch(
    batch: dict[str, torch.Tensor],
    rngs: list[np.random.Generator],
    model: ReactionPredictor,
    truncate_prob: float,
    listener_dropout: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """(audio, speaker tokens, listener inputs, key padding or None, targets) for one batch of windows.

    With ``listener_dropout`` each listener input token is replaced by MASK with that probability:
    under teacher forcing the listener's own past is a shortcut (it predicts the next frames well),
    while at generation that past is the model's own samples; dropping it makes the model read the
    speaker (docs/quality.md).
    """
    audio = batch["speaker_audio"]
    speaker = batch["speaker_tokens"].clone()
    targets = batch["listener_tokens"].clone()
    listener_in = model.shift_listener(targets)
    b, w = targets.shape
    patch = model.cfg.patch
    padding = torch.zeros(b, w, dtype=torch.bool)
    for j, rng in enumerate(rngs):
        if w > patch + 1 and rng.random() < truncate_prob:
            cut = int(rng.integers(1, w - patch))
            padding[j, :cut] = True
            listener_in[j, cut : cut + patch] = model.mask_id
        if listener_dropout > 0:
            listener_in[j, torch.from_numpy(rng.random(w) < listener_dropout)] = model.mask_id
    if bool(padding.any()):
        speaker[padding] = model.pad_id
        listener_in[padding] = model.pad_id
        targets[padding] = IGNORE
        return audio, speaker, listener_in, padding, targets
    return audio, speaker, listener_in, None, targets


def emotion_weights(valence_arousal: float) -> torch.Tensor:
    """Per-dim weights of the emotion MSE (mean 1): valence and arousal ``valence_arousal`` times the rest.

    FRD sums a weight-1 DTW over valence/arousal and weight-1/15 and 1/8 DTWs over the 15 AUs and the
    8 expressions, so on the synthetic data the valence/arousal distance is most of FRD
    (docs/quality.md), while a plain mean over 25 standardised dims gives those two 8 % of the loss.
    """
    weights = torch.ones(EMOTION_DIM)
    weights[list(VALENCE_AROUSAL)] = valence_arousal
    return weights / weights.mean()


def loss_parts(
    model: ReactionPredictor,
    logits: torch.Tensor,
    emotion: torch.Tensor | None,
    targets: torch.Tensor,
    target_emotion: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Next-patch cross-entropy and, with an emotion head, its (per-dim weighted) MSE in standardised
    units, both over non-padded frames."""
    parts = {"ce": F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE)}
    if emotion is not None:
        parts["emotion_mse"] = emotion_mse(model, emotion, targets, target_emotion, weights)
    return parts


def emotion_mse(
    model: ReactionPredictor,
    emotion: torch.Tensor,
    targets: torch.Tensor,
    target_emotion: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """The emotion head's (per-dim weighted) MSE in standardised units over non-padded frames."""
    keep = (targets != IGNORE).float()[..., None]
    err = (model.standardize_emotion(emotion.float()) - model.standardize_emotion(target_emotion)) ** 2 * keep
    if weights is not None:
        err = err * weights.to(err.device)
    return err.sum() / (keep.sum() * target_emotion.shape[-1]).clamp_min(1.0)


def total_loss(parts: dict[str, torch.Tensor], emotion_weight: float) -> torch.Tensor:
    return parts["ce"] + emotion_weight * parts["emotion_mse"] if "emotion_mse" in parts else parts["ce"]


@torch.no_grad()
def own_samples(
    model: ReactionPredictor,
    audio: torch.Tensor,
    speaker: torch.Tensor,
    listener_in: torch.Tensor,
    padding: torch.Tensor | None,
    speaker_emotion: torch.Tensor,
    valid: torch.Tensor,
    rate: float,
) -> torch.Tensor:
    """Listener inputs with a fraction ``rate`` of the real tokens replaced by the model's own samples.

    Scheduled sampling (Bengio et al., 2015), one step deep: a no-grad pass predicts every frame's
    token, one is sampled per frame (softmax over the codes seen in training), and the input at t
    (the token of frame t - patch) is swapped for that sample with probability ``rate``. Generation
    conditions on its own samples; training only on real histories taught the model to trust a
    history it never gets (docs/quality.md). Random draws come from torch's RNG, which the loop
    reseeds from (seed, step, rank), so a resumed run draws the same samples.
    """
    logits, _ = model(audio, speaker, listener_in, padding, emotion=speaker_emotion)
    logits = logits.float().masked_fill(~valid, float("-inf"))
    sampled = torch.distributions.Categorical(logits=logits).sample()
    own = model.shift_listener(sampled)
    real = listener_in < model.codebook_size
    swap = real & (torch.rand(listener_in.shape, device=listener_in.device) < rate)
    return torch.where(swap, own, listener_in)


@torch.no_grad()
def validation_loss(
    model: ReactionPredictor, corpus: dict, device: torch.device, emotion_weight: float,
    weights: torch.Tensor | None = None, batch: int = 8,
) -> dict[str, float]:
    """Loss and its parts over whole clips (teacher forcing, generation's attention), frame-weighted.

    With an emotion head also ``val_unheard_mse``: the emotion MSE with every listener input
    MASKed. Teacher forcing hands the model the real listener's past, which generation never has;
    generated emotion scores like this all-MASK pass (docs/quality.md), so it is the validation
    figure that tracks the generated reactions (``training.select_by``).
    """
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    for lo in range(0, len(corpus["listener_tokens"]), batch):
        rows = {k: v[lo : lo + batch].to(device) for k, v in corpus.items()}
        tokens = rows["listener_tokens"]
        logits, emotion = model(
            rows["speaker_audio"], rows["speaker_tokens"], model.shift_listener(tokens),
            emotion=rows["speaker_emotion"],
        )
        parts = loss_parts(model, logits, emotion, tokens, rows["listener_emotion"], weights)
        parts["loss"] = total_loss(parts, emotion_weight)
        if emotion is not None:
            _, unheard = model(
                rows["speaker_audio"], rows["speaker_tokens"], torch.full_like(tokens, model.mask_id),
                emotion=rows["speaker_emotion"],
            )
            parts["unheard_mse"] = emotion_mse(model, unheard, tokens, rows["listener_emotion"], weights)
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + float(v) * tokens.numel()
        count += tokens.numel()
    return {f"val_{k}" if k != "loss" else "val_loss": v / max(1, count) for k, v in sums.items()}


# What ``--resume`` takes from the command line; every other setting of the run is read from
# predictor_last.ckpt, and a changed audio.*, predictor.* or training.* value is refused.
RESUME_FROM_COMMAND_LINE = ("predictor_max_steps", "val_every", "log_every", "tensorboard")
_TOKENIZER_ONLY = ("emotion_only_fraction",)  # training.* keys of stage 1 (besides tokenizer_*)


def run_key(section: str, key: str) -> bool:
    """The settings a predictor run reads: audio features, the architecture and the optimisation
    settings (not the tokenizer stage's own keys, which stage 2 never reads; the tokenizer itself
    is stored)."""
    if section == "training":
        return not key.startswith("tokenizer_") and key not in _TOKENIZER_ONLY
    return section in ("audio", "predictor")


def train_predictor(
    root: Path,
    cfg: ReactConfig,
    tokenizer_path: Path | None,
    out_dir: Path,
    seed: int,
    ctx: DistContext,
    resume: bool = False,
    on_step: Callable[[int], None] | None = None,
) -> PredictorReport:
    """Train (or resume) the predictor; rank 0 writes ``predictor.ckpt`` and ``predictor_last.ckpt``.

    SIGINT or SIGTERM stops after the step in progress: ``predictor_last.ckpt`` is written at that
    step and :class:`~reactcli.errors.Interrupted` says so (``--resume`` continues from it).
    """
    t0 = time.perf_counter()
    device = ctx.device
    last_path, best_path = out_dir / PREDICTOR_LAST_CKPT, out_dir / PREDICTOR_CKPT
    with StopRequest("train predictor", ctx.distributed) as stop:
        point = None
        if resume:
            point = read_resume_point(last_path, PREDICTOR_KIND, cfg, run_key, RESUME_FROM_COMMAND_LINE)
            cfg, seed = point.config, point.seed
            stop.kept = f"{last_path} (step {point.step}) is kept as it was; continue with --resume"
            bundle, _ = load_reaction_model(last_path, "cpu", point.data)
            tokenizer, model, valid = bundle.tokenizer, bundle.predictor, bundle.valid_codes
        else:
            tokenizer = _tokenizer_for(tokenizer_path, cfg)
        tokenizer.to(device)
        torch.manual_seed(seed)
        train, val = (_tokenized_split(root, split, cfg, tokenizer, device) for split in ("train", "val"))
        if point is None:
            model, valid = build_predictor(cfg, tokenizer, train)
        model.to(device)
        tc = cfg.training
        optimizer = make_optimizer(model, tc.predictor_lr, tc.weight_decay, tc.betas)
        scheduler = make_scheduler(optimizer, tc.predictor_warmup_steps, tc.predictor_max_steps)
        start, best = 0, {"best_val": float("inf"), "best_step": 0}
        if point is not None:
            restore_optimizer(point, optimizer, scheduler)
            start = point.step
            best = {"best_val": float(point.state["best_val"]), "best_step": int(point.state["best_step"])}
        train_model = DistributedDataParallel(model) if ctx.distributed else model
        windows = WindowBatches(
            {k: train[k] for k in WINDOW_KEYS}, tc.predictor_crop_frames, tc.predictor_batch_size, seed, ctx.rank,
            ctx.world,
        )
        weights = emotion_weights(tc.valence_arousal_weight)

        def save_last(step: int, figures: dict[str, float] | None = None) -> None:
            state = training_state(optimizer, scheduler, step, seed, **best)
            extra = {"step": step, "seed": seed, **(figures or {})}
            save_checkpoint(last_path, PREDICTOR_KIND,
                            predictor_payload(cfg, tokenizer, model, valid, training_state=state, **extra))
            stop.kept = f"kept {last_path} (step {step}); continue with the same command and --resume"

        def loss_at(step: int) -> tuple[torch.Tensor, dict[str, float]]:
            batch, rngs = windows.batch(step)
            audio, speaker, listener_in, padding, targets = make_batch(
                batch, rngs, model, tc.truncate_prob, tc.listener_dropout
            )
            audio, speaker, listener_in = audio.to(device), speaker.to(device), listener_in.to(device)
            padding = None if padding is None else padding.to(device)
            speaker_emotion = batch["speaker_emotion"].to(device)
            if tc.self_sampling > 0:
                listener_in = own_samples(model, audio, speaker, listener_in, padding, speaker_emotion,
                                          valid.to(device), tc.self_sampling)
            logits, emotion = train_model(audio, speaker, listener_in, padding, emotion=speaker_emotion)
            parts = loss_parts(model, logits, emotion, targets.to(device), batch["listener_emotion"].to(device),
                               weights)
            return total_loss(parts, tc.emotion_loss_weight), {k: float(v.detach()) for k, v in parts.items()}

        def on_eval(step: int, train_loss: float) -> dict[str, float] | None:
            figures = None
            if ctx.is_main:
                figures = validation_loss(model, val, device, tc.emotion_loss_weight, weights)
                losses = {"val_loss": figures["val_loss"], "train_loss": train_loss}
                if figures[tc.select_by] < best["best_val"]:
                    best.update(best_val=figures[tc.select_by], best_step=step)
                    save_checkpoint(best_path, PREDICTOR_KIND,
                                    predictor_payload(cfg, tokenizer, model, valid, step=step, seed=seed, **losses))
                save_last(step, losses)
            barrier(ctx)
            return figures

        loop = LoopConfig(
            "train predictor", tc.predictor_max_steps, start, tc.grad_clip, tc.val_every, tc.log_every, seed,
            frames_per_step=tc.predictor_batch_size * tc.predictor_crop_frames,
        )
        parts = ("ce", "emotion_mse") if model.emotion_head is not None else ("ce",)
        val_parts = tuple(f"val_{p}" for p in parts) + (("val_unheard_mse",) if model.emotion_head is not None else ())
        log = None
        if ctx.is_main:
            log = TrainingLog(out_dir, "predictor", parts, val_parts, resume_step=start if resume else None,
                              tensorboard=tc.tensorboard)
        try:
            result = run_loop(loop, ctx, train_model, optimizer, scheduler, loss_at, on_eval, on_step, log, stop)
        finally:
            curves = log.close() if log is not None else None
        if result.stopped_at is not None:
            if ctx.is_main:
                save_last(result.stopped_at)
            barrier(ctx)
            raise Interrupted(stopped_message("train predictor", result, tc.predictor_max_steps, ctx, stop.kept))
    return PredictorReport(
        tc.predictor_max_steps, start, result.final_loss, result.final_steps, best["best_val"], best["best_step"],
        count_parameters(model), int(valid.sum()), time.perf_counter() - t0, log.path if log else None, curves,
        tc.select_by,
    )


def _tokenizer_for(path: Path | None, cfg: ReactConfig) -> FaceTokenizer:
    """The stage-1 tokenizer this run trains with; its settings must be the configuration's
    (the command builds the tokenizer section from the checkpoint: reactcli/commands/train_predictor.py)."""
    if path is None:
        raise ReactError("train-predictor needs --tokenizer DIR/tokenizer.ckpt (or --resume)")
    tokenizer, stored, _ = load_tokenizer(path)
    for key, value in stored.tokenizer.model_dump().items():
        if getattr(cfg.tokenizer, key) != value:
            raise file_error(path, f"this tokenizer has tokenizer.{key} = {value!r} but the config says "
                             f"{getattr(cfg.tokenizer, key)!r}; its settings come from the checkpoint")
    return tokenizer


def _tokenized_split(root: Path, split: str, cfg: ReactConfig, tokenizer: FaceTokenizer, device: torch.device) -> dict:
    corpus = tokenize_corpus(tokenizer, load_clips(root, split, cfg, KEYS), device)
    audio_dim = audio_feature_dim(cfg.audio)
    if corpus["speaker_audio"].shape[-1] != audio_dim:
        raise file_error(root, f"cached audio features have {corpus['speaker_audio'].shape[-1]} dims, "
                         f"the audio config gives {audio_dim}; rerun `react preprocess` with this config")
    return corpus
