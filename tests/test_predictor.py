"""Predictor: causal attention everywhere, per-sample key padding, every gated block fuses, sizes."""

from __future__ import annotations

import torch
from _model_fixtures import random_model

from reactcli.config import PredictorConfig
from reactcli.models.layers import count_parameters
from reactcli.models.predictor import ReactionPredictor


def inputs(model: ReactionPredictor, b: int = 2, t: int = 40):
    g = torch.Generator().manual_seed(1)
    audio = torch.randn(b, t, model.audio_dim, generator=g)
    speaker = torch.randint(0, model.codebook_size, (b, t), generator=g)
    listener = torch.randint(0, model.codebook_size, (b, t), generator=g)
    return audio, speaker, listener


def test_training_forward_is_causal_in_audio() -> None:
    model = random_model().predictor
    audio, speaker, listener = inputs(model)
    audio.requires_grad_(True)
    t = 17
    logits = model(audio, speaker, model.shift_listener(listener))
    logits[:, t].square().sum().backward()
    assert float(audio.grad[:, t + 1 :].abs().max()) == 0.0
    assert float(audio.grad[:, : t + 1].abs().max()) > 0.0


def test_training_forward_is_causal_in_tokens() -> None:
    model = random_model().predictor
    audio, speaker, listener = inputs(model)
    t, p = 21, model.cfg.patch
    base = model(audio, speaker, model.shift_listener(listener))
    s2 = speaker.clone()
    s2[:, t + 1 :] = (s2[:, t + 1 :] + 5) % model.codebook_size
    out = model(audio, s2, model.shift_listener(listener))
    torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1], rtol=0, atol=0)
    assert not torch.allclose(out[:, t + 1 :], base[:, t + 1 :])
    # listener token t - patch + 1 onwards must not influence the prediction of token t
    l2 = listener.clone()
    l2[:, t - p + 1 :] = (l2[:, t - p + 1 :] + 3) % model.codebook_size
    out = model(audio, speaker, model.shift_listener(l2))
    torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1], rtol=0, atol=0)


def test_key_padding_is_per_sample() -> None:
    model = random_model().predictor
    audio, speaker, listener = inputs(model, b=3)
    padding = torch.zeros(3, 40, dtype=torch.bool)
    padding[0, :9] = True
    padding[2, :25] = True
    batched = model(audio, speaker, model.shift_listener(listener), padding)
    alone = model(audio[1:2], speaker[1:2], model.shift_listener(listener[1:2]))
    torch.testing.assert_close(batched[1], alone[0], rtol=1e-5, atol=1e-5)
    assert torch.isfinite(batched).all()
    # the padded sample equals the same sequence with its padded prefix removed
    cut = model(audio[0:1, 9:], speaker[0:1, 9:], model.shift_listener(listener[0:1, 9:]))
    l_in = model.shift_listener(listener[0:1, 9:])
    pad_in = torch.full((1, 40), model.pad_id)
    pad_in[:, 9:] = l_in
    s_in = speaker[0:1].clone()
    s_in[:, :9] = model.pad_id
    padded = model(audio[0:1], s_in, pad_in, padding[0:1])
    torch.testing.assert_close(padded[0, 9:], cut[0], rtol=1e-4, atol=1e-4)


def test_every_cross_block_fuses_once() -> None:
    model = random_model().predictor  # gates open: a discarded block output would get no gradient
    audio, speaker, listener = inputs(model)
    model(audio, speaker, model.shift_listener(listener)).square().mean().backward()
    gates = [m.alpha for m in model.modules() if hasattr(m, "alpha")]
    assert len(gates) == 3 * model.cfg.cross_depth
    assert all(float(g.grad.abs()) > 0 for g in gates)  # each gate changes the output


def test_gates_start_closed_and_vocab_has_specials() -> None:
    model = ReactionPredictor(PredictorConfig(dim=32, heads=4, self_depth=1, cross_depth=2), 78, 1000)
    assert all(m.alpha.item() == 0.0 for m in model.modules() if hasattr(m, "alpha"))
    assert (model.pad_id, model.mask_id, model.vocab_size) == (1000, 1001, 1002)
    shifted = model.shift_listener(torch.arange(40)[None])
    assert (shifted[0, : model.cfg.patch] == model.mask_id).all()
    assert torch.equal(shifted[0, model.cfg.patch :], torch.arange(40 - model.cfg.patch))


def test_paper_size_is_about_86m_parameters() -> None:
    with torch.device("meta"):
        model = ReactionPredictor(PredictorConfig(), 512, 1000)
    assert 80e6 < count_parameters(model) < 95e6
