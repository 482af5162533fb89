"""Exact log p(x) by quadrature over a 1-D or 2-D latent space, and what follows from it.

Midpoint rule on a box [a_1, b_1] x ... (Dz = 1 or 2) with n points per axis, cell volume V = prod_j (b_j - a_j)/n:

    p(x) = int p(x|z) p(z) dz  ~=  V sum_g p(x|z_g) p(z_g),
    log p(x) ~= log V + logsumexp_g [log p(x|z_g) + log p(z_g)].

The integrand is smooth and Gaussian-like, so the rule converges very fast once a cell is smaller than the
posterior's width; the change under refinement (``refinement_report``) is the reported accuracy.

The grid is decoded once (``LatentGrid``). For a Bernoulli decoder with logits l_g = l(z_g) the identity
log sigma(l) - log sigma(-l) = l makes the whole likelihood table one GEMM:

    log p(x|z_g) = x . l_g + c_g,    c_g = sum_d log sigma(-l_gd)        (X @ L^T + c, N x D x G)

(masked: (m*x) @ L^T + m @ log sigma(-L)^T). For a diagonal Gaussian decoder (mean m_g, log-variance v_g):
log p(x|z_g) = [x^2, x] @ [-exp(-v_g)/2, m_g exp(-v_g)]^T + c_g. Other models fall back to ``log_likelihood``.
The logsumexp over the grid streams over chunks of grid points (running logaddexp), so memory stays bounded.

The box (``choose_box``): the prior's bulk [-4, 4]^Dz, widened to where every given x's posterior has mass: a
coarse scan of log p(x, z) over the wide box [-12, 12]^Dz (prior density beyond is below e^-72) keeps the cells
within 20 nats of x's best cell, plus a margin of one cell (``posterior_region``), and, when the model has
``encode(x)``, the encoder's mean +- 6 sigma. The box has an error of its own, besides the grid's: the mass of
p(z|x) outside it. ``box_error`` estimates it on the same scan, log(1 + M_out / M_box), and ``refinement_report``
reports it beside the grid's refinement change.

Coarse to fine (the one scheme that ``log_marginal_adaptive``, ``local_posterior``, ``lvm.inpainting`` and the labs
share): the posterior p(z|x) is concentrated, so a coarse grid finds where it lives and only there is a fine grid
evaluated.

1. ``coarse_support``: the coarse cells whose log-joint log p(x, z_g) is within ``threshold`` nats of x's best
   cell, dilated by ``dilate`` cells. A left-out cell holds less than e^-threshold of the best cell's mass (as far
   as the coarse grid resolves the posterior), so all of them together less than G e^-threshold of the total.
2a. ``log_marginal_adaptive`` (whole data sets, log p(x)): the fine grid's cells inside the support's coarse cells
   (blocks of ``block^Dz`` fine cells, whose centre is the coarse point), each needed tile decoded once and summed
   in one GEMM for the x's that need it. ``refinement_report`` and the tests compare it against the dense grid;
   ``lvm.inpainting.refined_log_p_obs`` is this with a mask of observed pixels.
2b. ``local_posterior`` (one x, a picture of p(z|x)): a regular fine grid over the support's bounding box (one
   coarse cell of margin), with log p(x) = the fine sum over that box + the coarse sum over the cells outside it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, cast, overload

import numpy as np
import torch
import torch.nn.functional as F
from torch.distributions import Distribution

from lvm.errors import ModelInputError
from lvm.estimators.montecarlo import model_log_likelihood, prior_is_standard_normal
from lvm.estimators.validation import XLike, check_gaussian_params, check_q, check_x
from lvm.models.base import LOG_2PI, BernoulliDecoderModel, EncoderModel, GaussianDecoderModel, LatentModel

__all__ = [
    "LatentGrid",
    "choose_box",
    "scan_grid",
    "posterior_region",
    "box_error",
    "log_marginal",
    "posterior_on_grid",
    "posterior_moments",
    "local_box",
    "coarse_support",
    "local_posterior",
    "LocalPosterior",
    "kl_q_posterior",
    "elbo_quadrature",
    "log_marginal_adaptive",
    "log_marginal_on_support",
    "AdaptiveResult",
    "refinement_report",
    "RefinementReport",
    "gauss_hermite_nodes",
    "elbo_gauss_hermite",
]

PRIOR_BULK = 4.0
BOX_LIMIT = 12.0
# the scan for the posterior's mass (``choose_box``, ``box_error``): cells per axis over [-BOX_LIMIT, BOX_LIMIT]^Dz
SCAN_SIZE = {1: 1024, 2: 64}
BOX_TOLERANCE = 20.0  # nats below x's best scan cell still counted as posterior mass
BOX_MARGIN = 1  # scan cells added around that region
BOX_REFINE = 8  # sub-cells per axis of a scan cell at the box's edge (``box_error``)
DEFAULT_CHUNK = 8192
DEFAULT_X_CHUNK = 2048
# The most memory a stored grid's decoder tables may take (a 1024^2 grid of a 784-pixel decoder would be 3.3 GB):
# above it ``LatentGrid.build(store=True)`` keeps the grid unstored (decoded chunk by chunk on use).
MAX_STORED_TABLE_BYTES = 1 << 30
MAX_GRID_POINTS = 1 << 24  # 4096^2: its points and log prior alone take 400 MB


# ------------------------------------------------------------------------------------------------ helpers
def _model_device_dtype(
    model: LatentModel, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> tuple[torch.device | str, torch.dtype]:
    if isinstance(model, torch.nn.Module):
        p = next(iter(model.parameters()), None)
        if p is not None:
            return (device or p.device), (dtype or p.dtype)
    return (torch.device(device) if device is not None else torch.device("cpu")), (dtype or torch.float64)


def _as_x(model: LatentModel, x: XLike, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """x (B, D), numpy or torch, checked (``lvm.estimators.validation.check_x``), on ``device`` in ``dtype``."""
    return check_x(model, x, device=device, dtype=dtype)


def _check_dim(model: LatentModel) -> int:
    dz = int(model.latent_dim)
    if dz not in (1, 2):
        raise ModelInputError(
            f"quadrature needs a 1-D or 2-D latent space; this model's latent_dim is {dz}. "
            "Use the Monte Carlo estimators (importance, elbo) instead"
        )
    return dz


def _encoder_moments(model: EncoderModel, x: torch.Tensor, batch: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    means, stds = [], []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            q = model.encode(x[i : i + batch])
            means.append(q.mean.reshape(-1, model.latent_dim))
            stds.append(q.stddev.reshape(-1, model.latent_dim))
    return torch.cat(means), torch.cat(stds)


def choose_box(
    model: LatentModel,
    x: XLike | None = None,
    n_sigma: float = 6.0,
    prior_bulk: float = PRIOR_BULK,
    limit: float = BOX_LIMIT,
    *,
    tolerance: float = BOX_TOLERANCE,
    margin: int = BOX_MARGIN,
    scan_size: int | None = None,
    mask: torch.Tensor | None = None,
    scan: LatentGrid | None = None,
) -> torch.Tensor:
    """The integration box, (Dz, 2) float64 rows [low, high]: see the module docstring.

    [-prior_bulk, prior_bulk]^Dz, widened when ``x`` is given to cover (a) where each x's posterior has mass
    (``posterior_region``: the scan cells of [-limit, limit]^Dz within ``tolerance`` nats of x's best cell, plus
    ``margin`` cells) and (b) encoder means +- n_sigma encoder sigmas when the model has ``encode``; then clipped
    to [-limit, limit]. ``mask`` (D,) or (B, D), 1 = observed: the posterior given the observed pixels only;
    ``scan``: a ``scan_grid`` decoded before (reused).
    """
    dz = _check_dim(model)
    box = torch.tensor([[-prior_bulk, prior_bulk]] * dz, dtype=torch.float64)
    if x is not None:
        dev, dt = _model_device_dtype(model)
        xt = _as_x(model, x, dt, dev)
        region = posterior_region(model, xt, limit, tolerance, margin, scan_size, mask, scan)
        box[:, 0] = torch.minimum(box[:, 0], region[:, 0])
        box[:, 1] = torch.maximum(box[:, 1], region[:, 1])
        if hasattr(model, "encode"):
            m, s = _encoder_moments(cast(EncoderModel, model), xt)
            lo = (m - n_sigma * s).min(0).values.double().cpu()
            hi = (m + n_sigma * s).max(0).values.double().cpu()
            box[:, 0] = torch.minimum(box[:, 0], lo)
            box[:, 1] = torch.maximum(box[:, 1], hi)
    return box.clamp(-limit, limit)


def scan_grid(model: LatentModel, limit: float = BOX_LIMIT, scan_size: int | None = None) -> LatentGrid:
    """The coarse grid over the wide box [-limit, limit]^Dz (``SCAN_SIZE`` cells per axis by default) on which
    ``choose_box`` looks for the posterior's mass and ``box_error`` measures the mass outside a box."""
    dz = _check_dim(model)
    size = SCAN_SIZE[dz] if scan_size is None else int(scan_size)
    wide = torch.tensor([[-limit, limit]] * dz, dtype=torch.float64)
    return LatentGrid.build(model, size=size, box=wide)


def _scan_chunks(
    scan: LatentGrid, x: torch.Tensor, mask: torch.Tensor | None
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """(a, b, log p(x_a..b, z_g)) over chunks of x on the scan grid; a model without a decoder fast path decodes
    (points x chunk) z's at once, so its chunks are small enough to bound that memory."""
    n = x.shape[0]
    if scan.kind == "generic":
        x_chunk = max(1, (1 << 22) // max(1, scan.points.shape[0] * x.shape[1]))
    else:
        x_chunk = DEFAULT_X_CHUNK
    if mask is not None:
        mask = torch.as_tensor(mask).to(device=x.device, dtype=x.dtype)
    for a in range(0, n, x_chunk):
        b = min(n, a + x_chunk)
        yield a, b, scan.log_joint(x[a:b], _mask_rows(mask, a, b))


@torch.no_grad()
def posterior_region(
    model: LatentModel,
    x: XLike,
    limit: float = BOX_LIMIT,
    tolerance: float = BOX_TOLERANCE,
    margin: int = BOX_MARGIN,
    scan_size: int | None = None,
    mask: torch.Tensor | None = None,
    scan: LatentGrid | None = None,
) -> torch.Tensor:
    """The smallest box (Dz, 2) of scan cells holding, for every x, the cells whose log p(x, z_g) is within
    ``tolerance`` nats of that x's best cell, widened by ``margin`` cells and clipped to [-limit, limit].

    Scan: ``scan_grid`` (the midpoint rule on [-limit, limit]^Dz); a cell left out holds less than e^-tolerance of
    x's best cell, so all of them together less than G e^-tolerance of p(x) (as far as the scan resolves p(z|x)).
    """
    scan = scan_grid(model, limit, scan_size) if scan is None else scan
    xt = scan.prepare(x)
    keep = torch.zeros(scan.points.shape[0], dtype=torch.bool, device=scan.points.device)
    for _, _, lj in _scan_chunks(scan, xt, mask):
        keep |= (lj >= lj.max(-1, keepdim=True).values - tolerance).any(0)
    idx = torch.nonzero(keep.reshape(scan.shape)).cpu()  # (cells, Dz)
    wide = scan.box.to(torch.float64)
    h = (wide[:, 1] - wide[:, 0]) / scan.size
    lo = wide[:, 0] + (idx.min(0).values - margin) * h
    hi = wide[:, 0] + (idx.max(0).values + 1 + margin) * h
    return torch.stack([torch.maximum(lo, wide[:, 0]), torch.minimum(hi, wide[:, 1])], -1)


@torch.no_grad()
def box_error(
    model: LatentModel,
    x: XLike,
    box: torch.Tensor,
    log_px: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    limit: float = BOX_LIMIT,
    scan_size: int | None = None,
    scan: LatentGrid | None = None,
    refine: int = BOX_REFINE,
) -> torch.Tensor:
    """The error of integrating over ``box`` instead of all of z, per x (B,) float64, in nats:

        log p(x) - log p_box(x) = log(1 + M_out / M_box),

    M_box = exp(``log_px``), the quadrature's value over the box (default: the scan's sum over the cells inside
    it). M_out, the mass outside the box, by the midpoint rule on the scan grid over [-limit, limit]^Dz
    (``scan_grid``) on the scan's cells where no x has mass (below its best cell by more than ``BOX_TOLERANCE`` +
    5 nats), and by the trapezoid rule on ``refine``^Dz sub-cells of each other cell not wholly inside the box,
    counting every sub-cell the box cuts as outside: an upper estimate where p(z|x)'s tail beyond the box is
    convex (beyond about one sd of its mode), as far as the scan resolves p(z|x). Prior mass beyond
    [-limit, limit] (< e^-limit^2/2 per axis) is left out. Costs one scan, plus the sub-cells where x's have mass
    outside the box (none for a box from ``choose_box``).
    """
    scan = scan_grid(model, limit, scan_size) if scan is None else scan
    xt = scan.prepare(x)
    dz = scan.points.shape[-1]
    dev = scan.points.device
    box = torch.as_tensor(box, dtype=torch.float64).reshape(dz, 2)
    h = (scan.box[:, 1] - scan.box[:, 0]).to(torch.float64) / scan.size
    p64 = scan.points.double().cpu()
    eps = 1e-9 * h
    inside = ((p64 - h / 2 >= box[:, 0] - eps) & (p64 + h / 2 <= box[:, 1] + eps)).all(-1).to(dev)
    n = xt.shape[0]
    log_in = torch.empty(n, dtype=torch.float64, device=xt.device)
    out_lj = torch.empty((n, int((~inside).sum())), dtype=torch.float64, device=xt.device)
    relevant = torch.zeros(out_lj.shape[1], dtype=torch.bool, device=xt.device)
    for a, b, lj in _scan_chunks(scan, xt, mask):
        lj = lj.double()
        log_in[a:b] = torch.logsumexp(lj.masked_fill(~inside, -math.inf), -1) + scan.log_cell
        out_lj[a:b] = lj[:, ~inside]
        relevant |= (out_lj[a:b] >= lj.max(-1, keepdim=True).values - BOX_TOLERANCE - 5.0).any(0)
    # outside cells where no x has mass: the scan's rule; the others: refine^Dz sub-cells each
    log_out = torch.logsumexp(out_lj.masked_fill(relevant, -math.inf), -1) + scan.log_cell
    centres = p64[(~inside).cpu()][relevant.cpu()]  # (cells, Dz)
    if centres.shape[0]:
        r = max(1, int(refine))
        while r > 2 and centres.shape[0] * (r + 1) ** dz > (1 << 16):  # bounded work for a box far off x's mass
            r //= 2
        log_out = torch.logaddexp(log_out, _log_mass_outside(model, scan.kind, centres, h, r, box, xt, mask))
    if log_px is not None:
        log_in = torch.as_tensor(log_px).to(device=xt.device, dtype=torch.float64).reshape(-1)
    return torch.nn.functional.softplus(log_out - log_in)


def _log_mass_outside(
    model: LatentModel,
    kind: str,
    centres: torch.Tensor,
    h: torch.Tensor,
    r: int,
    box: torch.Tensor,
    x: torch.Tensor,
    mask: torch.Tensor | None,
) -> torch.Tensor:
    """log of the mass of p(x_b, z) (B,) float64 over the r^Dz sub-cells of the scan cells at ``centres`` (cells, Dz)
    of width ``h`` that are not wholly inside ``box``, by the trapezoid rule on each sub-cell (the mean of its 2^Dz
    corners: above the integral where the posterior's tail is convex, i.e. beyond about one sd of its mode)."""
    dz = centres.shape[1]
    offs = torch.arange(r + 1, dtype=torch.float64) / r - 0.5  # the corner lattice of one cell
    mids = (torch.arange(r, dtype=torch.float64) + 0.5) / r - 0.5
    lattice = torch.stack([g.reshape(-1) for g in torch.meshgrid(*([offs] * dz), indexing="ij")], -1) * h
    subs = torch.stack([g.reshape(-1) for g in torch.meshgrid(*([mids] * dz), indexing="ij")], -1) * h
    eps = 1e-9 * h
    log_vol = float(torch.log(h / r).sum())
    per_cell = (r + 1) ** dz
    cells_chunk = max(1, DEFAULT_CHUNK // per_cell)
    if mask is not None:
        mask = torch.as_tensor(mask).to(device=x.device, dtype=x.dtype)
    x_chunk = DEFAULT_X_CHUNK if kind != "generic" else max(1, (1 << 22) // max(1, cells_chunk * per_cell * x.shape[1]))
    out = torch.full((x.shape[0],), -math.inf, dtype=torch.float64, device=x.device)
    for i in range(0, centres.shape[0], cells_chunk):
        c = centres[i : i + cells_chunk]
        sub_centres = c[:, None, :] + subs[None]  # (cells, r^Dz, Dz)
        half = h / (2 * r)
        within = ((sub_centres - half >= box[:, 0] - eps) & (sub_centres + half <= box[:, 1] + eps)).all(-1)
        keep = (~within).to(x.device)  # (cells, r^Dz)
        z = (c[:, None, :] + lattice[None]).reshape(-1, dz).to(device=x.device, dtype=x.dtype)
        tables = _decode(model, kind, z)
        lp = model.log_prior(z)
        for a in range(0, x.shape[0], x_chunk):
            b = min(x.shape[0], a + x_chunk)
            lj = (_log_lik_block(model, kind, tables, z, x[a:b], _mask_rows(mask, a, b)) + lp).double()
            lj = lj.reshape(b - a, c.shape[0], *([r + 1] * dz))
            if dz == 2:
                corners = [lj[..., :-1, :-1], lj[..., 1:, :-1], lj[..., :-1, 1:], lj[..., 1:, 1:]]
            else:
                corners = [lj[..., :-1], lj[..., 1:]]
            sub = torch.logsumexp(torch.stack(corners, -1), -1) - math.log(len(corners))  # (b, cells, r[, r])
            sub = sub.reshape(b - a, c.shape[0], -1).masked_fill(~keep, -math.inf)
            out[a:b] = torch.logaddexp(out[a:b], torch.logsumexp(sub.reshape(b - a, -1), -1) + log_vol)
    return out


def _axes(box: torch.Tensor, n: int) -> list[torch.Tensor]:
    return [
        box[j, 0] + (torch.arange(n, dtype=torch.float64) + 0.5) * (box[j, 1] - box[j, 0]) / n
        for j in range(box.shape[0])
    ]


def _grid_points(box: torch.Tensor, n: int) -> torch.Tensor:
    axes = _axes(box, n)
    if len(axes) == 1:
        return axes[0].unsqueeze(-1)
    a, b = torch.meshgrid(axes[0], axes[1], indexing="ij")
    return torch.stack([a.reshape(-1), b.reshape(-1)], -1)


def decoder_kind(model: LatentModel) -> str:
    if hasattr(model, "bernoulli_logits"):
        return "bernoulli"
    if hasattr(model, "gaussian_params"):
        return "gaussian"
    return "generic"


@torch.no_grad()
def _decode(model: LatentModel, kind: str, z: torch.Tensor) -> dict[str, torch.Tensor]:
    """Likelihood tables for grid points z (g, Dz); ``kind`` is ``decoder_kind(model)``."""
    if kind == "bernoulli":
        logits = cast(BernoulliDecoderModel, model).bernoulli_logits(z)
        c = (-torch.sum(F.softplus(logits), -1, dtype=torch.float64)).to(logits.dtype)
        return {"L": logits.contiguous(), "c": c}
    if kind == "gaussian":
        mean, log_var = cast(GaussianDecoderModel, model).gaussian_params(z)
        mean, log_var = torch.broadcast_tensors(mean, log_var)  # type: ignore[no-untyped-call]  # torch: no annotations
        prec = torch.exp(-log_var)
        cd = -0.5 * (mean.pow(2) * prec + log_var + LOG_2PI)
        return {"T": torch.cat([-0.5 * prec, mean * prec], -1).contiguous(), "Cd": cd, "c": cd.sum(-1)}
    return {}


def _slice(tables: dict[str, torch.Tensor], i: int, j: int) -> dict[str, torch.Tensor]:
    return {k: v[i:j] for k, v in tables.items()}


def _log_lik_block(
    model: LatentModel,
    kind: str,
    tables: dict[str, torch.Tensor],
    z: torch.Tensor,
    x: torch.Tensor,
    mask: torch.Tensor | None,
) -> torch.Tensor:
    """log p(x_b | z_g) for x (B, D) and this block's tables / points z (g, Dz) -> (B, g)."""
    if kind == "bernoulli":
        L = tables["L"]
        x = x.to(L.dtype)
        if mask is None:
            return x @ L.T + tables["c"]
        m = mask.to(L.dtype)
        S = tables["S"] if "S" in tables else F.logsigmoid(-L)
        return (m * x) @ L.T + m @ S.T
    if kind == "gaussian":
        T = tables["T"]
        x = x.to(T.dtype)
        if mask is None:
            return torch.cat([x * x, x], -1) @ T.T + tables["c"]
        m = mask.to(T.dtype)
        return torch.cat([m * x * x, m * x], -1) @ T.T + m @ tables["Cd"].T
    if mask is not None:
        raise ModelInputError("masked likelihoods need a model with bernoulli_logits or gaussian_params")
    zz = z.unsqueeze(1).expand(z.shape[0], x.shape[0], z.shape[-1])
    with torch.no_grad():
        return model.log_likelihood(x, zz).T


# ------------------------------------------------------------------------------------------------ the grid
@dataclass(eq=False)
class LatentGrid:
    """A midpoint grid over a box in a 1-D or 2-D latent space, with the decoder evaluated on it once.

    ``points`` (G, Dz) in 'ij' order (point index i * n + j is (z1_i, z2_j)); ``log_prior`` (G,); ``log_cell``:
    log of the cell volume; ``kind``: 'bernoulli' | 'gaussian' | 'generic'; ``tables``: decoded tables (empty when
    built with ``store=False``: then each chunk is decoded again on use, bounding memory for very fine grids).
    """

    model: LatentModel
    box: torch.Tensor
    size: int
    points: torch.Tensor
    log_prior: torch.Tensor
    log_cell: float
    kind: str
    tables: dict[str, torch.Tensor] = field(default_factory=dict)
    stored: bool = True
    chunk: int = DEFAULT_CHUNK

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        model: LatentModel,
        size: int = 256,
        box: torch.Tensor | None = None,
        x: XLike | None = None,
        store: bool = True,
        chunk: int = DEFAULT_CHUNK,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> LatentGrid:
        """Decode the model on a ``size``^Dz midpoint grid. ``box`` (Dz, 2) or from ``choose_box(model, x)``.

        ``store``: keep the decoder's tables (fast reuse) when they fit in ``MAX_STORED_TABLE_BYTES``; otherwise, and
        with ``store=False``, each chunk is decoded again on use (``grid.stored`` says which)."""
        dz = _check_dim(model)
        if size < 1:
            raise ModelInputError(f"grid size must be positive; got {size}")
        if size**dz > MAX_GRID_POINTS:  # refused before the points are allocated
            raise ModelInputError(
                f"a {size}^{dz} grid has {size**dz:,} points, more than the {MAX_GRID_POINTS:,} a "
                "grid may hold; use a smaller size, or log_marginal_adaptive, which refines only "
                "where the posterior has mass"
            )
        box = choose_box(model, x) if box is None else torch.as_tensor(box, dtype=torch.float64).reshape(dz, 2)
        dev, dt = _model_device_dtype(model, device, dtype)
        pts64 = _grid_points(box, size)
        pts = pts64.to(device=dev, dtype=dt)
        log_prior = model.log_prior(pts)
        log_cell = float(torch.log((box[:, 1] - box[:, 0]) / size).sum())
        kind = decoder_kind(model)
        tables: dict[str, torch.Tensor] = {}
        if store and kind != "generic":
            first = _decode(model, kind, pts[:chunk])
            per_point = sum(t.element_size() * t[0].numel() for t in first.values())
            # a grid whose tables would pass the budget is not stored but decoded chunk by chunk on use (bounded
            # memory, slower), decided before anything more is allocated
            store = per_point * pts.shape[0] <= MAX_STORED_TABLE_BYTES
        if store and kind != "generic":
            parts = [first, *(_decode(model, kind, pts[i : i + chunk]) for i in range(chunk, pts.shape[0], chunk))]
            tables = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        return cls(
            model=model,
            box=box,
            size=size,
            points=pts,
            log_prior=log_prior,
            log_cell=log_cell,
            kind=kind,
            tables=tables,
            stored=store,
            chunk=chunk,
        )

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.size,) * self.points.shape[-1]

    @property
    def axes(self) -> list[torch.Tensor]:
        """The cell centres along each axis (float64)."""
        return _axes(self.box, self.size)

    def reshape(self, values: torch.Tensor) -> torch.Tensor:
        """(..., G) -> (..., n) or (..., n, n) with [i, j] at (z1_i, z2_j)."""
        return values.reshape(*values.shape[:-1], *self.shape)

    def prepare(self, x: XLike) -> torch.Tensor:
        """x checked (``lvm.estimators.validation.check_x``) as (B, D) on the grid's device and dtype."""
        return _as_x(self.model, x, self.points.dtype, self.points.device)

    def blocks(self) -> Iterator[tuple[int, int, dict[str, torch.Tensor]]]:
        """Iterate (start, stop, tables) over chunks of grid points."""
        g = self.points.shape[0]
        for i in range(0, g, self.chunk):
            j = min(g, i + self.chunk)
            if self.stored:
                yield i, j, _slice(self.tables, i, j)
            else:
                yield i, j, _decode(self.model, self.kind, self.points[i:j])

    def log_joint_block(
        self, x: torch.Tensor, i: int, j: int, tables: dict[str, torch.Tensor], mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """log p(x_b, z_g) for grid points i..j -> (B, j - i)."""
        return _log_lik_block(self.model, self.kind, tables, self.points[i:j], x, mask) + self.log_prior[i:j]

    def log_joint(self, x: XLike, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The whole table log p(x_b, z_g) -> (B, G) (for small batches)."""
        x = self.prepare(x)
        return torch.cat([self.log_joint_block(x, i, j, t, mask) for i, j, t in self.blocks()], -1)


def _mask_rows(mask: torch.Tensor | None, i: int, j: int) -> torch.Tensor | None:
    if mask is None or mask.dim() == 1:
        return mask
    return mask[i:j]


@torch.no_grad()
def log_marginal(
    grid: LatentGrid, x: XLike, mask: torch.Tensor | None = None, x_chunk: int = DEFAULT_X_CHUNK
) -> torch.Tensor:
    """log p(x) (B,) by the midpoint rule on ``grid``: log V + logsumexp_g log p(x, z_g), streamed over chunks.

    ``mask`` (D,) or (B, D), 1 = observed: the marginal likelihood of the observed pixels only.
    """
    x = grid.prepare(x)
    if mask is not None:
        mask = torch.as_tensor(mask).to(device=x.device, dtype=x.dtype)
    out = torch.full((x.shape[0],), -math.inf, dtype=x.dtype, device=x.device)
    for i, j, t in grid.blocks():
        for a in range(0, x.shape[0], x_chunk):
            b = min(x.shape[0], a + x_chunk)
            lj = grid.log_joint_block(x[a:b], i, j, t, _mask_rows(mask, a, b))
            out[a:b] = torch.logaddexp(out[a:b], torch.logsumexp(lj, -1))
    return out + grid.log_cell


@torch.no_grad()
def posterior_on_grid(grid: LatentGrid, x: XLike, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Normalised log posterior mass per cell, log P(cell g | x) (B, G); logsumexp over g is 0.

    The log density at the cell centre is this minus ``grid.log_cell``; ``grid.reshape`` gives the picture.
    """
    lj = grid.log_joint(x, mask)
    return lj - torch.logsumexp(lj, -1, keepdim=True)


@torch.no_grad()
def posterior_moments(
    grid: LatentGrid, x: XLike, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean (B, Dz) and covariance (B, Dz, Dz) of p(z|x) on the grid (a Gaussian summary, e.g. for a
    moment-matched proposal)."""
    p = posterior_on_grid(grid, x, mask).exp()
    z = grid.points.to(p.dtype)
    mean = p @ z
    second = torch.einsum("bg,gi,gj->bij", p, z, z)
    return mean, second - mean.unsqueeze(-1) * mean.unsqueeze(-2)


def local_box(
    grid: LatentGrid,
    x: XLike,
    n_sigma: float = 5.0,
    min_half_width: float | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """A box (Dz, 2) around one x's posterior found on a (coarse) grid: mean +- n_sigma posterior sds per axis,
    at least two coarse cells wide each side, clipped to the grid's box: a Gaussian summary of where the posterior
    lives (``local_posterior`` draws the posterior itself, coarse to fine)."""
    mean, cov = posterior_moments(grid, grid.prepare(x)[:1], mask)
    sd = torch.sqrt(torch.diagonal(cov[0], dim1=-2, dim2=-1).clamp_min(0)).double().cpu()
    cell = (grid.box[:, 1] - grid.box[:, 0]) / grid.size
    half = torch.maximum(n_sigma * sd, 2 * cell if min_half_width is None else torch.full_like(sd, min_half_width))
    m = mean[0].double().cpu()
    lo = torch.maximum(m - half, grid.box[:, 0])
    hi = torch.minimum(m + half, grid.box[:, 1])
    return torch.stack([lo, hi], -1)


@torch.no_grad()
def _q_terms(
    grid: LatentGrid, x: XLike, q: Distribution
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    x = grid.prepare(x)
    bsz = x.shape[0]
    check_q(grid.model, q, bsz)
    lpx = torch.full((bsz,), -math.inf, dtype=x.dtype, device=x.device)
    s_joint = torch.zeros(bsz, dtype=torch.float64, device=x.device)  # sum_g w_g (log p(x,z_g) - log q(z_g))
    s_mass = torch.zeros_like(s_joint)
    s_logq = torch.zeros_like(s_joint)
    for i, j, t in grid.blocks():
        lj = grid.log_joint_block(x, i, j, t)  # (B, g)
        z = grid.points[i:j].unsqueeze(1)  # (g, 1, Dz)
        lq = q.log_prob(z.to(q.mean.dtype)).T.to(lj.dtype)  # (B, g)
        w = torch.exp(lq + grid.log_cell)
        ok = w > 0
        s_joint += torch.where(ok, w * (lj - lq), 0.0).double().sum(-1)
        s_logq += torch.where(ok, w * lq, 0.0).double().sum(-1)
        s_mass += w.double().sum(-1)
        lpx = torch.logaddexp(lpx, torch.logsumexp(lj, -1))
    lpx = lpx + grid.log_cell
    return lpx.double(), s_joint, s_logq, s_mass


def elbo_quadrature(grid: LatentGrid, x: XLike, q: Distribution) -> torch.Tensor:
    """ELBO(q) = int q(z) [log p(x, z) - log q(z)] dz by the midpoint rule (B,), for any q with ``log_prob``.

    Accurate when q's bulk lies in the box and q is several cells wide.
    """
    _, s_joint, _, _ = _q_terms(grid, x, q)
    return s_joint.to(grid.points.dtype)


def kl_q_posterior(grid: LatentGrid, x: XLike, q: Distribution) -> torch.Tensor:
    """KL(q || p(z|x)) = int q(z) [log q(z) - log p(x, z) + log p(x)] dz by the midpoint rule (B,).

    Equals log p(x) - ELBO(q) when q's mass on the grid is 1; an independent check of that identity.
    """
    lpx, s_joint, _, s_mass = _q_terms(grid, x, q)
    return (s_mass * lpx - s_joint).to(grid.points.dtype)


# ------------------------------------------------------------------------------------------------ coarse to fine
@torch.no_grad()
def coarse_support(log_joint: torch.Tensor, shape: tuple[int, ...], threshold: float, dilate: int = 0) -> torch.Tensor:
    """Step 1 of the coarse-to-fine scheme (module docstring): log p(x_b, z_g) on a coarse grid (B, G) -> bool
    (B, *shape), True on the cells within ``threshold`` nats of x_b's best cell, dilated by ``dilate`` cells (a
    (2 dilate + 1)^Dz neighbourhood, clipped to the grid)."""
    b = log_joint.shape[0]
    sel = log_joint >= log_joint.max(-1, keepdim=True).values - threshold
    if dilate > 0:
        pool = F.max_pool2d if len(shape) == 2 else F.max_pool1d
        s = pool(sel.to(torch.float32).reshape(b, 1, *shape), 2 * dilate + 1, stride=1, padding=dilate)
        return s.reshape(b, *shape) > 0
    return sel.reshape(b, *shape)


@dataclass(frozen=True)
class LocalPosterior:
    """p(z|x) for one x, coarse to fine: ``grid``, the fine ``LatentGrid`` over ``box`` (Dz, 2), the support's
    bounding box; ``log_joint`` (G_fine,) log p(x, z_g) on it; ``coarse_log_joint`` (G_coarse,) on the coarse grid;
    ``log_px``: the fine midpoint sum over ``box`` plus the coarse one over the cells outside it;
    ``outside_mass``: the share of p(x) from those outside cells."""

    grid: LatentGrid
    box: torch.Tensor
    log_joint: torch.Tensor
    coarse_log_joint: torch.Tensor
    log_px: float
    outside_mass: float

    @property
    def log_density(self) -> torch.Tensor:
        """log p(z_g|x) = log p(x, z_g) - log p(x) at the fine grid's points (G_fine,)."""
        return self.log_joint - self.log_px


@torch.no_grad()
def local_posterior(
    coarse: LatentGrid, x: XLike, size: int = 48, threshold: float = 16.0, margin: int = 1
) -> LocalPosterior:
    """The posterior of one x on a ``size``^Dz fine grid over its support (2b in the module docstring).

    The support is ``coarse_support(threshold)``; the fine box is its bounding box widened by ``margin`` coarse
    cells, so its edges lie on coarse cell boundaries and every coarse cell is inside or outside it:
    p(x) ~= V_f sum_{fine} p(x, z_f) + V_c sum_{coarse cells outside} p(x, z_c).
    """
    xt = coarse.prepare(x)[:1]
    lj = coarse.log_joint(xt)[0].double()
    keep = coarse_support(lj[None], coarse.shape, threshold)[0]
    idx = torch.nonzero(keep)  # (S, Dz)
    box = coarse.box.to(torch.float64)
    h = (box[:, 1] - box[:, 0]) / coarse.size
    lo = box[:, 0] + (idx.min(0).values - margin) * h
    hi = box[:, 0] + (idx.max(0).values + 1 + margin) * h
    fbox = torch.stack([lo, hi], -1)
    fine = LatentGrid.build(coarse.model, size=size, box=fbox)
    flj = fine.log_joint(xt)[0].double()
    log_fine = torch.logsumexp(flj, 0) + fine.log_cell
    inside = torch.ones((), dtype=torch.bool)
    for j, c in enumerate(coarse.axes):
        c = c.to(torch.float64)
        shape = [1] * len(coarse.shape)
        shape[j] = -1
        inside = inside & ((c > lo[j]) & (c < hi[j])).reshape(shape)
    log_out = torch.logsumexp(torch.where(inside.reshape(-1), -math.inf, lj), 0) + coarse.log_cell
    log_px = float(torch.logaddexp(log_fine, log_out))
    outside = float(torch.exp(log_out - log_px)) if torch.isfinite(log_out) else 0.0
    return LocalPosterior(grid=fine, box=fbox, log_joint=flj, coarse_log_joint=lj, log_px=log_px, outside_mass=outside)


# ------------------------------------------------------------------------------------------------ adaptive
@dataclass(frozen=True)
class AdaptiveResult:
    """``log_px`` (N,); ``box`` (Dz, 2); fine grid ``size`` per axis; ``points_per_x``: mean number of fine grid
    points summed per x; ``fraction``: the share of the dense (N x size^Dz) table actually computed;
    ``decoded_fraction``: the share of fine grid points decoded."""

    log_px: torch.Tensor
    box: torch.Tensor
    size: int
    block: int
    tile: int
    points_per_x: float
    fraction: float
    decoded_fraction: float


@torch.no_grad()
def log_marginal_adaptive(
    model: LatentModel,
    x: XLike,
    size: int = 256,
    block: int = 8,
    box: torch.Tensor | None = None,
    threshold: float = 30.0,
    dilate: int = 1,
    tile: int = 4,
    x_chunk: int = DEFAULT_X_CHUNK,
    mask: torch.Tensor | None = None,
) -> AdaptiveResult:
    """log p(x) on a ``size``^Dz fine midpoint grid, summed per x only where its posterior lives (coarse-to-fine).

    1. A coarse grid with one point at the centre of each block of ``block``^Dz fine cells finds each x's support
       (``coarse_support``): the blocks whose coarse log-joint is within ``threshold`` nats of that x's best block,
       dilated by ``dilate`` blocks.
    2. The fine grid is cut into tiles of ``tile``^Dz blocks. Each tile that some x needs is decoded once and
       summed, in one (n_x x D) @ (D x points) product, for exactly the x's whose support touches it.
    Per x this is the fine-grid midpoint sum over a superset of its support, i.e. the dense sum of
    ``LatentGrid.build(model, size, box)`` minus blocks whose mass is below e^-threshold of the total (as far as
    the coarse grid resolves them); ``refinement_report`` and the tests check it against the dense grid.
    ``mask`` (D,) or (N, D), 1 = observed: log p(x_O) of the observed pixels only (as ``log_marginal``).
    """
    dz = _check_dim(model)
    if size % block != 0:
        raise ModelInputError(f"grid size {size} must be a multiple of the block size {block}")
    box = choose_box(model, x) if box is None else torch.as_tensor(box, dtype=torch.float64).reshape(dz, 2)
    nb = size // block
    coarse = LatentGrid.build(model, size=nb, box=box, store=True)
    xx = coarse.prepare(x)
    n = xx.shape[0]
    if mask is not None:
        mask = torch.as_tensor(mask).to(device=xx.device, dtype=xx.dtype)
    sel = torch.zeros((n, *coarse.shape), dtype=torch.bool, device=xx.device)
    for a in range(0, n, x_chunk):
        b = min(n, a + x_chunk)
        lj = coarse.log_joint(xx[a:b], _mask_rows(mask, a, b))
        sel[a:b] = coarse_support(lj, coarse.shape, threshold, dilate)
    log_px, work, decoded = log_marginal_on_support(model, xx, sel, box, size, tile=tile, x_chunk=x_chunk, mask=mask)
    total = size**dz
    return AdaptiveResult(
        log_px=log_px,
        box=box,
        size=size,
        block=block,
        tile=tile,
        points_per_x=work / n,
        fraction=work / (n * total),
        decoded_fraction=decoded / total,
    )


@torch.no_grad()
def log_marginal_on_support(
    model: LatentModel,
    x: XLike,
    support: torch.Tensor,
    box: torch.Tensor,
    size: int,
    tile: int = 4,
    x_chunk: int = DEFAULT_X_CHUNK,
    mask: torch.Tensor | None = None,
    decode_chunk: int = DEFAULT_CHUNK,
) -> tuple[torch.Tensor, int, int]:
    """Step 2a of the coarse-to-fine scheme: log p(x_b) (B,) by the midpoint rule on the ``size``^Dz fine grid
    over ``box``, summed per x only over the fine cells inside its ``support`` (B, *coarse shape) of coarse cells
    (each coarse cell a block of (size / coarse size)^Dz fine cells).

    The support is pooled to tiles of ``tile``^Dz coarse cells; the fine points of the tiles some x needs are
    decoded in batches of about ``decode_chunk`` points, and each tile is summed, in one (n_x x D) @ (D x points)
    product, for exactly the x's whose support touches it. Returns ``(log_px, work, decoded)``: the number of
    (x, fine point) terms summed and of fine points decoded.
    """
    dz = _check_dim(model)
    x = check_x(model, x)
    n = x.shape[0]
    if support.dim() != dz + 1 or support.shape[0] != n or len(set(support.shape[1:])) != 1:
        raise ModelInputError(
            f"support must be a (batch, n{', n' if dz == 2 else ''}) boolean array of coarse cells, one row per x "
            f"({n}); got shape {tuple(support.shape)}"
        )
    nb = support.shape[-1]
    block = size // nb
    box = torch.as_tensor(box, dtype=torch.float64).reshape(dz, 2)
    dev, dt = x.device, x.dtype
    pool = F.max_pool2d if dz == 2 else F.max_pool1d
    s = pool(support.to(torch.float32).reshape(n, 1, *support.shape[1:]), tile, stride=tile, ceil_mode=True)
    nt = s.shape[-1]
    tile_sel = (s.reshape(n, -1) > 0).T.contiguous()  # (tiles, N)
    active = torch.nonzero(tile_sel.any(-1)).flatten().tolist()

    h = (box[:, 1] - box[:, 0]) / size
    log_cell = float(torch.log(h).sum())
    kind = decoder_kind(model)
    span = tile * block

    def tile_points(t: int) -> torch.Tensor:
        ti = (t // nt, t % nt) if dz == 2 else (t,)
        ranges = [torch.arange(i * span, min(size, (i + 1) * span), dtype=torch.float64) for i in ti]
        if dz == 2:
            ga, gb = torch.meshgrid(ranges[0], ranges[1], indexing="ij")
            fidx = torch.stack([ga.reshape(-1), gb.reshape(-1)], -1)
        else:
            fidx = ranges[0].unsqueeze(-1)
        return (box[:, 0] + (fidx + 0.5) * h).to(device=dev, dtype=dt)

    idx_parts: list[torch.Tensor] = []
    val_parts: list[torch.Tensor] = []
    work = decoded = 0
    start = 0
    while start < len(active):
        group: list[int] = []  # consecutive tiles, decoded together
        pts_list: list[torch.Tensor] = []
        count = 0
        while start < len(active) and (count == 0 or count < decode_chunk):
            p = tile_points(active[start])
            group.append(active[start])
            pts_list.append(p)
            count += p.shape[0]
            start += 1
        pts_all = torch.cat(pts_list)
        if mask is not None and kind == "bernoulli":  # the masked tables: l and log sigma(-l), once per batch
            L = cast(BernoulliDecoderModel, model).bernoulli_logits(pts_all).contiguous()
            tables_all = {"L": L, "S": F.logsigmoid(-L)}
        else:
            tables_all = _decode(model, kind, pts_all)
        lp_all = model.log_prior(pts_all)
        decoded += count
        need = tile_sel[group]  # (tiles in group, N)
        users = torch.nonzero(need.any(0)).flatten()
        exact = sum(p.shape[0] * int(need[g].sum()) for g, p in enumerate(pts_list))
        if count * users.numel() <= 1.1 * exact:
            # (nearly) the same x's need every tile of the group (one x, say): one product for the group, the
            # points of tiles an x does not need masked out (the same sum as tile by tile, in far fewer calls)
            tile_of = torch.repeat_interleave(
                torch.arange(len(group), device=dev), torch.tensor([p.shape[0] for p in pts_list], device=dev)
            )
            for a in range(0, users.numel(), x_chunk):
                xa = users[a : a + x_chunk]
                m = mask if mask is None or mask.dim() == 1 else mask.index_select(0, xa)
                lj = _log_lik_block(model, kind, tables_all, pts_all, x.index_select(0, xa), m) + lp_all
                keep = need[:, xa].T[:, tile_of]  # (x's, points)
                idx_parts.append(xa)
                val_parts.append(torch.logsumexp(lj.masked_fill(~keep, -math.inf), -1))
            work += count * users.numel()
            continue
        off = 0
        for t, pts in zip(group, pts_list, strict=False):
            i, j = off, off + pts.shape[0]
            off = j
            tables = _slice(tables_all, i, j)
            xi = torch.nonzero(tile_sel[t]).flatten()
            work += pts.shape[0] * xi.numel()
            for a in range(0, xi.numel(), x_chunk):
                xa = xi[a : a + x_chunk]
                m = mask if mask is None or mask.dim() == 1 else mask.index_select(0, xa)
                lj = _log_lik_block(model, kind, tables, pts, x.index_select(0, xa), m) + lp_all[i:j]
                idx_parts.append(xa)
                val_parts.append(torch.logsumexp(lj, -1))
    idx = torch.cat(idx_parts)
    val = torch.cat(val_parts)
    mx = torch.full((n,), -math.inf, dtype=val.dtype, device=dev).scatter_reduce(0, idx, val, "amax")
    tot = torch.zeros(n, dtype=val.dtype, device=dev).index_add(0, idx, torch.exp(val - mx[idx]))
    return mx + torch.log(tot) + log_cell, work, decoded


# ------------------------------------------------------------------------------------------------ refinement
@dataclass(frozen=True)
class RefinementReport:
    """The two errors of quadrature, in nats. The grid's: log p(x) per grid size, ``log_px[i]`` (B,) for
    ``sizes[i]``, and ``max_change``/``mean_change``, the max and mean |log p_finest - log p_next finest| over x.
    The box's: ``box_errors`` (B,) = log(1 + M_out / M_box) (``box_error``: the mass of p(z|x) outside ``box``),
    ``box_error``/``mean_box_error`` its max and mean over x. ``total_error``: the sum of the two maxima."""

    sizes: tuple[int, ...]
    log_px: tuple[torch.Tensor, ...]
    mean_log_px: tuple[float, ...]
    max_change: float
    mean_change: float
    box: torch.Tensor | None = None
    box_errors: torch.Tensor | None = None
    box_error: float = float("nan")
    mean_box_error: float = float("nan")

    @property
    def total_error(self) -> float:
        """max grid change + max box error: what the finest value may be off by (as far as both resolve it)."""
        return self.max_change + self.box_error

    def summary(self) -> str:
        """One line for a report: both errors."""
        return (
            f"grid error (refinement {self.sizes[-2] if len(self.sizes) > 1 else '-'} -> {self.sizes[-1]}) "
            f"{self.max_change:.1e} nats, box error {self.box_error:.1e} nats (max over x)"
        )


def refinement_report(
    model: LatentModel,
    x: XLike,
    sizes: tuple[int, ...] = (128, 256, 512),
    box: torch.Tensor | None = None,
    method: str = "adaptive",
    **kwargs: Any,
) -> RefinementReport:
    """log p(x) on successively finer grids over the same box; the change when refining is the grid's error, and
    ``box_error`` (the posterior mass outside the box, measured against the finest value) is the box's.

    ``box``: default ``choose_box(model, x)`` (from where the posterior's mass is). ``method``: 'adaptive'
    (``log_marginal_adaptive``, sizes must be multiples of its block) or 'dense' (the full grid, decoded chunk by
    chunk so memory stays bounded).
    """
    dz = _check_dim(model)
    dev, dt = _model_device_dtype(model)
    xt = _as_x(model, x, dt, dev)
    mask = kwargs.get("mask")
    if box is None:
        box = choose_box(model, xt, mask=mask)
    box = torch.as_tensor(box, dtype=torch.float64).reshape(dz, 2)
    out: list[torch.Tensor] = []
    for s in sizes:
        if method == "adaptive":
            out.append(log_marginal_adaptive(model, xt, size=s, box=box, **kwargs).log_px)
        elif method == "dense":
            out.append(log_marginal(LatentGrid.build(model, size=s, box=box, store=False), xt, mask=mask))
        else:
            raise ModelInputError(f"method must be 'adaptive' or 'dense'; got {method!r}")
    if len(out) >= 2:
        d = (out[-1] - out[-2]).abs()
        mx, mean = float(d.max()), float(d.mean())
    else:
        mx = mean = float("nan")
    berr = box_error(model, xt, box, log_px=out[-1] if out else None, mask=mask)
    return RefinementReport(
        sizes=tuple(sizes),
        log_px=tuple(out),
        mean_log_px=tuple(float(v.mean()) for v in out),
        max_change=mx,
        mean_change=mean,
        box=box,
        box_errors=berr,
        box_error=float(berr.max()),
        mean_box_error=float(berr.mean()),
    )


# ------------------------------------------------------------------------------------------------ Gauss-Hermite
@functools.lru_cache(maxsize=32)
def _gh_nodes_cpu(n: int, dz: int) -> tuple[torch.Tensor, torch.Tensor]:
    t, w = np.polynomial.hermite.hermgauss(n)
    u = torch.tensor(t * math.sqrt(2.0), dtype=torch.float64)
    wu = torch.tensor(w / math.sqrt(math.pi), dtype=torch.float64)
    grids = torch.meshgrid(*([u] * dz), indexing="ij")
    wgrids = torch.meshgrid(*([wu] * dz), indexing="ij")
    nodes = torch.stack([g.reshape(-1) for g in grids], -1)
    weights = torch.stack([g.reshape(-1) for g in wgrids], -1).prod(-1)
    return nodes, weights


def gauss_hermite_nodes(
    n: int, dz: int, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tensor-product Gauss-Hermite nodes u (n^dz, dz) and weights w (n^dz,) for E_{u ~ N(0, I)}[f(u)] ~= sum w f(u).

    From the physicists' rule int e^{-t^2} f(t) dt ~= sum w_i f(t_i): u = sqrt(2) t, w = w_i / sqrt(pi).
    Exact for polynomials of degree <= 2n - 1 in each coordinate.
    """
    nodes, weights = _gh_nodes_cpu(int(n), int(dz))
    return nodes.to(device=device, dtype=dtype), weights.to(device=device, dtype=dtype)


@overload
def elbo_gauss_hermite(
    model: LatentModel,
    x: XLike,
    mean: torch.Tensor,
    scale_tril: torch.Tensor,
    n: int = 16,
    return_parts: Literal[False] = False,
) -> torch.Tensor: ...


@overload
def elbo_gauss_hermite(
    model: LatentModel,
    x: XLike,
    mean: torch.Tensor,
    scale_tril: torch.Tensor,
    n: int = 16,
    *,
    return_parts: Literal[True],
) -> dict[str, torch.Tensor]: ...


def elbo_gauss_hermite(
    model: LatentModel,
    x: XLike,
    mean: torch.Tensor,
    scale_tril: torch.Tensor,
    n: int = 16,
    return_parts: bool = False,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """ELBO of q = N(mean, L L^T) by Gauss-Hermite quadrature in q's own coordinates (differentiable).

    ELBO = E_q[log p(x|z)] + E_q[log p(z)] + H(q), with z = mean + L u, u ~ N(0, I) on n^Dz tensor-product nodes
    for the first term; for a standard normal prior E_q[log p(z)] = -(|mean|^2 + ||L||_F^2 + Dz log 2 pi) / 2
    (else Gauss-Hermite too); H(q) = Dz (1 + log 2 pi) / 2 + sum_j log |L_jj|.
    Shapes: x (D,) or (B, D); mean (Dz,) or (B, Dz); scale_tril (Dz, Dz) or (B, Dz, Dz). Returns (B,) or a scalar
    (or, with ``return_parts``, a dict of 'elbo', 'expected_log_lik', 'expected_log_prior', 'entropy').
    Then KL(q || p(z|x)) = log p(x) - ELBO.
    """
    x2 = check_x(model, x, allow_single=True)
    unbatched = _ndim(x) == 1
    m0, L0 = check_gaussian_params(model, mean, scale_tril, x2.shape[0])
    return _elbo_gauss_hermite(model, x2, m0, L0, n, unbatched, return_parts)


def _ndim(x: XLike) -> int:
    return x.dim() if isinstance(x, torch.Tensor) else int(np.ndim(x))


def _elbo_gauss_hermite(
    model: LatentModel,
    x2: torch.Tensor,
    mean: torch.Tensor,
    scale_tril: torch.Tensor,
    n: int,
    unbatched: bool,
    return_parts: bool,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """``elbo_gauss_hermite`` on checked inputs: x2 (B, D), mean (1 or B, Dz), scale_tril (1 or B, Dz, Dz)."""
    m = mean.expand(x2.shape[0], -1)
    L = scale_tril.expand(x2.shape[0], -1, -1)
    dz = m.shape[-1]
    if n**dz > 2_000_000:
        raise ModelInputError(f"{n}^{dz} Gauss-Hermite nodes are too many; use fewer nodes or Monte Carlo")
    u, w = gauss_hermite_nodes(n, dz, dtype=m.dtype, device=m.device)
    z = m.unsqueeze(0) + torch.einsum("bij,nj->nbi", L, u)  # (M, B, Dz)
    ll = model_log_likelihood(model, x2.to(m.dtype), z)  # (M, B)
    w = w.to(ll.dtype)
    ell = (w.unsqueeze(-1) * ll).sum(0)
    if prior_is_standard_normal(model):
        elp = -0.5 * (m.pow(2).sum(-1) + L.pow(2).sum((-2, -1)) + dz * LOG_2PI)
    else:
        elp = (w.unsqueeze(-1) * model.log_prior(z)).sum(0)
    ent = 0.5 * dz * (1.0 + LOG_2PI) + torch.log(torch.diagonal(L, dim1=-2, dim2=-1).abs()).sum(-1)
    elbo = ell + elp.to(ell.dtype) + ent.to(ell.dtype)
    if unbatched:
        elbo, ell, elp, ent = elbo[0], ell[0], elp[0], ent[0]
    if return_parts:
        return {"elbo": elbo, "expected_log_lik": ell, "expected_log_prior": elp, "entropy": ent}
    return elbo
