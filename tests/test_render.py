"""``react render``: mp4s at 25 fps with the speaker's audio, panels, plots, clip choice, reruns, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image

from reactcli.data.layout import SUBMISSION_CLIPS, DatasetLayout, mirrored, read_pairs
from reactcli.data.loaders import iter_video_frames, load_emotion, load_face3dmm
from reactcli.errors import ReactError
from reactcli.render.clips import plot_name, video_name
from reactcli.render.video import Mp4Writer, ffmpeg_exe, probe

FRAMES = 20




def make_predictions(root: Path, split: str, out: Path, k: int = 3, emotion: bool = True) -> Path:
    """Ground-truth-derived predictions in the mirrored order: (N, K, 751, 58) and (N, K, 750, 25)."""
    layout = DatasetLayout(root)
    samples = mirrored(read_pairs(root, split))
    rng = np.random.default_rng(0)
    face = np.stack([load_face3dmm(layout.face3dmm(split, s.listener)) for s in samples])
    face = face[:, None] + rng.normal(0, 0.05, (len(samples), k, 751, 58))
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "face3dmm.npy", face.astype(np.float32))
    if emotion:
        emo = np.stack([load_emotion(layout.emotion(split, s.listener)) for s in samples])
        np.save(out / "emotion.npy", np.repeat(emo[:, None], k, 1).astype(np.float32))
    return out


@pytest.fixture(scope="module")
def val_predictions(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_predictions(synth_root, "val", tmp_path_factory.mktemp("pred") / "val")


@pytest.fixture(scope="module")
def submit_render(synth_root: Path, val_predictions: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("videos")
    args = ["render", "--data", str(synth_root), "--predictions", str(val_predictions), "--out", str(out)]
    assert run_cli([*args, "--submit-only", "--max-frames", str(FRAMES), "--seed", "3"]) == 0
    return out


def test_submit_only_renders_the_four_clips_at_25_fps_with_audio(submit_render: Path) -> None:
    names = sorted(p.name for p in submit_render.glob("*.mp4"))
    assert names == sorted(video_name(c) for c in SUBMISSION_CLIPS)
    for clip in SUBMISSION_CLIPS:
        info = probe(submit_render / video_name(clip))
        assert info.fps == 25.0
        assert info.frames == FRAMES
        assert info.audio_codec == "aac" and info.audio_rate == 44100
        assert (info.width, info.height) == (4 * 224, 224)  # speaker | listener | GT mesh | generated
        assert info.video_codec == "h264"
        png = submit_render / plot_name(clip)
        assert Image.open(png).size[0] > 400
    assert not list(submit_render.glob(".*tmp*"))  # no temp files left behind


def test_panels_show_videos_and_meshes(submit_render: Path) -> None:
    frames = next(iter_video_frames(submit_render / video_name(SUBMISSION_CLIPS[0]), FRAMES))
    assert frames.shape == (FRAMES, 224, 896, 3)
    panels = [frames[:, 30:, i * 224 : (i + 1) * 224].astype(float) for i in range(4)]
    for panel in panels:  # every panel has content below the label
        assert panel.mean() > 15
    # the mesh panels have a black background (corners) and a face in the middle
    for panel in panels[2:]:
        assert panel[:, -10:, :10].mean() < 8 and panel[:, 80:110, 100:124].mean() > 60
    # labels: the top-left corner of each panel holds light text on a dark box
    assert (frames[:, :12, :60] > 200).any()


def test_rerun_skips_finished_videos(submit_render: Path, synth_root: Path, val_predictions: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in submit_render.glob("*.mp4")}
    args = ["render", "--data", str(synth_root), "--predictions", str(val_predictions), "--out", str(submit_render)]
    assert run_cli([*args, "--submit-only", "--max-frames", str(FRAMES), "--seed", "3"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in submit_render.glob("*.mp4")} == before
    # a different frame count is not "finished": that clip is rendered again
    assert run_cli([*args, "--submit-only", "--max-frames", "10", "--limit", "1"]) == 0
    first = submit_render / video_name(SUBMISSION_CLIPS[0])
    assert first.stat().st_mtime_ns != before[first.name]
    assert probe(first).frames == 10
    # predictions newer than the video (a new model's output) are not hidden behind the old video
    import os

    stamp = first.stat().st_mtime_ns
    os.utime(val_predictions / "face3dmm.npy", ns=(stamp + 10**9, stamp + 10**9))
    assert run_cli([*args, "--submit-only", "--max-frames", "10", "--limit", "1"]) == 0
    assert first.stat().st_mtime_ns != stamp
    # ... nor are OLDER ones from elsewhere (the rule is identity, not time), and a video changed by
    # hand is not the finished one render.json recorded
    stamp = first.stat().st_mtime_ns
    os.utime(val_predictions / "face3dmm.npy", ns=(stamp - 10**10, stamp - 10**10))
    assert run_cli([*args, "--submit-only", "--max-frames", "10", "--limit", "1"]) == 0
    assert first.stat().st_mtime_ns != stamp
    stamp = first.stat().st_mtime_ns
    first.write_bytes(first.read_bytes()[:-10])
    assert run_cli([*args, "--submit-only", "--max-frames", "10", "--limit", "1"]) == 0
    assert first.stat().st_mtime_ns != stamp and probe(first).frames == 10


def test_render_json_records_finished_videos_and_another_seed_renders_again(
    submit_render: Path, synth_root: Path, val_predictions: Path, tmp_path: Path
) -> None:
    """render.json lists each finished video with the reaction it shows; a rerun with another --seed
    draws other reactions, and exactly the videos whose reaction changed are rendered again."""
    import json
    import shutil

    from reactcli.render.clips import RENDER_MANIFEST, choose_reaction, recorded_video_problem

    out = Path(shutil.copytree(submit_render, tmp_path / "videos"))
    args = ["render", "--data", str(synth_root), "--predictions", str(val_predictions), "--out", str(out)]
    assert run_cli([*args, "--submit-only", "--max-frames", str(FRAMES), "--seed", "3"]) == 0  # as made (other
    manifest = json.loads((out / RENDER_MANIFEST).read_text())["videos"]  # tests render again into the fixture)
    assert sorted(manifest) == sorted(video_name(c) for c in SUBMISSION_CLIPS)
    index = {s.speaker: n for n, s in enumerate(mirrored(read_pairs(synth_root, "val")))}
    for clip in SUBMISSION_CLIPS:
        entry = manifest[video_name(clip)]
        assert entry["reaction"] == choose_reaction(3, None, 3, index[clip]) and entry["frames"] == FRAMES
        assert recorded_video_problem(out, video_name(clip)) is None
    seed = next(s for s in range(4, 40) if any(
        choose_reaction(3, None, s, index[c]) != choose_reaction(3, None, 3, index[c]) for c in SUBMISSION_CLIPS))
    changed = {video_name(c) for c in SUBMISSION_CLIPS
               if choose_reaction(3, None, seed, index[c]) != choose_reaction(3, None, 3, index[c])}  # fmt: skip
    before = {p.name: p.read_bytes() for p in out.glob("*.mp4")}
    assert run_cli([*args, "--submit-only", "--max-frames", str(FRAMES), "--seed", str(seed)]) == 0
    rendered = {p.name for p in out.glob("*.mp4") if p.read_bytes() != before[p.name]}
    assert rendered == changed and changed


def test_missing_submission_clips_fall_back_to_the_first_four(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pred = make_predictions(synth_root, "test", tmp_path / "pred", k=2, emotion=False)
    out = tmp_path / "videos"
    args = ["render", "--data", str(synth_root), "--split", "test", "--predictions", str(pred), "--out", str(out)]
    assert run_cli([*args, "--submit-only", "--max-frames", "5", "--sample", "1"]) == 0
    text = capsys.readouterr().out
    assert "submission clips not in test" in text and SUBMISSION_CLIPS[0] in text
    speakers = [s.speaker for s in mirrored(read_pairs(synth_root, "test"))][:4]
    assert sorted(p.name for p in out.glob("*.mp4")) == sorted(video_name(s) for s in speakers)
    assert not list(out.glob("*.png"))  # no emotion.npy -> no plots, and the table says so
    assert "no emotion.npy" in text


def test_video_writer_and_probe_round_trip(tmp_path: Path) -> None:
    from scipy.io import wavfile

    wav = tmp_path / "a.wav"
    wavfile.write(wav, 44100, (np.sin(np.arange(44100) / 10) * 3000).astype(np.int16))
    writer = Mp4Writer(tmp_path / "v.mp4", 64, 32, fps=25, audio=wav)
    writer.write(np.full((12, 32, 64, 3), 128, np.uint8))
    writer.close()
    info = probe(tmp_path / "v.mp4")
    assert (info.width, info.height, info.fps, info.frames, info.audio_codec) == (64, 32, 25.0, 12, "aac")
    silent = Mp4Writer(tmp_path / "s.mp4", 64, 32, fps=30)
    silent.write(np.zeros((3, 32, 64, 3), np.uint8))
    silent.close()
    info = probe(tmp_path / "s.mp4")
    assert info.audio_codec is None and info.fps == 30.0
    assert Path(ffmpeg_exe()).is_file()
    (tmp_path / "bad.wav").write_text("not audio")
    broken = Mp4Writer(tmp_path / "b.mp4", 64, 32, audio=tmp_path / "bad.wav")
    with pytest.raises(ReactError, match="ffmpeg stopped while writing the video.*bad.wav a readable wav"):
        for _ in range(50):  # ffmpeg may take a moment to give up on the audio input
            broken.write(np.zeros((25, 32, 64, 3), np.uint8))
    broken.close()
    with pytest.raises(ReactError, match="no video stream"):
        probe(tmp_path / "bad.wav")


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "pred: prediction folder has no emotion.npy or face3dmm.npy"),
        ("wrong_n", "face3dmm.npy: predictions hold 6 samples, expected N = 12 (the val split: 2 x 6 rows"),
        ("wrong_dim", "face3dmm.npy: predictions have shape (12, 2, 751, 50), expected (N, K, T, 58)"),
        ("nan", "contains NaN/inf values"),
        ("sample", "--sample 5: the predictions hold K = 2 reactions"),
        ("emotion_k", "emotion.npy: has (N, K) = (12, 3) but face3dmm.npy has (12, 2)"),
        ("emotion_only", "react render draws the generated 3DMM, but this prediction set has no face3dmm.npy"),
        ("huge", "face3dmm.npy: sample 0 reaction 1 has |x| up to 1e+30"),
    ],
)
def test_render_errors(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: str, message: str
) -> None:
    pred = tmp_path / "pred"
    pred.mkdir()
    face = np.tile(load_face3dmm(DatasetLayout(synth_root).face3dmm("val", SUBMISSION_CLIPS[0])), (12, 2, 1, 1))
    extra: list[str] = ["--submit-only"]
    if setup == "wrong_n":
        face = face[:6]
    elif setup == "wrong_dim":
        face = face[..., :50]
    elif setup == "nan":
        face[0, 1, 3, 7] = np.nan
        extra += ["--sample", "1"]
    elif setup == "sample":
        extra += ["--sample", "5"]
    elif setup == "emotion_k":
        np.save(pred / "emotion.npy", np.zeros((12, 3, 750, 25), np.float32))
    elif setup == "emotion_only":
        np.save(pred / "emotion.npy", np.zeros((12, 2, 750, 25), np.float32))
    elif setup == "huge":
        face[0, 1, 3, 7] = 1e30
        extra += ["--sample", "1"]
    if setup not in ("missing", "emotion_only"):
        np.save(pred / "face3dmm.npy", face.astype(np.float32))
    out = tmp_path / "videos"
    args = ["render", "--data", str(synth_root), "--predictions", str(pred), "--out", str(out), "--max-frames", "3"]
    assert run_cli(args + extra) == 1
    assert message in capsys.readouterr().err.replace("\n", " ")
    assert not list(out.glob("*.mp4")) if out.exists() else True


def test_reaction_choice_is_seeded() -> None:
    from reactcli.render.clips import choose_reaction

    def picks(seed: int) -> list[int]:
        return [choose_reaction(10, None, seed, n) for n in range(12)]

    assert picks(0) == picks(0)
    assert picks(0) != picks(1)
    assert len(set(picks(0))) > 3
    assert choose_reaction(10, 7, 0, 3) == 7
    with pytest.raises(ReactError, match="--sample 10: the predictions hold K = 10"):
        choose_reaction(10, 10, 0, 0)


def test_render_with_a_faceverse_file_and_reference(synth_root: Path, val_predictions: Path, tmp_path: Path) -> None:
    from reactcli.render.faceverse import synthetic_faceverse

    model = tmp_path / "faceverse_simple_v2.npy"
    np.save(model, np.array(synthetic_faceverse(24), dtype=object), allow_pickle=True)
    np.save(tmp_path / "reference_full.npy", np.zeros((1, 1, 486), np.float32))
    out = tmp_path / "videos"
    args = ["render", "--data", str(synth_root), "--predictions", str(val_predictions), "--out", str(out)]
    extra = ["--face-model", str(model), "--reference", str(tmp_path / "reference_full.npy")]
    assert run_cli([*args, *extra, "--limit", "1", "--max-frames", "4", "--sample", "0"]) == 0
    frames = next(iter_video_frames(out / video_name(mirrored(read_pairs(synth_root, "val"))[0].speaker), 4))
    mesh = frames[:, 40:, 3 * 224 :].astype(int)
    grey = mesh[(mesh.sum(-1) > 60)]
    assert len(grey) > 2000  # the FaceVerse mesh is drawn in the official flat grey
    assert np.abs(grey[:, 0] - grey[:, 2]).max() <= 12


def test_pytorch3d_backend_is_optional(synth_root: Path, val_predictions: Path, tmp_path: Path, capsys) -> None:
    from reactcli.render.p3d import pytorch3d_available

    if pytorch3d_available():
        pytest.skip("pytorch3d is installed here")
    args = ["render", "--data", str(synth_root), "--predictions", str(val_predictions), "--out", str(tmp_path)]
    assert run_cli([*args, "--backend", "pytorch3d", "--limit", "1"]) == 1
    assert "pytorch3d is not importable" in capsys.readouterr().err
    assert run_cli([*args, "--backend", "opengl", "--limit", "1"]) == 1
    assert "render.backend" in capsys.readouterr().err


def test_frame_folders_are_read_in_numeric_order_resized_and_padded(tmp_path: Path) -> None:
    from reactcli.render.clips import _ChunkReader

    folder = tmp_path / "clip"
    folder.mkdir()
    for i in (1, 2, 10):  # lexical order would put 10 before 2
        Image.fromarray(np.full((256, 256, 3), i * 20, np.uint8)).save(folder / f"{i}.png")
    chunks = list(iter_video_frames(folder, 2))
    assert [c.shape[0] for c in chunks] == [2, 1]
    assert [int(c[0, 0, 0, 0]) for c in chunks] == [20, 200]
    reader = _ChunkReader(folder, 224, 2)
    first, rest = reader.take(2), reader.take(4)
    assert first.shape == (2, 224, 224, 3) and rest.shape == (4, 224, 224, 3)
    assert [int(f[5, 5, 0]) for f in rest] == [200, 200, 200, 200]  # ran out: the last frame repeats
    assert (_ChunkReader(None, 224, 2).take(3) == 0).all()  # no video: black
