"""Streaming generation: KV cache equals recomputation, chunking does not matter, sampling masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _model_fixtures import random_model

from reactcli.errors import ReactError
from reactcli.generate import ReactionStream, generate_reactions, sample_tokens
from reactcli.vocab import VALENCE_AROUSAL


@pytest.fixture(scope="module")
def model():
    return random_model()


@pytest.fixture(scope="module")
def clip():
    rng = np.random.default_rng(0)
    return (
        rng.normal(size=(45, 10)).astype(np.float32),
        rng.normal(size=(45, 58)).astype(np.float32),
        rng.random(size=(45, 25)).astype(np.float32),
    )


def test_kv_cache_matches_full_recomputation(model, clip) -> None:
    face, emo = generate_reactions(model, *clip, samples=3, seed=4)
    face_ref, emo_ref = generate_reactions(model, *clip, samples=3, seed=4, use_cache=False)
    assert face.shape == (3, 45, 58) and emo.shape == (3, 45, 25)
    np.testing.assert_allclose(face, face_ref, atol=1e-4)
    np.testing.assert_allclose(emo, emo_ref, atol=1e-4)


def test_frame_by_frame_equals_chunks(model, clip) -> None:
    face1, _ = generate_reactions(model, *clip, samples=2, seed=1, chunk=1)
    face7, _ = generate_reactions(model, *clip, samples=2, seed=1, chunk=7)
    face_all, _ = generate_reactions(model, *clip, samples=2, seed=1, chunk=45)
    np.testing.assert_allclose(face1, face7, atol=1e-4)
    np.testing.assert_allclose(face1, face_all, atol=1e-4)


def test_stream_returns_frames_as_soon_as_possible(model, clip) -> None:
    stream = ReactionStream(model, samples=2, seed=0)
    out = stream.push(clip[0][:1], clip[1][:1], clip[2][:1])
    assert out.face3dmm.shape == (2, 1, 58) and out.start == 0
    out = stream.push(clip[0][1:10], clip[1][1:10], clip[2][1:10])
    assert out.face3dmm.shape == (2, 9, 58) and out.start == 1
    assert stream.push(clip[0][:0], clip[1][:0], clip[2][:0]).face3dmm.shape == (2, 0, 58)


def test_same_seed_same_output_other_seed_differs(model, clip) -> None:
    a = generate_reactions(model, *clip, samples=3, seed=9)[1]
    b = generate_reactions(model, *clip, samples=3, seed=9)[1]
    c = generate_reactions(model, *clip, samples=3, seed=10)[1]
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert not np.array_equal(a[0], a[1])  # the K reactions differ from each other


def test_sampling_is_per_sample_and_masks_invalid_ids() -> None:
    vocab = 12
    logits = torch.zeros(3, 5, vocab)
    logits[..., 10:] = 50.0  # PAD/MASK would win if not masked
    logits[0, :, 3] = 5.0
    logits[1, :, 7] = 5.0
    logits[2, :, 7] = -50.0  # sample 2 must not be influenced by the other samples' scores
    valid = torch.ones(vocab, dtype=torch.bool)
    valid[10:] = False
    valid[4] = False  # an unused code
    uniform = torch.rand(3, 5, vocab, generator=torch.Generator().manual_seed(0))
    top1 = sample_tokens(logits, valid, torch.tensor([1, 1, 1]), torch.ones(3), uniform)
    assert (top1[0] == 3).all() and (top1[1] == 7).all()
    assert not (top1[2] == 7).any()
    logits = torch.randn(3, 400, vocab, generator=torch.Generator().manual_seed(2))
    many = sample_tokens(logits, valid, torch.tensor([1, 3, 12]), torch.tensor([1.0, 1.0, 5.0]),
                         torch.rand(3, 400, vocab, generator=torch.Generator().manual_seed(1)))
    assert not bool(((many == 4) | (many >= 10)).any())
    ranked = logits.masked_fill(~valid, float("-inf")).argsort(-1, descending=True)
    assert torch.equal(many[0], ranked[0, :, 0])  # top-1 is the per-row argmax
    assert (ranked[1, :, :3] == many[1][:, None]).any(-1).all()  # top-3 per sample and frame
    assert not (ranked[2, :, :3] == many[2][:, None]).any(-1).all()  # sample 2 has its own, larger k


def test_per_sample_top_k_and_temperature_are_checked(model) -> None:
    with pytest.raises(ReactError, match="one per sample"):
        ReactionStream(model, samples=3, top_k=[5, 5])
    with pytest.raises(ReactError, match="temperature"):
        ReactionStream(model, samples=2, temperature=0.0)
    stream = ReactionStream(model, samples=2)
    emotion = np.zeros((3, 25), np.float32)
    with pytest.raises(ReactError, match="expected"):
        stream.push(np.zeros((3, 9), np.float32), np.zeros((3, 58), np.float32), emotion)
    with pytest.raises(ReactError, match="NaN"):
        stream.push(np.full((3, 10), np.nan, np.float32), np.zeros((3, 58), np.float32), emotion)
    with pytest.raises(ReactError, match="NaN"):
        stream.push(np.zeros((3, 10), np.float32), np.zeros((3, 58), np.float32), emotion + np.nan)
    with pytest.raises(ReactError, match="takes the speaker's emotion"):
        stream.push(np.zeros((3, 10), np.float32), np.zeros((3, 58), np.float32))
    with pytest.raises(ReactError, match=r"speaker emotion: expected \(3, 25\)"):
        stream.push(np.zeros((3, 10), np.float32), np.zeros((3, 58), np.float32), emotion[:2])


def test_emotion_skip_path_streams_exactly(clip) -> None:
    model = random_model(emotion_skip=6)
    _, cached = generate_reactions(model, *clip, samples=2, seed=1)
    _, full = generate_reactions(model, *clip, samples=2, seed=1, use_cache=False)
    _, one = generate_reactions(model, *clip, samples=2, seed=1, chunk=1)
    np.testing.assert_allclose(cached, full, atol=1e-4)
    np.testing.assert_allclose(cached, one, atol=1e-4)
    _, plain = generate_reactions(random_model(), *clip, samples=2, seed=1)
    assert not np.allclose(cached, plain, atol=1e-3)  # the path changes the emotion


def test_linear_emotion_dims_are_the_linear_path_alone(clip) -> None:
    """Valence/arousal from the fixed linear path only: equal across the K samples, unchanged by the
    transformer's weights, and streamed exactly; the other dims still vary between samples."""
    model = random_model(emotion_skip=6, linear_dims="valence_arousal")
    _, cached = generate_reactions(model, *clip, samples=3, seed=1)
    _, one = generate_reactions(model, *clip, samples=3, seed=1, chunk=1)
    np.testing.assert_allclose(cached, one, atol=1e-4)
    va = list(VALENCE_AROUSAL)
    others = [d for d in range(cached.shape[-1]) if d not in va]
    np.testing.assert_allclose(cached[:, :, va], np.broadcast_to(cached[:1, :, va], cached[:, :, va].shape), atol=1e-5)
    assert not np.allclose(cached[0, :, others], cached[1, :, others], atol=1e-4)
    with torch.no_grad():  # another transformer, same linear path: same valence/arousal
        model.predictor.emotion_head.weight.normal_()
        model.predictor.head.weight.normal_()
    _, changed = generate_reactions(model, *clip, samples=3, seed=1)
    np.testing.assert_allclose(changed[:, :, va], cached[:, :, va], atol=1e-5)
    assert not np.allclose(changed[:, :, others], cached[:, :, others], atol=1e-3)


def test_linear_emotion_dims_need_the_linear_path() -> None:
    """Refused when the configuration is loaded, before any model is built."""
    with pytest.raises(ReactError, match=r"^command line: predictor\.linear_emotion_dims takes .* needs .*"
                                         r"predictor\.emotion_skip > 0"):
        random_model(linear_dims="valence_arousal")


def test_emitted_emotion_is_valid_and_the_projection_can_be_turned_off(clip) -> None:
    raw = random_model(emotion_skip=6)
    with torch.no_grad():  # push the head's outputs far outside the valid ranges
        raw.predictor.emotion_head.bias.fill_(3.0)
    _, unprojected = generate_reactions(raw, *clip, samples=2, seed=1)
    assert (unprojected[..., :17] > 1.0).any()
    raw.config.generation.valid_emotion = True
    _, projected = generate_reactions(raw, *clip, samples=2, seed=1)
    assert projected[..., :15].min() >= 0.0 and projected[..., :15].max() <= 1.0
    assert np.abs(projected[..., 15:17]).max() <= 1.0
    np.testing.assert_allclose(projected[..., 17:].sum(-1), 1.0, atol=1e-5)
    assert projected[..., 17:].min() >= 0.0


def test_emotion_residual_scale_shrinks_the_learned_part_towards_the_linear_path(clip) -> None:
    """emotion = skip + scale * residual, frame by frame: scale 0 is the linear path alone (equal
    across samples), scale 0.5 lies exactly half-way, and it streams exactly (online)."""
    model = random_model(emotion_skip=6)

    def emotion(scale: float, **kw) -> np.ndarray:
        model.config.generation.emotion_residual_scale = scale
        return generate_reactions(model, *clip, samples=3, seed=1, **kw)[1]

    full, half, linear = emotion(1.0), emotion(0.5), emotion(0.0)
    np.testing.assert_allclose(linear, np.broadcast_to(linear[:1], linear.shape), atol=1e-5)
    assert not np.allclose(full[0], full[1], atol=1e-4)
    # The sampled tokens (and so the states) do not depend on the scale: the mix is exact.
    np.testing.assert_allclose(half, (full + linear) / 2, atol=1e-4)
    np.testing.assert_allclose(emotion(0.5, chunk=1), half, atol=1e-4)


def test_emotion_residual_scale_needs_an_emotion_head(clip) -> None:
    model = random_model(emotion_head=False)
    model.config.generation.emotion_residual_scale = 0.5
    with pytest.raises(ReactError, match="emotion_residual_scale needs"):
        generate_reactions(model, *clip, samples=2, seed=1)


def test_a_large_seed_does_not_overflow_the_noise_generator(model, clip) -> None:
    """A seed past torch's 64-bit range (``--seed`` is any integer) still gives one reproducible
    stream: each frame's noise is seeded by ``derive_seed("frame", seed, frame)``."""
    from reactcli.runtime import derive_seed

    big = 2**70 + 23
    face, _ = generate_reactions(model, *clip, samples=2, seed=big)
    again, _ = generate_reactions(model, *clip, samples=2, seed=big)
    np.testing.assert_array_equal(face, again)
    assert np.isfinite(face).all()
    stream = ReactionStream(model, 2, seed=7)
    g = torch.Generator().manual_seed(derive_seed("frame", 7, 3))
    expected = torch.rand(2, model.predictor.vocab_size, generator=g)
    np.testing.assert_array_equal(stream._uniform(3, 4)[:, 0].numpy(), expected.numpy())


# ------------------------------------------------------------------ the drivers of ``react generate``
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random model on the preprocessed fixture's MFCC features (78-d), saved as train-predictor does."""
    from reactcli.models.checkpoint import PREDICTOR_KIND, predictor_payload, save_checkpoint

    model = random_model(audio_dim=78, patch=8, context=16, emotion_skip=4)
    path = tmp_path_factory.mktemp("ckpt") / "predictor.ckpt"
    save_checkpoint(path, PREDICTOR_KIND, predictor_payload(model.config, model.tokenizer, model.predictor,
                                                            model.valid_codes))  # fmt: skip
    return path


def test_single_clip_equals_dataset_mode_on_the_same_clip(checkpoint: Path, preprocessed_root: Path, tmp_path: Path):
    """``generate_clip_file`` from the clip's raw files (wav, 3DMM, emotion CSV) equals ``generate_split``'s
    sample n when its seed is that sample's stream seed ``sample_seed(seed, n)``: same features, same
    inputs, same noise. The record says how both were made."""
    import json

    from reactcli.data.layout import DatasetLayout, mirrored, read_pairs
    from reactcli.generate import generate_clip_file, generate_split, sample_seed

    cpu = torch.device("cpu")
    two = {"generation": {"samples": 2}}
    record = generate_split(checkpoint, preprocessed_root, "test", tmp_path / "pred", 5, cpu, two)
    assert (record["split"], record["N"], record["K"], record["seed"]) == ("test", 4, 2, 5)
    assert record["generation"]["samples"] == 2 and "emotion_residual_scale" in record["generation"]
    assert "valid_emotion" in record["generation"] and len(record["checkpoint_sha256"]) == 64
    emotion, face = np.load(tmp_path / "pred" / "emotion.npy"), np.load(tmp_path / "pred" / "face3dmm.npy")
    assert emotion.shape == (4, 2, 750, 25) and face.shape == (4, 2, 751, 58)
    layout = DatasetLayout(preprocessed_root)
    n = 3  # a swapped sample: the row's listener speaks
    sample = mirrored(read_pairs(preprocessed_root, "test"))[n]
    assert record["ids"][n] == f"{sample.speaker}->{sample.listener}"
    out = tmp_path / "one.npz"
    single = generate_clip_file(
        checkpoint, layout.audio("test", sample.speaker), layout.face3dmm("test", sample.speaker), out,
        sample_seed(5, n), cpu, two, layout.emotion("test", sample.speaker),
    )  # fmt: skip
    with np.load(out) as arrays:
        # dataset mode runs the clips as one batch: the same tokens, float rounding of batched products
        np.testing.assert_allclose(arrays["emotion"][:, :750], emotion[n], rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(arrays["face3dmm"], face[n], rtol=1e-5, atol=1e-4)
        assert json.loads(str(arrays["record"])) == single
    assert single["generation"] == record["generation"] and single["seed"] == sample_seed(5, n)


def test_generate_refuses_a_full_disk_in_one_line_and_keeps_the_older_set(
    checkpoint: Path, preprocessed_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """The issue's failure: a full disk between two writes left a new emotion.npy (seed 7) beside the old
    face3dmm.npy and a generation.json saying seed 0, and a traceback. Now: one line, old set whole."""
    import errno

    from conftest import run_cli

    from reactcli import predictions

    out = tmp_path / "pred"
    base = ["generate", "--checkpoint", str(checkpoint), "--data", str(preprocessed_root), "--split", "test",
            "--samples", "1", "--device", "cpu", "--out", str(out)]  # fmt: skip
    assert run_cli([*base, "--seed", "0"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = predictions._write_block
    calls = {"n": 0}

    def full_disk(fh, block) -> None:
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fh, block)

    monkeypatch.setattr(predictions, "_write_block", full_disk)
    capsys.readouterr()
    assert run_cli([*base, "--seed", "7"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "━" not in line]
    assert err == [f"error: {out}: could not write (No space left on device); nothing was changed there"]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred"]
    monkeypatch.undo()
    with pytest.raises(ReactError, match="holds other files \\(predictor.ckpt\\)"):  # a run folder given as --out
        from reactcli.generate import generate_split

        generate_split(checkpoint, preprocessed_root, "test", checkpoint.parent, 0, torch.device("cpu"))


def test_single_clip_refuses_mismatched_lengths_and_integer_3dmm(
    checkpoint: Path, preprocessed_root: Path, tmp_path: Path
) -> None:
    from scipy.io import wavfile

    from reactcli.data.layout import DatasetLayout, read_pairs
    from reactcli.generate import generate_clip_file

    layout = DatasetLayout(preprocessed_root)
    clip = read_pairs(preprocessed_root, "test")[0].speaker
    audio, face, emotion = layout.audio("test", clip), layout.face3dmm("test", clip), layout.emotion("test", clip)
    rate, wave = wavfile.read(audio)
    long_wav = tmp_path / "long.wav"
    wavfile.write(long_wav, rate, np.concatenate([wave, wave]))  # 60 s of sound for a 30 s face
    raw = np.load(face)
    long_face, int_face = tmp_path / "long.npy", tmp_path / "int.npy"
    np.save(long_face, np.concatenate([raw, raw[:249]]))  # 1000 frames
    np.save(int_face, (raw * 100).astype(np.int16))
    cases = [
        (long_wav, face, f"{long_wav}: audio is 60.04 s (1501 frames at 25 fps) but the 3DMM {face} has 751"),
        (audio, long_face, f"{long_face}: 3DMM has 1000 frames, expected 751"),
        (audio, int_face, f"{int_face}: 3DMM has dtype int16, expected floating point"),
    ]
    for wav, face3dmm, message in cases:
        with pytest.raises(ReactError) as exc:
            generate_clip_file(checkpoint, wav, face3dmm, tmp_path / "x.npz", 0, torch.device("cpu"), None, emotion)
        assert message in str(exc.value) and "\n" not in str(exc.value)
    assert not (tmp_path / "x.npz").exists()
