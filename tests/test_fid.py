"""FID without torchvision: the Inception key layout, loading errors, preprocessing, the formula, `react fid`.

Random weights only (no download). The weights are "calibrated": BatchNorm running statistics set
from one pass over random images, so activations stay O(1) through the 94 convs (the default init
lets them shrink towards denormals, which are slow and make every FID ~0 trivially).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from _weight_fixtures import save_random_inception
from PIL import Image

from reactcli.cli import main
from reactcli.errors import ReactError
from reactcli.metrics.inception import (
    FIDInceptionV3,
    image_features,
    inception_keys,
    list_images,
    load_inception,
    preprocess,
    read_image,
)
from reactcli.metrics.realism import frechet_distance

# ------------------------------------------------------------------ the spec's layout, written out
# (name, in, out, kh, kw) of every BasicConv2d, in state-dict order, from spec/fid.md.
_A = lambda cin, p: [("branch1x1", cin, 64, 1, 1), ("branch5x5_1", cin, 48, 1, 1), ("branch5x5_2", 48, 64, 5, 5),  # noqa: E731
                     ("branch3x3dbl_1", cin, 64, 1, 1), ("branch3x3dbl_2", 64, 96, 3, 3),
                     ("branch3x3dbl_3", 96, 96, 3, 3), ("branch_pool", cin, p, 1, 1)]
_C = lambda c7: [("branch1x1", 768, 192, 1, 1), ("branch7x7_1", 768, c7, 1, 1), ("branch7x7_2", c7, c7, 1, 7),  # noqa: E731
                 ("branch7x7_3", c7, 192, 7, 1), ("branch7x7dbl_1", 768, c7, 1, 1),
                 ("branch7x7dbl_2", c7, c7, 7, 1), ("branch7x7dbl_3", c7, c7, 1, 7),
                 ("branch7x7dbl_4", c7, c7, 7, 1), ("branch7x7dbl_5", c7, 192, 1, 7), ("branch_pool", 768, 192, 1, 1)]
_E = lambda cin: [("branch1x1", cin, 320, 1, 1), ("branch3x3_1", cin, 384, 1, 1), ("branch3x3_2a", 384, 384, 1, 3),  # noqa: E731
                  ("branch3x3_2b", 384, 384, 3, 1), ("branch3x3dbl_1", cin, 448, 1, 1),
                  ("branch3x3dbl_2", 448, 384, 3, 3), ("branch3x3dbl_3a", 384, 384, 1, 3),
                  ("branch3x3dbl_3b", 384, 384, 3, 1), ("branch_pool", cin, 192, 1, 1)]
SPEC_BLOCKS: list[tuple[str, list[tuple[str, int, int, int, int]]]] = [
    ("", [("Conv2d_1a_3x3", 3, 32, 3, 3), ("Conv2d_2a_3x3", 32, 32, 3, 3), ("Conv2d_2b_3x3", 32, 64, 3, 3),
          ("Conv2d_3b_1x1", 64, 80, 1, 1), ("Conv2d_4a_3x3", 80, 192, 3, 3)]),
    ("Mixed_5b.", _A(192, 32)), ("Mixed_5c.", _A(256, 64)), ("Mixed_5d.", _A(288, 64)),
    ("Mixed_6a.", [("branch3x3", 288, 384, 3, 3), ("branch3x3dbl_1", 288, 64, 1, 1),
                   ("branch3x3dbl_2", 64, 96, 3, 3), ("branch3x3dbl_3", 96, 96, 3, 3)]),
    ("Mixed_6b.", _C(128)), ("Mixed_6c.", _C(160)), ("Mixed_6d.", _C(160)), ("Mixed_6e.", _C(192)),
    ("Mixed_7a.", [("branch3x3_1", 768, 192, 1, 1), ("branch3x3_2", 192, 320, 3, 3),
                   ("branch7x7x3_1", 768, 192, 1, 1), ("branch7x7x3_2", 192, 192, 1, 7),
                   ("branch7x7x3_3", 192, 192, 7, 1), ("branch7x7x3_4", 192, 192, 3, 3)]),
    ("Mixed_7b.", _E(1280)), ("Mixed_7c.", _E(2048)),
]


def spec_layout() -> dict[str, tuple[int, ...]]:
    """key -> shape of the official file, built from the spec rather than from our module."""
    layout: dict[str, tuple[int, ...]] = {}
    for prefix, convs in SPEC_BLOCKS:
        for name, cin, cout, kh, kw in convs:
            x = prefix + name
            layout[f"{x}.conv.weight"] = (cout, cin, kh, kw)
            for part in ("weight", "bias", "running_mean", "running_var"):
                layout[f"{x}.bn.{part}"] = (cout,)
            layout[f"{x}.bn.num_batches_tracked"] = ()
    layout["fc.weight"] = (1008, 2048)
    layout["fc.bias"] = (1008,)
    return layout


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_inception(tmp_path_factory.mktemp("fid") / "pt_inception-2015-12-05-6726825d.pth")


def write_pngs(folder: Path, count: int, seed: int, size: tuple[int, int] = (48, 48)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str, needle: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert "Traceback" not in err


# ------------------------------------------------------------------ the network and its file
def test_key_list_and_shapes_equal_the_spec() -> None:
    layout = spec_layout()
    assert len(layout) == 566
    assert inception_keys() == list(layout)  # names and order
    state = FIDInceptionV3().state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == layout
    params = sum(v.numel() for k, v in state.items() if "running" not in k and "num_batches" not in k)
    assert params == 23_850_960


def test_loads_strictly_with_and_without_num_batches_tracked(weights: Path, tmp_path: Path) -> None:
    model = load_inception(weights)
    assert not model.training
    state = torch.load(weights, weights_only=True)
    slim = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert len(slim) == 566 - 94
    torch.save(slim, tmp_path / "slim.pth")
    again = load_inception(tmp_path / "slim.pth")
    x = torch.rand(1, 3, 40, 40)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def test_shapes_through_the_network_and_the_fid_pool_patches() -> None:
    torch.manual_seed(0)
    model = FIDInceptionV3().eval()
    seen: dict[str, tuple[int, ...]] = {}
    for name, module in model.named_children():
        if name != "fc":
            module.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, tuple(o.shape[1:])))
    with torch.no_grad():
        out = model.features(torch.rand(1, 3, 299, 299) * 2 - 1)
    assert out.shape == (1, 2048)
    assert seen == {
        "Conv2d_1a_3x3": (32, 149, 149), "Conv2d_2a_3x3": (32, 147, 147), "Conv2d_2b_3x3": (64, 147, 147),
        "Conv2d_3b_1x1": (80, 73, 73), "Conv2d_4a_3x3": (192, 71, 71), "Mixed_5b": (256, 35, 35),
        "Mixed_5c": (288, 35, 35), "Mixed_5d": (288, 35, 35), "Mixed_6a": (768, 17, 17),
        **{f"Mixed_6{c}": (768, 17, 17) for c in "bcde"}, "Mixed_7a": (1280, 8, 8),
        "Mixed_7b": (2048, 8, 8), "Mixed_7c": (2048, 8, 8),
    }
    # the pooled branch (last 192 channels): Mixed_7b averages without the padded zeros, Mixed_7c takes a max
    x = torch.rand(1, 1280, 8, 8)
    with torch.no_grad():
        avg = torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        assert torch.allclose(model.Mixed_7b(x)[:, -192:], model.Mixed_7b.branch_pool(avg))
        y = torch.rand(1, 2048, 8, 8)
        mx = torch.nn.functional.max_pool2d(y, 3, 1, 1)
        assert torch.allclose(model.Mixed_7c(y)[:, -192:], model.Mixed_7c.branch_pool(mx))
        ones = torch.ones(1, 192, 35, 35)  # a constant input stays constant only without counting padding
        ref = model.Mixed_5b.branch_pool(ones)
        assert torch.allclose(model.Mixed_5b(ones)[:, -32:], ref)


@pytest.mark.parametrize("case", ["missing", "not_torch", "wrapped", "missing_key", "extra_key", "wrong_shape"])
def test_a_wrong_weights_file_is_one_line_naming_it(case: str, weights: Path, tmp_path: Path) -> None:
    path = tmp_path / f"{case}.pth"
    state = torch.load(weights, weights_only=True)
    if case == "not_torch":
        path.write_text("not a checkpoint")
    elif case == "wrapped":
        torch.save({"state_dict": state}, path)
    elif case == "missing_key":
        del state["Mixed_6b.branch7x7_2.conv.weight"]
        torch.save(state, path)
    elif case == "extra_key":
        state["AuxLogits.fc.weight"] = torch.zeros(3)
        torch.save(state, path)
    elif case == "wrong_shape":
        state["fc.bias"] = torch.zeros(1000)
        torch.save(state, path)
    with pytest.raises(ReactError) as info:
        load_inception(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    expected = {"missing": "not found", "not_torch": "not a torch weights file", "wrapped": "not a plain state dict",
                "missing_key": "1 missing keys [Mixed_6b.branch7x7_2.conv.weight]",
                "extra_key": "1 unexpected keys [AuxLogits.fc.weight]", "wrong_shape": "fc.bias (1000,)"}[case]
    assert expected in message


# ------------------------------------------------------------------ preprocessing
def test_preprocessing_resizes_to_299_and_scales_to_minus_one_one(tmp_path: Path) -> None:
    x = torch.rand(2, 3, 224, 224)
    y = preprocess(x)
    assert y.shape == (2, 3, 299, 299) and y.dtype == torch.float32 and y.is_contiguous()
    assert y.min() >= -1.0 and y.max() <= 1.0
    assert torch.allclose(preprocess(torch.zeros(1, 3, 10, 20)), torch.full((1, 3, 299, 299), -1.0), atol=1e-6)
    assert torch.allclose(preprocess(torch.ones(1, 3, 10, 20)), torch.ones(1, 3, 299, 299), atol=1e-6)
    # bilinear, align_corners False, no antialias, then 2x - 1 (in that order)
    ref = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
    assert torch.allclose(y, ref, atol=1e-6)
    # decoding: PIL -> RGB -> uint8 / 255, (3, H, W); a grey PNG becomes three equal channels
    Image.fromarray(np.full((5, 7), 51, dtype=np.uint8)).save(tmp_path / "grey.png")
    img = read_image(tmp_path / "grey.png")
    assert img.shape == (3, 5, 7) and img.dtype == torch.float32
    assert torch.allclose(img, torch.full((3, 5, 7), 0.2))


def test_image_listing_and_features_do_not_depend_on_the_batch(weights: Path, tmp_path: Path) -> None:
    folder = write_pngs(tmp_path / "imgs", 3, seed=1)
    Image.fromarray(np.zeros((30, 20, 3), dtype=np.uint8)).save(folder / "wide.jpg")  # another size
    (folder / "skipped.PNG").write_bytes((folder / "000.png").read_bytes())  # case-sensitive, as pytorch-fid
    (folder / "notes.txt").write_text("x")
    files = list_images(folder)
    assert [p.name for p in files] == ["000.png", "001.png", "002.png", "wide.jpg"]
    model = load_inception(weights)
    one = image_features(files, model, batch_size=1)
    four = image_features(files, model, batch_size=4)
    assert one.shape == (4, 2048) and one.dtype == np.float64 and np.isfinite(one).all()
    assert one.std() > 1e-3  # calibrated weights: features are not all ~0
    np.testing.assert_allclose(one, four, rtol=1e-4, atol=1e-6)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_text("not a png")
    with pytest.raises(ReactError, match="a.png: cannot read image"):
        image_features([tmp_path / "bad" / "a.png"], model)


# ------------------------------------------------------------------ the formula
def test_frechet_distance_of_gaussians_matches_the_closed_form() -> None:
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    d1, d2 = rng.uniform(0.5, 3.0, 5), rng.uniform(0.5, 3.0, 5)
    closed = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(d1) - np.sqrt(d2)) ** 2)
    assert frechet_distance(mu1, np.diag(d1), mu2, np.diag(d2)) == pytest.approx(closed, rel=1e-10)
    # same eigenvectors, not diagonal: S = Q D Q^T commute, so the same closed form holds
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    s1, s2 = q @ np.diag(d1) @ q.T, q @ np.diag(d2) @ q.T
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(closed, rel=1e-8)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-10)


def test_frechet_distance_rejects_a_clearly_complex_root_as_pytorch_fid_does() -> None:
    # sqrtm(diag(-1, 1)) = diag(i, 1): an imaginary diagonal of 1 > 1e-3 is an error, not dropped
    with pytest.raises(ValueError, match="Imaginary component 1.0"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.diag([-1.0, 1.0]))


# ------------------------------------------------------------------ react fid
@pytest.mark.slow  # two 2048 x 2048 matrix square roots (~25 s each on one slow core)
def test_react_fid_end_to_end(weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = write_pngs(tmp_path / "real", 4, seed=1)
    fake = write_pngs(tmp_path / "fake", 3, seed=2)
    out = tmp_path / "fid.json"
    code, stdout, err = run(["fid", real, fake, "--inception", weights, "--json", out, "--batch-size", "2",
                             "--device", "cpu"], capsys)
    assert code == 0, err
    result = json.loads(out.read_text())
    assert result["real_images"] == 4 and result["fake_images"] == 3 and result["dims"] == 2048
    assert result["fid"] > 1e-3 and f"FID: {result['fid']:.6f}" in stdout
    # a folder against (a copy of) itself
    shutil.copytree(real, tmp_path / "copy")
    code, stdout, err = run(["fid", real, tmp_path / "copy", "--inception", weights, "--json", out], capsys)
    assert code == 0, err
    same = json.loads(out.read_text())["fid"]
    assert abs(same) < 1e-6 * result["fid"] + 1e-6


def test_react_fid_errors_are_one_line(weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = write_pngs(tmp_path / "real", 3, seed=1)
    (tmp_path / "empty").mkdir()
    bad = tmp_path / "bad.pth"
    bad.write_text("nope")
    cases = [
        ([real, tmp_path / "nowhere", "--inception", weights], "nowhere: image folder not found"),
        ([real, tmp_path / "empty", "--inception", weights], "empty: found 0 image(s)"),
        ([real, real, "--inception", bad], "bad.pth: not a torch weights file"),
        ([real, real, "--inception", tmp_path / "none.pth"], "none.pth: FID Inception weights file not found"),
    ]
    for args, needle in cases:
        code, _, err = run(["fid", *args], capsys)
        assert code == 1
        one_line_error(err, needle)
