"""The official REACT camera and light, written out so that our renderer needs no pytorch3d.

The challenge renders with pytorch3d: ``look_at_view_transform(10, 0, 0)`` (camera on the +z axis
at distance 10, looking at the origin), ``FoVPerspectiveCameras(fov = 2 atan(112 / 1315))``
(a 1315-pixel focal length at 224 x 224), ``znear = 0.01``, ``zfar = 50``, a ``HardFlatShader``
with one point light at (0, 0, 1e5) (ambient 0.1, diffuse 0.95, no specular), a flat grey albedo
of 200/255 and a black background. In that camera world +x is image right, +y is image up and the
view depth is ``10 - z``; a pixel ``i`` covers ``[i, i + 1)`` with its centre at ``i + 0.5``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

FOCAL_224 = 1315.0
CAMERA_DISTANCE = 10.0
FOV = 2.0 * math.atan(112.0 / FOCAL_224)  # radians, about 9.74 degrees
ZNEAR = 0.01
ZFAR = 50.0
LIGHT_POSITION = (0.0, 0.0, 1e5)
AMBIENT = 0.1
DIFFUSE = 0.95
ALBEDO = 200.0 / 255.0


@dataclass(frozen=True)
class Camera:
    """A square FoV perspective camera on the +z axis looking at the origin (the official one)."""

    size: int = 224
    distance: float = CAMERA_DISTANCE
    fov: float = FOV
    znear: float = ZNEAR
    zfar: float = ZFAR

    @property
    def focal_px(self) -> float:
        """Focal length in pixels: 1315 at 224 x 224, scaled with the image size."""
        return (self.size / 2.0) / math.tan(self.fov / 2.0)

    def project(self, vertices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World vertices (..., V, 3) -> pixel coordinates (..., V, 2) (x right, y down) and view depth (..., V)."""
        depth = self.distance - vertices[..., 2]
        safe = torch.where(depth.abs() < 1e-9, torch.full_like(depth, 1e-9), depth)
        half, f = self.size / 2.0, self.focal_px
        col = half + f * vertices[..., 0] / safe
        row = half - f * vertices[..., 1] / safe
        return torch.stack([col, row], dim=-1), depth


def flat_shade(
    vertices: torch.Tensor,
    tri: torch.Tensor,
    albedo: torch.Tensor | float = ALBEDO,
    light: tuple[float, float, float] = LIGHT_POSITION,
    ambient: float = AMBIENT,
    diffuse: float = DIFFUSE,
) -> torch.Tensor:
    """Per-face RGB in [0, 1] (B, F, 3) as pytorch3d's HardFlatShader computes it.

    The face normal is ``cross(v1 - v0, v2 - v0)`` (the winding decides which side is lit, as in
    pytorch3d), the light direction points from the face centre to the point light, and the colour
    is ``albedo * (ambient + diffuse * max(0, n . l))``.
    """
    v0, v1, v2 = (vertices[:, tri[:, i]] for i in range(3))
    normal = torch.nn.functional.normalize(torch.linalg.cross(v1 - v0, v2 - v0), dim=-1, eps=1e-12)
    centre = (v0 + v1 + v2) / 3.0
    to_light = torch.nn.functional.normalize(
        torch.tensor(light, dtype=vertices.dtype, device=vertices.device) - centre, dim=-1, eps=1e-12
    )
    lit = ambient + diffuse * (normal * to_light).sum(-1).clamp_min(0.0)
    if not isinstance(albedo, torch.Tensor):
        albedo = torch.full((tri.shape[0], 3), float(albedo), dtype=vertices.dtype, device=vertices.device)
    return (albedo.to(vertices) * lit[..., None]).clamp(0.0, 1.0)
