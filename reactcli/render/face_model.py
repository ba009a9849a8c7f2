"""58-D FaceVerse coefficients -> mesh vertices: the user's FaceVerse v2 file or a built-in face.

Both models share one linear form, the one the REACT renders use::

    vertices = neutral + exBase @ exp          (neutral = meanshape + idBase @ identity)
    world    = R @ vertices + translation,     R = Rz(rz) @ Ry(ry) @ Rx(rx)

with ``exp = x[0:52]``, ``(rx, ry, rz) = x[52:55]``, ``translation = x[55:58]``. FaceVerse stores
faces in camera-style coordinates (y down, looking along -z); a rotation of about pi around x
turns them upright towards the official camera on the +z axis, which is why real data has
``rx`` close to pi.

FaceVerse v2 (``faceverse_simple_v2.npy``) is a pickled dict. ``np.load(allow_pickle=True)`` would
run any code a tampered file asks for, so it is read with an unpickler that only rebuilds numpy
arrays, dtypes and plain containers, and the keys and shapes are checked before use.

The built-in schematic face (no download needed) is a low-poly head with coloured eyes, irises,
brows, lips, mouth interior and tongue whose 52 blendshapes follow the ARKit order of the REACT
expression vector (brows 0-4, cheeks 5-7, blinks 8-9, gaze 10-17, squint/wide 18-21, jaw 22-25,
mouth 26-48, nose 49-50, tongue 51), so reactions visibly move without any user file.
"""

from __future__ import annotations

import functools
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reactcli.data.loaders import load_npy
from reactcli.errors import ReactError, file_error

EXP_DIM = 52
ID_DIM = 150
FACE_DIM = 58


@dataclass
class FaceModel:
    """A linear face model with identity folded into the neutral shape (raw FaceVerse coordinates)."""

    name: str
    neutral: torch.Tensor  # (V, 3) float32
    exp_basis: torch.Tensor  # (3V, 52) float32: column e is the displacement of expression e
    tri: torch.Tensor  # (F, 3) int64
    albedo: torch.Tensor | None = None  # (F, 3) in [0, 1]; None = the official flat grey

    @property
    def n_vertices(self) -> int:
        return int(self.neutral.shape[0])

    def to(self, device: torch.device | str) -> FaceModel:
        move = {k: getattr(self, k).to(device) for k in ("neutral", "exp_basis", "tri")}
        albedo = None if self.albedo is None else self.albedo.to(device)
        return FaceModel(self.name, albedo=albedo, **move)

    def vertices(self, coeffs: torch.Tensor | np.ndarray) -> torch.Tensor:
        """(T, 58) coefficients -> (T, V, 3) world vertices on the model's device."""
        x = torch.as_tensor(coeffs, dtype=torch.float32, device=self.neutral.device)
        if x.ndim != 2 or x.shape[1] != FACE_DIM:
            raise ReactError(f"3DMM coefficients have shape {tuple(x.shape)}, expected (T, {FACE_DIM})")
        shape = self.neutral + (x[:, :EXP_DIM] @ self.exp_basis.T).view(x.shape[0], -1, 3)
        rot = rotation_matrix(x[:, EXP_DIM : EXP_DIM + 3])
        return shape @ rot.transpose(1, 2) + x[:, None, EXP_DIM + 3 :]


def rotation_matrix(angles: torch.Tensor) -> torch.Tensor:
    """(T, 3) Euler angles (x, y, z) in radians -> (T, 3, 3) R = Rz @ Ry @ Rx (FaceVerse order)."""
    cx, cy, cz = torch.cos(angles).unbind(-1)
    sx, sy, sz = torch.sin(angles).unbind(-1)
    one, zero = torch.ones_like(cx), torch.zeros_like(cx)
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).view(-1, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).view(-1, 3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).view(-1, 3, 3)
    return rz @ ry @ rx


# --------------------------------------------------------------------------- FaceVerse v2 file

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how Python-2-era pickles spell bytes
    ("collections", "OrderedDict"),
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers; refuses every other class or function."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load '{module}.{name}' (only numpy arrays are allowed)")


def safe_load_pickled_npy(path: str | Path) -> Any:
    """The object inside a ``np.save``-d object array (e.g. a dict), without running pickled code."""
    path = Path(path)
    if not path.is_file():
        raise file_error(path, "file not found")
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            if not dtype.hasobject:
                raise file_error(path, f"holds a plain {dtype} array of shape {shape}, expected a pickled dict")
            obj = _ArrayOnlyUnpickler(io.BufferedReader(fh), encoding="latin1").load()  # type: ignore[arg-type]
    except ReactError:
        raise
    except pickle.UnpicklingError as exc:
        raise file_error(path, f"unsafe or corrupt pickle: {exc}") from None
    except (ValueError, OSError, EOFError, TypeError, AttributeError, IndexError) as exc:
        raise file_error(path, f"not a readable .npy file ({exc})") from None
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        obj = obj.item()
    return obj


def _array(path: Path, data: dict, key: str) -> np.ndarray:
    value = data[key]
    if not isinstance(value, np.ndarray) or not np.issubdtype(value.dtype, np.number):
        raise file_error(path, f"'{key}' is {type(value).__name__}, expected a numeric array")
    if not np.isfinite(value).all():
        raise file_error(path, f"'{key}' contains NaN/inf values")
    return value


def load_reference_identity(path: str | Path) -> np.ndarray:
    """The 150 identity coefficients of ``reference_full.npy`` ((1, 1, 486): first 150 of the last axis)."""
    path = Path(path)
    ref = load_npy(path, "reference identity file")
    if ref.ndim == 0 or ref.shape[-1] < ID_DIM or not np.issubdtype(ref.dtype, np.number):
        raise file_error(path, f"reference has shape {ref.shape}, expected (..., >= {ID_DIM}) e.g. (1, 1, 486)")
    ident = ref.reshape(-1, ref.shape[-1])[0, :ID_DIM].astype(np.float32)
    if not np.isfinite(ident).all():
        raise file_error(path, "reference identity contains NaN/inf values")
    return ident


def load_faceverse(path: str | Path, reference: str | Path | None = None) -> FaceModel:
    """Load and validate ``faceverse_simple_v2.npy``; identity from ``reference`` (zeros = mean face)."""
    path = Path(path)
    data = safe_load_pickled_npy(path)
    if not isinstance(data, dict):
        raise file_error(path, f"holds a {type(data).__name__}, expected the FaceVerse dict")
    missing = [k for k in ("meanshape", "idBase", "exBase", "tri") if k not in data]
    if missing:
        raise file_error(
            path, f"missing keys {missing} (found {sorted(map(str, data))[:12]}); is this faceverse_simple_v2.npy?"
        )
    mean = _array(path, data, "meanshape").astype(np.float32).reshape(-1)
    if mean.size == 0 or mean.size % 3:
        raise file_error(path, f"'meanshape' has {mean.size} values, expected 3 x vertices")
    n_vert = mean.size // 3
    id_base = _array(path, data, "idBase").astype(np.float32)
    ex_base = _array(path, data, "exBase").astype(np.float32)
    if id_base.shape != (3 * n_vert, ID_DIM):
        raise file_error(path, f"'idBase' has shape {id_base.shape}, expected ({3 * n_vert}, {ID_DIM})")
    if ex_base.shape != (3 * n_vert, EXP_DIM):
        raise file_error(path, f"'exBase' has shape {ex_base.shape}, expected ({3 * n_vert}, {EXP_DIM})")
    tri = _array(path, data, "tri")
    if tri.ndim != 2 or tri.shape[1] != 3 or tri.shape[0] == 0:
        raise file_error(path, f"'tri' has shape {tri.shape}, expected (faces, 3)")
    if not np.issubdtype(tri.dtype, np.integer) and not np.array_equal(tri, np.round(tri)):
        raise file_error(path, "'tri' holds non-integer vertex indices")
    tri = tri.astype(np.int64)
    if tri.min() < 0 or tri.max() >= n_vert:
        hint = " (1-based indices?)" if tri.min() >= 1 and tri.max() == n_vert else ""
        raise file_error(path, f"'tri' indices span {tri.min()}..{tri.max()}, expected 0..{n_vert - 1}{hint}")
    ident = np.zeros(ID_DIM, np.float32) if reference is None else load_reference_identity(reference)
    neutral = (mean + id_base @ ident).reshape(n_vert, 3)
    return FaceModel(
        name=path.name,
        neutral=torch.from_numpy(np.ascontiguousarray(neutral)),
        exp_basis=torch.from_numpy(np.ascontiguousarray(ex_base)),
        tri=torch.from_numpy(tri),
    )


# --------------------------------------------------------------------------- built-in face

SKIN = (0.86, 0.69, 0.57)
EYE_WHITE = (0.95, 0.95, 0.92)
IRIS = (0.22, 0.16, 0.11)
BROW = (0.30, 0.20, 0.13)
LIP = (0.72, 0.32, 0.33)
MOUTH = (0.22, 0.04, 0.06)
TONGUE = (0.86, 0.42, 0.46)

_HEAD_A, _HEAD_B, _HEAD_C = 0.40, 0.52, 0.40  # half width, half height, depth of the head
_EYE_Y, _EYE_X, _EYE_RX, _EYE_RY = 0.07, 0.15, 0.075, 0.038
_MOUTH_Y, _MOUTH_RX, _MOUTH_RY = -0.26, 0.13, 0.010


def _nose(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return 0.09 * np.exp(-((x / 0.05) ** 2) - ((y + 0.06) / 0.10) ** 2)


def _surface_z(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Front head surface depth at (x, y) (display frame: x right, y up, z towards the viewer)."""
    sin_phi = np.clip(y / _HEAD_B, -0.999, 0.999)
    cos_phi = np.sqrt(1 - sin_phi**2)
    taper = np.where(sin_phi < 0, 1 - 0.28 * sin_phi**2, 1.0)
    sin_t = np.clip(x / (_HEAD_A * cos_phi * taper), -1, 1)
    return _HEAD_C * np.sqrt(1 - sin_t**2) * cos_phi + _nose(x, y)


class _MeshBuilder:
    """Collects vertices, triangles, per-face colours and named vertex groups of the built-in face."""

    def __init__(self) -> None:
        self.verts: list[np.ndarray] = []
        self.tris: list[np.ndarray] = []
        self.colors: list[np.ndarray] = []
        self.groups: dict[str, np.ndarray] = {}
        self.count = 0

    def add(self, name: str, verts: np.ndarray, tris: np.ndarray, color: tuple[float, float, float]) -> None:
        self.groups[name] = np.arange(self.count, self.count + len(verts))
        self.verts.append(verts)
        self.tris.append(tris + self.count)
        self.colors.append(np.tile(np.asarray(color, np.float32), (len(tris), 1)))
        self.count += len(verts)

    def fan(self, name: str, cx: float, cy: float, rx: float, ry: float, n: int, lift: float, color) -> None:
        """A filled ellipse on the head surface: centre vertex + n rim vertices, wound towards +z."""
        ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
        x = np.concatenate([[cx], cx + rx * np.cos(ang)])
        y = np.concatenate([[cy], cy + ry * np.sin(ang)])
        verts = np.stack([x, y, _surface_z(x, y) + lift], 1)
        rim = np.arange(1, n + 1)
        tris = np.stack([np.zeros(n, int), rim, np.roll(rim, -1)], 1)
        self.add(name, verts, tris, color)

    def strip(self, name: str, lower: np.ndarray, upper: np.ndarray, lift: float, color) -> None:
        """A band between two polylines (x increasing, ``upper`` above ``lower``), wound towards +z."""
        n = len(lower)
        pts = np.concatenate([lower, upper])
        verts = np.stack([pts[:, 0], pts[:, 1], _surface_z(pts[:, 0], pts[:, 1]) + lift], 1)
        i = np.arange(n - 1)
        tris = np.concatenate([np.stack([i, i + 1, n + i + 1], 1), np.stack([i, n + i + 1, n + i], 1)])
        self.add(name, verts, tris, color)


def _head(builder: _MeshBuilder, nu: int = 40, nv: int = 44) -> None:
    theta = np.linspace(-1.75, 1.75, nu)
    phi = np.linspace(-1.30, 1.45, nv)
    t, p = np.meshgrid(theta, phi)  # rows: phi (y up), cols: theta (x right)
    taper = np.where(p < 0, 1 - 0.28 * np.sin(p) ** 2, 1.0)
    x = _HEAD_A * np.sin(t) * np.cos(p) * taper
    y = _HEAD_B * np.sin(p)
    z = _HEAD_C * np.cos(t) * np.cos(p) + _nose(x, y) * (np.abs(t) < 1.2)
    verts = np.stack([x, y, z], -1).reshape(-1, 3)
    r, c = np.meshgrid(np.arange(nv - 1), np.arange(nu - 1), indexing="ij")
    a = (r * nu + c).ravel()
    b, cc, d = a + 1, a + nu + 1, a + nu
    tris = np.concatenate([np.stack([a, b, cc], 1), np.stack([a, cc, d], 1)])
    builder.add("skin", verts, tris, SKIN)


def _lip_lines(upper: bool, n: int = 14) -> tuple[np.ndarray, np.ndarray]:
    """Inner and outer edge of a lip from the left mouth corner (x < 0) to the right one."""
    ang = np.linspace(np.pi, 0, n) if upper else np.linspace(np.pi, 2 * np.pi, n)
    x = _MOUTH_RX * np.cos(ang)
    inner_y = _MOUTH_Y + _MOUTH_RY * np.sin(ang)
    bulge = np.sin(np.linspace(0, np.pi, n)) ** 0.7
    thick = (0.026 if upper else 0.032) * bulge + 0.004
    outer_y = inner_y + (thick if upper else -thick)
    inner = np.stack([x, inner_y], 1)
    outer = np.stack([x * (1 + 0.05 * bulge), outer_y], 1)
    return inner, outer


def _build_schematic() -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    mb = _MeshBuilder()
    _head(mb)
    for side, tag in ((1, "L"), (-1, "R")):  # subject's left is the viewer's right (+x)
        ex = side * _EYE_X
        mb.fan(f"eye{tag}", ex, _EYE_Y, _EYE_RX, _EYE_RY, 18, 0.006, EYE_WHITE)
        mb.fan(f"iris{tag}", ex, _EYE_Y, 0.028, 0.028, 12, 0.010, IRIS)
        t = np.linspace(0, 1, 9)  # 0 = inner end, 1 = outer end
        bx = side * (0.065 + 0.18 * t)
        by = 0.165 + 0.028 * np.sin(np.pi * (0.3 + 0.7 * t))
        order = np.argsort(bx)
        line = np.stack([bx, by], 1)[order]
        mb.strip(f"brow{tag}", line - [0, 0.014], line + [0, 0.014], 0.012, BROW)
    mb.fan("tongue", 0.0, _MOUTH_Y - 0.02, 0.06, 0.028, 14, 0.003, TONGUE)
    mb.fan("mouth", 0.0, _MOUTH_Y, _MOUTH_RX, _MOUTH_RY, 24, 0.006, MOUTH)
    inner, outer = _lip_lines(upper=True)
    mb.strip("lipU", inner, outer, 0.012, LIP)
    inner, outer = _lip_lines(upper=False)
    mb.strip("lipL", outer, inner, 0.012, LIP)
    verts = np.concatenate(mb.verts).astype(np.float32)
    tris = np.concatenate(mb.tris).astype(np.int64)
    colors = np.concatenate(mb.colors).astype(np.float32)
    return verts, tris, colors, mb.groups


def _blendshapes(verts: np.ndarray, groups: dict[str, np.ndarray]) -> np.ndarray:
    """(52, V, 3) displacements in the display frame, one per ARKit expression coefficient."""
    n = len(verts)
    x, y = verts[:, 0], verts[:, 1]
    out = np.zeros((EXP_DIM, n, 3), np.float32)

    def mask(*names: str) -> np.ndarray:
        m = np.zeros(n, np.float32)
        for name in names:
            m[groups[name]] = 1.0
        return m

    def gauss(cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
        return np.exp(-(((x - cx) / sx) ** 2) - ((y - cy) / sy) ** 2)

    skin = mask("skin")
    lips = mask("lipU", "lipL")
    mouth_all = mask("lipU", "lipL", "mouth", "tongue")
    lower = np.maximum(mask("lipL", "tongue"), mask("mouth") * (y < _MOUTH_Y - 1e-6))
    upper_lip = mask("lipU")
    near_mouth = np.exp(-((x / 0.24) ** 2) - ((y - _MOUTH_Y) / 0.12) ** 2)
    jaw_skin = skin * np.clip((_MOUTH_Y - y) / 0.06, 0, 1) * np.exp(-((x / 0.30) ** 2))
    jaw_mouth = lower * np.sqrt(np.clip(1 - (x / (_MOUTH_RX * 1.06)) ** 2, 0, 1))
    jaw = np.maximum(jaw_skin, jaw_mouth)

    for side, tag, (i_bdown, i_bout, i_csq, i_blink, i_sq, i_wide) in (
        (1, "L", (0, 3, 6, 8, 18, 20)),
        (-1, "R", (1, 4, 7, 9, 19, 21)),
    ):
        brow = mask(f"brow{tag}")
        eye = mask(f"eye{tag}", f"iris{tag}")
        iris = mask(f"iris{tag}")
        ex = side * _EYE_X
        t = np.clip((np.abs(x) - 0.065) / 0.18, 0, 1)  # along the brow: 0 inner, 1 outer
        brow_skin = skin * gauss(ex, 0.18, 0.12, 0.05)
        out[i_bdown, :, 1] = -brow * (0.03 + 0.02 * (1 - t)) - 0.5 * 0.03 * brow_skin
        out[i_bdown, :, 0] = -side * brow * 0.012 * (1 - t)
        out[2, :, 1] += brow * 0.045 * (1 - t) + 0.02 * brow_skin
        out[i_bout, :, 1] = brow * 0.045 * t + 0.015 * brow_skin * (np.abs(x) > 0.15)
        cheek = skin * gauss(side * 0.17, -0.09, 0.08, 0.06)
        out[i_csq, :, 1] = 0.025 * cheek + eye * (y < _EYE_Y) * 0.012
        out[i_blink, :, 1] = -eye * (y - _EYE_Y) * 0.95
        out[i_sq, :, 1] = -eye * (y - _EYE_Y) * np.where(y < _EYE_Y, 0.55, 0.2)
        out[i_wide, :, 1] = eye * (y - _EYE_Y) * 0.5 + 0.012 * brow
        # gaze: down 10/11, in 12/13, out 14/15, up 16/17 (in = towards the nose)
        out[10 + (tag == "R"), :, 1] = -0.016 * iris
        out[12 + (tag == "R"), :, 0] = -side * 0.026 * iris
        out[14 + (tag == "R"), :, 0] = side * 0.026 * iris
        out[16 + (tag == "R"), :, 1] = 0.014 * iris
        out[5, :, 0] += side * 0.03 * skin * gauss(side * 0.2, -0.17, 0.09, 0.08) * (x * side > 0)
        out[5, :, 2] += 0.035 * skin * gauss(side * 0.2, -0.17, 0.09, 0.08)

        corner = mouth_all * np.clip(side * x / _MOUTH_RX, 0, 1.2) ** 2
        corner_skin = skin * gauss(side * _MOUTH_RX, _MOUTH_Y, 0.06, 0.05)
        half = mouth_all * (side * x > 0)
        i_dimple, i_frown, i_lowdown, i_press, i_smile, i_stretch, i_upup, i_sneer = (
            (27, 29, 33, 35, 43, 45, 47, 49) if tag == "L" else (28, 30, 34, 36, 44, 46, 48, 50)
        )
        out[i_dimple, :, 0] = side * 0.015 * corner
        out[i_dimple, :, 2] = -0.01 * (corner + corner_skin)
        out[i_frown, :, 1] = -0.04 * corner - 0.02 * corner_skin
        out[i_lowdown, :, 1] = -0.035 * half * mask("lipL")
        out[i_press, :, 1] = -0.4 * (y - _MOUTH_Y) * half * lips
        out[i_smile, :, 0] = side * 0.03 * corner + side * 0.01 * corner_skin
        out[i_smile, :, 1] = 0.055 * corner + 0.025 * corner_skin + 0.02 * cheek
        out[i_stretch, :, 0] = side * 0.04 * corner + side * 0.015 * corner_skin
        out[i_stretch, :, 1] = -0.01 * corner
        out[i_upup, :, 1] = 0.03 * half * upper_lip
        out[i_sneer, :, 1] = 0.02 * skin * gauss(side * 0.045, -0.07, 0.04, 0.05)

    out[22, :, 2] = 0.04 * jaw
    out[23, :, 0] = 0.04 * jaw
    out[24, :, 1] = -0.13 * jaw
    out[24, :, 2] = -0.02 * jaw
    out[25, :, 0] = -0.04 * jaw
    out[26, :, 1] = 0.03 * mask("lipL") * jaw_mouth.clip(0.3, 1) - 0.01 * upper_lip
    out[31, :, 0] = -0.35 * x * lips
    out[31, :, 1] = 1.5 * (y - _MOUTH_Y) * mask("mouth")
    out[31, :, 2] = 0.02 * lips
    out[32, :, 0] = 0.05 * mouth_all + 0.02 * skin * near_mouth
    out[37, :, 0] = -0.45 * x * mouth_all
    out[37, :, 2] = 0.03 * lips
    out[38, :, 0] = -out[32, :, 0]
    out[39, :, 1] = 0.02 * mask("lipL")
    out[39, :, 2] = -0.01 * mask("lipL")
    out[40, :, 1] = -0.015 * upper_lip
    out[40, :, 2] = -0.01 * upper_lip
    out[41, :, 1] = 0.025 * (mask("lipL") + jaw_skin * 0.6)
    out[42, :, 1] = 0.02 * upper_lip
    out[51, :, 1] = -0.05 * mask("tongue")
    out[51, :, 2] = 0.035 * mask("tongue")
    return out


def _display_to_raw(a: np.ndarray) -> np.ndarray:
    """Display frame (y up, facing +z) -> FaceVerse raw frame (y down, facing -z): a rotation by pi about x."""
    return a * np.array([1.0, -1.0, -1.0], np.float32)


@functools.lru_cache(maxsize=1)
def _schematic_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    verts, tris, colors, groups = _build_schematic()
    basis = _display_to_raw(_blendshapes(verts, groups))  # (52, V, 3)
    return _display_to_raw(verts), basis.reshape(EXP_DIM, -1).T.copy(), tris, colors


def schematic_face() -> FaceModel:
    """The built-in face: about 2k vertices, coloured parts, 52 ARKit-order blendshapes."""
    verts, basis, tris, colors = _schematic_arrays()
    return FaceModel(
        name="built-in schematic face",
        neutral=torch.from_numpy(verts.copy()),
        exp_basis=torch.from_numpy(basis.copy()),
        tri=torch.from_numpy(tris.copy()),
        albedo=torch.from_numpy(colors.copy()),
    )


def load_face_model(face_model: Path | None, reference: Path | None) -> FaceModel:
    """The user's FaceVerse file when given, else the built-in face (a reference needs a model)."""
    if face_model is None:
        if reference is not None:
            raise ReactError(f"--reference {reference}: needs --face-model (the built-in face has no identity space)")
        return schematic_face()
    return load_faceverse(face_model, reference)


def synthetic_faceverse(n_side: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A dict in the FaceVerse v2 layout (meanshape, idBase, exBase, tri, ...) with a sphere-cap mesh.

    The real model cannot be downloaded here; tests and ``bench/render_bench.py`` save this with
    ``np.save`` to exercise the loader and to time a mesh of FaceVerse size (n_side=168: 28k vertices).
    Coordinates are FaceVerse-raw (y down, facing -z), so rotation x = pi shows it to the camera.
    """
    rng = np.random.default_rng(seed)
    u = np.linspace(-1.2, 1.2, n_side)
    t, p = np.meshgrid(u, u)
    verts = np.stack([0.4 * np.sin(t) * np.cos(p), 0.5 * np.sin(p), 0.4 * np.cos(t) * np.cos(p)], -1).reshape(-1, 3)
    r, c = np.meshgrid(np.arange(n_side - 1), np.arange(n_side - 1), indexing="ij")
    a = (r * n_side + c).ravel()
    tri = np.concatenate([np.stack([a, a + 1, a + n_side + 1], 1), np.stack([a, a + n_side + 1, a + n_side], 1)])
    smooth = np.stack([np.sin((k + 1) * verts[:, 0] * 3) * np.cos((k % 5 + 1) * verts[:, 1] * 3) for k in range(52)])
    ex = (smooth[:, :, None] * rng.normal(0, 0.02, (52, 1, 3))).reshape(52, -1).T
    return {
        "meanshape": _display_to_raw(verts.astype(np.float32)).reshape(1, -1),
        "idBase": rng.normal(0, 1e-3, (verts.size, ID_DIM)).astype(np.float32),
        "exBase": _display_to_raw(ex.T.reshape(52, -1, 3).astype(np.float32)).reshape(52, -1).T.copy(),
        "tri": tri.astype(np.int32),
        "meantex": np.full((1, verts.size), 180.0, np.float32),
    }
