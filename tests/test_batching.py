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


# -- recordings of any length (MARS) -------------------------------------------------------------
LENGTHS = (5, 12, 40, 200, 61, 9)


def ragged_arrays() -> dict[str, list[np.ndarray]]:
    """One array per recording, values recording * 1000 + frame, as numpy (what MARS corpora hold)."""
    a = [(r * 1000 + np.arange(n)).astype(np.float32) for r, n in enumerate(LENGTHS)]
    return {"a": a, "b": [np.stack([x, -x], -1) for x in a], "tokens": [x.astype(np.int64) for x in a]}


def test_windows_of_recordings_shorter_and_longer_than_the_window() -> None:
    """A long recording gives a slice at a uniform start; a short one is taken whole from frame 0 and
    padded after its end, with ``padding`` True exactly on the padded frames (zeros there)."""
    from reactcli.training.corpus import PADDING

    batches = WindowBatches(ragged_arrays(), window=10, batch_size=3, seed=1)
    starts: dict[int, set[int]] = {}
    for step in range(40):
        batch, _ = batches.batch(step)
        assert batch["a"].shape == (3, 10) and batch["b"].shape == (3, 10, 2) and batch["tokens"].dtype == torch.int64
        for row, pad in zip(batch["a"], batch[PADDING], strict=True):
            rec, start = divmod(int(row[0]), 1000)
            real = min(LENGTHS[rec], 10)
            assert pad.tolist() == [False] * real + [True] * (10 - real)
            assert torch.equal(row[:real], rec * 1000 + start + torch.arange(real).float())
            assert (row[real:] == 0).all()
            assert start == 0 if LENGTHS[rec] <= 10 else 0 <= start <= LENGTHS[rec] - 10
            starts.setdefault(rec, set()).add(start)
    assert len(starts[3]) > 5  # recording 3 (200 frames): windows anywhere inside it
    equal = WindowBatches({k: v[2:4] for k, v in ragged_arrays().items()}, 10, 2, seed=1)
    assert PADDING not in equal.batch(0)[0]  # no recording shorter than the window: no mask


def test_every_recording_once_per_epoch_whatever_its_length() -> None:
    """The sampling weight: each recording is drawn once per epoch (on one rank or split across
    ranks), so the 200-frame recording is not drawn 40 times as often as the 5-frame one."""
    def clips_of(batches: WindowBatches, epoch: int) -> list[int]:
        steps = range(epoch * batches.per_epoch, (epoch + 1) * batches.per_epoch)
        return [int(row[0]) // 1000 for s in steps for row in batches.batch(s)[0]["a"]]

    single = WindowBatches(ragged_arrays(), 10, 3, seed=4)
    for epoch in range(3):
        assert sorted(clips_of(single, epoch)) == list(range(len(LENGTHS)))
    shards = [WindowBatches(ragged_arrays(), 10, 1, 4, rank, 2) for rank in range(2)]
    for epoch in range(2):
        seen = [set(clips_of(shard, epoch)) for shard in shards]
        assert seen[0].isdisjoint(seen[1]) and seen[0] | seen[1] == set(range(len(LENGTHS)))


def test_ragged_batches_are_a_function_of_seed_step_and_rank() -> None:
    def batch_at(step: int, seed: int = 3, rank: int = 0, warm: int = 0) -> torch.Tensor:
        batches = WindowBatches(ragged_arrays(), 10, 3, seed, rank, 2)
        for s in range(warm):
            batches.batch(s)
        return batches.batch(step)[0]["a"]

    assert torch.equal(batch_at(5), batch_at(5, warm=7))
    assert not torch.equal(batch_at(5), batch_at(5, seed=4)) and not torch.equal(batch_at(5), batch_at(5, rank=1))


def test_equal_length_lists_give_the_stacked_batches() -> None:
    """The 2024 corpus (stacked) and the same clips as a list of recordings draw the same windows."""
    stacked = coded_arrays()
    listed = {k: [row.numpy() for row in v] for k, v in stacked.items()}
    for step in range(5):
        a, b = WindowBatches(stacked, 12, 4, 2).batch(step)[0], WindowBatches(listed, 12, 4, 2).batch(step)[0]
        assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_static_values_and_the_history_before_each_window() -> None:
    """Per-recording vectors (the listener's traits) follow their row; a history window holds the
    frames just before the window's start, zeros and ``history_padding`` before frame 0."""
    from reactcli.training.corpus import HISTORY_PADDING

    arrays = ragged_arrays()
    traits = [np.full(5, r, np.float32) for r in range(len(LENGTHS))]
    batches = WindowBatches(arrays, 10, 3, 0, static={"traits": traits}, history=8, history_keys=("a",))
    for step in range(30):
        batch, _ = batches.batch(step)
        for j, row in enumerate(batch["a"]):
            rec, start = divmod(int(row[0]), 1000)
            assert (batch["traits"][j] == rec).all()
            frames = torch.arange(start - 8, start)
            before = frames < 0
            assert torch.equal(batch[HISTORY_PADDING][j], before)
            assert torch.equal(batch["a_history"][j][~before], rec * 1000 + frames[~before].float())
            assert (batch["a_history"][j][before] == 0).all()


def test_make_batch_on_a_padded_window() -> None:
    """A window padded past a short recording's end: PAD inputs and IGNORE targets on the padding,
    and a left truncation, when drawn, cuts inside the real frames."""
    from reactcli.training.corpus import PADDING

    model = random_model(patch=4).predictor
    batch = _batch(w=24, b=3)
    padding = torch.zeros(3, 24, dtype=torch.bool)
    padding[1, 14:] = True  # a 14-frame recording
    batch[PADDING] = padding
    for seed in range(20):
        rngs = [np.random.default_rng([seed, j]) for j in range(3)]
        _, speaker, listener_in, pad, targets = make_batch(batch, rngs, model, truncate_prob=1.0)
        assert pad[1, 14:].all() and (targets[1, 14:] == IGNORE).all()
        assert (speaker[1, 14:] == model.pad_id).all() and (listener_in[1, 14:] == model.pad_id).all()
        real = (~pad[1]).nonzero().flatten()
        assert len(real) >= model.cfg.patch + 1 and int(real.max()) == 13  # the cut left real targets
    assert torch.equal(batch[PADDING], padding)  # the batch itself is not modified


# -- the corpus kept on the device (what a CUDA run does) ------------------------------------------
@pytest.mark.parametrize("kind", ["stacked", "ragged", "ragged with history and traits"])
def test_device_corpus_cuts_the_same_windows(kind: str) -> None:
    """A WindowBatches holding its corpus as flat tensors on a device (here the CPU: the code path is
    the same) cuts, step by step, exactly the host path's windows, padding, traits and history, and
    the same per-row generators; the rows come from ``rows(step)`` alone."""
    if kind == "stacked":
        arrays, extra = coded_arrays(), {}
    else:
        arrays, extra = ragged_arrays(), {}
        if "history" in kind:
            traits = [np.full(5, r, np.float32) for r in range(len(LENGTHS))]
            extra = {"static": {"traits": traits}, "history": 8, "history_keys": ("a", "tokens")}
    host = WindowBatches(arrays, 10, 3, 7, 1, 2, **extra)
    dev = WindowBatches(arrays, 10, 3, 7, 1, 2, device="cpu", **extra)
    assert dev.store is not None and host.store is None
    for step in range(25):
        (a, rngs_a), (b, rngs_b) = host.batch(step), dev.batch(step)
        assert list(a) == list(b)
        for key in a:
            assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), (step, key)
        assert [r.random() for r in rngs_a] == [r.random() for r in rngs_b]
        rows = dev.rows(step)
        assert rows.real == [min(LENGTHS[c] if kind != "stacked" else FRAMES, 10) for c in rows.clips]


def test_corpus_stays_on_the_host_on_cpu_and_moves_when_it_fits() -> None:
    from reactcli.training.corpus import corpus_bytes, corpus_device

    arrays = ragged_arrays()
    assert corpus_bytes(arrays) == sum(LENGTHS) * (4 + 8 + 8)
    assert corpus_bytes(coded_arrays()) == N_CLIPS * FRAMES * (4 + 8 + 8)
    assert corpus_device(arrays, torch.device("cpu")) is None
