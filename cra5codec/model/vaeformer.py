"""VAEformer: the CRA5 codec network, one 2-D field at a time.

Read it as the paper's figure::

    x --patch_embed--> tokens --g_a (ACT blocks)--> (mean, log-variance) --> y
    y * gain[q] --h_a--> z --Q--> z_hat --h_s--> (mu, sigma)     # hyperprior
    y_hat = Q(y * gain[q] - mu) + mu                              # coded under N(mu, sigma)
    y_hat * inv_gain[q] --g_s (ACT blocks)--> tokens --patch_unembed--> x_hat

Every field is normalised to zero mean and unit variance before it enters, so the
network never sees units; a chunk's variables are simply a batch of fields, which
is why the number of variables is not fixed by the model. ``gain``/``inv_gain`` are
per-channel latent scalings, one pair per quality level (Cui et al., "gain units"):
all quality levels share one transform and one hyperprior.

Inputs must be padded so that H and W are multiples of :data:`ALIGN` (the pipeline
pads latitude by reflection and longitude periodically).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .act import KINDS, ACTStage
from .priors import FactorizedPrior, GaussianConditional

#: patch size (8) x hyperprior stride (4): the grid multiple the network needs
ALIGN = 32


def periodic_pad(x: torch.Tensor, p: int) -> torch.Tensor:
    """Pad (B, C, H, W) by ``p``: periodically in longitude, by replication in latitude."""
    x = F.pad(x, (p, p, 0, 0), mode="circular")
    return F.pad(x, (0, 0, p, p), mode="replicate")


class PeriodicConv(nn.Conv2d):
    """A 'same' convolution that wraps around longitude."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(periodic_pad(x, self.kernel_size[0] // 2))


class VAEformer(nn.Module):
    """Variational transformer codec with a mean-scale hyperprior.

    Parameters
    ----------
    patch : pixels per token side (the patch embedding's kernel and stride)
    dim, depth, heads, window : width, blocks per transform, heads, base window (tokens)
    latent : channels of ``y``;  hyper, side : hyperprior width and channels of ``z``
    qualities : number of quality levels (gain pairs)
    kinds, wrap : ACT window kinds to cycle and whether windows wrap in longitude
    """

    def __init__(self, patch=8, dim=128, depth=4, heads=4, window=8, latent=32, hyper=64,
                 side=8, qualities=4, kinds=KINDS, wrap=True, mlp_ratio=2.0):
        super().__init__()
        self.config = dict(patch=patch, dim=dim, depth=depth, heads=heads, window=window,
                           latent=latent, hyper=hyper, side=side, qualities=qualities,
                           kinds=list(kinds), wrap=wrap, mlp_ratio=mlp_ratio)
        self.patch = patch
        # g_a: analysis transform -> Gaussian posterior over y
        self.patch_embed = nn.Conv2d(1, dim, patch, patch)
        self.pos_a = PeriodicConv(dim, dim, 3, groups=dim)  # conditional position encoding
        self.g_a = ACTStage(dim, depth, heads, window, tuple(kinds), wrap, mlp_ratio)
        self.norm_a = nn.LayerNorm(dim)
        self.to_posterior = nn.Linear(dim, 2 * latent)  # mean, log-variance
        # h_a, h_s: hyperprior transforms
        self.h_a = nn.Sequential(
            PeriodicConv(latent, hyper, 3), nn.GELU(),
            nn.Conv2d(hyper, hyper, 4, 2, 1), nn.GELU(),
            nn.Conv2d(hyper, side, 4, 2, 1))
        self.h_s = nn.Sequential(
            nn.ConvTranspose2d(side, hyper, 4, 2, 1), nn.GELU(),
            nn.ConvTranspose2d(hyper, hyper, 4, 2, 1), nn.GELU(),
            PeriodicConv(hyper, 2 * latent, 3))
        self.z_prior = FactorizedPrior(side)
        self.y_conditional = GaussianConditional()
        init = torch.linspace(0.0, 2.0, qualities)[:, None].expand(qualities, latent)
        self.log_gain = nn.Parameter(init.clone())
        self.log_inv_gain = nn.Parameter(-init.clone())
        # g_s: synthesis transform
        self.from_latent = nn.Linear(latent, dim)
        self.pos_s = PeriodicConv(dim, dim, 3, groups=dim)
        self.g_s = ACTStage(dim, depth, heads, window, tuple(kinds), wrap, mlp_ratio)
        self.norm_s = nn.LayerNorm(dim)
        self.patch_unembed = nn.Linear(dim, patch * patch)
        self.refine = nn.Sequential(PeriodicConv(1, 16, 3), nn.GELU(), PeriodicConv(16, 1, 3))

    # ------------------------------------------------------------------ transforms
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 1, H, W) -> mean, log-variance of y, each (B, latent, H/p, W/p)."""
        t = self.patch_embed(x)
        t = (t + self.pos_a(t)).permute(0, 2, 3, 1)
        t = self.to_posterior(self.norm_a(self.g_a(t))).permute(0, 3, 1, 2)
        mean, logvar = t.chunk(2, dim=1)
        return mean, logvar.clamp(-30, 20)

    def synthesise(self, y: torch.Tensor) -> torch.Tensor:
        """y (B, latent, h, w) -> x_hat (B, 1, h*p, w*p)."""
        t = self.from_latent(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        t = (t + self.pos_s(t)).permute(0, 2, 3, 1)
        t = self.patch_unembed(self.norm_s(self.g_s(t))).permute(0, 3, 1, 2)
        x = F.pixel_shuffle(t, self.patch)
        return x + self.refine(x)

    def hyper_synthesis(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z_hat -> mean and scale of the Gaussian conditional of the gained y."""
        mu, log_scale = self.h_s(z_hat).chunk(2, dim=1)
        return mu, torch.exp(log_scale)

    def gain(self, q: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
        """(gain, inverse gain) for quality index q (0-based), shaped (B or 1, latent, 1, 1)."""
        g, ig = torch.exp(self.log_gain[q]), torch.exp(self.log_inv_gain[q])
        return g.view(-1, g.shape[-1], 1, 1), ig.view(-1, ig.shape[-1], 1, 1)

    # ------------------------------------------------------------------ training passes
    def forward_vae(self, x: torch.Tensor, sample: bool = True):
        """Phase 1: reconstruction through a sampled latent. Returns x_hat, KL per element.

        ``sample=False`` trains a plain autoencoder instead (the mean goes straight to
        g_s): the ablation against the Gaussian latent.
        """
        mean, logvar = self.posterior(x)
        y = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean) if sample else mean
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar)
        return self.synthesise(y), kl.mean()

    def forward_rate(self, x: torch.Tensor, q: torch.Tensor, train_encoder: bool = False):
        """Phases 2 and 3: through the quantised latent. Returns x_hat and bits per field.

        Phase 2 freezes the encoder; phase 3 (joint) lets rate and distortion train it too.
        """
        with torch.set_grad_enabled(train_encoder and torch.is_grad_enabled()):
            mean, _ = self.posterior(x)
        g, ig = self.gain(q)
        y = mean * g
        z_hat, pz = self.z_prior(self.h_a(y))
        mu, scale = self.hyper_synthesis(z_hat)
        _, py = self.y_conditional(y, mu, scale)
        # decoder sees the rounded latent (straight-through), the rate sees the noisy one
        y_hat = y + (torch.round(y - mu) + mu - y).detach()
        bits = -(torch.log2(py).flatten(1).sum(1) + torch.log2(pz).flatten(1).sum(1))
        return self.synthesise(y_hat * ig), bits
