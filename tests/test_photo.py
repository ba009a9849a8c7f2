"""Photo-realistic rendering and FRRea: ``react render --photo`` and ``react evaluate --pirender --inception``.

Random weights only, saved in the official layouts (PIRender: ``{"state_dict": ...}``, 306 keys;
Inception: a plain state dict with calibrated BatchNorm statistics), on a 4-pair synthetic val
split. PIRender costs about a second per frame on one CPU core, so every run here renders a few
frames only (``--max-frames``, ``--limit``, ``--realism-max-images``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import one_line_error, run_cli
from PIL import Image

from reactcli.data.layout import DatasetLayout, Sample, mirrored, read_pairs
from reactcli.data.loaders import iter_video_frames, load_emotion, load_face3dmm
from reactcli.errors import ReactError
from reactcli.metrics.frrea import plan_frames, prepare_frrea, protocol_frames, protocol_samples, write_fid_frames
from reactcli.render.clips import video_name
from reactcli.render.photo import PhotoRenderer, first_video_frame, real_frame, resize_center_crop, to_model_input
from reactcli.render.pirender import PIRender, to_uint8
from reactcli.render.video import probe


@pytest.fixture(scope="module")
def data(make_synth: Callable[..., Path]) -> Path:
    """4 val pairs (8 mirrored samples) with mp4 video."""
    return make_synth(train=0, val=4, test=0, video="mp4")


@pytest.fixture(scope="module")
def predictions(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A react generate folder: ground truth plus noise, K = 2."""
    layout = DatasetLayout(data)
    samples = mirrored(read_pairs(data, "val"))
    rng = np.random.default_rng(0)
    face = np.stack([load_face3dmm(layout.face3dmm("val", s.listener)) for s in samples])
    face = face[:, None] + rng.normal(0, 0.05, (len(samples), 2, 751, 58))
    emotion = np.stack([load_emotion(layout.emotion("val", s.listener))[:750] for s in samples])
    out = tmp_path_factory.mktemp("pred")
    np.save(out / "face3dmm.npy", face.astype(np.float32))
    np.save(out / "emotion.npy", np.repeat(emotion[:, None], 2, 1).astype(np.float32))
    return out


# ------------------------------------------------------------------ the protocol, without rendering
def test_official_protocol_selects_the_baselines_frames() -> None:
    # batches of 4, every 25th batch saved: samples 0-3, 100-103, 200-203 of 250
    assert protocol_samples("official-2024", 250) == [0, 1, 2, 3, 100, 101, 102, 103, 200, 201, 202, 203]
    assert protocol_samples("official-2024", 8) == [0, 1, 2, 3]
    assert protocol_samples("all", 5) == [0, 1, 2, 3, 4]
    assert protocol_frames(751) == list(range(0, 750, 30)) and len(protocol_frames(751)) == 25
    fake = [Sample(f"s{i}", f"l{i}") for i in range(8)]
    plan = plan_frames(fake, "official-2024", 751)
    assert len(plan) == 4 * 25 and {f.sample for f in plan} == {0, 1, 2, 3}
    assert len(plan_frames(fake, "all", 751)) == 8 * 25
    assert [f.name for f in plan_frames(fake, "all", 751, max_images=2)] == ["00000_0000.png", "00000_0030.png"]
    with pytest.raises(ReactError, match="--realism-protocol every: expected one of official-2024, all"):
        protocol_samples("every", 8)


def test_reference_transform_is_resize_256_then_centre_crop_224() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)  # landscape: short side (300) -> 256
    out = resize_center_crop(frame)
    expected = Image.fromarray(frame).resize((341, 256), Image.BILINEAR)  # int(256 * 400 / 300) = 341
    left = round((341 - 224) / 2)  # 58.5 -> 58 (half to even, as torchvision's CenterCrop)
    np.testing.assert_array_equal(out, np.asarray(expected)[16 : 16 + 224, left : left + 224])
    # the real FID frame takes the same [-1, 1] round trip as the renderer's output: never above the input
    real = real_frame(frame)
    assert real.shape == (224, 224, 3) and real.dtype == np.uint8
    assert np.all(real <= out) and np.all(out.astype(int) - real <= 1)
    np.testing.assert_array_equal(real, to_uint8(to_model_input(out[None]))[0])


# ------------------------------------------------------------------ react render --photo
def test_render_photo_writes_five_panel_videos_with_audio_and_resumes(
    data: Path, predictions: Path, pirender: Path, tmp_path: Path
) -> None:
    out = tmp_path / "videos"
    weights = tmp_path / pirender.name  # a private copy: its time stamp is changed below
    shutil.copy(pirender, weights)
    args = ["render", "--data", str(data), "--predictions", str(predictions), "--out", str(out),
            "--max-frames", "3", "--limit", "2", "--sample", "0", "--device", "cpu"]  # fmt: skip
    assert run_cli([*args, "--photo", "--pirender", str(weights)]) == 0
    videos = sorted(out.glob("*.mp4"))
    assert len(videos) == 2
    for video in videos:
        info = probe(video)
        assert (info.width, info.height, info.fps, info.frames) == (5 * 224, 224, 25.0, 3)
        assert info.audio_codec == "aac"
    # the fifth panel is PIRender's frame 0 of sample 0, reaction 0, from the listener's first video frame
    sample = mirrored(read_pairs(data, "val"))[0]
    shown = next(iter_video_frames(out / video_name(sample.speaker), 3))[0, 20:, 4 * 224 :].astype(float)
    renderer = PhotoRenderer.load(pirender)
    gen = np.load(predictions / "face3dmm.npy")[0, 0]
    reference = renderer.reference(first_video_frame(DatasetLayout(data).video("val", sample.listener)))
    direct = renderer.render(gen, reference, [0])[0, 20:].astype(float)
    mesh = next(iter_video_frames(out / video_name(sample.speaker), 3))[0, 20:, 3 * 224 : 4 * 224].astype(float)
    assert np.abs(shown - direct).mean() < 12 < np.abs(mesh - direct).mean()  # H.264 error (~7) only
    # a rerun skips finished videos; newer weights make a video stale; without --photo none is finished
    before = {v.name: v.stat().st_mtime_ns for v in videos}
    assert run_cli([*args, "--photo", "--pirender", str(weights)]) == 0
    assert {v.name: v.stat().st_mtime_ns for v in out.glob("*.mp4")} == before
    future = max(before.values()) + 10**9
    os.utime(weights, ns=(future, future))
    assert run_cli([*args, "--photo", "--pirender", str(weights), "--limit", "1"]) == 0
    first = out / video_name(sample.speaker)
    after = {v.name: v.stat().st_mtime_ns for v in out.glob("*.mp4")}
    assert [name for name in after if after[name] != before[name]] == [first.name]
    assert run_cli(args) == 0
    assert all(probe(v).width == 4 * 224 for v in out.glob("*.mp4"))


def test_render_photo_errors_and_reference_image(
    make_synth: Callable[..., Path], predictions: Path, pirender: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    no_video = make_synth(train=0, val=4, test=0, video="none")
    foreign = tmp_path / "foreign.pth"
    torch.save({"model": torch.zeros(1)}, foreign)
    missing = tmp_path / "missing.pth"
    state = PIRender().state_dict()
    state.pop("editing_net.decoder.final.model.0.bias")
    torch.save({"state_dict": state}, missing)
    out = tmp_path / "videos"
    base = ["render", "--predictions", str(predictions), "--out", str(out), "--max-frames", "1", "--limit", "1"]
    cases = [
        (["--data", str(no_video), "--photo", "--pirender", str(pirender)], "Novice_video/21.mp4: no listener video"),
        (["--data", str(no_video), "--photo"], "--photo needs --pirender"),
        (["--data", str(no_video), "--pirender", str(pirender)], "add --photo"),
        (["--data", str(no_video), "--photo", "--pirender", str(tmp_path / "none.pth")], "none.pth: no such file"),
        (["--data", str(no_video), "--photo", "--pirender", str(foreign)], "foreign.pth: has no 'state_dict'"),
        (["--data", str(no_video), "--photo", "--pirender", str(missing)], "missing.pth: not the REACT PIRender"),
        (["--data", str(no_video), "--photo", "--pirender", str(pirender), "--reference-image", str(foreign)],
         "foreign.pth: not a readable image"),
    ]  # fmt: skip
    for extra, needle in cases:
        assert run_cli([*base, *extra]) == 1, needle
        one_line_error(capsys, needle)
    assert not list(out.glob("*.mp4")) if out.exists() else True
    # data without video renders with --reference-image: two mesh panels and the photo one
    reference = tmp_path / "face.png"
    Image.fromarray(np.full((256, 200, 3), 128, np.uint8)).save(reference)
    args = [*base, "--data", str(no_video), "--photo", "--pirender", str(pirender), "--reference-image", str(reference)]
    assert run_cli(args) == 0
    (video,) = out.glob("*.mp4")
    assert (probe(video).width, probe(video).frames) == (3 * 224, 1)


# ------------------------------------------------------------------ FRRea
def test_fid_frames_follow_the_protocol_and_are_reused(
    data: Path, predictions: Path, pirender: Path, inception: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "fid"
    predictions = Path(shutil.copytree(predictions, tmp_path / "pred"))  # its time stamp is changed below
    job = prepare_frrea(data, "val", predictions, pirender, inception, folder, max_images=2)
    assert job.full_count == 4 * 25 and [f.name for f in job.plan] == ["00000_0000.png", "00000_0030.png"]
    (folder / "fake").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "fake" / "00007_0090.png")  # an older run's
    first = write_fid_frames(job)
    assert (first.rendered, first.reused, first.removed) == (2, 0, 1)
    for side in ("real", "fake"):
        files = sorted(p.name for p in (folder / side).glob("*.png"))
        assert files == ["00000_0000.png", "00000_0030.png"]
        assert all(Image.open(folder / side / f).size == (224, 224) for f in files)
    stamps = {p: p.stat().st_mtime_ns for p in folder.rglob("*.png")}
    again = write_fid_frames(job)
    assert (again.rendered, again.reused) == (0, 2)
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*.png")} == stamps
    # newer predictions make the fake frames stale, not the real ones
    future = max(stamps.values()) + 10**9
    os.utime(predictions / "face3dmm.npy", ns=(future, future))
    assert write_fid_frames(job).rendered == 2
    real = folder / "real" / "00000_0030.png"
    assert real.stat().st_mtime_ns == stamps[real]
    # another predictions folder, OLDER than the PNGs: its frames are rendered, not taken from the
    # first folder's run (file times alone would say "fresh"); the real side is still reused
    other = Path(shutil.copytree(predictions, tmp_path / "other"))
    face = np.load(other / "face3dmm.npy")
    np.save(other / "face3dmm.npy", face + 0.01)
    past = min(stamps.values()) - 10**9
    os.utime(other / "face3dmm.npy", ns=(past, past))
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "fake" / "stray.jpg")  # react fid reads jpg too
    switched = write_fid_frames(prepare_frrea(data, "val", other, pirender, inception, folder, max_images=2))
    assert (switched.rendered, switched.reused, switched.removed) == (2, 0, 3)
    assert real.stat().st_mtime_ns == stamps[real]
    assert not (folder / "fake" / "stray.jpg").exists()


def test_evaluate_frrea_errors_are_one_line(
    data: Path, predictions: Path, pirender: Path, inception: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    base = ["evaluate", "--data", str(data), "--predictions", str(predictions)]
    out = ["--out", str(tmp_path / "m.json")]
    emotion_only = tmp_path / "emotion_only"
    emotion_only.mkdir()
    (emotion_only / "emotion.npy").write_bytes((predictions / "emotion.npy").read_bytes())
    with_nan = Path(shutil.copytree(predictions, tmp_path / "with_nan"))
    face = np.load(with_nan / "face3dmm.npy")
    face[0, 0, 30, 7] = np.nan
    np.save(with_nan / "face3dmm.npy", face)
    cases = [
        ([*base, *out, "--pirender", str(pirender)], "--pirender is for FRRea, which needs --inception too"),
        ([*base, *out, "--inception", str(inception)], "--inception is for FRRea, which needs --pirender too"),
        ([*base, "--pirender", str(pirender), "--inception", str(inception)], "give --out metrics.json"),
        ([*base, *out, "--pirender", str(inception), "--inception", str(inception)], "pt_inception-2015-12-05"),
        ([*base, *out, "--pirender", str(pirender), "--inception", str(pirender)], "cur_model_fold.pth: not"),
        ([*base, *out, "--pirender", str(pirender), "--inception", str(inception), "--realism-protocol", "x"],
         "--realism-protocol x"),
        (["evaluate", "--data", str(data), "--predictions", str(emotion_only), *out, "--pirender", str(pirender),
          "--inception", str(inception)], "emotion_only: FRRea renders the generated 3DMM"),
        (["evaluate", "--data", str(data), "--predictions", str(with_nan), *out, "--pirender", str(pirender),
          "--inception", str(inception)], "face3dmm.npy: sample 0 reaction 0 contains NaN/inf values"),
        ([*base, *out, "--realism-max-images", "5"], "--realism-max-images: for FRRea only"),
        ([*base, *out, "--device", "cpu", "--realism-protocol", "all"], "--realism-protocol: for FRRea"),
    ]  # fmt: skip
    for args, needle in cases:
        assert run_cli(args) == 1, needle
        one_line_error(capsys, needle)
    assert not (tmp_path / "m.json").exists()
    assert not (tmp_path / "fid").exists()  # the NaN was found before any frame was written


@pytest.mark.slow  # two 2048 x 2048 matrix square roots (FRRea, then react fid on its folders)
def test_evaluate_frrea_end_to_end_equals_react_fid(
    data: Path, predictions: Path, pirender: Path, inception: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    metrics = tmp_path / "run" / "metrics.json"
    args = ["evaluate", "--data", str(data), "--predictions", str(predictions), "--out", str(metrics),
            "--pirender", str(pirender), "--inception", str(inception), "--realism-max-images", "3",
            "--device", "cpu"]  # fmt: skip
    assert run_cli(args) == 0
    result = json.loads(metrics.read_text())
    assert np.isfinite(result["FRRea"]) and result["FRRea"] > 0
    assert result["FRRea_protocol"] == "official-2024"
    assert result["FRRea_frames"] == {"real": 3, "fake": 3, "protocol": 100}
    assert "pytorch-fid 0.3.0" in result["FRRea_extractor"] and "not comparable" in result["notes"]["FRRea"]
    fid = tmp_path / "run" / "fid"
    names = sorted(p.name for p in (fid / "real").glob("*.png"))
    assert names == sorted(p.name for p in (fid / "fake").glob("*.png")) == [
        "00000_0000.png", "00000_0030.png", "00000_0060.png"]  # fmt: skip
    capsys.readouterr()
    fid_json = tmp_path / "fid.json"
    assert run_cli(["fid", str(fid / "real"), str(fid / "fake"), "--inception", str(inception),
                    "--json", str(fid_json), "--device", "cpu"]) == 0  # fmt: skip
    assert json.loads(fid_json.read_text())["fid"] == pytest.approx(result["FRRea"], rel=1e-9)
