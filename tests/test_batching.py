"""The batching the training stages use: WindowBatches (windows, shards, determinism) and the
predictor's make_batch (left truncation, PAD / MASK / IGNORE positions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _model_fixtures import random_model

from reactcli.errors import ReactError
from reactcli.training.corpus import WindowBatches
from reactcli.training.predictor_stage import IGNORE, make_batch

N_CLIPS, FRAMES = 8, 50


def coded_arrays() -> dict[str, torch.Tensor]:
    """Values that say where they come from: clip * 1000 + frame (and a second feature column)."""
    code = torch.arange(N_CLIPS)[:, None] * 1000 + torch.arange(FRAMES)[None, :]
    return {"a": code.float(), "b": torch.stack([code, -code], -1).float(), "tokens": code.long()}


def origin(window: torch.Tensor) -> tuple[int, int]:
    """(clip, start) of a window of ``coded_arrays()['a']``, after checking it is contiguous."""
    clip, start = divmod(int(window[0]), 1000)
    assert torch.equal(window, clip * 1000 + start + torch.arange(len(window)).float())
    return clip, start


def test_windows_are_aligned_slices_of_the_clips() -> None:
    arrays = coded_arrays()
    batches = WindowBatches(arrays, window=12, batch_size=4, seed=0)
    starts = set()
    for step in range(6):
        batch, rngs = batches.batch(step)
        assert set(batch) == {"a", "b", "tokens"} and len(rngs) == 4
        assert batch["a"].shape == (4, 12) and batch["b"].shape == (4, 12, 2) and batch["tokens"].dtype == torch.long
        for j in range(4):
            clip, start = origin(batch["a"][j])
            starts.add(start)
            assert 0 <= start <= FRAMES - 12
            torch.testing.assert_close(batch["b"][j], arrays["b"][clip, start : start + 12], rtol=0, atol=0)
            assert torch.equal(batch["tokens"][j], arrays["tokens"][clip, start : start + 12])
    assert len(starts) > 5  # random starts, not always 0
    with pytest.raises(ReactError, match="window of 51 frames is longer than the clips"):
        WindowBatches(arrays, window=51, batch_size=4, seed=0)


def test_same_seed_step_and_rank_give_the_same_batch() -> None:
    """Batch k depends only on (seed, step, rank): not on which steps ran before (resume), nor on
    the instance; the per-row generators for the extra randomness are fixed the same way."""
    def batch_at(step: int, seed: int = 3, rank: int = 0, warm: int = 0) -> tuple[torch.Tensor, list[float]]:
        batches = WindowBatches(coded_arrays(), 10, 3, seed, rank, 2)
        for s in range(warm):
            batches.batch(s)
        batch, rngs = batches.batch(step)
        return batch["a"], [float(r.random()) for r in rngs]

    a, draws = batch_at(7)
    b, again = batch_at(7, warm=9)  # epochs cached by the earlier steps do not matter
    assert torch.equal(a, b) and draws == again
    assert not torch.equal(a, batch_at(6)[0])
    assert not torch.equal(a, batch_at(7, seed=4)[0])
    assert not torch.equal(a, batch_at(7, rank=1)[0])
    assert draws != batch_at(7, rank=1)[1]


def epoch_clips(batches: WindowBatches, epoch: int) -> list[int]:
    """The clips of every row of every step of ``epoch``, in order."""
    steps = range(epoch * batches.per_epoch, (epoch + 1) * batches.per_epoch)
    return [origin(row)[0] for step in steps for row in batches.batch(step)[0]["a"]]


def test_ranks_draw_disjoint_shards_of_each_epoch() -> None:
    world, batch_size = 2, 2
    shards = [WindowBatches(coded_arrays(), 10, batch_size, 5, rank, world) for rank in range(world)]
    per_epoch = shards[0].per_epoch
    assert per_epoch == N_CLIPS // (world * batch_size)
    for epoch in range(3):
        seen: list[set[int]] = []
        for shard in shards:
            clips = epoch_clips(shard, epoch)
            assert len(clips) == len(set(clips))  # no clip twice on one rank within an epoch
            seen.append(set(clips))
        assert seen[0].isdisjoint(seen[1]) and seen[0] | seen[1] == set(range(N_CLIPS))
    orders = {tuple(epoch_clips(shards[0], epoch)) for epoch in range(3)}
    assert len(orders) > 1  # reshuffled per epoch


def test_a_tiny_split_still_fills_the_global_batch() -> None:
    arrays = {k: v[:3] for k, v in coded_arrays().items()}
    batches = WindowBatches(arrays, 10, batch_size=4, seed=0, rank=1, world=2)
    assert batches.batch(0)[0]["a"].shape == (4, 10)


def _batch(w: int = 24, b: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 1000, (b, w), generator=g)
    return {"speaker_audio": torch.randn(b, w, 10, generator=g), "speaker_tokens": tokens.roll(1, 1),
            "listener_tokens": tokens}


def test_make_batch_without_truncation_shifts_the_listener_by_one_patch() -> None:
    model = random_model(patch=4).predictor
    batch = _batch()
    tokens = batch["listener_tokens"]
    rngs = [np.random.default_rng([0, j]) for j in range(3)]
    audio, speaker, listener_in, padding, targets = make_batch(batch, rngs, model, truncate_prob=0.0)
    assert padding is None and audio is batch["speaker_audio"]
    assert torch.equal(speaker, batch["speaker_tokens"]) and torch.equal(targets, tokens)
    assert (listener_in[:, :4] == model.mask_id).all()  # nothing generated before the first patch
    assert torch.equal(listener_in[:, 4:], tokens[:, :-4])


def test_make_batch_left_truncation_places_pad_mask_and_ignore() -> None:
    model = random_model(patch=4).predictor
    batch = _batch()
    original = {k: v.clone() for k, v in batch.items()}
    tokens, w, p = batch["listener_tokens"], 24, 4
    rngs = [np.random.default_rng([1, j]) for j in range(3)]
    cuts = []
    for j in range(3):  # the cut the same generator draws: one draw for the coin, one for the cut
        replay = np.random.default_rng([1, j])
        replay.random()
        cuts.append(int(replay.integers(1, w - p)))
    _, speaker, listener_in, padding, targets = make_batch(batch, rngs, model, truncate_prob=1.0)
    assert padding is not None and padding.dtype == torch.bool
    for j, cut in enumerate(cuts):
        assert 1 <= cut < w - p  # at least patch + 1 real targets stay
        assert padding[j, :cut].all() and not padding[j, cut:].any()
        assert (speaker[j, :cut] == model.pad_id).all()
        assert torch.equal(speaker[j, cut:], original["speaker_tokens"][j, cut:])
        assert (listener_in[j, :cut] == model.pad_id).all()
        assert (listener_in[j, cut : cut + p] == model.mask_id).all()  # the new start has no listener past
        assert torch.equal(listener_in[j, cut + p :], tokens[j, cut : w - p])
        assert (targets[j, :cut] == IGNORE).all() and torch.equal(targets[j, cut:], tokens[j, cut:])
    for key, value in original.items():  # the windows themselves are not modified
        assert torch.equal(batch[key], value), key
    short = _batch(w=5)  # no room to cut a window of patch + 1 frames
    assert make_batch(short, [np.random.default_rng(0)] * 3, model, truncate_prob=1.0)[3] is None


def test_derive_seed_is_a_fixed_function_of_its_parts() -> None:
    """One seed per (use, seed, step, ...): fixed across processes and runs, different for
    neighbouring or reordered parts (where ``seed * 1_000_003 + step`` collided), in range for torch
    and numpy for any integer, negative and huge ones included."""
    from reactcli.runtime import derive_seed

    # numpy's SeedSequence is specified bit for bit: this value must not drift between versions
    assert derive_seed("step", 0, 0, 0) == derive_seed("step", 0, 0, 0) == 8427244779190704481
    seen = {derive_seed("step", seed, step, 0) for seed in range(4) for step in range(250)}
    assert len(seen) == 1000  # no collision among neighbours
    assert derive_seed("step", 1, 0, 0) != derive_seed("step", 0, 1_000_003, 0)  # the old mixer's collision
    assert derive_seed(1, 2) != derive_seed(2, 1) and derive_seed("frame", 3, 4) != derive_seed("sample", 3, 4)
    assert derive_seed(-1) != derive_seed(1) and derive_seed(-1) != derive_seed(0)
    for parts in ((-5, 3), (2**200, 1), (0,)):
        value = derive_seed(*parts)
        assert 0 <= value < 2**63
        torch.Generator().manual_seed(value)
        np.random.default_rng(value)
