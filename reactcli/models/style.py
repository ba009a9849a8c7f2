"""A per-reaction style code (``predictor.style_dim``): one latent per reaction, drawn at frame 0 and held.

REACT wants several *different* appropriate reactions, and a listener commits to one way of
listening for a whole conversation (the synthetic listeners: a style, a delay, a temperament). A
token sampler only makes that choice implicitly, frame by frame. The style code makes it explicit,
as a conditional VAE: in training, a posterior encoder reads the real listener's emotion over the
training window and gives a Gaussian over a small latent z; a sample of it is added to every
listener input of the window, and a KL term (``training.style_kl_weight``) pulls the posterior
towards N(0, I). At generation each reaction draws its own z from N(0, scale^2 I)
(``generation.style_scale``) before its first frame and keeps it: the draw depends on the seed and
the reaction only, never on speaker input, so generation stays strictly online.

The injection has no bias, so z = 0 (the prior's mean) is the same as no code: validation and the
scheduled-sampling pass, which run without a posterior, see the prior's mean.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from reactcli.runtime import derive_seed
from reactcli.vocab import EMOTION_DIM


class StyleCode(nn.Module):
    """Posterior encoder (listener emotion window -> mean, log-variance) and the latent's injection."""

    def __init__(self, style_dim: int, dim: int) -> None:
        super().__init__()
        self.style_dim = style_dim
        self.encoder = nn.Sequential(nn.Linear(EMOTION_DIM, dim), nn.GELU(), nn.Linear(dim, dim))
        self.posterior_head = nn.Linear(dim, 2 * style_dim)
        self.inject = nn.Linear(style_dim, dim, bias=False)

    def posterior(self, emotion: Tensor, padding: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mean and log-variance (B, style_dim) from standardised listener emotion (B, T, 25); padded
        frames are left out of the pooling."""
        h = self.encoder(emotion)
        if padding is None:
            pooled = h.mean(1)
        else:
            keep = (~padding).to(h.dtype)[..., None]
            pooled = (h * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        mean, log_var = self.posterior_head(pooled).chunk(2, dim=-1)
        return mean, log_var.clamp(-8.0, 4.0)

    @staticmethod
    def sample(mean: Tensor, log_var: Tensor) -> Tensor:
        """A reparameterised posterior sample (torch's RNG, which the training loop seeds per step)."""
        return mean + torch.randn_like(mean) * (0.5 * log_var).exp()

    @staticmethod
    def kl(mean: Tensor, log_var: Tensor) -> Tensor:
        """KL(posterior || N(0, I)), summed over the latent and averaged over the batch."""
        return 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(-1).mean()

    def embed(self, style: Tensor) -> Tensor:
        """(B, style_dim) -> (B, 1, dim), added to every listener input of the reaction."""
        return self.inject(style)[:, None]


def draw_styles(samples: int, style_dim: int, seed: int, scale: float) -> Tensor:
    """One style code per reaction, (K, style_dim) from N(0, scale^2 I), seeded by ``seed`` alone."""
    g = torch.Generator().manual_seed(derive_seed("style", seed))
    return torch.randn(samples, style_dim, generator=g) * scale
