"""``react package-submission``: the archive, its manifest, every validation error, and --check."""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from scipy.io import wavfile

from reactcli import __version__
from reactcli.data.layout import SUBMISSION_CLIPS
from reactcli.errors import ReactError
from reactcli.freshness import sha256_file
from reactcli.render.clips import record_video
from reactcli.render.video import Mp4Writer
from reactcli.submission import check_archive, package_run, submission_video

N = 4




def write_video(path: Path, wav: Path | None, fps: int = 25) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = Mp4Writer(path, 32, 32, fps=fps, audio=wav)
    writer.write(np.random.default_rng(0).integers(0, 255, (6, 32, 32, 3), dtype=np.uint8))
    writer.close()


@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete run folder: predictions, four videos + plots, metrics, baselines, checkpoints, config."""
    root = tmp_path_factory.mktemp("run")
    run_dir = root / "demo"
    rng = np.random.default_rng(0)
    pred = run_dir / "predictions"
    pred.mkdir(parents=True)
    np.save(pred / "emotion.npy", rng.random((N, 10, 750, 25), dtype=np.float32))
    np.save(pred / "face3dmm.npy", rng.random((N, 10, 751, 58), dtype=np.float32))
    (pred / "generation.json").write_text(json.dumps({"split": "val", "N": N, "K": 10, "seed": 0}))
    wav = root / "a.wav"
    wavfile.write(wav, 44100, (rng.normal(0, 0.1, 11025) * 3000).astype(np.int16))
    made_from = {"sources": {"record_sha256": sha256_file(pred / "generation.json")}}
    for clip in SUBMISSION_CLIPS:
        write_video(run_dir / submission_video(clip), wav)
        record_video(run_dir / "videos", run_dir / submission_video(clip), made_from)  # as react render does
        (run_dir / submission_video(clip)).with_name(Path(submission_video(clip)).stem + "_emotion.png").write_bytes(
            b"\x89PNG fake plot"
        )
    metrics = {"FRC": 0.1, "FRD": 90.0, "FRDiv": 0.2, "N": N, "K": 10, "T": 750, "split": "val"}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    (run_dir / "baselines.json").write_text(json.dumps({"GT": {"FRC": 1.0}}))
    (run_dir / "tokenizer.ckpt").write_bytes(rng.bytes(1000))
    (run_dir / "predictor.ckpt").write_bytes(rng.bytes(2000))
    (run_dir / "tiny.toml").write_text("[tokenizer]\ndim = 32\n")
    (run_dir / "notes.txt").write_text("not part of a submission")
    return run_dir


@pytest.fixture
def run_copy(good_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(good_run, tmp_path / "run"))


@pytest.fixture(scope="module")
def good_zip(good_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zip") / "submission.zip"
    assert run_cli(["package-submission", "--run", str(good_run), "--out", str(out)]) == 0
    return out


def test_archive_holds_everything_with_a_manifest(good_zip: Path, good_run: Path) -> None:
    with zipfile.ZipFile(good_zip) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
        readme = zf.read("README.md").decode()
    expected = {
        "predictions/emotion.npy", "predictions/face3dmm.npy", "predictions/generation.json", "metrics.json",
        "baselines.json", "tokenizer.ckpt", "predictor.ckpt", "tiny.toml", "README.md", "manifest.json",
        "videos/render.json",
        *(submission_video(c) for c in SUBMISSION_CLIPS),
        *(submission_video(c)[:-4] + "_emotion.png" for c in SUBMISSION_CLIPS),
    }  # fmt: skip
    assert names == expected  # notes.txt is not part of a submission
    assert manifest["model_type"] == "online"
    assert (manifest["K"], manifest["T"], manifest["N"], manifest["split"]) == (10, 750, N, "val")
    assert manifest["toolkit_version"] == __version__
    files = {e["path"]: e for e in manifest["files"]}
    assert set(files) == names - {"manifest.json"}
    assert files["predictions/emotion.npy"]["shape"] == [N, 10, 750, 25]
    assert files["predictions/face3dmm.npy"]["shape"] == [N, 10, 751, 58]
    import hashlib

    assert files["metrics.json"]["sha256"] == hashlib.sha256((good_run / "metrics.json").read_bytes()).hexdigest()
    assert "FRD: 90.0" in readme and "online" in readme and "--check" in readme
    # the README names the run files the zip holds, and no pattern of files it may not (issue 26 item 13)
    assert "- `predictor.ckpt`, `tiny.toml`, `tokenizer.ckpt`: the run's checkpoints and configs" in readme
    assert "*.toml" not in readme and "*.ckpt" not in readme


def test_check_accepts_a_good_archive(good_zip: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["package-submission", "--check", str(good_zip)]) == 0
    assert "OK" in capsys.readouterr().out
    assert check_archive(good_zip)[0] == []


def test_packaging_is_reproducible(good_run: Path, good_zip: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.zip"
    package_run(good_run, again)
    assert again.read_bytes() == good_zip.read_bytes()


def test_default_output_is_inside_the_run(run_copy: Path) -> None:
    assert run_cli(["package-submission", "--run", str(run_copy)]) == 0
    assert (run_copy / "submission.zip").is_file()


def _save(rel: str, array: np.ndarray) -> Callable[[Path], None]:
    return lambda d: np.save(d / rel, array)


def _video(clip: str, fps: int = 25, audio: bool = True) -> Callable[[Path], None]:
    def change(d: Path) -> None:
        wav = d / "x.wav"
        wavfile.write(wav, 44100, np.zeros(11025, np.int16))
        target = d / submission_video(clip)
        target.unlink()
        write_video(target, wav if audio else None, fps=fps)
        wav.unlink()

    return change


def _nan(rel: str, shape: tuple[int, ...]) -> Callable[[Path], None]:
    array = np.zeros(shape, np.float32)
    array[1, 2, 3, 4] = np.nan
    return _save(rel, array)


EMO, FACE = "predictions/emotion.npy", "predictions/face3dmm.npy"
CASES = {
    "missing emotion": (lambda d: (d / EMO).unlink(), "predictions/emotion.npy: missing"),
    "missing face": (lambda d: (d / FACE).unlink(), "predictions/face3dmm.npy: missing"),
    "K = 5": (_save(EMO, np.zeros((N, 5, 750, 25), np.float32)), "K = 5 reactions per speaker"),
    "T = 700": (_save(EMO, np.zeros((N, 10, 700, 25), np.float32)), "T = 700 frames, expected 750"),
    "face T": (_save(FACE, np.zeros((N, 10, 700, 58), np.float32)), "T = 700 frames, expected 751 or 750"),
    "emotion dim": (_save(EMO, np.zeros((N, 10, 750, 24), np.float32)), "(4, 10, 750, 24), expected (N, K, T, 25)"),
    "face dim": (_save(FACE, np.zeros((N, 10, 751, 52), np.float32)), "(4, 10, 751, 52), expected (N, K, T, 58)"),
    "3-d": (_save(EMO, np.zeros((10, 750, 25), np.float32)), "shape (10, 750, 25), expected (N, K, T, 25)"),
    "nan emotion": (_nan(EMO, (N, 10, 750, 25)), "predictions/emotion.npy: contains NaN/inf"),
    "nan face": (_nan(FACE, (N, 10, 751, 58)), "predictions/face3dmm.npy: contains NaN/inf"),
    "int dtype": (_save(EMO, np.zeros((N, 10, 750, 25), np.int32)), "dtype <i4, expected floating point"),
    "odd N": (
        lambda d: [
            np.save(d / r, np.zeros((3, 10, t, k), np.float32)) for r, t, k in ((EMO, 750, 25), (FACE, 751, 58))
        ],
        "N = 3 samples, expected an even number",
    ),
    "N mismatch": (
        _save(FACE, np.zeros((6, 10, 751, 58), np.float32)), "emotion.npy: has (N, K) = (4, 10) but face3dmm.npy has (6"
    ),
    "absurd values": (_save(EMO, np.full((N, 10, 750, 25), 1e30, np.float32)), "outside the sane range |x| <= 1000"),
    "pickled npy": (
        lambda d: np.save(d / EMO, np.array([{"a": 1}], dtype=object), allow_pickle=True),
        "holds Python objects",
    ),
    "truncated npy": (
        lambda d: (d / EMO).write_bytes((d / EMO).read_bytes()[:5000]),
        "truncated",
    ),
    "missing metrics": (lambda d: (d / "metrics.json").unlink(), "metrics.json: missing"),
    "bad metrics": (lambda d: (d / "metrics.json").write_text("{FRC: "), "metrics.json: not valid JSON"),
    "metrics list": (lambda d: (d / "metrics.json").write_text("[1, 2]"), "metrics.json: expected a JSON object"),
    "metrics N": (
        lambda d: (d / "metrics.json").write_text(json.dumps({"N": 8, "split": "val"})),
        "metrics.json: N = 8 but the predictions have N = 4",
    ),
    "split mismatch": (
        lambda d: (d / "metrics.json").write_text(json.dumps({"N": N, "split": "test"})),
        "split disagrees",
    ),
    "bad baselines": (lambda d: (d / "baselines.json").write_text("nope"), "baselines.json: not valid JSON"),
    "missing video": (
        lambda d: (d / submission_video(SUBMISSION_CLIPS[2])).unlink(),
        f"{submission_video(SUBMISSION_CLIPS[2])}: missing",
    ),
    "silent video": (_video(SUBMISSION_CLIPS[1], audio=False), "no audio stream"),
    "30 fps video": (_video(SUBMISSION_CLIPS[3], fps=30), "30 fps, expected 25"),
    "broken video": (
        lambda d: (d / submission_video(SUBMISSION_CLIPS[0])).write_bytes(b"not a video"),
        "no video stream",
    ),
    "no render record": (
        lambda d: (d / "videos" / "render.json").unlink(),
        f"{submission_video(SUBMISSION_CLIPS[0])}: not in render.json (an unfinished or older render",
    ),
    "video changed": (_video(SUBMISSION_CLIPS[2]), "differs from the video render.json records"),
    "other predictions": (
        lambda d: (d / "predictions" / "generation.json").write_text(json.dumps({"split": "val", "seed": 5})),
        "rendered from other predictions than",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_validation_error_is_named_and_leaves_no_zip(
    run_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    change, message = CASES[case]
    change(run_copy)
    out = tmp_path / "out" / "submission.zip"
    assert run_cli(["package-submission", "--run", str(run_copy), "--out", str(out)]) == 1
    err = capsys.readouterr().err.replace("\n", " ")
    assert message in err
    assert not out.exists()
    assert not list(out.parent.glob("*")) if out.parent.exists() else True  # no temp file either


def test_all_problems_are_listed_at_once(run_copy: Path, tmp_path: Path) -> None:
    (run_copy / "metrics.json").unlink()
    (run_copy / submission_video(SUBMISSION_CLIPS[0])).unlink()
    with pytest.raises(ReactError) as err:
        package_run(run_copy, tmp_path / "s.zip")
    assert "2 problem(s)" in str(err.value)


def test_missing_run_folder_and_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["package-submission", "--run", str(tmp_path / "nope")]) == 1
    assert "run folder not found" in capsys.readouterr().err
    assert run_cli(["package-submission"]) == 1
    assert "give --run DIR" in capsys.readouterr().err
    assert run_cli(["package-submission", "--check", "a.zip", "--run", str(tmp_path)]) == 1
    assert "--check takes an archive on its own" in capsys.readouterr().err


def _rewrite(src: Path, dst: Path, edit: Callable[[str, bytes], bytes | None], add: dict[str, bytes] | None = None):
    """Copy a zip member by member, letting ``edit`` change (or drop, with None) a member."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = edit(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info, data)
        for name, data in (add or {}).items():
            zout.writestr(name, data)
    return dst


def _swap_member(member: str, data: bytes) -> Callable[[str, bytes], bytes]:
    """An ``edit`` for :func:`_rewrite` that replaces ``member`` by ``data`` and updates the manifest
    to match (its sha256 and size), so only the archive's other rules can catch the swap."""
    import hashlib

    def edit(name: str, old: bytes) -> bytes:
        if name == member:
            return data
        if name == "manifest.json":
            manifest = json.loads(old)
            for entry in manifest["files"]:
                if entry["path"] == member:
                    entry.update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
            return json.dumps(manifest).encode()
        return old

    return edit


def _flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


@pytest.mark.parametrize(
    ("edit", "add", "message"),
    [
        (lambda n, d: _flip_last_byte(d) if n == EMO else d, None, "predictions/emotion.npy: sha256"),
        (lambda n, d: d + b" " if n == "metrics.json" else d, None, "metrics.json: sha256"),
        (lambda n, d: None if n == "tokenizer.ckpt" else d, None, "tokenizer.ckpt: listed in the manifest but missing"),
        (lambda n, d: d, {"extra.txt": b"hi"}, "extra.txt: in the archive but not in the manifest"),
        (lambda n, d: None if n == "manifest.json" else d, None, "manifest.json missing"),
        (lambda n, d: b"{" if n == "manifest.json" else d, None, "manifest.json: unreadable"),
        (
            lambda n, d: (
                d.replace(b'"model_type": "online"', b'"model_type": "offline"') if n == "manifest.json" else d
            ),
            None,
            "model_type = 'offline', expected 'online'",
        ),
    ],
)
def test_check_reports_a_tampered_archive(
    good_zip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], edit, add, message: str
) -> None:
    bad = _rewrite(good_zip, tmp_path / "bad.zip", edit, add)
    assert run_cli(["package-submission", "--check", str(bad)]) == 1
    captured = capsys.readouterr()
    assert message in (captured.out + captured.err).replace("\n", " ")


def test_check_recomputes_shapes_and_nan_of_arrays(good_zip: Path, tmp_path: Path) -> None:
    # an array swapped for a NaN one *and* a manifest updated to match still fails the rules
    import io

    buf = io.BytesIO()
    bad_array = np.zeros((N, 10, 750, 25), np.float32)
    bad_array[0, 0, 0, 0] = np.inf
    np.save(buf, bad_array)
    problems, _ = check_archive(_rewrite(good_zip, tmp_path / "nan.zip", _swap_member(EMO, buf.getvalue())))
    assert problems == ["predictions/emotion.npy: contains NaN/inf values"]


def test_check_holds_videos_to_the_render_record(good_zip: Path, tmp_path: Path) -> None:
    """A submission video swapped in the archive (manifest updated to match) is not the one render.json records."""
    video = submission_video(SUBMISSION_CLIPS[1])
    with zipfile.ZipFile(good_zip) as zf:
        other = zf.read(video) + b"\0"  # another file (the fixture's four videos are identical)
    problems, _ = check_archive(_rewrite(good_zip, tmp_path / "swapped.zip", _swap_member(video, other)))
    assert problems == [f"{video}: not the video videos/render.json records"]


def test_check_rejects_non_archives(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.zip").write_text("not a zip")
    assert run_cli(["package-submission", "--check", str(tmp_path / "x.zip")]) == 1
    assert "not a zip archive" in capsys.readouterr().err
    assert run_cli(["package-submission", "--check", str(tmp_path / "absent.zip")]) == 1
    assert "archive not found" in capsys.readouterr().err
