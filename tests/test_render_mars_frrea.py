"""FRRea and ``react render --photo`` on REACT 2025/2026 (MARS) data: the ``official-mars`` frame plan
on ragged lengths, the MARS PIRender protocol (Resize 224 + CenterCrop 224, translation z minus
mean_face[57]), streamed frame picking, up-front checks and the recorded protocol.

Random weights in the official layouts (conftest's ``pirender`` and ``inception``); PIRender costs
about a second a frame on one core, so every run renders a few frames only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image

from reactcli.data.loaders import iter_video_frames
from reactcli.data.mars import MarsSample, list_recordings
from reactcli.data.mars_loaders import load_coefficients, video_frame_count
from reactcli.data.synth_mars import make_mars_dataset
from reactcli.errors import ReactError
from reactcli.metrics.frrea import (
    FRAME_STEP,
    MARS_PROTOCOL,
    mars_frames,
    plan_mars_frames,
    prepare_frrea_mars,
    run_frrea,
    write_fid_frames,
)
from reactcli.predictions import PredictionWriter
from reactcli.render.clips import video_name
from reactcli.render.face_space import packaged_face_stats
from reactcli.render.photo import (
    MARS_RESIZE,
    REACT_2024,
    PhotoRenderer,
    first_video_frame,
    iter_video_picks,
    mars_protocol,
    real_frame,
)
from reactcli.render.video import probe


def val_samples(root: Path) -> list[MarsSample]:
    return list_recordings(root, "val").samples(False)


@pytest.fixture(scope="module")
def mars_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2026 val split: 2 dyads x 2 sessions (4 samples of 58-100 frames), mp4 face crops."""
    root = tmp_path_factory.mktemp("mars") / "data"
    make_mars_dataset(root, edition="2026", dyads={"train": 0, "val": 2, "test": 0}, sessions=2, frames=(58, 100))
    return root


def write_set(root: Path, out: Path, noise: float = 0.05, ids: list[str] | None = None) -> Path:
    """K = 2 reactions per sample: the listener's coefficients plus seeded noise, ragged lengths."""
    rng = np.random.default_rng(0)
    samples = val_samples(root)
    writer = PredictionWriter(out, 2, {"edition": "2026", "split": "val"}, kinds=("face3dmm",))
    for n, sample in enumerate(samples):
        face = load_coefficients(root / "val" / "coefficients" / f"{sample.target.id}.npy")
        faces = face[None] + rng.normal(0, noise, (2, *face.shape))
        writer.add((ids or [s.id for s in samples])[n], face3dmm=faces.astype(np.float32))
    writer.commit()
    return out


@pytest.fixture(scope="module")
def predictions(mars_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_set(mars_root, tmp_path_factory.mktemp("pred") / "set")


# ------------------------------------------------------------------ the plan, without rendering
def test_official_mars_frames_are_every_30th_of_each_side_over_its_own_length() -> None:
    assert FRAME_STEP == 30
    assert mars_frames(95, 93) == [(0, True, True), (30, True, True), (60, True, True), (90, True, True)]
    assert mars_frames(61, 59) == [(0, True, True), (30, True, True), (60, False, True)]  # video 1 frame short
    assert mars_frames(58, 61) == [(0, True, True), (30, True, True), (60, True, False)]  # prediction short
    assert len(mars_frames(20_000, 20_000)) == 667
    plan = plan_mars_frames(["l/s0/a", "l/s0/b", "l/s1/c"], [95, 61, 58], [93, 59, 61])
    assert [(f.sample, f.frame, f.real, f.fake) for f in plan] == [
        (0, 0, True, True), (0, 30, True, True), (0, 60, True, True), (0, 90, True, True),
        (1, 0, True, True), (1, 30, True, True), (1, 60, False, True),
        (2, 0, True, True), (2, 30, True, True), (2, 60, True, False),
    ]  # fmt: skip
    assert [f.listener for f in plan[4:7]] == ["l/s0/b"] * 3
    assert plan[9].name == "00002_0060.png"
    assert [f.name for f in plan_mars_frames(["a"], [20_000], [20_000], max_images=2)][-1] == "00000_0030.png"


def test_mars_photo_protocol_resizes_to_224_and_shifts_translation_z() -> None:
    mean, _ = packaged_face_stats()
    protocol = mars_protocol()
    assert (protocol.resize, MARS_RESIZE) == (224, 224)
    assert protocol.translation_z_offset == pytest.approx(float(mean[57])) and 1.7 < mean[57] < 2.0
    coeffs = np.ones((5, 58), np.float32)
    driven = protocol.driving(coeffs)
    assert np.allclose(driven[:, 57], 1 - mean[57]) and np.array_equal(driven[:, :57], coeffs[:, :57])
    assert REACT_2024.driving(coeffs) is coeffs and mars_protocol(shift_translation=False).driving(coeffs) is coeffs
    frame = np.random.default_rng(0).integers(0, 256, (384, 384, 3), dtype=np.uint8)  # a MARS face crop
    expected = np.asarray(Image.fromarray(frame).resize((224, 224), Image.BILINEAR))
    assert np.all(real_frame(frame, 224) <= expected) and np.all(expected.astype(int) - real_frame(frame, 224) <= 1)
    assert not np.array_equal(real_frame(frame, 224), real_frame(frame))  # 2024: 256, then a crop


def test_video_frames_are_picked_in_one_streaming_pass(mars_root: Path, tmp_path: Path) -> None:
    video = mars_root / "val" / "video-face-crop" / f"{val_samples(mars_root)[0].target.id}.mp4"
    frames = np.concatenate(list(iter_video_frames(video, 7)))
    picked = list(iter_video_picks(video, [45, 0, 30, 30], chunk=7))
    assert [i for i, _ in picked] == [0, 30, 45]
    assert all(np.array_equal(frame, frames[i]) for i, frame in picked)
    with pytest.raises(ReactError, match=f"video has {len(frames)} frames, but frame 500 is needed"):
        list(iter_video_picks(video, [0, 500]))


# ------------------------------------------------------------------ prepare, frames, FID
def test_prepare_frrea_mars_plans_every_sample_and_checks_first(
    mars_root: Path, predictions: Path, pirender: Path, inception: Path, tmp_path: Path
) -> None:
    job = prepare_frrea_mars(mars_root, "val", predictions, pirender, inception, tmp_path / "fid")
    samples = val_samples(mars_root)
    video_lengths = [
        video_frame_count(mars_root / "val" / "video-face-crop" / f"{s.target.id}.mp4") for s in samples
    ]
    lengths = job.predictions.face_lengths
    expected = [(n, t) for n in range(4) for t, _, _ in mars_frames(lengths[n], video_lengths[n])]
    assert [(f.sample, f.frame) for f in job.plan] == expected and job.protocol == MARS_PROTOCOL
    assert job.full_sides == (
        sum(len(range(0, v, 30)) for v in video_lengths), sum(len(range(0, p, 30)) for p in lengths))
    assert {f.listener for f in job.plan} == {s.target.id for s in samples} == set(job.videos)
    assert job.photo.protocol == mars_protocol()

    no_video = Path(shutil.copytree(mars_root, tmp_path / "no_video"))
    (no_video / "val" / "video-face-crop" / f"{samples[2].target.id}.mp4").unlink()
    shuffled = write_set(mars_root, tmp_path / "shuffled", ids=[s.id for s in samples][::-1])
    nan = Path(shutil.copytree(predictions, tmp_path / "nan"))
    array = np.load(nan / "face3dmm_ragged.npy")
    array[3, 7] = np.nan  # sample 0, reaction 0, frame 3
    np.save(nan / "face3dmm_ragged.npy", array)
    cases = [
        ((no_video, predictions, pirender, inception), f"{samples[2].target.id}.mp4: no listener face-crop video"),
        ((mars_root, shuffled, pirender, inception), f"sample 0 is '{samples[3].id}' but the val split's 4 samples"),
        ((mars_root, nan, pirender, inception), "sample 0 reaction 0 contains NaN/inf values"),
        ((mars_root, predictions, inception, inception), "pt_inception-2015-12-05-6726825d.pth"),
        ((mars_root, predictions, pirender, pirender), "cur_model_fold.pth"),
    ]  # fmt: skip
    for (root, pred, weights, network), needle in cases:
        with pytest.raises(ReactError) as info:
            prepare_frrea_mars(root, "val", pred, weights, network, tmp_path / "fid")
        assert needle in str(info.value), str(info.value)
    assert not (tmp_path / "fid").exists()  # nothing written before every check passed
    with pytest.raises(ReactError, match="selects 1 real and 1 fake frame"):
        prepare_frrea_mars(mars_root, "val", predictions, pirender, inception, tmp_path / "fid", max_images=1)


def test_mars_fid_frames_are_the_protocols_pixels_and_are_reused(
    mars_root: Path, predictions: Path, pirender: Path, inception: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "fid"
    job = prepare_frrea_mars(mars_root, "val", predictions, pirender, inception, folder, max_images=3)
    assert [f.name for f in job.plan][:2] == ["00000_0000.png", "00000_0030.png"] and len(job.plan) == 3
    made = write_fid_frames(job)
    assert (made.rendered, made.reused) == (job.fake_count, 0) and job.fake_count >= 2
    for side, count in (("real", job.real_count), ("fake", job.fake_count)):
        assert sorted(p.name for p in (folder / side).glob("*.png")) == [f.name for f in job.plan if getattr(f, side)]
        assert count == len(list((folder / side).glob("*.png")))
    samples = val_samples(mars_root)
    video = mars_root / "val" / "video-face-crop" / f"{samples[0].target.id}.mp4"
    real = dict(iter_video_picks(video, [0, 30]))
    for t in (0, 30):  # real: the listener's face-crop frame through Resize 224 + CenterCrop 224
        png = np.asarray(Image.open(folder / "real" / f"00000_{t:04d}.png"))
        np.testing.assert_array_equal(png, real_frame(real[t], 224))
    # fake: prediction 0 driven with translation z minus mean_face[57], reference = frame 0 (224)
    renderer = PhotoRenderer.load(pirender, protocol=mars_protocol())
    coeffs = np.array(job.predictions.face3dmm(0)[0])
    # (the same batch as the job's: convolution rounding may differ between batch sizes)
    direct = renderer.render(coeffs, renderer.reference(first_video_frame(video)), [0, 30])[1]
    np.testing.assert_array_equal(np.asarray(Image.open(folder / "fake" / "00000_0030.png")), direct)
    unshifted = PhotoRenderer.load(pirender, protocol=mars_protocol(shift_translation=False))
    other = unshifted.render(coeffs, unshifted.reference(first_video_frame(video)), [0, 30])[1]
    assert np.abs(other.astype(int) - direct).mean() > 0.5  # the shift is not a no-op
    stamps = {p: p.stat().st_mtime_ns for p in folder.rglob("*.png")}
    again = write_fid_frames(job)
    assert (again.rendered, again.reused) == (0, job.fake_count)
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*.png")} == stamps
    record = json.loads((folder / "sources.json").read_text())
    assert record["fake"]["transform"]["resize"] == 224 and record["fake"]["transform"]["name"] == "mars"


@pytest.mark.slow  # one 2048 x 2048 matrix square root
def test_run_frrea_records_the_mars_protocol(
    mars_root: Path, predictions: Path, pirender: Path, inception: Path, tmp_path: Path
) -> None:
    job = prepare_frrea_mars(mars_root, "val", predictions, pirender, inception, tmp_path / "fid", max_images=4)
    result = run_frrea(job)
    assert np.isfinite(result["FRRea"]) and result["FRRea"] > 0
    assert result["FRRea_protocol"] == "official-mars"
    frames = result["FRRea_frames"]
    samples = len({f.sample for f in job.plan})
    assert (frames["real"], frames["fake"], frames["stride"], frames["samples"]) == (
        job.real_count, job.fake_count, 30, samples)  # fmt: skip
    assert (frames["protocol_real"], frames["protocol_fake"]) == job.full_sides and frames["protocol"] == job.full_count
    assert "Resize 224 + CenterCrop 224" in result["FRRea_renderer"] and "mean_face[57]" in result["FRRea_renderer"]
    assert "pytorch-fid 0.3.0" in result["FRRea_extractor"] and "not comparable" in result["FRRea_note"]
    assert "prediction 0 of all 4 samples, every 30th frame" in result["FRRea_note"]


# ------------------------------------------------------------------ react render --photo on MARS
def test_mars_render_photo_panel_is_the_frrea_pixels(
    mars_root: Path, predictions: Path, pirender: Path, tmp_path: Path
) -> None:
    sample = val_samples(mars_root)[1]
    out = tmp_path / "videos"
    args = ["render", "--data", str(mars_root), "--predictions", str(predictions), "--out", str(out),
            "--clips", sample.id, "--max-frames", "2", "--photo", "--pirender", str(pirender),
            "--device", "cpu"]  # fmt: skip
    assert run_cli(args) == 0
    video = out / video_name(sample.id)
    info = probe(video)
    assert (info.width, info.fps, info.frames) == (5 * 224, 30.0, 2)
    shown = next(iter_video_frames(video, 2))[1, 20:, 4 * 224 :].astype(float)
    renderer = PhotoRenderer.load(pirender, protocol=mars_protocol())
    listener = mars_root / "val" / "video-face-crop" / f"{sample.target.id}.mp4"
    coeffs = load_prediction(predictions, 1)
    direct = renderer.render(coeffs, renderer.reference(first_video_frame(listener)), [1])[0, 20:].astype(float)
    assert np.abs(shown - direct).mean() < 12  # H.264 error only
    entry = json.loads((out / "render.json").read_text())["videos"][video.name]
    assert entry["width"] == 5 * 224 and entry["sources"]["pirender"] is not None


def load_prediction(folder: Path, sample: int) -> np.ndarray:
    from reactcli.predictions import PredictionSet

    return np.array(PredictionSet.open(folder).face3dmm(sample)[0])


@pytest.mark.slow
def test_react_evaluate_on_mars_scores_frrea_with_the_other_metrics(
    mars_root: Path, pirender: Path, inception: Path, tmp_path: Path
) -> None:
    """`react evaluate --pirender --inception` on a MARS root: FRRea by the MARS protocol next to the
    official metrics in one JSON; --realism-protocol (a 2024 choice) is refused in one line."""
    from reactcli.data.mars_loaders import load_attributes

    rng = np.random.default_rng(1)
    samples = val_samples(mars_root)
    writer = PredictionWriter(tmp_path / "set", 2, {"edition": "2026", "split": "val"})
    for sample in samples:
        face = load_coefficients(mars_root / "val" / "coefficients" / f"{sample.target.id}.npy")
        emotion = load_attributes(mars_root / "val" / "facial-attributes" / f"{sample.input.id}.npy")
        writer.add(sample.id, np.repeat(emotion[None], 2, 0),
                   (face[None] + rng.normal(0, 0.05, (2, *face.shape))).astype(np.float32))
    writer.commit()
    out = tmp_path / "run" / "metrics.json"
    base = ["evaluate", "--data", str(mars_root), "--split", "val", "--predictions", str(tmp_path / "set"),
            "--alignment", "resample", "--out", str(out)]
    assert run_cli([*base, "--pirender", str(pirender), "--inception", str(inception), "--realism-max-images", "4",
                    "--device", "cpu"]) == 0
    result = json.loads(out.read_text())
    assert result["FRRea_protocol"] == "official-mars" and np.isfinite(result["FRRea"])
    assert np.isfinite(result["FRD"]) and result["N"] == len(samples)
    assert (out.parent / "fid" / "fake").is_dir()
    assert run_cli([*base, "--realism-protocol", "all"]) == 1
