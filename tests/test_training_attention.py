"""The mask-free attention of training passes (``models/layers.py``: ``frame_aligned``): the same
attention as the masked form, and no mask where the CUDA flash kernel would refuse one."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reactcli.models.layers import Attention, attention_mask, frame_aligned


def _pair(heads: int = 4, dim: int = 32, window: int = 16, block: int | None = None) -> Attention:
    torch.manual_seed(0)
    return Attention(dim, heads, window, block, rotary=block is None)


@pytest.mark.parametrize(("frames", "window", "block"), [
    (12, 16, None),   # shorter than the window: plain causal
    (16, 16, None),   # exactly the window
    (40, 16, None),   # a sliding window: causal head, band-masked tail (more than two windows)
    (20, 16, None),   # a short tail
    (8, 8, 8),        # one tokenizer block
    (24, 8, 8),       # blocks folded into the batch
])
def test_aligned_attention_equals_the_masked_form(frames: int, window: int, block: int | None) -> None:
    attn = _pair(window=window, block=block)
    x = torch.randn(3, frames, 32, requires_grad=True)
    y = torch.randn(3, frames, 32, requires_grad=True)
    pos = torch.arange(frames)
    ref = attn(x, y, pos, pos)
    (ref * torch.linspace(-1, 1, 32)).sum().backward()
    grads = [x.grad.clone(), y.grad.clone(), *(p.grad.clone() for p in attn.parameters())]
    x.grad = y.grad = None
    attn.zero_grad()
    with frame_aligned():
        out = attn(x, y, pos, pos)
    (out * torch.linspace(-1, 1, 32)).sum().backward()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    for got, want in zip([x.grad, y.grad, *(p.grad for p in attn.parameters())], grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_cached_padded_or_unaligned_calls_keep_the_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside the context, a call with key padding, a cache, or blocks that do not tile the frames
    still takes the explicit mask (the same code as outside)."""
    calls = _record(monkeypatch)
    attn = _pair(window=8, block=8)
    x = torch.randn(2, 20, 32)
    pos = torch.arange(20)
    with frame_aligned():
        attn(x, x, pos, pos)  # 20 frames are not whole blocks of 8
        _pair()(x, x, pos, pos, key_padding=torch.zeros(2, 20, dtype=torch.bool))
    assert [c["mask"] for c in calls] == [True, True]
    calls.clear()
    with frame_aligned(False):
        _pair()(x[:, :12], x[:, :12], pos[:12], pos[:12])
    assert calls[0]["mask"]


def _record(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Record every scaled_dot_product_attention call: shapes, mask, is_causal."""
    calls: list[dict] = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, **kw):  # noqa: ANN001, ANN202
        calls.append({"q": tuple(q.shape), "k": tuple(k.shape), "mask": attn_mask is not None,
                      "causal": is_causal, "dh": q.shape[-1]})
        return real(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, **kw)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    return calls


def flash_eligible(call: dict) -> bool:
    """The CUDA flash kernel's rules (torch's sdp_utils.cpp, can_use_flash_attention) that depend on
    the call rather than on the device: no explicit mask, head dim <= 256, and with ``is_causal``
    as many queries as keys. (Dtype is bf16 under the loop's autocast.)"""
    square = call["q"][2] == call["k"][2]
    return not call["mask"] and call["dh"] <= 256 and (square or not call["causal"])


@pytest.mark.parametrize("preset", ["tiny", "paper"])
def test_training_passes_reach_the_flash_kernel(preset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A training forward of both models at the preset's sizes (paper: a short crop of the same
    window rule, 288 frames against a 256-frame window cut to 36 against 32) inside frame_aligned:
    every tokenizer call and most predictor attention work (by key pairs) need no mask."""
    from _model_fixtures import REPO

    from reactcli.config import load_config
    from reactcli.models.checkpoint import build_models

    cfg = load_config(REPO / "configs" / f"{preset}.toml", environ={})
    if preset == "paper":  # the same shape rule at a CPU-sized scale: crop = 9/8 of the window
        cfg = load_config(REPO / "configs" / f"{preset}.toml", {
            "predictor": {"context_frames": 32, "self_depth": 1, "cross_depth": 1},
            "tokenizer": {"depth": 1, "decoder_depth": 1},
            "training": {"predictor_crop_frames": 36}}, environ={})
    tokenizer, predictor = build_models(cfg, 12)
    calls = _record(monkeypatch)
    w = cfg.training.predictor_crop_frames
    with torch.no_grad(), frame_aligned():
        tokenizer.loss(torch.randn(4, cfg.tokenizer.window_frames, 58), torch.rand(4, cfg.tokenizer.window_frames, 25))
        tok_calls = list(calls)
        calls.clear()
        tokens = torch.randint(0, 1000, (2, w))
        predictor(torch.randn(2, w, 12), tokens, predictor.shift_listener(tokens), emotion=torch.rand(2, w, 25))
    assert tok_calls and all(flash_eligible(c) for c in tok_calls)
    work = {True: 0, False: 0}
    for c in calls:
        work[flash_eligible(c)] += c["q"][0] * c["q"][2] * c["k"][2]
    share = work[True] / (work[True] + work[False])
    assert share == 1.0 if w <= cfg.predictor.context_frames else 0.85 < share < 1.0
    # the masked tail is the band of queries past the window, against keys 1..T-1
    masked = [c for c in calls if c["mask"]]
    assert all(c["q"][2] == w - cfg.predictor.context_frames and c["k"][2] == w - 1 for c in masked)


def test_band_mask_of_the_tail_is_the_window_rule() -> None:
    frames = torch.arange(10)
    band = attention_mask(frames[4:], frames[1:], 4)
    assert band.shape == (6, 9)
    for qi, q in enumerate(range(4, 10)):
        assert band[qi].nonzero().flatten().add(1).tolist() == list(range(q - 3, q + 1))
