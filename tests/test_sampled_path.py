"""``generation.sampled_emotion_weight``: each reaction's sampled face path carried into its emotion,
online, deterministic by seed, and exactly the spread it claims."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _model_fixtures import random_model

from reactcli.config import load_config
from reactcli.errors import ReactError
from reactcli.generate import generate_reactions
from reactcli.metrics.diversity import frdiv
from reactcli.models.sampled_path import SAMPLED_COUNT, SAMPLED_DIMS, check_sampled_path, sampled_emotion


@pytest.fixture(scope="module")
def clip() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    return (rng.normal(size=(40, 10)).astype(np.float32), rng.normal(size=(40, 58)).astype(np.float32),
            rng.random(size=(40, 25)).astype(np.float32))


def _generate(weight: float, clip, samples: int = 3, seed: int = 1, chunk: int | None = None, model=None,
              smoothing: float = 0.0):
    model = model or random_model(emotion_skip=6)
    model.config.generation.sampled_emotion_weight = weight
    model.config.generation.sampled_emotion_smoothing = smoothing
    return generate_reactions(model, *clip, samples=samples, seed=seed, chunk=chunk)


def _rule(head, decoded, weight, smoothing=0.0, samples=None, last=None, start=0):
    samples = head.shape[0] if samples is None else samples
    last = torch.zeros(head.shape[0], SAMPLED_COUNT) if last is None else last
    pos = torch.arange(start, start + head.shape[1])
    return sampled_emotion(head, decoded, samples, weight, smoothing, last, pos)


def test_the_rule_adds_each_reactions_departure_from_the_mean() -> None:
    g = torch.Generator().manual_seed(0)
    head, decoded = torch.rand(4, 6, 25, generator=g), torch.rand(4, 6, 25, generator=g)
    out = _rule(head, decoded, 0.5)
    # differences between reactions are the weight times those of the decoded paths, on the AUs
    np.testing.assert_allclose((out[0] - out[1])[..., SAMPLED_DIMS] - (head[0] - head[1])[..., SAMPLED_DIMS],
                               0.5 * (decoded[0] - decoded[1])[..., SAMPLED_DIMS], atol=1e-6)
    torch.testing.assert_close(out.mean(0), head.mean(0))  # the common part is the head's
    torch.testing.assert_close(out[..., 15:], head[..., 15:])  # valence/arousal and expressions: the head's
    torch.testing.assert_close(_rule(head[:1], decoded[:1], 2.0), head[:1])  # K = 1: no spread
    # two clips of K = 2 rows each (clip-major): each clip's spread is about its own mean
    two = _rule(head, decoded, 0.5, samples=2)
    torch.testing.assert_close(two[:2], _rule(head[:2], decoded[:2], 0.5))
    torch.testing.assert_close(two[2:], _rule(head[2:], decoded[2:], 0.5))
    with pytest.raises(ValueError, match="differ"):
        _rule(head, decoded[:, :3], 0.5)


def test_smoothing_is_a_causal_moving_average_continued_across_calls() -> None:
    g = torch.Generator().manual_seed(1)
    head, decoded = torch.zeros(2, 7, 25), torch.rand(2, 7, 25, generator=g)
    whole = _rule(head, decoded, 1.0, 0.5)
    last = torch.full((2, SAMPLED_COUNT), 7.0)  # whatever it held: position 0 starts afresh
    pieces = torch.cat([_rule(head[:, :3], decoded[:, :3], 1.0, 0.5, last=last),
                        _rule(head[:, 3:], decoded[:, 3:], 1.0, 0.5, last=last, start=3)], 1)
    torch.testing.assert_close(pieces, whole)
    spread = (decoded - decoded.mean(0, keepdim=True))[..., :15]
    expected = spread[:, 0]
    for t in range(1, 7):
        expected = 0.5 * expected + 0.5 * spread[:, t]
    torch.testing.assert_close(whole[:, 6, :15], expected)
    torch.testing.assert_close(last, expected)  # the state holds the last smoothed frame
    assert float(whole[..., :15].diff(dim=1).abs().mean()) < float(spread.diff(dim=1).abs().mean())
    with pytest.raises(ValueError, match="smoothing"):
        check_sampled_path(1.0, 1.0)


def test_weight_adds_the_sampled_paths_spread_and_nothing_else(clip) -> None:
    model = random_model(emotion_skip=6)
    face0, emotion0 = _generate(0.0, clip, model=model)
    face1, emotion1 = _generate(0.8, clip, model=model)
    np.testing.assert_array_equal(face0, face1)  # the same sampled tokens: only the emotion changes
    np.testing.assert_allclose(emotion1.mean(0), emotion0.mean(0), atol=1e-5)
    np.testing.assert_array_equal(emotion1[..., 15:], emotion0[..., 15:])
    assert frdiv(emotion1[None]) > 2 * frdiv(emotion0[None])


@pytest.mark.parametrize("smoothing", [0.0, 0.5])
def test_sampled_path_is_online_and_deterministic(clip, smoothing: float) -> None:
    model = random_model(emotion_skip=6)
    kw = {"model": model, "smoothing": smoothing}
    _, ref = _generate(0.8, clip, chunk=3, **kw)
    _, by_frame = _generate(0.8, clip, chunk=1, **kw)
    np.testing.assert_allclose(by_frame, ref, atol=1e-5)  # chunking does not matter
    np.testing.assert_array_equal(_generate(0.8, clip, chunk=3, **kw)[1], ref)  # same seed, same output
    assert not np.allclose(_generate(0.8, clip, chunk=3, seed=2, **kw)[1], ref)
    audio, face, emotion = clip
    rng = np.random.default_rng(9)
    for t in (0, 13, 30):
        a2, f2, e2 = audio.copy(), face.copy(), emotion.copy()
        a2[t + 1 :] += rng.normal(size=a2[t + 1 :].shape).astype(np.float32) * 2
        f2[t + 1 :] -= 1.5
        e2[t + 1 :] = 1.0 - e2[t + 1 :]
        _, out = _generate(0.8, (a2, f2, e2), chunk=3, **kw)
        assert np.array_equal(out[:, : t + 1], ref[:, : t + 1])
        assert not np.array_equal(out[:, t + 1 :], ref[:, t + 1 :])  # the test can fail


def test_sampled_path_needs_an_emotion_head(clip) -> None:
    with pytest.raises(ReactError, match="sampled_emotion_weight needs"):
        _generate(0.5, clip, model=random_model(emotion_head=False))
    with pytest.raises(ReactError, match="sampled_emotion_weight adds"):
        load_config(None, {"predictor": {"emotion_head": False, "emotion_skip": 0},
                           "generation": {"sampled_emotion_weight": 0.5}}, environ={})
