# ruff: noqa: F811  (pytest fixtures imported from _model_fixtures are parameters by design)
"""The online contract: changing speaker input after frame t leaves every generated frame <= t unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from _model_fixtures import random_model

from reactcli.generate import generate_reactions


@pytest.mark.parametrize(
    ("chunk", "smoothing", "skip", "linear_dims"),
    [(1, 0.0, 0, "none"), (5, 0.0, 0, "none"), (32, 0.0, 0, "none"), (5, 0.6, 8, "none"),
     (3, 0.0, 8, "valence_arousal")],
)
def test_future_speaker_input_cannot_change_past_frames(
    chunk: int, smoothing: float, skip: int, linear_dims: str
) -> None:
    model = random_model(patch=4, context=16, smoothing=smoothing, emotion_skip=skip, linear_dims=linear_dims)
    rng = np.random.default_rng(3)
    audio = rng.normal(size=(60, 10)).astype(np.float32)
    face = rng.normal(size=(60, 58)).astype(np.float32)
    emotion = rng.random(size=(60, 25)).astype(np.float32)
    ref_face, ref_emo = generate_reactions(model, audio, face, emotion, samples=3, seed=5, chunk=chunk)
    for t in (0, 9, 31, 47):
        a2, f2, e2 = audio.copy(), face.copy(), emotion.copy()
        a2[t + 1 :] += rng.normal(size=a2[t + 1 :].shape).astype(np.float32) * 2
        f2[t + 1 :] -= 1.5
        e2[t + 1 :] = 1.0 - e2[t + 1 :]
        out_face, out_emo = generate_reactions(model, a2, f2, e2, samples=3, seed=5, chunk=chunk)
        assert np.array_equal(out_face[:, : t + 1], ref_face[:, : t + 1])
        assert np.array_equal(out_emo[:, : t + 1], ref_emo[:, : t + 1])
        assert not np.array_equal(out_emo[:, t + 1 :], ref_emo[:, t + 1 :])  # the test can fail


def test_trained_checkpoint_is_online(trained_run, preprocessed_root) -> None:
    from reactcli.data.dataset import ReactClipDataset
    from reactcli.models.checkpoint import load_reaction_model

    model, _ = load_reaction_model(trained_run / "predictor.ckpt")
    cfg = model.config.model_copy(deep=True)
    clip = ReactClipDataset(preprocessed_root, "val", cfg).clip(0)
    audio, face, emotion = clip["speaker_audio"][:120], clip["speaker_3dmm"][:120], clip["speaker_emotion"][:120]
    ref = generate_reactions(model, audio, face, emotion, samples=2, seed=1)
    t = 70
    a2, f2, e2 = audio.copy(), face.copy(), emotion.copy()
    a2[t + 1 :] = a2[t + 1 :][::-1]
    f2[t + 1 :] = f2[t + 1 :][::-1]
    e2[t + 1 :] = e2[t + 1 :][::-1]
    out = generate_reactions(model, a2, f2, e2, samples=2, seed=1)
    assert np.array_equal(out[0][:, : t + 1], ref[0][:, : t + 1])
    assert np.array_equal(out[1][:, : t + 1], ref[1][:, : t + 1])


from _model_fixtures import trained_run  # noqa: E402,F401  (session fixture)


@pytest.mark.parametrize(("cache", "frames", "t"), [("static", 1200, 1111), ("dynamic", 120, 70)])
def test_batched_stream_is_online_per_clip(cache: str, frames: int, t: int) -> None:
    """Changing one clip's speaker input after frame t leaves that clip's frames <= t and every other
    clip of the batch unchanged, bit for bit; the static case runs long enough for every ring
    cache to wrap many times."""
    from reactcli.generate import BatchedReactionStream

    model = random_model(patch=8, context=16, smoothing=0.3, emotion_skip=8, linear_dims="valence_arousal")
    rng = np.random.default_rng(8)
    audio = rng.normal(size=(3, frames, 10)).astype(np.float32)
    face = rng.normal(size=(3, frames, 58)).astype(np.float32)
    emotion = rng.random(size=(3, frames, 25)).astype(np.float32)

    def run(a: np.ndarray, f: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        stream = BatchedReactionStream(model, [4, 5, 6], samples=2, cache=cache)
        faces, emotions = [], []
        for lo in range(0, frames, 400):
            out = stream.push(a[:, lo : lo + 400], f[:, lo : lo + 400], e[:, lo : lo + 400])
            faces.append(out.face3dmm.numpy())
            emotions.append(out.emotion.numpy())
        return np.concatenate(faces, 2), np.concatenate(emotions, 2)

    ref = run(audio, face, emotion)
    a2, f2, e2 = audio.copy(), face.copy(), emotion.copy()
    a2[1, t + 1 :] += 2.0
    f2[1, t + 1 :] -= 1.5
    e2[1, t + 1 :] = 1.0 - e2[1, t + 1 :]
    out = run(a2, f2, e2)
    for got, want in zip(out, ref, strict=True):
        assert np.array_equal(got[[0, 2]], want[[0, 2]])
        assert np.array_equal(got[1, :, : t + 1], want[1, :, : t + 1])
        assert not np.array_equal(got[1, :, t + 1 :], want[1, :, t + 1 :])  # the test can fail


def test_a_long_mars_recording_is_online_at_30_fps(tmp_path) -> None:
    """REACT 2025/2026: a personalised model of the MARS preset's design over a 1 500-frame recording
    (50 s at 30 fps): changing the speaker's sound after the end of frame t (sample floor((t + 1)
    16000 / 30)), and its face and attributes after frame t, leaves every generated frame <= t
    unchanged, bit for bit, through the 30 fps causal features and the stream's ring caches."""
    from test_generate_mars import mars_checkpoint

    from reactcli.data.features import FeatureExtractor, frame_ends
    from reactcli.generate import load_generation_model
    from reactcli.runtime import resolve_device

    model, facts = load_generation_model(mars_checkpoint(tmp_path / "m.ckpt"), resolve_device("cpu"))
    assert facts.fps == 30
    frames, rate = 1500, 16000
    rng = np.random.default_rng(11)
    t_axis = np.arange(frames * rate // 30) / rate
    wave = (0.3 * np.sin(2 * np.pi * 160 * t_axis) * (1 + np.sin(2 * np.pi * 1.5 * t_axis)) / 2
            + 0.02 * rng.normal(size=t_axis.shape)).astype(np.float32)  # fmt: skip
    face = rng.normal(size=(frames, 58)).astype(np.float32)
    emotion = rng.random((frames, 25)).astype(np.float32)
    traits = np.array([0.2, 0.9, 0.4, 0.7, 0.1], np.float32)
    extractor = FeatureExtractor(model.config.audio, fps=30)
    feats = extractor(wave, rate, frames)
    ref = generate_reactions(model, feats, face, emotion, samples=2, seed=7, personality=traits)
    for t in (533, 1111):
        end = int(frame_ends(t + 1, rate, 30)[-1])
        w2 = wave.copy()
        w2[end:] = rng.normal(size=len(w2) - end).astype(np.float32) * 0.5
        f2, e2 = face.copy(), emotion.copy()
        f2[t + 1 :] -= 1.5
        e2[t + 1 :] = 1.0 - e2[t + 1 :]
        feats2 = extractor(w2, rate, frames)
        assert np.array_equal(feats2[: t + 1], feats[: t + 1]) and not np.array_equal(feats2, feats)
        out = generate_reactions(model, feats2, f2, e2, samples=2, seed=7, personality=traits)
        for got, want in zip(out, ref, strict=True):
            assert np.array_equal(got[:, : t + 1], want[:, : t + 1])
            assert not np.array_equal(got[:, t + 1 :], want[:, t + 1 :])  # the test can fail
