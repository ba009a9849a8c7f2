"""The EEG head of REACT 2026 (``predictor.eeg_head``): the 1 Hz readout frames, the masked loss,
training on a synthetic 2026 root, strictly online output, the EEG in the prediction set and in
``results.pt``, the round trip through ``react evaluate``, and the settings it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _mars_fixtures import write_mars_val
from _mars_models import FAST as FAST_MARS
from _mars_models import (
    MARS_TINY,
    generate_set,
    preprocessed_root,
    random_mars_model,
    save_mars_model,
    synthetic_release,
)
from _mars_models import SMALL as SMALL_MARS
from conftest import run_cli

from reactcli.config import load_config, parse_overrides
from reactcli.data.eeg_windows import eeg_window_count, eeg_window_ends, eeg_window_targets
from reactcli.data.features import audio_feature_dim
from reactcli.data.mars import Recording
from reactcli.data.mars_loaders import EegReader, eeg_per_frame
from reactcli.editions import EEG_DIM
from reactcli.errors import ReactError
from reactcli.generate import SpeakerClip, generate_batch, load_generation_model
from reactcli.models.checkpoint import (
    build_models,
    load_reaction_model,
)
from reactcli.predictions import PredictionSet, PredictionWriter

SMALL = [*SMALL_MARS, "predictor.eeg_head=true"]
FAST = [*FAST_MARS, "training.tokenizer_max_steps=10", "training.predictor_max_steps=6", "training.val_every=3"]


def eeg_checkpoint(path: Path) -> Path:
    """A random 2026 model of the MARS preset's design (small) with an EEG head whose output visibly
    depends on the listener state, saved as train-predictor saves one."""

    def eeg_matters(predictor: torch.nn.Module) -> None:
        predictor.eeg_head.weight.normal_(0.0, 1.0)
        predictor.eeg_mean.copy_(torch.linspace(0.1, 0.9, EEG_DIM))
        predictor.eeg_std.fill_(0.2)

    return save_mars_model(path, random_mars_model("predictor.eeg_head=true", tweak=eeg_matters))


@pytest.fixture(scope="module")
def val_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The independent MARS val split (EEG in the folder, in the tar, missing, with text cells)."""
    return preprocessed_root(tmp_path_factory.mktemp("eeg-val") / "data", write_mars_val, "--splits", "val")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return eeg_checkpoint(tmp_path_factory.mktemp("eeg-ckpt") / "predictor.ckpt")


@pytest.fixture(scope="module")
def generated(val_root: Path, checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_set(checkpoint, val_root, tmp_path_factory.mktemp("eeg-out"), seed=2)


def test_window_ends_are_each_seconds_last_frame() -> None:
    assert eeg_window_ends(58).tolist() == [29, 57]
    assert eeg_window_ends(90).tolist() == [29, 59, 89]
    assert eeg_window_ends(91).tolist() == [29, 59, 89, 90]
    assert eeg_window_ends(1).tolist() == [0] and eeg_window_count(91) == 4 == len(eeg_window_ends(91))


def test_masked_loss_ignores_masked_cells_and_padding() -> None:
    from reactcli.training.predictor_stage import IGNORE, eeg_mse

    cfg = load_config(MARS_TINY, parse_overrides(SMALL), environ={})
    _, model = build_models(cfg, audio_feature_dim(cfg.audio))
    model.eeg_std.fill_(0.5)
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(2, 20, EEG_DIM, generator=g), torch.randn(2, 20, EEG_DIM, generator=g)
    mask = (torch.rand(2, 20, EEG_DIM, generator=g) > 0.3).float()
    tokens = torch.zeros(2, 20, dtype=torch.long)
    tokens[1, 15:] = IGNORE  # padding after a short recording
    base = eeg_mse(model, pred, tokens, target, mask)
    moved = target.clone()
    moved[mask == 0] += 100.0  # masked cells: any value
    moved[1, 15:] += 100.0  # padded frames: any value
    assert torch.equal(eeg_mse(model, pred, tokens, moved, mask), base)
    valid = torch.nonzero(mask[0, :15]).tolist()[0]
    moved[0, valid[0], valid[1]] += 1.0
    assert eeg_mse(model, pred, tokens, moved, mask) > base
    keep = mask * (tokens != IGNORE).float()[..., None]
    want = (((pred - target) / 0.5) ** 2 * keep).sum() / keep.sum()
    torch.testing.assert_close(base, want)


def test_eeg_output_is_online_per_second(checkpoint: Path) -> None:
    """Perturbing the speaker after frame t leaves every EEG vector whose window ends at or before t
    unchanged, and changes later ones; batching and frame-by-frame pushing give the same readout."""
    model, _ = load_generation_model(checkpoint, torch.device("cpu"))
    rng = np.random.default_rng(3)
    frames, cut = 200, 95
    audio = rng.normal(size=(frames, model.predictor.audio_dim)).astype(np.float32)
    face = rng.normal(scale=0.3, size=(frames, 58)).astype(np.float32)
    emotion = rng.random((frames, 25)).astype(np.float32)
    traits = np.full(5, 0.5, np.float32)
    clips = [SpeakerClip(audio, face, emotion, traits)]
    other = audio.copy()
    other[cut + 1 :] = rng.normal(size=(frames - cut - 1, audio.shape[1]))
    changed = [SpeakerClip(other, face, emotion, traits)]

    def readout(c: list[SpeakerClip]) -> np.ndarray:
        (_, _, _, eeg), = generate_batch(model, c, [7], samples=2, eeg_every=30)
        return eeg

    a, b = readout(clips), readout(changed)
    ends = eeg_window_ends(frames)
    assert a.shape == (2, len(ends), EEG_DIM) and np.isfinite(a).all()
    early = ends <= cut
    np.testing.assert_array_equal(a[:, early], b[:, early])
    assert not np.allclose(a[:, ~early], b[:, ~early])
    # the per-frame estimate of a frame-by-frame stream, read at the same frames
    from reactcli.generate import ReactionStream

    stream = ReactionStream(model, 2, seed=7, personality=traits)
    per_frame = np.concatenate([stream.push(audio[i : i + 7], face[i : i + 7], emotion[i : i + 7]).eeg.numpy()
                                for i in range(0, frames, 7)], 1)  # fmt: skip
    np.testing.assert_allclose(per_frame[:, ends], a, atol=1e-4, rtol=0)


def test_generate_writes_eeg_and_evaluate_scores_it_from_both(val_root: Path, generated: Path) -> None:
    preds = PredictionSet.open(generated / "pred")
    assert preds.has_eeg and preds.layout == "ragged" and "second" in preds.record["eeg"]
    assert preds.eeg_lengths == [eeg_window_count(n) for n in preds.lengths]
    data = torch.load(generated / "results.pt", weights_only=True)
    reader = EegReader(val_root / "val")
    for i in range(len(preds)):
        assert preds.eeg(i).shape == (3, preds.eeg_lengths[i], EEG_DIM)
        np.testing.assert_array_equal(data["PRED_EEG"][i].numpy(), preds.eeg(i))
        # GT_EEG / EEG_MASK: the paired listener's EEG at each second's last frame, at the input's length
        target = Recording("listener", *preds.ids[i].split("/")[1:])
        values, mask = eeg_per_frame(reader.read(target), preds.lengths[i])
        ends = eeg_window_ends(preds.lengths[i])
        np.testing.assert_array_equal(data["GT_EEG"][i].numpy(), values[ends][None])
        np.testing.assert_array_equal(data["EEG_MASK"][i].numpy(), mask[ends][None])
    assert any(float(m.sum()) == 0 for m in data["EEG_MASK"])  # the listener without an EEG file
    assert any(0 < float(m.mean()) < 1 for m in data["EEG_MASK"])  # blank and text cells
    scores = {}
    for name, source in (("folder", generated / "pred"), ("results", generated / "results.pt")):
        out = generated / f"metrics_{name}.json"
        assert run_cli(["evaluate", "--data", str(val_root), "--split", "val", "--predictions", str(source),
                        "--alignment", "resample", "--out", str(out)]) == 0  # fmt: skip
        scores[name] = json.loads(out.read_text())
    for key in ("EEG_FRC", "EEG_FRD", "EEG_FRSyn", "EEG_FRDiv", "EEG_FRVar"):
        assert scores["folder"][key] is not None, key
        assert scores["folder"][key] == pytest.approx(scores["results"][key], rel=1e-6), key
    assert scores["folder"]["EEG_FRDiv"] > 0  # K estimates that differ: the head reads each reaction's state
    assert "each second's last frame" in scores["folder"]["notes"]["EEG"]


def test_eeg_window_targets_match_the_per_frame_rule(val_root: Path) -> None:
    reader = EegReader(val_root / "val")
    table = reader.read(Recording("listener", "session1", sorted(
        p.stem for p in (val_root / "val" / "facial-attributes" / "listener" / "session1").glob("*.npy"))[0]))
    values, mask = eeg_window_targets(table, 95)
    per_frame, per_mask = eeg_per_frame(table, 95)
    np.testing.assert_array_equal(values, per_frame[[29, 59, 89, 94]])
    np.testing.assert_array_equal(mask, per_mask[[29, 59, 89, 94]])


def test_a_set_with_a_wrong_eeg_count_is_refused(val_root: Path, generated: Path, tmp_path: Path) -> None:
    preds = PredictionSet.open(generated / "pred")
    bad = tmp_path / "bad"
    with PredictionWriter(bad, preds.K, preds.record, kinds=("emotion", "face3dmm", "eeg")) as writer:
        for i in range(len(preds)):
            eeg = preds.eeg(i) if i else preds.eeg(i)[:, :-1]
            writer.add(preds.ids[i], preds.emotion(i), preds.face3dmm(i), eeg=eeg)
        writer.commit()
    code = run_cli(["evaluate", "--data", str(val_root), "--split", "val", "--predictions", str(bad),
                    "--alignment", "resample", "--out", str(tmp_path / "m.json")])  # fmt: skip
    assert code != 0


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_release(tmp_path_factory.mktemp("eeg-synth") / "data", {"train": 2, "val": 1}, sessions=2)


def test_training_with_the_eeg_head(synth_root: Path, tmp_path: Path) -> None:
    """The head trains from the masked per-frame targets: its statistics are the valid cells', the
    log carries the EEG loss, and the checkpoint loads with the head."""
    from reactcli.training.corpus import load_clips

    sets = [a for item in (*FAST, "predictor.eeg_head=true", "training.eeg_loss_weight=2.0")
            for a in ("--set", item)]  # fmt: skip
    common = ["--config", str(MARS_TINY), "--data", str(synth_root), "--out", str(tmp_path), "--device", "cpu", *sets]
    assert run_cli(["train-tokenizer", *common]) == 0
    assert run_cli(["train-predictor", "--tokenizer", str(tmp_path / "tokenizer.ckpt"), *common]) == 0
    model, _ = load_reaction_model(tmp_path / "predictor.ckpt")
    head = model.predictor
    assert head.eeg_head is not None and model.config.training.eeg_loss_weight == 2.0
    train = load_clips(synth_root, "train", model.config, ("listener_eeg", "listener_eeg_mask"))
    values = np.concatenate(train["listener_eeg"])
    mask = np.concatenate(train["listener_eeg_mask"]) > 0.5
    want = np.array([values[mask[:, c], c].mean() for c in range(EEG_DIM)])
    np.testing.assert_allclose(head.eeg_mean.numpy(), want, rtol=1e-4, atol=1e-5)
    log = (tmp_path / "predictor_log.csv").read_text().splitlines()
    assert "eeg_mse" in log[0] and "val_eeg_mse" in log[0]
    # a model with the head generates EEG on its own data
    mars_model, _ = load_generation_model(tmp_path / "predictor.ckpt", torch.device("cpu"))
    from reactcli.generate_mars import generation_edition, iter_mars_reactions, open_mars_split

    edition = generation_edition(synth_root, "val", None, mars_model.config)
    mars = open_mars_split(synth_root, "val", mars_model, edition)
    items = list(iter_mars_reactions(mars_model, mars, 0, 2, eeg=True))
    assert all(eeg.shape == (2, eeg_window_count(mars.lengths[n]), EEG_DIM) for n, _, _, eeg in items)


def test_bad_eeg_settings_are_one_line_errors(synth_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ReactError, match="training.eeg_loss_weight weighs the EEG head's loss") as info:
        load_config(MARS_TINY, parse_overrides(["training.eeg_loss_weight=3.0"]), environ={})
    assert "\n" not in str(info.value)
    (tmp_path / "r24").mkdir()
    (tmp_path / "r24" / "train.csv").write_text(",speaker_path,listener_path\n")
    sets = [a for item in (*FAST, "predictor.eeg_head=true") for a in ("--set", item)]
    out = tmp_path / "run"
    assert run_cli(["train-tokenizer", "--config", str(MARS_TINY), "--data", str(synth_root), "--out", str(out),
                    "--device", "cpu", *sets]) == 0  # fmt: skip
    from reactcli.training.ddp import DistContext
    from reactcli.training.predictor_stage import train_predictor

    cfg = load_config(MARS_TINY, parse_overrides([*FAST, "predictor.eeg_head=true"]), environ={})
    with pytest.raises(ReactError, match=r"predictor.eeg_head: REACT 2024 data has no EEG") as info:
        train_predictor(tmp_path / "r24", cfg, out / "tokenizer.ckpt", tmp_path / "x", 0,
                        DistContext(0, 1, 0, torch.device("cpu")))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("lengths", [[60, 60], [58, 95]])
def test_prediction_sets_carry_eeg_dense_and_ragged(tmp_path: Path, lengths: list[int]) -> None:
    rng = np.random.default_rng(1)
    blocks = [(rng.random((2, t, 25), np.float32), rng.random((2, t, 58), np.float32),
               rng.random((2, eeg_window_count(t), EEG_DIM), np.float32)) for t in lengths]  # fmt: skip
    with PredictionWriter(tmp_path / "set", 2, {"edition": "2026"}, kinds=("emotion", "face3dmm", "eeg")) as writer:
        for i, (emotion, face, eeg) in enumerate(blocks):
            writer.add(f"s{i}", emotion, face, eeg=eeg)
        with pytest.raises(ValueError, match="eeg of s9: shape"):
            writer.add("s9", *blocks[0][:2], eeg=blocks[0][2][..., :5])
        preds = writer.commit()
    assert preds.layout == ("dense" if lengths[0] == lengths[1] else "ragged") and preds.has_eeg
    assert (tmp_path / "set" / ("eeg.npy" if preds.layout == "dense" else "eeg_ragged.npy")).is_file()
    assert preds.eeg_lengths == [eeg_window_count(t) for t in lengths]
    for i, (_, _, eeg) in enumerate(blocks):
        np.testing.assert_array_equal(preds.eeg(i), eeg)
    plain = PredictionWriter(tmp_path / "plain", 2)
    plain.add("s0", *blocks[0][:2])
    assert not plain.commit().has_eeg and PredictionSet.open(tmp_path / "plain").eeg(0) is None
