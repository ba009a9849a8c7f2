"""The REACT 2024 metrics (docs/metrics.md), equal to the official scripts and much faster.

``appropriateness`` (FRC, FRD), ``diversity`` (FRDiv, FRDvs, FRVar), ``synchrony`` (FRSyn,
FRSyn_all), ``realism`` (the Frechet distance of FRRea), ``dtw`` (the FRD kernels), ``evaluate``
(loading, validation, all metrics with timings) and ``baselines`` (GT, Mime, Random, MeanSeq, MeanFr).
"""
