"""Batched, static-cache generation: equal to one clip at a time, padding-proof, flat in memory,
and a per-frame step with the structure a CUDA graph needs (checked on CPU, in eager mode)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from _model_fixtures import random_model
from torch.utils._python_dispatch import TorchDispatchMode

from reactcli.errors import ReactError
from reactcli.generate import (
    CPU_BATCH_CLIPS,
    BatchedReactionStream,
    ReactionStream,
    SpeakerClip,
    auto_batch_clips,
    generate_batch,
    generate_reactions,
)


def make_clips(lengths: list[int], seed: int = 0) -> list[SpeakerClip]:
    rng = np.random.default_rng(seed)
    return [
        SpeakerClip(rng.normal(size=(t, 10)).astype(np.float32), rng.normal(size=(t, 58)).astype(np.float32),
                    rng.random(size=(t, 25)).astype(np.float32))
        for t in lengths
    ]


@pytest.fixture(scope="module")
def model():
    # every optional path of the step: skip path, smoothing, dims from the linear path alone, the
    # sampled path's smoothed spread (a state the static step updates in place)
    model = random_model(emotion_skip=6, smoothing=0.4, linear_dims="valence_arousal")
    model.config.generation.sampled_emotion_weight = 0.8
    model.config.generation.sampled_emotion_smoothing = 0.5
    return model


def test_batched_generation_equals_one_clip_at_a_time(model) -> None:
    """Same seeds, same reactions. A batch of one is the one-clip path bit for bit; a larger batch
    samples the same tokens, and its values agree to float rounding (not bit for bit: this CPU's
    BLAS sums a product of a few rows (one clip's ``patch`` speaker frames) in another order than
    the same rows inside a larger product). A sampled token that differed would move the decoded
    face by ~0.1, far outside the tolerance. Lengths differ, so batches are padded."""
    lengths = [45, 30, 37, 44, 45]
    clips = make_clips(lengths)
    seeds = [3, 17, 5, 8, 99]
    one = [generate_reactions(model, c.audio, c.face3dmm, c.emotion, samples=3, seed=s)
           for c, s in zip(clips, seeds, strict=True)]
    for batch, by_length in ((1, False), (2, False), (2, True), (5, False)):
        seen = []
        for i, face, emotion in generate_batch(model, clips, seeds, samples=3, batch_clips=batch, by_length=by_length):
            seen.append(i)
            assert face.shape == (3, lengths[i], 58) and emotion.shape == (3, lengths[i], 25)
            if batch == 1:
                np.testing.assert_array_equal(face, one[i][0])
                np.testing.assert_array_equal(emotion, one[i][1])
            np.testing.assert_allclose(face, one[i][0], atol=1e-5, rtol=0)
            np.testing.assert_allclose(emotion, one[i][1], atol=1e-5, rtol=0)
        # in order, or longest first (ties in index order)
        assert seen == ([0, 4, 3, 2, 1] if by_length else [0, 1, 2, 3, 4])
    assert not np.allclose(one[0][1], one[4][1], atol=1e-3)  # other clip and seed, other reactions


def test_a_clips_frames_do_not_depend_on_its_padding_or_its_batch(model) -> None:
    clips = make_clips([40, 26])
    rng = np.random.default_rng(5)

    def run(pad_value: float) -> tuple[np.ndarray, np.ndarray]:
        audio = np.zeros((2, 40, 10), np.float32)
        face = np.zeros((2, 40, 58), np.float32)
        emotion = np.zeros((2, 40, 25), np.float32)
        for j, clip in enumerate(clips):
            t = len(clip)
            audio[j, :t], face[j, :t], emotion[j, :t] = clip.audio, clip.face3dmm, clip.emotion
        audio[1, 26:] = pad_value * rng.normal(size=(14, 10))
        face[1, 26:] = pad_value
        stream = BatchedReactionStream(model, [1, 2], samples=2)
        out = stream.push(audio, face, emotion)
        return out.face3dmm.numpy(), out.emotion.numpy()

    zeros, other = run(0.0), run(50.0)
    for a, b in zip(zeros, other, strict=True):
        np.testing.assert_array_equal(a[0], b[0])  # the other clip of the batch: untouched
        np.testing.assert_array_equal(a[1, :, :26], b[1, :, :26])  # frames before the end: untouched
        assert not np.array_equal(a[1, :, 26:], b[1, :, 26:])  # the padding did go in
    alone = generate_reactions(model, clips[1].audio, clips[1].face3dmm, clips[1].emotion, samples=2, seed=2)
    np.testing.assert_allclose(zeros[0][1, :, :26], alone[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("chunk", [1, 4, 7])
def test_static_dynamic_and_no_cache_agree(model, chunk: int) -> None:
    """The ring cache, the concatenate-and-trim cache and full recomputation hold the same keys;
    only the order of sums differs (float rounding)."""
    clip = make_clips([41], seed=2)[0]
    runs = {cache: generate_reactions(model, clip.audio, clip.face3dmm, clip.emotion, samples=3, seed=6,
                                      chunk=chunk, cache=cache) for cache in ("static", "dynamic", "none")}
    for cache in ("dynamic", "none"):
        np.testing.assert_allclose(runs["static"][0], runs[cache][0], atol=1e-4)
        np.testing.assert_allclose(runs["static"][1], runs[cache][1], atol=1e-4)
    whole = generate_reactions(model, clip.audio, clip.face3dmm, clip.emotion, samples=3, seed=6)
    np.testing.assert_allclose(whole[1], runs["static"][1], atol=1e-4)


def _tensor_bytes(obj: object, seen: set[int] | None = None) -> int:
    """Bytes of every tensor reachable from ``obj`` through attributes, dicts, lists and tuples
    (the model is skipped: its weights do not grow)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, torch.nn.Module):
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v, seen) for v in obj)
    if hasattr(obj, "__dict__"):
        return sum(_tensor_bytes(v, seen) for v in vars(obj).values())
    return 0


@pytest.mark.parametrize(("cache", "frames"), [("static", 20_000), ("dynamic", 4_000)])
def test_stream_memory_is_flat_in_clip_length(cache: str, frames: int) -> None:
    """A 20 000-frame clip streams in fixed memory (the static cache; the dynamic one is checked
    over a shorter clip to keep the suite fast): every tensor the stream holds, walked from its
    attributes, adds up to the same bytes at frame 800 as at the end."""
    model = random_model(patch=16, context=16, emotion_skip=6, smoothing=0.3)
    stream = BatchedReactionStream(model, [1], samples=2, cache=cache)
    clip = make_clips([400], seed=1)[0]
    sizes, addresses = {}, [t.data_ptr() for t in stream.state_tensors()]
    while stream.received < frames:
        stream.push(clip.audio[None], clip.face3dmm[None], clip.emotion[None])
        if stream.received in (800, frames // 2, frames):
            sizes[stream.received] = _tensor_bytes(stream)
    assert sizes[800] == sizes[frames // 2] == sizes[frames] > 0
    if cache == "static":  # the ring buffers never move: a captured graph stays valid
        assert [t.data_ptr() for t in stream.state_tensors()] == addresses
    reference = BatchedReactionStream(model, [1], samples=2, cache="none")  # the walk sees growth
    reference.push(clip.audio[None, :40], clip.face3dmm[None, :40], clip.emotion[None, :40])
    before = _tensor_bytes(reference)
    reference.push(clip.audio[None, 40:80], clip.face3dmm[None, 40:80], clip.emotion[None, 40:80])
    assert _tensor_bytes(reference) > before


class _Recorder(TorchDispatchMode):
    """Every aten op a piece of code runs, with its tensor arguments' shapes."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[str, tuple]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        self.ops.append((str(func), tuple(tuple(a.shape) for a in args if isinstance(a, torch.Tensor))))
        return func(*args, **(kwargs or {}))


#: Ops that read a tensor value back to the host or give an output shape that depends on values:
#: none may run inside a step that is captured as a CUDA graph.
HOST_SYNC_OPS = ("_local_scalar_dense", "nonzero", "masked_select", "unique", "item")


@pytest.mark.parametrize("frames", [1, 4])
def test_the_static_step_has_the_structure_a_cuda_graph_needs(model, frames: int) -> None:
    """Same ops on the same shapes at every frame (also once the rings wrap), nothing read back to
    the host, every state tensor updated in place at a fixed address."""
    stream = BatchedReactionStream(model, [1, 2], samples=3)
    addresses = [t.data_ptr() for t in stream.state_tensors()]
    traces = []
    for _ in range(48 // frames):
        inputs = stream._zeros(frames)
        with torch.no_grad(), _Recorder() as recorder:
            stream._step(*inputs)
        traces.append(recorder.ops)
    assert all(trace == traces[0] for trace in traces)
    names = {name for name, _ in traces[0]}
    assert not [name for name in names if any(bad in name for bad in HOST_SYNC_OPS)]
    assert [t.data_ptr() for t in stream.state_tensors()] == addresses
    assert int(stream._frame) == 48 // frames * frames
    dynamic = BatchedReactionStream(model, [1, 2], samples=3, cache="dynamic")  # the check can fail
    with torch.no_grad(), _Recorder() as recorder:
        dynamic._step(*dynamic._zeros(frames))
    assert any("_local_scalar_dense" in name for name, _ in recorder.ops)


def test_saving_and_restoring_the_state_around_extra_steps_changes_nothing(model) -> None:
    """What a capture does mid-stream (warm-up steps between a save and a restore of the state)."""
    clip = make_clips([32], seed=4)[0]
    plain = ReactionStream(model, samples=2, seed=3)
    captured_like = ReactionStream(model, samples=2, seed=3)
    first = [plain.push(clip.audio[:12], clip.face3dmm[:12], clip.emotion[:12]),
             captured_like.push(clip.audio[:12], clip.face3dmm[:12], clip.emotion[:12])]
    inner = captured_like.stream
    saved = [t.clone() for t in inner.state_tensors()]
    with torch.no_grad():
        for _ in range(3):
            inner._step(*inner._zeros(1))
    for t, value in zip(inner.state_tensors(), saved, strict=True):
        t.copy_(value)
    a = plain.push(clip.audio[12:], clip.face3dmm[12:], clip.emotion[12:])
    b = captured_like.push(clip.audio[12:], clip.face3dmm[12:], clip.emotion[12:])
    torch.testing.assert_close(first[0].face3dmm, first[1].face3dmm, rtol=0, atol=0)
    torch.testing.assert_close(a.face3dmm, b.face3dmm, rtol=0, atol=0)
    torch.testing.assert_close(a.emotion, b.emotion, rtol=0, atol=0)


def test_reset_starts_over_and_can_take_new_seeds(model) -> None:
    clips = make_clips([20, 20], seed=7)
    audio = np.stack([c.audio for c in clips])
    face = np.stack([c.face3dmm for c in clips])
    emotion = np.stack([c.emotion for c in clips])
    stream = BatchedReactionStream(model, [1, 2], samples=2)
    first = stream.push(audio, face, emotion)
    stream.reset()
    again = stream.push(audio, face, emotion)
    assert again.start == 0 and torch.equal(first.emotion, again.emotion)
    stream.reset([5, 6])
    fresh = BatchedReactionStream(model, [5, 6], samples=2).push(audio, face, emotion)
    assert torch.equal(stream.push(audio, face, emotion).emotion, fresh.emotion)
    assert not torch.equal(fresh.emotion, first.emotion)
    with pytest.raises(ReactError, match="expected 2 seeds"):
        stream.reset([1])


def test_batched_stream_checks_its_input(model) -> None:
    stream = BatchedReactionStream(model, [1, 2], samples=2)
    emotion = np.zeros((2, 3, 25), np.float32)
    with pytest.raises(ReactError, match=r"expected \(2, n, 10\)"):
        stream.push(np.zeros((1, 3, 10), np.float32), np.zeros((2, 3, 58), np.float32), emotion)
    with pytest.raises(ReactError, match="3 frames but 3DMM has 4"):
        stream.push(np.zeros((2, 3, 10), np.float32), np.zeros((2, 4, 58), np.float32), emotion)
    with pytest.raises(ReactError, match="NaN"):
        stream.push(np.full((2, 3, 10), np.inf, np.float32), np.zeros((2, 3, 58), np.float32), emotion)
    with pytest.raises(ReactError, match="cache"):
        BatchedReactionStream(model, [1], cache="ring")
    with pytest.raises(ReactError, match="CUDA"):
        BatchedReactionStream(model, [1], capture=True)
    with pytest.raises(ReactError, match="at least one clip"):
        BatchedReactionStream(model, [])
    with pytest.raises(ReactError, match="3 clips but 2 seeds"):
        list(generate_batch(model, make_clips([5, 5, 5]), [1, 2]))


def test_automatic_batch_size_on_cpu(model) -> None:
    assert auto_batch_clips(model, 10, 751, 3) == 3
    assert auto_batch_clips(model, 10, 751, 1000) == CPU_BATCH_CLIPS
    # long clips: the batch's output arrays stay within the limit
    assert auto_batch_clips(model, 10, 20_000, 1000) * 10 * 20_000 * 83 * 4 <= 2 * 2**30
    assert auto_batch_clips(model, 10, 10**8, 5) == 1


def test_generate_batch_reads_lazy_clips_a_batch_at_a_time(model) -> None:
    clips = make_clips([12, 12, 12, 12])
    reads: list[int] = []

    @dataclasses.dataclass
    class Lazy:
        def __len__(self) -> int:
            return len(clips)

        def __getitem__(self, i: int) -> SpeakerClip:
            reads.append(i)
            return clips[i]

    batches = generate_batch(model, Lazy(), [1, 2, 3, 4], samples=2, batch_clips=2, lengths=[12] * 4)
    next(batches)
    assert reads == [0, 1]  # the second batch is not read yet
    assert len(list(batches)) == 3 and reads == [0, 1, 2, 3]


@pytest.mark.parametrize("block", [None, 8])
def test_ring_cache_holds_the_same_keys_as_the_growing_cache(block: int | None) -> None:
    """Steps of any size up to the ring's step, over many wraps, sliding (predictor) or blocked
    (tokenizer) windows: the same outputs as concatenate-and-trim, within float rounding."""
    from reactcli.models.layers import Attention, KVCache, RingKVCache

    torch.manual_seed(0)
    attention = Attention(16, 2, window=8, block=block, rotary=block is None).eval()
    x = torch.randn(3, 70, 16)
    ring, growing = RingKVCache(step=5), KVCache()
    lo, outs = 0, []
    for n in [1, 5, 2, 5, 5, 3, 1, 4, 5, 5, 5, 1, 2, 5, 5, 5, 4, 3, 4]:
        pos = torch.arange(lo, lo + n)
        with torch.no_grad():
            a = attention(x[:, lo : lo + n], x[:, lo : lo + n], pos, pos, cache=ring)
            b = attention(x[:, lo : lo + n], x[:, lo : lo + n], pos, pos, cache=growing)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
        outs.append(a)
        lo += n
    assert lo == 70 and ring.k.shape == (3, 2, 8 + 5 - 1, 8)  # window + step - 1 slots, however long
    whole = attention(x, x, torch.arange(70), torch.arange(70))
    torch.testing.assert_close(torch.cat(outs, 1), whole, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="steps of <= 5"):
        attention(x[:, :6], x[:, :6], torch.arange(70, 76), torch.arange(70, 76), cache=ring)
