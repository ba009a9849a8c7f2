"""FRRea: the Frechet distance between Inception features of real and rendered listener frames.

The features come from :mod:`reactcli.metrics.inception`, a torch-only rebuild of pytorch-fid
0.3.0's InceptionV3 (2048-d pool3) that loads the user's ``pt_inception-2015-12-05-6726825d.pth``
(no torchvision, no download); ``react fid`` scores two image folders with it. This module holds
the Frechet distance itself, computed as pytorch-fid does (scipy's ``sqrtm`` of the covariance
product, its two fallbacks), so the numbers match ``python -m pytorch_fid`` in the last digits,
and says why ``react evaluate`` reports FRRea as null when its weights are not given
(:mod:`reactcli.metrics.frrea` renders the frames and computes it when they are).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of an (n, d) feature set, in float64."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"need an (n >= 2, d) feature array, got shape {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)), the FID formula as pytorch-fid computes it.

    Below 2049 images both covariances are singular, so the steps follow pytorch-fid exactly to
    agree in the last digits: a non-finite root is retried with 1e-6 on both diagonals; a complex
    root whose diagonal has an imaginary part above 1e-3 is an error (``ValueError``, as there);
    otherwise its real part is kept. ``sqrtm`` is called without ``disp`` (deprecated in scipy
    1.17, same matrix).
    """
    diff = np.asarray(mu1, dtype=np.float64) - np.asarray(mu2, dtype=np.float64)
    s1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    s2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)  # "singular matrix" is the normal case
        covmean = linalg.sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():
            offset = np.eye(s1.shape[0]) * 1e-6
            covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def frechet_distance_features(real: np.ndarray, fake: np.ndarray) -> float:
    """Frechet distance between two (n, d) feature sets."""
    return frechet_distance(*feature_statistics(real), *feature_statistics(fake))


def frrea_unavailable_reason() -> str:
    """Why ``react evaluate`` reports FRRea as null: its two weights files were not given.

    Both are downloads the user makes (neither can be fetched at run time), so their absence is a
    null with this reason, not an error.
    """
    return (
        "FRRea needs the REACT PIRender weights and the FID Inception weights, which were not given: "
        "add --pirender cur_model_fold.pth --inception pt_inception-2015-12-05-6726825d.pth "
        "(and a react generate folder as --predictions) to render the frames and score them"
    )
