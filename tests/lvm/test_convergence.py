"""lvm.estimators.convergence: L_k from disjoint groups of one run, the study's snapshots, the exact coverage of
each proposal (against closed-form chi^2 integrals), and an off-posterior q losing to naive MC from the prior."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lvm.estimators.convergence import (
    ConvergenceSnapshot,
    LkStats,
    convergence_steps,
    jensen_estimates,
    lk_groups,
    naive_beats_proposal,
    proposal_coverage,
    weighted_samples,
)
from lvm.estimators.montecarlo import importance, naive_mc
from lvm.gaussian_q import cov_to_tril, gaussian
from lvm.models.linear_gaussian import LinearGaussianModel
from lvm.posterior_grid import CoarseGrid, posterior_picture


@pytest.fixture(scope="module")
def lg():
    m = LinearGaussianModel.random(data_dim=6, latent_dim=2, s=0.5, seed=7)
    x = m.sample(1, torch.Generator().manual_seed(8))[0]
    post = m.posterior(x[None])
    mean, cov = post.mean[0].numpy(), post.covariance_matrix[0].numpy()
    return m, x, mean, cov, float(m.log_marginal(x[None])[0])


def test_lk_groups_split_one_run_into_disjoint_groups():
    lw = np.log(np.arange(1.0, 11.0))  # w = 1..10
    g = lk_groups(lw, (1, 2, 3, 10, 20))
    np.testing.assert_allclose(g[1], lw)
    np.testing.assert_allclose(g[2], np.log([1.5, 3.5, 5.5, 7.5, 9.5]))
    np.testing.assert_allclose(g[3], np.log([2.0, 5.0, 8.0]))  # the tenth weight is left over
    np.testing.assert_allclose(g[10], [math.log(5.5)])
    assert 20 not in g


def test_with_the_exact_posterior_every_estimate_is_log_px(lg):
    """q = p(z|x): every weight is p(x), so every L_k estimate is log p(x) and the ESS is k."""
    m, x, mean, cov, log_px = lg
    L = cov_to_tril(cov)
    snaps = list(convergence_steps(m, x, mean, L, ks=(1, 5, 50), repeats=3, seed=2, n_show=40))
    assert [s.done for s in snaps] == [1, 2, 3] and all(s.repeats == 3 for s in snaps)
    last = snaps[-1]
    assert isinstance(last.stats["iwae"], LkStats) and last.k_max == 50
    np.testing.assert_allclose(last.stats["iwae"].mean, log_px, atol=1e-8)
    np.testing.assert_allclose(last.stats["iwae"].q10, log_px, atol=1e-8)
    np.testing.assert_array_equal(last.stats["iwae"].n_estimates, [150, 30, 3])  # 3 repeats x floor(50 / k)
    assert last.ess["iwae"] == pytest.approx(50.0)
    assert last.samples["iwae"].z.shape == (40, 2) and last.samples["iwae"].ess == pytest.approx(40.0)
    for name in ("uniform", "prior"):  # naive estimates scatter (a single one may even land above log p(x))
        assert (last.stats[name].q90 > last.stats[name].q10).all()


def test_snapshots_use_lvm_estimators_and_are_reproducible(lg):
    m, x, mean, cov, _ = lg
    L = np.diag([0.6, 0.9])
    a = list(convergence_steps(m, x, mean + 0.2, L, ks=(1, 10, 100), repeats=2, seed=5, box=(-3.0, 3.0)))
    b = list(convergence_steps(m, x, mean + 0.2, L, ks=(100, 10, 1), repeats=2, seed=5, box=(-3.0, 3.0)))
    for name in ("iwae", "uniform", "prior"):
        np.testing.assert_array_equal(a[-1].stats[name].mean, b[-1].stats[name].mean)
    # repeat 1 of the IWAE run is lvm.estimators.importance with seed 1000 seed + 10 r + 0, split into groups
    est = importance(m, x[None], gaussian(m, mean + 0.2, L), 100, seed=5000, return_log_weights=True)
    assert a[0].stats["iwae"].mean[-1] == pytest.approx(float(est.value[0]))
    assert a[0].ess["iwae"] == pytest.approx(float(est.ess[0]))
    uni = naive_mc(m, x[None], 100, proposal="uniform", box=(-3.0, 3.0), seed=5001)
    assert a[0].stats["uniform"].mean[-1] == pytest.approx(float(uni.value[0]))
    ws = weighted_samples(m, x, "uniform", 30, box=(-3.0, 3.0), seed=5)
    assert ws.z.min() >= -3.0 and ws.z.max() <= 3.0 and ws.normalised_weights.sum() == pytest.approx(1.0)


def chi2_integral(mu, sigma, m, S) -> float:
    """int N(z; mu, Sigma)^2 / N(z; m, S) dz in closed form (2 A = 2 Sigma^-1 - S^-1 must be positive definite)."""
    P, Si = np.linalg.inv(sigma), np.linalg.inv(S)
    A = 2 * P - Si
    b = 2 * P @ mu - Si @ m
    log_i = (
        -np.linalg.slogdet(sigma)[1]
        + 0.5 * np.linalg.slogdet(S)[1]
        - 0.5 * np.linalg.slogdet(A)[1]
        + 0.5 * b @ np.linalg.solve(A, b)
        - mu @ P @ mu
        + 0.5 * m @ Si @ m
    )
    return float(np.exp(log_i))


def test_proposal_coverage_against_closed_forms(lg):
    m, x, mean, cov, _ = lg
    pic = posterior_picture(CoarseGrid.build(m, size=64), x.numpy(), fine=64)
    L = cov_to_tril(cov)
    exact = proposal_coverage(pic, mean, L)
    assert exact.second_moment["iwae"] == pytest.approx(1.0, rel=1e-3)  # chi^2(p || p) = 0
    assert exact.expected_ess("iwae", 1000) == pytest.approx(1000, rel=1e-3)
    assert exact.second_moment["prior"] == pytest.approx(chi2_integral(mean, cov, np.zeros(2), np.eye(2)), rel=1e-3)
    assert exact.second_moment["uniform"] == pytest.approx(64.0 * (np.exp(pic.log_density) ** 2).sum() * pic.cell_area)
    assert exact.q_mass_2sigma == pytest.approx(1 - math.exp(-2), abs=0.01)
    qm, qL = mean + np.sqrt(np.diag(cov)) * [1.0, -0.5], 1.3 * L  # a broader q, off the mean
    off = proposal_coverage(pic, qm, qL)
    assert off.second_moment["iwae"] == pytest.approx(chi2_integral(mean, cov, qm, qL @ qL.T), rel=1e-3)
    assert off.second_moment["iwae"] > 1.0


def test_an_off_posterior_q_loses_to_the_prior_and_coverage_says_why(lg):
    """q narrow and 4 posterior sds away: its rare useful draws are missed, IWAE falls far short; naive MC from the
    prior covers p(z|x) and wins at the same k. The exact second moments say so: q's dwarfs the prior's."""
    m, x, mean, cov, log_px = lg
    sd = np.sqrt(np.diag(cov))
    qm, qL = mean + 4 * sd, np.diag(0.3 * sd)
    last = list(convergence_steps(m, x, qm, qL, ks=(1, 100, 1000), repeats=3, seed=0))[-1]
    assert "prior" in naive_beats_proposal(last)
    assert last.final("iwae") < last.final("prior") < log_px
    pic = posterior_picture(CoarseGrid.build(m, size=64), x.numpy())
    cover = proposal_coverage(pic, qm, qL)
    assert cover.q_mass_2sigma < 0.01
    assert cover.second_moment["iwae"] > 1e6 * cover.second_moment["prior"]


def test_naive_beats_proposal_reads_the_largest_k():
    def stats(means):
        a = np.array(means, dtype=float)
        return LkStats(a, a, a, np.ones(2, dtype=np.int64))

    snap = ConvergenceSnapshot(
        ks=(1, 10),
        done=1,
        repeats=1,
        stats={"iwae": stats([-12, -10.5]), "uniform": stats([-20, -10.4]), "prior": stats([-11, -10.6])},
        ess={},
        samples={},
        seed=0,
    )
    assert naive_beats_proposal(snap) == ("uniform",)
    assert naive_beats_proposal(snap, "prior") == ("uniform",)


def test_jensen_estimates_are_unbiased_for_p_and_below_for_log_p(lg):
    m, x, mean, cov, log_px = lg
    L = cov_to_tril(cov)
    np.testing.assert_allclose(jensen_estimates(m, x, mean, L, k=3, repeats=20), log_px, atol=1e-8)
    est = jensen_estimates(m, x, mean, 1.6 * L, k=3, repeats=4000, seed=1)
    assert est.shape == (4000,)
    ratio = np.exp(est - log_px)
    assert abs(ratio.mean() - 1) < 4 * ratio.std() / math.sqrt(ratio.size)  # E[p_hat] = p(x)
    assert (est - log_px).mean() < 0  # E[log p_hat] = L_k < log p(x)
