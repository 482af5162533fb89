"""GaussianMixture as a scikit-learn estimator (Pipeline, GridSearchCV, clone, the estimator checks), lvm without
scikit-learn, EM resumed from any half step, and the posterior / covariance helpers the Mixture lab uses."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from lvm.models import GaussianMixture
from lvm.models.gmm import NotFittedError

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError as SkNotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402


def blobs(n=300, seed=0):
    rng = np.random.RandomState(seed)
    centres = np.array([[0.0, 0.0], [6.0, 1.0], [2.0, 7.0]])
    y = rng.randint(3, size=n)
    return 10.0 * (centres[y] + rng.randn(n, 2) * 0.7) + 100.0, y


def gm64(k=3, **kw):
    return GaussianMixture(k, device="cpu", dtype=torch.float64, random_state=0, **kw)


def test_pipeline_fit_score_equals_the_steps_by_hand():
    X, _ = blobs()
    pipe = make_pipeline(StandardScaler(), gm64(3)).fit(X)
    Z = StandardScaler().fit_transform(X)
    by_hand = gm64(3).fit(Z)
    assert pipe.score(X) == pytest.approx(by_hand.score(Z), rel=1e-10)
    np.testing.assert_array_equal(pipe.predict(X), by_hand.predict(Z))
    # the one-liner, with the default parameters (float32, device 'auto')
    score = make_pipeline(StandardScaler(), GaussianMixture(3, random_state=0)).fit(X).score(X)
    assert np.isfinite(score) and score == pytest.approx(by_hand.score(Z), abs=1e-3)


def test_grid_search_picks_the_true_number_of_components():
    X, _ = blobs(n=450, seed=1)
    search = GridSearchCV(gm64(1), {"n_components": [1, 2, 3, 5], "covariance_type": ["full", "spherical"]}, cv=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(X)
    # held-out log-likelihood: 3 well separated round clusters are found, more components add nothing
    assert search.best_params_["n_components"] in (3, 5)
    scores = dict(
        zip(
            map(lambda p: (p["n_components"], p["covariance_type"]), search.cv_results_["params"]),
            search.cv_results_["mean_test_score"],
            strict=False,
        )
    )
    assert scores[(3, "full")] > scores[(2, "full")] + 0.5 > scores[(1, "full")] + 1.0
    assert isinstance(search.best_estimator_, GaussianMixture) and search.best_estimator_.converged_


def test_clone_copies_parameters_not_the_fit():
    X, _ = blobs()
    gm = gm64(3, covariance_type="diag", tol=1e-5, means_init=X[:3]).fit(X)
    twin = clone(gm)
    assert type(twin) is GaussianMixture and twin is not gm
    assert twin.get_params().keys() == gm.get_params().keys()
    for name, value in gm.get_params().items():
        assert twin.get_params()[name] is value or np.array_equal(twin.get_params()[name], value)
    assert not hasattr(twin, "means_")
    with pytest.raises(SkNotFittedError):
        twin.predict(X)
    with pytest.raises(NotFittedError):
        twin.score(X)
    assert repr(twin).startswith("GaussianMixture(") and "covariance_type='diag'" in repr(twin)
    assert "max_iter" not in repr(twin)  # defaults are left out, as scikit-learn prints them


def test_set_params_rejects_unknown_names():
    gm = GaussianMixture()
    assert gm.set_params(n_components=4, tol=1e-4) is gm and gm.n_components == 4
    with pytest.raises(ValueError, match="invalid parameter 'n_component'"):
        gm.set_params(n_component=4)


def test_scikit_learn_estimator_checks():
    from sklearn.utils.estimator_checks import check_estimator

    expected = {
        "check_parameters_default_constructible": (
            "dtype's default is torch.float32, a torch.dtype, which the check does not list"
        )
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(gm64(2, max_iter=20), expected_failed_checks=expected, on_fail=None)
    failed = [
        (r["check_name"], repr(r["exception"])[:200])
        for r in results
        if r["status"] == "failed" and r["check_name"] not in expected
    ]
    assert not failed
    assert sum(r["status"] == "passed" for r in results) >= 35


def test_lvm_imports_and_fits_without_scikit_learn():
    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == 'sklearn' or name.startswith('sklearn.'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import numpy as np
import lvm, lvm.models
from lvm.models import GaussianMixture
X = np.random.RandomState(0).randn(200, 2)
gm = GaussianMixture(2, device='cpu').fit(X)
print(gm.get_params()['n_components'], 'sklearn' in sys.modules, np.isfinite(gm.score(X)))
try:
    GaussianMixture().predict(X)
except Exception as e:
    print(type(e).__name__)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "False", "True", "NotFittedError"]


# -- EM resumed from a half step -----------------------------------------------------------------------------------


def _params(s):
    return s.weights, s.means, s.covariances


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_em_steps_resume_from_every_half_step_continues_the_same_run(ct):
    X, _ = blobs(n=200, seed=3)
    kw = dict(covariance_type=ct, init_params="random", tol=1e-12, max_iter=4, reg_covar=1e-6)
    whole = list(gm64(3, **kw).em_steps(X))
    assert [s.half for s in whole] == ["init"] + ["E", "M"] * 4
    for i, start in enumerate(whole[:-1]):
        gm = GaussianMixture.from_params(
            *_params(start), covariance_type=ct, device="cpu", dtype=torch.float64, tol=1e-12, reg_covar=1e-6
        )
        rest = list(gm.em_steps(X, max_iter=2, resume=start.half, iteration=start.iteration))
        # max_iter counts M-steps: after init or M an E comes first, after an E the M that completes it
        assert sum(s.half == "M" for s in rest) == 2 and rest[0].half == ("M" if start.half == "E" else "E")
        np.testing.assert_allclose(gm.means_, rest[-1].means)  # left fitted with the last parameters
        expected = whole[i + 1 : i + 1 + len(rest)]
        rest = rest[: len(expected)]
        assert [(s.half, s.iteration) for s in rest] == [(s.half, s.iteration) for s in expected]
        for got, ref in zip(rest, expected, strict=False):
            for a, b in zip(_params(got), _params(ref), strict=False):
                np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
            assert got.log_likelihood == pytest.approx(ref.log_likelihood, rel=1e-12)


def test_fit_and_em_steps_run_the_same_loop():
    X, _ = blobs(n=300, seed=4)
    for ct in ("full", "diag"):  # diag: fit fuses E and M in one kernel on CPU, em_steps does not
        kw = dict(covariance_type=ct, init_params="kmeans", tol=1e-6, max_iter=50)
        a = gm64(3, **kw).fit(X)
        b = gm64(3, **kw)
        snaps = list(b.em_steps(X))
        assert (a.n_iter_, a.converged_) == (b.n_iter_, b.converged_)
        np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=1e-10)
        np.testing.assert_allclose(a.means_, b.means_, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(snaps[-1].means, a.means_, rtol=1e-9, atol=1e-12)


def test_resume_needs_a_fitted_model_and_a_known_half():
    X, _ = blobs(n=50)
    with pytest.raises(NotFittedError):
        next(GaussianMixture(2).em_steps(X, resume="M"))
    gm = gm64(2).fit(X)
    with pytest.raises(ValueError, match="resume must be"):
        next(gm.em_steps(X, resume="X"))


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_posterior_is_predict_proba_and_score_samples_in_one_e_step(ct):
    from lvm.models.gmm import full_covariances

    X, _ = blobs(n=200, seed=5)
    gm = gm64(3, covariance_type=ct).fit(X)
    resp, log_px = gm.posterior(X)
    np.testing.assert_allclose(resp, gm.predict_proba(X), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(log_px, gm.score_samples(X), rtol=1e-12)
    # Bayes' rule by hand with the (K, D, D) covariances of the compact form
    covs = full_covariances(gm.covariances_, ct, 3, 2)
    assert covs.shape == (3, 2, 2)
    from scipy.stats import multivariate_normal

    joint = np.stack([gm.weights_[k] * multivariate_normal(gm.means_[k], covs[k]).pdf(X) for k in range(3)], 1)
    np.testing.assert_allclose(resp, joint / joint.sum(1, keepdims=True), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(log_px, np.log(joint.sum(1)), rtol=1e-10)
