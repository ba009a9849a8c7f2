"""Reading the organisers' test-stage results.pt: shapes checked against the split's sorted samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from reactcli.errors import ReactError
from reactcli.metrics.mars_results import read_results

IDS = ["speaker/session1/a", "speaker/session1/b", "speaker/session2/c"]
LENGTHS = [58, 120, 75]


def results(**extra):
    g = torch.Generator().manual_seed(0)
    out = {
        "PRED": [torch.rand(10, n, 25, generator=g) for n in LENGTHS],
        "GT": [torch.rand(10, n, 25, generator=g) for n in LENGTHS],
    }
    out.update(extra)
    return out


def save(tmp_path, obj, name="results.pt"):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def error(path, lengths=LENGTHS) -> str:
    with pytest.raises(ReactError) as info:
        read_results(path, IDS, lengths)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_reads_predictions_gt_and_eeg(tmp_path) -> None:
    eeg = {
        "PRED_EEG": [torch.rand(10, n // 30 + 1, 14) for n in LENGTHS],
        "GT_EEG": [torch.rand(1, n // 30 + 1, 14) for n in LENGTHS],
        "EEG_MASK": [torch.ones(1, n // 30 + 1, 14) for n in LENGTHS],
    }
    data = results(**eeg)
    got = read_results(save(tmp_path, data), IDS, LENGTHS)
    assert [p.shape for p in got.predictions] == [(10, n, 25) for n in LENGTHS]
    assert got.predictions[0].dtype == np.float32
    np.testing.assert_array_equal(got.predictions[1], data["PRED"][1].numpy())
    assert got.targets is not None and got.eeg_masks is not None and got.eeg_predictions[2].shape == (10, 3, 14)
    plain = read_results(save(tmp_path, {"PRED": data["PRED"]}, "plain.pt"), IDS)
    assert plain.targets is None and plain.eeg_predictions is None


def test_one_line_errors(tmp_path) -> None:
    data = results()
    assert "'PRED' has 2 entries, the split has 3" in error(save(tmp_path, {"PRED": data["PRED"][:2]}))
    assert "'PRED'[1] (speaker/session1/b) has 120 frames, the input has 121" in error(
        save(tmp_path, data), [58, 121, 75]
    )
    bad = list(data["PRED"])
    bad[2] = torch.rand(10, 75, 24)
    assert "'PRED'[2] (speaker/session2/c) has shape (10, 75, 24)" in error(save(tmp_path, {"PRED": bad}))
    nan = list(data["PRED"])
    nan[0] = nan[0].clone()
    nan[0][0, 0, 0] = float("nan")
    assert "NaN" in error(save(tmp_path, {"PRED": nan}))
    assert "no 'PRED'" in error(save(tmp_path, {"GT": data["GT"]}))
    assert "baseline results file" in error(save(tmp_path, {"PRED": {"B_Mime": data["PRED"]}}))
    assert "need PRED_EEG and GT_EEG" in error(save(tmp_path, {**data, "PRED_EEG": [torch.rand(10, 2, 14)] * 3}))
    eeg = {
        "PRED_EEG": [torch.rand(10, 2, 14)] * 3,
        "GT_EEG": [torch.rand(1, 2, 14)] * 3,
        "EEG_MASK": [torch.ones(1, 3, 14)] * 3,
    }
    assert "'EEG_MASK' of sample 0" in error(save(tmp_path, {**data, **eeg}))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage")
    assert "not a readable PyTorch file (corrupt or truncated" in error(junk)
    assert "results file not found" in error(tmp_path / "absent.pt")
    code = save(tmp_path, {"PRED": [Path("/a")]}, "code.pt")  # a pickle that asks for a Python class
    assert "not a results file: the file asks to load the Python object 'pathlib." in error(code)


def test_stacked_tensor_is_accepted(tmp_path) -> None:
    stacked = torch.rand(3, 10, 60, 25)
    got = read_results(save(tmp_path, {"PRED": stacked}), IDS, [60, 60, 60])
    np.testing.assert_array_equal(got.predictions[2], stacked[2].numpy())
