"""Both training stages on a MARS root (REACT 2025/2026): the training samples, the 30 fps audio
features preprocess caches, ragged recordings through tokenising, statistics and the fixed linear
path, end to end through the CLI, resume, the release's non-causal features, and DDP (slow)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _mars_models import FAST as FAST_MARS
from _mars_models import MARS_TINY
from conftest import run_cli

from reactcli.config import ReactConfig, load_config, parse_overrides
from reactcli.data.cache import FeatureCache, load_mars_index
from reactcli.data.mars_dataset import MarsTrainingSet, training_edition
from reactcli.errors import ReactError
from reactcli.models.checkpoint import load_reaction_model, load_tokenizer

# A few seconds of CPU training. Crops of 128 frames on train recordings of 119-134: some are padded.
FAST = [*FAST_MARS, "training.tokenizer_max_steps=10", "training.predictor_max_steps=8", "training.val_every=4"]


def set_args(extra: tuple[str, ...] = ()) -> list[str]:
    return [arg for item in (*FAST, *extra) for arg in ("--set", item)]


def fast_config(*extra: str) -> ReactConfig:
    return load_config(MARS_TINY, parse_overrides([*FAST, *extra]), environ={})


@pytest.fixture(scope="module")
def mars_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic 2026 release (train 2 dyads x 2 sessions, val 1 x 2), preprocessed with
    the MARS preset's audio settings (causal MFCC at 30 fps)."""
    from reactcli.data.synth_mars import make_mars_dataset

    root = tmp_path_factory.mktemp("mars") / "data"
    make_mars_dataset(root, "2026", {"train": 2, "val": 1, "test": 0}, sessions=2, frames=(58, 140), video="none")
    assert run_cli(["preprocess", "--data", str(root), "--config", str(MARS_TINY), "--device", "cpu"]) == 0
    return root


@pytest.fixture(scope="module")
def mars_run(mars_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mars-run")
    common = ["--config", str(MARS_TINY), "--data", str(mars_root), "--out", str(out), "--device", "cpu", *set_args()]
    assert run_cli(["train-tokenizer", *common]) == 0
    assert run_cli(["train-predictor", "--tokenizer", str(out / "tokenizer.ckpt"), *common]) == 0
    return out


def test_training_samples_follow_the_direction_and_the_length_rule(mars_root: Path) -> None:
    cfg = fast_config()
    edition = training_edition(mars_root, cfg)
    assert edition.name == "2026"
    train = MarsTrainingSet(mars_root, "train", cfg, edition)
    index = load_mars_index(FeatureCache(mars_root, cfg), "train")
    assert [s.input.role for s in train.samples] == ["speaker"] * 4  # 2026: speaker -> listener only
    for i, sample in enumerate(train.samples):
        item = train.sample(i)
        frames = index.train_frames(sample)
        assert frames == train.frames(i) >= 58
        for key in ("speaker_audio", "speaker_3dmm", "speaker_emotion", "listener_3dmm", "listener_emotion",
                    "listener_eeg", "listener_eeg_mask"):
            assert len(item[key]) == frames, key
        assert item["speaker_audio"].shape[1] == 78 and item["listener_3dmm"].shape[1] == 58
        np.testing.assert_array_equal(item["listener_personality"], index.entries[sample.target.id].personality)
        assert item["listener_eeg"].shape == (frames, 14) and set(np.unique(item["listener_eeg_mask"])) <= {0.0, 1.0}
    both = MarsTrainingSet(mars_root, "train", fast_config("data.bidirectional=true"), edition)
    assert [s.input.role for s in both.samples] == ["speaker"] * 4 + ["listener"] * 4
    assert len(train.face_recordings()) == 8  # the tokenizer sees every recording once, speakers too
    assert len(train.sample(0, ("listener_3dmm",))) == 1
    assert min(train.frames(i) for i in range(len(train))) < cfg.training.predictor_crop_frames  # padded windows


def test_the_training_length_is_the_shortest_modality(mars_root: Path) -> None:
    """A listener three frames shorter than its speaker (as real copies have) shortens the sample."""
    cfg = fast_config()
    train = MarsTrainingSet(mars_root, "train", cfg, training_edition(mars_root, cfg))
    sample = train.samples[0]
    full = train.frames(0)
    train.index.entries[sample.target.id].frames["coefficients"] = full - 3
    item = train.sample(0)
    assert train.frames(0) == full - 3 and all(len(item[k]) == full - 3 for k in ("speaker_audio", "listener_3dmm"))


def test_preprocess_caches_causal_features_at_30_fps(mars_root: Path) -> None:
    from reactcli.data.features import FeatureExtractor
    from reactcli.data.mars_loaders import load_recording_audio

    cfg = fast_config()
    train = MarsTrainingSet(mars_root, "train", cfg, training_edition(mars_root, cfg))
    speaker = train.samples[1].input
    cached = train.audio(speaker)
    wave, rate = load_recording_audio(mars_root / "train" / "audio" / f"{speaker.id}.wav")
    length = train.index.entries[speaker.id].length
    expected = FeatureExtractor(cfg.audio, fps=30)(wave, rate, length)
    assert cached.shape == (length, 78) and np.array_equal(cached, expected)
    assert not np.array_equal(expected, FeatureExtractor(cfg.audio)(wave, rate, length))  # not the 25 fps rows


def test_release_features_are_read_in_place(mars_root: Path) -> None:
    cfg = fast_config("audio.encoder='release'")
    train = MarsTrainingSet(mars_root, "train", cfg, training_edition(mars_root, cfg))
    audio = train.sample(2, ("speaker_audio",))["speaker_audio"]
    release = np.load(mars_root / "train" / "audio-features" / f"{train.samples[2].input.id}.npy")
    assert audio.shape == (train.frames(2), 768) and np.array_equal(audio, release[: train.frames(2)])


def test_mars_settings_are_refused_on_a_2024_root(tmp_path: Path) -> None:
    from reactcli.training.corpus import load_clips

    (tmp_path / "train.csv").write_text(",speaker_path,listener_path\n")
    with pytest.raises(ReactError, match="data.bidirectional = False: REACT 2024 always trains on its mirrored"):
        load_clips(tmp_path, "train", fast_config("data.bidirectional=false"), ("listener_3dmm",))


def test_long_recordings_tokenise_as_a_whole(mars_root: Path) -> None:
    """Tokenising in pieces aligned to the tokenizer's windows gives the tokens of one pass over the
    whole recording (its attention and positions restart every window)."""
    from reactcli.models.tokenizer import FaceTokenizer
    from reactcli.training.predictor_stage import tokenize_corpus

    torch.manual_seed(0)
    tokenizer = FaceTokenizer(fast_config().tokenizer, torch.zeros(58), torch.ones(58)).eval()
    rng = np.random.default_rng(0)
    faces = [rng.standard_normal((n, 58)).astype(np.float32) for n in (2300, 75, 1024)]
    audio = [np.zeros((n, 3)) for n in (1, 2, 3)]
    clips = {"speaker_3dmm": faces, "listener_3dmm": faces[::-1], "speaker_audio": audio}
    corpus = tokenize_corpus(tokenizer, clips, torch.device("cpu"))
    with torch.no_grad():
        for face, tokens in zip(faces, corpus["speaker_tokens"], strict=True):
            whole = tokenizer.encode(torch.from_numpy(face)[None])[1][0]
            assert tokens.shape == (len(face),) and torch.equal(tokens, whole)
    assert corpus["speaker_audio"] is clips["speaker_audio"] and [len(t) for t in corpus["listener_tokens"]] == [
        1024, 75, 2300]


def test_build_predictor_on_recordings_of_different_lengths() -> None:
    """Input and target statistics over every frame of every recording (not per recording), the
    fixed linear path fitted on them, the codes any listener used."""
    from reactcli.models.predictor import build_predictor
    from reactcli.models.tokenizer import FaceTokenizer

    cfg = fast_config("predictor.emotion_skip=4")
    tokenizer = FaceTokenizer(cfg.tokenizer)
    rng = np.random.default_rng(1)
    lengths = (60, 300, 95)
    audio = [(rng.standard_normal((n, 5)) * (i + 1) + i).astype(np.float32) for i, n in enumerate(lengths)]
    speaker_emotion = [rng.random((n, 25)).astype(np.float32) for n in lengths]
    listener_emotion = [np.roll(e, 3, 0) * 0.5 + 0.1 for e in speaker_emotion]
    tokens = [torch.full((n,), 7 + i) for i, n in enumerate(lengths)]
    train = {"speaker_audio": audio, "speaker_emotion": speaker_emotion, "listener_emotion": listener_emotion,
             "listener_tokens": tokens}
    model, valid = build_predictor(cfg, tokenizer, train)
    flat = np.concatenate(audio).astype(np.float64)
    np.testing.assert_allclose(model.audio_mean.numpy(), flat.mean(0), rtol=1e-5)
    np.testing.assert_allclose(model.audio_std.numpy(), flat.std(0, ddof=1), rtol=1e-5)
    np.testing.assert_allclose(model.target_mean.numpy(), np.concatenate(listener_emotion).mean(0), rtol=1e-5)
    assert valid.nonzero().flatten().tolist() == [7, 8, 9]
    assert model.emotion_skip is not None and model.emotion_skip.weight.abs().sum() > 0


def test_both_stages_train_on_a_mars_root(mars_run: Path, mars_root: Path) -> None:
    from reactcli.data.synth import face_stats

    tokenizer, cfg, data = load_tokenizer(mars_run / "tokenizer.ckpt")
    mean, std = face_stats()  # mars_tiny: the packaged 2024 statistics, the standard rule
    assert torch.equal(tokenizer.mean_face, torch.from_numpy(mean)) and torch.equal(tokenizer.std_face,
                                                                                      torch.from_numpy(std))
    assert cfg.tokenizer.normalization == "standard" and data["report"]["split"] == "val"
    model, payload = load_reaction_model(mars_run / "predictor.ckpt")
    assert payload["edition"] == "2026" and payload["audio_causal"] is True and model.predictor.audio_dim == 78
    assert all(torch.isfinite(p).all() for p in model.predictor.parameters())
    header, *rows = (mars_run / "predictor_log.csv").read_text().splitlines()
    val = header.split(",").index("val_unheard_mse")
    assert [int(r.split(",")[0]) for r in rows] == [2, 4, 6, 8]
    assert all(np.isfinite(float(rows[i].split(",")[val])) for i in (1, 3))  # validated on the val split


def test_resume_on_mars_is_the_same_run(mars_root: Path, mars_run: Path, tmp_path: Path) -> None:
    """A run killed after step 5 and resumed ends where the uninterrupted run (mars_run) ended, bit
    for bit, for both stages."""
    from reactcli.training.ddp import DistContext
    from reactcli.training.predictor_stage import train_predictor
    from reactcli.training.tokenizer_stage import train_tokenizer

    ctx = DistContext(0, 1, 0, torch.device("cpu"))

    def kill(step: int) -> None:
        if step == 5:
            raise KeyboardInterrupt  # no handler runs: the last checkpoint is step 4's

    with pytest.raises(KeyboardInterrupt):
        train_tokenizer(mars_root, fast_config(), tmp_path, 0, ctx, on_step=kill)
    train_tokenizer(mars_root, fast_config(), tmp_path, 0, ctx, resume=True)
    a, _, _ = load_tokenizer(mars_run / "tokenizer.ckpt")
    b, _, _ = load_tokenizer(tmp_path / "tokenizer.ckpt")
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    with pytest.raises(KeyboardInterrupt):
        train_predictor(mars_root, fast_config(), mars_run / "tokenizer.ckpt", tmp_path, 0, ctx, on_step=kill)
    report = train_predictor(mars_root, fast_config(), None, tmp_path, 0, ctx, resume=True)
    assert report.start_step == 4 and report.edition == "2026" and report.samples == 4
    first = torch.load(mars_run / "predictor_last.ckpt", weights_only=True)
    again = torch.load(tmp_path / "predictor_last.ckpt", weights_only=True)
    for key, value in first["predictor_state"].items():
        assert torch.equal(value, again["predictor_state"][key]), key
    with pytest.raises(ReactError, match=r"this run used data\.bidirectional = None"):
        train_predictor(mars_root, fast_config("data.bidirectional=true"), None, tmp_path, 0, ctx, resume=True)


def test_release_features_make_an_offline_model(mars_root: Path, mars_run: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train-predictor", "--config", str(MARS_TINY), "--data", str(mars_root), "--tokenizer",
            str(mars_run / "tokenizer.ckpt"), "--out", str(tmp_path), "--device", "cpu",
            *set_args(("audio.encoder='release'", "training.predictor_max_steps=2", "training.val_every=2"))]
    assert run_cli(args) == 0
    assert "offline model" in capsys.readouterr().out
    for name in ("predictor.ckpt", "predictor_last.ckpt"):
        model, payload = load_reaction_model(tmp_path / name)
        assert payload["audio_causal"] is False and model.predictor.audio_dim == 768
    assert model.config.audio.encoder == "release"


@pytest.mark.slow
def test_two_process_gloo_training_on_mars(mars_root: Path, mars_run: Path, tmp_path: Path) -> None:
    """torchrun, two CPU processes: both stages train on the MARS root, rank 0 alone reports and
    writes, and the shards differ from the one-process run of the same seed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def torchrun(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "reactcli.cli", *args, "--config", str(MARS_TINY), "--data", str(mars_root),
               "--out", str(tmp_path), "--device", "cpu", *set_args()]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)

    proc = torchrun("train-tokenizer")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("tokenizer reconstruction") == 1 and "data: REACT 2026, 8 train recordings" in proc.stdout
    proc = torchrun("train-predictor", "--tokenizer", str(tmp_path / "tokenizer.ckpt"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("reaction predictor") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{stage}{suffix}" for stage in ("tokenizer", "predictor")
        for suffix in (".ckpt", "_curves.png", "_last.ckpt", "_log.csv"))
    ddp, _ = load_reaction_model(tmp_path / "predictor.ckpt")
    single, _ = load_reaction_model(mars_run / "predictor.ckpt")
    assert all(torch.isfinite(p).all() for p in ddp.predictor.parameters())
    state, other = ddp.tokenizer.state_dict(), single.tokenizer.state_dict()
    assert any(not torch.equal(state[k], other[k]) for k in state)


def test_personality_condition(mars_root: Path, mars_run: Path, tmp_path: Path) -> None:
    """predictor.personality: the traits reach the listener stream (other traits, other outputs; none
    is an error), training and validation feed them, and a 2024 root is refused."""
    from reactcli.training.corpus import load_clips
    from reactcli.training.ddp import DistContext
    from reactcli.training.predictor_stage import (
        PERSONALITY,
        _tokenized_split,
        emotion_weights,
        train_predictor,
        validation_loss,
    )

    cfg = fast_config("predictor.personality=true", "training.predictor_max_steps=4")
    report = train_predictor(mars_root, cfg, mars_run / "tokenizer.ckpt", tmp_path, 0,
                             DistContext(0, 1, 0, torch.device("cpu")))
    assert report.samples == 4
    model, _ = load_reaction_model(tmp_path / "predictor_last.ckpt")
    predictor = model.predictor
    assert predictor.personality_proj is not None and predictor.personality_proj.weight.abs().sum() > 0
    corpus = _tokenized_split(mars_root, "val", model.config, model.tokenizer, torch.device("cpu"))
    assert len(corpus[PERSONALITY]) == 2 and corpus[PERSONALITY][0].shape == (5,)
    weights = emotion_weights(1.0)
    matched = validation_loss(predictor, corpus, torch.device("cpu"), 2.0, weights)
    other = [1.0 - traits for traits in corpus[PERSONALITY]]  # (val has one listener: another person's traits)
    swapped = validation_loss(predictor, {**corpus, PERSONALITY: other}, torch.device("cpu"), 2.0, weights)
    assert matched["val_loss"] != swapped["val_loss"]
    tokens = corpus["listener_tokens"][0][None, :40]
    args = (torch.as_tensor(corpus["speaker_audio"][0][None, :40]), corpus["speaker_tokens"][0][None, :40],
            predictor.shift_listener(tokens))
    emotion = torch.as_tensor(corpus["speaker_emotion"][0][None, :40])
    with pytest.raises(ValueError, match="takes the listener's personality"):
        predictor(*args, emotion=emotion)
    with torch.no_grad():
        a = predictor(*args, emotion=emotion, personality=torch.zeros(1, 5))[0]
        b = predictor(*args, emotion=emotion, personality=torch.ones(1, 5))[0]
    assert not torch.allclose(a, b)
    (tmp_path / "r24").mkdir()
    (tmp_path / "r24" / "train.csv").write_text(",speaker_path,listener_path\n")
    with pytest.raises(ReactError, match="predictor.personality: REACT 2024 has no personality data"):
        load_clips(tmp_path / "r24", "train", cfg, ("listener_3dmm", PERSONALITY))
