"""The MARS post-processor: segment plans, strict loading, and parity with a from-the-spec reference."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from _mars_cli_helpers import small_checkpoint as write_small_checkpoint

from reactcli.errors import ReactError
from reactcli.models.post_processor import (
    EmotionVAE,
    SegmentError,
    align_targets,
    baseline_script_generator,
    load_into,
    load_post_processor,
    plan_segments,
    resample_target,
    segment_inputs,
)


# ---------------------------------------------------------------- segment plans (hand-worked)
@pytest.mark.parametrize(
    ("p", "t", "direction", "segment", "inputs", "outputs"),
    [
        (800, 300, "up", 300, [300], [800]),  # one segment: everything at once
        (2500, 700, "up", 234, [234, 234, 232], [1000, 1000, 500]),  # s = ceil(700/3); 700 % 234 = 232
        (3000, 900, "up", 300, [300, 300, 300], [1000, 1000, 1000]),  # both divide evenly
        (58, 900, "down", 1000, [900], [58]),
        (700, 2500, "down", 1000, [1000, 1000, 500], [234, 234, 232]),  # m = ceil(700/3)
        (600, 3000, "down", 1000, [1000, 1000, 1000], [200, 200, 200]),
        (58, 30000, "down", 1000, [1000] * 30, [2] * 30),  # m = 2: 30 x 2 = 60 frames for P = 58
        (100, 10500, "down", 1000, [1000] * 10 + [500], [10] * 11),  # m = 10: 110 frames for P = 100
    ],
)
def test_segment_plans(p, t, direction, segment, inputs, outputs) -> None:
    plan = plan_segments(p, t)
    assert (plan.direction, plan.segment) == (direction, segment)
    assert list(plan.input_lengths) == inputs and list(plan.output_lengths) == outputs
    assert plan.output_total == sum(outputs) and plan.fits == (sum(outputs) == p)


def test_crashing_and_refused_plans() -> None:
    assert plan_segments(58, 30000).output_total == 60 and not plan_segments(58, 30000).fits
    assert plan_segments(58, 20000).fits  # n = 20, m = 3: 19 x 3 + 1 = 58
    same = plan_segments(750, 750)
    assert same.direction == "same" and same.segments == 0 and same.fits
    with pytest.raises(SegmentError, match="4-frame target"):
        plan_segments(5000, 4)  # needs 5 segments of at least one frame
    with pytest.raises(SegmentError, match="3-frame prediction"):
        plan_segments(3, 5000)


def test_segment_inputs_layout() -> None:
    target = np.arange(7 * 2, dtype=np.float32).reshape(7, 2) + 1
    plan = plan_segments(25, 7, clip=10)  # up: n = 3, s = 3 -> lengths 3, 3, 1
    x = segment_inputs(target, plan)
    assert x.shape == (3, 10, 2) and list(plan.input_lengths) == [3, 3, 1]
    np.testing.assert_array_equal(x[0, :3], target[:3])
    np.testing.assert_array_equal(x[2, :1], target[6:7])
    assert not x[2, 1:].any() and not x[:, 3:].any()
    down = plan_segments(4, 23, clip=10)  # n = 3 segments of 10
    y = segment_inputs(np.ones((23, 2), np.float32), down)
    assert y.shape == (3, 10, 2) and y[2, :3].all() and not y[2, 3:].any()


# ---------------------------------------------------------------- a reference written from the spec
def _ln(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5) * w + b


def _attention(sd, prefix, q_in, kv_in, heads, ignore=None):
    d = q_in.shape[-1]
    w, b = sd[prefix + "in_proj_weight"], sd[prefix + "in_proj_bias"]
    q, k, v = q_in @ w[:d].T + b[:d], kv_in @ w[d : 2 * d].T + b[d : 2 * d], kv_in @ w[2 * d :].T + b[2 * d :]
    hd = d // heads
    parts = []
    for h in range(heads):
        sl = slice(h * hd, (h + 1) * hd)
        scores = q[:, sl] @ k[:, sl].T / math.sqrt(hd)
        if ignore is not None:
            scores[:, ignore] = -math.inf
        parts.append(torch.softmax(scores, dim=-1) @ v[:, sl])
    return torch.cat(parts, -1) @ sd[prefix + "out_proj.weight"].T + sd[prefix + "out_proj.bias"]


def _ff(sd, p, x):
    return (
        torch.relu(x @ sd[p + "linear1.weight"].T + sd[p + "linear1.bias"]) @ sd[p + "linear2.weight"].T
        + sd[p + "linear2.bias"]
    )


def reference_segment(sd, heads, segment, in_len, out_len, eps=None):
    """One segment by the spec, frame by frame where it matters: returns AU logits, VA, expression logits."""
    clip = segment.shape[0]
    pe = sd["PE.pe"][:, 0]
    layers_e = len({k.split(".")[3] for k in sd if k.startswith("encoder.transformer_encoder.layers.")})
    layers_d = len({k.split(".")[3] for k in sd if k.startswith("decoder.transformer_decoder.layers.")})
    x = segment @ sd["in_proj.weight"].T + sd["in_proj.bias"]
    x = x + torch.cat((pe[:in_len], torch.zeros(clip - in_len, pe.shape[1])))
    glob = sd["encoder.global_tokens"][0]
    tokens = glob.shape[0]
    h = torch.cat((glob, x))
    ignore = torch.cat((torch.zeros(tokens, dtype=torch.bool), torch.arange(clip) >= in_len))
    for i in range(layers_e):
        p = f"encoder.transformer_encoder.layers.{i}."
        h = _ln(h + _attention(sd, p + "self_attn.", h, h, heads, ignore), sd[p + "norm1.weight"], sd[p + "norm1.bias"])
        h = _ln(h + _ff(sd, p, h), sd[p + "norm2.weight"], sd[p + "norm2.bias"])
    mu, logvar = h[: tokens // 2], h[tokens // 2 : tokens]
    latent = mu if eps is None else mu + eps * torch.sqrt(torch.exp(logvar))
    q = torch.cat((pe[:out_len], torch.zeros(clip - out_len, pe.shape[1])))
    pad = torch.arange(clip) >= out_len
    for i in range(layers_d):
        p = f"decoder.transformer_decoder.layers.{i}."
        q = _ln(q + _attention(sd, p + "self_attn.", q, q, heads, pad), sd[p + "norm1.weight"], sd[p + "norm1.bias"])
        q = _ln(
            q + _attention(sd, p + "multihead_attn.", q, latent, heads), sd[p + "norm2.weight"], sd[p + "norm2.bias"]
        )
        q = _ln(q + _ff(sd, p, q), sd[p + "norm3.weight"], sd[p + "norm3.bias"])
    q = q[:out_len]
    return (
        q @ sd["au_out_proj.weight"].T + sd["au_out_proj.bias"],
        q @ sd["va_out_proj.weight"].T + sd["va_out_proj.bias"],
        q @ sd["emo_out_proj.weight"].T + sd["emo_out_proj.bias"],
    )


def reference_align(sd, heads, p_len, target, clip, eps=None):
    """The spec's per-target procedure: plan, segments, decode, keep; returns (frames, AU logits)."""
    plan = plan_segments(p_len, target.shape[0], clip)
    if plan.direction == "same":
        return target, None
    segs = segment_inputs(target, plan)
    frames, logits = [], []
    for i in range(plan.segments):
        au, va, em = reference_segment(
            sd, heads, torch.from_numpy(segs[i]), plan.input_lengths[i], plan.output_lengths[i],
            None if eps is None else eps[i],
        )  # fmt: skip
        frames.append(torch.cat(((torch.sigmoid(au) >= 0.5).float(), va, torch.softmax(em, -1)), -1))
        logits.append(au)
    return torch.cat(frames).numpy(), torch.cat(logits).numpy()


SMALL = dict(
    feature_dim=32, heads=4, encoder_layers=2, decoder_layers=2, feedforward=48, latent_tokens=3, max_positions=64
)
CLIP = 12


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    """Random weights (larger than init, so outputs vary) saved in the organisers' checkpoint layout."""
    return write_small_checkpoint(tmp_path_factory.mktemp("pp") / "checkpoint.pth", sizes=SMALL)


def _assert_same(ours: np.ndarray, ref: np.ndarray, logits: np.ndarray | None) -> None:
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours[:, 15:], ref[:, 15:], rtol=1e-4, atol=1e-5)
    clear = np.abs(logits) > 1e-4 if logits is not None else np.ones_like(ref[:, :15], bool)
    np.testing.assert_array_equal(ours[:, :15][clear], ref[:, :15][clear])
    assert clear.mean() > 0.95  # the comparison really covered the AUs


# lengths with several segments both ways (clip 12): up 30 <- 7, 20, 11 (3 segments each), down
# 10 <- 40 (4) and 13 (2), 14 <- 40 (4) and 26 (3), one segment up (10 <- 5), and pass-throughs
CASES = [(30, [7, 20, 30, 11]), (10, [40, 13, 10, 5]), (14, [13, 40, 26])]


def _targets(seed: int):
    rng = np.random.default_rng(seed)
    out = []
    for _p, lengths in CASES:
        gts = []
        for t in lengths:
            g = rng.normal(0, 0.5, (t, 25)).astype(np.float32)
            g[:, :15] = rng.random((t, 15)) < 0.3
            gts.append(g)
        out.append(gts)
    return out


def test_mean_mode_matches_the_reference(small_checkpoint) -> None:
    model = load_into(small_checkpoint, EmotionVAE(**SMALL))
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    targets = _targets(0)
    result = align_targets([p for p, _ in CASES], targets, "mean", model=model, clip=CLIP)
    assert result.warnings == [] and result.draws == 0
    for (p_len, _), gts, aligned in zip(CASES, targets, result.targets, strict=True):
        assert aligned.shape == (len(gts), p_len, 25)
        for j, gt in enumerate(gts):
            ref, logits = reference_align(sd, SMALL["heads"], p_len, gt, CLIP)
            if logits is None:
                np.testing.assert_array_equal(aligned[j], gt)  # pass-through, not re-binarised
            else:
                _assert_same(aligned[j], ref, logits)


def test_official_mode_draws_one_eps_per_aligned_target_in_order(small_checkpoint) -> None:
    model = load_into(small_checkpoint, EmotionVAE(**SMALL))
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    targets = _targets(1)
    result = align_targets([p for p, _ in CASES], targets, "official", model=model,
                           generator=torch.Generator().manual_seed(11), clip=CLIP)  # fmt: skip
    assert result.draws == sum(t != p for p, ts in CASES for t in ts)
    torch.manual_seed(11)  # the organisers' call: torch's global generator, one draw per aligned target
    for (p_len, _), gts, aligned in zip(CASES, targets, result.targets, strict=True):
        for j, gt in enumerate(gts):
            plan = plan_segments(p_len, gt.shape[0], CLIP)
            eps = None
            if plan.direction != "same":
                eps = torch.empty(plan.segments, SMALL["latent_tokens"], SMALL["feature_dim"]).normal_()
            ref, logits = reference_align(sd, SMALL["heads"], p_len, gt, CLIP, eps)
            _assert_same(aligned[j], ref, logits)
    mean = align_targets([p for p, _ in CASES], targets, "mean", model=model, clip=CLIP)
    assert not np.allclose(mean.targets[0][1][:, 15:17], result.targets[0][1][:, 15:17])  # the noise matters


def test_length_quirk_errors_in_official_and_cuts_in_mean(small_checkpoint) -> None:
    model = load_into(small_checkpoint, EmotionVAE(**SMALL))
    plan = plan_segments(20, 200, CLIP)  # n = 17, m = 2: 17 x 2 = 34 frames for P = 20
    assert plan.output_total == 34
    gts = [[np.zeros((20, 25), np.float32), np.random.default_rng(2).random((200, 25), np.float32)]]
    with pytest.raises(ReactError) as info:
        align_targets([20], gts, "official", model=model, generator=torch.Generator().manual_seed(0),
                      clip=CLIP, names=["speaker/session1/x"])  # fmt: skip
    assert "speaker/session1/x, ground truth 1" in str(info.value) and "34 frames" in str(info.value)
    result = align_targets([20], gts, "mean", model=model, clip=CLIP, names=["speaker/session1/x"])
    assert result.targets[0].shape == (2, 20, 25)
    assert len(result.warnings) == 1 and "kept the first 20" in result.warnings[0]
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    full, _ = reference_align(sd, SMALL["heads"], 20, gts[0][1], CLIP)
    assert full.shape == (34, 25)
    np.testing.assert_allclose(result.targets[0][1][:, 15:], full[:20, 15:], rtol=1e-4, atol=1e-5)
    with pytest.raises(ReactError, match="cannot align"):
        align_targets([2], [[np.zeros((95, 25), np.float32)]], "mean", model=model, clip=CLIP)


def test_resample_mode() -> None:
    target = np.zeros((3, 25), np.float32)
    target[:, 15] = [0.0, 1.0, 0.0]
    target[:, 0] = [0, 1, 1]
    target[:, 17] = [1.0, 0.0, 1.0]
    target[:, 18] = 1.0 - target[:, 17]
    out = resample_target(target, 5)
    np.testing.assert_allclose(out[:, 15], [0, 0.5, 1, 0.5, 0])
    np.testing.assert_array_equal(out[:, 0], [0, 1, 1, 1, 1])  # 0.5 rounds up, as the decoder's >= 0.5
    np.testing.assert_allclose(out[:, 17] + out[:, 18], 1.0)
    np.testing.assert_allclose(resample_target(target, 2)[:, 15], [0, 0])
    result = align_targets([5, 3], [[target], [target]], "resample")
    assert result.targets[0].shape == (1, 5, 25) and result.targets[1][0] is not None
    np.testing.assert_array_equal(result.targets[1][0], target)
    with pytest.raises(ReactError, match="needs the post-processor"):
        align_targets([5], [[target]], "mean")
    with pytest.raises(ReactError, match="unknown alignment"):
        align_targets([5], [[target]], "nearest")


# ---------------------------------------------------------------- strict loading of the released size
@pytest.fixture(scope="module")
def full_state():
    torch.manual_seed(0)
    return EmotionVAE().state_dict()


def _save(tmp_path, name, obj):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def _error(path) -> str:
    with pytest.raises(ReactError) as info:
        load_post_processor(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_released_layout_loads_strictly(tmp_path, full_state) -> None:
    assert len(full_state) == 190 and sum(v.numel() for v in full_state.values()) == 46_790_169
    path = _save(
        tmp_path, "checkpoint.pth", {"epoch": 3, "best_loss": 0.1, "state_dict": full_state, "optimizer": None}
    )
    before = torch.get_rng_state()
    model = load_post_processor(path)
    assert torch.equal(torch.get_rng_state(), before)  # loading leaves torch's generator alone
    assert not model.training
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], full_state[k]) for k in full_state)

    key = "decoder.transformer_decoder.layers.5.norm3.bias"
    missing = {k: v for k, v in full_state.items() if k != key}
    assert f"missing key '{key}'" in _error(_save(tmp_path, "missing.pth", {"state_dict": missing}))
    extra = {**full_state, "encoder.mu_head.weight": torch.zeros(2)}
    assert "unexpected key 'encoder.mu_head.weight'" in _error(_save(tmp_path, "extra.pth", {"state_dict": extra}))
    wrong = {**full_state, "in_proj.weight": torch.zeros(512, 24)}
    assert "'in_proj.weight' has shape (512, 24)" in _error(_save(tmp_path, "shape.pth", {"state_dict": wrong}))
    nan = {**full_state, "in_proj.bias": torch.full((512,), float("nan"))}
    assert "non-finite" in _error(_save(tmp_path, "nan.pth", {"state_dict": nan}))
    assert "no 'state_dict'" in _error(_save(tmp_path, "bare.pth", dict(list(full_state.items())[:3])))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    assert "not a PyTorch checkpoint (corrupt or truncated" in _error(garbage)
    code = _save(tmp_path, "code.pth", {"state_dict": {"in_proj.weight": Path("/a")}})  # asks for a Python class
    assert "not the organisers' post-processor checkpoint: the file asks to load the Python object 'pathlib." in _error(
        code
    )
    assert "no such file" in _error(tmp_path / "absent.pth")


def test_baseline_script_generator_is_seeded_and_side_effect_free() -> None:
    before = torch.get_rng_state()
    a = baseline_script_generator(1234)
    assert torch.equal(torch.get_rng_state(), before)
    b = baseline_script_generator(1234)
    assert torch.equal(a.get_state(), b.get_state())
    assert not torch.equal(a.get_state(), torch.Generator().manual_seed(1234).get_state())
