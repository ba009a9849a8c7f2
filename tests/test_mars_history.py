"""The history condition of REACT 2026 (``predictor.history_frames``): which recording is the
listener's past, the window cut from it, training and validation with it, the stream's encoded
history buffer (online, deterministic, and it changes the reactions), MARS generation and live
replay with it, the settings it refuses, and models without it unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _mars_models import FAST as FAST_MARS
from _mars_models import MARS_TINY, random_mars_model, save_mars_model, synthetic_release
from _mars_models import SMALL as SMALL_MARS

from reactcli.config import load_config, parse_overrides
from reactcli.data.features import audio_feature_dim
from reactcli.data.mars import Recording
from reactcli.data.mars_dataset import MarsTrainingSet, training_edition
from reactcli.data.mars_history import (
    HISTORY_DIM,
    empty_history,
    history_window,
    previous_recording,
    stem_time,
)
from reactcli.errors import ReactError
from reactcli.generate import ReactionStream, SpeakerClip, generate_batch, generate_reactions
from reactcli.models.checkpoint import (
    ReactionModel,
    build_models,
    load_reaction_model,
)
from reactcli.vocab import EMOTION_DIM, FACE_DIM

SMALL = [*SMALL_MARS, "predictor.personality=false"]
H = 20


def rec(session: int, stem: str, role: str = "listener") -> Recording:
    return Recording(role, f"session{session}", stem)


def test_previous_recording_rule() -> None:
    """Same role, same day, same traits where known, the latest earlier start; other names have none."""
    a = rec(0, "Camera-2024-06-01-090000-090100")
    b = rec(7, "Camera-2024-06-01-092500-092610")
    c = rec(15, "Camera-2024-06-01-095000-095120")
    other_day = rec(3, "Camera-2024-06-02-091000-091100")
    speaker = rec(3, "Camera-2024-06-01-094000-094100", "speaker")
    stranger = rec(9, "Camera-2024-06-01-094500-094600")  # same day, another person (other traits)
    every = [c, other_day, speaker, b, a, stranger]
    assert stem_time(a.stem) == ("2024-06-01", "090000") and stem_time("clip_001") is None
    assert previous_recording(a, every) is None  # the first session
    assert previous_recording(b, every) == a
    assert previous_recording(c, every) == stranger  # without traits the day decides
    traits = {r.id: [0.1, 0.2, 0.3, 0.4, 0.5] for r in (a, b, c)} | {stranger.id: [0.9] * 5}
    assert previous_recording(c, every, traits) == b
    assert previous_recording(rec(1, "clip_001"), every) is None
    assert previous_recording(rec(1, "Camera-2024-06-02-080000-080100"), every) is None


def test_history_window_pads_before_and_flags_real_frames() -> None:
    face = np.arange(8 * FACE_DIM, dtype=np.float32).reshape(8, 1, FACE_DIM)  # (T, 1, 58) as in the release
    emotion = np.arange(8 * EMOTION_DIM, dtype=np.float32).reshape(8, EMOTION_DIM)
    short = history_window(face, emotion, 10)
    assert short.shape == (10, HISTORY_DIM) and short.dtype == np.float32
    np.testing.assert_array_equal(short[:2], 0.0)
    np.testing.assert_array_equal(short[2:, :FACE_DIM], face[:, 0])
    np.testing.assert_array_equal(short[2:, FACE_DIM:-1], emotion)
    np.testing.assert_array_equal(short[:, -1], [0, 0] + [1] * 8)
    last = history_window(face, emotion, 3)
    np.testing.assert_array_equal(last[:, :FACE_DIM], face[-3:, 0])
    assert last[:, -1].all()
    assert not empty_history(5).any() and empty_history(5).shape == (5, HISTORY_DIM)


def history_model(path: Path | None = None, frames: int = H, *extra: str) -> ReactionModel:
    """A random MARS model of the preset's design (small) with the history condition, whose listener
    stream visibly depends on the history; saved as train-predictor saves one when ``path`` is given."""

    def history_matters(predictor: torch.nn.Module) -> None:
        if predictor.history_encoder is not None:
            for p in predictor.history_encoder.parameters():
                p.normal_(0.0, 1.0)

    model = random_mars_model("predictor.personality=false", f"predictor.history_frames={frames}", *extra,
                              tweak=history_matters)
    if path is None:
        return model
    return load_reaction_model(save_mars_model(path, model))[0]


def speaker_clip(model: ReactionModel, frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    audio = rng.standard_normal((frames, model.predictor.audio_dim)).astype(np.float32)
    face = (0.1 * rng.standard_normal((frames, FACE_DIM))).astype(np.float32)
    emotion = rng.uniform(0, 1, (frames, EMOTION_DIM)).astype(np.float32)
    return audio, face, emotion


def some_history(seed: int, frames: int = H, real: int = H - 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return history_window(0.3 * rng.standard_normal((real, FACE_DIM)), rng.uniform(0, 1, (real, EMOTION_DIM)),
                          frames)


def test_stream_with_history_is_online_deterministic_and_conditioned(tmp_path: Path) -> None:
    model = history_model(tmp_path / "predictor.ckpt")
    audio, face, emotion = speaker_clip(model, 70)
    past, other = some_history(1), some_history(2)
    first = generate_reactions(model, audio, face, emotion, seed=3, history=past)
    again = generate_reactions(model, audio, face, emotion, seed=3, history=past)
    np.testing.assert_array_equal(first[1], again[1])
    changed = generate_reactions(model, audio, face, emotion, seed=3, history=other)
    assert not np.allclose(first[1], changed[1])
    none = generate_reactions(model, audio, face, emotion, seed=3, history=empty_history(H))
    assert not np.allclose(first[1], none[1])
    # online: perturbing the speaker after frame t leaves frames <= t unchanged
    t = 37
    later = audio.copy()
    later[t + 1 :] += 5.0
    face_later = face.copy()
    face_later[t + 1 :] += 0.5
    perturbed = generate_reactions(model, later, face_later, emotion, seed=3, history=past)
    np.testing.assert_allclose(perturbed[1][:, : t + 1], first[1][:, : t + 1], atol=1e-5)
    assert not np.allclose(perturbed[1][:, t + 1 :], first[1][:, t + 1 :])
    # pushed in chunks and without cache: the same reactions up to float rounding
    chunked = generate_reactions(model, audio, face, emotion, seed=3, history=past, chunk=7)
    np.testing.assert_allclose(chunked[1], first[1], atol=1e-4)
    uncached = generate_reactions(model, audio, face, emotion, seed=3, history=past, chunk=7, use_cache=False)
    np.testing.assert_allclose(uncached[1], first[1], atol=1e-4)
    # a batch of two clips with their own histories: each equals its one-clip run; reset keeps the buffer
    clips = [SpeakerClip(audio, face, emotion, None, past), SpeakerClip(audio, face, emotion, None, other)]
    batched = {i: e for i, _, e in generate_batch(model, clips * 2, [3, 3, 3, 3], batch_clips=2)}
    np.testing.assert_allclose(batched[0], first[1], atol=1e-4)
    np.testing.assert_allclose(batched[1], changed[1], atol=1e-4)
    np.testing.assert_allclose(batched[3], changed[1], atol=1e-4)


def test_history_settings_refused(tmp_path: Path) -> None:
    model = history_model()
    plain = history_model(frames=0)
    assert plain.predictor.history_encoder is None
    with pytest.raises(ReactError, match="takes the listener's history") as err:
        ReactionStream(model)
    assert "\n" not in str(err.value)
    with pytest.raises(ReactError, match=r"expected finite \(1, 20, 84\)"):
        ReactionStream(model, history=np.zeros((H + 1, HISTORY_DIM), np.float32))
    bad = some_history(1)
    bad[3, 4] = np.nan
    with pytest.raises(ReactError, match="listener history: expected finite"):
        ReactionStream(model, history=bad)
    with pytest.raises(ReactError, match="does not take the listener's history"):
        ReactionStream(plain, history=some_history(1))
    audio, face, emotion = speaker_clip(model, 20)
    with pytest.raises(ReactError, match="a clip has none"):
        list(generate_batch(model, [SpeakerClip(audio, face, emotion)], [0]))
    with pytest.raises(ValueError, match="takes the listener's history"):
        model.predictor.past(None)
    with pytest.raises(Exception, match="history_frames"):
        load_config(MARS_TINY, parse_overrides(["predictor.history_frames=-1"]), environ={})
    # a REACT 2024 root has no previous recordings: refused in one line
    from reactcli.training.corpus import PAST, load_clips

    (tmp_path / "r24").mkdir()
    (tmp_path / "r24" / "train.csv").write_text(",speaker_path,listener_path\n")
    cfg = load_config(MARS_TINY, parse_overrides([*SMALL, f"predictor.history_frames={H}"]), environ={})
    with pytest.raises(ReactError, match="the history condition needs a MARS root") as err:
        load_clips(tmp_path / "r24", "train", cfg, ("listener_3dmm", PAST))
    assert "\n" not in str(err.value)


def test_models_without_history_are_unchanged() -> None:
    """The encoder is built last: with it on, every other weight starts as without it; with it off
    the model has no new parameter (so 2024 and existing MARS checkpoints load and run as before)."""
    plain, with_history = history_model(frames=0), history_model()
    ours = with_history.predictor.state_dict()
    theirs = plain.predictor.state_dict()
    assert not any("history" in k for k in theirs)
    assert set(ours) - set(theirs) == {k for k in ours if k.startswith("history_encoder.")} != set()
    cfg = load_config(MARS_TINY, parse_overrides(SMALL), environ={})
    torch.manual_seed(0)
    _, fresh_plain = build_models(cfg, audio_feature_dim(cfg.audio))
    cfg_h = load_config(MARS_TINY, parse_overrides([*SMALL, f"predictor.history_frames={H}"]), environ={})
    torch.manual_seed(0)
    _, fresh_history = build_models(cfg_h, audio_feature_dim(cfg_h.audio))
    for key, value in fresh_plain.state_dict().items():
        assert torch.equal(value, fresh_history.state_dict()[key]), key
    # a listener without a past gets the encoder's learned "no history" vector (its last bias)
    empty = torch.as_tensor(empty_history(H))[None]
    np.testing.assert_allclose(with_history.predictor.past(empty)[0].detach().numpy(),
                               with_history.predictor.history_encoder.out.bias.detach().numpy(), atol=1e-6)


# -- on a synthetic 2026 release ------------------------------------------------------------------
@pytest.fixture(scope="module")
def mars_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train and val 2 dyads x 3 sessions each (a listener's later sessions have a past)."""
    return synthetic_release(tmp_path_factory.mktemp("mars-history") / "data", {"train": 2, "val": 2}, sessions=3)


FAST = [*FAST_MARS, "training.tokenizer_max_steps=6", "training.predictor_max_steps=4", "training.val_every=2",
        "training.self_sampling=0.3"]


def test_synthetic_listeners_have_their_previous_session(mars_root: Path) -> None:
    """On the synthetic release the rule finds each listener's earlier session of the same dyad."""
    cfg = load_config(MARS_TINY, parse_overrides([*FAST, f"predictor.history_frames={H}"]), environ={})
    data = MarsTrainingSet(mars_root, "train", cfg, training_edition(mars_root, cfg))
    found = {s.target.id: data.previous(s.target) for s in data.samples}
    assert sum(p is None for p in found.values()) == 2  # each of the 2 listeners' first session
    for target, before in found.items():
        if before is None:
            continue
        now = Recording.from_id(target)
        assert before.role == "listener" and stem_time(before.stem)[0] == stem_time(now.stem)[0]
        assert stem_time(before.stem)[1] < stem_time(now.stem)[1]
        np.testing.assert_array_equal(data.personality(before), data.personality(now))
    item = data.sample(1, ("listener_history",))["listener_history"]
    assert item.shape == (H, HISTORY_DIM)


def test_training_and_generation_with_history(mars_root: Path, tmp_path: Path) -> None:
    """predictor.history_frames trains (self-sampling too), validation reads the history (another
    history, another loss), and MARS generation and live replay feed every sample its own."""
    from conftest import run_cli

    from reactcli.generate import load_generation_model
    from reactcli.generate_mars import generation_edition, iter_mars_reactions, open_mars_split
    from reactcli.training.corpus import PAST
    from reactcli.training.ddp import DistContext
    from reactcli.training.predictor_stage import _tokenized_split, emotion_weights, train_predictor, validation_loss

    sets = [a for s in FAST for a in ("--set", s)]
    assert run_cli(["train-tokenizer", "--config", str(MARS_TINY), "--data", str(mars_root), "--out",
                    str(tmp_path), "--device", "cpu", *sets]) == 0
    cfg = load_config(MARS_TINY, parse_overrides([*FAST, f"predictor.history_frames={H}"]), environ={})
    report = train_predictor(mars_root, cfg, tmp_path / "tokenizer.ckpt", tmp_path, 0,
                             DistContext(0, 1, 0, torch.device("cpu")))
    assert report.steps == 4
    model, _ = load_reaction_model(tmp_path / "predictor_last.ckpt")
    encoder = model.predictor.history_encoder
    assert encoder is not None and encoder.frame.weight.abs().sum() > 0
    corpus = _tokenized_split(mars_root, "val", model.config, model.tokenizer, torch.device("cpu"))
    assert len(corpus[PAST]) == 6 and tuple(corpus[PAST][0].shape) == (H, HISTORY_DIM)
    assert sum(bool(h[:, -1].any()) for h in corpus[PAST]) == 4  # every session after a listener's first
    weights = emotion_weights(1.0)
    matched = validation_loss(model.predictor, corpus, torch.device("cpu"), 2.0, weights)
    other = [torch.flip(h, (0,)) * 0 + h.mean() for h in corpus[PAST]]
    swapped = validation_loss(model.predictor, {**corpus, PAST: other}, torch.device("cpu"), 2.0, weights)
    assert matched["val_loss"] != swapped["val_loss"]

    gen_model, _ = load_generation_model(tmp_path / "predictor_last.ckpt", torch.device("cpu"))
    edition = generation_edition(mars_root, "val", None, gen_model.config)
    mars = open_mars_split(mars_root, "val", gen_model, edition)
    assert mars.speakers.history == H
    clips = [mars.speakers[n] for n in range(len(mars.ids))]
    data = mars.speakers.data
    for n, clip in enumerate(clips):
        np.testing.assert_array_equal(clip.history, data.history(mars.speakers.samples[n].target, H))
    out = {n: e for n, _, e in iter_mars_reactions(gen_model, mars, 0, 2)}
    assert sorted(out) == list(range(6)) and out[0].shape[0] == 2
    from reactcli.generate import ModelFacts
    from reactcli.generate_mars import mars_generation_record

    record = mars_generation_record(gen_model, ModelFacts("2026"), tmp_path / "predictor_last.ckpt", 0, mars)
    assert f"the last {H} frames" in record["history"]

    from reactcli.live.replay import ReplayData
    from reactcli.live.session import replay_session

    replay = ReplayData(mars_root, "val", gen_model, edition="2026")
    for n, clip in enumerate(clips):
        np.testing.assert_array_equal(replay.clip(n)["listener_history"], clip.history)
    session = replay_session(gen_model, replay.clip(1), 2, 0)
    direct = ReactionStream(gen_model, 2, personality=clips[1].personality, history=clips[1].history)
    assert torch.equal(session.stream.stream._past, direct.stream._past)
