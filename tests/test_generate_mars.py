"""``react generate`` on a MARS split (REACT 2025/2026): ragged sets in the official order with ids, the
inputs' lengths, batches by length equal to one clip at a time, the listener's personality, the
edition check, offline labelling, ``results.pt``, and the round trip through ``react evaluate``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from _mars_fixtures import write_mars_val
from _mars_models import REPO, generate_set, preprocessed_root, random_mars_model, save_mars_model
from conftest import run_cli

from reactcli.data.mars import list_recordings
from reactcli.errors import ReactError
from reactcli.generate import (
    ReactionStream,
    generate_reactions,
    length_plan,
    load_generation_model,
    sample_seed,
)
from reactcli.generate_mars import generation_edition, open_mars_split, round_aus, write_in_order
from reactcli.predictions import PredictionSet, PredictionWriter


def mars_checkpoint(
    path: Path, personality: bool = True, encoder: str = "mfcc", edition: str = "2026", causal: bool = True,
    seed: int = 0,
) -> Path:
    """A random model of the MARS preset's design (small), saved as train-predictor saves one."""

    def traits_matter(predictor: torch.nn.Module) -> None:
        if predictor.personality_proj is not None:
            predictor.personality_proj.weight.normal_(0.0, 2.0)  # traits that visibly matter

    model = random_mars_model(f"predictor.personality={str(personality).lower()}", f"audio.encoder='{encoder}'",
                              seed=seed, tweak=traits_matter)
    return save_mars_model(path, model, edition=edition, causal=causal)


@pytest.fixture(scope="module")
def mars_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The independent MARS val split (lengths 58-900, sessions sorting as strings, a listener two
    frames short, an unpaired speaker, junk), preprocessed with the MARS preset."""
    return preprocessed_root(tmp_path_factory.mktemp("mars-gen") / "data", write_mars_val, "--splits", "val")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mars_checkpoint(tmp_path_factory.mktemp("mars-ckpt") / "predictor.ckpt")


@pytest.fixture(scope="module")
def generated(mars_root: Path, checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_set(checkpoint, mars_root, tmp_path_factory.mktemp("mars-out"), seed=4)


def test_a_mars_set_is_ragged_in_the_official_order_at_the_inputs_lengths(mars_root: Path, generated: Path) -> None:
    preds = PredictionSet.open(generated / "pred")
    samples = list_recordings(mars_root, "val").samples(False)
    assert preds.ids == [s.id for s in samples]  # speakers only (2026), session1 < session10 < session4
    assert [i.split("/")[1] for i in preds.ids][:4] == ["session1"] * 3 + ["session10"]
    attributes = [np.load(mars_root / "val" / "facial-attributes" / f"{i}.npy").shape[0] for i in preds.ids]
    assert preds.layout == "ragged" and preds.K == 3
    assert preds.lengths == attributes == preds.face_lengths and min(attributes) == 58 and max(attributes) == 900
    rec = preds.record
    assert (rec["edition"], rec["fps"], rec["mode"], rec["audio_causal"], rec["bidirectional"]) == (
        "2026", 30, "online", True, False)
    assert rec["seed"] == 4 and rec["face3dmm_normalization"] == "raw" and "traits" in rec["personality"]
    for i in range(len(preds)):
        emotion = preds.emotion(i)
        assert emotion.shape == (3, attributes[i], 25) and np.isfinite(emotion).all()
        assert preds.face3dmm(i).shape == (3, attributes[i], 58)
        assert ((emotion[..., :15] >= 0) & (emotion[..., :15] <= 1)).all()  # the valid-emotion projection


def test_each_sample_equals_its_clip_generated_alone(mars_root: Path, checkpoint: Path, generated: Path) -> None:
    """Batches cut by length and written through the scratch in sample order: every sample is the
    one-clip generation of its own inputs with its own seed and listener traits, within float
    rounding; the traits really are the sample's listener's."""
    preds = PredictionSet.open(generated / "pred")
    model, _ = load_generation_model(checkpoint, torch.device("cpu"))
    mars = open_mars_split(mars_root, "val", model, generation_edition(mars_root, "val", None, model.config))
    listener_csv = (mars_root / "val" / "personality" / "listener.csv").read_text()
    for n in (0, 4, len(preds) - 1):
        clip = mars.speakers[n]
        target = mars.speakers.samples[n].target
        assert target.stem in listener_csv and clip.personality.shape == (5,)
        face, emotion = generate_reactions(model, clip.audio, clip.face3dmm, clip.emotion, samples=3,
                                           seed=sample_seed(4, n), personality=clip.personality)  # fmt: skip
        np.testing.assert_allclose(preds.emotion(n), emotion, atol=1e-5, rtol=0)
        np.testing.assert_allclose(preds.face3dmm(n), face, atol=1e-4, rtol=0)
    # the short listener (two frames under its speaker) does not shorten the prediction: the input decides
    short = next(n for n, s in enumerate(mars.speakers.samples)
                 if mars.speakers.data.index.entries[s.target.id].length < mars.lengths[n])  # fmt: skip
    assert preds.lengths[short] == mars.speakers.data.index.entries[mars.speakers.samples[short].input.id].length


def test_results_pt_round_trips_through_react_evaluate(mars_root: Path, generated: Path) -> None:
    """PRED holds the set's emotion with the AUs rounded, in the same order; both the folder and the
    file score through ``react evaluate``, and MAE (valence, arousal, expressions: no AU) agrees."""
    preds = PredictionSet.open(generated / "pred")
    data = torch.load(generated / "results.pt", weights_only=True)
    assert data["sample_ids"] == preds.ids and len(data["PRED"]) == len(preds)
    for i, tensor in enumerate(data["PRED"]):
        assert tensor.dtype == torch.float32 and tensor.shape == (3, preds.lengths[i], 25)
        np.testing.assert_array_equal(tensor.numpy(), round_aus(preds.emotion(i)))
        assert set(np.unique(tensor.numpy()[..., :15])) <= {0.0, 1.0}
    assert not np.array_equal(data["PRED"][0].numpy(), preds.emotion(0))  # the rounding did something
    scores = {}
    for name, source in (("folder", generated / "pred"), ("results", generated / "results.pt")):
        out = generated / f"metrics_{name}.json"
        assert run_cli(["evaluate", "--data", str(mars_root), "--split", "val", "--predictions", str(source),
                        "--alignment", "resample", "--out", str(out)]) == 0  # fmt: skip
        scores[name] = json.loads(out.read_text())
    for value in scores.values():
        assert value["N"] == len(preds) and value["K"] == 3 and value["frames"]["total"] == sum(preds.lengths)
        assert value["official"] is False and value["FRC"] is not None
    assert scores["folder"]["MAE"] == pytest.approx(scores["results"]["MAE"], rel=1e-6)
    assert scores["folder"]["predictions"]["generation"]["edition"] == "2026"


def test_personality_is_required_used_and_never_ignored(checkpoint: Path, tmp_path: Path) -> None:
    model, _ = load_generation_model(checkpoint, torch.device("cpu"))
    rng = np.random.default_rng(0)
    audio, face = rng.normal(size=(40, 78)).astype(np.float32), rng.normal(size=(40, 58)).astype(np.float32)
    emotion = rng.random((40, 25)).astype(np.float32)
    calm, lively = np.full(5, 0.1, np.float32), np.full(5, 0.9, np.float32)
    a = generate_reactions(model, audio, face, emotion, samples=2, seed=1, personality=calm)
    b = generate_reactions(model, audio, face, emotion, samples=2, seed=1, personality=lively)
    assert not np.allclose(a[1], b[1], atol=1e-3)
    c = generate_reactions(model, audio, face, emotion, samples=2, seed=1, personality=lively, chunk=7)
    np.testing.assert_allclose(b[1], c[1], atol=1e-5)  # frame by frame: the same traits at every frame
    with pytest.raises(ReactError, match="takes the listener's personality"):
        ReactionStream(model, 2)
    with pytest.raises(ReactError, match=r"expected finite \(1, 5\)"):
        ReactionStream(model, 2, personality=np.zeros(4, np.float32))
    plain, _ = load_generation_model(mars_checkpoint(tmp_path / "plain.ckpt", personality=False), torch.device("cpu"))
    with pytest.raises(ReactError, match="does not take the listener's personality"):
        ReactionStream(plain, 2, personality=calm)


def test_a_checkpoint_of_another_edition_is_refused(mars_root: Path, tmp_path: Path) -> None:
    from reactcli.cli import main

    other = mars_checkpoint(tmp_path / "2024.ckpt", personality=False, edition="2024")
    with pytest.raises(SystemExit) as exc:
        main(["generate", "--checkpoint", str(other), "--data", str(mars_root), "--out", str(tmp_path / "o")])
    assert exc.value.code == 1 and not (tmp_path / "o").exists()
    with pytest.raises(ReactError, match=r"trained on REACT 2024 data, but .* is read as REACT 2026"):
        from reactcli.generate_mars import generate_mars_split

        generate_mars_split(other, mars_root, "val", tmp_path / "o", 0, torch.device("cpu"))
    # 2025 data has no traits for a personalised 2026 model
    model, _ = load_generation_model(mars_checkpoint(tmp_path / "p.ckpt"), torch.device("cpu"))
    from reactcli.editions import edition

    with pytest.raises(ReactError, match="REACT 2025 data does not have"):
        open_mars_split(mars_root, "val", model, edition("2025"))


def test_mars_options_are_refused_on_2024_data(preprocessed_root: Path, tmp_path: Path) -> None:
    from reactcli.cli import main

    ckpt = mars_checkpoint(tmp_path / "m.ckpt", personality=False)
    with pytest.raises(SystemExit) as exc:
        main(["generate", "--checkpoint", str(ckpt), "--data", str(preprocessed_root), "--out", str(tmp_path / "o"),
              "--results-pt", str(tmp_path / "r.pt")])  # fmt: skip
    assert exc.value.code == 1
    with pytest.raises(ReactError, match="trained on REACT 2026 data, but .* is read as REACT 2024"):
        from reactcli.generate import generate_split

        generate_split(ckpt, preprocessed_root, "val", tmp_path / "o", 0, torch.device("cpu"))


def test_an_offline_model_is_labelled_offline(mars_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Trained on the release's (non-causal) audio-features: the record and the printout say offline."""
    ckpt = mars_checkpoint(tmp_path / "release.ckpt", personality=False, encoder="release", causal=False)
    assert run_cli(["generate", "--checkpoint", str(ckpt), "--data", str(mars_root), "--out", str(tmp_path / "o"),
                    "--no-bidirectional"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "offline" in printed and "not online" in printed
    rec = PredictionSet.open(tmp_path / "o").record
    assert rec["mode"] == "offline" and rec["audio_causal"] is False and rec["audio_encoder"] == "release"


def test_write_in_order_takes_results_in_any_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    lengths = [5, 9, 3, 7]
    blocks = [(rng.normal(size=(2, t, 58)).astype(np.float32), rng.random((2, t, 25)).astype(np.float32))
              for t in lengths]  # fmt: skip
    order = [3, 1, 0, 2]
    with PredictionWriter(tmp_path / "set", 2, {}) as writer:
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        write_in_order(writer, ["a", "b", "c", "d"], lengths, 2,
                       iter((i, *blocks[i]) for i in order), scratch)  # fmt: skip
        preds = writer.commit()
    assert preds.ids == ["a", "b", "c", "d"] and preds.lengths == lengths
    for i, (face, emotion) in enumerate(blocks):
        np.testing.assert_array_equal(preds.emotion(i), emotion)
        np.testing.assert_array_equal(preds.face3dmm(i), face)
    with PredictionWriter(tmp_path / "short", 2, {}) as writer, pytest.raises(ReactError, match="after 0 of 4"):
        write_in_order(writer, ["a", "b", "c", "d"], lengths, 2, iter([(1, *blocks[1])]), scratch)


def test_length_plan_groups_similar_lengths_within_a_budget() -> None:
    lengths = [100, 20_000, 58, 600, 19_000, 120, 580]
    plan = length_plan(lengths, batch_clips=3, samples=10)
    assert sorted(i for g in plan for i in g) == list(range(7))
    firsts = [lengths[g[0]] for g in plan]
    assert firsts == sorted(firsts, reverse=True)  # longest first
    per_frame = 10 * 83 * 4
    for group in plan:
        assert len(group) <= 3 and all(lengths[i] <= lengths[group[0]] for i in group)
        assert len(group) == 1 or len(group) * lengths[group[0]] * per_frame <= 512 * 2**20
    tight = length_plan(lengths, batch_clips=8, samples=10, budget=20_000 * per_frame)
    assert tight[0] == [1] and tight[1] == [4]  # a long clip's batch holds only what fits
    assert length_plan([50] * 5, batch_clips=2, samples=1) == [[0, 1], [2, 3], [4]]


@pytest.mark.slow
def test_generation_memory_is_flat_over_a_20000_frame_recording() -> None:
    """A MARS-size recording (20 000 frames at 30 fps, the preset's patch, K = 10, the listener's traits)
    streams through the batched stream as generate_batch pushes it: the process's peak memory grows by
    less than 8 MB between frame 2 000 and frame 20 000 (the stream's ring caches; the inputs are
    allocated up front)."""
    script = textwrap.dedent(f"""
        import resource, sys
        import numpy as np, torch
        sys.path.insert(0, {str(REPO / 'tests')!r})
        from pathlib import Path
        from test_generate_mars import mars_checkpoint
        from reactcli.generate import BatchedReactionStream, load_generation_model
        import tempfile
        path = mars_checkpoint(Path(tempfile.mkdtemp()) / "m.ckpt")
        model, _ = load_generation_model(path, torch.device("cpu"))
        frames = 20_000
        rng = np.random.default_rng(0)
        audio = rng.normal(size=(1, frames, 78)).astype(np.float32)
        face = rng.normal(size=(1, frames, 58)).astype(np.float32)
        emotion = rng.random((1, frames, 25)).astype(np.float32)
        stream = BatchedReactionStream(model, [1], samples=10, personality=np.full((1, 5), 0.5, np.float32))
        peaks = {{}}
        for lo in range(0, frames, 250):
            stream.push(audio[:, lo:lo + 250], face[:, lo:lo + 250], emotion[:, lo:lo + 250])
            if stream.received in (2000, frames):
                peaks[stream.received] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(peaks[2000], peaks[frames])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO,
                          env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    at_2000, at_end = (int(v) for v in done.stdout.split())
    assert at_end - at_2000 < 8 * 1024, (at_2000, at_end)  # ru_maxrss is in KB
