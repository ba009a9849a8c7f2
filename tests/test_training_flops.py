"""The FLOP count behind the logs' mfu column: equal to torch's FlopCounterMode on small models
(attention counted dense, as the masked kernel computes it), and the windowed count and peaks."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from reactcli.config import load_config
from reactcli.models.checkpoint import build_models
from reactcli.training.flops import (
    causal_pairs,
    peak_flops,
    predictor_forward,
    predictor_step_flops,
    tokenizer_forward,
    tokenizer_step_flops,
)

AUDIO = 10


def _config(**predictor: object):  # noqa: ANN202
    return load_config(None, {
        "tokenizer": {"dim": 32, "depth": 2, "decoder_depth": 1, "heads": 4, "window_frames": 8},
        "predictor": {"dim": 32, "heads": 4, "self_depth": 1, "cross_depth": 2, "context_frames": 16, "patch": 4,
                      **predictor},
    }, environ={})


def _counted(run) -> int:  # noqa: ANN001
    """FLOPs torch counts for ``run()`` (its math attention kernel, whose products the counter sees)."""
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


@pytest.mark.parametrize("variant", [
    {},                                                                  # the presets' kind: grid codes, emotion head
    {"emotion_skip": 5},                                                 # with the fixed skip path (a convolution)
    {"code_embedding": "table", "speaker_emotion": False, "emotion_head": False},  # the published model
    {"personality": True},
])
def test_predictor_count_equals_torchs_counter(variant: dict) -> None:
    cfg = _config(**variant)
    torch.manual_seed(0)
    _, model = build_models(cfg, AUDIO)
    b, t = 2, 24  # longer than the 16-frame window
    tokens = torch.randint(0, 1000, (b, t))
    traits = torch.rand(b, 5) if variant.get("personality") else None

    def step() -> None:
        logits, emotion = model(torch.randn(b, t, AUDIO), tokens, model.shift_listener(tokens),
                                emotion=torch.rand(b, t, 25), personality=traits)
        loss = logits.float().mean() + (emotion.mean() if emotion is not None else 0)
        loss.backward()

    count = predictor_forward(cfg, AUDIO, b, t, dense=True)
    assert _counted(step) == count.total
    with torch.no_grad():
        assert _counted(lambda: model(torch.randn(b, t, AUDIO), tokens, tokens, emotion=torch.rand(b, t, 25),
                                      personality=traits)) == count.forward


@pytest.mark.parametrize("emotion_only", [False, True])
def test_tokenizer_count_equals_torchs_counter(emotion_only: bool) -> None:
    """Both phases: everything trains, or the encoder runs without gradients and only the emotion
    decoder learns."""
    cfg = _config()
    torch.manual_seed(0)
    tokenizer, _ = build_models(cfg, AUDIO)
    b, t = 3, cfg.tokenizer.window_frames

    def step() -> None:
        loss, _ = tokenizer.loss(torch.randn(b, t, 58) * 0.1, torch.rand(b, t, 25), emotion_only=emotion_only)
        loss.backward()

    assert _counted(step) == tokenizer_forward(cfg, b, t, emotion_only, dense=True).total


def test_windowed_count_and_step_totals() -> None:
    assert causal_pairs(4, 2) == 1 + 2 + 2 + 2
    assert causal_pairs(4, 8, block=2) == 1 + 2 + 1 + 2
    assert causal_pairs(5, 5) == 15
    cfg = _config()
    dense, windowed = predictor_forward(cfg, AUDIO, 2, 24, dense=True), predictor_forward(cfg, AUDIO, 2, 24)
    attention_layers = 2 * 1 + 2 * 2 * 2 + 1 + 2 * 2  # self blocks + cross blocks (two attentions each)
    dim = 32
    assert dense.total - windowed.total == attention_layers * 3 * 4 * 2 * dim * (24 * 24 - causal_pairs(24, 16))
    # a step is the configured batch's training pass, plus a no-grad pass with scheduled sampling
    tc = cfg.training
    one = predictor_forward(cfg, AUDIO, tc.predictor_batch_size, tc.predictor_crop_frames)
    assert predictor_step_flops(cfg, AUDIO) == one.total
    sampled = cfg.model_copy(update={"training": tc.model_copy(update={"self_sampling": 0.2})})
    assert predictor_step_flops(sampled, AUDIO) == one.total + one.forward
    assert tokenizer_step_flops(cfg, True) < tokenizer_step_flops(cfg, False)


def test_peaks(monkeypatch: pytest.MonkeyPatch) -> None:
    assert peak_flops(torch.device("cpu")) is None
    assert peak_flops(torch.device("cpu"), 2.5) == 2.5e12
    for name, peak in (("NVIDIA H200", 989e12), ("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA H100 PCIe", 756e12),
                       ("NVIDIA GeForce GTX 1080", None)):
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None, _n=name: _n)
        assert peak_flops(torch.device("cuda")) == peak, name
