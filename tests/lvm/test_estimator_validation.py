"""Every public estimator refuses bad x and q with a ModelInputError that says what to change, and takes numpy and
torch x alike (lvm.estimators.validation). Property-based: random wrong widths, ranks, NaN/inf positions, q batch
shapes."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.distributions import Independent, MultivariateNormal, Normal

from lvm.errors import ModelInputError
from lvm.estimators import (
    LatentGrid,
    choose_box,
    elbo,
    elbo_gauss_hermite,
    elbo_quadrature,
    fit_gaussian_q,
    importance,
    kl_q_posterior,
    local_box,
    local_posterior,
    log_marginal,
    log_marginal_adaptive,
    naive_mc,
    posterior_moments,
    posterior_on_grid,
    refinement_report,
    vi_steps,
)
from lvm.estimators.convergence import convergence_steps, jensen_estimates, weighted_samples
from lvm.estimators.encoder_gap import encoder_gap_steps
from lvm.estimators.validation import check_q, check_x
from lvm.models.linear_gaussian import LinearGaussianModel

D64 = torch.float64
DATA_DIM = 6
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class StudentBernoulli(torch.nn.Module):
    """A user's model as a student would write it: a linear Bernoulli decoder, a diagonal Gaussian encoder."""

    def __init__(self, data_dim: int | None = DATA_DIM) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.latent_dim = 2
        if data_dim is not None:
            self.data_dim = data_dim
        self.dec = torch.nn.Linear(2, DATA_DIM)
        self.enc = torch.nn.Linear(DATA_DIM, 4)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (z.pow(2).sum(-1) + 2 * math.log(2 * math.pi))

    def bernoulli_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec(z)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        logits = self.bernoulli_logits(z)
        return (x * logits - torch.nn.functional.softplus(logits)).sum(-1)

    def encode(self, x: torch.Tensor) -> Independent:
        h = self.enc(x)
        return Independent(Normal(h[:, :2], torch.exp(0.5 * h[:, 2:].clamp(-4, 2))), 1)


LG = LinearGaussianModel.random(data_dim=DATA_DIM, latent_dim=2, s=0.7, seed=3)
BERNOULLI = StudentBernoulli()
MODELS = {"linear-gaussian": LG, "bernoulli": BERNOULLI}
GRIDS = {name: LatentGrid.build(m, 16) for name, m in MODELS.items()}


def _q(model: Any, batch: tuple[int, ...]) -> Independent:
    dt = D64 if model is LG else torch.float32
    return Independent(Normal(torch.zeros(*batch, 2, dtype=dt), torch.ones(*batch, 2, dtype=dt)), 1)


def _mvn(model: Any, batch: int) -> MultivariateNormal:
    dt = D64 if model is LG else torch.float32
    return MultivariateNormal(torch.zeros(batch, 2, dtype=dt), scale_tril=torch.eye(2, dtype=dt).expand(batch, 2, 2))


def _rows(x: Any) -> int:
    return int(np.shape(x)[0]) if np.ndim(x) >= 1 else 1


def _eye(model: Any) -> torch.Tensor:
    return torch.eye(2, dtype=D64 if model is LG else torch.float32)


def _zero(model: Any) -> torch.Tensor:
    return torch.zeros(2, dtype=D64 if model is LG else torch.float32)


# every public estimator that takes x, called cheaply (small k, grids and step counts); each returns numbers
ESTIMATORS: dict[str, Callable[[str, Any], Any]] = {
    "naive_mc": lambda name, x: naive_mc(MODELS[name], x, 8, seed=0).value,
    "importance": lambda name, x: importance(MODELS[name], x, _q(MODELS[name], (_rows(x),)), 8, seed=0).value,
    "elbo": lambda name, x: elbo(MODELS[name], x, _q(MODELS[name], (_rows(x),)), 8, seed=0).value,
    "log_marginal": lambda name, x: log_marginal(GRIDS[name], x),
    "posterior_on_grid": lambda name, x: posterior_on_grid(GRIDS[name], x),
    "posterior_moments": lambda name, x: posterior_moments(GRIDS[name], x)[0],
    "local_box": lambda name, x: local_box(GRIDS[name], x),
    "elbo_quadrature": lambda name, x: elbo_quadrature(GRIDS[name], x, _mvn(MODELS[name], _rows(x))),
    "kl_q_posterior": lambda name, x: kl_q_posterior(GRIDS[name], x, _mvn(MODELS[name], _rows(x))),
    "local_posterior": lambda name, x: local_posterior(GRIDS[name], x, size=8).log_px,
    "choose_box": lambda name, x: choose_box(MODELS[name], x),
    "grid_build": lambda name, x: LatentGrid.build(MODELS[name], 8, x=x).box,
    "log_marginal_adaptive": lambda name, x: log_marginal_adaptive(MODELS[name], x, size=16, block=4).log_px,
    "refinement_report": lambda name, x: refinement_report(MODELS[name], x, sizes=(8, 16), block=4).log_px[-1],
    "elbo_gauss_hermite": lambda name, x: elbo_gauss_hermite(MODELS[name], x, _zero(MODELS[name]), _eye(MODELS[name])),
    "fit_gaussian_q": lambda name, x: fit_gaussian_q(MODELS[name], x, steps=2).elbo,
    "vi_steps": lambda name, x: next(iter(vi_steps(MODELS[name], x, steps=2))).elbo,
}
# the estimators of one x (documented to take any array holding the D values of one x)
ONE_X: dict[str, Callable[[str, Any], Any]] = {
    "weighted_samples": lambda name, x: weighted_samples(MODELS[name], x, "iwae", 8, [0, 0], np.eye(2)).log_w,
    "jensen_estimates": lambda name, x: jensen_estimates(MODELS[name], x, [0, 0], np.eye(2), 4, 3),
    "convergence_steps": lambda name, x: next(
        iter(convergence_steps(MODELS[name], x, [0, 0], np.eye(2), ks=(1, 4), repeats=1, n_show=4))
    ).final("iwae"),
}
# these also take one x as a 1-D array (D,), documented; the rest want (B, D)
SINGLE_OK = {"elbo_gauss_hermite", "fit_gaussian_q", "vi_steps"}

names = st.sampled_from(sorted(MODELS))
estimators = st.sampled_from(sorted(ESTIMATORS))


def _good_x(rows: int, width: int = DATA_DIM, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((rows, width)) < 0.5).astype(np.float64)


@SETTINGS
@given(est=estimators, name=names, rows=st.integers(1, 3), width=st.integers(1, 2 * DATA_DIM + 3))
def test_a_wrong_width_is_refused_naming_the_data_dimension(est, name, rows, width):
    if width == DATA_DIM:
        width += 1
    with pytest.raises(ModelInputError, match=rf"{width} columns.*data dimension is {DATA_DIM}.*\(batch, {DATA_DIM}\)"):
        ESTIMATORS[est](name, _good_x(rows, width))


@SETTINGS
@given(est=st.sampled_from(sorted(ONE_X)), name=names, width=st.integers(1, 2 * DATA_DIM + 3))
def test_one_x_of_the_wrong_size_is_refused(est, name, width):
    if width == DATA_DIM:
        width += 1
    with pytest.raises(ModelInputError, match=rf"{width} columns.*data dimension is {DATA_DIM}"):
        ONE_X[est](name, _good_x(1, width)[0])


@SETTINGS
@given(est=estimators, name=names, shape=st.lists(st.integers(1, 3), min_size=0, max_size=4))
def test_a_wrong_rank_is_refused_naming_the_shape(est, name, shape):
    rank = len(shape)
    if rank == 2 or (rank == 1 and est in SINGLE_OK):
        shape = [2, 2, *shape]  # rank 4 or 3: wrong everywhere
    x = np.zeros(shape)
    with pytest.raises(ModelInputError, match=rf"2-D array of shape \(batch, {DATA_DIM}\).*got shape"):
        ESTIMATORS[est](name, x)


@SETTINGS
@given(
    est=estimators,
    name=names,
    rows=st.integers(1, 3),
    data=st.data(),
    bad=st.sampled_from([math.nan, math.inf, -math.inf]),
    as_numpy=st.booleans(),
)
def test_nan_or_inf_is_refused_naming_where(est, name, rows, data, bad, as_numpy):
    x = _good_x(rows)
    r = data.draw(st.integers(0, rows - 1), label="row")
    c = data.draw(st.integers(0, DATA_DIM - 1), label="column")
    x[r, c] = bad
    with pytest.raises(ModelInputError, match=rf"NaN or infinite.*row {r}, column {c}.*finite"):
        ESTIMATORS[est](name, x if as_numpy else torch.from_numpy(x))


@SETTINGS
@given(est=st.sampled_from(sorted(ONE_X)), name=names, data=st.data(), bad=st.sampled_from([math.nan, math.inf]))
def test_one_x_holding_nan_or_inf_is_refused(est, name, data, bad):
    x = _good_x(1)[0]
    x[data.draw(st.integers(0, DATA_DIM - 1))] = bad
    with pytest.raises(ModelInputError, match="NaN or infinite"):
        ONE_X[est](name, x)


@settings(max_examples=15, deadline=None)
@given(
    est=estimators, name=names, rows=st.integers(1, 3), seed=st.integers(0, 100), dtype=st.sampled_from(["f4", "f8"])
)
def test_numpy_and_torch_x_give_the_same_result(est, name, rows, seed, dtype):
    x = _good_x(rows, seed=seed).astype(dtype)
    from_numpy = ESTIMATORS[est](name, x)
    from_torch = ESTIMATORS[est](name, torch.from_numpy(x.copy()))
    torch.testing.assert_close(torch.as_tensor(from_numpy), torch.as_tensor(from_torch), rtol=0, atol=0)
    assert torch.isfinite(torch.as_tensor(from_numpy)).all()


@SETTINGS
@given(est=st.sampled_from(sorted(ONE_X)), name=names, seed=st.integers(0, 100))
def test_one_x_from_numpy_or_torch_gives_the_same_result(est, name, seed):
    x = _good_x(1, seed=seed)[0]
    a = np.asarray(ONE_X[est](name, x), dtype=np.float64)
    b = np.asarray(ONE_X[est](name, torch.from_numpy(x.copy())), dtype=np.float64)
    np.testing.assert_array_equal(a, b)


def test_integer_and_boolean_x_are_numbers():
    x = _good_x(2)
    ref = importance(LG, x, _q(LG, (2,)), 8, seed=0).value
    for other in (x.astype(np.int64), x.astype(bool), torch.from_numpy(x.astype(np.uint8))):
        torch.testing.assert_close(
            importance(LG, other, _q(LG, (2,)), 8, seed=0).value.double(), ref, rtol=1e-6, atol=1e-6
        )


@pytest.mark.parametrize("x", [["a", "b"], np.array([{"x": 1}], dtype=object), None])
def test_x_that_is_not_numbers_is_refused(x):
    with pytest.raises(ModelInputError, match="numbers|numpy array"):
        importance(LG, x, _q(LG, (1,)), 4)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_an_empty_batch_is_refused(name):
    with pytest.raises(ModelInputError, match="no rows"):
        importance(MODELS[name], np.zeros((0, DATA_DIM)), _q(MODELS[name], (0,)), 4)


@SETTINGS
@given(
    est=st.sampled_from(["importance", "elbo"]),
    name=names,
    rows=st.integers(1, 4),
    q_batch=st.lists(st.integers(1, 5), min_size=0, max_size=2),
)
def test_a_q_whose_batch_is_not_x_batch_is_refused(est, name, rows, q_batch):
    if tuple(q_batch) == (rows,):
        q_batch = [rows + 1]
    model = MODELS[name]
    fn = importance if est == "importance" else elbo
    with pytest.raises(ModelInputError, match=rf"batch shape \({rows},\)") as info:
        fn(model, _good_x(rows), _q(model, tuple(q_batch)), 4, seed=0)
    assert "one distribution per x" in str(info.value)


@SETTINGS
@given(name=names, rows=st.integers(1, 4), q_batch=st.integers(1, 5))
def test_quadrature_refuses_a_q_of_another_batch(name, rows, q_batch):
    if q_batch == rows:
        q_batch += 1
    with pytest.raises(ModelInputError, match=rf"batch shape \({rows},\)"):
        kl_q_posterior(GRIDS[name], _good_x(rows), _mvn(MODELS[name], q_batch))


def test_a_q_without_the_latent_event_is_refused_with_a_hint():
    x = _good_x(3)
    q = Normal(torch.zeros(3, 2, dtype=D64), torch.ones(3, 2, dtype=D64))  # batch (3, 2), event ()
    with pytest.raises(ModelInputError, match=r"event shape \(\).*Independent\(Normal"):
        importance(LG, x, q, 4)
    with pytest.raises(ModelInputError, match=r"event shape \(3,\)"):
        importance(LG, x, Independent(Normal(torch.zeros(3, 3), torch.ones(3, 3)), 1), 4)
    with pytest.raises(ModelInputError, match="Distribution"):
        importance(LG, x, (torch.zeros(3, 2), torch.ones(3, 2)), 4)


def test_one_q_for_every_x_is_expanded_by_the_user():
    """The message's advice works: q.expand((B,)) shares one q across the batch."""
    x = _good_x(3)
    q = _q(LG, (1,))
    with pytest.raises(ModelInputError, match=r"expand\(\(3,\)\)"):
        importance(LG, x, q, 4)
    est = importance(LG, x, _q(LG, ()).expand((3,)), 4, seed=0)
    assert est.value.shape == (3,)


@pytest.mark.parametrize(
    ("mean", "tril", "match"),
    [
        (torch.zeros(3), torch.eye(2), r"mean has shape \(3,\)"),
        (torch.zeros(4, 2), torch.eye(2), r"mean has shape \(4, 2\).*\(3, 2\)"),
        (torch.zeros(2), torch.eye(3), r"scale_tril has shape \(3, 3\)"),
        (torch.zeros(2), torch.eye(2).expand(4, 2, 2), r"scale_tril has shape \(4, 2, 2\)"),
    ],
)
def test_gauss_hermite_refuses_a_q_of_the_wrong_shape(mean, tril, match):
    with pytest.raises(ModelInputError, match=match):
        elbo_gauss_hermite(LG, _good_x(3), mean.double(), tril.double())


def test_vi_refuses_a_starting_q_of_another_batch():
    x = _good_x(3)
    with pytest.raises(ModelInputError, match="mean has shape"):
        fit_gaussian_q(LG, x, steps=1, init=(torch.zeros(2, 2, dtype=D64), torch.eye(2, dtype=D64)))


def test_a_bernoulli_model_without_data_dim_still_refuses_a_wrong_width():
    """No declared data_dim: the decoder's fast path compares its pixel count with x (no silent broadcasting)."""
    model = StudentBernoulli(data_dim=None)
    x = _good_x(2, DATA_DIM + 1)
    for call in (
        lambda: importance(model, x, _q(model, (2,)), 4),
        lambda: elbo(model, x, _q(model, (2,)), 4),
        lambda: naive_mc(model, x, 4),
    ):
        with pytest.raises(ModelInputError, match=rf"{DATA_DIM + 1} columns.*\(batch, {DATA_DIM}\)"):
            call()


def test_encoder_gap_refuses_bad_rows_and_indices():
    data = _good_x(5)
    data[3, 1] = math.nan
    box = np.array([[-4.0, 4.0], [-4.0, 4.0]])
    with pytest.raises(ModelInputError, match=r"data_x holds 1 NaN.*row 2, column 1"):
        next(encoder_gap_steps(BERNOULLI, data, [0, 1, 3], box, size=16))
    with pytest.raises(ModelInputError, match=r"indices must lie in \[0, 5\)"):
        next(encoder_gap_steps(BERNOULLI, data, [0, 9], box, size=16))
    snap = list(encoder_gap_steps(BERNOULLI, data, [0, 1], box, size=16))[-1]
    assert np.isfinite(snap.gap).all()


def test_check_x_puts_x_on_the_model_dtype_and_is_cheap_to_call():
    x = check_x(BERNOULLI, _good_x(2))
    assert x.dtype == torch.float32 and x.shape == (2, DATA_DIM)
    assert check_x(LG, _good_x(2).astype(np.float32)).dtype == torch.float32  # no parameters: x keeps its dtype
    assert check_x(LG, _good_x(1)[0], allow_single=True).shape == (1, DATA_DIM)
    assert check_q(LG, _q(LG, (2,)), 2) is not None
