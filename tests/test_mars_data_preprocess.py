"""``react preprocess`` on a MARS root: it passes on a release written by another generator, lists
the junk and the missing pair, handles length differences as the official loaders do, caches what
training needs, resumes, and names every bad file in one line."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
from _mars_fixtures import MarsFixture, write_mars_val
from conftest import run_cli

from reactcli.config import load_config
from reactcli.data.cache import FeatureCache, load_mars_index
from reactcli.data.mars import MarsSample, Recording
from reactcli.errors import ReactError


@pytest.fixture(scope="module")
def preprocessed(tmp_path_factory: pytest.TempPathFactory) -> tuple[MarsFixture, str]:
    """The independent fixture after one ``react preprocess --splits val``, and what it printed."""
    import contextlib
    import io

    fx = write_mars_val(tmp_path_factory.mktemp("mars"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run_cli(["preprocess", "--data", str(fx.root), "--splits", "val"])
    assert code == 0, out.getvalue()
    return fx, out.getvalue()


def _row(out: str, split: str) -> list[str]:
    """The summary table's cells for ``split``: recordings, samples, cached now, already cached, ..."""
    line = next(line for line in out.splitlines() if line.startswith(f"│ {split} "))
    return [cell.strip() for cell in line.strip("│").split("│")][1:]


def _cache(root: Path) -> FeatureCache:
    return FeatureCache(root, load_config(environ={}))


def test_passes_and_lists_junk_missing_pair_and_lengths(preprocessed: tuple[MarsFixture, str]) -> None:
    fx, out = preprocessed
    assert "MARS, REACT 2026, 30 fps" in out  # detected from eeg_processed/personality
    for path in fx.junk:
        assert f"val  {path}: " in out, path
    lonely = fx.root / "val" / "facial-attributes" / f"{fx.lonely_speaker}.npy"
    assert f"{lonely}: its listener recording listener/" in out and "not a sample" in out
    short = fx.root / "val" / "facial-attributes" / f"{fx.short_listener}.npy"
    speaker_frames = fx.lengths[Recording.from_id(fx.short_listener).opposite().id]
    assert f"{short}: {speaker_frames - 2} frames, its speaker has {speaker_frames}: training uses the shorter" in out
    longer = fx.root / "val" / "audio-features" / f"{fx.longer_features}.npy"
    assert f"{longer}: {fx.lengths[fx.longer_features] + 1} frames, facial-attributes has" in out
    assert f"{fx.eeg_missing}.csv: no EEG rows" in out


def test_index_lengths_rules_and_cache(preprocessed: tuple[MarsFixture, str]) -> None:
    fx, _ = preprocessed
    cache = _cache(fx.root)
    index = load_mars_index(cache, "val")
    assert (
        index.edition == "2026"
        and index.fps == 30
        and list(index.entries) == sorted(index.entries, key=lambda rid: Recording.from_id(rid).sort_key)
    )
    assert set(index.entries) == set(fx.lengths) and index.unpaired == [fx.lonely_speaker]
    assert {Path(j.path) for j in index.junk} == set(fx.junk)
    assert len(index.samples(bidirectional=False)) == 9 and len(index.samples(bidirectional=True)) == 18
    listener = Recording.from_id(fx.short_listener)
    sample = MarsSample(listener.opposite(), listener)
    assert index.eval_frames(sample) == fx.lengths[listener.opposite().id]  # the speaker's length
    assert index.train_frames(sample) == fx.lengths[listener.id]  # the minimum: two frames shorter
    longer = Recording.from_id(fx.longer_features)
    assert index.train_frames(MarsSample(longer, longer.opposite())) == fx.lengths[longer.id]
    for rid, traits in fx.traits.items():
        np.testing.assert_allclose(index.entries[rid].personality, (np.array(traits) - 1) / 4, rtol=1e-6)
    assert index.entries[fx.lonely_speaker].personality is None  # no speaker.csv
    for rid, frames in fx.lengths.items():
        rec = Recording.from_id(rid)
        attributes = np.load(cache.mars_array("val", "facial-attributes", rec))
        original = np.load(fx.root / "val" / "facial-attributes" / f"{rid}.npy")
        np.testing.assert_array_equal(attributes, original)
        assert np.load(cache.mars_array("val", "coefficients", rec)).shape == (frames, 58)
    assert index.entries[fx.eeg_missing].eeg_rows == 0
    tar_rec = Recording.from_id(fx.eeg_in_tar[1])
    rows = index.entries[tar_rec.id].eeg_rows
    assert rows == -(-fx.lengths[tar_rec.id] // 30)
    assert np.load(cache.mars_array("val", "eeg-mask", tar_rec)).shape == (rows, 14)


def test_rerun_reads_only_what_changed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fx = write_mars_val(tmp_path / "ds", seed=3)
    assert run_cli(["preprocess", "--data", str(fx.root), "--splits", "val"]) == 0
    capsys.readouterr()
    assert run_cli(["preprocess", "--data", str(fx.root), "--splits", "val"]) == 0
    assert _row(capsys.readouterr().out, "val")[:4] == ["19", "9", "0", "19"]
    rid = fx.short_listener
    path = fx.root / "val" / "coefficients" / f"{rid}.npy"
    np.save(path, np.ones((fx.lengths[rid], 58), np.float32))
    cached = _cache(fx.root).mars_array("val", "facial-attributes", Recording.from_id(fx.lonely_speaker))
    cached.write_bytes(cached.read_bytes()[:100])  # a cache file cut short
    assert run_cli(["preprocess", "--data", str(fx.root), "--splits", "val"]) == 0
    assert _row(capsys.readouterr().out, "val")[:4] == ["19", "9", "2", "17"]
    assert np.load(_cache(fx.root).mars_array("val", "coefficients", Recording.from_id(rid))).min() == 1.0


def _truncate_wav(path: Path) -> None:
    with wave.open(str(path)) as src:
        frames = src.getnframes()
    data = path.read_bytes()
    path.write_bytes(data[: 44 + frames])  # the header still claims every sample


def test_bad_inputs_one_line_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fx = write_mars_val(tmp_path / "ds", seed=5)
    val = fx.root / "val"
    shortest = next(rid for rid, n in fx.lengths.items() if n == 58 and rid.startswith("listener/"))
    special = (fx.short_listener, fx.lonely_speaker, fx.longer_features, shortest)
    ids = [rid for rid in fx.lengths if rid not in special]
    expected: dict[Path, str] = {}

    def npy(modality: str, rid: str) -> Path:
        return val / modality / f"{rid}.npy"

    path = npy("facial-attributes", ids[0])
    array = np.load(path)
    array[3, 0] = np.nan
    np.save(path, array)
    expected[path] = "facial attributes contains 1 NaN/inf values (first at frame 3, column 0 (AU1))"
    path = npy("coefficients", ids[1])
    np.save(path, np.zeros((fx.lengths[ids[1]], 52), np.float32))
    expected[path] = "3DMM coefficients have shape"
    path = npy("audio-features", ids[2])
    np.save(path, np.zeros((fx.lengths[ids[2]], 768), np.int16))
    expected[path] = "audio features has dtype int16, expected float32"
    path = val / "audio" / f"{ids[3]}.wav"
    _truncate_wav(path)
    expected[path] = "(truncated?)"
    path = npy("coefficients", ids[4])
    path.write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(300))
    expected[path] = "AppleDouble/archive metadata"
    path = npy("coefficients", ids[5])
    np.save(path, np.zeros((fx.lengths[ids[5]] + 45, 58), np.float32))
    expected[path] = "more than 1 s apart: not the same recording?"
    path = npy("audio-features", ids[6])
    path.unlink()
    expected[path] = "audio-features file not found"
    path = npy("facial-attributes", shortest)
    np.save(path, np.zeros((57, 25), np.float32))  # the other modalities are one frame longer: notes
    expected[path] = "57 frames: shorter than the 58 frames a MARS recording has at least"
    capsys.readouterr()
    assert run_cli(["preprocess", "--data", str(fx.root), "--splits", "val"]) == 1
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.startswith("val  ")]
    for path, text in expected.items():
        hits = [line for line in lines if line.startswith(f"val  {path}: ") and text in line]
        assert len(hits) == 1, (path, text, [line for line in lines if str(path) in line])
    assert f"{len(expected)} problem(s) found" in captured.err and "Traceback" not in captured.err


def test_bad_personality_and_missing_modality(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fx = write_mars_val(tmp_path / "ds", seed=6)
    listener_csv = fx.root / "val" / "personality" / "listener.csv"
    lines = listener_csv.read_text().splitlines()
    listener_csv.write_text("\n".join([lines[0], lines[1].rsplit(",", 1)[0] + ",high", *lines[2:]]) + "\n")
    shutil.rmtree(fx.root / "val" / "coefficients")
    assert run_cli(["preprocess", "--data", str(fx.root), "--splits", "val"]) == 1
    out = capsys.readouterr().out
    assert f"val  {listener_csv}: line 2, Openness: 'high' is not a number" in out
    assert f"val  {fx.root / 'val' / 'coefficients'}: coefficients folder not found" in out


def test_edition_needed_without_eeg_and_personality(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fx = write_mars_val(tmp_path / "ds", seed=7)
    for extra in ("eeg_processed", "personality"):
        shutil.rmtree(fx.root / "val" / extra)
    (fx.root / "val" / "eeg_processed.tar.gz").unlink()
    assert run_cli(["preprocess", "--data", str(fx.root), "--splits", "val"]) == 1
    assert "pass --edition 2025 or --edition 2026" in capsys.readouterr().err
    assert run_cli(["preprocess", "--data", str(fx.root), "--splits", "val", "--edition", "2025"]) == 0
    out = capsys.readouterr().out
    assert "REACT 2025" in out and "samples (both directions)" in out
    assert _row(out, "val")[:2] == ["19", "18"]
    index = load_mars_index(_cache(fx.root), "val")
    assert index.edition == "2025" and all(e.eeg_rows is None for e in index.entries.values())
    args = ["preprocess", "--data", str(fx.root), "--splits", "val", "--edition", "2025"]
    assert run_cli([*args, "--device", "cpu"]) == 0  # the causal audio features are computed on it
    recording = next(iter(index.entries.values()))
    features = _cache(fx.root).mars_array("val", "audio/mfcc26-sr16000", recording.recording)
    assert np.load(features).shape == (recording.length, 78)


def test_index_errors(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    with pytest.raises(ReactError, match="is not preprocessed; run `react preprocess`"):
        load_mars_index(cache, "val")
    cache.mars_index("val").parent.mkdir(parents=True)
    cache.mars_index("val").write_text('{"format": 99}')
    with pytest.raises(ReactError, match="corrupt MARS index") as err:
        load_mars_index(cache, "val")
    assert err.value.path == str(cache.mars_index("val"))
