"""Reading a MARS release: edition facts and detection, the listing and its junk rules, the array
loaders, EEG and personality, on a split written independently of our generator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from _mars_fixtures import MarsFixture, write_mars_val, write_tar_gz

from reactcli.data.mars import ROLES, Recording, list_recordings, mars_samples
from reactcli.data.mars_loaders import (
    EegReader,
    eeg_per_frame,
    is_archive_metadata,
    load_attributes,
    load_audio_features,
    load_coefficients,
    load_recording_audio,
    parse_eeg_csv,
    read_personality,
)
from reactcli.editions import EDITIONS, EEG_COLUMNS, detect_edition, edition
from reactcli.errors import ReactError


@pytest.fixture(scope="module")
def fixture(tmp_path_factory: pytest.TempPathFactory) -> MarsFixture:
    return write_mars_val(tmp_path_factory.mktemp("mars"))


# -- editions ---------------------------------------------------------------------------------------
def test_edition_facts() -> None:
    e24, e25, e26 = (EDITIONS[name] for name in ("2024", "2025", "2026"))
    assert (e24.fps, e25.fps, e26.fps) == (25, 30, 30)
    assert (e24.fixed_frames, e24.emotion_frames) == (751, 750) and not e24.variable_length
    assert e25.variable_length and e26.variable_length and e25.min_frames == e26.min_frames == 58
    assert (e24.gt_rule, e25.gt_rule) == ("neighbour_matrix", "session_pool") and e26.gt_count == 10
    assert (e24.bidirectional, e25.bidirectional, e26.bidirectional) == (True, True, False)
    assert "FRDvs" in e24.metrics and "FRDvs" not in e25.metrics
    assert "MAE" in e26.metrics and "MAE" not in e25.metrics and "EEG_FRC" in e26.metrics
    assert e26.has_eeg and not e25.has_eeg and not e24.is_mars and e25.is_mars
    assert edition(2026) is e26
    with pytest.raises(ReactError, match="--edition 2023: expected one of 2024, 2025, 2026"):
        edition("2023")


def _mars_root(root: Path, *extra: str) -> Path:
    (root / "val" / "facial-attributes" / "speaker" / "session0").mkdir(parents=True)
    for name in extra:
        path = root / "val" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir() if not name.endswith(".gz") else path.write_bytes(b"")
    return root


def test_detect_edition(tmp_path: Path) -> None:
    r24 = tmp_path / "r24"
    r24.mkdir()
    (r24 / "val.csv").write_text(",speaker_path,listener_path\n")
    assert detect_edition(r24).name == "2024"
    emotion_only = tmp_path / "emotion_only"
    (emotion_only / "train" / "Emotion").mkdir(parents=True)
    assert detect_edition(emotion_only).name == "2024"
    for name, extra in (("eeg", "eeg_processed"), ("tar", "eeg_processed.tar.gz"), ("pers", "personality")):
        assert detect_edition(_mars_root(tmp_path / name, extra)).name == "2026", name
    bare = _mars_root(tmp_path / "bare")
    with pytest.raises(ReactError, match="pass --edition 2025 or --edition 2026") as err:
        detect_edition(bare)
    assert err.value.path == str(bare)
    assert detect_edition(bare, "2025").name == "2025" and detect_edition(bare, "2026").name == "2026"
    assert detect_edition(tmp_path / "eeg", "2025").name == "2025"  # 2025 on a 2026 release: extras unread
    with pytest.raises(ReactError, match="is a MARS dataset .* not REACT 2024"):
        detect_edition(bare, "2024")
    with pytest.raises(ReactError, match="is a REACT 2024 dataset, not MARS"):
        detect_edition(r24, "2026")
    with pytest.raises(ReactError, match="one split folder: pass its parent"):
        detect_edition(bare / "val")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReactError, match="neither a REACT 2024 dataset"):
        detect_edition(tmp_path / "empty")
    (bare / "val" / "Emotion").mkdir()
    with pytest.raises(ReactError, match="keep one dataset per root"):
        detect_edition(bare)
    with pytest.raises(ReactError, match="dataset root not found"):
        detect_edition(tmp_path / "nowhere")


# -- the listing ------------------------------------------------------------------------------------
def test_listing_is_sorted_and_skips_junk(fixture: MarsFixture) -> None:
    listing = list_recordings(fixture.root, "val")
    ids = [r.id for r in listing.recordings]
    keys = [r.sort_key for r in listing.recordings]
    assert keys == sorted(keys)
    assert set(ids) == set(fixture.lengths)
    assert ids[0].startswith("speaker/session1/") and ids[-1].startswith("listener/session4/")
    sessions = list(dict.fromkeys(r.session for r in listing.recordings if r.role == "speaker"))
    assert sessions == ["session1", "session10", "session4"]  # string order, as the official script
    assert {Path(j.path) for j in listing.junk} == set(fixture.junk)
    reasons = {Path(j.path).name: j.reason for j in listing.junk}
    assert "AppleDouble" in next(v for k, v in reasons.items() if k.startswith("._"))
    assert reasons["notes.txt"] == "not a .npy file" and "PaxHeader" in reasons["PaxHeaders.4242"]
    assert [r.id for r in listing.unpaired()] == [fixture.lonely_speaker]


def test_samples_one_and_both_directions(fixture: MarsFixture) -> None:
    listing = list_recordings(fixture.root, "val")
    one = listing.samples(bidirectional=False)
    both = listing.samples(bidirectional=True)
    assert len(one) == 9 and all(s.input.role == "speaker" and s.target == s.input.opposite() for s in one)
    assert both[:9] == one and len(both) == 18 and all(s.input.role == "listener" for s in both[9:])
    assert fixture.lonely_speaker not in {s.input.id for s in both}
    assert mars_samples([Recording("listener", "session0", "x")], bidirectional=True) == []


def test_listing_roles_depth_and_missing_folder(tmp_path: Path) -> None:
    base = tmp_path / "val" / "facial-attributes"
    for rel in ("speaker/session0/a.npy", "listener/session0/a.npy", "observer/session0/a.npy", "speaker/a.npy"):
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        np.save(base / rel, np.zeros((60, 25), np.float32))
    listing = list_recordings(tmp_path, "val")
    assert [r.id for r in listing.recordings] == ["speaker/session0/a", "listener/session0/a"]
    reasons = {Path(j.path).relative_to(base).as_posix(): j.reason for j in listing.junk}
    assert "neither speaker nor listener" in reasons["observer/session0/a.npy"]
    assert reasons["speaker/a.npy"] == "not at <role>/<session>/<stem>.npy"
    with pytest.raises(ReactError, match="facial-attributes folder not found") as err:
        list_recordings(tmp_path, "test")
    assert err.value.path == str(tmp_path / "test" / "facial-attributes")
    assert ROLES == ("speaker", "listener")


# -- arrays -----------------------------------------------------------------------------------------
def test_array_loaders(fixture: MarsFixture) -> None:
    val = fixture.root / "val"
    rid = fixture.short_listener
    attributes = load_attributes(val / "facial-attributes" / f"{rid}.npy")
    assert attributes.dtype == np.float32 and attributes.shape == (fixture.lengths[rid], 25)
    shapes = set()
    for other in list(fixture.lengths)[:4]:
        shapes.add(np.load(val / "coefficients" / f"{other}.npy").ndim)
        assert load_coefficients(val / "coefficients" / f"{other}.npy").shape == (fixture.lengths[other], 58)
    assert shapes == {2, 3}, "the fixture stores both (T, 1, 58) and (T, 58)"
    features = load_audio_features(val / "audio-features" / f"{fixture.longer_features}.npy")
    assert features.shape == (fixture.lengths[fixture.longer_features] + 1, 768)
    wave, rate = load_recording_audio(val / "audio" / f"{rid}.wav")
    assert rate == 22050 and len(wave) / rate == pytest.approx(fixture.lengths[rid] / 30, abs=1e-3)


@pytest.mark.parametrize(
    ("loader", "array", "message"),
    [
        (load_attributes, np.zeros((60, 24), np.float32), r"shape \(60, 24\), expected \(T, 25\)"),
        (load_attributes, np.zeros((60, 25), np.int64), "dtype int64, expected float32"),
        (load_attributes, np.zeros((0, 25), np.float32), "no frames"),
        (load_coefficients, np.zeros((60, 2, 58), np.float32), r"expected \(T, 1, 58\) or \(T, 58\)"),
        (load_audio_features, np.zeros((60, 512), np.float32), r"expected \(T, 768\)"),
    ],
)
def test_array_errors_name_the_file(
    tmp_path: Path, loader: Callable[[Path], np.ndarray], array: np.ndarray, message: str
) -> None:
    path = tmp_path / "x.npy"
    np.save(path, array)
    with pytest.raises(ReactError, match=message) as err:
        loader(path)
    assert err.value.path == str(path)


def test_nan_pickled_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "a.npy"
    bad = np.zeros((70, 25), np.float32)
    bad[12, 15] = np.nan
    np.save(path, bad)
    with pytest.raises(ReactError, match=r"1 NaN/inf values \(first at frame 12, column 15 \(valence\)\)"):
        load_attributes(path)
    path.write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(200))
    with pytest.raises(ReactError, match="AppleDouble/archive metadata") as err:
        load_attributes(path)
    assert err.value.path == str(path)
    with pytest.raises(ReactError, match="3DMM coefficients file not found"):
        load_coefficients(tmp_path / "none.npy")


# -- EEG --------------------------------------------------------------------------------------------
def _row(values: dict[str, str]) -> str:
    return ",".join(values.get(name, "1.0") for name in ("TimeStamp", *EEG_COLUMNS))


def test_eeg_cells_scaling_and_mask() -> None:
    header = ",".join(("TimeStamp", *EEG_COLUMNS))
    rows = [
        _row({"TP9": "800", "Alpha_TP9": "0.5"}),
        _row({"TP9": "", "AF7": "nan", "AF8": "abc", "TP10": "inf", "Beta_TP10": " 2.5 "}),
        "2,900",  # a short row: the missing cells count as blank (the official reader crashes here)
    ]
    table = parse_eeg_csv("\n".join([header, *rows]) + "\n", "mem")
    assert table.values.shape == table.mask.shape == (3, 14)
    assert table.values[0, EEG_COLUMNS.index("TP9")] == pytest.approx(0.8)  # raw channel / 1000
    assert table.values[0, EEG_COLUMNS.index("Alpha_TP9")] == pytest.approx(0.5)  # band power as stored
    assert table.values[1, EEG_COLUMNS.index("Beta_TP10")] == pytest.approx(2.5)
    assert list(table.mask[1, :4]) == [0, 0, 0, 0] and (table.values[1, :4] == 0).all()
    assert table.mask[2].tolist() == [1.0] + [0.0] * 13 and table.values[2, 0] == pytest.approx(0.9)
    assert table.masked_cells == 4 + 13 and table.missing_columns == ()
    partial = parse_eeg_csv("TP9,AF7\n700,710\n", "mem")
    assert partial.missing_columns == EEG_COLUMNS[2:] and partial.mask[0].sum() == 2


def test_eeg_per_frame_repeats_the_last_row() -> None:
    table = parse_eeg_csv(",".join(EEG_COLUMNS) + "\n" + "\n".join(",".join([str(r)] * 14) for r in range(3)), "m")
    values, mask = eeg_per_frame(table, frames=100, fps=30)
    assert values.shape == (100, 14) and mask.all()
    assert values[29, 5] == 0 and values[30, 5] == 1 and values[60, 5] == 2 and values[99, 5] == 2
    empty = parse_eeg_csv(",".join(EEG_COLUMNS) + "\n", "m")
    values, mask = eeg_per_frame(empty, frames=70)
    assert empty.rows == 0 and not values.any() and not mask.any() and values.shape == (70, 14)


def test_eeg_folder_tar_and_missing(fixture: MarsFixture) -> None:
    val = fixture.root / "val"
    reader = EegReader(val)
    folder = reader.read(Recording.from_id(fixture.eeg_text_cells))
    assert folder.source == str(val / "eeg_processed" / f"{fixture.eeg_text_cells}.csv")
    assert folder.rows == -(-fixture.lengths[fixture.eeg_text_cells] // 30)
    first = folder.mask[0]
    assert first[EEG_COLUMNS.index("TP9")] == first[EEG_COLUMNS.index("AF7")] == 0  # 'nan', 'n/a'
    assert first[EEG_COLUMNS.index("Gamma_TP10")] == 0 and first[EEG_COLUMNS.index("AF8")] == 1
    assert folder.mask[1, EEG_COLUMNS.index("Theta_TP9")] == 0  # a blank cell
    for rid, spelling in zip(fixture.eeg_in_tar, ("eeg_processed/", ""), strict=True):
        table = reader.read(Recording.from_id(rid))
        assert table.source == f"{val / 'eeg_processed.tar.gz'}!{spelling}{rid}.csv"
        assert table.rows == -(-fixture.lengths[rid] // 30) and table.mask.sum() > 0
    missing = reader.read(Recording.from_id(fixture.eeg_missing))
    assert missing.rows == 0 and missing.source is None
    no_tar = EegReader(val, use_tar=False).read(Recording.from_id(fixture.eeg_in_tar[0]))
    assert no_tar.rows == 0


def test_eeg_tar_metadata_members_are_skipped(tmp_path: Path) -> None:
    assert is_archive_metadata("eeg_processed/listener/session0/._a.csv")
    assert is_archive_metadata("PaxHeader/listener/session0/a.csv") and is_archive_metadata("x/.DS_Store")
    assert not is_archive_metadata("eeg_processed/listener/session0/a.csv")
    split = tmp_path / "val"
    split.mkdir()
    good = (",".join(EEG_COLUMNS) + "\n" + ",".join(["1"] * 14) + "\n").encode()
    members = {
        "./listener/session0/a.csv": good,  # GNU tar's ./ prefix
        "listener/session0/._a.csv": b"\x00\x05\x16\x07\xff\xfe not text",
        "PaxHeader/listener/session0/b.csv": good,  # metadata: must not serve b
    }
    write_tar_gz(split / "eeg_processed.tar.gz", members)
    reader = EegReader(split)
    assert reader.read(Recording("listener", "session0", "a")).rows == 1
    assert reader.read(Recording("listener", "session0", "b")).rows == 0
    (split / "eeg_processed.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(ReactError, match="not a readable tar.gz archive") as err:
        EegReader(split).open()
    assert err.value.path == str(split / "eeg_processed.tar.gz")


# -- personality ------------------------------------------------------------------------------------
def test_personality_keys_and_scaling(fixture: MarsFixture) -> None:
    table = read_personality(fixture.root / "val" / "personality" / "listener.csv", "listener")
    for rid, traits in fixture.traits.items():
        np.testing.assert_allclose(table.lookup(Recording.from_id(rid)), (np.array(traits) - 1) / 4, rtol=1e-6)
    assert table.lookup(Recording.from_id(fixture.lonely_speaker)) is None  # a speaker, in the listener table
    assert table.lookup(Recording("listener", "session1", "unknown")) is None


def test_personality_session_key_before_stem(tmp_path: Path) -> None:
    path = tmp_path / "listener.csv"
    header = "video_name,session,Extraversion,Agreeableness,Conscientiousness,Neuroticism,Openness\n"
    path.write_text(header + "a.mp4,session1,5,5,5,5,5\na,session2,1,1,1,1,1\n,session3,3,3,3,3,3\n")
    table = read_personality(path, "listener")
    assert table.lookup(Recording("listener", "session1", "a")).tolist() == [1.0] * 5
    assert table.lookup(Recording("listener", "session2", "a")).tolist() == [0.0] * 5
    # no (session9, a) row: the stem fallback, which the last row of stem 'a' set
    assert table.lookup(Recording("listener", "session9", "a")).tolist() == [0.0] * 5
    assert len(table.by_stem) == 1  # the row with an empty video_name is skipped


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("video_name,session,Extraversion\n", "lacks the column"),
        ("a,s1,3,3,x,3,3\n", "line 2, Conscientiousness: 'x' is not a number"),
        ("a,s1,3,3,3,,3\n", "line 2, Neuroticism: the cell is empty"),
        ("a,s1,3,3,3,3,7\n", "line 2, Openness: 7 is outside the 1-5 scale"),
        ("a,s1,nan,3,3,3,3\n", "line 2, Extraversion: nan is outside the 1-5 scale"),
    ],
)
def test_personality_errors(tmp_path: Path, body: str, message: str) -> None:
    header = "video_name,session,Extraversion,Agreeableness,Conscientiousness,Neuroticism,Openness\n"
    path = tmp_path / "listener.csv"
    path.write_text(body if body.startswith("video_name") else header + body)
    with pytest.raises(ReactError, match=message) as err:
        read_personality(path, "listener")
    assert err.value.path == str(path)
    with pytest.raises(ReactError, match="listener personality file not found"):
        read_personality(tmp_path / "nope.csv", "listener")
