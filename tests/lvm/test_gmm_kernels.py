"""The streamed EM kernels: chunks of rows, blocks shared out among threads, against dense formulas."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from lvm.models import GaussianMixture
from lvm.models import gmm_kernels as K_

COV_TYPES = ["full", "tied", "diag", "spherical"]


@pytest.fixture
def small_chunks(monkeypatch):
    """64-row chunks (the smallest), one chunk a block, and two torch threads: every pass runs many blocks in two
    threads."""
    monkeypatch.setattr(K_, "CHUNK_ELEMS", 1)
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(saved)


def mixture(ct, k=3, d=12, n=1500, seed=0):
    """Data and float64 parameters of a ``ct`` mixture: ``(X, weights, means, cov)`` with cov in ``ct``'s shape."""
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d) * 2 + rng.randn(1, d)
    w = rng.dirichlet(np.ones(k))
    m = rng.randn(k, d)
    A = rng.randn(k, d, d) * 0.3 + np.eye(d)
    cov = {
        "full": A @ A.transpose(0, 2, 1),
        "tied": A[0] @ A[0].T,
        "diag": rng.uniform(0.5, 3, size=(k, d)),
        "spherical": rng.uniform(0.5, 3, size=k),
    }[ct]
    return X, w, m, cov


def dense_log_weighted(X, w, m, cov, ct):
    """log pi_k + log N(x_n; mu_k, Sigma_k), (N, K), by scipy."""
    k, d = m.shape
    covs = {"full": cov, "tied": [cov] * k, "diag": [np.diag(c) for c in np.atleast_2d(cov)]}.get(ct)
    if ct == "spherical":
        covs = [c * np.eye(d) for c in cov]
    return np.stack([np.log(w[j]) + multivariate_normal(m[j], covs[j]).logpdf(X) for j in range(k)], 1)


def tensors(w, m, cov, ct):
    """``(log weights, means, precision Cholesky factors)`` as float64 tensors."""
    pchol, _, bad = K_.precision_cholesky(torch.as_tensor(cov, dtype=torch.float64), ct)
    assert not bad
    return torch.log(torch.as_tensor(w, dtype=torch.float64)), torch.as_tensor(m, dtype=torch.float64), pchol


def test_parallel_blocks_runs_every_block_once_in_order_on_one_torch_thread_each():
    seen = []

    def fn(s, e, scratch):
        scratch.setdefault("calls", torch.zeros(1)).add_(1)
        seen.append((threading.get_ident(), torch.get_num_threads()))
        return s, e

    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out = K_.parallel_blocks(1000, 64, 3, fn)
        assert torch.get_num_threads() == 2  # the calling thread's count is back
    finally:
        torch.set_num_threads(saved)
    assert out == [(s, min(s + 64, 1000)) for s in range(0, 1000, 64)]
    assert all(n == 1 for _, n in seen)
    assert K_.parallel_blocks(10, 64, 4, lambda s, e, _: (s, e)) == [(0, 10)]  # one block: the calling thread


def test_parallel_blocks_raises_what_a_block_raised():
    def fn(s, e, scratch):
        if s == 5 * 64:
            raise ValueError("block 5")
        return s

    with pytest.raises(ValueError, match="block 5"):
        K_.parallel_blocks(2000, 64, 2, fn)


@pytest.mark.parametrize("ct", COV_TYPES)
@pytest.mark.parametrize("output", ["resp", "log_resp", "weighted"])
def test_streamed_e_step_matches_scipy(small_chunks, ct, output):
    X, w, m, cov = mixture(ct)
    lw, mt, pchol = tensors(w, m, cov, ct)
    with K_.em_threads(torch.device("cpu"), X.shape[1]):
        assert K_.row_plan(torch.as_tensor(X), X.shape[1])[0] == 64
        log_norm, RT = K_.e_step(torch.as_tensor(X), lw, mt, pchol, ct, output=output)
    ref = dense_log_weighted(X, w, m, cov, ct)
    ref_norm = logsumexp(ref, 1)
    np.testing.assert_allclose(log_norm.numpy(), ref_norm, rtol=1e-10)
    expect = {"resp": np.exp(ref - ref_norm[:, None]), "log_resp": ref - ref_norm[:, None], "weighted": ref}[output]
    np.testing.assert_allclose(RT.T.numpy(), expect, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("ct", COV_TYPES)
def test_streamed_m_step_matches_the_dense_estimator(small_chunks, ct):
    X, _, _, _ = mixture(ct)
    rng = np.random.RandomState(1)
    r = rng.dirichlet(np.ones(3), size=len(X))  # (N, K)
    with K_.em_threads(torch.device("cpu"), X.shape[1]):
        nk, means, cov = K_.m_step(torch.as_tensor(X), torch.as_tensor(r.T.copy()), 1e-6, ct)
    n = r.sum(0) + 10 * np.finfo(np.float64).eps
    mu = r.T @ X / n[:, None]
    np.testing.assert_allclose(nk.numpy(), n, rtol=1e-12)
    np.testing.assert_allclose(means.numpy(), mu, rtol=1e-10)
    S = np.stack([(r[:, j, None] * (X - mu[j])).T @ (X - mu[j]) for j in range(3)])
    expect = {
        "full": S / n[:, None, None] + 1e-6 * np.eye(X.shape[1]),
        "tied": S.sum(0) / n.sum() + 1e-6 * np.eye(X.shape[1]),
        "diag": np.diagonal(S, axis1=1, axis2=2) / n[:, None] + 1e-6,
        "spherical": (np.diagonal(S, axis1=1, axis2=2) / n[:, None] + 1e-6).mean(1),
    }[ct]
    np.testing.assert_allclose(cov.numpy(), expect, rtol=1e-8, atol=1e-12)


def test_fused_diag_iteration_is_an_e_step_and_an_m_step(small_chunks):
    X, w, m, cov = mixture("diag")
    lw, mt, pchol = tensors(w, m, cov, "diag")
    Xt = torch.as_tensor(X)
    with K_.em_threads(torch.device("cpu"), X.shape[1]):
        ll, (nk, means, var) = K_.em_step_diag(Xt, lw, mt, pchol, 1e-6)
        log_norm, RT = K_.e_step(Xt, lw, mt, pchol, "diag")
        nk2, means2, var2 = K_.m_step(Xt, RT, 1e-6, "diag")
    assert ll == pytest.approx(float(log_norm.mean(dtype=torch.float64)), rel=1e-13)
    for a, b in ((nk, nk2), (means, means2), (var, var2)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-11)


@pytest.mark.parametrize("ct", ["diag", "full"])
def test_float32_results_do_not_depend_on_the_number_of_threads(monkeypatch, ct):
    monkeypatch.setattr(K_, "CHUNK_ELEMS", 1)
    X = mixture(ct, n=3000, d=16)[0].astype(np.float32)
    fits = []
    saved = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            gm = GaussianMixture(4, covariance_type=ct, max_iter=5, tol=0.0, random_state=0, device="cpu")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                gm.fit(X)
            fits.append(gm)
    finally:
        torch.set_num_threads(saved)
    assert fits[0].lower_bounds_ == fits[1].lower_bounds_  # bit for bit: the blocks depend on the data only
    np.testing.assert_array_equal(fits[0].means_, fits[1].means_)
    np.testing.assert_array_equal(fits[0].covariances_, fits[1].covariances_)


@pytest.mark.parametrize("ct", COV_TYPES)
def test_streamed_fit_matches_sklearn(small_chunks, ct):
    SK = pytest.importorskip("sklearn.mixture").GaussianMixture
    X = mixture(ct, n=2000, d=12, seed=3)[0]
    sk0 = SK(3, covariance_type=ct, max_iter=0, random_state=0, init_params="random_from_data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk0.fit(X)
        init = dict(weights_init=sk0.weights_ / sk0.weights_.sum(), means_init=sk0.means_)
        kw = dict(covariance_type=ct, max_iter=20, tol=0.0, precisions_init=sk0.precisions_, **init)
        sk = SK(3, **kw).fit(X)
        ours = GaussianMixture(3, device="cpu", dtype=torch.float64, **kw)
        labels = ours.fit_predict(X)
    assert ours.lower_bound_ == pytest.approx(sk.lower_bound_, rel=1e-10)
    np.testing.assert_allclose(ours.covariances_, sk.covariances_, rtol=1e-7, atol=1e-10)
    np.testing.assert_array_equal(labels, sk.predict(X))


def test_onednn_gemms_only_for_float32_on_the_cpu(monkeypatch):
    x32 = torch.zeros(2, 2)
    if torch.backends.mkldnn.is_available():
        assert K_.onednn_linear(x32) is not None  # torch's oneDNN agrees with torch.mm on the probe
    assert K_.onednn_linear(x32.double()) is None
    monkeypatch.setattr(K_, "USE_ONEDNN", False)
    assert K_.onednn_linear(x32) is None


@pytest.mark.parametrize("ct", COV_TYPES)
def test_float32_passes_agree_with_and_without_onednn(small_chunks, monkeypatch, ct):
    X, w, m, cov = mixture(ct, n=1000, d=20)
    X32 = torch.as_tensor(X, dtype=torch.float32)
    lw, mt, pchol = (t.float() for t in tensors(w, m, cov, ct))
    r = torch.as_tensor(np.random.RandomState(2).dirichlet(np.ones(3), size=len(X)).T.copy(), dtype=torch.float32)
    out = {}
    for use in (True, False):
        monkeypatch.setattr(K_, "USE_ONEDNN", use)
        with K_.em_threads(torch.device("cpu"), X.shape[1]):
            ln, W = K_.e_step(X32, lw, mt, pchol, ct, output="weighted")
            fused = K_.em_step_diag(X32, lw, mt, pchol, 1e-6) if ct == "diag" else (0.0, ())
            out[use] = (ln, W, fused[0], *fused[1], *K_.m_step(X32, r, 1e-6, ct))
    for a, b in zip(out[True], out[False], strict=True):
        if isinstance(a, float):
            assert a == pytest.approx(b, rel=1e-6)
        else:
            torch.testing.assert_close(a, b, rtol=2e-5, atol=1e-4)
