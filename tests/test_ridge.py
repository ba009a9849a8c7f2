"""The Ridge baseline: causal (online), deterministic, and it recovers a lagged linear reaction."""

from __future__ import annotations

import numpy as np
import pytest

from reactcli.errors import ReactError
from reactcli.linear import lagged
from reactcli.metrics.ridge import fit_ridge


def clips(n: int = 6, t: int = 300, seed: int = 0):
    """Speaker emotion/audio and a listener that answers the speaker's dim 3 after 6 frames."""
    rng = np.random.default_rng(seed)
    emotion = [rng.random((t, 25)).astype(np.float32) for _ in range(n)]
    audio = [rng.normal(size=(t + 1, 4)).astype(np.float32) for _ in range(n)]
    listener = []
    for e, a in zip(emotion, audio, strict=True):
        y = np.full((t, 25), 0.2, np.float32)
        y[6:, 0] += 0.8 * e[:-6, 3]
        y[:, 1] += 0.5 * a[:t, 2]
        listener.append(y)
    return emotion, audio, listener


def test_lagged_rows_only_look_back() -> None:
    frames = np.arange(10, dtype=np.float64)[:, None]
    out = lagged(frames, np.array([0, 2, 4]))
    assert out.shape == (10, 3)
    assert out[5].tolist() == [5, 3, 1] and out[1].tolist() == [1, 0, 0]  # zeros before frame 0


def test_ridge_recovers_a_lagged_reaction_and_is_deterministic() -> None:
    emotion, audio, listener = clips()
    model = fit_ridge(emotion, audio, listener, lookback=12, step=2, alpha=1e-4)
    again = fit_ridge(emotion, audio, listener, lookback=12, step=2, alpha=1e-4)
    assert np.array_equal(model.weights, again.weights)
    e, a, y = clips(n=1, seed=9)
    pred = model.predict(e[0], a[0])
    assert pred.shape == (300, 25)
    assert np.corrcoef(pred[20:, 0], y[0][20:, 0])[0, 1] > 0.95
    assert np.corrcoef(pred[20:, 1], y[0][20:, 1])[0, 1] > 0.95
    assert np.abs(pred[:, 5] - 0.2).max() < 0.05  # an unpredictable dim stays at its mean


def test_ridge_is_online() -> None:
    emotion, audio, listener = clips()
    model = fit_ridge(emotion, audio, listener, lookback=20, step=1, alpha=1e-3)
    e, a = emotion[0].copy(), audio[0].copy()
    ref = model.predict(e, a)
    for t in (0, 57, 200):
        e2, a2 = e.copy(), a.copy()
        e2[t + 1 :] = 1.0 - e2[t + 1 :]
        a2[t + 1 :] *= -3.0
        out = model.predict(e2, a2)
        assert np.array_equal(out[: t + 1], ref[: t + 1])
        assert not np.allclose(out[t + 1 :], ref[t + 1 :])  # the test can fail


def test_ridge_rejects_bad_settings() -> None:
    emotion, audio, listener = clips(n=2)
    with pytest.raises(ReactError, match="must be > 0"):
        fit_ridge(emotion, audio, listener, alpha=0.0)
    with pytest.raises(ReactError, match="look-back"):
        fit_ridge(emotion, audio, listener, lookback=0)
    with pytest.raises(ReactError, match="audio frames"):
        fit_ridge(emotion, [x[:100] for x in audio], listener)


def test_predictor_linear_path_is_the_closed_form_ridge_and_stays_fixed() -> None:
    """``predictor.emotion_skip``: the conv path reproduces the lagged ridge solution exactly (tap
    order = lag order reversed), and the optimiser never sees its weights."""
    import torch
    from _model_fixtures import random_model

    from reactcli.linear import lagged, solve_lagged
    from reactcli.training.schedule import make_optimizer

    model = random_model(emotion_skip=6).predictor
    gen = torch.Generator().manual_seed(0)
    audio = [torch.randn(80, 10, generator=gen) for _ in range(5)]
    emotion = [torch.rand(80, 25, generator=gen) for _ in range(5)]
    target = [torch.rand(80, 25, generator=gen) + a[:, :1] * 0.3 for a in audio]
    model.fit_emotion_skip(audio, emotion, target, 0.01)
    inputs = [model.skip_features(a[None], e[None])[0].double().numpy() for a, e in zip(audio, emotion, strict=True)]
    targets = [model.standardize_emotion(y).double().numpy() for y in target]
    weights, _ = solve_lagged(inputs, targets, np.arange(6), 0.01)
    expected = lagged(inputs[0], np.arange(6)) @ weights
    got = model.skip(model.skip_features(audio[0][None], emotion[0][None]))[0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.abs(expected).max() > 0.1  # a real fit, not zeros
    optimised = {id(p) for group in make_optimizer(model, 1e-3, 0.1, (0.9, 0.95)).param_groups for p in group["params"]}
    assert id(model.emotion_skip.weight) not in optimised


# ---------------------------------------------------------------- RidgeRes
def _ridge_res(model, emotion, audio, listener, speaker_e, speaker_a, k, seed, scale=0.5):
    """RidgeRes for one test speaker, through the shared functions both editions use."""
    from reactcli.metrics.ridge import add_residuals, residual_plan, train_residuals

    lengths = [len(x) for x in listener]
    plan = residual_plan(lengths, [len(speaker_e)], k, seed)
    residuals = train_residuals(plan, lambda i: listener[i] - model.predict(emotion[i], audio[i]))
    return add_residuals(model.predict(speaker_e, speaker_a), plan[0], residuals, scale)


def test_ridge_res_is_online_and_deterministic_by_seed() -> None:
    emotion, audio, listener = clips()
    model = fit_ridge(emotion, audio, listener, lookback=20, step=1, alpha=1e-3)
    e, a, _ = clips(n=1, seed=9)
    ref = _ridge_res(model, emotion, audio, listener, e[0], a[0], k=4, seed=3)
    assert ref.shape == (4, 300, 25)
    assert np.array_equal(ref, _ridge_res(model, emotion, audio, listener, e[0], a[0], k=4, seed=3))
    assert not np.allclose(ref, _ridge_res(model, emotion, audio, listener, e[0], a[0], k=4, seed=4))
    assert np.abs(ref[0] - ref[1]).max() > 0.01  # the K reactions differ (they draw different residuals)
    base = model.predict(e[0], a[0])
    np.testing.assert_allclose(ref.mean(0), base, atol=0.5)  # Ridge plus a share of real residuals
    for t in (0, 57, 200):
        e2, a2 = e[0].copy(), a[0].copy()
        e2[t + 1 :] = 1.0 - e2[t + 1 :]
        a2[t + 1 :] *= -3.0
        out = _ridge_res(model, emotion, audio, listener, e2, a2, k=4, seed=3)
        assert np.array_equal(out[:, : t + 1], ref[:, : t + 1])  # frames <= t never see the change
        assert not np.allclose(out[:, t + 1 :], ref[:, t + 1 :])


def test_residual_plan_covers_any_length_from_frame_zero() -> None:
    from reactcli.metrics.ridge import add_residuals, residual_plan

    plan = residual_plan([5, 7, 3], [20, 4, 1], k=3, seed=0)
    for reactions, length in zip(plan, [20, 4, 1], strict=True):
        assert len(reactions) == 3
        for pieces in reactions:
            assert sum(take for _, take in pieces) == length
            assert all(take <= [5, 7, 3][i] for i, take in pieces)
            assert all(take == [5, 7, 3][i] for i, take in pieces[:-1])  # whole residuals, then the remainder
    # a sample's draws depend on its index and the seed only, not on the other samples
    assert residual_plan([5, 7, 3], [9, 4], k=3, seed=0)[1] == plan[1]
    residuals = {i: np.full((n, 2), float(i + 1), np.float32) for i, n in enumerate([5, 7, 3])}
    out = add_residuals(np.zeros((20, 2), np.float32), plan[0], residuals, 0.5)
    first, take = plan[0][0][0]
    np.testing.assert_array_equal(out[0, :take], 0.5 * (first + 1))
    with pytest.raises(ReactError, match="no train residuals"):
        residual_plan([], [4], 2, 0)
