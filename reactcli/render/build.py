"""Assembling a renderer from ``cfg.render``: which face model, the official camera, which rasterizer.

``load_face_model`` lives here, above both face sources, rather than in ``face_model.py``: the
FaceVerse loader and the built-in head both build a :class:`FaceModel`, so the module that defines
the type cannot also pick between them without an import circle.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from reactcli.errors import ReactError
from reactcli.render.camera import Camera
from reactcli.render.face_model import FaceModel

if TYPE_CHECKING:
    import torch

    from reactcli.config import RenderConfig


def load_face_model(face_model: Path | None, reference: Path | None) -> FaceModel:
    """The user's FaceVerse file when given, else the built-in face (a reference needs a model)."""
    if face_model is None:
        if reference is not None:
            raise ReactError(f"--reference {reference}: needs --face-model (the built-in face has no identity space)")
        from reactcli.render.schematic import schematic_face

        return schematic_face()
    from reactcli.render.faceverse import load_faceverse

    return load_faceverse(face_model, reference)


def build_renderer(cfg: RenderConfig, device: torch.device) -> tuple[FaceModel, Camera, object]:
    """The face model (``render.face_model``/``reference`` or the built-in head), the official camera
    at ``render.size`` and the rasterizer of ``render.backend`` (``MeshRenderer`` or
    ``Pytorch3dRenderer``: ``.render(vertices) -> (B, S, S, 3) uint8``), all on ``device``."""
    model = load_face_model(cfg.face_model, cfg.reference).to(device)
    camera = Camera(size=cfg.size)
    if cfg.backend == "pytorch3d":
        from reactcli.render.p3d import Pytorch3dRenderer as Backend
    else:
        from reactcli.render.raster import MeshRenderer as Backend
    renderer = Backend(model.tri, camera=camera, albedo=model.albedo, device=device, chunk=cfg.chunk)
    return model, camera, renderer
