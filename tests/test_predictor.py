"""Predictor: causal attention everywhere, per-sample key padding, every gated block fuses, sizes."""

from __future__ import annotations

import pytest
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


def run(model: ReactionPredictor, audio, speaker, listener_in, padding=None, emotion=None):
    """Token logits of a training pass; the speaker's emotion defaults to zeros."""
    if emotion is None:
        emotion = torch.zeros(*audio.shape[:2], 25)
    return model(audio, speaker, listener_in, padding, emotion=emotion)[0]


def test_training_forward_is_causal_in_audio() -> None:
    model = random_model().predictor
    audio, speaker, listener = inputs(model)
    audio.requires_grad_(True)
    t = 17
    logits = run(model, audio, speaker, model.shift_listener(listener))
    logits[:, t].square().sum().backward()
    assert float(audio.grad[:, t + 1 :].abs().max()) == 0.0
    assert float(audio.grad[:, : t + 1].abs().max()) > 0.0


def test_training_forward_is_causal_in_tokens() -> None:
    model = random_model().predictor
    audio, speaker, listener = inputs(model)
    t, p = 21, model.cfg.patch
    base = run(model, audio, speaker, model.shift_listener(listener))
    s2 = speaker.clone()
    s2[:, t + 1 :] = (s2[:, t + 1 :] + 5) % model.codebook_size
    out = run(model, audio, s2, model.shift_listener(listener))
    torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1], rtol=0, atol=0)
    assert not torch.allclose(out[:, t + 1 :], base[:, t + 1 :])
    # listener token t - patch + 1 onwards must not influence the prediction of token t
    l2 = listener.clone()
    l2[:, t - p + 1 :] = (l2[:, t - p + 1 :] + 3) % model.codebook_size
    out = run(model, audio, speaker, model.shift_listener(l2))
    torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1], rtol=0, atol=0)


def test_key_padding_is_per_sample() -> None:
    model = random_model().predictor
    audio, speaker, listener = inputs(model, b=3)
    padding = torch.zeros(3, 40, dtype=torch.bool)
    padding[0, :9] = True
    padding[2, :25] = True
    batched = run(model, audio, speaker, model.shift_listener(listener), padding)
    alone = run(model, audio[1:2], speaker[1:2], model.shift_listener(listener[1:2]))
    torch.testing.assert_close(batched[1], alone[0], rtol=1e-5, atol=1e-5)
    assert torch.isfinite(batched).all()
    # the padded sample equals the same sequence with its padded prefix removed
    cut = run(model, audio[0:1, 9:], speaker[0:1, 9:], model.shift_listener(listener[0:1, 9:]))
    l_in = model.shift_listener(listener[0:1, 9:])
    pad_in = torch.full((1, 40), model.pad_id)
    pad_in[:, 9:] = l_in
    s_in = speaker[0:1].clone()
    s_in[:, :9] = model.pad_id
    padded = run(model, audio[0:1], s_in, pad_in, padding[0:1])
    torch.testing.assert_close(padded[0, 9:], cut[0], rtol=1e-4, atol=1e-4)


def test_every_cross_block_fuses_once() -> None:
    model = random_model().predictor  # gates open: a discarded block output would get no gradient
    audio, speaker, listener = inputs(model)
    run(model, audio, speaker, model.shift_listener(listener)).square().mean().backward()
    gates = [m.alpha for m in model.modules() if hasattr(m, "alpha")]
    assert len(gates) == 3 * model.cfg.cross_depth
    assert all(float(g.grad.abs()) > 0 for g in gates)  # each gate changes the output


def test_gates_start_at_their_setting_and_vocab_has_specials() -> None:
    closed = ReactionPredictor(PredictorConfig(dim=32, heads=4, cross_depth=2, gate_init=0.0), 78, [8, 5, 5, 5])
    assert all(m.alpha.item() == 0.0 for m in closed.modules() if hasattr(m, "alpha"))
    model = ReactionPredictor(PredictorConfig(dim=32, heads=4, self_depth=1, cross_depth=2), 78, [8, 5, 5, 5])
    assert all(m.alpha.item() == 1.0 for m in model.modules() if hasattr(m, "alpha"))  # the default opens them
    assert (model.pad_id, model.mask_id, model.vocab_size) == (1000, 1001, 1002)
    shifted = model.shift_listener(torch.arange(40)[None])
    assert (shifted[0, : model.cfg.patch] == model.mask_id).all()
    assert torch.equal(shifted[0, model.cfg.patch :], torch.arange(40 - model.cfg.patch))


def test_paper_size_is_about_86m_parameters() -> None:
    with torch.device("meta"):
        model = ReactionPredictor(PredictorConfig(), 512, [8, 5, 5, 5])
    assert 80e6 < count_parameters(model) < 95e6


def test_speaker_emotion_is_causal_and_the_head_regresses_emotion() -> None:
    model = random_model().predictor
    audio, speaker, listener = inputs(model)
    emotion = torch.rand(2, 40, 25, generator=torch.Generator().manual_seed(4)).requires_grad_(True)
    logits, head = model(audio, speaker, model.shift_listener(listener), emotion=emotion)
    assert logits.shape == (2, 40, model.vocab_size) and head.shape == (2, 40, 25)
    t = 13
    head[:, t].sum().backward()
    assert float(emotion.grad[:, t + 1 :].abs().max()) == 0.0
    assert float(emotion.grad[:, : t + 1].abs().max()) > 0.0  # the speaker's emotion is used
    with pytest.raises(ValueError, match="speaker's emotion"):
        model(audio, speaker, model.shift_listener(listener))


def test_grid_code_embedding_uses_fsq_coordinates() -> None:
    from vector_quantize_pytorch import FSQ

    from reactcli.models.predictor import CodeEmbedding

    ids = torch.arange(1000)
    grid = CodeEmbedding([8, 5, 5, 5], 16, "grid")
    torch.testing.assert_close(grid.coordinates(ids), FSQ(levels=[8, 5, 5, 5]).indices_to_codes(ids))
    out = grid(torch.tensor([[0, 999, 1000, 1001]]))
    assert out.shape == (1, 4, 16)
    torch.testing.assert_close(out[0, 2], grid.special.weight[0])  # PAD
    torch.testing.assert_close(out[0, 3], grid.special.weight[1])  # MASK
    # neighbouring codes get nearby inputs; the table variant has one free row per id
    near = (grid(torch.tensor([1])) - grid(torch.tensor([0]))).norm()
    far = (grid(torch.tensor([999])) - grid(torch.tensor([0]))).norm()
    assert near < far
    assert CodeEmbedding([8, 5, 5, 5], 16, "table").table.weight.shape == (1002, 16)


def test_build_predictor_takes_train_statistics_the_skip_path_and_the_seen_codes() -> None:
    """build_predictor: input and target statistics of the train corpus (not whole-clip ones), the
    ridge-fitted linear path, and the codes the train listeners used (and no PAD/MASK)."""
    from reactcli.config import load_config
    from reactcli.models.predictor import build_predictor
    from reactcli.models.tokenizer import FaceTokenizer

    cfg = load_config(None, {"predictor": {"dim": 32, "heads": 4, "self_depth": 1, "cross_depth": 1,
                                           "emotion_skip": 4, "patch": 4, "context_frames": 16}}, environ={})
    tokenizer = FaceTokenizer(cfg.tokenizer)
    g = torch.Generator().manual_seed(2)
    train = {"speaker_audio": torch.randn(3, 30, 10, generator=g) * 4 + 2,
             "speaker_emotion": torch.rand(3, 30, 25, generator=g),
             "listener_emotion": torch.rand(3, 30, 25, generator=g) * 0.5,
             "listener_tokens": torch.tensor([5, 7, 999]).repeat(3, 10)}
    model, valid = build_predictor(cfg, tokenizer, train)
    torch.testing.assert_close(model.audio_mean, train["speaker_audio"].flatten(0, 1).mean(0))
    torch.testing.assert_close(model.emotion_std, train["speaker_emotion"].flatten(0, 1).std(0))
    torch.testing.assert_close(model.target_mean, train["listener_emotion"].flatten(0, 1).mean(0))
    assert model.emotion_skip is not None and float(model.emotion_skip.weight.abs().sum()) > 0  # fitted
    assert valid.shape == (model.vocab_size,) and valid.nonzero().flatten().tolist() == [5, 7, 999]
