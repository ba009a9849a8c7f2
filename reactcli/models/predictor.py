"""Stage 2: the cross-modal reaction predictor (speaker audio + speaker face tokens -> listener tokens).

Speaker side: per-frame audio features (cached by ``react preprocess``; standardised with *train
set* statistics stored in the model, never whole-clip statistics — defect 7) -> Linear, and speaker
face tokens -> Embedding; ``self_depth`` self-attention blocks on each; then ``cross_depth``
FIBER-style gated blocks in which the face and audio streams attend to each other. Their sum
(LayerNorm) is the speaker memory.

Listener side: past listener tokens -> Embedding, ``self_depth`` blocks, ``cross_depth`` gated
blocks attending to the speaker memory, LayerNorm, linear head over codes + PAD + MASK.

Time alignment (one frame axis for every stream, identical in training and generation): position
t holds speaker frame t and the listener token of frame ``t - patch`` (MASK for t < patch); its
output predicts listener token t. With causal attention everywhere, listener token t depends on
speaker frames <= t and listener tokens <= t - patch, so a whole patch of ``patch`` tokens can be
sampled in parallel (next-patch prediction) while the online contract holds frame by frame.
Attention is windowed to ``context`` frames with rotary positions, so the sliding KV cache of the
generator is exact.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from reactcli.config import PredictorConfig
from reactcli.models.layers import Block, CrossBlock


class ReactionPredictor(nn.Module):
    def __init__(self, cfg: PredictorConfig, audio_dim: int, codebook_size: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.audio_dim = audio_dim
        self.codebook_size = codebook_size
        self.pad_id = codebook_size
        self.mask_id = codebook_size + 1
        self.vocab_size = codebook_size + 2
        d, h, p, w = cfg.dim, cfg.heads, cfg.dropout, cfg.context
        self.register_buffer("audio_mean", torch.zeros(audio_dim))
        self.register_buffer("audio_std", torch.ones(audio_dim))
        self.audio_proj = nn.Linear(audio_dim, d)
        self.face_embed = nn.Embedding(self.vocab_size, d)
        self.listener_embed = nn.Embedding(self.vocab_size, d)
        self.face_blocks = nn.ModuleList(Block(d, h, p, w, None, rotary=True) for _ in range(cfg.self_depth))
        self.audio_blocks = nn.ModuleList(Block(d, h, p, w, None, rotary=True) for _ in range(cfg.self_depth))
        self.face_cross = nn.ModuleList(CrossBlock(d, h, p, w, rotary=True) for _ in range(cfg.cross_depth))
        self.audio_cross = nn.ModuleList(CrossBlock(d, h, p, w, rotary=True) for _ in range(cfg.cross_depth))
        self.speaker_norm = nn.LayerNorm(d)
        self.listener_blocks = nn.ModuleList(Block(d, h, p, w, None, rotary=True) for _ in range(cfg.self_depth))
        self.listener_cross = nn.ModuleList(CrossBlock(d, h, p, w, rotary=True) for _ in range(cfg.cross_depth))
        self.listener_norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, self.vocab_size, bias=False)
        self.apply(_init)

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
    ) -> Tensor:
        """Speaker memory (B, T, d) for audio features (B, T, A) and face tokens (B, T) at frames ``pos``."""
        a = self.audio_proj((audio - self.audio_mean) / self.audio_std.clamp_min(1e-6))
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

    def listener(
        self,
        listener_in: Tensor,
        pos: Tensor,
        memory: Tensor,
        memory_pos: Tensor,
        padding: Tensor | None = None,
        memory_padding: Tensor | None = None,
        cache: dict | None = None,
    ) -> Tensor:
        """Logits (B, T, vocab) for listener inputs (B, T) at ``pos`` given speaker memory at ``memory_pos``."""
        x = self.listener_embed(listener_in)
        for i, block in enumerate(self.listener_blocks):
            x = block(x, pos, padding, _sub(cache, "listener", i))
        for i, block in enumerate(self.listener_cross):
            x = block(x, memory, pos, memory_pos, padding, memory_padding, _sub(cache, "listener_x", i))
        return self.head(self.listener_norm(x))

    def forward(
        self, audio: Tensor, speaker_tokens: Tensor, listener_in: Tensor, padding: Tensor | None = None
    ) -> Tensor:
        """Training pass over aligned windows: logits (B, T, vocab) predicting listener token t at position t."""
        pos = torch.arange(audio.shape[1], device=audio.device)
        memory = self.speaker(audio, speaker_tokens, pos, padding)
        return self.listener(listener_in, pos, memory, pos, padding, padding)

    def new_cache(self) -> dict:
        return {}


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
