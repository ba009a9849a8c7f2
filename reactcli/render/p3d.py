"""Optional ``--backend pytorch3d``: the official pytorch3d pipeline with the official settings.

Only used when pytorch3d imports; it cannot be installed on the machine this toolkit is developed
on, so this path is kept to the documented pytorch3d API calls and is not exercised by the tests.
It renders the same camera, light and albedo as :mod:`reactcli.render.raster` (see
:mod:`reactcli.render.camera`), with per-vertex colours taken from the model's face colours.
"""

from __future__ import annotations

import math

import torch

from reactcli.errors import ReactError
from reactcli.render.camera import ALBEDO, AMBIENT, DIFFUSE, LIGHT_POSITION, Camera


def pytorch3d_available() -> bool:
    try:
        import pytorch3d.renderer  # noqa: F401
    except ImportError:
        return False
    return True


class Pytorch3dRenderer:
    """Same interface as :class:`reactcli.render.raster.MeshRenderer`: vertices -> uint8 frames."""

    def __init__(
        self,
        tri: torch.Tensor,
        camera: Camera | None = None,
        albedo: torch.Tensor | None = None,
        device: torch.device | str = "cpu",
        chunk: int = 16,
    ) -> None:
        if not pytorch3d_available():
            raise ReactError("--backend pytorch3d: pytorch3d is not importable here (use the default builtin backend)")
        from pytorch3d import renderer as r

        self.device = torch.device(device)
        self.camera = camera or Camera()
        self.tri = tri.to(self.device, torch.int64)
        self.face_albedo = albedo
        self.chunk = chunk
        rot, trans = r.look_at_view_transform(self.camera.distance, 0, 0)
        cameras = r.FoVPerspectiveCameras(
            device=self.device, R=rot, T=trans, znear=self.camera.znear, zfar=self.camera.zfar,
            fov=math.degrees(self.camera.fov),
        )  # fmt: skip
        lights = r.PointLights(
            device=self.device, location=[list(LIGHT_POSITION)], ambient_color=[[AMBIENT] * 3],
            diffuse_color=[[DIFFUSE] * 3], specular_color=[[0.0] * 3],
        )  # fmt: skip
        settings = r.RasterizationSettings(image_size=self.camera.size, blur_radius=0.0, faces_per_pixel=1)
        self._renderer = r.MeshRenderer(
            rasterizer=r.MeshRasterizer(cameras=cameras, raster_settings=settings),
            shader=r.HardFlatShader(
                device=self.device, cameras=cameras, lights=lights,
                blend_params=r.BlendParams(background_color=(0.0, 0.0, 0.0)),
            ),
        )  # fmt: skip

    def _vertex_colors(self, n_vertices: int) -> torch.Tensor:
        colors = torch.full((n_vertices, 3), ALBEDO, device=self.device)
        if self.face_albedo is not None:
            per_corner = self.face_albedo.to(self.device).repeat_interleave(3, 0)
            colors[self.tri.reshape(-1)] = per_corner
        return colors

    def render(self, vertices: torch.Tensor) -> torch.Tensor:
        from pytorch3d.renderer import TexturesVertex
        from pytorch3d.structures import Meshes

        colors = self._vertex_colors(vertices.shape[1])
        outs = []
        for start in range(0, vertices.shape[0], self.chunk):
            verts = vertices[start : start + self.chunk].to(self.device, torch.float32)
            n = verts.shape[0]
            mesh = Meshes(
                verts=verts, faces=self.tri.expand(n, -1, -1), textures=TexturesVertex(colors.expand(n, -1, -1))
            )
            images = self._renderer(mesh)[..., :3]
            outs.append((images * 255.0 + 0.5).clamp(0, 255).to(torch.uint8))
        return torch.cat(outs)
