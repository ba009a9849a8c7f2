"""The user's FaceVerse v2 model (``faceverse_simple_v2.npy``) and reference identity, read safely.

FaceVerse v2 is a pickled dict. ``np.load(allow_pickle=True)`` would run any code a tampered file
asks for, so it is read with an unpickler that only rebuilds numpy arrays, dtypes and plain
containers, and the keys and shapes are checked before use; every problem is one error naming the
file. :func:`synthetic_faceverse` builds a dict in the same layout for tests and benchmarks (the
real model cannot be downloaded here).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reactcli.data.loaders import load_npy
from reactcli.errors import ReactError, file_error
from reactcli.render.face_model import FaceModel, display_to_raw
from reactcli.vocab import EXPRESSION_DIM

ID_DIM = 150  # identity coefficients of FaceVerse v2


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
    if ex_base.shape != (3 * n_vert, EXPRESSION_DIM):
        raise file_error(path, f"'exBase' has shape {ex_base.shape}, expected ({3 * n_vert}, {EXPRESSION_DIM})")
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
    smooth = np.stack(
        [np.sin((k + 1) * verts[:, 0] * 3) * np.cos((k % 5 + 1) * verts[:, 1] * 3) for k in range(EXPRESSION_DIM)]
    )
    ex = (smooth[:, :, None] * rng.normal(0, 0.02, (EXPRESSION_DIM, 1, 3))).reshape(EXPRESSION_DIM, -1).T
    return {
        "meanshape": display_to_raw(verts.astype(np.float32)).reshape(1, -1),
        "idBase": rng.normal(0, 1e-3, (verts.size, ID_DIM)).astype(np.float32),
        "exBase": display_to_raw(ex.T.reshape(EXPRESSION_DIM, -1, 3).astype(np.float32))
        .reshape(EXPRESSION_DIM, -1)
        .T.copy(),
        "tri": tri.astype(np.int32),
        "meantex": np.full((1, verts.size), 180.0, np.float32),
    }
