"""Inpainting with a latent model: exact posterior p(z | x_O), log p(x_O), the posterior predictive and sampled
completions on a decoded latent grid; observation masks; mean-field variational inpainting q(x_M; phi)."""

from lvm.inpainting.masks import MASK_PRESETS, as_mask, make_mask
from lvm.inpainting.meanfield import (
    PHI_PRESETS,
    ElboEstimate,
    LogitRange,
    MeanFieldSnapshot,
    bernoulli_entropy,
    log_odds,
    meanfield_elbo,
    optimise_phi,
    preset_phi,
    sample_completions,
)
from lvm.inpainting.posterior import (
    DEFAULT_SIZE,
    GridSupport,
    InpaintGrid,
    InpaintResult,
    ObservedJoint,
    inpaint,
    one_thread,
    refined_log_p_obs,
)

__all__ = [
    "MASK_PRESETS",
    "make_mask",
    "as_mask",
    "InpaintGrid",
    "InpaintResult",
    "ObservedJoint",
    "inpaint",
    "refined_log_p_obs",
    "DEFAULT_SIZE",
    "GridSupport",
    "one_thread",
    "PHI_PRESETS",
    "ElboEstimate",
    "MeanFieldSnapshot",
    "bernoulli_entropy",
    "meanfield_elbo",
    "log_odds",
    "LogitRange",
    "optimise_phi",
    "preset_phi",
    "sample_completions",
]
