"""The z-buffer rasterizer: exact coverage, depth order, camera, shading, batching, brute-force parity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reactcli.render.camera import ALBEDO, AMBIENT, DIFFUSE, Camera, flat_shade
from reactcli.render.raster import MeshRenderer, rasterize, shade_fragments

ZNEAR, ZFAR = 0.01, 50.0


def covered_pixels(face_index: torch.Tensor, tri: int = 0) -> set[tuple[int, int]]:
    rows, cols = torch.nonzero(face_index == tri, as_tuple=True)
    return set(zip(rows.tolist(), cols.tolist(), strict=True))


def test_known_triangle_lands_on_expected_pixels() -> None:
    # right triangle (2,1)-(10,1)-(2,9): pixel centres (c+.5, r+.5) with c >= 2, r >= 1, c + r + 1 <= 11
    xy = torch.tensor([[[2.0, 1.0], [10.0, 1.0], [2.0, 9.0]]])
    frags = rasterize(xy, torch.full((1, 3), 5.0), torch.tensor([[0, 1, 2]]), 16, ZNEAR, ZFAR)
    expected = {(r, c) for r in range(16) for c in range(16) if c + 0.5 >= 2 and r + 0.5 >= 1 and c + r + 1 <= 11}
    assert covered_pixels(frags.face_index[0]) == expected
    assert len(expected) == 36
    assert (frags.face_index[0] == -1).sum() == 16 * 16 - 36
    assert torch.allclose(frags.depth[0][frags.face_index[0] == 0], torch.tensor(5.0), atol=1e-5)
    assert torch.isinf(frags.depth[0][frags.face_index[0] == -1]).all()


def test_winding_does_not_matter_and_offscreen_parts_are_clipped() -> None:
    tri_a = torch.tensor([[0, 1, 2]])
    tri_b = torch.tensor([[0, 2, 1]])
    xy = torch.tensor([[[-20.0, -5.0], [30.0, 4.0], [3.0, 40.0]]])
    a = rasterize(xy, torch.full((1, 3), 3.0), tri_a, 12, ZNEAR, ZFAR)
    b = rasterize(xy, torch.full((1, 3), 3.0), tri_b, 12, ZNEAR, ZFAR)
    assert torch.equal(a.face_index, b.face_index)
    assert 0 < (a.face_index == 0).sum() < 144


def test_depth_order_nearest_wins_whatever_the_order() -> None:
    # square P (vertices 0-3, pixels 0..11) and square Q (vertices 4-7, pixels 4..15) overlap in 4..11
    square = torch.tensor([[0.0, 0.0], [12.0, 0.0], [12.0, 12.0], [0.0, 12.0]])
    xy = torch.cat([square, square + 4.0])[None]
    tris = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    for depth_p, depth_q in ((7.0, 2.0), (2.0, 7.0)):
        depth = torch.tensor([[depth_p] * 4 + [depth_q] * 4])
        for order in (torch.arange(4), torch.tensor([3, 2, 1, 0])):
            frags = rasterize(xy, depth, tris[order], 20, ZNEAR, ZFAR)
            owner = order[frags.face_index[0].clamp_min(0)]  # back to the original triangle ids
            near = {2, 3} if depth_q < depth_p else {0, 1}
            assert set(owner[4:12, 4:12].unique().tolist()) == near
            assert torch.allclose(frags.depth[0, 4:12, 4:12], torch.tensor(min(depth_p, depth_q)), atol=1e-4)
            assert set(owner[0:4, 0:4].unique().tolist()) == {0, 1}  # only P there
            assert set(owner[12:16, 12:16].unique().tolist()) == {2, 3}  # only Q there


def test_interpenetrating_triangles_use_perspective_correct_depth() -> None:
    # A tilts from depth 1 (x = 0) to 9 (x = 16); B is flat at depth 5. With 1/z interpolated in
    # screen space (correct), z_A = 5 at x = 16 * (1 - 1/5) / (1 - 1/9) = 14.4; linear z would give x = 8.
    xy = torch.tensor([[0.0, 0.0], [16.0, 0.0], [16.0, 16.0], [0.0, 16.0]] * 2)[None]
    depth = torch.tensor([[1.0, 9.0, 9.0, 1.0, 5.0, 5.0, 5.0, 5.0]])
    tris = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    frags = rasterize(xy, depth, tris, 16, ZNEAR, ZFAR)
    row = frags.face_index[0, 8]
    assert set(row[:14].tolist()) <= {0, 1}
    assert set(row[14:].tolist()) <= {2, 3}


def brute_force(xy: np.ndarray, depth: np.ndarray, tris: np.ndarray, size: int) -> np.ndarray:
    """Per pixel, per triangle: barycentric inside test and 1/z interpolation (the definition)."""
    out = np.full((size, size), -1)
    best = np.full((size, size), np.inf)
    for r in range(size):
        for c in range(size):
            px, py = c + 0.5, r + 0.5
            for f, (i, j, k) in enumerate(tris):
                (x0, y0), (x1, y1), (x2, y2) = xy[i], xy[j], xy[k]
                area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
                if abs(area) < 1e-12:
                    continue
                b0 = ((x2 - x1) * (py - y1) - (y2 - y1) * (px - x1)) / area
                b1 = ((x0 - x2) * (py - y2) - (y0 - y2) * (px - x2)) / area
                b2 = 1 - b0 - b1
                if min(b0, b1, b2) < 1e-4:  # strictly inside: edge pixels may legitimately differ
                    continue
                z = 1 / (b0 / depth[i] + b1 / depth[j] + b2 / depth[k])
                if z < best[r, c]:
                    best[r, c], out[r, c] = z, f
    return out


def test_matches_brute_force_on_random_triangles() -> None:
    rng = np.random.default_rng(3)
    size = 24
    xy = rng.uniform(-4, size + 4, (1, 30, 2)).astype(np.float32)
    depth = rng.uniform(1, 20, (1, 30)).astype(np.float32)
    tris = rng.choice(30, size=(12, 3), replace=True)
    tris = tris[np.array([len(set(t)) == 3 for t in tris])]
    frags = rasterize(torch.from_numpy(xy), torch.from_numpy(depth), torch.from_numpy(tris), size, ZNEAR, ZFAR)
    ref = brute_force(xy[0], depth[0], tris, size)
    decided = ref >= 0
    assert decided.sum() > 100
    agree = (frags.face_index[0].numpy()[decided] == ref[decided]).mean()
    assert agree > 0.99


def test_camera_projects_like_the_official_one() -> None:
    cam = Camera()
    assert cam.focal_px == pytest.approx(1315.0)
    assert math.degrees(cam.fov) == pytest.approx(9.74, abs=0.01)
    pts = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 2.0]])
    xy, depth = cam.project(pts)
    assert xy[0].tolist() == pytest.approx([112.0, 112.0])
    assert xy[1].tolist() == pytest.approx([112.0 + 1315 * 0.05, 112.0])  # +x is image right
    assert xy[2].tolist() == pytest.approx([112.0, 112.0 - 1315 * 0.05])  # +y is image up
    assert depth.tolist() == pytest.approx([10.0, 10.0, 10.0, 8.0])  # camera at z = 10
    assert Camera(size=448).focal_px == pytest.approx(2630.0)


def test_flat_shading_ambient_plus_diffuse_towards_the_light() -> None:
    verts = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    facing = flat_shade(verts, torch.tensor([[0, 1, 2]]))  # normal +z, light at (0, 0, 1e5)
    away = flat_shade(verts, torch.tensor([[0, 2, 1]]))
    assert facing[0, 0].tolist() == pytest.approx([min(1.0, ALBEDO * (AMBIENT + DIFFUSE))] * 3, abs=1e-5)
    assert away[0, 0].tolist() == pytest.approx([ALBEDO * AMBIENT] * 3, abs=1e-5)


def test_renderer_batches_and_background() -> None:
    # a square facing the camera at the origin, shifted per frame
    quad = torch.tensor([[-0.3, -0.3, 0.0], [0.3, -0.3, 0.0], [0.3, 0.3, 0.0], [-0.3, 0.3, 0.0]])
    tri = torch.tensor([[0, 1, 2], [0, 2, 3]])
    shifts = torch.tensor([[0.0, 0.0, 0.0], [0.2, 0.0, 0.0], [0.0, -0.2, 1.0]])
    verts = quad[None] + shifts[:, None]
    renderer = MeshRenderer(tri, chunk=2)
    frames = renderer.render(verts)
    assert frames.shape == (3, 224, 224, 3) and frames.dtype == torch.uint8
    assert frames[0, 0, 0].tolist() == [0, 0, 0]
    lit = round(min(1.0, ALBEDO * (AMBIENT + DIFFUSE)) * 255)
    assert frames[0, 112, 112].tolist() == [lit] * 3
    for b in range(3):  # frame b of the batch equals a render of that frame alone
        assert torch.equal(frames[b], renderer.render(verts[b : b + 1])[0])
    mask0 = (frames[0] > 0).any(-1)
    mask1 = (frames[1] > 0).any(-1)
    cols0 = mask0.any(0).nonzero()[:, 0]
    cols1 = mask1.any(0).nonzero()[:, 0]
    assert cols1.min() - cols0.min() == pytest.approx(1315 * 0.02, abs=1.5)  # moved right by 0.2 / 10
    assert mask0.sum() < (frames[2] > 0).any(-1).sum()  # closer (z = 1) is bigger


def test_shade_fragments_uses_per_frame_colours() -> None:
    xy = torch.tensor([[[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]]] * 2)
    frags = rasterize(xy, torch.full((2, 3), 4.0), torch.tensor([[0, 1, 2]]), 8, ZNEAR, ZFAR)
    colors = torch.tensor([[[1.0, 0.0, 0.0]], [[0.0, 0.0, 1.0]]])
    img = shade_fragments(frags, colors)
    assert img[0, 1, 1].tolist() == [255, 0, 0]
    assert img[1, 1, 1].tolist() == [0, 0, 255]
    assert img[0, 7, 7].tolist() == [0, 0, 0]


def test_triangles_behind_the_camera_are_dropped() -> None:
    xy = torch.tensor([[[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]]])
    frags = rasterize(xy, torch.tensor([[-1.0, 5.0, 5.0]]), torch.tensor([[0, 1, 2]]), 8, ZNEAR, ZFAR)
    assert (frags.face_index == -1).all()
