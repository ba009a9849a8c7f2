"""MediaPipe Face Landmarker's outputs as the page sends them: their names, sizes and checks.

The page runs MediaPipe in the browser and sends, per frame, the 52 blendshape scores in
MediaPipe's own order and the 16 values of its facial transformation matrix (column-major, as
``Matrix.data`` holds them). Everything that reads those values (the face map, the AU estimate,
the wire format) takes MediaPipe's conventions from here, so no two live modules need each other
for them. docs/live_inputs.md explains the conventions.
"""

from __future__ import annotations

import numpy as np

from reactcli.errors import ReactError
from reactcli.vocab import EXPRESSION_NAMES

#: MediaPipe Face Landmarker's 52 blendshape categories, in its output order: REACT's ARKit list
#: without ``tongueOut`` (MediaPipe does not estimate it), with ``_neutral`` in front.
MEDIAPIPE_BLENDSHAPES: tuple[str, ...] = ("_neutral", *(n for n in EXPRESSION_NAMES if n != "tongueOut"))
BLENDSHAPE_DIM = len(MEDIAPIPE_BLENDSHAPES)  # 52
POSE_VALUES = 16  # the 4 x 4 facial transformation matrix
#: MediaPipe's default virtual camera: 63 degrees vertical field of view.
MEDIAPIPE_FOV_DEG = 63.0


def blendshape_index(name: str) -> int:
    """Where MediaPipe puts the score of ARKit blendshape ``name`` (-1: MediaPipe has none)."""
    return MEDIAPIPE_BLENDSHAPES.index(name) if name in MEDIAPIPE_BLENDSHAPES else -1


def check_blendshapes(blendshapes: np.ndarray) -> np.ndarray:
    """Validate the 52 scores (one-line ReactErrors); returns them as float64."""
    b = np.asarray(blendshapes, dtype=np.float64)
    if b.shape != (BLENDSHAPE_DIM,):
        raise ReactError(f"blendshapes must be {BLENDSHAPE_DIM} scores in MediaPipe order, got shape {b.shape}")
    if not np.isfinite(b).all():
        raise ReactError("blendshapes contain NaN or inf")
    return b


def matrix_from_mediapipe_data(data: np.ndarray | list[float]) -> np.ndarray:
    """MediaPipe's 16 ``Matrix.data`` values (column-major, as the JS/C++ APIs give them) -> (4, 4)
    row-major matrix whose last column is the translation."""
    flat = np.asarray(data, dtype=np.float64).reshape(-1)
    if flat.shape != (POSE_VALUES,):
        raise ReactError(f"face transformation matrix must have {POSE_VALUES} values, got {flat.size}")
    return flat.reshape(4, 4).T


def check_matrix(matrix: np.ndarray) -> np.ndarray:
    """Validate a (4, 4) row-major similarity transform (one-line ReactErrors); returns float64."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (4, 4):
        raise ReactError(f"face transformation matrix must be 4x4, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ReactError("face transformation matrix contains NaN or inf")
    if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0], atol=1e-4):
        hint = " (transposed? MediaPipe's data is column-major)" if np.allclose(m[:3, 3], 0, atol=1e-4) else ""
        row = np.round(m[3], 4).tolist()
        raise ReactError(f"face transformation matrix's last row must be 0 0 0 1, got {row}{hint}")
    if np.linalg.det(m[:3, :3]) <= 1e-12:
        raise ReactError("face transformation matrix has no proper rotation (determinant <= 0)")
    return m
