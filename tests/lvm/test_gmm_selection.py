"""lvm.models.gmm_selection: BIC/AIC over a grid of K and seeds, and the collapse rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm.data.toy import blobs
from lvm.errors import ModelInputError
from lvm.models import gmm
from lvm.models.gmm_selection import (
    CriterionPoint,
    best_k,
    collapsing_components,
    information_criteria,
    n_free_parameters,
)


@pytest.mark.filterwarnings("ignore::lvm.models.gmm.ConvergenceWarning")  # one EM iteration: only its size matters
@given(k=st.integers(1, 20), d=st.integers(1, 6), cov=st.sampled_from(["full", "tied", "diag", "spherical"]))
@settings(max_examples=60, deadline=None)
def test_parameter_count_matches_the_models_own(k, d, cov):
    rng = np.random.default_rng(k * 7 + d)
    X = rng.normal(size=(max(3 * k, 8), d)).astype(np.float32)
    gm = gmm.GaussianMixture(n_components=k, covariance_type=cov, max_iter=1, random_state=0, device="cpu").fit(X)
    assert n_free_parameters(k, d, cov) == gm._n_parameters()
    # by hand for the full case: K - 1 weights, K D means, K D (D + 1) / 2 covariance entries
    if cov == "full":
        assert n_free_parameters(k, d, cov) == k - 1 + k * d + k * d * (d + 1) // 2


def test_criteria_agree_with_the_fitted_model_and_pick_the_true_k():
    X, _ = blobs(n=300, k=3, seed=2)
    points = list(information_criteria(X, range(1, 6), (0, 1), "full"))
    assert [(p.k, p.seed) for p in points] == [(k, s) for k in range(1, 6) for s in (0, 1)]
    n = len(X)
    for p in points:
        gm = gmm.GaussianMixture(n_components=p.k, random_state=p.seed, max_iter=200, device="cpu").fit(
            np.asarray(X, np.float32)
        )
        assert p.bic == pytest.approx(gm.bic(np.asarray(X, np.float32)), rel=1e-6)
        assert p.aic == pytest.approx(gm.aic(np.asarray(X, np.float32)), rel=1e-6)
        # the two criteria differ by their penalties only: BIC - AIC = p (log N - 2)
        assert p.bic - p.aic == pytest.approx(n_free_parameters(p.k, 2, "full") * (math.log(n) - 2), rel=1e-9)
    assert best_k(points) == 3
    assert best_k(points, "aic") >= 3  # AIC penalises less: never fewer components than BIC here


def test_grid_stops_when_asked_and_at_k_above_n():
    X = np.random.default_rng(0).normal(size=(4, 2))
    assert [p.k for p in information_criteria(X, range(1, 9), (0,))] == [1, 2, 3, 4]
    calls = []
    stopped = list(information_criteria(X, range(1, 9), (0, 1), should_stop=lambda: len(calls.append(1) or calls) > 3))
    assert len(stopped) == 3
    assert best_k([]) is None
    with pytest.raises(ModelInputError, match="criterion"):
        best_k([CriterionPoint(1, 0, 1.0, 1.0, 0.0)], "dic")
    with pytest.raises(ModelInputError, match="covariance_type"):
        n_free_parameters(2, 2, "banded")


def test_collapse_rule_flags_tiny_mass_and_tiny_covariance():
    covs = np.stack([np.eye(2), np.diag([1.0, 1e-9]), np.eye(2)])
    weights = np.array([0.6, 0.3, 0.1])
    # component 1: smallest eigenvalue 1e-9 < (1e-3 * 1)^2 = 1e-6; component 2: 100 * 0.1 = 10 points, healthy
    assert collapsing_components(weights, covs, n_points=100, scale=1.0) == (1,)
    # with 10 points component 2 holds 1 point of mass (< 1.5)
    assert collapsing_components(weights, covs, n_points=10, scale=1.0) == (1, 2)
    # a larger data scale raises the eigenvalue threshold: (1e-3 * 2000)^2 = 4 > 1 flags every component
    assert collapsing_components(weights, covs, n_points=100, scale=2000.0) == (0, 1, 2)
    with pytest.raises(ModelInputError, match="full_covariances"):
        collapsing_components(weights, covs[:2], 100, 1.0)
