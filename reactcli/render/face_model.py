"""58-D FaceVerse coefficients -> mesh vertices: the linear face model both face sources fill.

Both models share one linear form, the one the REACT renders use::

    vertices = neutral + exBase @ exp          (neutral = meanshape + idBase @ identity)
    world    = R @ vertices + translation,     R = Rz(rz) @ Ry(ry) @ Rx(rx)

with ``exp = x[0:52]``, ``(rx, ry, rz) = x[52:55]``, ``translation = x[55:58]``. FaceVerse stores
faces in camera-style coordinates (y down, looking along -z); a rotation of about pi around x
turns them upright towards the official camera on the +z axis, which is why real data has
``rx`` close to pi.

The two sources: the user's FaceVerse v2 file (:mod:`reactcli.render.faceverse`, read without
running pickled code) and the built-in schematic head (:mod:`reactcli.render.schematic`, no
download needed); :func:`load_face_model` picks one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from reactcli.errors import ReactError
from reactcli.vocab import EXPRESSION_DIM as EXP_DIM
from reactcli.vocab import FACE_DIM


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


def display_to_raw(a: np.ndarray) -> np.ndarray:
    """Display frame (y up, facing +z) -> FaceVerse raw frame (y down, facing -z): a rotation by pi about x."""
    return a * np.array([1.0, -1.0, -1.0], np.float32)



def load_face_model(face_model: Path | None, reference: Path | None) -> FaceModel:
    """The user's FaceVerse file when given, else the built-in face (a reference needs a model)."""
    if face_model is None:
        if reference is not None:
            raise ReactError(f"--reference {reference}: needs --face-model (the built-in face has no identity space)")
        from reactcli.render.schematic import schematic_face

        return schematic_face()
    from reactcli.render.faceverse import load_faceverse

    return load_faceverse(face_model, reference)
