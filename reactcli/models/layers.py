"""Transformer pieces shared by the tokenizer and the predictor, built for strictly online use.

Every attention layer here is *causal by construction*: a query at frame ``q`` may only see keys at
frames ``k`` with ``q - window < k <= q`` (and, in "blocked" mode, only keys of its own block of
``block`` frames, which is how the tokenizer restarts every window). The mask is computed from
explicit frame positions rather than from tensor indices, so exactly the same rule holds in
training (a whole window at once) and in streaming generation (a few new queries against a KV
cache) — the released code's train/inference misalignment (defect 8 in docs/model.md) cannot
reappear.

Key-padding masks have shape (B, Tk) and are broadcast as (B, 1, 1, Tk) (defect 2 in docs/model.md: the released
code reshaped them so samples received each other's masks). A query whose every key is padded
still sees itself, so softmax never produces NaN; such positions are excluded from the loss.

Two KV caches serve generation. :class:`KVCache` concatenates new keys and drops the ones no later
query can reach (its shape changes every step). :class:`RingKVCache` holds a fixed ring of
``window + step - 1`` slots written in place, with the frame position of every slot: the same keys
take part (the mask is built from positions, and empty slots sit outside every window), but every
tensor keeps its shape and address from step to step, so a per-frame step can be captured once as
a CUDA graph and replayed (``generate.py``). A :class:`CacheTree` holds one stack's caches and says
which kind its layers get.

**Fused attention kernels on CUDA.** ``scaled_dot_product_attention`` runs its flash kernel only
without an explicit mask, and its memory-efficient and cuDNN kernels (which take a mask) only for
head dims that are multiples of 8, which the paper preset's (30 and 21) are not: any mask sends it
to the unfused math kernel. A training pass (no cache, no key padding, positions 0..T-1 on both
sides) needs no mask for most of its queries: inside :func:`frame_aligned`, a window no longer than
the attention window is plain causal attention (``is_causal``), a blocked window (the tokenizer)
is folded into one causal row per block, and a sliding window longer than the attention window
attends causally for its first ``window`` queries and with a mask only for the rest. The result
is the masked attention's up to float rounding (``tests/test_training_attention.py``); outside the
context (generation, every cached or padded call) nothing changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def attention_mask(q_pos: Tensor, k_pos: Tensor, window: int, block: int | None = None) -> Tensor:
    """Boolean (Tq, Tk) mask, True where query frame may attend key frame (causal, windowed)."""
    q = q_pos[:, None]
    k = k_pos[None, :]
    allowed = (k <= q) & (k > q - window)
    if block is not None:
        allowed &= torch.div(k, block, rounding_mode="floor") == torch.div(q, block, rounding_mode="floor")
    return allowed


_ALIGNED = [False]  # inside frame_aligned(): a training pass whose positions are 0..T-1 on both sides


@contextmanager
def frame_aligned(enabled: bool = True) -> Iterator[None]:
    """Within, attention without a cache or key padding takes its query and key positions to be the
    frames 0..T-1 of one window (what both models' training forwards pass) and picks the mask-free
    form of the same attention (the module docstring). The training loop enters it on CUDA; a caller
    whose positions are anything else must not."""
    before = _ALIGNED[0]
    _ALIGNED[0] = enabled
    try:
        yield
    finally:
        _ALIGNED[0] = before


def aligned_attention(q: Tensor, k: Tensor, v: Tensor, window: int, block: int | None) -> Tensor | None:
    """Causal windowed attention of frames 0..T-1 (q, k, v (B, H, T, Dh)) in a form the fused kernels
    take, or None where no such form applies (the caller then builds the mask).

    ``T <= window`` (and within one block): plain causal. Blocks of ``block <= window`` frames that
    tile T: each block its own causal row (blocks folded into the batch). ``T > window`` without
    blocks: queries 0..window-1 causal, the later ones against keys 1..T-1 with a band mask.
    """
    t = q.shape[2]
    if k.shape[2] != t or k.shape[0] != q.shape[0]:
        return None
    if block is not None:
        if block > window or t % block:
            return None
        if t == block:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        b, h, _, dh = q.shape
        n = t // block

        def fold(x: Tensor) -> Tensor:  # (B, H, n * block, Dh) -> (B * n, H, block, Dh)
            return x.unflatten(2, (n, block)).transpose(1, 2).flatten(0, 1)

        out = F.scaled_dot_product_attention(fold(q), fold(k), fold(v), is_causal=True)
        return out.unflatten(0, (b, n)).transpose(1, 2).flatten(2, 3)
    if t <= window:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    head = F.scaled_dot_product_attention(q[:, :, :window], k[:, :, :window], v[:, :, :window], is_causal=True)
    frames = torch.arange(t, device=q.device)
    band = attention_mask(frames[window:], frames[1:], window)  # query t sees keys t - window + 1 .. t
    tail = F.scaled_dot_product_attention(q[:, :, window:], k[:, :, 1:], v[:, :, 1:], attn_mask=band)
    return torch.cat((head, tail), dim=2)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding: attention depends on frame *offsets* only.

    That makes a sliding-window KV cache exact — keys are rotated once with their absolute frame
    index when they enter the cache and never need re-encoding as the window slides — and it lets a
    model trained on 288-frame windows run over clips of any length.
    """

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embedding needs an even head dimension, got {head_dim}")
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x: Tensor, pos: Tensor) -> Tensor:
        """Rotate ``x`` (B, H, T, D) by the angles of frame positions ``pos`` (T,)."""
        angles = pos.to(torch.float32)[:, None] * self.inv_freq[None, :]
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


@dataclass
class KVCache:
    """Keys/values (already projected and rotated) and their frame positions for one attention layer.

    Grows by concatenation and is trimmed after each step to the keys later queries can still see.
    """

    k: Tensor | None = None
    v: Tensor | None = None
    pos: Tensor | None = None
    extra: dict = field(default_factory=dict)

    def extend(self, k: Tensor, v: Tensor, pos: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if self.k is not None:
            k = torch.cat((self.k, k), dim=2)
            v = torch.cat((self.v, v), dim=2)
            pos = torch.cat((self.pos, pos))
        self.k, self.v, self.pos = k, v, pos
        return k, v, pos

    def trim(self, next_query: int, window: int, block: int | None) -> None:
        """Drop keys that no query at frame >= ``next_query`` can see any more."""
        if self.pos is None:
            return
        keep = self.pos > next_query - window
        if block is not None:
            keep &= self.pos >= (next_query // block) * block
        if not bool(keep.all()):
            self.k, self.v, self.pos = self.k[:, :, keep], self.v[:, :, keep], self.pos[keep]

    # the interface Attention calls (shared with RingKVCache)
    def keys(
        self, k: Tensor, v: Tensor, pos: Tensor, window: int, block: int | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        return self.extend(k, v, pos)

    def done(self, q_pos: Tensor, window: int, block: int | None) -> None:
        self.trim(int(q_pos.max()) + 1, window, block)

    def tensors(self) -> list[Tensor]:
        return [t for t in (self.k, self.v, self.pos) if t is not None]


#: Frame position of a ring slot that holds no key yet: below every window and every block.
EMPTY_POSITION = -(2**40)


class RingKVCache:
    """A static-shape sliding KV cache: ``window + step - 1`` slots written in place.

    Frame p goes to slot ``p % slots``, so the newest ``slots`` frames are always held. A step of n
    <= ``step`` new frames starting at frame p0 overwrites frames <= p0 - window, which no query of
    this step (or later) can see: the first query needs frames > p0 - window. The slot positions go
    into the attention mask, so the keys that take part are exactly those of :class:`KVCache`; only
    their order in memory differs (ring order), which changes sums by float rounding alone.

    The buffers are allocated at the first step (when the batch and head sizes are known) and then
    never change shape or address, and no step reads a value back to the host: what a captured CUDA
    graph needs. ``clear()`` empties the cache in place.
    """

    def __init__(self, step: int) -> None:
        if step < 1:
            raise ValueError(f"a ring cache needs step >= 1, got {step}")
        self.step = step
        self.k: Tensor | None = None
        self.v: Tensor | None = None
        self.pos: Tensor | None = None

    def keys(
        self, k: Tensor, v: Tensor, pos: Tensor, window: int, block: int | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        if k.shape[2] > self.step:
            raise ValueError(f"a ring cache built for steps of <= {self.step} frames got {k.shape[2]}")
        if self.k is None:
            b, h, _, d = k.shape
            slots = window + self.step - 1
            self.k = k.new_zeros(b, h, slots, d)
            self.v = v.new_zeros(b, h, slots, d)
            self.pos = torch.full((slots,), EMPTY_POSITION, dtype=torch.long, device=k.device)
        at = torch.remainder(pos, self.pos.shape[0])
        self.k.index_copy_(2, at, k)
        self.v.index_copy_(2, at, v)
        self.pos.index_copy_(0, at, pos.to(torch.long))
        return self.k, self.v, self.pos

    def done(self, q_pos: Tensor, window: int, block: int | None) -> None:
        """Nothing to trim: old keys are overwritten in place."""

    def clear(self) -> None:
        if self.pos is not None:
            self.pos.fill_(EMPTY_POSITION)
            self.k.zero_()
            self.v.zero_()

    def tensors(self) -> list[Tensor]:
        return [t for t in (self.k, self.v, self.pos) if t is not None]


class CacheTree(dict):
    """The KV caches of one stack, nested by module name as the modules ask for them.

    ``step=None`` gives every attention layer a :class:`KVCache`, ``step=n`` a :class:`RingKVCache`
    for steps of up to n frames. Modules create their sub-caches with ``cache.setdefault(name, {})``;
    here that always makes a child tree of the same kind (the default passed is not used), so the
    whole tree is of one kind however deeply the modules nest it.
    """

    def __init__(self, step: int | None = None) -> None:
        super().__init__()
        self.step = step

    def setdefault(self, key: str, default: object = None) -> CacheTree:  # type: ignore[override]
        if key not in self:
            self[key] = CacheTree(self.step)
        return self[key]

    def slot(self, name: str) -> KVCache | RingKVCache:
        if name not in self:
            self[name] = KVCache() if self.step is None else RingKVCache(self.step)
        return self[name]

    def caches(self) -> list[KVCache | RingKVCache]:
        """Every layer cache in the tree."""
        out: list[KVCache | RingKVCache] = []
        for value in self.values():
            out.extend(value.caches() if isinstance(value, CacheTree) else [value])
        return out

    def clear_caches(self) -> None:
        """Empty every layer cache; ring buffers are cleared in place (their addresses are kept)."""
        for key, value in list(self.items()):
            if isinstance(value, CacheTree):
                value.clear_caches()
            elif isinstance(value, RingKVCache):
                value.clear()
            else:
                self[key] = KVCache()


class Attention(nn.Module):
    """Multi-head attention: no biases, no probability dropout, causal by frame position, optional KV cache."""

    def __init__(
        self, dim: int, heads: int, window: int, block: int | None = None, rotary: bool = False
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.window = window
        self.block = block
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_kv = nn.Linear(dim, 2 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim, bias=False)
        self.rotary = RotaryEmbedding(dim // heads) if rotary else None

    def _split(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)

    def forward(
        self,
        x: Tensor,
        context: Tensor,
        q_pos: Tensor,
        k_pos: Tensor,
        key_padding: Tensor | None = None,
        cache: KVCache | RingKVCache | None = None,
    ) -> Tensor:
        """Attend from ``x`` (B, Tq, D) at frames ``q_pos`` to ``context`` (Bc, Tk, D) at ``k_pos``.

        ``key_padding`` (B, Tk) is True for padded keys. With a ``cache`` the new keys join the
        cached ones (:class:`KVCache` or :class:`RingKVCache`). A context batch Bc smaller than B
        is shared by groups of B / Bc consecutive queries (generation: the K reactions of one
        speaker read that speaker's memory); those queries are folded into one query axis per
        context row, so the keys are neither copied nor expanded.
        """
        q = self._split(self.to_q(x))
        k, v = self._kv(context)
        if self.rotary is not None:
            q = self.rotary(q, q_pos)
            k = self.rotary(k, k_pos)
        if cache is not None:
            if key_padding is not None:
                raise ValueError("key padding is a training-time feature; the KV cache does not take it")
            k, v, k_pos = cache.keys(k, v, k_pos, self.window, self.block)
        elif key_padding is None and _ALIGNED[0]:
            out = aligned_attention(q, k, v, self.window, self.block)
            if out is not None:
                b, h, t, dh = q.shape
                return self.to_out(out.transpose(1, 2).reshape(b, t, h * dh))
        mask = attention_mask(q_pos, k_pos, self.window, self.block)[None, None]  # (1, 1, Tq, Tk)
        if key_padding is not None:
            mask = mask & ~key_padding[:, None, None, :]  # (B, 1, Tq, Tk): each sample its own mask
            mask = mask | (q_pos[:, None] == k_pos[None, :])[None, None]  # never an empty row
        b, h, t, dh = q.shape
        group = b // k.shape[0] if k.shape[0] <= b else 0
        if group != 1:
            if key_padding is not None or group == 0 or b != group * k.shape[0]:
                raise ValueError(f"{b} query rows cannot share a context batch of {k.shape[0]}")
            # (Bc * g, H, Tq, Dh) -> (Bc, H, g * Tq, Dh): each context row's g query rows in one axis
            q = q.view(k.shape[0], group, h, t, dh).transpose(1, 2).reshape(k.shape[0], h, group * t, dh)
            mask = mask.repeat(1, 1, group, 1)
        # No dropout on the attention probabilities: on CPU it forces SDPA's slow math path (70 % of
        # a tiny-preset training step); residual and MLP dropout still regularise.
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        if group != 1:
            out = out.view(k.shape[0], h, group, t, dh).transpose(1, 2).reshape(b, h, t, dh)
        if cache is not None:
            cache.done(q_pos, self.window, self.block)
        return self.to_out(out.transpose(1, 2).reshape(b, t, h * dh))

    def _kv(self, context: Tensor) -> tuple[Tensor, Tensor]:
        k, v = self.to_kv(context).chunk(2, dim=-1)
        return self._split(k), self._split(v)


class FeedForward(nn.Module):
    """Pre-LN GELU MLP with 4x expansion and no biases (as in the paper's blocks)."""

    def __init__(self, dim: int, dropout: float, mult: int = 4) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, bias=False)
        self.net = nn.Sequential(
            nn.Linear(dim, mult * dim, bias=False),
            nn.GELU(),
            nn.Linear(mult * dim, dim, bias=False),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.norm(x))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + SelfAttn(LN x), then x + MLP(LN x)."""

    def __init__(self, dim: int, heads: int, dropout: float, window: int, block: int | None, rotary: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, bias=False)
        self.attn = Attention(dim, heads, window, block, rotary)
        self.drop = nn.Dropout(dropout)
        self.ff = FeedForward(dim, dropout)

    def forward(
        self, x: Tensor, pos: Tensor, key_padding: Tensor | None = None, cache: dict | None = None
    ) -> Tensor:
        h = self.norm(x)
        x = x + self.drop(self.attn(h, h, pos, pos, key_padding, _slot(cache, "self")))
        return x + self.ff(x)


class CrossBlock(nn.Module):
    """FIBER-style gated fusion: x + SelfAttn(LN x) + alpha * CrossAttn(LN x, LN y), then x + MLP.

    ``alpha`` starts at ``gate_init``. FIBER starts it at 0 (the paper's choice), which suits fusing
    two pre-trained towers; trained from scratch, a closed gate keeps the speaker out of the
    listener stream for hundreds of steps (docs/quality.md), so the presets open it (1.0).
    The block returns its fused output exactly once (defect 3 in docs/model.md: the
    released code returned it twice, so only the first block ever fused the streams). Cross
    attention is causal too: a query at frame t sees the other stream only at frames <= t.
    """

    def __init__(
        self, dim: int, heads: int, dropout: float, window: int, rotary: bool, gate_init: float = 0.0
    ) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, bias=False)
        self.norm_ctx = nn.LayerNorm(dim, bias=False)
        self.self_attn = Attention(dim, heads, window, None, rotary)
        self.cross_attn = Attention(dim, heads, window, None, rotary)
        self.alpha = nn.Parameter(torch.full((1,), float(gate_init)))
        self.drop = nn.Dropout(dropout)
        self.ff = FeedForward(dim, dropout)

    def forward(
        self,
        x: Tensor,
        y: Tensor,
        pos: Tensor,
        y_pos: Tensor,
        key_padding: Tensor | None = None,
        y_padding: Tensor | None = None,
        cache: dict | None = None,
    ) -> Tensor:
        h = self.norm(x)
        hy = self.norm_ctx(y)
        fused = self.self_attn(h, h, pos, pos, key_padding, _slot(cache, "self"))
        fused = fused + self.alpha * self.cross_attn(h, hy, pos, y_pos, y_padding, _slot(cache, "cross"))
        x = x + self.drop(fused)
        return x + self.ff(x)


def _slot(cache: dict | None, name: str) -> KVCache | RingKVCache | None:
    if cache is None:
        return None
    if isinstance(cache, CacheTree):
        return cache.slot(name)
    if name not in cache:
        cache[name] = KVCache()
    return cache[name]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
