"""The projection onto valid emotion frames: in range, idempotent, and closer to every valid frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reactcli.models.valid_emotion import project_emotion, project_to_simplex


def _valid_frames(n: int, gen: torch.Generator) -> torch.Tensor:
    aus = (torch.rand(n, 15, generator=gen) > 0.7).float()
    va = torch.rand(n, 2, generator=gen) * 2 - 1
    probs = torch.softmax(3 * torch.randn(n, 8, generator=gen), -1)
    return torch.cat((aus, va, probs), -1)


def test_projection_lands_in_the_valid_set_and_keeps_valid_frames() -> None:
    gen = torch.Generator().manual_seed(0)
    raw = 2.0 * torch.randn(500, 25, generator=gen)
    out = project_emotion(raw)
    assert out[:, :15].min() >= 0 and out[:, :15].max() <= 1
    assert out[:, 15:17].abs().max() <= 1
    assert out[:, 17:].min() >= 0
    torch.testing.assert_close(out[:, 17:].sum(-1), torch.ones(500))
    valid = _valid_frames(200, gen)
    torch.testing.assert_close(project_emotion(valid), valid, atol=1e-6, rtol=0)
    torch.testing.assert_close(project_emotion(out), out, atol=1e-6, rtol=0)


def test_projection_moves_each_frame_closer_to_every_valid_frame() -> None:
    """Why the projection can only lower FRD: per block, the distance to any real frame shrinks."""
    gen = torch.Generator().manual_seed(1)
    raw = 1.5 * torch.randn(300, 25, generator=gen)
    out = project_emotion(raw)
    real = _valid_frames(300, gen)
    for block in (slice(0, 15), slice(15, 17), slice(17, 25)):
        before = torch.cdist(raw[:, block], real[:, block])
        after = torch.cdist(out[:, block], real[:, block])
        assert bool((after <= before + 1e-5).all())
        assert bool((after < before - 1e-3).any())


def test_simplex_projection_is_the_nearest_probability_vector() -> None:
    gen = torch.Generator().manual_seed(2)
    v = 2 * torch.randn(400, 8, generator=gen)
    p = project_to_simplex(v)
    candidates = torch.distributions.Dirichlet(torch.ones(8)).sample((400,))
    assert bool(((p - v).pow(2).sum(-1) <= (candidates - v).pow(2).sum(-1) + 1e-6).all())
    shifted = project_to_simplex(v + 5.0)  # a constant shift of the input does not move the projection
    torch.testing.assert_close(shifted, p, atol=1e-5, rtol=0)


def test_projection_accepts_numpy_and_rejects_wrong_widths() -> None:
    out = project_emotion(np.full((2, 3, 25), 2.0, np.float32))
    assert out.shape == (2, 3, 25)
    with pytest.raises(ValueError, match="25"):
        project_emotion(torch.zeros(4, 24))
