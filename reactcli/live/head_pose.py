"""MediaPipe's facial transformation matrix -> FaceVerse rotation and translation coefficients.

Conventions (docs/live_inputs.md has the derivation in words):

- MediaPipe's matrix maps its canonical face (y up, facing +z, centimetres) into a right-handed
  camera space whose virtual camera sits at the origin looking down -z: x is image right, y image
  up, and the face lies at negative z. The matrix holds a uniform scale, a rotation and a
  translation; its last row is ``0 0 0 1``.
- FaceVerse's raw mesh has y down and faces -z; the REACT renders apply ``R = Rz Ry Rx`` of the
  Euler angles ``x[52:55]`` and add ``x[55:58]``, under a camera on the +z axis at distance 10
  looking at the origin, again with x image right and y image up.

Both cameras share their image axes, so the head's rotation relative to the camera is the same
matrix in both: ``R_faceverse = R_mediapipe @ diag(1, -1, -1)`` (the diagonal turns the raw
FaceVerse mesh into the upright, camera-facing canonical pose). Translation is mapped so that the
face lands at the same place in the image (same fraction of the half frame) and its distance
relative to a reference distance scales the REACT depth around the training mean.
"""

from __future__ import annotations

import math

import numpy as np

from reactcli.live.mediapipe import MEDIAPIPE_FOV_DEG, check_matrix
from reactcli.render.camera import CAMERA_DISTANCE, FOV

#: Camera distance (cm) of a typical webcam user, mapped to the training mean depth.
REFERENCE_DISTANCE_CM = 50.0
_RAW_TO_UPRIGHT = np.diag([1.0, -1.0, -1.0])


def rotation_part(matrix: np.ndarray) -> np.ndarray:
    """The nearest rotation to the upper 3x3 block (uniform scale and numerical shear removed)."""
    u, _, vt = np.linalg.svd(matrix[:3, :3])
    return u @ vt


def euler_zyx(rot: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Angles (x, y, z) with ``rot = Rz(z) Ry(y) Rx(x)``, each wrapped to within pi of ``reference``.

    Wrapping matters for x: real data sits near pi, where atan2 jumps between -pi and pi.
    """
    y = -math.asin(float(np.clip(rot[2, 0], -1.0, 1.0)))
    x = math.atan2(rot[2, 1], rot[2, 2])
    z = math.atan2(rot[1, 0], rot[0, 0])
    angles = np.array([x, y, z])
    return reference + (angles - reference + np.pi) % (2 * np.pi) - np.pi


def mediapipe_pose_to_faceverse(
    matrix: np.ndarray,
    mean_rotation: np.ndarray,
    mean_translation: np.ndarray,
    fov_deg: float = MEDIAPIPE_FOV_DEG,
    reference_distance_cm: float = REFERENCE_DISTANCE_CM,
) -> tuple[np.ndarray, np.ndarray]:
    """(4, 4) MediaPipe matrix -> FaceVerse (rotation (3,), translation (3,)) before calibration.

    ``mean_rotation`` picks the Euler branch (the training mean, x near pi); ``mean_translation``
    sets the REACT depth that ``reference_distance_cm`` maps to.
    """
    m = check_matrix(matrix)
    rotation = euler_zyx(rotation_part(m) @ _RAW_TO_UPRIGHT, np.asarray(mean_rotation, np.float64))
    tx, ty, tz = m[:3, 3]
    distance = max(-tz, 1e-3)  # the face is in front of the camera at negative z
    depth = (CAMERA_DISTANCE - float(mean_translation[2])) * distance / reference_distance_cm
    # Same fraction of the half frame in both cameras: tan(angle off axis) / tan(fov / 2).
    scale = depth * math.tan(FOV / 2) / math.tan(math.radians(fov_deg) / 2)
    translation = np.array([tx / distance * scale, ty / distance * scale, CAMERA_DISTANCE - depth])
    return rotation, translation
