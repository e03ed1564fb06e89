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
    """Pad (B, C, H, W) by ``p``: periodically in longitude, by replication in latitude.

    Written as slice copies into one new tensor: the same values as ``F.pad`` with
    "circular" then "replicate", without replicate's slow CPU kernel (4 ms for a
    16-channel 128 x 256 chunk in bfloat16, 25x this) or a second full copy.
    """
    B, C, H, W = x.shape
    out = x.new_empty(B, C, H + 2 * p, W + 2 * p)
    out[:, :, p:p + H, p:p + W] = x
    out[:, :, p:p + H, :p] = x[..., W - p:]
    out[:, :, p:p + H, p + W:] = x[..., :p]
    out[:, :, :p] = out[:, :, p:p + 1]
    out[:, :, p + H:] = out[:, :, p + H - 1:p + H]
    return out


class PeriodicConv(nn.Conv2d):
    """A 'same' convolution that wraps around longitude."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(periodic_pad(x, self.kernel_size[0] // 2))


#: the modules that may run in bfloat16 at inference (cra5codec.runtime): the token
#: transforms. The heads that produce y and x_hat stay float32, because bfloat16's 8-bit
#: mantissa would add an error of 0.4 % of each value, as large as the codec's own error
#: at its best levels; the hyperprior decides probability tables and never runs in it.
LOW_PRECISION = ("patch_embed", "pos_a", "g_a", "from_latent", "pos_s", "g_s", "refine")


def _full_precision(t: torch.Tensor):
    """A region where autocast (if on) is off: the float32 heads."""
    return torch.autocast(t.device.type, enabled=False)


def _upcast(t: torch.Tensor) -> torch.Tensor:
    """bfloat16 -> float32; float32 and float64 (the exact predictor) pass unchanged.

    Under autocast the token stream would otherwise stay bfloat16 from the embedding
    on; kept float32, the residual additions lose nothing between blocks."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


class Refine(nn.Sequential):
    """Full-resolution residual refinement: 3x3 periodic conv (1 -> hidden), GELU, 3x3
    periodic conv (hidden -> 1).

    Computes exactly what the two padded convolutions compute, without padding the
    hidden maps: the first convolution runs on the input padded by two, which gives the
    hidden maps with exact periodic longitude margins; their latitude margin rows are
    then overwritten by the edge rows (replication), and the second convolution needs
    no padding. The hidden maps are the largest tensors of the decoder, so this saves
    their copy and pad.
    """

    def __init__(self, hidden: int = 16):
        super().__init__(PeriodicConv(1, hidden, 3), nn.GELU(), PeriodicConv(hidden, 1, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1, act, c2 = self
        h = F.conv2d(periodic_pad(x, 2), c1.weight, c1.bias)  # (B, hidden, H + 2, W + 2)
        h[:, :, 0] = h[:, :, 1]
        h[:, :, -1] = h[:, :, -2]
        return F.conv2d(act(h), c2.weight, c2.bias)


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
        self.refine = Refine(16)

    # ------------------------------------------------------------------ transforms
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 1, H, W) -> mean, log-variance of y, each (B, latent, H/p, W/p)."""
        t = self.patch_embed(x)
        t = _upcast(t + self.pos_a(t)).permute(0, 2, 3, 1)
        t = self.norm_a(self.g_a(t))
        with _full_precision(t):
            t = self.to_posterior(_upcast(t)).permute(0, 3, 1, 2)
        mean, logvar = t.chunk(2, dim=1)
        return mean, logvar.clamp(-30, 20)

    def synthesise(self, y: torch.Tensor) -> torch.Tensor:
        """y (B, latent, h, w) -> x_hat (B, 1, h*p, w*p)."""
        t = self.from_latent(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        t = _upcast(t + self.pos_s(t)).permute(0, 2, 3, 1)
        t = self.norm_s(self.g_s(t))
        with _full_precision(t):
            t = self.patch_unembed(_upcast(t)).permute(0, 3, 1, 2)
            x = F.pixel_shuffle(t, self.patch)
        return x + _upcast(self.refine(x))

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
