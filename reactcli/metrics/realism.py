"""FRRea: the Frechet distance between Inception features of real and rendered listener frames.

The FID network (torch-fidelity's InceptionV3, 2048-d pool features) needs a weights file that
cannot be downloaded at run time here and torchvision-free torch-fidelity, an optional extra.
This module holds the exact Frechet distance between two feature sets, which is all of FID that
does not depend on that network, and says why FRRea cannot be computed when it cannot.
"""

from __future__ import annotations

import importlib.util

import numpy as np
from scipy import linalg


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of an (n, d) feature set, in float64."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"need an (n >= 2, d) feature array, got shape {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)), the FID formula.

    A near-singular product gets the usual small diagonal offset; the imaginary part that
    ``sqrtm`` leaves from rounding is dropped.
    """
    diff = np.asarray(mu1, dtype=np.float64) - np.asarray(mu2, dtype=np.float64)
    s1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    s2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    covmean = np.real(covmean)
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def frechet_distance_features(real: np.ndarray, fake: np.ndarray) -> float:
    """Frechet distance between two (n, d) feature sets."""
    return frechet_distance(*feature_statistics(real), *feature_statistics(fake))


def frrea_unavailable_reason() -> str:
    """Why ``react evaluate`` reports FRRea as null on this installation."""
    if importlib.util.find_spec("torch_fidelity") is None:
        return (
            "FRRea needs rendered frames, the FID InceptionV3 weights file and the optional torch-fidelity "
            "package (pip install 'reactcli[fid]'), which is not installed; FRRea is left out"
        )
    return (
        "FRRea needs rendered frames (react render) and a local FID InceptionV3 weights file; "
        "this version of react evaluate does not score rendered videos, so FRRea is left out"
    )
