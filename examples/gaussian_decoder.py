"""A decoder-only model with a Gaussian likelihood (no encoder): a "deep latent Gaussian model" for 28 x 28 images.

p(z) = N(0, I) in 2-D, p(x|z) = N(x; mean(z), diag exp(log_var)) with a per-pixel log variance learned apart from z.

Without `encode(x)` there is no amortised q(z|x): LVM Explorer says so where a view needs one, and `lvm eval` skips
the methods that need it (exact quadrature still works: the latent space is 2-D). `gaussian_params(z)` is the
decoder's fast path (mean and log variance).

    lvm eval --model examples/gaussian_decoder.py --data digits --limit 100 --methods quadrature:64
"""

import math

import torch
from torch import nn


class GaussianDecoder(nn.Module):
    def __init__(self, latent_dim=2, hidden=128, data_dim=784):
        super().__init__()
        self.latent_dim = latent_dim
        self.data_dim = data_dim
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, data_dim), nn.Sigmoid())
        self.log_var = nn.Parameter(torch.full((data_dim,), -3.0))

    def gaussian_params(self, z):
        mean = self.net(z)
        return mean, self.log_var.expand_as(mean)

    def log_prior(self, z):
        return -0.5 * (z**2).sum(-1) - 0.5 * self.latent_dim * math.log(2 * math.pi)

    def log_likelihood(self, x, z):
        mean, log_var = self.gaussian_params(z)
        return -0.5 * (((x - mean) ** 2) / log_var.exp() + log_var + math.log(2 * math.pi)).sum(-1)


def make_model():
    torch.manual_seed(1)
    return GaussianDecoder()
