"""The PIRender network loads the official checkpoint layout strictly and behaves as documented.

Random weights only: the key list is rebuilt here, independently of the module, from the
documented structure (docs/pirender.md), so a renamed or re-ordered layer fails even when the
counts still match.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from reactcli.errors import ReactError
from reactcli.render.pirender import (
    N_KEYS,
    N_PARAMETERS,
    LayerNorm2d,
    PIRender,
    driving_windows,
    flow_to_deformation,
    load_pirender,
    to_uint8,
    warp,
)

Shapes = dict[str, tuple[int, ...]]


def _conv(keys: Shapes, prefix: str, cin: int, cout: int, k: int, transposed: bool = False, dims: int = 2) -> None:
    keys[f"{prefix}.weight"] = (cin, cout) + (k,) * dims if transposed else (cout, cin) + (k,) * dims
    keys[f"{prefix}.bias"] = (cout,)


def _adain(keys: Shapes, prefix: str, channels: int) -> None:
    keys[f"{prefix}.mlp_shared.0.weight"], keys[f"{prefix}.mlp_shared.0.bias"] = (128, 256), (128,)
    for name in ("mlp_gamma", "mlp_beta"):
        keys[f"{prefix}.{name}.weight"], keys[f"{prefix}.{name}.bias"] = (channels, 128), (channels,)


def _ln(keys: Shapes, prefix: str, channels: int) -> None:
    keys[f"{prefix}.weight"] = keys[f"{prefix}.bias"] = (channels, 1, 1)


def _block(keys: Shapes, prefix: str, cin: int, cout: int, k: int, norm: bool = True) -> None:
    _conv(keys, f"{prefix}.model.0", cin, cout, k)
    if norm:
        _ln(keys, f"{prefix}.model.1", cout)


def spec_keys() -> Shapes:
    """The checkpoint's key names and shapes, written out from the documented structure."""
    keys: Shapes = {}
    m = "mapping_net"
    _conv(keys, f"{m}.pre", 58, 73, 1, dims=1)
    _conv(keys, f"{m}.first.0", 73, 256, 7, dims=1)
    for i in range(3):
        _conv(keys, f"{m}.encoder{i}.1", 256, 256, 3, dims=1)
    enc = "warpping_net.hourglass.encoder"
    _conv(keys, f"{enc}.input_layer", 3, 32, 7)
    for i, (cin, cout) in enumerate([(32, 64), (64, 128), (128, 256), (256, 256), (256, 256)]):
        _adain(keys, f"{enc}.encoder{i}.norm_0", cin)
        _conv(keys, f"{enc}.encoder{i}.conv_0", cin, cout, 4)
        _adain(keys, f"{enc}.encoder{i}.norm_1", cout)
        _conv(keys, f"{enc}.encoder{i}.conv_1", cout, cout, 3)
    dec = "warpping_net.hourglass.decoder"
    for i, cin, cout in [(4, 256, 256), (3, 512, 256), (2, 512, 128)]:
        p = f"{dec}.decoder{i}"
        _adain(keys, f"{p}.norm_0", cin)
        _conv(keys, f"{p}.conv_0", cin, cout, 3)
        _adain(keys, f"{p}.norm_1", cout)
        _conv(keys, f"{p}.conv_1", cout, cout, 3, transposed=True)
        _adain(keys, f"{p}.norm_s", cin)
        _conv(keys, f"{p}.conv_s", cin, cout, 3, transposed=True)
    _ln(keys, "warpping_net.flow_out.0", 256)
    _conv(keys, "warpping_net.flow_out.2", 256, 2, 7)
    e = "editing_net.encoder"
    _block(keys, f"{e}.first", 6, 64, 7)
    for i, (cin, cout) in enumerate([(64, 128), (128, 256), (256, 256)]):
        _block(keys, f"{e}.down{i}", cin, cout, 3)
    d = "editing_net.decoder"
    for i, cin, cout in [(2, 256, 256), (1, 256, 128), (0, 128, 64)]:
        for j in range(2):
            for n in (1, 2):
                _conv(keys, f"{d}.res{i}.res{j}.conv{n}", cin, cin, 3)
                _adain(keys, f"{d}.res{i}.res{j}.norm{n}", cin)
        _block(keys, f"{d}.up{i}", cin, cout, 3)
        _block(keys, f"{d}.jump{i}", cout, cout, 3)
    _block(keys, f"{d}.final", 64, 3, 7, norm=False)
    return keys


def random_state(seed: int = 0, prefix: str = "") -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {prefix + k: torch.randn(shape, generator=gen) * 0.05 for k, shape in spec_keys().items()}


@pytest.fixture(scope="module")
def model() -> PIRender:
    torch.manual_seed(0)
    return PIRender().eval()


def test_spec_key_list_matches_the_documented_counts() -> None:
    keys = spec_keys()
    assert len(keys) == N_KEYS == 306
    assert sum(int(np.prod(s)) for s in keys.values()) == N_PARAMETERS == 22_523_416
    parts = {
        p: sum(int(np.prod(s)) for k, s in keys.items() if k.startswith(p + "."))
        for p in ("mapping_net", "warpping_net", "editing_net")
    }
    assert parts == {"mapping_net": 725_971, "warpping_net": 12_707_138, "editing_net": 9_090_307}


def test_network_has_exactly_the_spec_keys_and_shapes(model: PIRender) -> None:
    state = model.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == spec_keys()
    assert sum(p.numel() for p in model.parameters()) == N_PARAMETERS
    assert list(model.buffers()) == []


@pytest.mark.parametrize("prefix", ["", "module."])
def test_official_layout_loads_strictly(tmp_path: Path, prefix: str) -> None:
    state = random_state(1, prefix)
    path = tmp_path / "cur_model_fold.pth"
    torch.save({"state_dict": state, "epoch": 7}, path)
    net = load_pirender(path)
    assert isinstance(net, PIRender) and not net.training
    loaded = net.state_dict()
    assert len(loaded) == N_KEYS
    for key, value in state.items():
        assert torch.equal(loaded[key[len(prefix) :]], value), key


def _error(path: Path) -> str:
    with pytest.raises(ReactError) as info:
        load_pirender(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


def test_missing_key_is_one_line(tmp_path: Path) -> None:
    state = random_state()
    del state["editing_net.decoder.final.model.0.bias"], state["mapping_net.pre.weight"]
    torch.save({"state_dict": state}, tmp_path / "missing.pth")
    message = _error(tmp_path / "missing.pth")
    assert "2 keys missing" in message and "mapping_net.pre.weight" in message
    assert "editing_net.decoder.final.model.0.bias" in message and "unexpected" not in message


def test_extra_keys_are_counted_and_the_first_few_named(tmp_path: Path) -> None:
    state = random_state()
    for i in range(5):
        state[f"net_G_ema.extra{i}"] = torch.zeros(1)
    torch.save({"state_dict": state}, tmp_path / "extra.pth")
    message = _error(tmp_path / "extra.pth")
    assert "5 keys unexpected" in message and "net_G_ema.extra0" in message and "(2 more)" in message
    assert "missing" not in message


def test_wrong_shape_names_key_and_shapes(tmp_path: Path) -> None:
    state = random_state()
    state["warpping_net.flow_out.2.weight"] = torch.zeros(3, 256, 7, 7)
    torch.save({"state_dict": state}, tmp_path / "shape.pth")
    message = _error(tmp_path / "shape.pth")
    assert "1 key of the wrong shape" in message
    assert "warpping_net.flow_out.2.weight (3, 256, 7, 7) instead of (2, 256, 7, 7)" in message


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"not a checkpoint at all", "not a PyTorch checkpoint"),
        ({"model": {}}, "has no 'state_dict' entry"),
        ([1, 2, 3], "has no 'state_dict' entry"),
        ({"state_dict": {"a": 1}}, "not a mapping of tensors"),
    ],
)
def test_non_checkpoint_files_are_one_line(tmp_path: Path, content: object, expected: str) -> None:
    path = tmp_path / "bad.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    assert expected in _error(path)


class _Pickled:
    """Stands for anything but tensors and containers (an optimizer, a config object)."""


def test_checkpoint_needing_full_pickle_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "pickled.pth"
    torch.save({"state_dict": random_state(), "options": _Pickled()}, path)
    message = _error(path)
    assert "holds objects other than tensors such as " in message and "_Pickled" in message


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    assert "no such file" in _error(tmp_path / "absent.pth")


def test_full_size_forward_shapes_and_range(model: PIRender) -> None:
    reference = torch.rand(1, 3, 224, 224) * 2 - 1
    driving = driving_windows(torch.randn(40, 58), frames=[0])
    start = time.perf_counter()
    with torch.no_grad():
        out = model(reference, driving)
    assert time.perf_counter() - start < 60
    assert tuple(out["flow_field"].shape) == (1, 2, 56, 56)
    assert tuple(out["warp_image"].shape) == tuple(out["fake_image"].shape) == (1, 3, 224, 224)
    assert out["fake_image"].abs().max() <= 1 and torch.isfinite(out["fake_image"]).all()


def test_forward_rejects_bad_shapes(model: PIRender) -> None:
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.zeros(1, 3, 100, 100), torch.zeros(1, 58, 27))
    with pytest.raises(ValueError, match="driving"):
        model(torch.zeros(1, 3, 64, 64), torch.zeros(1, 58, 25))


def test_zero_flow_warps_an_image_onto_itself() -> None:
    # Zero flow at the image resolution keeps a constant image (interior) and samples pixel
    # j at j * w / (w - 1) - 0.5: the documented grid convention, exact at the centre.
    w = 57
    flat = torch.full((1, 3, w, w), 0.7)
    zero = torch.zeros(1, 2, w, w)
    assert torch.allclose(warp(flat, zero)[..., 1:-1, 1:-1], flat[..., 1:-1, 1:-1], atol=1e-6)
    ramp = torch.arange(w, dtype=torch.float32).expand(1, 1, w, w).contiguous()
    sampled = warp(ramp, zero)[0, 0, w // 2]
    j = torch.arange(w, dtype=torch.float32)
    assert torch.allclose(sampled[1:-1], (j * w / (w - 1) - 0.5)[1:-1], atol=1e-4)
    assert sampled[w // 2] == pytest.approx(w // 2, abs=1e-4)
    # A 56 x 56 flow resized to a 224 image: still the image, up to the grid convention's ~2 px.
    image = torch.linspace(-1, 1, 224).expand(1, 3, 224, 224).contiguous()
    out = warp(image, torch.zeros(1, 2, 56, 56))
    step = 2 / 223
    assert (out - image)[..., 4:-4, 4:-4].abs().max() < 2.1 * step
    assert (out - image)[..., 106:118, 106:118].abs().max() < 0.2 * step


def test_flow_moves_the_sampling_point_by_flow_pixels() -> None:
    flow = torch.zeros(1, 2, 8, 8)
    flow[:, 0] = 2.0  # two flow pixels to the right
    flow[:, 1] = -1.0  # one up
    moved, still = flow_to_deformation(flow), flow_to_deformation(torch.zeros_like(flow))
    assert torch.allclose(moved[..., 0] - still[..., 0], torch.full((1, 8, 8), 2 * 2 / 7))
    assert torch.allclose(moved[..., 1] - still[..., 1], torch.full((1, 8, 8), -2 / 7))
    assert torch.allclose(still[0, 0, :, 0], torch.linspace(-1, 1, 8))


def test_dead_conv1_norm1_do_not_change_the_output(model: PIRender) -> None:
    torch.manual_seed(3)
    reference, driving = torch.rand(2, 3, 64, 64) * 2 - 1, torch.randn(2, 58, 27)
    with torch.no_grad():
        before = model(reference, driving)["fake_image"]
        saved = {k: v.clone() for k, v in model.state_dict().items()}
        dead = [k for k in saved if ".conv1." in k or ".norm1." in k]
        assert len(dead) == 48
        try:
            for name, p in model.named_parameters():
                if name in dead:
                    p.normal_(0, 1)
            assert torch.equal(model(reference, driving)["fake_image"], before)
            for name, p in model.named_parameters():  # the live twin does change it: the test can fail
                if ".conv2." in name:
                    p.normal_(0, 1)
            assert not torch.allclose(model(reference, driving)["fake_image"], before)
        finally:
            model.load_state_dict(saved)


def test_layer_norm_2d_equals_group_norm_1() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 6, 5, 7) * 3 + 1
    ln, gn = LayerNorm2d(6), torch.nn.GroupNorm(1, 6, eps=1e-5)
    with torch.no_grad():
        ln.weight.normal_(), ln.bias.normal_()
        gn.weight.copy_(ln.weight.view(-1)), gn.bias.copy_(ln.bias.view(-1))
    assert torch.allclose(ln(x), gn(x), atol=1e-5)
    assert tuple(ln.weight.shape) == (6, 1, 1)


def test_driving_windows_clamp_to_the_clip() -> None:
    coeffs = np.arange(30 * 58, dtype=np.float32).reshape(30, 58)
    windows = driving_windows(coeffs)
    assert tuple(windows.shape) == (30, 58, 27)
    frames = lambda t: windows[t, 0].numpy() / 58  # noqa: E731  frame index seen at each window slot
    assert frames(0).tolist() == [0] * 14 + list(range(1, 14))
    assert frames(15).tolist() == list(range(2, 29))
    assert frames(29).tolist() == list(range(16, 30)) + [29] * 13
    assert torch.equal(windows[5, :, 13], torch.from_numpy(coeffs[5]))  # the centre is frame t, all 58 dims
    assert torch.equal(driving_windows(coeffs, frames=[0, 29]), windows[[0, 29]])
    assert tuple(driving_windows(coeffs[:1]).shape) == (1, 58, 27)  # one frame: replicated 27 times
    with pytest.raises(ValueError):
        driving_windows(coeffs, frames=[30])
    with pytest.raises(ValueError):
        driving_windows(coeffs[:, :57])


def test_to_uint8_truncates() -> None:
    x = torch.tensor([-1.5, -1.0, 0.0, 0.999, 1.0, 2.0]).view(1, 1, 1, 6).expand(1, 3, 1, 6)
    assert to_uint8(x)[0, 0, :, 0].tolist() == [0, 0, 127, 254, 255, 255]


def test_chunking_and_mode_do_not_change_the_output(model: PIRender) -> None:
    # No batch statistics anywhere: any chunking of a clip, and train or eval mode, give the same frames.
    torch.manual_seed(4)
    reference, driving = torch.rand(3, 3, 64, 64) * 2 - 1, torch.randn(3, 58, 27)
    with torch.no_grad():
        whole = model(reference, driving)["fake_image"]
        parts = torch.cat([model(reference[i : i + 1], driving[i : i + 1])["fake_image"] for i in range(3)])
        model.train()
        try:
            trained = model(reference, driving)["fake_image"]
        finally:
            model.eval()
    assert torch.allclose(whole, parts, atol=1e-4)  # float rounding of batch-size-dependent conv kernels
    assert torch.equal(whole, trained)
