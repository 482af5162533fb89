"""A small convolutional VAE for 28 x 28 digits with a 4-D latent space.

p(z) = N(0, I_4); the decoder maps z to a 32 x 7 x 7 feature map and up-samples it twice (transposed convolutions)
to 28 x 28 Bernoulli logits; the encoder mirrors it. With 4 latent dimensions log p(x) has no exact quadrature:
LVM Explorer estimates it (annealed importance sampling) and says so. `sample(n)` draws (z, x) from the model.

    lvm-explorer --model examples/conv_decoder.py
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal


class ConvVAE(nn.Module):
    def __init__(self, latent_dim=4, channels=16):
        super().__init__()
        self.latent_dim = latent_dim
        self.data_dim = 28 * 28
        self.image_shape = (28, 28)
        c = channels
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c, 4, stride=2, padding=1),  # 14 x 14
            nn.ReLU(),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1),  # 7 x 7
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2 * c * 7 * 7, 2 * latent_dim),
        )
        self.fc = nn.Linear(latent_dim, 2 * c * 7 * 7)
        self.deconv = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1),  # 14 x 14
            nn.ReLU(),
            nn.ConvTranspose2d(c, 1, 4, stride=2, padding=1),  # 28 x 28
        )
        self.channels = c

    def encode(self, x):
        mu, log_var = self.encoder(x.reshape(-1, 1, 28, 28)).chunk(2, dim=-1)
        return Independent(Normal(mu, torch.exp(0.5 * log_var)), 1)

    def bernoulli_logits(self, z):
        batch = z.shape[:-1]  # any leading dimensions: (S, B) for the estimators
        h = self.fc(z.reshape(-1, self.latent_dim)).reshape(-1, 2 * self.channels, 7, 7)
        return self.deconv(h).reshape(*batch, 784)

    def log_prior(self, z):
        return Normal(0.0, 1.0).log_prob(z).sum(-1)

    def log_likelihood(self, x, z):
        logits = self.bernoulli_logits(z)
        return (x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)).sum(-1)

    def sample(self, n):
        z = torch.randn(n, self.latent_dim, device=self.fc.weight.device)
        x = Bernoulli(logits=self.bernoulli_logits(z)).sample()
        return z, x


def make_model():
    torch.manual_seed(2)
    return ConvVAE()
