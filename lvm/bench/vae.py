"""VAE benchmark: one training epoch with ``lvm.training.train_vae`` against a plain hand-written PyTorch loop of the
same network (same batch size, Adam, dynamic binarization x ~ Bernoulli(pixel), the same negative single-sample ELBO
with analytic KL), plus the two decodes the Latent lab makes interactively (1 image on hover, a 20 x 20 grid).

Data: MNIST training images from ``lvm.bench.shared_data_dir() / "mnist"`` (60,000; ``quick``: 6,000).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from lvm.bench import case, median_time, shared_data_dir
from lvm.models.vae import VAE, VAEConfig
from lvm.training import TrainConfig, train_vae

BATCH = 128
LR = 2e-3


def _mnist_train(n: int) -> torch.Tensor:
    from lvm.data import load_dataset

    ds = load_dataset(shared_data_dir() / "mnist")
    return torch.as_tensor(ds.split("train").x[:n])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reference_epoch(config: VAEConfig, x: torch.Tensor, device: torch.device, seed: int = 0) -> float:
    """A plain PyTorch epoch: two nn.Sequential MLPs, Adam, dynamic binarization, -ELBO; returns the mean ELBO."""
    torch.manual_seed(seed)
    act = {"elu": nn.ELU, "tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}[config.activation]

    def mlp(sizes: list[int]) -> nn.Sequential:
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(act())
        return nn.Sequential(*layers)

    enc = mlp([config.data_dim, *config.hidden, 2 * config.latent_dim]).to(device)
    dec = mlp([config.latent_dim, *reversed(config.hidden), config.data_dim]).to(device)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=LR)
    x = x.to(device)
    perm = torch.randperm(x.shape[0], device=device)
    total = 0.0
    for i in range(0, x.shape[0], BATCH):
        xb = torch.bernoulli(x[perm[i : i + BATCH]])
        mu, log_sigma = enc(xb).chunk(2, dim=-1)
        log_sigma = log_sigma.clamp(-12.0, 6.0)
        z = mu + log_sigma.exp() * torch.randn_like(mu)
        rec = -F.binary_cross_entropy_with_logits(dec(z), xb, reduction="none").sum(-1)
        kl = 0.5 * (mu.pow(2) + (2 * log_sigma).exp() - 2 * log_sigma - 1).sum(-1)
        loss = -(rec - kl).mean()
        opt.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)  # = loss.backward(), which has no annotations
        opt.step()
        total += -loss.item() * xb.shape[0]
    _sync(device)
    return total / x.shape[0]


def ours_epoch(config: VAEConfig, x: torch.Tensor, device: torch.device, seed: int = 0) -> float:
    """One epoch of ``train_vae`` (constant lr, like the reference); returns its mean training ELBO."""
    torch.manual_seed(seed)
    model = VAE(config)
    last = None
    for snap in train_vae(
        model,
        x,
        None,
        TrainConfig(epochs=1, batch_size=BATCH, lr=LR, schedule="constant", seed=seed, report_every=10**9),
        device,
    ):
        last = snap
    _sync(device)
    assert last is not None  # train_vae yields at least its final snapshot
    return last.train_elbo


def decode_times(config: VAEConfig, device: torch.device, repeats: int = 20) -> dict[str, float]:
    """Median seconds of E[x|z] for 1 latent point (hover) and for a 20 x 20 grid (the decoding mosaic)."""
    torch.manual_seed(0)
    model = VAE(config).to(device).eval()
    z1 = torch.randn(1, config.latent_dim, device=device)
    g = torch.linspace(-3, 3, 20, device=device)
    zg = torch.cartesian_prod(g, g)
    if config.latent_dim > 2:
        zg = torch.cat([zg, torch.zeros(400, config.latent_dim - 2, device=device)], 1)

    def dec(z: torch.Tensor) -> None:
        with torch.inference_mode():
            model.decode_mean(z).cpu()

    return {
        "hover": median_time(lambda: dec(z1), repeats=repeats, warmup=3),
        "grid": median_time(lambda: dec(zg), repeats=repeats, warmup=3),
    }


def run(quick: bool, device: torch.device) -> dict[str, Any]:
    device = torch.device(device)
    n = 6000 if quick else 60000
    x = _mnist_train(n)
    config = VAEConfig()  # the Latent lab's default architecture: 784-512-512-512-2
    repeats = 2 if quick else 1
    elbos: dict[str, float] = {}

    def ours() -> None:
        elbos["ours"] = ours_epoch(config, x, device)

    def reference() -> None:
        elbos["reference"] = reference_epoch(config, x, device)

    # alternate the two so that a busy machine slows both alike; a one-batch run of each warms up first
    ours_epoch(config, x[:BATCH], device)
    reference_epoch(config, x[:BATCH], device)
    ours_t, ref_t = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ours()
        ours_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        reference()
        ref_t.append(time.perf_counter() - t0)
    ours_s, ref_s = statistics.median(ours_t), statistics.median(ref_t)
    cases = [
        case(
            f"train one epoch ({n:,} MNIST images, 784-512x3-2, batch {BATCH})",
            ours_s,
            "plain PyTorch loop",
            ref_s,
            images=n,
            ours_train_elbo=elbos["ours"],
            reference_train_elbo=elbos["reference"],
            ours_images_per_s=n / ours_s,
        )
    ]
    t = decode_times(config, device)
    # the references for the interactive decodes are the GUI's frame budgets (16 ms hover, 30 ms grid)
    cases.append(case("hover decode (1 image)", t["hover"], "16 ms frame budget", 0.016))
    cases.append(case("decoding grid (20 x 20 images)", t["grid"], "30 ms budget", 0.030))
    return {
        "cases": cases,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
