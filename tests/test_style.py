# ruff: noqa: F811  (pytest fixtures imported from _model_fixtures are parameters by design)
"""``predictor.style_dim``: a per-reaction style code, drawn at frame 0 and held; online, seeded, trained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _model_fixtures import TINY, random_model, run_cli, set_args, trained_run  # noqa: F401

from reactcli.config import load_config
from reactcli.errors import ReactError
from reactcli.generate import generate_reactions
from reactcli.models.checkpoint import ReactionModel, build_models
from reactcli.models.style import StyleCode, draw_styles


def style_model(style_dim: int = 4, scale: float = 1.0) -> ReactionModel:
    """random_model's settings with a style code whose injection is large enough to matter."""
    base = random_model(emotion_skip=6)
    cfg = load_config(None, {**base.config.model_dump(mode="json", include={"tokenizer", "predictor", "generation"}),
                             "predictor": {**base.config.predictor.model_dump(mode="json"), "style_dim": style_dim},
                             "generation": {**base.config.generation.model_dump(mode="json"), "style_scale": scale}},
                      environ={})
    torch.manual_seed(0)
    tokenizer, predictor = build_models(cfg, 10)
    tokenizer.load_state_dict(base.tokenizer.state_dict())
    predictor.load_state_dict(base.predictor.state_dict(), strict=False)  # all but the style code
    torch.nn.init.normal_(predictor.style.inject.weight, std=1.0)
    return ReactionModel(cfg, tokenizer.eval(), predictor.eval(), base.valid_codes, Path("random.ckpt"))


@pytest.fixture(scope="module")
def clip() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(6)
    return (rng.normal(size=(40, 10)).astype(np.float32), rng.normal(size=(40, 58)).astype(np.float32),
            rng.random(size=(40, 25)).astype(np.float32))


def test_style_code_is_online_and_deterministic(clip) -> None:
    model = style_model()
    ref_face, ref = generate_reactions(model, *clip, samples=3, seed=5, chunk=3)
    np.testing.assert_allclose(generate_reactions(model, *clip, samples=3, seed=5, chunk=1)[1], ref, atol=1e-5)
    np.testing.assert_array_equal(generate_reactions(model, *clip, samples=3, seed=5, chunk=3)[1], ref)
    np.testing.assert_allclose(generate_reactions(model, *clip, samples=3, seed=5, use_cache=False)[1], ref,
                               atol=1e-4)  # the cached stream holds the same code as the reference path
    audio, face, emotion = clip
    for t in (0, 17, 33):
        a2, f2, e2 = audio.copy(), face.copy(), emotion.copy()
        a2[t + 1 :] += 3.0
        f2[t + 1 :] -= 1.5
        e2[t + 1 :] = 1.0 - e2[t + 1 :]
        out_face, out = generate_reactions(model, a2, f2, e2, samples=3, seed=5, chunk=3)
        assert np.array_equal(out[:, : t + 1], ref[:, : t + 1])
        assert np.array_equal(out_face[:, : t + 1], ref_face[:, : t + 1])
        assert not np.array_equal(out[:, t + 1 :], ref[:, t + 1 :])  # the test can fail


def test_each_reaction_draws_its_own_code_and_scale_zero_is_no_code(clip) -> None:
    codes = draw_styles(4, 3, seed=2, scale=1.0)
    assert codes.shape == (4, 3) and len({tuple(c.tolist()) for c in codes}) == 4
    torch.testing.assert_close(draw_styles(4, 3, seed=2, scale=0.5), 0.5 * codes)
    assert not torch.equal(draw_styles(4, 3, seed=3, scale=1.0), codes)
    # the injection has no bias: the prior's mean (scale 0) is the model without a code
    _, zero = generate_reactions(style_model(scale=0.0), *clip, samples=2, seed=5)
    model = style_model()
    model.predictor.style = None
    np.testing.assert_allclose(generate_reactions(model, *clip, samples=2, seed=5)[1], zero, atol=1e-5)
    _, drawn = generate_reactions(style_model(), *clip, samples=2, seed=5)
    assert not np.allclose(drawn, zero, atol=1e-3)


def test_posterior_pools_unpadded_frames_and_kl_is_zero_at_the_prior() -> None:
    torch.manual_seed(0)
    code = StyleCode(3, 16)
    emotion = torch.randn(2, 10, 25)
    padding = torch.zeros(2, 10, dtype=torch.bool)
    padding[:, :4] = True
    mean, log_var = code.posterior(emotion, padding)
    changed = emotion.clone()
    changed[:, :4] = 99.0  # padded frames do not count
    torch.testing.assert_close(code.posterior(changed, padding), (mean, log_var))
    assert mean.shape == log_var.shape == (2, 3)
    assert float(StyleCode.kl(torch.zeros(2, 3), torch.zeros(2, 3))) == 0.0
    assert float(StyleCode.kl(torch.ones(2, 3), torch.zeros(2, 3))) == pytest.approx(1.5)


def test_a_style_model_trains_and_logs_its_kl(trained_run: Path, preprocessed_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "style"
    run_cli("train-predictor", "--config", TINY, "--data", preprocessed_root, "--tokenizer",
            trained_run / "tokenizer.ckpt", "--out", out, "--device", "cpu", *set_args(),
            "--set", "predictor.style_dim=4")
    header = (out / "predictor_log.csv").read_text().splitlines()[0].split(",")
    assert "style_kl" in header
    from reactcli.models.checkpoint import load_reaction_model

    model, _ = load_reaction_model(out / "predictor.ckpt")
    assert model.predictor.style is not None and model.predictor.cfg.style_dim == 4


def test_style_settings_need_a_style_code() -> None:
    with pytest.raises(ReactError, match="style_scale scales"):
        load_config(None, {"generation": {"style_scale": 0.5}}, environ={})
    with pytest.raises(ReactError, match="style_kl_weight weighs"):
        load_config(None, {"training": {"style_kl_weight": 0.2}}, environ={})
    assert load_config(None, {"predictor": {"style_dim": 2}, "generation": {"style_scale": 0.5}},
                       environ={}).generation.style_scale == 0.5
