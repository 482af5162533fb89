"""The exact answers to a lesson's predict-then-reveal questions (``[step.question] reveal = NAME``).

Each probe reads what the user set up (the selected x, their q, the mixture's current fit) and returns a
``Probe``: ``work`` runs in a worker (the torch part), ``text`` turns its result into the answer shown. Qt-free.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lvm.errors import LVMError

NAIVE_SAMPLES = 5000


class ProbeUnavailable(LVMError):
    """The question cannot be answered yet (no x selected, no fit): the message says what to do first."""


@dataclass(frozen=True)
class Probe:
    work: Callable[[], Any]
    text: Callable[[Any], str]
    channel: str = "answer"  # the worker channel's last part ("fit-..." builds an optimiser: app.core.workers)


def make_probe(name: str, workspace: Any, lab: Any) -> Probe:
    """The probe ``name`` for the step's ``lab`` and the shared ``workspace``; ProbeUnavailable says what is missing."""
    makers: dict[str, Callable[[Any, Any], Probe]] = {
        "most-probable-component": _most_probable_component,
        "elbo-optimum": _elbo_optimum,
        "onedim-optimum": _onedim_optimum,
        "log-marginal": _log_marginal,
        "naive-mc": _naive_mc,
    }
    if name not in makers:
        raise ProbeUnavailable(f"no such answer: {name!r}")
    return makers[name](workspace, lab)


def _most_probable_component(_ws: Any, lab: Any) -> Probe:
    found = lab.state.selected_posterior()
    if found is None:
        raise ProbeUnavailable("select a point (click it) after the first EM step, then reveal")
    _joint, post = found
    order = np.argsort(post)[::-1]

    def text(_: Any) -> str:
        top = ", ".join(f"k = {k + 1}: {post[k]:.3f}" for k in order[:3])
        return (
            f"Most probable component: k = {order[0] + 1}, p(z = {order[0] + 1} | x) = {post[order[0]]:.3f} "
            f"(Bayes' rule, exact). Largest posteriors: {top}."
        )

    return Probe(work=lambda: None, text=text)


def _selected(ws: Any, exact: bool = False) -> tuple[Any, np.ndarray]:
    """The model and the selected x; ``exact``: the answer needs log p(x) by quadrature (a 2-D latent space)."""
    if ws.model is None or ws.selected_x is None:
        raise ProbeUnavailable("select an image x first (a model and a dataset must be loaded)")
    if exact and getattr(ws.model, "latent_dim", 2) != 2:
        raise ProbeUnavailable("the exact log p(x) needs a model with a 2-D latent space")
    return ws.model, np.asarray(ws.selected_x, dtype=np.float64).reshape(-1)


def _exact_log_px(model: Any, x: np.ndarray) -> float:
    """log p(x) by quadrature over the 2-D latent space (``lvm.posterior_grid``: coarse support, fine grid)."""
    from lvm.posterior_grid import CoarseGrid, posterior_picture

    return float(posterior_picture(CoarseGrid.build(model, x[None]), x).log_px)


def _log_marginal(ws: Any, _lab: Any) -> Probe:
    model, x = _selected(ws, exact=True)

    def text(log_px: float) -> str:
        return f"log p(x) = {log_px:.2f} nats for image {ws.selected_index} (exact: quadrature over z)."

    return Probe(work=lambda: _exact_log_px(model, x), text=text)


def _naive_mc(ws: Any, _lab: Any) -> Probe:
    model, x = _selected(ws, exact=True)
    k, seed = NAIVE_SAMPLES, int(ws.seed("global"))

    def work() -> tuple[float, float, float]:
        from lvm.estimators.montecarlo import naive_mc
        from lvm.gaussian_q import model_x

        est = naive_mc(model, model_x(model, x)[None], k, proposal="prior", seed=seed)
        return float(est.value[0]), float(est.ess[0]), _exact_log_px(model, x)

    def text(result: tuple[float, float, float]) -> str:
        naive, ess, log_px = result
        return (
            f"Naive Monte Carlo with {k:,} prior samples (seed {seed}): log p-hat = {naive:.2f}, "
            f"{log_px - naive:.2f} nats below the exact log p(x) = {log_px:.2f} (quadrature); "
            f"its effective sample size is {ess:.1f} of {k:,}."
        )

    return Probe(work=work, text=text)


def _elbo_optimum(ws: Any, _lab: Any) -> Probe:
    model, x = _selected(ws)
    if ws.q is None:
        raise ProbeUnavailable("place q first (drag it in the KL panel)")
    mean, tril = np.asarray(ws.q.mean), np.asarray(ws.q.scale_tril)

    def work() -> tuple[float, float, float, np.ndarray]:
        import torch

        from lvm.estimators.vi import fit_gaussian_q
        from lvm.gaussian_q import gaussian_elbo, model_x

        yours = gaussian_elbo(model, x, mean, tril)
        best = fit_gaussian_q(model, model_x(model, x), steps=400, lr=0.05)
        best_mean = best.mean.double().cpu().numpy()
        with torch.no_grad():
            best_elbo = gaussian_elbo(model, x, best_mean, best.scale_tril.double().cpu().numpy())
        return yours, best_elbo, _exact_log_px(model, x), best_mean

    def text(result: tuple[float, float, float, np.ndarray]) -> str:
        yours, best, log_px, best_mean = result
        return (
            f"Your q: ELBO = {yours:.2f}, so KL(q || p(z|x)) = log p(x) - ELBO = {log_px - yours:.2f} nats. "
            f"The best Gaussian q sits at z = ({best_mean[0]:.2f}, {best_mean[1]:.2f}): ELBO = {best:.2f}, "
            f"gap {log_px - best:.2f} nats (what no Gaussian can close). log p(x) = {log_px:.2f} (exact)."
        )

    return Probe(work=work, text=text, channel="fit-answer")


def _onedim_optimum(_ws: Any, lab: Any) -> Probe:
    post = getattr(getattr(lab, "onedim", None), "post", None)
    st = lab.state.onedim
    if post is None:
        raise ProbeUnavailable("open the 1-D panel first")

    def text(best: tuple[float, float, float]) -> str:
        m, s, best_elbo = best
        return (
            f"Your q = N({st.mu:.2f}, {st.sigma:.2f}²): ELBO = {post.elbo(st.mu, st.sigma):.3f}, "
            f"KL(q || p(z|x)) = {post.kl(st.mu, st.sigma):.3f} nats. The best Gaussian q is N({m:.2f}, {s:.2f}²) "
            f"(ELBO = {best_elbo:.3f}, KL = {post.log_px - best_elbo:.3f}): p(z|x) is not Gaussian, "
            "so no q closes the gap. "
            f"log p(x) = {post.log_px:.3f} (exact)."
        )

    return Probe(work=lambda: best_gaussian_1d(post.z, post.log_joint), text=text)


def best_gaussian_1d(z: np.ndarray, log_joint: np.ndarray) -> tuple[float, float, float]:
    """argmax over (mu, sigma) of ELBO(N(mu, sigma^2)) = sum_g q_g (log p(x, z_g) - log q_g) h, by a grid search
    over mu in the grid's range and log sigma in [-4, 2.5] refined twice around the best cell; (mu, sigma, ELBO).
    The ties of a symmetric posterior go to the larger mu."""
    h = float(z[1] - z[0])
    mu_lo, mu_hi, ls_lo, ls_hi = float(z[0]), float(z[-1]), -4.0, 2.5
    best = (0.0, 1.0, -math.inf)
    for _ in range(3):
        mus = np.linspace(mu_lo, mu_hi, 121)[::-1]
        sigmas = np.exp(np.linspace(ls_lo, ls_hi, 61))
        elbo = np.empty((mus.size, sigmas.size))
        for i, mu in enumerate(mus):  # one row at a time: (sigmas, grid) is 61 x 6001 doubles, a few MB
            logq = (
                -0.5 * ((z[None, :] - mu) / sigmas[:, None]) ** 2
                - np.log(sigmas)[:, None]
                - 0.5 * math.log(2 * math.pi)
            )
            q = np.exp(logq)
            elbo[i] = (q * (log_joint[None, :] - logq)).sum(-1) * h / np.maximum(q.sum(-1) * h, 1e-300)
        i, j = (int(v) for v in np.unravel_index(int(np.argmax(elbo)), elbo.shape))
        if elbo[i, j] > best[2]:
            best = (float(mus[i]), float(sigmas[j]), float(elbo[i, j]))
        dm, dl = (mu_hi - mu_lo) / 120 * 2, (ls_hi - ls_lo) / 60 * 2
        mu_lo, mu_hi = best[0] - dm, best[0] + dm
        ls_lo, ls_hi = math.log(best[1]) - dl, math.log(best[1]) + dl
    return best


__all__ = ["Probe", "ProbeUnavailable", "make_probe"]
