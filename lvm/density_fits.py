"""Fitting 2-D densities: the lecture VAE (exact or ELBO), an MLP-decoder VAE, and a finite Gaussian mixture.

Every fit is a generator of ``FitSnapshot``s (cancel by closing it / stopping iteration; it stops between steps).
All reported log-likelihoods are exact, by quadrature over the small latent (per-point means in nats):

- ``fit_exact``: maximise (1/N) sum_i log p_theta(x_i), log p(x) = log sum_g w_g N(x; mu(z_g), Sigma(z_g)) on a
  randomised midpoint grid over [-5, 5]^Dz (a fresh random shift of the grid every step, so the fit cannot exploit
  fixed nodes), full batch, Adam.
- ``fit_elbo``: maximise the ELBO (1/N) sum_i E_q[log p(x_i|z)] - KL(q(z|x_i) || N(0, I)) jointly over theta and an
  amortised encoder q_phi(z|x) = N(m_phi(x), diag s_phi(x)^2) (a small MLP), one reparameterised sample, analytic KL.
  log p(x) >= ELBO, with equality only when q(z|x) is the exact posterior.
- ``fit_mlp``: the same ELBO with mu_theta and Sigma_theta small MLPs (``lvm.models.vae.VAE``, Gaussian decoder,
  2-D latent) via ``lvm.training.train_vae``; the density becomes flexible.
- ``fit_gmm``: a K-component Gaussian mixture by EM (``lvm.models.GaussianMixture``): a finite mixture.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from lvm.errors import ModelInputError
from lvm.models.base import GaussianDecoderModule, LatentModel
from lvm.models.lecture_vae import LectureVAE, log_marginal_quadrature

if TYPE_CHECKING:
    from lvm.models.vae import VAE

EVAL_NZ = {1: 400, 2: 160}  # midpoint nodes per axis on [-6, 6]^Dz for the reported (exact) log-likelihoods
EVAL_LIMIT = 6.0

# the x-grid a density is drawn on: (xs (nx,), ys (ny,))
Grid: TypeAlias = tuple[npt.ArrayLike, npt.ArrayLike]


@dataclasses.dataclass(frozen=True)
class FitSnapshot:
    """Progress of one fit. Log-likelihoods are per-point means in nats (higher is better)."""

    method: str  # 'exact' | 'elbo' | 'mlp' | 'gmm'
    step: int
    total_steps: int
    objective: float  # what is maximised: mean log p(x) (exact), mean ELBO (elbo, mlp), mean log p(x) (gmm)
    train_log_lik: float | None = None  # exact, by quadrature (at the end, or every ``eval_every`` steps)
    test_log_lik: float | None = None
    density: np.ndarray | None = None  # p(x) on the requested x-grid, (ny, nx)
    theta: dict[str, npt.NDArray[np.float64]] | None = None  # lecture VAE parameters (numpy arrays) for 'exact'/'elbo'
    done: bool = False
    label: str = ""

    @property
    def progress(self) -> float:
        return self.step / max(self.total_steps, 1)


def _tensor(x: npt.ArrayLike, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=dtype)
    if t.ndim != 2 or t.shape[1] != 2:
        raise ModelInputError(f"these fits take 2-D points, shape (N, 2); got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ModelInputError("the data contains NaN or infinity")
    return t


@torch.no_grad()
def exact_log_lik(model: GaussianDecoderModule, x: npt.ArrayLike) -> float:
    """Mean log p(x) in nats by a fine midpoint rule over [-6, 6]^Dz (EVAL_NZ nodes per axis)."""
    p = next(iter(model.parameters()))
    xt = _tensor(x, p.dtype).to(p.device)
    return float(
        log_marginal_quadrature(
            model, xt, n_z=EVAL_NZ[model.latent_dim], method="midpoint", limit=EVAL_LIMIT, chunk=512
        ).mean()
    )


@torch.no_grad()
def model_density(
    model: GaussianDecoderModule, xs: npt.ArrayLike, ys: npt.ArrayLike, n_z: int | None = None
) -> npt.NDArray[np.float64]:
    """p(x) on the grid (xs, ys) -> (ny, nx) by the midpoint rule over [-6, 6]^Dz with ``n_z`` nodes per axis
    (default half of ``exact_log_lik``'s; fewer for live previews)."""
    gx, gy = np.meshgrid(np.asarray(xs, float), np.asarray(ys, float))
    pts = np.stack([gx.ravel(), gy.ravel()], 1)
    p = next(iter(model.parameters()))
    n_z = n_z or EVAL_NZ[model.latent_dim] // 2
    lp = log_marginal_quadrature(
        model,
        torch.as_tensor(pts, dtype=p.dtype, device=p.device),
        n_z=n_z,
        method="midpoint",
        limit=EVAL_LIMIT,
        chunk=512,
    )
    return lp.exp().reshape(gy.shape).cpu().double().numpy()


def fit_exact(
    model: LectureVAE,
    x_train: npt.ArrayLike,
    x_test: npt.ArrayLike | None = None,
    steps: int = 400,
    lr: float = 0.05,
    n_z: int | None = None,
    seed: int = 0,
    report_every: int = 25,
    grid: Grid | None = None,
) -> Iterator[FitSnapshot]:
    """Maximum likelihood for theta: Adam on -(1/N) sum_i log p_theta(x_i) (randomised midpoint quadrature).

    ``grid`` = (xs, ys): the final snapshot carries p(x) on it."""
    xt = _tensor(x_train, model.A.dtype)
    n_z = n_z or (48 if model.latent_dim == 1 else 16)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    obj = float("nan")
    for step in range(1, steps + 1):
        shift = torch.rand(model.latent_dim, generator=g, dtype=torch.float64)
        loss = -log_marginal_quadrature(model, xt, n_z=n_z, method="midpoint", limit=5.0, shift=shift).mean()
        opt.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)  # = loss.backward(), which has no annotations
        opt.step()
        obj = -float(loss.detach())
        if step % report_every == 0 and step < steps:
            yield FitSnapshot("exact", step, steps, obj, theta=model.theta(), label="exact log-likelihood")
    yield _final("exact", model, steps, obj, x_train, x_test, grid, "exact log-likelihood", theta=model.theta())


class Encoder(nn.Module):
    """q_phi(z|x) = N(m_phi(x), diag exp(2 l_phi(x))): an MLP 2 -> hidden -> 2 Dz."""

    def __init__(self, latent_dim: int, hidden: tuple[int, ...] = (32, 32), dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        sizes = [2, *hidden, 2 * latent_dim]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
            layers.append(nn.Linear(a, b, dtype=dtype))
            if i < len(sizes) - 2:
                layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out: torch.Tensor = self.net(x)
        m, log_s = out.chunk(2, -1)
        return m, log_s.clamp(-8.0, 3.0)


def elbo_terms(
    model: LatentModel, encoder: Encoder, x: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Per-x ELBO with one reparameterised z = m + s eps and the analytic KL(q || N(0, I))."""
    q_params: tuple[torch.Tensor, torch.Tensor] = encoder(x)
    m, log_s = q_params
    eps = torch.randn(m.shape, generator=generator, dtype=m.dtype, device=m.device)
    z = m + log_s.exp() * eps
    kl = 0.5 * (m.pow(2) + (2 * log_s).exp() - 2 * log_s - 1).sum(-1)
    return model.log_likelihood(x, z) - kl


def fit_elbo(
    model: LectureVAE,
    x_train: npt.ArrayLike,
    x_test: npt.ArrayLike | None = None,
    steps: int = 1500,
    lr: float = 0.02,
    batch_size: int = 128,
    seed: int = 0,
    report_every: int = 50,
    grid: Grid | None = None,
    encoder_hidden: tuple[int, ...] = (32, 32),
) -> Iterator[FitSnapshot]:
    """Amortised variational inference: Adam on -ELBO over (theta, phi) with minibatches."""
    torch.manual_seed(seed)
    xt = _tensor(x_train, model.A.dtype)
    encoder = Encoder(model.latent_dim, encoder_hidden, dtype=model.A.dtype)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam([*model.parameters(), *encoder.parameters()], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr * 0.05)
    n = xt.shape[0]
    running = None
    for step in range(1, steps + 1):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=g)
        loss = -elbo_terms(model, encoder, xt[idx], g).mean()
        opt.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)  # = loss.backward(), which has no annotations
        opt.step()
        sched.step()
        l = float(loss.detach())
        running = -l if running is None else 0.95 * running - 0.05 * l
        if step % report_every == 0 and step < steps:
            yield FitSnapshot("elbo", step, steps, running, theta=model.theta(), label="ELBO (amortised q)")
    with torch.no_grad():
        full = float(elbo_terms(model, encoder, xt, torch.Generator().manual_seed(seed + 1)).mean())
    yield _final("elbo", model, steps, full, x_train, x_test, grid, "ELBO (amortised q)", theta=model.theta())


def fit_mlp(
    x_train: npt.ArrayLike,
    x_test: npt.ArrayLike | None = None,
    epochs: int = 150,
    hidden: tuple[int, ...] = (64, 64),
    lr: float = 5e-3,
    batch_size: int = 128,
    seed: int = 0,
    grid: Grid | None = None,
    model: VAE | None = None,
    preview_n_z: int = 40,
) -> Iterator[FitSnapshot]:
    """mu_theta, Sigma_theta as MLPs: ``VAE(data_dim=2, latent_dim=2, hidden, decoder='gaussian')`` trained on the
    ELBO with ``train_vae``; reported log-likelihoods exact by quadrature over the 2-D latent. Every progress
    snapshot carries p(x) on ``grid`` (a coarser midpoint rule, ``preview_n_z`` nodes per axis) so the density can be
    watched becoming flexible."""
    from lvm.models.vae import VAE
    from lvm.training import TrainConfig, train_vae

    torch.manual_seed(seed)
    xt = _tensor(x_train, torch.float32)
    model = model or VAE(
        data_dim=2, latent_dim=2, hidden=tuple(hidden), decoder="gaussian", image_shape=None, min_log_var=-7.0
    )
    n = xt.shape[0]
    report_every = max(1, math.ceil(n / batch_size) * 10)
    cfg = TrainConfig(
        epochs=epochs, batch_size=batch_size, lr=lr, schedule="onecycle", seed=seed, report_every=report_every
    )
    last = None
    for snap in train_vae(model, xt, None, cfg, device="cpu"):
        last = snap
        if snap.stopped_reason:
            break
        if not snap.done and snap.step % report_every == 0:
            dens = None
            if grid is not None:
                model.eval()
                dens = model_density(model, *grid, n_z=preview_n_z)
                model.train()
            yield FitSnapshot(
                "mlp", snap.step, snap.total_steps, snap.train_elbo, density=dens, label="ELBO (MLP decoder)"
            )
    model.eval()
    from lvm.training import mean_elbo

    yield _final(
        "mlp", model, last.total_steps if last else 0, mean_elbo(model, xt), x_train, x_test, grid, "ELBO (MLP decoder)"
    )


def fit_gmm(
    x_train: npt.ArrayLike,
    x_test: npt.ArrayLike | None = None,
    n_components: int = 8,
    covariance_type: str = "full",
    seed: int = 0,
    grid: Grid | None = None,
) -> Iterator[FitSnapshot]:
    """A finite mixture: sum_k pi_k N(x; mu_k, Sigma_k), fitted by EM (``lvm.models.GaussianMixture``)."""
    try:
        from lvm.models import GaussianMixture
    except ImportError:
        try:
            from lvm.models.gmm import GaussianMixture
        except ImportError:
            raise ModelInputError(
                "the Gaussian mixture model (lvm.models.gmm) is not available in this build"
            ) from None

    yield FitSnapshot("gmm", 0, 1, float("nan"), label=f"GMM K={n_components}")
    gmm = GaussianMixture(n_components=n_components, covariance_type=covariance_type, random_state=seed)
    xt = np.asarray(x_train, dtype=np.float64)
    gmm.fit(xt)

    def score(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return np.asarray(_numpy(gmm.score_samples(np.asarray(x, dtype=np.float64))), dtype=np.float64)

    train = float(score(xt).mean())
    test = None if x_test is None else float(score(x_test).mean())
    dens = None
    if grid is not None:
        xs, ys = grid
        gx, gy = np.meshgrid(np.asarray(xs, float), np.asarray(ys, float))
        dens = np.exp(score(np.stack([gx.ravel(), gy.ravel()], 1))).reshape(gx.shape)
    yield FitSnapshot("gmm", 1, 1, train, train, test, dens, done=True, label=f"GMM K={n_components}")


def _numpy(a: torch.Tensor | npt.NDArray[Any]) -> npt.NDArray[Any]:
    return a.detach().cpu().numpy() if torch.is_tensor(a) else a


def _final(
    method: str,
    model: GaussianDecoderModule,
    steps: int,
    objective: float,
    x_train: npt.ArrayLike,
    x_test: npt.ArrayLike | None,
    grid: Grid | None,
    label: str,
    theta: dict[str, npt.NDArray[np.float64]] | None = None,
) -> FitSnapshot:
    """The last snapshot: exact train/test log-likelihoods and the density on ``grid``."""
    train = exact_log_lik(model, x_train)
    test = None if x_test is None else exact_log_lik(model, x_test)
    dens = None if grid is None else model_density(model, *grid)
    return FitSnapshot(method, steps, steps, objective, train, test, dens, theta, done=True, label=label)


def train_test_toy(name: str = "moons", n: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) points of a built-in 2-D toy set: two independent draws (seeds ``seed`` and ``seed + 1``)."""
    from lvm.data.toy import TOY_SETS

    if name not in TOY_SETS:
        raise ModelInputError(f"unknown toy set {name!r}; choose one of {', '.join(TOY_SETS)}")
    return TOY_SETS[name](n=n, seed=seed)[0], TOY_SETS[name](n=n, seed=seed + 1)[0]
