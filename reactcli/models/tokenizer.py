"""Stage 1: the FSQ face tokenizer — one discrete token per 3DMM frame, decodable to 3DMM and emotion.

Encoder: Linear(58 -> d) + learned in-window position, pre-LN blocks, final LayerNorm; Finite
Scalar Quantization (vector-quantize-pytorch's ``FSQ``: project d -> len(levels), tanh-bound,
round with a straight-through estimator, project back) gives prod(levels) codes with no auxiliary
loss; two decoders of the same shape map the quantized latent to the 58-D 3DMM and 25-D emotion.

Online by construction (defect 7 of the released code, docs/model.md): every block attends *causally within
aligned windows* of ``window_frames`` (w) frames — frame t sees frames ``w*floor(t/w) .. t`` only.
So the token of a speaker frame never depends on later frames, and a streaming caller can encode
or decode frame by frame with a KV cache and get exactly the tokens of a whole-clip pass.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from vector_quantize_pytorch import FSQ

from reactcli.config import TokenizerConfig
from reactcli.models.layers import Block, CacheTree
from reactcli.vocab import EMOTION_DIM, FACE_DIM, FACE_GROUPS


def grouped_l1(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Sum over face-part groups of each group's mean L1, and the per-group means (13,).

    ``weight`` (B, T) restricts the mean to valid frames. Summing group means (rather than one
    mean over 58 dims) keeps the small groups — blinks, smile — from being drowned by the 17 mouth
    coefficients.
    """
    err = (pred - target).abs()
    if weight is None:
        weight = torch.ones(err.shape[:-1], device=err.device, dtype=err.dtype)
    denom = weight.sum().clamp_min(1.0)
    groups = torch.stack([(err[..., a:b].mean(-1) * weight).sum() / denom for _, a, b in FACE_GROUPS])
    return groups.sum(), groups


class _Stack(nn.Module):
    """Input projection + in-window position + causal windowed blocks + LayerNorm."""

    def __init__(self, cfg: TokenizerConfig, depth: int, in_dim: int | None) -> None:
        super().__init__()
        self.window = w = cfg.window_frames
        self.proj = nn.Linear(in_dim, cfg.dim) if in_dim is not None else nn.Identity()
        self.pos = nn.Embedding(w, cfg.dim)
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.heads, cfg.dropout, w, w, rotary=False) for _ in range(depth))
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, x: Tensor, pos: Tensor, cache: list[dict] | None = None) -> Tensor:
        x = self.proj(x) + self.pos(torch.remainder(pos, self.window))
        for i, block in enumerate(self.blocks):
            x = block(x, pos, cache=None if cache is None else cache[i])
        return self.norm(x)


class FaceTokenizer(nn.Module):
    """Encoder -> FSQ -> (3DMM decoder, emotion decoder); works on normalised 3DMM.

    ``cfg.normalization`` is one of the organisers' two ``normalize_3dmm`` rules: ``zero_center``
    (x - mean_face) or ``standard`` ((x - mean_face) / std_face). The statistics are buffers, so a
    checkpoint carries them, and everything that leaves the model (``decode_tokens``) is raw 3DMM
    again, de-normalised with the same rule: generation, rendering and live mode never see model
    space.
    """

    def __init__(self, cfg: TokenizerConfig, mean_face: Tensor | None = None, std_face: Tensor | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("mean_face", torch.zeros(FACE_DIM) if mean_face is None else mean_face.float())
        self.register_buffer("std_face", torch.ones(FACE_DIM) if std_face is None else std_face.float())
        self.encoder = _Stack(cfg, cfg.depth, FACE_DIM)
        self.fsq = FSQ(levels=list(cfg.levels), dim=cfg.dim)
        self.face_decoder = _Stack(cfg, cfg.decoder_depth, None)
        self.face_head = nn.Linear(cfg.dim, FACE_DIM)
        self.emotion_decoder = _Stack(cfg, cfg.decoder_depth, None)
        self.emotion_head = nn.Linear(cfg.dim, EMOTION_DIM)

    @property
    def codebook_size(self) -> int:
        return math.prod(self.cfg.levels)

    # -- normalisation ---------------------------------------------------------------------------
    @property
    def standard(self) -> bool:
        return self.cfg.normalization == "standard"

    def normalize(self, face: Tensor) -> Tensor:
        """Raw 3DMM -> model space (minus mean face; also divided by std with ``standard``)."""
        x = face - self.mean_face
        return x / self.std_face.clamp_min(1e-6) if self.standard else x

    def denormalize(self, x: Tensor) -> Tensor:
        """Model space -> raw 3DMM: the inverse of :meth:`normalize` under the same rule."""
        if self.standard:
            x = x * self.std_face.clamp_min(1e-6)
        return x + self.mean_face

    # -- pieces ----------------------------------------------------------------------------------
    def encode(self, face: Tensor, pos: Tensor | None = None, cache: list[dict] | None = None) -> tuple[Tensor, Tensor]:
        """Raw 3DMM (B, T, 58) at frames ``pos`` -> quantized latent (B, T, d) and token ids (B, T)."""
        pos = _positions(face, pos)
        h = self.encoder(self.normalize(face), pos, cache)
        latent, indices = self.fsq(h)
        return latent, indices.long()

    def latent(self, tokens: Tensor) -> Tensor:
        """Token ids (B, T) -> quantized latent (B, T, d)."""
        return self.fsq.indices_to_codes(tokens)

    def decode_latent(
        self, latent: Tensor, pos: Tensor | None = None, cache: dict | None = None, face: bool = True,
        emotion: bool = True,
    ) -> tuple[Tensor | None, Tensor | None]:
        """Latent -> (normalised 3DMM or None, emotion or None). ``cache`` holds per-decoder KV caches.

        Either decoder can be skipped: generation with the predictor's emotion head needs no
        emotion decoder, the emotion-only training phase no face decoder."""
        pos = _positions(latent, pos)
        if emotion:
            emotion = self.emotion_head(self.emotion_decoder(latent, pos, None if cache is None else cache["emotion"]))
        else:
            emotion = None
        if not face:
            return None, emotion
        rec = self.face_head(self.face_decoder(latent, pos, None if cache is None else cache["face"]))
        return rec, emotion

    def decode_tokens(
        self, tokens: Tensor, pos: Tensor | None = None, cache: dict | None = None, emotion: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """Token ids (B, T) -> raw 3DMM (B, T, 58) (mean added back) and emotion (B, T, 25), or None
        with ``emotion=False``."""
        rec, emo = self.decode_latent(self.latent(tokens), pos, cache, emotion=emotion)
        return self.denormalize(rec), emo

    def new_encoder_cache(self, step: int | None = None) -> list[CacheTree]:
        """Per-block KV caches for streaming :meth:`encode`: growing ones, or with ``step`` static
        rings for steps of up to ``step`` frames (``models/layers.py``)."""
        return [CacheTree(step) for _ in self.encoder.blocks]

    def new_decoder_cache(self, step: int | None = None) -> dict[str, list[CacheTree]]:
        """Per-block KV caches of both decoders for streaming :meth:`decode_tokens` (``step`` as above)."""
        return {
            "face": [CacheTree(step) for _ in self.face_decoder.blocks],
            "emotion": [CacheTree(step) for _ in self.emotion_decoder.blocks],
        }

    # -- training --------------------------------------------------------------------------------
    def forward(
        self, face: Tensor, emotion: Tensor, emotion_only: bool = False, valid: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The training loss (:meth:`loss`): ``forward`` so that DistributedDataParallel can wrap it."""
        return self.loss(face, emotion, emotion_only, valid)

    def loss(
        self, face: Tensor, emotion: Tensor, emotion_only: bool = False, valid: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Grouped L1 on 3DMM + L1 on emotion; in the emotion-only phase only the emotion decoder learns.

        ``valid`` (B, T) marks real frames when a window was padded past a short recording's end
        (padding comes after the real frames, so causal attention never lets it reach them); the
        losses are means over the real frames only.
        """
        target = self.normalize(face)
        if emotion_only:
            with torch.no_grad():
                latent, indices = self.encode(face)
            _, emo = self.decode_latent(latent, face=False)
            emo_l1 = _masked_l1(emo, emotion, valid)
            return emo_l1, {"emotion": emo_l1.detach(), "indices": indices}
        latent, indices = self.encode(face)
        rec, emo = self.decode_latent(latent)
        weight = None if valid is None else valid.to(rec.dtype)
        face_loss, groups = grouped_l1(rec, target, weight)
        emo_l1 = _masked_l1(emo, emotion, valid)
        return face_loss + emo_l1, {
            "face": face_loss.detach(),
            "groups": groups.detach(),
            "emotion": emo_l1.detach(),
            "indices": indices,
        }


def _masked_l1(pred: Tensor, target: Tensor, valid: Tensor | None) -> Tensor:
    """Mean |pred - target| over the frames ``valid`` (B, T) marks (every frame without a mask)."""
    err = (pred - target).abs()
    if valid is None:
        return err.mean()
    weight = valid.to(err.dtype)
    return (err.mean(-1) * weight).sum() / weight.sum().clamp_min(1.0)


def _positions(x: Tensor, pos: Tensor | None) -> Tensor:
    return torch.arange(x.shape[1], device=x.device) if pos is None else pos


def codebook_usage(counts: Tensor) -> tuple[float, float]:
    """(% of codes used, perplexity) from a histogram of token ids — the collapse check."""
    total = counts.sum().clamp_min(1)
    p = counts.double() / total
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return float((counts > 0).double().mean() * 100.0), float(entropy.exp())
