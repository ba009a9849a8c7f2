"""58-D FaceVerse coefficients -> mesh vertices: the linear face model both face sources fill.

Both models share one linear form, the one the REACT renders use::

    vertices = neutral + exBase @ exp          (neutral = meanshape + idBase @ identity)
    world    = R @ vertices + translation,     R = Rz(rz) @ Ry(ry) @ Rx(rx)

with ``exp = x[:EXPRESSION_DIM]`` (52), ``(rx, ry, rz) = x[ROTATION]`` and
``translation = x[TRANSLATION]`` (the slices of :mod:`reactcli.vocab`). FaceVerse stores
faces in camera-style coordinates (y down, looking along -z); a rotation of about pi around x
turns them upright towards the official camera on the +z axis, which is why real data has
``rx`` close to pi.

The two sources: the user's FaceVerse v2 file (:mod:`reactcli.render.faceverse`, read without
running pickled code) and the built-in schematic head (:mod:`reactcli.render.schematic`, no
download needed); ``load_face_model`` in :mod:`reactcli.render.build` picks one (there, not here,
because both sources import this module).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from reactcli.errors import ReactError
from reactcli.vocab import EXPRESSION_DIM, FACE_DIM, ROTATION, TRANSLATION


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
        shape = self.neutral + (x[:, :EXPRESSION_DIM] @ self.exp_basis.T).view(x.shape[0], -1, 3)
        rot = rotation_matrix(x[:, ROTATION])
        return shape @ rot.transpose(1, 2) + x[:, None, TRANSLATION]


def rotation_matrix(angles: torch.Tensor) -> torch.Tensor:
    """(T, 3) Euler angles (x, y, z) in radians -> (T, 3, 3) R = Rz @ Ry @ Rx (FaceVerse order)."""
    cx, cy, cz = torch.cos(angles).unbind(-1)
    sx, sy, sz = torch.sin(angles).unbind(-1)
    one, zero = torch.ones_like(cx), torch.zeros_like(cx)
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).view(-1, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).view(-1, 3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).view(-1, 3, 3)
    return rz @ ry @ rx


def display_to_raw(a: np.ndarray) -> np.ndarray:
    """Display frame (y up, facing +z) -> FaceVerse raw frame (y down, facing -z): a rotation by pi about x."""
    return a * np.array([1.0, -1.0, -1.0], np.float32)
