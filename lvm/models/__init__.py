"""The models: a mixture of Gaussians (scikit-learn's interface), the VAE, the lecture's small VAE and a
linear-Gaussian model with closed forms. Every latent model has ``latent_dim``, ``log_prior(z)`` and
``log_likelihood(x, z)`` (see ``lvm.models.base``)."""

from lvm.models.gmm import GaussianMixture
from lvm.models.lecture_vae import LectureVAE
from lvm.models.linear_gaussian import LinearGaussianModel
from lvm.models.vae import VAE, VAEConfig

__all__ = ["GaussianMixture", "LectureVAE", "LinearGaussianModel", "VAE", "VAEConfig"]
