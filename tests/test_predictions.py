"""``reactcli.predictions``: dense and ragged sets round-trip, read memory-mapped, validate in one line,
and a write is all or nothing."""

from __future__ import annotations

import errno
import io
import json
from pathlib import Path

import numpy as np
import pytest

from reactcli import predictions as predictions_module
from reactcli.errors import ReactError
from reactcli.predictions import PredictionSet, PredictionWriter, predicted_bytes, sample_id

RECORD = {"edition": "2024", "split": "val", "seed": 3, "generation": {"samples": 2, "valid_emotion": True}}


def make_samples(lengths: list[int], k: int = 2, seed: int = 0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(id, emotion (K, T, 25), face (K, T + 1, 58)) per sample, REACT-like: 3DMM one frame longer."""
    rng = np.random.default_rng(seed)
    return [
        (sample_id(f"s{i}", f"l{i}"), rng.random((k, t, 25), dtype=np.float32), rng.normal(size=(k, t + 1, 58)))
        for i, t in enumerate(lengths)
    ]


def write(target: Path, samples: list[tuple[str, np.ndarray, np.ndarray]], k: int = 2) -> PredictionSet:
    with PredictionWriter(target, k, RECORD) as writer:
        for name, emotion, face in samples:
            writer.add(name, emotion, face)
        return writer.commit()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def one_line(exc: pytest.ExceptionInfo[ReactError]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_dense_round_trip_is_byte_for_byte_what_np_save_writes(tmp_path: Path) -> None:
    samples = make_samples([7, 7, 7])
    preds = write(tmp_path / "pred", samples)
    emotion = np.stack([e for _, e, _ in samples])
    face = np.stack([f for _, _, f in samples]).astype(np.float32)
    assert (tmp_path / "pred" / "emotion.npy").read_bytes() == npy_bytes(emotion)  # the 2024 submission format
    assert (tmp_path / "pred" / "face3dmm.npy").read_bytes() == npy_bytes(face)
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == ["emotion.npy", "face3dmm.npy", "generation.json"]
    assert preds.layout == "dense" and preds.K == 2 and len(preds) == 3 and preds.named
    assert preds.ids == [name for name, _, _ in samples]
    assert preds.lengths == [7, 7, 7] and preds.face_lengths == [8] * 3
    np.testing.assert_array_equal(preds.dense_emotion(), emotion)
    np.testing.assert_array_equal(preds.face3dmm(1), face[1])
    record = json.loads((tmp_path / "pred" / "generation.json").read_text())
    assert record == preds.record
    assert (record["format"], record["layout"], record["N"], record["K"]) == ("reactcli-predictions/1", "dense", 3, 2)
    assert record["generation"] == RECORD["generation"] and record["seed"] == 3
    assert record["emotion_shape"] == [3, 2, 7, 25] and record["face3dmm_shape"] == [3, 2, 8, 58]


def test_ragged_round_trip_reads_each_sample_memory_mapped(tmp_path: Path) -> None:
    samples = make_samples([5, 58, 3])
    preds = write(tmp_path / "pred", samples)
    assert preds.layout == "ragged"
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == [
        "emotion_ragged.npy", "face3dmm_ragged.npy", "generation.json"]  # fmt: skip
    assert preds.record["emotion_frames"] == [5, 58, 3] and preds.record["face3dmm_frames"] == [6, 59, 4]
    again = PredictionSet.open(tmp_path / "pred")
    assert again.lengths == [5, 58, 3] and again.ids == preds.ids
    for i, (_, emotion, face) in enumerate(samples):
        block = again.emotion(i)
        assert isinstance(block, np.memmap) and not block.flags.writeable  # a view of the file, not a copy
        np.testing.assert_array_equal(block, emotion)
        np.testing.assert_array_equal(again.face3dmm(i), face.astype(np.float32))
    with pytest.raises(ReactError, match="different lengths \\(3 to 58 frames\\)") as exc:
        again.dense_emotion()
    assert "emotion_ragged.npy" in one_line(exc)
    # equal lengths through the ragged reader give the dense view
    equal = make_samples([4, 4])
    dense = write(tmp_path / "equal", equal)
    assert dense.layout == "dense"
    np.testing.assert_array_equal(dense.dense_emotion(), np.stack([e for _, e, _ in equal]))


def test_validation_errors_are_one_line_and_name_the_file(tmp_path: Path) -> None:
    samples = make_samples([7, 7])
    preds = write(tmp_path / "pred", samples)
    ids = preds.ids
    cases = [
        (lambda: preds.validate_against(ids[:1], source="the val split"), "hold 2 samples, expected N = 1 (the val"),
        (lambda: preds.validate_against([ids[1], ids[0]]), f"sample 0 is '{ids[0]}' but the split has '{ids[1]}'"),
        (lambda: preds.validate_against(ids, 8), "T = 7 frames, expected 8"),
        (lambda: preds.validate_against(ids, 8, exact=False), "T = 7 frames, expected at least 8"),
        (lambda: preds.validate_against(ids, face_lengths=9), "face3dmm.npy: predictions have T = 8 frames"),
    ]
    for check, needle in cases:
        with pytest.raises(ReactError) as exc:
            check()
        assert needle in one_line(exc)
    assert preds.validate_against(ids, 7, face_lengths=8) is preds
    assert preds.validate_against(ids, 5, exact=False) is preds
    ragged = write(tmp_path / "ragged", make_samples([3, 9]))
    with pytest.raises(ReactError, match=f"sample 1 \\(sample id '{ragged.ids[1]}'\\) has T = 9 frames, expected 3"):
        ragged.validate_against(ragged.ids, [3, 3])
    # values: NaN and absurd magnitudes name the file, the sample and where
    emotion = np.zeros((2, 2, 7, 25), np.float32)
    emotion[1, 0, 4, 3] = np.nan
    np.save(tmp_path / "nan.npy", emotion)
    with pytest.raises(ReactError) as exc:
        PredictionSet.open(tmp_path / "nan.npy").check_values()
    where = "sample 1 reaction 0 contains NaN/inf values (1, first at frame 4, dim 3)"
    assert one_line(exc) == f"{tmp_path / 'nan.npy'}: {where}"
    emotion[1, 0, 4, 3] = 0
    emotion[0, 1, 2, 1] = 1e30
    np.save(tmp_path / "huge.npy", emotion)
    with pytest.raises(ReactError, match="sample 0 reaction 1 has \\|x\\| up to 1e\\+30 .*outside the sane range"):
        PredictionSet.open(tmp_path / "huge.npy").check_values()
    PredictionSet.open(tmp_path / "huge.npy").check_values(reactions=[0])  # only what a stage reads


def test_open_reads_what_evaluate_always_took_and_refuses_the_rest(tmp_path: Path) -> None:
    import torch

    emotion = np.random.default_rng(0).random((4, 2, 750, 25), dtype=np.float32)
    np.save(tmp_path / "p.npy", emotion)
    torch.save(torch.from_numpy(emotion), tmp_path / "p.pt")
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    np.save(legacy / "emotion.npy", emotion)  # an older generate folder: no generation.json
    for source in (tmp_path / "p.npy", tmp_path / "p.pt", legacy):
        preds = PredictionSet.open(source)
        assert (len(preds), preds.K, preds.named, preds.has_face3dmm) == (4, 2, False, False)
        np.testing.assert_array_equal(preds.dense_emotion(), emotion)
        preds.validate_against(["a", "b", "c", "d"], 750)  # unnamed: only the count is checked
    assert PredictionSet.open(legacy).face3dmm(0) is None
    with pytest.raises(ReactError, match="has no face3dmm.npy"):
        PredictionSet.open(legacy).require("face3dmm", "rendering needs it")
    mismatch = tmp_path / "mismatch"
    mismatch.mkdir()
    np.save(mismatch / "emotion.npy", emotion)
    np.save(mismatch / "face3dmm.npy", np.zeros((4, 3, 751, 58), np.float32))
    ragged = tmp_path / "ragged"
    ragged.mkdir()
    np.save(ragged / "emotion_ragged.npy", np.zeros((10, 25), np.float32))
    (ragged / "generation.json").write_text(json.dumps({"layout": "ragged", "K": 2, "emotion_frames": [2, 2]}))
    ids = tmp_path / "ids"
    ids.mkdir()
    np.save(ids / "emotion.npy", emotion)
    (ids / "generation.json").write_text(json.dumps({"ids": ["a"]}))
    (tmp_path / "empty").mkdir()
    (tmp_path / "p.txt").write_text("1 2 3")
    cases = [
        (tmp_path / "missing.npy", "predictions not found"),
        (tmp_path / "p.txt", "must be a .npy or .pt file"),
        (tmp_path / "empty", "prediction folder has no emotion.npy or face3dmm.npy"),
        (mismatch, "emotion.npy: has (N, K) = (4, 2) but face3dmm.npy has (4, 3)"),
        (ragged, "emotion_ragged.npy: has shape (10, 25), its record says (8, 25)"),
        (ids, "generation.json: lists 1 sample ids but the arrays hold 4 samples"),
    ]
    np.save(tmp_path / "three.npy", emotion[:, 0])
    cases.append((tmp_path / "three.npy", "predictions have shape (4, 750, 25), expected (N, K, T, 25)"))
    for source, needle in cases:
        with pytest.raises(ReactError) as exc:
            PredictionSet.open(source)
        assert needle in one_line(exc), source


def test_writer_refuses_non_finite_output_and_keeps_the_old_set(tmp_path: Path) -> None:
    target = tmp_path / "pred"
    write(target, make_samples([7, 7], seed=1))
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    bad = make_samples([7, 7], seed=2)
    bad[1][1][0, 3, 2] = np.inf
    with pytest.raises(ReactError, match="sample 1 .* holds NaN/inf or values beyond .*nothing was written") as exc:
        write(target, bad)
    assert str(target) in one_line(exc)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred"]  # no temporary folder left


@pytest.mark.parametrize("where", ["write", "swap"])
def test_a_full_disk_or_a_refused_rename_leaves_the_old_set_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """ENOSPC while the samples go to disk, or EACCES when the new set is swapped in: one line naming
    the target, and the older set (seed 1) is there as it was, never a new emotion.npy beside it."""
    target = tmp_path / "pred"
    write(target, make_samples([7, 7, 7], seed=1))
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    if where == "write":
        calls = {"n": 0}
        real = predictions_module._write_block

        def full_disk(fh, block):  # the third block (sample 1's emotion) hits a full disk
            calls["n"] += 1
            if calls["n"] == 3:
                raise OSError(errno.ENOSPC, "No space left on device")
            real(fh, block)

        monkeypatch.setattr(predictions_module, "_write_block", full_disk)
        expected = "No space left on device"
    else:
        import reactcli.atomic

        def refused(new: Path, old: Path) -> None:
            raise PermissionError(errno.EACCES, "Permission denied", str(old))

        monkeypatch.setattr(reactcli.atomic, "_replace_folder", refused)
        expected = "Permission denied"
    with pytest.raises(ReactError) as exc:
        write(target, make_samples([7, 7, 7], seed=7))
    assert one_line(exc) == f"{target}: could not write ({expected}); nothing was changed there"
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred"]


def test_writer_checks_space_and_refuses_a_folder_of_other_files(tmp_path: Path) -> None:
    with pytest.raises(ReactError) as exc:
        PredictionWriter(tmp_path / "pred", 2, need_bytes=10**18)
    assert one_line(exc).startswith(f"{tmp_path / 'pred'}: the output needs 1000000000.0 GB but only ")
    run = tmp_path / "run"
    run.mkdir()
    (run / "predictor.ckpt").write_bytes(b"weights")
    with pytest.raises(ReactError, match="holds other files \\(predictor.ckpt\\); give an empty folder"):
        PredictionWriter(run, 2)
    assert (run / "predictor.ckpt").read_bytes() == b"weights"
    assert predicted_bytes(10, [750] * 4, [751] * 4) > 4 * 10 * (750 * 25 + 751 * 58) * 4
    with pytest.raises(ReactError, match="sample id 'a' given twice"), PredictionWriter(tmp_path / "twice", 1) as w:
        w.add("a", np.zeros((1, 2, 25)), np.zeros((1, 2, 58)))
        w.add("a", np.zeros((1, 2, 25)), np.zeros((1, 2, 58)))
    assert not (tmp_path / "twice").exists()
