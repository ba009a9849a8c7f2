"""Stage 2: the cross-modal reaction predictor (speaker audio + speaker face tokens -> listener tokens).

Speaker side: per-frame audio features (cached by ``react preprocess``; standardised with *train
set* statistics stored in the model, never whole-clip statistics, defect 7 of docs/model.md) -> Linear, plus (with
``speaker_emotion``) the speaker's 25-D emotion of the same frame -> Linear, and speaker face tokens
-> Embedding; ``self_depth`` self-attention blocks on each; then ``cross_depth``
FIBER-style gated blocks in which the face and audio streams attend to each other. Their sum
(LayerNorm) is the speaker memory.

Listener side: past listener tokens -> Embedding (plus, with ``personality``, a learned projection
of the listener's five traits, the same at every frame; with ``history_frames``, the vector
``models/history.py`` pools from the listener's previous recording, added alike), ``self_depth``
blocks, ``cross_depth`` gated blocks attending to the speaker memory, LayerNorm; a linear head over
codes + PAD + MASK and (with ``emotion_head``) a linear emotion head on the same state, and (with
``eeg_head``, REACT 2026) a linear head estimating the listener's 14 EEG targets at every frame,
which generation reads out once per second at each second's last frame (``data/eeg_windows.py``):
the state at frame t depends on speaker frames <= t only, so the 1 Hz output is online too. The
emotion head regresses the listener's emotion at frame t directly; the sampled token history still
makes the K reactions differ, while the emotion no longer carries per-frame sampling noise (see
docs/quality.md).

Time alignment (one frame axis for every stream, identical in training and generation): position
t holds speaker frame t and the listener token of frame ``t - patch`` (MASK for t < patch); its
output predicts listener token t. With causal attention everywhere, listener token t depends on
speaker frames <= t and listener tokens <= t - patch, so a whole patch of ``patch`` tokens can be
sampled in parallel (next-patch prediction) while the online contract holds frame by frame.
Attention is windowed to ``context`` frames with rotary positions, so the sliding KV cache of the
generator is exact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

from reactcli.config import PredictorConfig, ReactConfig
from reactcli.editions import EEG_DIM, PERSONALITY_TRAITS
from reactcli.models.history import HistoryEncoder
from reactcli.models.layers import Block, CrossBlock
from reactcli.vocab import EMOTION_DIM, VALENCE_AROUSAL

if TYPE_CHECKING:
    from reactcli.models.tokenizer import FaceTokenizer


class CodeEmbedding(nn.Module):
    """Token id -> vector. ``grid``: a Linear over the code's FSQ coordinates, plus learned PAD/MASK.

    FSQ codes are points of a grid (levels [8, 5, 5, 5]: 1000 points in [-1, 1]^4), and neighbouring
    points decode to similar faces. A Linear over the coordinates shares what it learns across
    neighbours from the first step, where an embedding table (``table``, the paper's choice) must
    learn each of its 1000 rows from that code's own occurrences — measured in docs/quality.md.
    """

    def __init__(self, levels: Sequence[int], dim: int, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.codebook_size = math.prod(levels)
        if kind == "table":
            self.table = nn.Embedding(self.codebook_size + 2, dim)
            return
        self.register_buffer("levels", torch.tensor(list(levels)), persistent=False)
        self.register_buffer(
            "basis", torch.cumprod(torch.tensor([1, *levels[:-1]]), 0), persistent=False
        )
        self.proj = nn.Linear(len(levels), dim)
        self.special = nn.Embedding(2, dim)  # PAD, MASK

    def coordinates(self, tokens: Tensor) -> Tensor:
        """(..., len(levels)) FSQ coordinates of code ids (as FSQ normalises them: level / half width - 1)."""
        digits = (tokens.clamp(0, self.codebook_size - 1)[..., None] // self.basis) % self.levels
        half = (self.levels // 2).to(torch.float32)
        return (digits.to(torch.float32) - half) / half

    def forward(self, tokens: Tensor) -> Tensor:
        if self.kind == "table":
            return self.table(tokens)
        special = tokens >= self.codebook_size
        # Both paths always run, so every parameter takes part in every step (DDP requires it).
        specials = self.special((tokens - self.codebook_size).clamp(0, 1))
        return torch.where(special[..., None], specials, self.proj(self.coordinates(tokens)))


class ReactionPredictor(nn.Module):
    def __init__(self, cfg: PredictorConfig, audio_dim: int, levels: Sequence[int]) -> None:
        super().__init__()
        self.cfg = cfg
        self.audio_dim = audio_dim
        codebook_size = math.prod(levels)
        self.codebook_size = codebook_size
        self.pad_id = codebook_size
        self.mask_id = codebook_size + 1
        self.vocab_size = codebook_size + 2
        d, h, p, w = cfg.dim, cfg.heads, cfg.dropout, cfg.context_frames
        self.register_buffer("audio_mean", torch.zeros(audio_dim))
        self.register_buffer("audio_std", torch.ones(audio_dim))
        self.audio_proj = nn.Linear(audio_dim, d)
        if cfg.speaker_emotion:
            self.register_buffer("emotion_mean", torch.zeros(EMOTION_DIM))
            self.register_buffer("emotion_std", torch.ones(EMOTION_DIM))
            self.emotion_proj = nn.Linear(EMOTION_DIM, d)
        self.face_embed = CodeEmbedding(levels, d, cfg.code_embedding)
        self.listener_embed = CodeEmbedding(levels, d, cfg.code_embedding)
        self.face_blocks = nn.ModuleList(Block(d, h, p, w, None, rotary=True) for _ in range(cfg.self_depth))
        self.audio_blocks = nn.ModuleList(Block(d, h, p, w, None, rotary=True) for _ in range(cfg.self_depth))
        g = cfg.gate_init
        self.face_cross = nn.ModuleList(CrossBlock(d, h, p, w, True, g) for _ in range(cfg.cross_depth))
        self.audio_cross = nn.ModuleList(CrossBlock(d, h, p, w, True, g) for _ in range(cfg.cross_depth))
        self.speaker_norm = nn.LayerNorm(d)
        self.listener_blocks = nn.ModuleList(Block(d, h, p, w, None, rotary=True) for _ in range(cfg.self_depth))
        self.listener_cross = nn.ModuleList(CrossBlock(d, h, p, w, True, g) for _ in range(cfg.cross_depth))
        self.listener_norm = nn.LayerNorm(d)
        # REACT 2026's personalised condition: who listens, as the five traits (x - 1) / 4
        self.personality_proj = nn.Linear(len(PERSONALITY_TRAITS), d) if cfg.personality else None
        self.head = nn.Linear(d, self.vocab_size, bias=False)
        self.emotion_head = nn.Linear(d, EMOTION_DIM) if cfg.emotion_head else None
        # (the rules between these settings, e.g. linear_emotion_dims needs the skip path, are
        # checked when the configuration is loaded: reactcli/config.py)
        # Dims given by the fixed linear path alone: at the demo's budget the learned residual made
        # valence/arousal worse on unseen speakers on every seed (docs/quality.md).
        self.register_buffer(
            "linear_index", torch.tensor(_linear_dims(cfg), dtype=torch.long), persistent=False
        )
        if cfg.emotion_head and cfg.emotion_skip > 0:
            # A causal linear path from the speaker's last ``emotion_skip`` frames of (standardised)
            # audio features and emotion straight to the emotion: fitted in closed form (ridge) on
            # the train split before training and kept fixed (``fit_emotion_skip``), so the model
            # starts at the Ridge baseline and the transformer learns the residual (docs/quality.md).
            skip_in = audio_dim + (EMOTION_DIM if cfg.speaker_emotion else 0)
            self.emotion_skip = nn.Conv1d(skip_in, EMOTION_DIM, cfg.emotion_skip, bias=False)
        else:
            self.emotion_skip = None
        if cfg.emotion_head:
            # The head works in per-dim standardised units (train listener statistics): the metric
            # (CCC) weighs all 25 dims alike, while a raw MSE would let the high-variance dims
            # (AU25, AU26) drown the rarely firing AUs and the small expression probabilities.
            self.register_buffer("target_mean", torch.zeros(EMOTION_DIM))
            self.register_buffer("target_std", torch.ones(EMOTION_DIM))
        self.eeg_head = None
        if cfg.eeg_head:
            # REACT 2026's optional output, per channel in standardised units (masked train statistics):
            # raw channels and band powers have very different scales.
            self.eeg_head = nn.Linear(d, EEG_DIM)
            self.register_buffer("eeg_mean", torch.zeros(EEG_DIM))
            self.register_buffer("eeg_std", torch.ones(EEG_DIM))
        self.apply(_init)
        if self.emotion_skip is not None:
            nn.init.zeros_(self.emotion_skip.weight)  # the plain head until fitted
            self.emotion_skip.weight.requires_grad_(False)
        # REACT 2026's history condition (models/history.py), built last so that every other
        # weight starts as it does without it (the ablation compares like with like)
        self.history_encoder = None
        if cfg.history_frames > 0:
            self.history_encoder = HistoryEncoder(d)
            self.history_encoder.apply(_init)

    # -- inputs ----------------------------------------------------------------------------------
    def shift_listener(self, tokens: Tensor) -> Tensor:
        """Listener input of position t = token of frame t - patch; MASK before the first patch."""
        out = torch.full_like(tokens, self.mask_id)
        p = self.cfg.patch
        if tokens.shape[1] > p:
            out[:, p:] = tokens[:, :-p]
        return out

    # -- streams ---------------------------------------------------------------------------------
    def speaker(
        self,
        audio: Tensor,
        face_tokens: Tensor,
        pos: Tensor,
        padding: Tensor | None = None,
        cache: dict | None = None,
        emotion: Tensor | None = None,
    ) -> Tensor:
        """Speaker memory (B, T, d) for audio features (B, T, A), face tokens (B, T) and, when the
        model takes it, speaker emotion (B, T, 25) at frames ``pos``."""
        a = self.audio_proj(self.standardize_audio(audio))
        if self.cfg.speaker_emotion:
            a = a + self.emotion_proj(self.standardize_speaker_emotion(emotion))
        f = self.face_embed(face_tokens)
        if padding is not None:
            a = a.masked_fill(padding[..., None], 0.0)
        for i, (fb, ab) in enumerate(zip(self.face_blocks, self.audio_blocks, strict=True)):
            f = fb(f, pos, padding, _sub(cache, "face", i))
            a = ab(a, pos, padding, _sub(cache, "audio", i))
        for i, (fc, ac) in enumerate(zip(self.face_cross, self.audio_cross, strict=True)):
            f, a = (
                fc(f, a, pos, pos, padding, padding, _sub(cache, "face_x", i)),
                ac(a, f, pos, pos, padding, padding, _sub(cache, "audio_x", i)),
            )
        return self.speaker_norm(f + a)

    def standardize_audio(self, audio: Tensor) -> Tensor:
        return (audio - self.audio_mean) / self.audio_std.clamp_min(1e-6)

    def standardize_speaker_emotion(self, emotion: Tensor | None) -> Tensor:
        if emotion is None:
            raise ValueError("this predictor takes the speaker's emotion as an input")
        return (emotion - self.emotion_mean) / self.emotion_std.clamp_min(1e-6)

    def skip_features(self, audio: Tensor, emotion: Tensor | None, padding: Tensor | None = None) -> Tensor:
        """(B, T, F) standardised speaker inputs of the linear skip path (padded frames read 0)."""
        feats = self.standardize_audio(audio)
        if self.cfg.speaker_emotion:
            feats = torch.cat((feats, self.standardize_speaker_emotion(emotion)), -1)
        return feats if padding is None else feats.masked_fill(padding[..., None], 0.0)

    def skip(self, features: Tensor, history: Tensor | None = None) -> Tensor:
        """Skip-path output (B, T, 25) for ``features`` (B, T, F); ``history`` holds the frames just
        before them (B, emotion_skip - 1, F), zeros (the train mean) at the start of a clip."""
        assert self.emotion_skip is not None
        lookback = self.emotion_skip.kernel_size[0] - 1
        if history is None:
            history = features.new_zeros(features.shape[0], lookback, features.shape[-1])
        full = torch.cat((history, features), 1).transpose(1, 2)
        return self.emotion_skip(full).transpose(1, 2)

    @torch.no_grad()
    def fit_emotion_skip(
        self, audio: Sequence[Tensor], emotion: Sequence[Tensor | None], target: Sequence[Tensor], alpha: float
    ) -> None:
        """Fit the fixed linear path on train clips: (T, A) audio, (T, 25) speaker and listener emotion.

        Ridge over lags 0 .. emotion_skip - 1 of the standardised inputs, to the listener emotion in
        the head's standardised units; a frame before 0 reads 0, as :meth:`skip` pads it.
        """
        from reactcli.linear import solve_lagged

        assert self.emotion_skip is not None
        inputs = [self.skip_features(a[None], None if e is None else e[None])[0].double().cpu().numpy()
                  for a, e in zip(audio, emotion, strict=True)]
        targets = [self.standardize_emotion(y).double().cpu().numpy() for y in target]
        lookback = self.emotion_skip.kernel_size[0]
        weights, _ = solve_lagged(inputs, targets, np.arange(lookback), alpha)
        per_lag = torch.from_numpy(weights).float().view(lookback, -1, EMOTION_DIM)  # (lag, F, 25)
        # Conv1d tap k multiplies frame t - (lookback - 1 - k): tap order is lag order reversed.
        self.emotion_skip.weight.copy_(per_lag.flip(0).permute(2, 1, 0).to(self.emotion_skip.weight.device))

    def listener(
        self,
        listener_in: Tensor,
        pos: Tensor,
        memory: Tensor,
        memory_pos: Tensor,
        padding: Tensor | None = None,
        memory_padding: Tensor | None = None,
        cache: dict | None = None,
        personality: Tensor | None = None,
        past: Tensor | None = None,
    ) -> Tensor:
        """Listener state (B, T, d) for inputs (B, T) at ``pos`` given speaker memory at ``memory_pos``
        (and, for a model with ``personality``, the listener's (B, 5) traits; for a model with
        ``history_frames``, ``past``: the (B, d) vector :meth:`past` makes of the listener's history)."""
        x = self.listener_embed(listener_in)
        if self.personality_proj is not None:
            if personality is None:
                raise ValueError("this predictor takes the listener's personality (predictor.personality)")
            x = x + self.personality_proj(personality)[:, None, :]
        if self.history_encoder is not None:
            if past is None:
                raise ValueError("this predictor takes the listener's history (predictor.history_frames)")
            x = x + past[:, None, :]
        for i, block in enumerate(self.listener_blocks):
            x = block(x, pos, padding, _sub(cache, "listener", i))
        for i, block in enumerate(self.listener_cross):
            x = block(x, memory, pos, memory_pos, padding, memory_padding, _sub(cache, "listener_x", i))
        return self.listener_norm(x)

    def heads(
        self, state: Tensor, skip: Tensor | None = None, residual_scale: float = 1.0
    ) -> tuple[Tensor, Tensor | None]:
        """Token logits (B, T, vocab) and the emotion head's estimate (B, T, 25) in raw emotion units
        (None without a head); ``skip`` is the skip path's output for the same frames.

        ``residual_scale`` (generation only; training uses 1) shrinks the learned part towards the
        skip path: that part is fitted on teacher-forced states, but at generation it reads states
        built from the model's own sampled tokens, where it is noisier than on train (docs/quality.md,
        fourth round)."""
        if self.emotion_head is None:
            return self.head(state), None
        z = self.emotion_head(state)
        if residual_scale != 1.0:
            z = z * residual_scale
        if skip is not None:
            z = z + skip
            if len(self.linear_index):
                z = z.index_copy(-1, self.linear_index, skip.expand_as(z).index_select(-1, self.linear_index))
        return self.head(state), z * self.target_std + self.target_mean

    def standardize_emotion(self, emotion: Tensor) -> Tensor:
        """Raw listener emotion -> the head's standardised units (where its loss is computed)."""
        return (emotion - self.target_mean) / self.target_std

    def eeg(self, state: Tensor) -> Tensor:
        """The EEG head's estimate (B, T, 14) in the release's units (raw channels / 1000, band powers)
        for listener states (B, T, d): at frame t, of the EEG of the second holding t."""
        if self.eeg_head is None:
            raise ValueError("this predictor has no EEG head (predictor.eeg_head)")
        return self.eeg_head(state) * self.eeg_std + self.eeg_mean

    def standardize_eeg(self, eeg: Tensor) -> Tensor:
        """EEG targets -> the EEG head's standardised units (where its loss is computed)."""
        return (eeg - self.eeg_mean) / self.eeg_std

    def past(self, history: Tensor | None) -> Tensor | None:
        """The (B, d) vector of a (B, H, 84) history in model space (``models/history.py``); None
        for a model without the history condition (which refuses a history)."""
        if self.history_encoder is None:
            if history is not None:
                raise ValueError("this predictor does not take the listener's history (predictor.history_frames = 0)")
            return None
        if history is None:
            raise ValueError("this predictor takes the listener's history (predictor.history_frames)")
        return self.history_encoder(history)

    def forward(
        self,
        audio: Tensor,
        speaker_tokens: Tensor,
        listener_in: Tensor,
        padding: Tensor | None = None,
        emotion: Tensor | None = None,
        personality: Tensor | None = None,
        eeg: bool = False,
        history: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None] | tuple[Tensor, Tensor | None, Tensor]:
        """Training pass over aligned windows: logits predicting listener token t at position t, and
        the emotion head's estimate of the listener's emotion at t (None without a head); with
        ``eeg`` also the EEG head's estimate at t (:meth:`eeg`), as a third output. ``history`` is
        the listener's (B, H, 84) history in model space, for a model with ``history_frames``."""
        pos = torch.arange(audio.shape[1], device=audio.device)
        memory = self.speaker(audio, speaker_tokens, pos, padding, emotion=emotion)
        skip = None if self.emotion_skip is None else self.skip(self.skip_features(audio, emotion, padding))
        state = self.listener(listener_in, pos, memory, pos, padding, padding, personality=personality,
                              past=self.past(history))
        if eeg:
            return (*self.heads(state, skip), self.eeg(state))
        return self.heads(state, skip)


SKIP_RIDGE_ALPHA = 0.01  # ridge strength per frame of the fixed linear path (the Ridge baseline's default)


def build_predictor(
    cfg: ReactConfig, tokenizer: FaceTokenizer, train: Mapping[str, Tensor]
) -> tuple[ReactionPredictor, Tensor]:
    """A new predictor ready to train, and the mask of codes it may sample (``(vocab,)`` bool).

    ``train`` is the tokenised train split (``speaker_audio`` (N, T, A), ``speaker_emotion`` and
    ``listener_emotion`` (N, T, 25), ``listener_tokens`` (N, T)), stacked, or for recordings of
    different lengths (MARS) one array per recording. What the model takes from it before
    the first step: the standardisation statistics of its inputs and of the emotion head's target
    (train statistics only, defect 7 of docs/model.md), with ``predictor.eeg_head`` those of the EEG
    targets over their valid cells (``listener_eeg`` and ``listener_eeg_mask``), the fixed linear
    skip path (ridge, closed form) and the codes the train listeners use (generation never samples a
    code no listener made).
    """
    audio = _tensors(train["speaker_audio"])
    model = ReactionPredictor(cfg.predictor, audio[0].shape[-1], tokenizer.cfg.levels)
    mean, std = _frame_stats(audio)
    model.audio_mean.copy_(mean)
    model.audio_std.copy_(std.clamp_min(1e-3))
    if cfg.predictor.speaker_emotion:
        mean, std = _frame_stats(_tensors(train["speaker_emotion"]))
        model.emotion_mean.copy_(mean)
        model.emotion_std.copy_(std.clamp_min(1e-3))
    if cfg.predictor.emotion_head:
        mean, std = _frame_stats(_tensors(train["listener_emotion"]))
        model.target_mean.copy_(mean)
        model.target_std.copy_(std.clamp_min(1e-2))  # a never-firing AU stays at its mean
    if model.eeg_head is not None:
        mean, std = _masked_stats(_tensors(train["listener_eeg"]), _tensors(train["listener_eeg_mask"]))
        model.eeg_mean.copy_(mean)
        model.eeg_std.copy_(std.clamp_min(1e-3))
    if model.emotion_skip is not None:
        emotion_in = _tensors(train["speaker_emotion"]) if cfg.predictor.speaker_emotion else [None] * len(audio)
        model.fit_emotion_skip(audio, emotion_in, _tensors(train["listener_emotion"]), SKIP_RIDGE_ALPHA)
    codes = tokenizer.codebook_size
    valid = torch.zeros(model.vocab_size, dtype=torch.bool)
    tokens = train["listener_tokens"]
    for part in [tokens] if isinstance(tokens, Tensor) else _tensors(tokens):
        valid[:codes] |= torch.bincount(part.flatten(), minlength=codes)[:codes] > 0
    return model, valid


def _tensors(frames: Tensor | Sequence) -> Tensor | list[Tensor]:
    """A stacked (N, T, ...) tensor as it is; one array per recording as a list of tensors (no copy)."""
    return frames if isinstance(frames, Tensor) else [torch.as_tensor(np.asarray(a)) for a in frames]


def _frame_stats(frames: Tensor | Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Per-dim mean and (unbiased) std over every frame: of a stacked tensor as torch computes them,
    of recordings of different lengths accumulated in float64 one recording at a time (the MARS
    release's features do not fit in memory at once)."""
    if isinstance(frames, Tensor):
        flat = frames.flatten(0, 1)
        return flat.mean(0), flat.std(0)
    total = torch.zeros(frames[0].shape[-1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    count = 0
    for item in frames:
        x = item.double()
        total += x.sum(0)
        squares += (x * x).sum(0)
        count += len(x)
    mean = total / count
    var = (squares - count * mean * mean).clamp_min(0) / max(count - 1, 1)
    return mean.float(), var.sqrt().float()


def _masked_stats(values: Tensor | Sequence[Tensor], masks: Tensor | Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Per-dim mean and std over the frames whose mask is set (float64 sums); a dim with no valid
    frame gets mean 0 and std 1."""
    items = [values] if isinstance(values, Tensor) else values
    mask_items = [masks] if isinstance(masks, Tensor) else masks
    dim = items[0].shape[-1]
    total = torch.zeros(dim, dtype=torch.float64)
    squares = torch.zeros_like(total)
    count = torch.zeros_like(total)
    for x, m in zip(items, mask_items, strict=True):
        keep = (m.reshape(-1, dim) > 0.5).double()
        x = x.reshape(-1, dim).double() * keep
        total += x.sum(0)
        squares += (x * x).sum(0)
        count += keep.sum(0)
    mean = total / count.clamp_min(1)
    var = (squares - count * mean * mean).clamp_min(0) / (count - 1).clamp_min(1)
    std = torch.where(count > 1, var.sqrt(), torch.ones_like(var))
    return mean.float(), std.float()


def _linear_dims(cfg: PredictorConfig) -> tuple[int, ...]:
    if cfg.linear_emotion_dims == "valence_arousal_expressions":
        return tuple(range(VALENCE_AROUSAL[0], EMOTION_DIM))
    return VALENCE_AROUSAL if cfg.linear_emotion_dims == "valence_arousal" else ()


def _sub(cache: dict | None, name: str, index: int) -> dict | None:
    if cache is None:
        return None
    return cache.setdefault(f"{name}{index}", {})


def _init(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
