"""GaussianMixture: parity with scikit-learn, EM monotonicity, teaching API, errors, collapse."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lvm.errors import ModelInputError
from lvm.models import GaussianMixture
from lvm.models.gmm import ComponentCollapseWarning, EMSnapshot, log_component_joint
from lvm.models.gmm_init import kmeans

sklearn_mixture = pytest.importorskip("sklearn.mixture")
SK = sklearn_mixture.GaussianMixture
COV_TYPES = ["full", "tied", "diag", "spherical"]


def blobs(n=300, d=2, k=3, seed=0):
    rng = np.random.RandomState(seed)
    centres = rng.randn(k, d) * 4
    y = rng.randint(k, size=n)
    X = centres[y] + rng.randn(n, d) @ (np.eye(d) * 0.5 + 0.3 * rng.randn(d, d))
    return X, y


def same_init(X, k, ct, seed=0, init="random"):
    sk0 = SK(k, covariance_type=ct, max_iter=0, random_state=seed, init_params=init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk0.fit(X)
    return dict(weights_init=sk0.weights_ / sk0.weights_.sum(), means_init=sk0.means_, precisions_init=sk0.precisions_)


def ours64(k, **kw):
    return GaussianMixture(k, device="cpu", dtype=torch.float64, **kw)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ct=st.sampled_from(COV_TYPES), d=st.integers(1, 5), k=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_parity_with_sklearn_from_same_init(ct, d, k, seed):
    X, _ = blobs(n=60 + 10 * k, d=d, k=k, seed=seed)
    kw = dict(covariance_type=ct, max_iter=50, tol=1e-5, **same_init(X, k, ct, seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = SK(k, **kw).fit(X)
        ours = ours64(k, **kw).fit(X)
    assert ours.n_iter_ == sk.n_iter_
    assert ours.converged_ == sk.converged_
    assert ours.lower_bound_ == pytest.approx(sk.lower_bound_, rel=1e-8, abs=1e-10)
    np.testing.assert_allclose(ours.weights_, sk.weights_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ours.means_, sk.means_, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ours.covariances_, sk.covariances_, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ours.precisions_cholesky_, sk.precisions_cholesky_, rtol=1e-5, atol=1e-6)
    assert ours.precisions_.shape == sk.precisions_.shape
    np.testing.assert_allclose(ours.score_samples(X), sk.score_samples(X), rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), atol=1e-6)
    assert ours.bic(X) == pytest.approx(sk.bic(X), rel=1e-8)
    assert ours.aic(X) == pytest.approx(sk.aic(X), rel=1e-8)


@pytest.mark.parametrize("ct", COV_TYPES)
def test_float32_close_to_sklearn(ct):
    X, _ = blobs(n=500, d=3, k=3, seed=1)
    kw = dict(covariance_type=ct, max_iter=30, tol=0.0, **same_init(X, 3, ct, init="kmeans"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = SK(3, **kw).fit(X)
        ours = GaussianMixture(3, device="cpu", **kw).fit(X)
    assert ours.means_.dtype == np.float32
    assert ours.lower_bound_ == pytest.approx(sk.lower_bound_, rel=1e-4)


def test_random_init_matches_sklearn():
    X, _ = blobs(n=200, d=2, k=3, seed=3)
    sk = SK(3, init_params="random", random_state=5, tol=1e-6).fit(X)
    ours = ours64(3, init_params="random", random_state=5, tol=1e-6).fit(X)
    assert ours.n_iter_ == sk.n_iter_
    assert ours.lower_bound_ == pytest.approx(sk.lower_bound_, rel=1e-8)


@pytest.mark.parametrize("init", ["kmeans", "k-means++", "random", "random_from_data"])
def test_inits_fit_well(init):
    X, y = blobs(n=400, d=2, k=3, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = ours64(3, init_params=init, random_state=0, n_init=2).fit(X)
        sk = SK(3, init_params=init, random_state=0, n_init=2).fit(X)
    assert ours.lower_bound_ > sk.lower_bound_ - 0.05
    assert ours.history_ == ours.lower_bounds_ and len(ours.history_) == ours.n_iter_


def test_torch_kmeans_recovers_clusters():
    X, y = blobs(n=600, d=2, k=4, seed=4)
    from sklearn.cluster import KMeans

    centres, labels = kmeans(torch.as_tensor(X), 4, np.random.RandomState(0))
    inertia = ((X - centres.numpy()[labels.numpy()]) ** 2).sum()
    ref = KMeans(4, n_init=1, random_state=0).fit(X)
    assert inertia <= ref.inertia_ * 1.05
    assert len(np.unique(labels.numpy())) == 4


@pytest.mark.parametrize("ct", COV_TYPES)
def test_em_snapshots_monotone_and_leave_fitted(ct):
    X, _ = blobs(n=300, d=2, k=3, seed=7)
    gm = ours64(3, covariance_type=ct, reg_covar=0.0, random_state=0, init_params="random", tol=1e-8, max_iter=40)
    snaps = list(gm.em_steps(X))
    assert all(isinstance(s, EMSnapshot) for s in snaps)
    assert snaps[0].half == "init" and [s.half for s in snaps[1:3]] == ["E", "M"]
    lls = [s.log_likelihood for s in snaps]
    assert all(b >= a - 1e-10 * abs(a) for a, b in zip(lls, lls[1:], strict=False))
    assert snaps[1].resp.shape == (300, 3) and snaps[1].resp.dtype == np.float32
    np.testing.assert_allclose(snaps[1].resp.sum(1), 1, atol=1e-5)
    last = snaps[-1]
    np.testing.assert_allclose(last.means, gm.means_)
    assert gm.score(X) == pytest.approx(last.log_likelihood, rel=1e-12)
    # same iterations and lower bound as fit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = ours64(
            3, covariance_type=ct, reg_covar=0.0, random_state=0, init_params="random", tol=1e-8, max_iter=40
        ).fit(X)
    assert gm.n_iter_ == ref.n_iter_
    assert gm.lower_bound_ == pytest.approx(ref.lower_bound_, rel=1e-12)


def test_warm_start_one_iteration_monotone():
    X, _ = blobs(n=300, d=3, k=4, seed=8)
    gm = ours64(4, reg_covar=0.0, warm_start=True, max_iter=1, random_state=0, init_params="random")
    prev = -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(30):
            gm.fit(X)
            assert gm.lower_bound_ >= prev - 1e-12
            prev = gm.lower_bound_


def test_e_step_m_step_match_fit_iteration():
    X, _ = blobs(n=200, d=2, k=3, seed=9)
    init = same_init(X, 3, "full")
    a = ours64(3, max_iter=1, tol=0, **init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a.fit(X)
    b = GaussianMixture.from_params(*_params_from_init(init), "full", device="cpu", dtype=torch.float64)
    ll, log_resp = b.e_step(X)
    b.m_step(X, log_resp)
    assert ll == pytest.approx(a.lower_bound_, rel=1e-12)
    np.testing.assert_allclose(b.means_, a.means_, rtol=1e-10)


def _params_from_init(init):
    cov = np.linalg.inv(init["precisions_init"])
    return init["weights_init"], init["means_init"], cov


def test_from_params_and_component_densities():
    w = np.array([0.3, 0.7])
    m = np.array([[0.0, 0.0], [3.0, 0.0]])
    c = np.array([np.eye(2), np.eye(2) * 2])
    gm = GaussianMixture.from_params(w, m, c, "full", device="cpu", dtype=torch.float64)
    X = np.array([[0.0, 0.0], [3.0, 1.0]])
    ld = gm.log_component_densities(X)
    from scipy.stats import multivariate_normal

    expect = np.stack([np.log(w[k]) + multivariate_normal(m[k], c[k]).logpdf(X) for k in range(2)], 1)
    np.testing.assert_allclose(ld, expect, rtol=1e-10)
    np.testing.assert_allclose(gm.score_samples(X), np.logaddexp(expect[:, 0], expect[:, 1]), rtol=1e-10)
    p = gm.predict_proba(X)
    np.testing.assert_allclose(p.sum(1), 1.0)
    # continue EM from the dragged parameters
    data, _ = blobs(n=200, d=2, k=2, seed=1)
    snaps = list(gm.em_steps(data, max_iter=3))
    assert snaps[0].half == "init" and np.allclose(snaps[0].means, m)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    k=st.integers(1, 5),
    d=st.integers(1, 4),
    cov_type=st.sampled_from(COV_TYPES),
    scale=st.floats(1e-3, 1e3),
)
def test_numpy_component_joint_equals_the_fitted_models(seed, k, d, cov_type, scale):
    """``log_component_joint`` (numpy, no fitted model) equals ``from_params(...).log_component_densities`` for every
    covariance type, over scales of 1e-3 to 1e3; a weight of 0 gives -inf."""
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(k)) * 3.0  # (unnormalised: both normalise)
    m = rng.normal(size=(k, d)) * scale
    a = rng.normal(size=(k, d, d))
    full = scale**2 * (a @ a.transpose(0, 2, 1) + 0.5 * np.eye(d))
    cov = {
        "full": full,
        "tied": full[0],
        "diag": scale**2 * rng.uniform(0.2, 2.0, (k, d)),
        "spherical": scale**2 * rng.uniform(0.2, 2.0, k),
    }[cov_type]
    X = m[rng.integers(0, k, 6)] + scale * rng.normal(size=(6, d))
    fitted = GaussianMixture.from_params(w, m, cov, cov_type, device="cpu", dtype=torch.float64, reg_covar=0.0)
    np.testing.assert_allclose(
        log_component_joint(X, w, m, cov, cov_type), fitted.log_component_densities(X), rtol=1e-9, atol=1e-9
    )
    if k > 1:
        w[0] = 0.0
        assert np.all(np.isneginf(log_component_joint(X, w, m, cov, cov_type)[:, 0]))


def test_predict_proba_and_sample():
    X, _ = blobs(n=300, d=2, k=3, seed=11)
    for ct in COV_TYPES:
        gm = GaussianMixture(3, covariance_type=ct, random_state=0, device="cpu").fit(X)
        P = gm.predict_proba(X)
        np.testing.assert_allclose(P.sum(1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(P.argmax(1), gm.predict(X))
        np.testing.assert_array_equal(gm.fit_predict(X), gm.predict(X))
        S, y = gm.sample(50)
        assert S.shape == (50, 2) and y.shape == (50,) and set(y) <= {0, 1, 2}
        assert np.all(np.diff(y) >= 0)
    gm = GaussianMixture(2, device="cpu").fit(torch.as_tensor(X))  # tensors are accepted
    assert gm.predict(torch.as_tensor(X[:5])).shape == (5,)


def test_degenerate_inputs_raise():
    gm = GaussianMixture(3, device="cpu")
    with pytest.raises(ModelInputError, match="n_components"):
        gm.fit(np.random.randn(2, 2))
    X = np.random.randn(20, 2)
    X[3, 1] = np.nan
    with pytest.raises(ModelInputError, match="NaN"):
        gm.fit(X)
    X[3, 1] = np.inf
    with pytest.raises(ModelInputError, match="infinite"):
        gm.fit(X)
    with pytest.raises(ModelInputError, match="2-D"):
        gm.fit(np.random.randn(20))
    with pytest.raises(ModelInputError, match="2-D"):
        gm.fit(np.random.randn(5, 4, 4))
    gm.fit(np.random.randn(30, 2))
    with pytest.raises(ModelInputError, match="features"):
        gm.predict(np.random.randn(4, 3))
    with pytest.raises(ModelInputError, match="not fitted"):
        GaussianMixture(2).predict(np.zeros((3, 2)))
    with pytest.raises(ModelInputError, match="means_init"):
        GaussianMixture(2, means_init=np.zeros((3, 2))).fit(np.random.randn(30, 2))
    with pytest.raises(ModelInputError, match="covariance_type"):
        GaussianMixture(2, covariance_type="banana").fit(np.random.randn(30, 2))


def test_collapse_warns_and_recovers():
    """Component 1 owns six identical points and nothing else: its covariance is exactly 0 after the first M step.

    Fully specified initial parameters (narrow components, so every responsibility is exactly 0 or 1) make this
    deterministic; a k-means start would depend on the random state (it let the component keep some of the blob)."""
    rng = np.random.RandomState(0)
    X = np.vstack([rng.randn(40, 2), np.full((6, 2), 10.0)])
    init = dict(
        weights_init=[0.5, 0.5],
        means_init=np.array([[0.0, 0.0], [10.0, 10.0]]),
        precisions_init=np.stack([np.eye(2) * 100.0] * 2),
    )
    gm = GaussianMixture(2, reg_covar=0.0, device="cpu", dtype=torch.float64, max_iter=5, **init)
    with pytest.warns(ComponentCollapseWarning):
        snaps = list(gm.em_steps(X))
    assert [s.collapsed for s in snaps if s.half == "M"][0] == (1,)
    assert np.isfinite(gm.score(X))
    assert np.isfinite(gm.means_).all() and np.isfinite(gm.covariances_).all()
    with pytest.warns(ComponentCollapseWarning):
        gm2 = GaussianMixture(2, reg_covar=0.0, device="cpu", max_iter=5, **init)
        gm2.fit(X)
    assert np.isfinite(gm2.means_).all()
