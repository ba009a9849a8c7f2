"""``react render`` on REACT 2025/2026 (MARS) data: 30 fps videos of any length with the speaker's
sound fitted to them, ragged prediction sets matched by id, clip choice, reruns, one-line errors,
de-normalised sets, and a long clip in flat memory with its sound in place."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import one_line_error, run_cli
from scipy.io import wavfile

from reactcli.data.mars import MarsSample, list_recordings
from reactcli.data.mars_loaders import load_attributes, load_coefficients
from reactcli.data.synth_mars import make_mars_dataset
from reactcli.errors import ReactError
from reactcli.predictions import PredictionWriter
from reactcli.render.clips import ClipJob, plot_name, video_name
from reactcli.render.face_space import packaged_face_stats
from reactcli.render.mars_clips import (
    DEFAULT_CLIPS,
    MarsClips,
    default_jobs,
    open_mars_clips,
    parse_clip_ids,
    select_mars_jobs,
)
from reactcli.render.video import FITTED_AUDIO_RATE, decode_audio, probe

SIZE = 96  # panel size: small panels keep the tests quick
REPO = Path(__file__).resolve().parents[1]


def val_samples(root: Path) -> list[MarsSample]:
    return list_recordings(root, "val").samples(False)


def write_predictions(
    root: Path,
    out: Path,
    k: int = 2,
    shift: float = 0.0,
    ids: list[str] | None = None,
    lengths: dict[int, int] | None = None,
    record: dict | None = None,
    transform=None,
) -> Path:
    """A ragged set over the val split's speaker -> listener samples: the listener's own coefficients
    (reaction j offset by ``shift * j`` in expression 0) and attributes, ``lengths`` overriding frames."""
    samples = val_samples(root)
    writer = PredictionWriter(out, k, {"edition": "2026", "split": "val", **(record or {})})
    for n, sample in enumerate(samples):
        face = load_coefficients(root / "val" / "coefficients" / f"{sample.target.id}.npy")
        emotion = load_attributes(root / "val" / "facial-attributes" / f"{sample.target.id}.npy")
        frames = (lengths or {}).get(n, len(face))
        face = np.concatenate([face, np.repeat(face[-1:], max(0, frames - len(face)), 0)])[:frames]
        emotion = np.concatenate([emotion, np.repeat(emotion[-1:], max(0, frames - len(emotion)), 0)])[:frames]
        faces = np.stack([face] * k)
        faces[:, :, 0] += shift * np.arange(k)[:, None]
        if transform is not None:
            faces = transform(faces)
        writer.add((ids or [s.id for s in samples])[n], np.stack([emotion] * k), faces.astype(np.float32))
    writer.commit()
    return out


def rewrite_wav(path: Path, rate: int, seconds: float, stereo: bool = False) -> None:
    t = np.arange(int(round(rate * seconds))) / rate
    wave = (0.2 * np.sin(2 * np.pi * 220 * t) * 32767).astype(np.int16)
    wavfile.write(path, rate, np.stack([wave, wave], 1) if stereo else wave)


@pytest.fixture(scope="module")
def mars_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2026 val split: 2 dyads x 2 sessions (4 speaker -> listener samples, 60-120 frames), mp4
    face crops; two speakers' wavs rewritten at other rates, one longer and one shorter than its video."""
    root = tmp_path_factory.mktemp("mars") / "data"
    make_mars_dataset(root, edition="2026", dyads={"train": 0, "val": 2, "test": 0}, sessions=2, frames=(60, 120))
    samples = val_samples(root)
    for sample, rate, extra, stereo in ((samples[0], 44100, 0.3, True), (samples[1], 22050, -0.2, False)):
        frames = len(load_attributes(root / "val" / "facial-attributes" / f"{sample.id}.npy"))
        rewrite_wav(root / "val" / "audio" / f"{sample.id}.wav", rate, frames / 30 + extra, stereo)
    return root


@pytest.fixture(scope="module")
def mars_predictions(mars_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_predictions(mars_root, tmp_path_factory.mktemp("pred") / "set", shift=0.5)


@pytest.fixture(scope="module")
def mars_render(mars_root: Path, mars_predictions: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("videos")
    args = ["render", "--data", str(mars_root), "--predictions", str(mars_predictions), "--out", str(out)]
    assert run_cli([*args, "--set", f"render.size={SIZE}"]) == 0
    return out


# ------------------------------------------------------------------ videos, sound, manifest
def test_mars_videos_are_30_fps_of_the_recording_length_with_the_sound_fitted(
    mars_render: Path, mars_root: Path
) -> None:
    samples = val_samples(mars_root)
    assert len(samples) == 4 == DEFAULT_CLIPS  # the default renders four (here: every sample)
    manifest = json.loads((mars_render / "render.json").read_text())["videos"]
    for n, sample in enumerate(samples):
        frames = len(load_attributes(mars_root / "val" / "facial-attributes" / f"{sample.id}.npy"))
        video = mars_render / video_name(sample.id)
        info = probe(video)
        assert (info.fps, info.frames, info.width, info.height) == (30.0, frames, 4 * SIZE, SIZE)
        assert info.audio_codec == "aac" and info.audio_rate == FITTED_AUDIO_RATE
        # the sound lasts exactly as long as the video, whatever the wav's rate and length
        seconds = len(decode_audio(video)) / FITTED_AUDIO_RATE
        assert abs(seconds - frames / 30) < 2e-3, (sample.id, seconds, frames / 30)
        assert (mars_render / plot_name(sample.id)).is_file()
        entry = manifest[video.name]
        assert (entry["sample"], entry["reaction"], entry["frames"], entry["edition"], entry["fps"]) == (
            n, 0, frames, "2026", 30)  # fmt: skip
    assert sorted(manifest) == sorted(video_name(s.id) for s in samples)
    # the wav of sample 0 runs 0.3 s past its video: it was cut, not left to run on
    assert probe(mars_render / video_name(samples[0].id)).duration < len(
        load_attributes(mars_root / "val" / "facial-attributes" / f"{samples[0].id}.npy")) / 30 + 0.1  # fmt: skip


def test_mars_panels_show_reaction_zero_and_the_listener(mars_render: Path, mars_root: Path) -> None:
    from reactcli.data.loaders import iter_video_frames

    video = mars_render / video_name(val_samples(mars_root)[0].id)
    frames = next(iter_video_frames(video, 30))
    panels = [frames[:, 20:, i * SIZE : (i + 1) * SIZE].astype(float) for i in range(4)]
    assert all(panel.mean() > 15 for panel in panels)  # speaker video, listener video, two meshes
    # prediction 0 is the listener's own face here, so the two mesh panels agree (H.264 error only)
    assert np.abs(panels[2] - panels[3]).mean() < 4


def test_rerun_skips_finished_videos_and_changed_predictions_render_again(
    mars_root: Path, mars_predictions: Path, tmp_path: Path
) -> None:
    pred = Path(shutil.copytree(mars_predictions, tmp_path / "pred"))
    out = tmp_path / "videos"
    first = val_samples(mars_root)[2].id
    args = ["render", "--data", str(mars_root), "--predictions", str(pred), "--out", str(out),
            "--set", f"render.size={SIZE}", "--clips", first, "--max-frames", "20"]  # fmt: skip
    assert run_cli(args) == 0
    video = out / video_name(first)
    stamp = video.stat().st_mtime_ns
    assert run_cli(args) == 0 and video.stat().st_mtime_ns == stamp  # finished: skipped
    assert run_cli([*args, "--sample", "1"]) == 0  # another reaction is another video
    assert video.stat().st_mtime_ns != stamp
    assert json.loads((out / "render.json").read_text())["videos"][video.name]["reaction"] == 1
    stamp = video.stat().st_mtime_ns
    write_predictions(mars_root, pred, shift=0.9)  # a new set in the same folder
    assert run_cli([*args, "--sample", "1"]) == 0
    assert video.stat().st_mtime_ns != stamp
    stamp = video.stat().st_mtime_ns
    assert run_cli([*args, "--sample", "1"]) == 0 and video.stat().st_mtime_ns == stamp


def test_normalised_sets_are_de_normalised_with_their_rule(mars_root: Path, tmp_path: Path) -> None:
    """A set recorded as ``standard`` (the organisers' statistics) renders the same mesh as the raw
    set it was made from; the same numbers read as raw would not."""
    from reactcli.data.loaders import iter_video_frames

    mean, std = packaged_face_stats()
    raw = write_predictions(mars_root, tmp_path / "raw", k=1)
    normalised = write_predictions(
        mars_root, tmp_path / "std", k=1, record={"face3dmm_normalization": "standard"},
        transform=lambda face: (face - mean) / std,
    )  # fmt: skip
    mislabelled = write_predictions(mars_root, tmp_path / "bare", k=1, transform=lambda face: (face - mean) / std)
    clip = val_samples(mars_root)[0].id
    shown = {}
    for name, pred in (("raw", raw), ("std", normalised), ("bare", mislabelled)):
        out = tmp_path / f"out_{name}"
        args = ["render", "--data", str(mars_root), "--predictions", str(pred), "--out", str(out),
                "--set", f"render.size={SIZE}", "--clips", clip, "--max-frames", "8"]  # fmt: skip
        assert run_cli(args) == 0
        shown[name] = next(iter_video_frames(out / video_name(clip), 8))[:, 20:, 3 * SIZE :].astype(float)
    assert np.abs(shown["raw"] - shown["std"]).mean() < 2 < np.abs(shown["raw"] - shown["bare"]).mean()


# ------------------------------------------------------------------ which clips
def test_clip_choice_default_one_per_session_clips_limit_and_all(mars_root: Path, mars_predictions: Path) -> None:
    clips, preds = open_mars_clips(mars_root, "val", mars_predictions)
    assert preds.layout == "ragged" and clips.ids == preds.ids
    jobs = clips.jobs()
    sessions = [j.speaker.split("/")[1] for j in jobs]
    # four sessions' worth of jobs: the first of each session first, then the rest in order
    many = [ClipJob(n, f"speaker/session{s}/C{n}", f"listener/session{s}/C{n}") for n, s in
            enumerate(["0", "0", "0", "10", "10", "2", "3", "3", "4"])]  # fmt: skip
    assert [j.index for j in default_jobs(many)] == [0, 3, 5, 6]
    assert [j.index for j in default_jobs(many[:3])] == [0, 1, 2]
    assert [j.index for j in select_mars_jobs(clips)] == [0, 1, 2, 3] and len(set(sessions)) == 2
    assert [j.index for j in select_mars_jobs(clips, limit=1)] == [0]
    assert [j.index for j in select_mars_jobs(clips, every=True)] == [0, 1, 2, 3]
    chosen = parse_clip_ids([f"{jobs[3].speaker}, {jobs[1].speaker}", jobs[3].speaker])
    assert [j.index for j in select_mars_jobs(clips, chosen)] == [1, 3]  # the split's order
    assert [j.index for j in select_mars_jobs(clips, chosen, limit=1)] == [1]
    with pytest.raises(ReactError, match="--clips listener/session0/x: is not an input of this split's samples"):
        select_mars_jobs(clips, ["listener/session0/x"])
    with pytest.raises(ReactError, match="--clips nonsense: is not '<speaker|listener>/<session>/<stem>'"):
        select_mars_jobs(clips, ["nonsense"])


def test_a_bidirectional_set_is_matched_by_its_ids(mars_root: Path, tmp_path: Path) -> None:
    """A REACT 2025-style set (speakers, then listeners as inputs) renders on the same root: the
    direction is the one whose sample ids the set carries."""
    both = list_recordings(mars_root, "val").samples(True)
    writer = PredictionWriter(tmp_path / "both", 1, {"edition": "2025"}, kinds=("face3dmm",))
    for sample in both:
        face = load_coefficients(mars_root / "val" / "coefficients" / f"{sample.target.id}.npy")
        writer.add(sample.id, face3dmm=face[None])
    writer.commit()
    clips, _ = open_mars_clips(mars_root, "val", tmp_path / "both")
    assert clips.ids == [s.id for s in both] and len(both) == 8
    listener_input = both[5].id
    out = tmp_path / "videos"
    args = ["render", "--data", str(mars_root), "--predictions", str(tmp_path / "both"), "--out", str(out),
            "--set", f"render.size={SIZE}", "--clips", listener_input, "--max-frames", "5"]  # fmt: skip
    assert run_cli(args) == 0
    assert probe(out / video_name(listener_input)).frames == 5


# ------------------------------------------------------------------ errors
def test_mars_render_errors_are_one_line(
    mars_root: Path, mars_predictions: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = val_samples(mars_root)
    shuffled = write_predictions(mars_root, tmp_path / "shuffled", ids=[s.id for s in samples][::-1])
    frames0 = len(load_attributes(mars_root / "val" / "facial-attributes" / f"{samples[0].id}.npy"))
    too_long = write_predictions(mars_root, tmp_path / "long", lengths={0: frames0 + 31})
    barely = write_predictions(mars_root, tmp_path / "barely", lengths={0: frames0 + 30})
    odd_rule = write_predictions(mars_root, tmp_path / "odd", record={"face3dmm_normalization": "minmax"})
    no_video = Path(shutil.copytree(mars_root, tmp_path / "no_video"))
    (no_video / "val" / "video-face-crop" / f"{samples[1].target.id}.mp4").unlink()
    out = tmp_path / "videos"
    base = ["render", "--predictions", str(mars_predictions), "--out", str(out), "--max-frames", "2",
            "--set", f"render.size={SIZE}"]  # fmt: skip
    data = ["--data", str(mars_root)]
    cases = [
        (["render", *data, "--predictions", str(shuffled), "--out", str(out)],
         f"sample 0 is '{samples[3].id}' but the val split's 4 samples (speaker -> listener"),
        (["render", *data, "--predictions", str(too_long), "--out", str(out)],
         f"long/face3dmm_ragged.npy: sample 0 ('{samples[0].id}') has {frames0 + 31} frames of 3DMM but its input "
         f"recording has {frames0}"),
        ([*base, "--data", str(no_video)], f"{samples[1].target.id}.mp4: face-crop video missing"),
        (["render", *data, "--predictions", str(odd_rule), "--out", str(out)],
         "'face3dmm_normalization' is 'minmax', expected one of raw, zero_center, standard"),
        ([*base, *data, "--submit-only"], "--submit-only: MARS (REACT 2025/2026) has no submission clip list"),
        ([*base, *data, "--set", "render.fps=25"], "render.fps = 25: MARS data runs at 30 fps"),
        ([*base, *data, "--clips", "speaker/session0/nope"], "--clips speaker/session0/nope: is not an input"),
        ([*base, *data, "--sample", "2"], "--sample 2: the predictions hold K = 2 reactions"),
    ]  # fmt: skip
    for args, needle in cases:
        assert run_cli(args) == 1, needle
        one_line_error(capsys, needle)
    assert not list(out.glob("*.mp4")) if out.exists() else True
    # one second apart is the tolerance: such a set renders, at its own length
    args = ["render", *data, "--predictions", str(barely), "--out", str(out), "--clips", samples[0].id,
            "--set", f"render.size={SIZE}"]  # fmt: skip
    assert run_cli(args) == 0
    assert probe(out / video_name(samples[0].id)).frames == frames0 + 30


def test_mars_edition_comes_from_the_set_when_the_root_cannot_tell(
    mars_root: Path, mars_predictions: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = Path(shutil.copytree(mars_root, tmp_path / "bare"))
    for folder in ("eeg_processed", "personality"):
        shutil.rmtree(bare / "val" / folder, ignore_errors=True)
    (bare / "val" / "eeg_processed.tar.gz").unlink(missing_ok=True)
    silent = Path(shutil.copytree(mars_predictions, tmp_path / "silent"))  # a set that names no edition
    record = json.loads((silent / "generation.json").read_text())
    record.pop("edition")
    (silent / "generation.json").write_text(json.dumps(record))
    out = tmp_path / "videos"
    base = ["render", "--data", str(bare), "--out", str(out), "--limit", "1", "--max-frames", "2",
            "--set", f"render.size={SIZE}"]  # fmt: skip
    assert run_cli([*base, "--predictions", str(silent)]) == 1
    one_line_error(capsys, "pass --edition 2025 or --edition 2026")
    assert run_cli([*base, "--predictions", str(mars_predictions)]) == 0  # the set says 2026
    assert run_cli([*base, "--predictions", str(silent), "--edition", "2025"]) == 0
    assert json.loads((out / "render.json").read_text())["videos"][video_name(val_samples(bare)[0].id)][
        "edition"] == "2025"  # fmt: skip


# ------------------------------------------------------------------ a long recording
LONG = 3000
BEEP_AT = 80.0  # seconds


@pytest.mark.slow  # renders a 3000-frame clip and a 300-frame preview of it, each in its own process
def test_a_long_clip_renders_in_flat_memory_with_its_sound_in_place(tmp_path: Path) -> None:
    root = tmp_path / "data"
    make_mars_dataset(root, edition="2026", dyads={"train": 0, "val": 1, "test": 0}, sessions=1, frames=(LONG, LONG))
    (sample,) = val_samples(root)
    rate = 22050  # silence with one burst at exactly 80 s; the wav runs 0.5 s past the video
    wave = np.zeros(int(rate * (LONG / 30 + 0.5)), np.int16)
    start = int(BEEP_AT * rate)
    burst = np.sin(np.arange(rate // 20) * 2 * np.pi * 1000 / rate) * 20000
    wave[start : start + rate // 20] = burst.astype(np.int16)
    wavfile.write(root / "val" / "audio" / f"{sample.id}.wav", rate, wave)
    pred = tmp_path / "pred"
    face = load_coefficients(root / "val" / "coefficients" / f"{sample.target.id}.npy")
    writer = PredictionWriter(pred, 1, {"edition": "2026"}, kinds=("face3dmm",))
    writer.add(sample.id, face3dmm=face[None])
    writer.commit()

    def peak_rss_mb(frames: int, out: Path) -> float:
        code = (
            "import resource\nfrom reactcli.cli import main\n"
            f"args = ['render', '--data', {str(root)!r}, '--predictions', {str(pred)!r}, '--out', {str(out)!r},\n"
            f"        '--set', 'render.size=64', '--max-frames', '{frames}']\n"
            "try:\n    main(args)\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        line = next(line for line in proc.stdout.splitlines() if line.startswith("PEAK_RSS_KB"))
        return int(line.split()[1]) / 1024

    short = peak_rss_mb(LONG // 10, tmp_path / "preview")
    long = peak_rss_mb(LONG, tmp_path / "whole")
    whole_clip_mb = LONG * 64 * 4 * 64 * 3 / 2**20  # the composed frames of the clip: ~140 MB
    assert long - short < 0.35 * whole_clip_mb, (short, long)  # memory does not grow with the clip

    video = tmp_path / "whole" / video_name(sample.id)
    info = probe(video)
    assert (info.fps, info.frames) == (30.0, LONG)
    sound = decode_audio(video)
    assert abs(len(sound) / FITTED_AUDIO_RATE - LONG / 30) < 2e-3  # cut to the video, 0.5 s earlier
    onset = int(np.argmax(np.abs(sound) > 0.2)) / FITTED_AUDIO_RATE
    assert abs(onset - BEEP_AT) < 1 / 30, onset  # 80 s into a 100 s clip, within a frame


def test_mars_clips_reads_by_recording_id(mars_root: Path, mars_predictions: Path) -> None:
    clips, preds = open_mars_clips(mars_root, "val", mars_predictions)
    assert isinstance(clips, MarsClips) and clips.has_video and clips.fps == 30
    sample = clips.samples[0]
    assert clips.video(sample.target.id) == mars_root / "val" / "video-face-crop" / f"{sample.target.id}.mp4"
    assert clips.face3dmm(sample.target.id).shape == (clips.input_frames(0), 58)
    assert clips.emotion(sample.target.id).shape[1] == 25
    assert preds.face_lengths == [clips.input_frames(n) for n in range(len(clips.samples))]
