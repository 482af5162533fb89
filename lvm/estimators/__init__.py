"""Estimators of log p(x): Monte Carlo (naive, importance/IWAE, ELBO), exact quadrature for 1-D/2-D latents,
Gauss-Hermite ELBOs and per-x Gaussian variational inference. All work with any latent model of
``lvm.models.base`` and any ``torch.distributions`` q."""

from lvm.estimators.montecarlo import (
    Estimate,
    effective_sample_size,
    elbo,
    importance,
    kl_to_standard_normal,
    log_stderr,
    naive_mc,
)
from lvm.estimators.quadrature import (
    AdaptiveResult,
    LatentGrid,
    LocalPosterior,
    RefinementReport,
    choose_box,
    coarse_support,
    elbo_gauss_hermite,
    elbo_quadrature,
    gauss_hermite_nodes,
    kl_q_posterior,
    local_box,
    local_posterior,
    log_marginal,
    log_marginal_adaptive,
    log_marginal_on_support,
    posterior_moments,
    posterior_on_grid,
    refinement_report,
)
from lvm.estimators.vi import GapDecomposition, VISnapshot, fit_gaussian_q, gap_decomposition, vi_steps

__all__ = [
    "Estimate", "naive_mc", "importance", "elbo", "effective_sample_size", "log_stderr", "kl_to_standard_normal",
    "LatentGrid", "choose_box", "log_marginal", "posterior_on_grid", "posterior_moments", "local_box", "kl_q_posterior", "elbo_quadrature",
    "log_marginal_adaptive", "log_marginal_on_support", "coarse_support", "local_posterior", "LocalPosterior",
    "AdaptiveResult", "refinement_report", "RefinementReport", "gauss_hermite_nodes",
    "elbo_gauss_hermite", "VISnapshot", "vi_steps", "fit_gaussian_q", "GapDecomposition", "gap_decomposition",
]
