from lvm.models.gmm import GaussianMixture  # noqa: F401
