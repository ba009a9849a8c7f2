"""A PNG per clip: generated vs ground-truth emotion curves (valence, arousal and a few AUs).

Uses matplotlib's object API with the Agg canvas (no pyplot global state, no display needed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reactcli.atomic import atomic_path
from reactcli.vocab import EMOTION_COLUMNS, FPS

#: valence, arousal, then the AUs of a smile (6, 12), a frown (4) and an open mouth (25)
PLOT_DIMS = ("valence", "arousal", "AU12", "AU6", "AU4", "AU25")


def plot_emotion(
    path: str | Path, generated: np.ndarray, truth: np.ndarray, chosen: int, title: str, fps: int = FPS
) -> None:
    """Write a 3 x 2 grid: the ground truth, the rendered reaction ``chosen`` and the other K-1 faintly.

    ``generated`` is (K, T, 25), ``truth`` (T', 25); time in seconds at ``fps`` (MARS: 30).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 6.5), dpi=90)
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, 2, sharex=True)
    t_gen = np.arange(generated.shape[1]) / fps
    t_gt = np.arange(truth.shape[0]) / fps
    for ax, name in zip(axes.ravel(), PLOT_DIMS, strict=True):
        dim = EMOTION_COLUMNS.index(name)
        for k in range(generated.shape[0]):
            if k != chosen:
                ax.plot(t_gen, generated[k, :, dim], color="tab:blue", alpha=0.15, lw=0.6)
        ax.plot(t_gt, truth[:, dim], color="black", lw=1.0, label="listener ground truth")
        ax.plot(t_gen, generated[chosen, :, dim], color="tab:red", lw=1.0, label=f"generated (k={chosen})")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("time (s)", fontsize=8)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
