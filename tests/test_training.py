# ruff: noqa: F811  (pytest fixtures imported from _model_fixtures are parameters by design)
"""Training stages and their commands: schedule, checkpoints (errors included), resume, generate CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from _model_fixtures import TINY, fast_config, run_cli, trained_run  # noqa: F401

from reactcli.errors import ReactError
from reactcli.models.checkpoint import load_reaction_model, load_tokenizer
from reactcli.training.schedule import make_optimizer, make_scheduler, warmup_cosine_factor


def test_warmup_then_cosine_stepped_once_per_step() -> None:
    model = torch.nn.Linear(4, 4)
    opt = make_optimizer(model, 1e-3, 0.1, (0.9, 0.95))
    sched = make_scheduler(opt, warmup=10, total=110)
    lrs = []
    for _ in range(110):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert lrs[10] == pytest.approx(1e-3) and lrs[60] == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    assert lrs[-1] < lrs[60] and warmup_cosine_factor(1000, 10, 110) == pytest.approx(0.1)


def test_weight_decay_only_on_matrices() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    decay, no_decay = make_optimizer(model, 1e-3, 0.1, (0.9, 0.95)).param_groups
    assert decay["weight_decay"] == 0.1 and all(p.ndim == 2 for p in decay["params"])
    assert no_decay["weight_decay"] == 0.0 and all(p.ndim == 1 for p in no_decay["params"])


def test_checkpoint_errors_name_the_file(trained_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ReactError, match="missing.ckpt: checkpoint not found"):
        load_reaction_model(tmp_path / "missing.ckpt")
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes((trained_run / "predictor.ckpt").read_bytes()[:2000])
    with pytest.raises(ReactError, match="bad.ckpt: not a readable checkpoint"):
        load_reaction_model(bad)
    with pytest.raises(ReactError, match="is a tokenizer checkpoint, expected a predictor checkpoint"):
        load_reaction_model(trained_run / "tokenizer.ckpt")
    with pytest.raises(ReactError, match="is a predictor checkpoint, expected a tokenizer"):
        load_tokenizer(trained_run / "predictor.ckpt")
    data = torch.load(trained_run / "predictor.ckpt", weights_only=True)
    data["config"]["predictor"]["dim"] = 48
    torch.save(data, tmp_path / "mismatch.ckpt")
    with pytest.raises(ReactError, match="mismatch.ckpt: predictor weights do not match"):
        load_reaction_model(tmp_path / "mismatch.ckpt")


def test_checkpoint_with_old_config_names_loads(trained_run: Path, tmp_path: Path) -> None:
    """A checkpoint whose stored config uses the names before the window renames (and data.root)
    rebuilds the same model."""
    data = torch.load(trained_run / "predictor.ckpt", weights_only=True)
    config = data["config"]
    config["tokenizer"]["window"] = config["tokenizer"].pop("window_frames")
    config["predictor"]["context"] = config["predictor"].pop("context_frames")
    config["training"]["predictor_window"] = config["training"].pop("predictor_crop_frames")
    config["data"].update(root="/old/data", window_frames=160, num_workers=0, splits=["train", "val"])
    config["predictor"]["speaker_emotion_dims"] = "none"  # retired, in its "off" state
    torch.save(data, tmp_path / "old.ckpt")
    old, _ = load_reaction_model(tmp_path / "old.ckpt")
    new, _ = load_reaction_model(trained_run / "predictor.ckpt")
    assert old.config == new.config
    assert old.config.predictor.context_frames == new.predictor.cfg.context_frames == 32
    config["predictor"]["speaker_emotion_dims"] = "valence_arousal"  # a model this version cannot rebuild
    torch.save(data, tmp_path / "retired.ckpt")
    with pytest.raises(ReactError, match=r"retired\.ckpt: .*speaker_emotion_dims = 'valence_arousal' is a retired "
                                         r"knob"):
        load_reaction_model(tmp_path / "retired.ckpt")


def test_predictor_checkpoint_is_self_contained(trained_run: Path) -> None:
    data = torch.load(trained_run / "predictor.ckpt", weights_only=True)
    assert data["kind"] == "reactcli.predictor" and "training_state" not in data
    assert data["config"]["audio"]["encoder"] == "mfcc" and data["audio_dim"] == 78
    assert "tokenizer_state" in data and "mean_face" in "".join(data["tokenizer_state"])
    assert not any("wav2vec" in k for k in data["predictor_state"])
    last = torch.load(trained_run / "predictor_last.ckpt", weights_only=True)
    assert last["training_state"]["step"] == 8 and "optimizer" in last["training_state"]
    model, _ = load_reaction_model(trained_run / "predictor.ckpt")
    assert not bool(model.valid_codes[model.predictor.pad_id]) and not bool(model.valid_codes[model.predictor.mask_id])


def test_resume_continues_the_same_run(preprocessed_root: Path, trained_run: Path, tmp_path: Path) -> None:
    from reactcli.training.ddp import DistContext
    from reactcli.training.predictor_stage import train_predictor

    ctx = DistContext(0, 1, 0, torch.device("cpu"))
    full, killed = tmp_path / "full", tmp_path / "killed"
    every_step = fast_config().model_copy(
        update={"training": fast_config().training.model_copy(update={"log_every": 1})})
    train_predictor(preprocessed_root, every_step, trained_run / "tokenizer.ckpt", full, 3, ctx)

    def kill(step: int) -> None:
        if step == 6:
            raise KeyboardInterrupt  # a kill: no signal handler runs, the last checkpoint is step 4's

    with pytest.raises(KeyboardInterrupt):
        train_predictor(preprocessed_root, every_step, trained_run / "tokenizer.ckpt", killed, 3,
                        ctx, on_step=kill)
    assert torch.load(killed / "predictor_last.ckpt", weights_only=True)["training_state"]["step"] == 4
    rows = (killed / "predictor_log.csv").read_text().splitlines()[1:]
    assert [int(row.split(",")[0]) for row in rows] == [1, 2, 3, 4, 5, 6]
    report = train_predictor(preprocessed_root, every_step, None, killed, 0, ctx, resume=True)
    assert report.start_step == 4
    a = torch.load(full / "predictor_last.ckpt", weights_only=True)
    b = torch.load(killed / "predictor_last.ckpt", weights_only=True)
    for key, value in a["predictor_state"].items():
        assert torch.equal(value, b["predictor_state"][key]), key
    assert a["val_loss"] == b["val_loss"]
    # steps 5 and 6 were trained again: their rows from before the kill are gone, one row per step
    lines = (killed / "predictor_log.csv").read_text().splitlines()
    assert sum(line.startswith("step,") for line in lines) == 1
    assert [int(line.split(",")[0]) for line in lines[1:]] == [1, 2, 3, 4, 5, 6, 7, 8]
    full_rows = (full / "predictor_log.csv").read_text().splitlines()
    same = [lines[0].split(",").index(c) for c in ("step", "loss", "ce", "emotion_mse", "lr", "grad_norm")]
    assert [[r.split(",")[i] for i in same] for r in lines] == [[r.split(",")[i] for i in same] for r in full_rows]
    val_col = lines[0].split(",").index("val_loss")
    assert lines[-1].split(",")[val_col] == full_rows[-1].split(",")[val_col] != ""
    assert report.log == killed / "predictor_log.csv" and (killed / "predictor_curves.png").is_file()
    # the summary's train loss is the progress bar's figure: the last row's running mean
    assert (report.final_steps, f"{report.final_loss:.6g}") == (1, lines[-1].split(",")[1])


def test_training_writes_logs_and_curves(trained_run: Path) -> None:
    import pandas as pd

    stages = (("tokenizer", ["face_l1", "emotion_l1"], [], ["phase"]),
              ("predictor", ["ce", "emotion_mse"], ["val_unheard_mse"], []))
    for stage, parts, val_only, phase in stages:
        log = pd.read_csv(trained_run / f"{stage}_log.csv")
        assert list(log.columns) == ["step", *phase, "loss", *parts, "lr", "grad_norm", "frames_per_s", "mfu",
                                     "val_loss", *(f"val_{p}" for p in parts), *val_only]
        assert log["step"].is_monotonic_increasing and log["step"].iloc[-1] > 0
        assert (log["lr"] > 0).all() and (log["grad_norm"] > 0).all() and (log["frames_per_s"] > 0).all()
        assert log["mfu"].isna().all()  # a CPU has no peak unless training.peak_tflops gives one
        assert log["val_loss"].notna().sum() >= 1  # validation rows carry the val loss
        assert all(log[c].notna().sum() == log["val_loss"].notna().sum() for c in val_only)
        png = (trained_run / f"{stage}_curves.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5000
    tok = pd.read_csv(trained_run / "tokenizer_log.csv")
    assert tok["face_l1"].isna().iloc[-1] and tok["emotion_l1"].notna().all()  # the emotion-only phase
    # 12 steps, emotion-only from step index 7 (0.4 of them): the full phase's last step has a row, and
    # the phase column says which loss each row is
    assert tok["step"].tolist() == [4, 7, 8, 10, 12]
    assert tok["phase"].tolist() == ["face_and_emotion"] * 2 + ["emotion_only"] * 3
    assert tok["face_l1"].notna().tolist() == [True, True, False, False, False]


def test_tensorboard_events_and_missing_package(preprocessed_root: Path, tmp_path: Path, monkeypatch) -> None:
    import builtins

    from reactcli.training.log import TrainingLog

    log = TrainingLog(tmp_path, "predictor", ("ce",), tensorboard=True)
    log.write(10, {"loss": 1.5, "ce": 1.5, "lr": 1e-3})
    log.close()
    assert list((tmp_path / "tb" / "predictor").glob("events.out.tfevents.*"))
    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    with pytest.raises(ReactError, match=r"--tensorboard needs the tensorboard package"):
        TrainingLog(tmp_path / "b", "predictor", ("ce",), tensorboard=True)


def test_resume_errors(preprocessed_root: Path, trained_run: Path, tmp_path: Path) -> None:
    from reactcli.training.ddp import DistContext
    from reactcli.training.predictor_stage import train_predictor

    ctx = DistContext(0, 1, 0, torch.device("cpu"))
    with pytest.raises(ReactError, match="predictor_last.ckpt: --resume: no checkpoint"):
        train_predictor(preprocessed_root, fast_config(), None, tmp_path, 0, ctx, resume=True)
    cfg = fast_config()
    cfg.predictor.dim = 64
    with pytest.raises(ReactError, match="predictor.dim"):
        train_predictor(preprocessed_root, cfg, None, trained_run, 0, ctx, resume=True)
    for section, key, value in (("training", "predictor_lr", 5e-4), ("training", "predictor_crop_frames", 40),
                                ("audio", "n_mfcc", 13)):
        cfg = fast_config()
        setattr(getattr(cfg, section), key, value)
        with pytest.raises(ReactError, match=rf"predictor_last\.ckpt: --resume: this run used {section}\.{key} = "):
            train_predictor(preprocessed_root, cfg, None, trained_run, 0, ctx, resume=True)


def test_resume_takes_steps_and_logging_from_the_command_line(
    preprocessed_root: Path, trained_run: Path, tmp_path: Path
) -> None:
    """--resume reads training.predictor_max_steps, val_every and log_every from the command line
    (the stored run had 8 steps, val_every 4), and the tokenizer stage's keys do not count as a change."""
    import shutil

    from reactcli.training.ddp import DistContext
    from reactcli.training.predictor_stage import train_predictor

    shutil.copy(trained_run / "predictor_last.ckpt", tmp_path / "predictor_last.ckpt")
    cfg = fast_config()
    cfg.training.predictor_max_steps, cfg.training.val_every, cfg.training.log_every = 10, 1, 1
    cfg.training.tokenizer_lr = 1.0
    report = train_predictor(preprocessed_root, cfg, None, tmp_path, 0, DistContext(0, 1, 0, torch.device("cpu")),
                             resume=True)
    assert (report.start_step, report.steps) == (8, 10)
    rows = (tmp_path / "predictor_log.csv").read_text().splitlines()[1:]
    assert [int(row.split(",")[0]) for row in rows] == [9, 10]
    stored = torch.load(tmp_path / "predictor_last.ckpt", weights_only=True)["config"]["training"]
    assert stored["val_every"] == 1 and stored["tokenizer_lr"] != 1.0


def test_generate_dataset_mode(trained_run: Path, preprocessed_root: Path, tmp_path: Path) -> None:
    run_cli("generate", "--checkpoint", trained_run / "predictor.ckpt", "--data", preprocessed_root,
            "--split", "val", "--samples", "2", "--out", tmp_path / "a", "--seed", "7", "--device", "cpu")
    emotion = np.load(tmp_path / "a" / "emotion.npy")
    face = np.load(tmp_path / "a" / "face3dmm.npy")
    assert emotion.shape == (12, 2, 750, 25) and face.shape == (12, 2, 751, 58)
    assert np.isfinite(emotion).all() and np.isfinite(face).all()
    assert abs(float(face[..., 52].mean()) - np.pi) < 1.0  # raw coefficients: rotation x about pi
    meta = json.loads((tmp_path / "a" / "generation.json").read_text())
    assert (meta["split"], meta["N"], meta["K"], meta["seed"]) == ("val", 12, 2, 7)
    # speaker-major: sample n's reactions are generated from speaker n alone
    from reactcli.data.dataset import ReactClipDataset
    from reactcli.generate import generate_reactions, sample_seed

    model, _ = load_reaction_model(trained_run / "predictor.ckpt")
    clip = ReactClipDataset(preprocessed_root, "val", model.config).clip(5)
    _, emo5 = generate_reactions(
        model, clip["speaker_audio"], clip["speaker_3dmm"], clip["speaker_emotion"], 2, seed=sample_seed(7, 5)
    )
    np.testing.assert_allclose(emotion[5], emo5[:, :750], atol=1e-5)
    run_cli("generate", "--checkpoint", trained_run / "predictor.ckpt", "--data", preprocessed_root,
            "--split", "val", "--samples", "2", "--out", tmp_path / "b", "--seed", "7", "--device", "cpu")
    assert np.array_equal(np.load(tmp_path / "b" / "emotion.npy"), emotion)


def test_generate_single_clip(trained_run: Path, preprocessed_root: Path, tmp_path: Path) -> None:
    from reactcli.data.layout import DatasetLayout, read_pairs

    pair = read_pairs(preprocessed_root, "val")[0]
    layout = DatasetLayout(preprocessed_root)
    out = tmp_path / "one.npz"
    clip_args = ["--checkpoint", trained_run / "predictor.ckpt", "--speaker-audio", layout.audio("val", pair.speaker),
                 "--speaker-3dmm", layout.face3dmm("val", pair.speaker), "--samples", "3", "--device", "cpu"]
    run_cli("generate", *clip_args, "--speaker-emotion", layout.emotion("val", pair.speaker), "--out", out)
    with np.load(out) as arrays:
        assert arrays["emotion"].shape == (3, 751, 25) and arrays["face3dmm"].shape == (3, 751, 58)
    from reactcli.cli import main

    with pytest.raises(SystemExit) as exc:  # this model reads the speaker's emotion: say so, write nothing
        main(["generate", *map(str, clip_args), "--out", str(tmp_path / "two.npz")])
    assert exc.value.code == 1 and not (tmp_path / "two.npz").exists()


def test_generate_cli_errors(trained_run: Path, tmp_path: Path) -> None:
    from reactcli.cli import main

    for args in (
        ["generate", "--checkpoint", str(tmp_path / "nope.ckpt"), "--data", str(tmp_path), "--out", str(tmp_path)],
        ["generate", "--checkpoint", str(trained_run / "predictor.ckpt"), "--out", str(tmp_path)],
    ):
        with pytest.raises(SystemExit) as exc:
            main(args)
        assert exc.value.code == 1


def test_tokenizer_checkpoint_reports_usage(trained_run: Path) -> None:
    model, cfg, data = load_tokenizer(trained_run / "tokenizer.ckpt")
    report = data["report"]
    assert set(report["group_l1"]) >= {"brow", "smile", "rotation", "translation"}
    assert 0 < report["codes_used_pct"] <= 100 and report["perplexity"] >= 1
    assert int(data["code_counts"].sum()) == 2 * 6 * 751  # every train listener frame counted
    assert cfg.tokenizer.dim == 32 and TINY.is_file()


def test_generate_sampling_overrides(
    trained_run: Path, preprocessed_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Flags beat REACT_GENERATION__* variables; model sections cannot be overridden; bad keys are named."""
    from reactcli.cli import main

    base = ["generate", "--checkpoint", str(trained_run / "predictor.ckpt"), "--data", str(preprocessed_root),
            "--split", "val", "--samples", "1", "--device", "cpu"]
    monkeypatch.setenv("REACT_GENERATION__TOP_K", "3")
    run_cli(*base, "--out", tmp_path / "env")
    assert json.loads((tmp_path / "env" / "generation.json").read_text())["generation"]["top_k"] == 3
    run_cli(*base, "--out", tmp_path / "flag", "--top-k", "9", "--temperature", "0.5")
    meta = json.loads((tmp_path / "flag" / "generation.json").read_text())["generation"]
    assert (meta["top_k"], meta["temperature"]) == (9, 0.5)
    capsys.readouterr()
    for extra, message in (
        (["--set", "predictor.dim=8"], "error: command line: predictor.dim cannot be changed here: it comes from "),
        (["--temperature", "-1"], "error: command line: generation.temperature: "),
    ):
        with pytest.raises(SystemExit) as exc:
            main([*base, "--out", str(tmp_path / "bad"), *extra])
        assert exc.value.code == 1 and message in capsys.readouterr().err
    monkeypatch.setenv("REACT_GENERATION__TOPK", "3")
    with pytest.raises(SystemExit) as exc:
        main([*base, "--out", str(tmp_path / "bad")])
    assert exc.value.code == 1 and "environment variable REACT_GENERATION__TOPK" in capsys.readouterr().err


def test_listener_dropout_and_self_sampling_change_only_real_inputs() -> None:
    from _model_fixtures import random_model

    from reactcli.training.predictor_stage import emotion_weights, make_batch, own_samples

    model = random_model(patch=4).predictor
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, model.codebook_size, (3, 40), generator=g)
    batch = {"speaker_audio": torch.randn(3, 40, 10, generator=g), "speaker_tokens": tokens.roll(1, 1),
             "listener_tokens": tokens}

    def rngs() -> list[np.random.Generator]:
        return [np.random.default_rng([1, j]) for j in range(3)]

    *_, plain_in, _, _ = make_batch(batch, rngs(), model, truncate_prob=0.0)
    _, _, dropped, padding, targets = make_batch(batch, rngs(), model, truncate_prob=0.0, listener_dropout=0.5)
    again = make_batch(batch, rngs(), model, truncate_prob=0.0, listener_dropout=0.5)[2]
    assert padding is None and torch.equal(targets, tokens) and torch.equal(dropped, again)  # (seed, step) fixed
    masked = dropped == model.mask_id
    assert 0.3 < masked[:, 4:].float().mean() < 0.7  # about half of the real inputs
    assert torch.equal(dropped[~masked], plain_in[~masked])  # the rest untouched
    torch.manual_seed(3)
    emotion = torch.rand(3, 40, 25)
    valid = torch.ones(model.vocab_size, dtype=torch.bool)
    valid[model.codebook_size :] = False
    own = own_samples(model, batch["speaker_audio"], batch["speaker_tokens"], plain_in, None, emotion, valid, 1.0)
    assert (own[:, :4] == model.mask_id).all()  # before the first patch there is no sample to take
    assert (own[:, 4:] < model.codebook_size).all() and not torch.equal(own, plain_in)
    assert torch.equal(own_samples(model, batch["speaker_audio"], batch["speaker_tokens"], plain_in, None, emotion,
                                   valid, 0.0), plain_in)
    weights = emotion_weights(6.0)
    assert weights.mean() == pytest.approx(1.0) and weights[15] == weights[16] == pytest.approx(6 * weights[0])


def _tiny_args() -> list[str]:
    from _model_fixtures import set_args

    return ["--config", str(TINY), "--device", "cpu", *set_args()]


@pytest.mark.slow
def test_sigint_keeps_a_resumable_checkpoint(preprocessed_root: Path, trained_run: Path, tmp_path: Path) -> None:
    """Issue 26: Ctrl-C before the first checkpoint lost all training. A real SIGINT to a real
    ``react train-predictor``: one line saying what was kept, exit 130, ``predictor_last.ckpt`` at the
    step it stopped after, one log row per step; ``--resume`` continues from there."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "reactcli.cli", "train-predictor", "--data", str(preprocessed_root), "--tokenizer",
           str(trained_run / "tokenizer.ckpt"), "--out", str(out), *_tiny_args(), "--max-steps", "5000",
           "--set", "training.val_every=10000", "--set", "training.log_every=1"]  # after _tiny_args: these win
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    log = out / "predictor_log.csv"
    deadline = time.monotonic() + 240
    while not (log.is_file() and len(log.read_text().splitlines()) >= 3):  # two steps done: training runs
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    message = err.strip().splitlines()[-1]
    found = re.fullmatch(r"train predictor: stopped by SIGINT after step (\d+) of 5000; kept (\S+) "
                         r"\(step (\d+)\); continue with the same command and --resume", message)
    assert found, message
    step = int(found[1])
    assert found[2] == str(out / "predictor_last.ckpt") and int(found[3]) == step
    assert torch.load(out / "predictor_last.ckpt", weights_only=True)["training_state"]["step"] == step
    assert sorted(p.name for p in out.iterdir()) == ["predictor_curves.png", "predictor_last.ckpt",
                                                     "predictor_log.csv"]  # no best yet, no temp files
    assert [int(row.split(",")[0]) for row in log.read_text().splitlines()[1:]] == list(range(1, step + 1))
    run_cli("train-predictor", "--data", preprocessed_root, "--out", out, "--resume", "--max-steps", step + 2,
            "--set", "training.val_every=10000", "--set", "training.log_every=1", *_tiny_args())
    assert torch.load(out / "predictor_last.ckpt", weights_only=True)["training_state"]["step"] == step + 2
    assert [int(row.split(",")[0]) for row in log.read_text().splitlines()[1:]] == list(range(1, step + 3))


def test_a_stop_signal_keeps_the_step_and_resume_is_the_same_run(
    preprocessed_root: Path, trained_run: Path, tmp_path: Path
) -> None:
    """Both stages: SIGINT (here sent by the test itself after step 5) stops after the step in
    progress with the checkpoint of that step; the resumed run ends bit for bit where an
    uninterrupted one does (the tokenizer: trained_run's, same settings and seed)."""
    from reactcli.errors import Interrupted
    from reactcli.training.ddp import DistContext
    from reactcli.training.predictor_stage import train_predictor
    from reactcli.training.tokenizer_stage import train_tokenizer

    ctx = DistContext(0, 1, 0, torch.device("cpu"))

    def interrupt(step: int) -> None:
        if step == 5:
            os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(Interrupted, match=r"train tokenizer: stopped by SIGINT after step 6 of 12; kept .*"
                                          r"tokenizer_last\.ckpt \(step 6\); continue with the same command") as exc:
        train_tokenizer(preprocessed_root, fast_config(), tmp_path, 0, ctx, on_step=interrupt)
    assert exc.value.exit_code == 130 and signal.getsignal(signal.SIGINT) is before  # handlers restored
    assert not (tmp_path / "tokenizer.ckpt").exists()
    train_tokenizer(preprocessed_root, fast_config(), tmp_path, 0, ctx, resume=True)
    resumed, _, _ = load_tokenizer(tmp_path / "tokenizer.ckpt")
    reference, _, _ = load_tokenizer(trained_run / "tokenizer.ckpt")
    for key, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    steps = [int(row.split(",")[0]) for row in (tmp_path / "tokenizer_log.csv").read_text().splitlines()[1:]]
    assert steps == [4, 6, 7, 8, 10, 12]  # 6: the stop's row; each step once

    with pytest.raises(Interrupted, match=r"train predictor: stopped by SIGINT after step 6 of 8; kept "):
        train_predictor(preprocessed_root, fast_config(), trained_run / "tokenizer.ckpt", tmp_path, 0, ctx,
                        on_step=interrupt)
    assert torch.load(tmp_path / "predictor_last.ckpt", weights_only=True)["training_state"]["step"] == 6
    train_predictor(preprocessed_root, fast_config(), None, tmp_path, 0, ctx, resume=True)
    a = torch.load(trained_run / "predictor_last.ckpt", weights_only=True)
    b = torch.load(tmp_path / "predictor_last.ckpt", weights_only=True)
    for key, value in a["predictor_state"].items():
        assert torch.equal(value, b["predictor_state"][key]), key


def test_stop_request_rules() -> None:
    """Before training a signal stops at once saying nothing was kept; while armed the first one
    only asks; a second one in one process stops at once; under torchrun repeats are the launcher's."""
    from reactcli.errors import Interrupted
    from reactcli.training.stop import StopRequest

    before = signal.getsignal(signal.SIGTERM)
    with StopRequest("train x") as stop:
        assert signal.getsignal(signal.SIGTERM) == stop._handle
        with pytest.raises(Interrupted, match=r"^train x: stopped at once by SIGTERM; nothing was kept"):
            stop._handle(signal.SIGTERM, None)
        with stop.armed():
            stop._handle(signal.SIGINT, None)
            assert stop.requested == "SIGINT"
            stop.kept = "kept run/x_last.ckpt (step 3)"
            with pytest.raises(Interrupted, match=r"stopped at once by SIGINT again; kept run/x_last\.ckpt"):
                stop._handle(signal.SIGINT, None)
    assert signal.getsignal(signal.SIGTERM) == before
    with StopRequest("train x", distributed=True) as stop, stop.armed():
        stop._handle(signal.SIGTERM, None)
        stop._handle(signal.SIGTERM, None)
        assert stop.requested == "SIGTERM"


def test_train_predictor_refuses_another_tokenizer_setting(
    preprocessed_root: Path, trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """tokenizer.* comes from the tokenizer checkpoint (issue 21: it was overwritten without a word)."""
    from reactcli.cli import main
    from reactcli.training.ddp import DistContext
    from reactcli.training.predictor_stage import train_predictor

    with pytest.raises(SystemExit) as exc:
        main(["train-predictor", "--data", str(preprocessed_root), "--tokenizer", str(trained_run / "tokenizer.ckpt"),
              "--out", str(tmp_path), *_tiny_args(), "--set", "tokenizer.depth=3"])
    err = capsys.readouterr().err
    assert exc.value.code == 1 and "error: command line: tokenizer.depth = 3 differs from 1 in " in err
    assert not any(tmp_path.iterdir())
    cfg = fast_config()
    cfg.tokenizer.dim = 64  # a library caller is refused too, naming the checkpoint and the key
    with pytest.raises(ReactError, match=r"tokenizer\.ckpt: this tokenizer has tokenizer\.dim = 32 but the config "
                                         r"says 64"):
        train_predictor(preprocessed_root, cfg, trained_run / "tokenizer.ckpt", tmp_path, 0,
                        DistContext(0, 1, 0, torch.device("cpu")))


def test_log_keeps_one_row_per_step_on_resume(tmp_path: Path) -> None:
    from reactcli.training.log import TrainingLog

    log = TrainingLog(tmp_path, "predictor", ("ce",))
    for step in range(1, 7):
        log.write(step, {"loss": float(step), "ce": float(step)})
    log.close()
    log = TrainingLog(tmp_path, "predictor", ("ce",), resume_step=4)
    log.write(5, {"loss": 50.0, "ce": 50.0})
    log.close()
    rows = (tmp_path / "predictor_log.csv").read_text().splitlines()
    assert [row.split(",")[:2] for row in rows[1:]] == [["1", "1"], ["2", "2"], ["3", "3"], ["4", "4"], ["5", "50"]]
    with pytest.raises(ReactError, match=r"predictor_log\.csv: --resume: log columns"):
        TrainingLog(tmp_path, "predictor", ("ce", "emotion_mse"), resume_step=4)


def test_resume_adds_the_mfu_column_to_an_older_log(tmp_path: Path) -> None:
    """A log written before the mfu column existed resumes: the column is added, empty in its rows;
    a log with other columns is still refused."""
    from reactcli.training.log import TrainingLog

    path = tmp_path / "predictor_log.csv"
    path.write_text("step,loss,ce,lr,grad_norm,frames_per_s,val_loss\n"
                    "10,1.5,1.5,0.001,2,100,\n20,1.2,1.2,0.001,2,100,1.1\n")
    log = TrainingLog(tmp_path, "predictor", ("ce",), resume_step=10)
    log.write(20, {"loss": 1.0, "ce": 1.0, "lr": 1e-3, "grad_norm": 1.0, "frames_per_s": 50.0, "mfu": 0.25})
    log.close()
    assert path.read_text().splitlines() == ["step,loss,ce,lr,grad_norm,frames_per_s,mfu,val_loss",
                                             "10,1.5,1.5,0.001,2,100,,", "20,1,1,0.001,1,50,0.25,"]
    path.write_text("step,loss,lr,grad_norm,frames_per_s,val_loss\n10,1.5,0.001,2,100,\n")
    with pytest.raises(ReactError, match="--resume: log columns"):
        TrainingLog(tmp_path, "predictor", ("ce",), resume_step=10)
