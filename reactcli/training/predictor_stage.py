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

On a MARS root (REACT 2025/2026, found from the root's folders) the same stage trains on the
samples of the configured direction (``data.bidirectional``), each recording tokenised whole (in
pieces aligned to the tokenizer's windows, which encode exactly as the whole), windows drawn as
``training/corpus.py`` describes: a recording shorter than the crop is padded after its end (key
padding, ``IGNORE`` targets). Validation scores the val recordings whole, in consecutive pieces of
``VAL_PIECE_FRAMES`` frames each started afresh (2024 clips are shorter: whole, as before). With
``audio.encoder = "release"`` (the release's wav2vec2 features, whose transformer sees the future)
the run is an offline model: the command says so and both checkpoints record ``audio_causal: false``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from reactcli.config import ReactConfig
from reactcli.data.features import audio_feature_dim, is_causal
from reactcli.data.mars_dataset import training_edition
from reactcli.errors import ReactError, file_error
from reactcli.models.checkpoint import (
    PREDICTOR_KIND,
    load_reaction_model,
    load_tokenizer,
    predictor_payload,
    save_checkpoint,
)
from reactcli.models.history import history_model_space
from reactcli.models.layers import count_parameters, frame_aligned
from reactcli.models.predictor import ReactionPredictor, build_predictor
from reactcli.models.tokenizer import FaceTokenizer
from reactcli.training.corpus import (
    PADDING,
    PAST,
    PERSONALITY,
    WindowBatches,
    batch_to,
    corpus_device,
    gather,
    host_to_device,
    lengths_of,
    load_clips,
    piece_batches,
)
from reactcli.training.ddp import DistContext, barrier
from reactcli.training.flops import peak_flops, predictor_step_flops
from reactcli.training.log import TrainingLog
from reactcli.training.loop import LoopConfig, compiled, run_loop, run_stage
from reactcli.training.resume import read_resume_point, restore_optimizer, training_state
from reactcli.training.schedule import make_optimizer, make_scheduler
from reactcli.training.stop import StopRequest
from reactcli.training.tokenizer_stage import piece_frames
from reactcli.vocab import EMOTION_DIM, PREDICTOR_CKPT, PREDICTOR_LAST_CKPT, VALENCE_AROUSAL

KEYS = ("speaker_audio", "speaker_3dmm", "speaker_emotion", "listener_3dmm", "listener_emotion")
WINDOW_KEYS = ("speaker_audio", "speaker_emotion", "speaker_tokens", "listener_tokens", "listener_emotion")


EEG_KEYS = ("listener_eeg", "listener_eeg_mask")  # (T, 14) per-frame EEG targets and mask (predictor.eeg_head)


def corpus_keys(cfg: ReactConfig) -> tuple[str, ...]:
    """What a predictor run loads per sample: :data:`KEYS`, the listener's traits and history when
    the model takes them, the listener's EEG and its mask when it predicts them."""
    keys = (*KEYS, PERSONALITY) if cfg.predictor.personality else KEYS
    keys = (*keys, PAST) if cfg.predictor.history_frames > 0 else keys
    return (*keys, *EEG_KEYS) if cfg.predictor.eeg_head else keys


def window_keys(cfg: ReactConfig) -> tuple[str, ...]:
    """The per-frame arrays a training window cuts: :data:`WINDOW_KEYS`, plus the EEG ones for an EEG head."""
    return (*WINDOW_KEYS, *EEG_KEYS) if cfg.predictor.eeg_head else WINDOW_KEYS

IGNORE = -100
VAL_PIECE_FRAMES = 1024  # validation scores long recordings in consecutive pieces this long


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
    edition: str = "2024"  # the dataset's REACT edition
    samples: int = 0  # train samples (input -> target recordings) the windows came from
    audio_causal: bool = True  # False: trained on the MARS release's non-causal features (an offline model)


@torch.no_grad()
def tokenize_corpus(tokenizer: FaceTokenizer, clips: dict, device: torch.device) -> dict:
    """Whole-recording speaker/listener tokens as generation computes them, plus the other arrays.

    2024 (stacked clips): tensors (N, T) and (N, T, ...), in batches of 16 clips as always. MARS
    (lists): one (T_i,) token tensor per recording, encoded in pieces aligned to the tokenizer's
    windows (exactly the tokens of the whole recording); the other arrays stay as they are (numpy,
    the release's features memory-mapped).
    """
    tokenizer.eval()
    stacked = isinstance(clips["speaker_3dmm"], np.ndarray)
    out: dict[str, object] = {}
    for side in ("speaker", "listener"):
        faces = clips[f"{side}_3dmm"]
        lengths = lengths_of(faces)
        tokens = [torch.empty(n, dtype=torch.long) for n in lengths]
        for pieces in piece_batches(lengths, piece_frames(tokenizer.cfg.window_frames), 16):
            codes = tokenizer.encode(gather(faces, pieces).to(device))[1].cpu()
            for (i, lo, hi), row in zip(pieces, codes, strict=True):
                tokens[i][lo:hi] = row
        out[f"{side}_tokens"] = torch.stack(tokens) if stacked else tokens
    for key, value in clips.items():
        if key == PAST:  # the history's 3DMM in the tokenizer's model space (models/history.py)
            out[key] = [history_model_space(torch.as_tensor(h).to(device), tokenizer).cpu() for h in value]
        elif not key.endswith("_3dmm"):
            out[key] = torch.from_numpy(value) if stacked else value
    return out


@dataclass
class BatchPlan:
    """The host-side part of :func:`make_batch`: every random draw of a batch, as (B, W) masks.

    ``pad``: PAD inputs and IGNORE targets (a left truncation's cut part and the padding after a
    short recording); ``masked``: listener inputs replaced by MASK (the patch after a cut and
    ``listener_dropout``); ``cuts``: where each row's left truncation starts its real frames (0:
    none). Drawn from the rows' generators in the order they always were, so a batch is the same
    whichever device applies it."""

    pad: np.ndarray
    masked: np.ndarray
    cuts: np.ndarray

    @property
    def padded(self) -> bool:
        return bool(self.pad.any())


def plan_batch(
    real: list[int], rngs: list[np.random.Generator], window: int, patch: int, truncate_prob: float,
    listener_dropout: float = 0.0,
) -> BatchPlan:
    """Draw one batch's truncations and dropped listener inputs (``real``: real frames per row)."""
    b = len(real)
    pad = np.arange(window)[None, :] >= np.asarray(real)[:, None]
    masked = np.zeros((b, window), dtype=bool)
    cuts = np.zeros(b, dtype=np.int64)
    for j, rng in enumerate(rngs):
        if real[j] > patch + 1 and rng.random() < truncate_prob:
            cut = int(rng.integers(1, real[j] - patch))
            pad[j, :cut] = True
            masked[j, cut : cut + patch] = True
            cuts[j] = cut
        if listener_dropout > 0:
            masked[j, rng.random(window) < listener_dropout] = True
    return BatchPlan(pad, masked, cuts)


def make_batch(
    batch: dict[str, torch.Tensor],
    rngs: list[np.random.Generator],
    model: ReactionPredictor,
    truncate_prob: float,
    listener_dropout: float = 0.0,
    real: list[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """(audio, speaker tokens, listener inputs, key padding or None, targets) for one batch of windows.

    With ``listener_dropout`` each listener input token is replaced by MASK with that probability:
    under teacher forcing the listener's own past is a shortcut (it predicts the next frames well),
    while at generation that past is the model's own samples; dropping it makes the model read the
    speaker (docs/quality.md). ``real`` (real frames per row, from ``WindowBatches.rows``) spares
    reading the padding mask back from the batch's device.
    """
    tokens = batch["listener_tokens"]
    if real is None:
        # a window past a short recording's end arrives padded after its real frames (training/corpus.py)
        real = (~batch[PADDING]).sum(1).tolist() if PADDING in batch else [tokens.shape[1]] * tokens.shape[0]
    plan = plan_batch(real, rngs, tokens.shape[1], model.cfg.patch, truncate_prob, listener_dropout)
    return apply_plan(batch, plan, model)


def apply_plan(
    batch: dict[str, torch.Tensor], plan: BatchPlan, model: ReactionPredictor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """:func:`make_batch`'s outputs from a drawn plan, computed where the batch is (no read-back)."""
    device = batch["listener_tokens"].device
    targets = batch["listener_tokens"]
    speaker = batch["speaker_tokens"]
    listener_in = model.shift_listener(targets)
    if plan.masked.any():
        listener_in = listener_in.masked_fill(host_to_device(torch.from_numpy(plan.masked), device), model.mask_id)
    if not plan.padded:
        return batch["speaker_audio"], speaker, listener_in, None, targets
    padding = host_to_device(torch.from_numpy(plan.pad), device)
    speaker = speaker.masked_fill(padding, model.pad_id)
    listener_in = listener_in.masked_fill(padding, model.pad_id)
    targets = targets.masked_fill(padding, IGNORE)
    return batch["speaker_audio"], speaker, listener_in, padding, targets


def align_cuts(
    batch: dict[str, torch.Tensor], plan: BatchPlan, keys: tuple[str, ...] = WINDOW_KEYS
) -> tuple[dict[str, torch.Tensor], BatchPlan]:
    """The same batch with every left-truncated row moved to the front: its real frames from frame 0,
    the padding after them (``cuts`` all 0).

    The predictor's positions are rotary (relative) and its skip path reads zeros before a window's
    first frame as before a cut, so the real frames' outputs and the loss are the left-truncated
    batch's up to float rounding; but padding after the real frames needs no key mask (causal
    attention never lets a real frame see it), so the model runs with ``padding=None`` and its
    attention stays mask-free (``models/layers.py``): what a CUDA run uses. ``keys``: the batch's
    per-frame arrays (the others, such as the listener's traits, stay as they are).
    """
    if not plan.cuts.any():
        return batch, plan
    w = plan.pad.shape[1]
    source = np.minimum(np.arange(w)[None, :] + plan.cuts[:, None], w - 1)  # (B, W) frame each slot reads
    real = (~plan.pad).sum(1)
    pad = np.arange(w)[None, :] >= real[:, None]
    masked = np.take_along_axis(plan.masked, source, 1) & ~pad
    first = next(iter(batch.values()))
    index = host_to_device(torch.from_numpy(source), first.device)
    out = {}
    for key, value in batch.items():
        if key in keys:
            idx = index.view(*index.shape, *([1] * (value.ndim - 2))).expand_as(value)
            out[key] = value.gather(1, idx)
        else:
            out[key] = value
    if PADDING in out:
        out[PADDING] = host_to_device(torch.from_numpy(pad), first.device)
    return out, BatchPlan(pad, masked, np.zeros_like(plan.cuts))


def predictor_steps(
    model: ReactionPredictor,
    train_model: nn.Module,
    windows: WindowBatches,
    cfg: ReactConfig,
    device: torch.device,
    valid: torch.Tensor,
    weights: torch.Tensor | None,
    aligned: bool | None = None,
) -> Callable[[int], tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """``loss_at(step)`` for :func:`~reactcli.training.loop.run_loop`: the batch of ``step``, its
    loss and the loss's parts (left on the device).

    On CUDA the batch is cut on the device (``WindowBatches`` with a device corpus, or copied there
    without waiting), its truncated rows are moved to the front (:func:`align_cuts`) and the model
    runs without key padding inside :func:`~reactcli.models.layers.frame_aligned`, so attention
    takes the fused kernels (``aligned``, default: on CUDA). On the CPU every step is what it always
    was, bit for bit.
    """
    tc = cfg.training
    aligned = device.type == "cuda" if aligned is None else aligned
    valid = valid.to(device)
    patch = model.cfg.patch
    keys = window_keys(cfg)
    with_eeg = model.eeg_head is not None

    def loss_at(step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rows = windows.rows(step)
        batch = batch_to(windows.gather(rows), device)
        plan = plan_batch(rows.real, rows.rngs, windows.window, patch, tc.truncate_prob, tc.listener_dropout)
        if aligned:
            batch, plan = align_cuts(batch, plan, keys)
        audio, speaker, listener_in, padding, targets = apply_plan(batch, plan, model)
        if aligned:
            padding = None  # all padding follows the real frames: causal attention never reaches it
        speaker_emotion = batch["speaker_emotion"]
        traits = batch.get(PERSONALITY)
        past = {"history": batch[PAST]} if PAST in batch else {}
        with frame_aligned(aligned):
            if tc.self_sampling > 0:
                listener_in = own_samples(model, audio, speaker, listener_in, padding, speaker_emotion,
                                          valid, tc.self_sampling, traits, past.get("history"))
            outputs = train_model(audio, speaker, listener_in, padding, emotion=speaker_emotion,
                                  personality=traits, **({"eeg": True} if with_eeg else {}), **past)
        logits, emotion = outputs[:2]
        parts = loss_parts(model, logits, emotion, targets, batch["listener_emotion"], weights)
        if with_eeg:
            parts["eeg_mse"] = eeg_mse(model, outputs[2], targets, batch["listener_eeg"], batch["listener_eeg_mask"])
        return total_loss(parts, tc.emotion_loss_weight, tc.eeg_loss_weight), {k: v.detach() for k, v in parts.items()}

    return loss_at


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


def eeg_mse(
    model: ReactionPredictor, eeg: torch.Tensor, targets: torch.Tensor, target_eeg: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """The EEG head's MSE in standardised units over the valid cells only: a cell counts where the
    EEG mask is set (a present, finite value in the release) on a non-padded frame; masked cells
    hold 0 in the targets and never reach the loss. Frame t's target is the EEG of the second
    holding t (``eeg_per_frame``), so every frame trains the head that generation reads once per
    second at each second's last frame."""
    keep = (mask > 0.5).float() * (targets != IGNORE).float()[..., None]
    err = (model.standardize_eeg(eeg.float()) - model.standardize_eeg(target_eeg)) ** 2
    return (err * keep).sum() / keep.sum().clamp_min(1.0)


def total_loss(parts: dict[str, torch.Tensor], emotion_weight: float, eeg_weight: float = 0.3) -> torch.Tensor:
    loss = parts["ce"] + emotion_weight * parts["emotion_mse"] if "emotion_mse" in parts else parts["ce"]
    return loss + eeg_weight * parts["eeg_mse"] if "eeg_mse" in parts else loss


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
    personality: torch.Tensor | None = None,
    history: torch.Tensor | None = None,
) -> torch.Tensor:
    """Listener inputs with a fraction ``rate`` of the real tokens replaced by the model's own samples.

    Scheduled sampling (Bengio et al., 2015), one step deep: a no-grad pass predicts every frame's
    token, one is sampled per frame (softmax over the codes seen in training), and the input at t
    (the token of frame t - patch) is swapped for that sample with probability ``rate``. Generation
    conditions on its own samples; training only on real histories taught the model to trust a
    history it never gets (docs/quality.md). Random draws come from torch's RNG, which the loop
    reseeds from (seed, step, rank), so a resumed run draws the same samples.
    """
    logits, _ = model(audio, speaker, listener_in, padding, emotion=speaker_emotion, personality=personality,
                      **({} if history is None else {"history": history}))
    logits = logits.float().masked_fill(~valid, float("-inf"))
    sampled = torch.distributions.Categorical(logits=logits).sample()
    own = model.shift_listener(sampled)
    real = listener_in < model.codebook_size
    swap = real & (torch.rand(listener_in.shape, device=listener_in.device) < rate)
    return torch.where(swap, own, listener_in)


@torch.no_grad()
def validation_loss(
    model: ReactionPredictor, corpus: dict, device: torch.device, emotion_weight: float,
    weights: torch.Tensor | None = None, batch: int = 8, eeg_weight: float = 0.3,
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
    keys = ("speaker_audio", "speaker_emotion", "speaker_tokens", "listener_tokens", "listener_emotion")
    with_eeg = model.eeg_head is not None
    if with_eeg:
        keys = (*keys, *EEG_KEYS)
    for pieces in piece_batches(lengths_of(corpus["listener_tokens"]), VAL_PIECE_FRAMES, batch):
        rows = {k: gather(corpus[k], pieces).to(device) for k in keys}
        traits = None
        if PERSONALITY in corpus:
            traits = torch.stack([torch.as_tensor(corpus[PERSONALITY][i]) for i, _, _ in pieces]).to(device)
        past = {}
        if PAST in corpus:
            past["history"] = torch.stack([torch.as_tensor(corpus[PAST][i]) for i, _, _ in pieces]).to(device)
        tokens = rows["listener_tokens"]
        outputs = model(
            rows["speaker_audio"], rows["speaker_tokens"], model.shift_listener(tokens),
            emotion=rows["speaker_emotion"], personality=traits, **({"eeg": True} if with_eeg else {}), **past,
        )
        logits, emotion = outputs[:2]
        parts = loss_parts(model, logits, emotion, tokens, rows["listener_emotion"], weights)
        if with_eeg:
            parts["eeg_mse"] = eeg_mse(model, outputs[2], tokens, rows["listener_eeg"], rows["listener_eeg_mask"])
        parts["loss"] = total_loss(parts, emotion_weight, eeg_weight)
        if emotion is not None:
            _, unheard = model(
                rows["speaker_audio"], rows["speaker_tokens"], torch.full_like(tokens, model.mask_id),
                emotion=rows["speaker_emotion"], personality=traits, **past,
            )
            parts["unheard_mse"] = emotion_mse(model, unheard, tokens, rows["listener_emotion"], weights)
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + float(v) * tokens.numel()
        count += tokens.numel()
    return {f"val_{k}" if k != "loss" else "val_loss": v / max(1, count) for k, v in sums.items()}


# What ``--resume`` takes from the command line; every other setting of the run is read from
# predictor_last.ckpt, and a changed audio.*, predictor.* or training.* value is refused.
RESUME_FROM_COMMAND_LINE = ("predictor_max_steps", "val_every", "log_every", "tensorboard", "compile", "peak_tflops")
_TOKENIZER_ONLY = ("emotion_only_fraction",)  # training.* keys of stage 1 (besides tokenizer_*)


_DATA_KEYS = ("bidirectional",)  # data.* keys that choose the samples a predictor run trains on


def run_key(section: str, key: str) -> bool:
    """The settings a predictor run reads: audio features, the architecture, the optimisation
    settings (not the tokenizer stage's own keys, which stage 2 never reads; the tokenizer itself
    is stored) and the sample direction of a MARS root."""
    if section == "training":
        return not key.startswith("tokenizer_") and key not in _TOKENIZER_ONLY
    if section == "data":
        return key in _DATA_KEYS
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
        edition = training_edition(root, cfg)
        if cfg.predictor.eeg_head and not edition.has_eeg:
            raise ReactError(f"predictor.eeg_head: REACT {edition.name} data has no EEG ({root}; the head needs a "
                             "REACT 2026 MARS root with eeg_processed)")
        train, val = (_tokenized_split(root, split, cfg, tokenizer, device) for split in ("train", "val"))
        if cfg.predictor.eeg_head and not any(float(np.asarray(m).max(initial=0)) > 0.5
                                              for m in train["listener_eeg_mask"]):
            raise file_error(root / "train", "predictor.eeg_head: no train listener has a valid EEG value "
                             "(eeg_processed is missing or empty); nothing to train the head on")
        if point is None:
            model, valid = build_predictor(cfg, tokenizer, train)
        model.to(device)
        tc = cfg.training
        optimizer = make_optimizer(model, tc.predictor_lr, tc.weight_decay, tc.betas, device)
        scheduler = make_scheduler(optimizer, tc.predictor_warmup_steps, tc.predictor_max_steps)
        start, best = 0, {"best_val": float("inf"), "best_step": 0}
        if point is not None:
            restore_optimizer(point, optimizer, scheduler)
            start = point.step
            best = {"best_val": float(point.state["best_val"]), "best_step": int(point.state["best_step"])}
        train_model = compiled(DistributedDataParallel(model) if ctx.distributed else model, tc.compile)
        arrays = {k: train[k] for k in window_keys(cfg)}
        windows = WindowBatches(
            arrays, tc.predictor_crop_frames, tc.predictor_batch_size, seed, ctx.rank,
            ctx.world, static={k: train[k] for k in (PERSONALITY, PAST) if k in train},
            device=corpus_device(arrays, device),
        )
        weights = emotion_weights(tc.valence_arousal_weight).to(device)

        causal = {"audio_causal": is_causal(cfg.audio), "edition": edition.name}

        def save_last(step: int, figures: dict[str, float] | None = None) -> None:
            state = training_state(optimizer, scheduler, step, seed, **best)
            extra = {"step": step, "seed": seed, **causal, **(figures or {})}
            save_checkpoint(last_path, PREDICTOR_KIND,
                            predictor_payload(cfg, tokenizer, model, valid, training_state=state, **extra))
            stop.kept = f"kept {last_path} (step {step}); continue with the same command and --resume"

        loss_at = predictor_steps(model, train_model, windows, cfg, device, valid, weights)

        def on_eval(step: int, train_loss: float) -> dict[str, float] | None:
            figures = None
            if ctx.is_main:
                figures = validation_loss(model, val, device, tc.emotion_loss_weight, weights,
                                          eeg_weight=tc.eeg_loss_weight)
                losses = {"val_loss": figures["val_loss"], "train_loss": train_loss}
                if figures[tc.select_by] < best["best_val"]:
                    best.update(best_val=figures[tc.select_by], best_step=step)
                    save_checkpoint(best_path, PREDICTOR_KIND, predictor_payload(
                        cfg, tokenizer, model, valid, step=step, seed=seed, **causal, **losses))
                save_last(step, losses)
            barrier(ctx)
            return figures

        step_flops = predictor_step_flops(cfg, model.audio_dim)
        loop = LoopConfig(
            "train predictor", tc.predictor_max_steps, start, tc.grad_clip, tc.val_every, tc.log_every, seed,
            frames_per_step=tc.predictor_batch_size * tc.predictor_crop_frames,
            flops=lambda step: step_flops, peak_flops=peak_flops(device, tc.peak_tflops),
        )
        parts = ("ce", "emotion_mse") if model.emotion_head is not None else ("ce",)
        parts += ("eeg_mse",) if model.eeg_head is not None else ()
        val_parts = tuple(f"val_{p}" for p in parts) + (("val_unheard_mse",) if model.emotion_head is not None else ())
        log = None
        if ctx.is_main:
            log = TrainingLog(out_dir, "predictor", parts, val_parts, resume_step=start if resume else None,
                              tensorboard=tc.tensorboard)
        result, curves = run_stage(
            lambda: run_loop(loop, ctx, train_model, optimizer, scheduler, loss_at, on_eval, on_step, log, stop),
            loop, ctx, log, stop, save_last,
        )
    return PredictorReport(
        tc.predictor_max_steps, start, result.final_loss, result.final_steps, best["best_val"], best["best_step"],
        count_parameters(model), int(valid.sum()), time.perf_counter() - t0, log.path if log else None, curves,
        tc.select_by, edition.name, windows.n_clips, is_causal(cfg.audio),
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
    corpus = tokenize_corpus(tokenizer, load_clips(root, split, cfg, corpus_keys(cfg)), device)
    audio_dim = audio_feature_dim(cfg.audio)
    found = {int(a.shape[-1]) for a in corpus["speaker_audio"]}
    if found != {audio_dim}:
        raise file_error(root, f"cached audio features have {', '.join(map(str, sorted(found)))} dims, "
                         f"the audio config gives {audio_dim}; rerun `react preprocess` with this config")
    return corpus
