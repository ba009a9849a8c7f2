"""The built-in schematic face: a low-poly head whose 52 blendshapes follow the REACT expression order.

No download needed: a head with coloured eyes, irises, brows, lips, mouth interior and tongue, and
one displacement field per ARKit expression coefficient of the REACT vector (brows, cheeks, blinks,
gaze, squint/wide, jaw, mouth, nose, tongue; names in :data:`reactcli.vocab.EXPRESSION_NAMES`), so
reactions visibly move without any user file. Built once per process and cached.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from reactcli.render.face_model import FaceModel, display_to_raw
from reactcli.vocab import EXPRESSION, EXPRESSION_DIM

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
    out = np.zeros((EXPRESSION_DIM, n, 3), np.float32)

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

    for side, tag in ((1, "L"), (-1, "R")):
        lr = "Left" if tag == "L" else "Right"
        i_bdown, i_bout, i_csq, i_blink, i_sq, i_wide = (
            EXPRESSION[f"{stem}{lr}"]
            for stem in ("browDown", "browOuterUp", "cheekSquint", "eyeBlink", "eyeSquint", "eyeWide")
        )
        brow = mask(f"brow{tag}")
        eye = mask(f"eye{tag}", f"iris{tag}")
        iris = mask(f"iris{tag}")
        ex = side * _EYE_X
        t = np.clip((np.abs(x) - 0.065) / 0.18, 0, 1)  # along the brow: 0 inner, 1 outer
        brow_skin = skin * gauss(ex, 0.18, 0.12, 0.05)
        out[i_bdown, :, 1] = -brow * (0.03 + 0.02 * (1 - t)) - 0.5 * 0.03 * brow_skin
        out[i_bdown, :, 0] = -side * brow * 0.012 * (1 - t)
        out[EXPRESSION["browInnerUp"], :, 1] += brow * 0.045 * (1 - t) + 0.02 * brow_skin
        out[i_bout, :, 1] = brow * 0.045 * t + 0.015 * brow_skin * (np.abs(x) > 0.15)
        cheek = skin * gauss(side * 0.17, -0.09, 0.08, 0.06)
        out[i_csq, :, 1] = 0.025 * cheek + eye * (y < _EYE_Y) * 0.012
        out[i_blink, :, 1] = -eye * (y - _EYE_Y) * 0.95
        out[i_sq, :, 1] = -eye * (y - _EYE_Y) * np.where(y < _EYE_Y, 0.55, 0.2)
        out[i_wide, :, 1] = eye * (y - _EYE_Y) * 0.5 + 0.012 * brow
        # gaze (in = towards the nose)
        out[EXPRESSION[f"eyeLookDown{lr}"], :, 1] = -0.016 * iris
        out[EXPRESSION[f"eyeLookIn{lr}"], :, 0] = -side * 0.026 * iris
        out[EXPRESSION[f"eyeLookOut{lr}"], :, 0] = side * 0.026 * iris
        out[EXPRESSION[f"eyeLookUp{lr}"], :, 1] = 0.014 * iris
        out[EXPRESSION["cheekPuff"], :, 0] += side * 0.03 * skin * gauss(side * 0.2, -0.17, 0.09, 0.08) * (x * side > 0)
        out[EXPRESSION["cheekPuff"], :, 2] += 0.035 * skin * gauss(side * 0.2, -0.17, 0.09, 0.08)

        corner = mouth_all * np.clip(side * x / _MOUTH_RX, 0, 1.2) ** 2
        corner_skin = skin * gauss(side * _MOUTH_RX, _MOUTH_Y, 0.06, 0.05)
        half = mouth_all * (side * x > 0)
        i_dimple, i_frown, i_lowdown, i_press, i_smile, i_stretch, i_upup, i_sneer = (
            EXPRESSION[f"{stem}{lr}"] for stem in (
                "mouthDimple", "mouthFrown", "mouthLowerDown", "mouthPress", "mouthSmile", "mouthStretch",
                "mouthUpperUp", "noseSneer",
            )
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

    out[EXPRESSION["jawForward"], :, 2] = 0.04 * jaw
    out[EXPRESSION["jawLeft"], :, 0] = 0.04 * jaw
    out[EXPRESSION["jawOpen"], :, 1] = -0.13 * jaw
    out[EXPRESSION["jawOpen"], :, 2] = -0.02 * jaw
    out[EXPRESSION["jawRight"], :, 0] = -0.04 * jaw
    out[EXPRESSION["mouthClose"], :, 1] = 0.03 * mask("lipL") * jaw_mouth.clip(0.3, 1) - 0.01 * upper_lip
    out[EXPRESSION["mouthFunnel"], :, 0] = -0.35 * x * lips
    out[EXPRESSION["mouthFunnel"], :, 1] = 1.5 * (y - _MOUTH_Y) * mask("mouth")
    out[EXPRESSION["mouthFunnel"], :, 2] = 0.02 * lips
    out[EXPRESSION["mouthLeft"], :, 0] = 0.05 * mouth_all + 0.02 * skin * near_mouth
    out[EXPRESSION["mouthPucker"], :, 0] = -0.45 * x * mouth_all
    out[EXPRESSION["mouthPucker"], :, 2] = 0.03 * lips
    out[EXPRESSION["mouthRight"], :, 0] = -out[EXPRESSION["mouthLeft"], :, 0]
    out[EXPRESSION["mouthRollLower"], :, 1] = 0.02 * mask("lipL")
    out[EXPRESSION["mouthRollLower"], :, 2] = -0.01 * mask("lipL")
    out[EXPRESSION["mouthRollUpper"], :, 1] = -0.015 * upper_lip
    out[EXPRESSION["mouthRollUpper"], :, 2] = -0.01 * upper_lip
    out[EXPRESSION["mouthShrugLower"], :, 1] = 0.025 * (mask("lipL") + jaw_skin * 0.6)
    out[EXPRESSION["mouthShrugUpper"], :, 1] = 0.02 * upper_lip
    out[EXPRESSION["tongueOut"], :, 1] = -0.05 * mask("tongue")
    out[EXPRESSION["tongueOut"], :, 2] = 0.035 * mask("tongue")
    return out


@functools.lru_cache(maxsize=1)
def _schematic_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    verts, tris, colors, groups = _build_schematic()
    basis = display_to_raw(_blendshapes(verts, groups))  # (52, V, 3)
    return display_to_raw(verts), basis.reshape(EXPRESSION_DIM, -1).T.copy(), tris, colors


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
