"""Live speaker inputs: MediaPipe blendshapes + head pose -> FaceVerse 3DMM, neutral face, emotion fallback."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from _model_fixtures import random_model
from _weight_fixtures import rotation_zyx

from reactcli.errors import ReactError
from reactcli.generate import ReactionStream
from reactcli.live.emotion_source import AU_BLENDSHAPES, speaker_emotion_fallback, speaker_emotion_from_blendshapes
from reactcli.live.face_source import BlendshapeToFaceVerse, FaceStats, neutral_face
from reactcli.live.mediapipe import MEDIAPIPE_BLENDSHAPES, MEDIAPIPE_FOV_DEG, matrix_from_mediapipe_data
from reactcli.render.camera import CAMERA_DISTANCE, Camera
from reactcli.render.face_model import display_to_raw
from reactcli.render.raster import MeshRenderer
from reactcli.render.schematic import schematic_face
from reactcli.vocab import ACTION_UNITS, EMOTION_COLUMNS, EXPRESSION, EXPRESSION_NAMES, ROTATION, TRANSLATION

STATS = FaceStats.packaged()


def _mp_matrix(pitch: float = 0.0, yaw: float = 0.0, roll: float = 0.0, t=(0.0, 0.0, -50.0), scale=1.0):
    m = np.eye(4)
    m[:3, :3] = scale * rotation_zyx(pitch, yaw, roll)
    m[:3, 3] = t
    return m


def test_mediapipe_order_maps_by_name_and_tongue_out_is_filled() -> None:
    assert len(MEDIAPIPE_BLENDSHAPES) == 52 and MEDIAPIPE_BLENDSHAPES[0] == "_neutral"
    assert MEDIAPIPE_BLENDSHAPES[1] == "browDownLeft" and MEDIAPIPE_BLENDSHAPES[-1] == "noseSneerRight"
    assert "tongueOut" not in MEDIAPIPE_BLENDSHAPES
    mapper = BlendshapeToFaceVerse()
    for i, name in enumerate(MEDIAPIPE_BLENDSHAPES):
        scores = np.zeros(52)
        scores[i] = 0.9
        out = mapper(scores, _mp_matrix())
        expr = out[:52]
        if name == "_neutral":
            assert not expr[: EXPRESSION["tongueOut"]].any()  # _neutral drives nothing
        else:
            assert np.flatnonzero(expr[:-1]).tolist() == [EXPRESSION_NAMES.index(name)]
            e = EXPRESSION_NAMES.index(name)  # the default clip at 4 training stds caps rare blendshapes
            assert expr[e] == pytest.approx(min(0.9, STATS.mean[e] + 4 * STATS.std[e]), abs=1e-6)
        assert out[EXPRESSION["tongueOut"]] == pytest.approx(STATS.mean[EXPRESSION["tongueOut"]])


def test_frontal_pose_is_rx_pi_near_the_training_mean() -> None:
    out = BlendshapeToFaceVerse()(np.zeros(52), _mp_matrix())
    np.testing.assert_allclose(out[ROTATION], [math.pi, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(out[TRANSLATION], [0.0, 0.0, STATS.mean[57]], atol=1e-6)
    # Pitching the head by +0.3 rad gives rx = pi + 0.3, not the atan2 branch near -pi.
    tilted = BlendshapeToFaceVerse()(np.zeros(52), _mp_matrix(pitch=0.3))
    assert tilted[52] == pytest.approx(math.pi + 0.3, abs=1e-6)


@pytest.mark.parametrize("pose", [(0.25, -0.5, 0.15), (-0.3, 0.6, -0.2), (0.0, 0.0, 0.0)])
def test_pose_conversion_renders_like_mediapipes_convention(pose: tuple[float, float, float]) -> None:
    """Render the head placed by MediaPipe's convention (canonical upright face, rotated by the
    matrix) and by the FaceVerse coefficients of the converted pose: the images must agree."""
    face = schematic_face()
    matrix = _mp_matrix(*pose, t=(4.0, -2.0, -45.0), scale=1.3)
    coeffs = BlendshapeToFaceVerse()(np.zeros(52), matrix).astype(np.float64)
    coeffs[:52] = 0.0
    fv_world = face.vertices(coeffs[None].astype(np.float32))[0].double()
    upright = torch.from_numpy(display_to_raw(face.neutral.numpy())).double()  # y up, facing +z (MediaPipe canonical)
    rot = torch.from_numpy(matrix[:3, :3] / 1.3)
    mp_world = upright @ rot.T + torch.from_numpy(coeffs[55:58])
    torch.testing.assert_close(fv_world, mp_world, atol=1e-4, rtol=0)
    renderer = MeshRenderer(face.tri, Camera(size=96))
    images = renderer.render(torch.stack([fv_world, mp_world]).float()).float()
    assert (images[0] > 0).float().mean() > 0.02  # the head is in view
    assert (images[0] - images[1]).abs().mean() < 0.5
    if any(pose):
        frontal = renderer.render(face.vertices(np.r_[np.zeros(52), math.pi, 0, 0, coeffs[55:58]][None]))[0].float()
        assert (images[0] - frontal).abs().mean() > 2.0  # the rotation is visible, so the check means something


def test_translation_keeps_the_image_position_and_scales_depth() -> None:
    mapper = BlendshapeToFaceVerse()
    cam = Camera(size=224)
    for t in [(5.0, 3.0, -50.0), (-8.0, -4.0, -55.0)]:  # inside the 4-std clip of every dim
        out = mapper(np.zeros(52), _mp_matrix(t=t))
        mp_ndc = np.array(t[:2]) / -t[2] / math.tan(math.radians(MEDIAPIPE_FOV_DEG) / 2)
        xy, _ = cam.project(torch.tensor(out[TRANSLATION][None], dtype=torch.float32))
        react_ndc = np.array([xy[0, 0] - 112, 112 - xy[0, 1]]) / 112
        np.testing.assert_allclose(react_ndc, mp_ndc, atol=1e-4)
        depth = CAMERA_DISTANCE - out[57]
        assert depth == pytest.approx((CAMERA_DISTANCE - STATS.mean[57]) * -t[2] / 50.0, rel=1e-5)


def test_outputs_are_clipped_to_the_training_range() -> None:
    scores = np.full(52, 50.0)  # a broken detection
    out = BlendshapeToFaceVerse(clip_std=3.0)(scores, _mp_matrix())
    assert (out[:52] <= STATS.mean[:52] + 3.0 * STATS.std[:52] + 1e-5).all()


@pytest.mark.parametrize(
    ("scores", "matrix", "message"),
    [
        (np.zeros(51), np.eye(4), r"^blendshapes must be 52 scores in MediaPipe order, got shape \(51,\)$"),
        (np.full(52, np.nan), np.eye(4), r"^blendshapes contain NaN or inf$"),
        (np.zeros(52), np.eye(3), r"^face transformation matrix must be 4x4, got shape \(3, 3\)$"),
        (np.zeros(52), np.full((4, 4), np.inf), r"^face transformation matrix contains NaN or inf$"),
        (np.zeros(52), _mp_matrix().T, r"last row must be 0 0 0 1, got \[0.0, 0.0, -50.0, 1.0\] \(transposed\?"),
        (np.zeros(52), np.diag([1.0, 1.0, -1.0, 1.0]), r"no proper rotation"),
    ],
)
def test_bad_face_inputs_are_one_line_errors(scores: np.ndarray, matrix: np.ndarray, message: str) -> None:
    with pytest.raises(ReactError, match=message):
        BlendshapeToFaceVerse()(scores, matrix)


def test_mediapipe_column_major_data() -> None:
    m = _mp_matrix(yaw=0.4, t=(1.0, 2.0, -40.0))
    data = m.T.reshape(-1).tolist()  # what MediaPipe's Matrix.data holds (column-major)
    np.testing.assert_allclose(matrix_from_mediapipe_data(data), m)
    with pytest.raises(ReactError, match="must have 16 values, got 9"):
        matrix_from_mediapipe_data(np.zeros(9))


def test_neutral_face_and_model_stats() -> None:
    np.testing.assert_array_equal(neutral_face(), STATS.mean.astype(np.float32))
    model = random_model()
    model.tokenizer.mean_face.copy_(torch.linspace(0, 1, 58))
    stats = FaceStats.from_model(model)
    np.testing.assert_allclose(neutral_face(stats), np.linspace(0, 1, 58), atol=1e-6)
    np.testing.assert_allclose(BlendshapeToFaceVerse(stats)(np.zeros(52), _mp_matrix())[-3:-1], [0, 0], atol=1e-6)


def test_speaker_emotion_fallback_and_blendshape_aus() -> None:
    model = random_model()
    model.predictor.emotion_mean.copy_(torch.linspace(0.1, 0.5, 25))
    fallback = speaker_emotion_fallback(model)
    np.testing.assert_allclose(fallback, np.linspace(0.1, 0.5, 25), atol=1e-6)
    assert (
        speaker_emotion_fallback(SimpleNamespace(predictor=SimpleNamespace(cfg=SimpleNamespace(speaker_emotion=False))))
        is None
    )
    scores = np.zeros(52)
    scores[MEDIAPIPE_BLENDSHAPES.index("mouthSmileRight")] = 0.8
    scores[MEDIAPIPE_BLENDSHAPES.index("jawOpen")] = 0.3
    emo = speaker_emotion_from_blendshapes(scores, fallback)
    assert emo[ACTION_UNITS.index("AU12")] == 1.0 and emo[ACTION_UNITS.index("AU26")] == 0.0
    assert emo[ACTION_UNITS.index("AU4")] == 0.0
    unmapped = [EMOTION_COLUMNS.index(c) for c in ("AU23", "AU25", "valence", "arousal", "Happy")]
    np.testing.assert_array_equal(emo[unmapped], fallback[unmapped])
    assert set(AU_BLENDSHAPES) <= set(ACTION_UNITS) and len(AU_BLENDSHAPES) == 13
    assert all(name in MEDIAPIPE_BLENDSHAPES for names in AU_BLENDSHAPES.values() for name in names)
    with pytest.raises(ReactError, match=r"fallback must have 25 values, got shape \(24,\)"):
        speaker_emotion_from_blendshapes(scores, fallback[:24])


def test_live_inputs_drive_a_reaction_stream() -> None:
    """The three speaker inputs have the shapes and dtypes ReactionStream.push takes."""
    model = random_model(audio_dim=10)
    stream = ReactionStream(model, samples=2, seed=0)
    face = BlendshapeToFaceVerse(FaceStats.from_model(model))(np.zeros(52), _mp_matrix())
    emotion = speaker_emotion_fallback(model)
    frames = [stream.push(np.zeros((1, 10), np.float32), face[None], emotion[None]) for _ in range(6)]
    assert sum(f.face3dmm.shape[1] for f in frames) > 0
