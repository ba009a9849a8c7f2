"""Face models: the FaceVerse v2 loader (on tiny generated files), its errors, and the built-in face."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from _weight_fixtures import rotation_zyx

from reactcli.data.synth import face_stats
from reactcli.errors import ReactError
from reactcli.render.build import load_face_model
from reactcli.render.face_model import rotation_matrix
from reactcli.render.faceverse import ID_DIM, load_faceverse, safe_load_pickled_npy, synthetic_faceverse
from reactcli.render.raster import MeshRenderer
from reactcli.render.schematic import schematic_face
from reactcli.vocab import EXPRESSION_DIM


def tiny_faceverse(n_vert: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "meanshape": rng.normal(size=(n_vert, 3)).astype(np.float32),
        "idBase": rng.normal(size=(3 * n_vert, ID_DIM)).astype(np.float32),
        "exBase": rng.normal(size=(3 * n_vert, EXPRESSION_DIM)).astype(np.float32),
        "tri": np.array([[0, 1, 2], [2, 3, 4]], dtype=np.int32),
        "meantex": np.zeros((1, 3 * n_vert), np.float32),
        "keypoints": np.arange(3),
    }


def save_dict(path: Path, data: object) -> Path:
    np.save(path, np.array(data, dtype=object), allow_pickle=True)
    return path


def test_faceverse_vertices_follow_the_official_formula(tmp_path: Path) -> None:
    data = tiny_faceverse()
    path = save_dict(tmp_path / "faceverse_simple_v2.npy", data)
    ref = np.random.default_rng(1).normal(size=(1, 1, 486)).astype(np.float32)
    np.save(tmp_path / "reference_full.npy", ref)
    model = load_faceverse(path, tmp_path / "reference_full.npy")
    coeffs = np.random.default_rng(2).normal(size=(3, 58)).astype(np.float32)
    got = model.vertices(coeffs).numpy()
    for t in range(3):
        shape = data["meanshape"].reshape(-1) + data["idBase"] @ ref[0, 0, :150] + data["exBase"] @ coeffs[t, :52]
        want = shape.reshape(-1, 3) @ rotation_zyx(*coeffs[t, 52:55]).T + coeffs[t, 55:58]
        np.testing.assert_allclose(got[t], want, rtol=1e-4, atol=1e-4)
    assert model.tri.tolist() == [[0, 1, 2], [2, 3, 4]]
    # without a reference the identity is the mean face
    plain = load_faceverse(path).vertices(np.zeros((1, 58), np.float32)).numpy()[0]
    np.testing.assert_allclose(plain, data["meanshape"], atol=1e-6)


def test_rotation_is_rz_ry_rx() -> None:
    angles = torch.tensor([[0.3, -0.7, 1.1], [np.pi, 0.0, 0.0]])
    got = rotation_matrix(angles).numpy()
    np.testing.assert_allclose(got[0], rotation_zyx(0.3, -0.7, 1.1), atol=1e-6)
    np.testing.assert_allclose(got[1], np.diag([1.0, -1.0, -1.0]), atol=1e-6)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("exBase"), "missing keys ['exBase']"),
        (lambda d: d.update(idBase=d["idBase"][:, :100]), "'idBase' has shape (15, 100), expected (15, 150)"),
        (lambda d: d.update(exBase=d["exBase"][:, :51]), "'exBase' has shape (15, 51), expected (15, 52)"),
        (lambda d: d.update(meanshape=np.zeros(14, np.float32)), "'meanshape' has 14 values"),
        (lambda d: d.update(tri=d["tri"] + 1), "(1-based indices?)"),
        (lambda d: d.update(tri=np.array([[0, 1, 9]])), "'tri' indices span 0..9, expected 0..4"),
        (lambda d: d.update(tri=np.array([0, 1, 2])), "'tri' has shape (3,), expected (faces, 3)"),
        (lambda d: d.update(tri=np.array([[0.0, 1.5, 2.0]])), "non-integer vertex indices"),
        (lambda d: d.update(exBase=np.full((15, 52), np.nan, np.float32)), "'exBase' contains NaN/inf"),
        (lambda d: d.update(idBase="not an array"), "'idBase' is str, expected a numeric array"),
    ],
)
def test_faceverse_errors_name_the_file_and_the_problem(tmp_path: Path, change, message: str) -> None:
    data = tiny_faceverse()
    change(data)
    path = save_dict(tmp_path / "fv.npy", data)
    with pytest.raises(ReactError) as err:
        load_faceverse(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_wrong_files_are_rejected(tmp_path: Path) -> None:
    plain = tmp_path / "plain.npy"
    np.save(plain, np.zeros((4, 3)))
    with pytest.raises(ReactError, match="plain float64 array of shape \\(4, 3\\), expected a pickled dict"):
        load_faceverse(plain)
    listed = save_dict(tmp_path / "list.npy", [1, 2])
    with pytest.raises(ReactError, match="expected the FaceVerse dict"):
        load_faceverse(listed)
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"this is not numpy")
    with pytest.raises(ReactError, match="not a readable .npy file"):
        load_faceverse(garbage)
    with pytest.raises(ReactError, match="file not found"):
        load_faceverse(tmp_path / "absent.npy")


class _Payload:
    """Unpickling this would call os.system; the loader must refuse before that."""

    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def test_loader_refuses_pickled_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.npy"
    with open(evil, "wb") as fh:  # an object .npy whose pickle calls os.system
        np.lib.format.write_array_header_1_0(fh, {"descr": "|O", "fortran_order": False, "shape": ()})
        pickle.dump({"meanshape": _Payload()}, fh, protocol=3)
    with pytest.raises(ReactError, match=r"refusing to load '(posix|os|nt)\.system'"):
        safe_load_pickled_npy(evil)
    assert not (tmp_path / "PWNED").exists()


def test_reference_errors(tmp_path: Path) -> None:
    path = save_dict(tmp_path / "fv.npy", tiny_faceverse())
    np.save(tmp_path / "short.npy", np.zeros((1, 1, 100), np.float32))
    with pytest.raises(ReactError, match=r"short.npy: reference has shape \(1, 1, 100\), expected"):
        load_faceverse(path, tmp_path / "short.npy")
    with pytest.raises(ReactError, match="reference identity file not found"):
        load_faceverse(path, tmp_path / "absent.npy")
    with pytest.raises(ReactError, match="needs --face-model"):
        load_face_model(None, tmp_path / "short.npy")


def test_synthetic_faceverse_round_trips_through_the_loader(tmp_path: Path) -> None:
    path = save_dict(tmp_path / "fv.npy", synthetic_faceverse(12))
    model = load_faceverse(path)
    assert model.n_vertices == 144 and model.tri.shape == (2 * 11 * 11, 3)


def _neutral() -> np.ndarray:
    """The REACT mean pose and translation, a neutral expression, rotation x = pi."""
    mean, _ = face_stats()
    x = mean.astype(np.float32).copy()
    x[:52] = 0.0
    x[52:55] = (np.pi, 0.0, 0.0)
    return x


def test_frontal_face_with_rotation_pi_faces_the_camera() -> None:
    model = schematic_face()
    x = _neutral()
    verts = model.vertices(x[None])[0]
    renderer = MeshRenderer(model.tri, albedo=model.albedo)
    frags = renderer.fragments(verts[None])
    visible = frags.face_index[0][frags.face_index[0] >= 0].unique()
    # the visible triangles are lit from the front: their normals point towards the camera (+z)
    v0, v1, v2 = (verts[model.tri[visible, i]] for i in range(3))
    normals = torch.linalg.cross(v1 - v0, v2 - v0)
    assert (normals[:, 2] > 0).float().mean() > 0.95
    # upright: the brows are above the mouth in the image; the nose tip is the nearest point
    xy, depth = renderer.camera.project(verts)
    colours = model.albedo
    brow = torch.isclose(colours, torch.tensor([0.30, 0.20, 0.13])).all(1)
    lip = torch.isclose(colours, torch.tensor([0.72, 0.32, 0.33])).all(1)
    brow_rows = xy[model.tri[brow].reshape(-1), 1]
    lip_rows = xy[model.tri[lip].reshape(-1), 1]
    assert brow_rows.max() < lip_rows.min()
    nose_tip = depth.argmin()
    assert abs(xy[nose_tip, 0] - 112) < 12 and 90 < xy[nose_tip, 1] < 140
    # the head fills a good part of the 224 x 224 frame, centred
    mask = frags.face_index[0] >= 0
    rows, cols = mask.nonzero(as_tuple=True)
    assert 120 < rows.max() - rows.min() < 215 and 90 < cols.max() - cols.min() < 200
    assert abs(cols.float().mean() - 112) < 10


@pytest.mark.parametrize(
    ("dims", "min_pixels"),
    [((24,), 300), ((43, 44), 80), ((8, 9), 60), ((0, 1), 40), ((2,), 40), ((51,), 30), ((37,), 60)],
)
def test_schematic_face_visibly_moves(dims: tuple[int, ...], min_pixels: int) -> None:
    model = schematic_face()
    base = _neutral()
    moved = base.copy()
    moved[list(dims)] = 1.0
    renderer = MeshRenderer(model.tri, albedo=model.albedo)
    frames = renderer.render(model.vertices(np.stack([base, moved])))
    changed = (frames[0].int() - frames[1].int()).abs().sum(-1) > 30
    assert changed.sum() >= min_pixels


def test_every_expression_coefficient_moves_the_built_in_face() -> None:
    model = schematic_face()
    assert model.exp_basis.shape == (3 * model.n_vertices, EXPRESSION_DIM)
    per_dim = model.exp_basis.abs().amax(0)
    assert (per_dim > 0.005).all(), per_dim
    # left shapes move the subject's left (image right, +x), right shapes the other side
    basis = model.exp_basis.T.reshape(EXPRESSION_DIM, -1, 3)
    rest = model.neutral
    for left, right in ((8, 9), (43, 44), (3, 4)):
        assert rest[basis[left].norm(dim=1) > 1e-4, 0].mean() > 0
        assert rest[basis[right].norm(dim=1) > 1e-4, 0].mean() < 0
