"""The quadrature box is chosen from where the posterior's mass is, and its error is reported beside the grid's:
against the closed form of a linear-Gaussian model whose posterior sits near the old box's edge."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm.estimators import box_error, choose_box, log_marginal_adaptive, posterior_region, refinement_report
from lvm.models.linear_gaussian import LinearGaussianModel

D64 = torch.float64
OLD_BOX = torch.tensor([[-4.0, 4.0], [-4.0, 4.0]], dtype=D64)  # the box every model without an encoder got


def _edge_model(mu1: float = 3.4, mu2: float = 0.5) -> tuple[LinearGaussianModel, torch.Tensor]:
    """A 2-D linear-Gaussian model (no encoder) and an x whose posterior N(mu, Sigma), sd ~0.24, has its mean at
    (mu1, mu2): near the old box's edge z1 = 4."""
    W = torch.tensor([[2.0, 0.0], [0.0, 2.0], [0.6, 0.4]], dtype=D64)
    model = LinearGaussianModel(W, torch.zeros(3, dtype=D64), s=0.5)
    prec = torch.eye(2, dtype=D64) + W.T @ W / model.s**2
    mu = torch.tensor([[mu1, mu2]], dtype=D64)
    a = torch.linalg.solve(W.T @ W, prec @ mu.T * model.s**2).T  # x = W a has posterior mean mu
    x = a @ W.T
    torch.testing.assert_close(model.posterior(x).mean, mu)
    return model, x


def test_the_old_box_is_wrong_and_the_chosen_box_agrees_with_the_closed_form():
    model, x = _edge_model()
    exact = model.log_marginal(x)
    old = log_marginal_adaptive(model, x, size=256, box=OLD_BOX).log_px
    assert float(exact - old) > 1e-3  # several 1e-3 nats lost beyond z1 = 4
    box = choose_box(model, x)
    assert float(box[0, 1]) > 4.5  # widened past the posterior's mass
    new = log_marginal_adaptive(model, x, size=256, box=box).log_px
    assert float((exact - new).abs()) < 1e-4
    rep = refinement_report(model, x, sizes=(128, 256))
    assert float((rep.log_px[-1] - exact).abs()) < 1e-4
    assert rep.box_error < 1e-4 and rep.max_change < 1e-4
    assert rep.total_error == pytest.approx(rep.box_error + rep.max_change)
    assert "box error" in rep.summary() and "grid error" in rep.summary()
    # the old box's report shows what its refinement change hid
    old_rep = refinement_report(model, x, sizes=(128, 256), box=OLD_BOX)
    assert old_rep.max_change < 1e-4 < float(exact - old_rep.log_px[-1]) <= old_rep.box_error


@settings(max_examples=12, deadline=None)
@given(
    mu1=st.floats(2.5, 4.5),
    mu2=st.floats(-1.0, 1.0),
    edge=st.floats(2.8, 4.2),
)
def test_the_box_error_bounds_the_true_error_of_a_too_small_box(mu1, mu2, edge):
    """A box cut at z1 = edge. Where the box holds the posterior's mode (and the tail it cuts is convex, beyond one
    sd), the reported box error is at least the true loss: it is a bound. Where it cuts off the mode, the loss is
    nats and the report within 1 % of it. Never wildly more than the loss (a factor 10, or 1e-3 nats)."""
    model, x = _edge_model(mu1, mu2)
    exact = float(model.log_marginal(x))
    box = torch.tensor([[-4.0, edge], [-4.0, 4.0]], dtype=D64)
    lp = log_marginal_adaptive(model, x, size=256, box=box).log_px
    true = exact - float(lp)
    reported = float(box_error(model, x, box, log_px=lp))
    sd = float(model.posterior(x).stddev[0, 0])
    if edge >= mu1 + sd:
        assert reported >= true - 1e-9
    else:
        assert reported >= 0.99 * true
    assert reported <= 10 * true + 1e-3


def test_box_error_is_batched_and_masked():
    model, x1 = _edge_model()
    _, x2 = _edge_model(0.0, 0.0)
    x = torch.cat([x1, x2])
    err = box_error(model, x, OLD_BOX)
    assert err.shape == (2,) and float(err[0]) > 1e-3 and float(err[1]) < 1e-6
    # observing only the third pixel leaves the posterior close to the prior: little mass beyond the box
    mask = torch.tensor([0.0, 0.0, 1.0], dtype=D64)
    assert float(box_error(model, x, OLD_BOX, mask=mask).max()) < float(err[0])


def test_the_region_holds_every_x_posterior_and_the_prior_bulk_stays():
    model, x1 = _edge_model(3.4, 0.5)
    _, x2 = _edge_model(-0.5, -3.6)
    x = torch.cat([x1, x2])
    region = posterior_region(model, x)
    post = model.posterior(x)
    sd = post.stddev
    assert (region[:, 0] <= (post.mean - 5 * sd).min(0).values).all()
    assert (region[:, 1] >= (post.mean + 5 * sd).max(0).values).all()
    box = choose_box(model, x)
    assert (box[:, 0] <= -4).all() and (box[:, 1] >= 4).all()
    assert float(box[1, 0]) < -4.5 and float(box[0, 1]) > 4.5
    assert torch.equal(choose_box(model), OLD_BOX)  # no x: the prior's bulk, as before


def test_a_1d_latent_box_from_the_scan():
    W = torch.tensor([[3.0], [1.0]], dtype=D64)
    model = LinearGaussianModel(W, torch.zeros(2, dtype=D64), s=0.4)
    x = torch.tensor([[13.0, 4.3]], dtype=D64)  # posterior mean near 4.3, sd ~0.13
    exact = float(model.log_marginal(x))
    assert exact - float(log_marginal_adaptive(model, x, size=256, block=8, box=OLD_BOX[:1]).log_px) > 1e-3
    rep = refinement_report(model, x, sizes=(128, 256))
    assert abs(float(rep.log_px[-1]) - exact) < 1e-4 and rep.box_error < 1e-4
    assert math.isfinite(rep.total_error)
