"""The two priors of the hyperprior, as trainable torch layers.

* :class:`FactorizedPrior` -- the side latent ``z`` under a learned, per-channel,
  non-parametric density (Ballé et al. 2018, appendix 6.1);
* :class:`GaussianConditional` -- the main latent ``y`` under a Gaussian whose mean
  and scale the hyper-synthesis computes from ``z``.

Both add uniform noise in training and round at inference; their coding tables
are exported to :mod:`cra5codec.entropy`.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..entropy import PMF_FLOOR, SCALE_MAX, SCALE_MIN, Z_RANGE, _normalise


class FactorizedPrior(nn.Module):
    """Learned per-channel density of ``z`` (a monotone CDF network per channel)."""

    def __init__(self, channels: int, filters=(3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        dims = (1, *filters, 1)
        scale = init_scale ** (1 / (len(filters) + 1))
        self.matrices, self.biases, self.factors = nn.ParameterList(), nn.ParameterList(), nn.ParameterList()
        for i in range(len(filters) + 1):
            init = math.log(math.expm1(1 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def _logits_cdf(self, x: torch.Tensor) -> torch.Tensor:  # (C, 1, N)
        for i, (m, b) in enumerate(zip(self.matrices, self.biases)):
            x = torch.matmul(F.softplus(m), x) + b
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i]) * torch.tanh(x)
        return x

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """Probability of the unit bin around each element of ``z`` (B, C, H, W)."""
        C = z.shape[1]
        v = z.transpose(0, 1).reshape(C, 1, -1)
        lower, upper = self._logits_cdf(v - 0.5), self._logits_cdf(v + 0.5)
        sign = -torch.sign(lower + upper).detach()  # evaluate in the numerically stable tail
        p = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        return p.reshape(C, z.shape[0], *z.shape[2:]).transpose(0, 1).clamp_min(PMF_FLOOR)

    def forward(self, z: torch.Tensor):
        z_hat = z + torch.empty_like(z).uniform_(-0.5, 0.5) if self.training else torch.round(z)
        return z_hat, self.likelihood(z_hat)

    @torch.no_grad()
    def pmf_table(self, R: int = Z_RANGE) -> np.ndarray:
        """(C, 2R+1) probabilities of the integers -R..R, tails folded into the ends."""
        C = self.matrices[0].shape[0]
        s = torch.arange(-R, R + 1, dtype=torch.float32).expand(C, 1, -1)
        lower = torch.sigmoid(self._logits_cdf(s - 0.5))[:, 0].double()
        upper = torch.sigmoid(self._logits_cdf(s + 0.5))[:, 0].double()
        p = upper - lower
        p[:, 0] = upper[:, 0]
        p[:, -1] = 1 - lower[:, -1]
        return _normalise(p.numpy())


def _phi(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x / math.sqrt(2))


class GaussianConditional(nn.Module):
    """``y`` under N(mean, scale) integrated over unit bins centred on ``mean``."""

    def forward(self, y: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor):
        scale = scale.clamp(SCALE_MIN, SCALE_MAX)
        if self.training:
            y_hat = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        else:
            y_hat = torch.round(y - mean) + mean
        v = torch.abs(y_hat - mean)  # symmetric: evaluate in the lower tail
        p = _phi((0.5 - v) / scale) - _phi((-0.5 - v) / scale)
        return y_hat, p.clamp_min(PMF_FLOOR)
