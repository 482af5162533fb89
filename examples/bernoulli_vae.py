"""A variational autoencoder for 28 x 28 digits, written the way a course homework would be.

p(z) = N(0, I), p(x|z) = prod_d Bernoulli(x_d; sigmoid(f(z)_d)), q(z|x) = N(mu(x), diag sigma(x)^2).

LVM Explorer needs `latent_dim`, `log_prior(z)` and `log_likelihood(x, z)`; `encode(x)` (the encoder's q) and
`bernoulli_logits(z)` (the decoder's logits) let it show more. `make_model()` builds the model and loads the weights
in `bernoulli_vae.safetensors` beside this file when they are there (random weights otherwise).

    lvm-explorer --model examples/bernoulli_vae.py
    lvm eval --model examples/bernoulli_vae.py --data digits --limit 200 --methods quadrature:64,iwae:500,elbo
    python examples/bernoulli_vae.py     # trains it for about a minute on the bundled digits and saves the weights
"""

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Independent, Normal

WEIGHTS = Path(__file__).with_suffix(".safetensors")


class BernoulliVAE(nn.Module):
    def __init__(self, latent_dim=2, hidden=200):
        super().__init__()
        self.latent_dim = latent_dim
        self.data_dim = 784
        self.image_shape = (28, 28)
        self.encoder = nn.Sequential(nn.Linear(784, hidden), nn.Tanh(), nn.Linear(hidden, 2 * latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.Tanh(), nn.Linear(hidden, 784))

    def encode(self, x):
        mu, log_var = self.encoder(x).chunk(2, dim=-1)
        return Independent(Normal(mu, torch.exp(0.5 * log_var)), 1)

    def bernoulli_logits(self, z):
        return self.decoder(z)

    def log_prior(self, z):
        return -0.5 * (z**2).sum(-1) - 0.5 * self.latent_dim * math.log(2 * math.pi)

    def log_likelihood(self, x, z):
        logits = self.decoder(z)  # (S, B, 784) for z of shape (S, B, latent_dim)
        return (x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)).sum(-1)

    def elbo(self, x):
        q = self.encode(x)
        z = q.rsample()
        return self.log_likelihood(x, z) + self.log_prior(z) - q.log_prob(z)


def make_model():
    model = BernoulliVAE()
    if WEIGHTS.exists():
        from safetensors.torch import load_file

        model.load_state_dict(load_file(WEIGHTS))
    return model


def train(model, x, seconds=60.0, batch_size=128, lr=2e-3):
    """Maximise the ELBO with Adam for about `seconds` seconds; returns the last batch's mean ELBO."""
    import time

    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    start, elbo = time.perf_counter(), float("nan")
    model.train()
    while time.perf_counter() - start < seconds:
        for batch in torch.randperm(len(x)).split(batch_size):
            loss = -model.elbo(x[batch]).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            elbo = -loss.item()
            if time.perf_counter() - start > seconds:
                break
    model.eval()
    return elbo


if __name__ == "__main__":
    from safetensors.torch import save_file

    from lvm.data import load_dataset

    torch.manual_seed(0)
    x = torch.from_numpy(load_dataset("digits").split().x)
    model = BernoulliVAE()
    print(f"ELBO after training: {train(model, x):.1f} nats")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(WEIGHTS))
    print(f"saved {WEIGHTS}")
