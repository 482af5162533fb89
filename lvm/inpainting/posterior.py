"""Exact inpainting with a 2-D (or 1-D) latent model whose decoder factorises over pixels (Bernoulli logits).

Observe the pixels x_O (mask m, 1 = observed) of an image; the missing pixels x_M are unknown. Because
p(x|z) = prod_j p(x_j|z), the missing pixels integrate out of the likelihood exactly:

    p(x_O | z) = prod_{j in O} sigma(l_j(z))^{x_j} sigma(-l_j(z))^{1 - x_j}
    log p(x_O | z) = sum_j m_j x_j l_j(z) + sum_j m_j log sigma(-l_j(z))        (log sigma(l) = l + log sigma(-l))

On a midpoint grid z_1..z_G with cell volume V (``lvm.estimators.quadrature.LatentGrid``) everything exact is a
matrix-vector product with tables decoded once per grid (decoding is the expensive part: one decoder pass per grid
point, ~0.4 s for 64^2 points; an update then reads the tables only, so drawing stays interactive):

    a_g = L_g . (m * x) + S_g . m + log p(z_g),     L = l(z_g) (G x D),  S = log sigma(-L) (G x D)
    log p(x_O) = log V + logsumexp_g a_g
    P(cell g | x_O) = w_g = softmax(a)_g                          (the posterior p(z | x_O) as cell masses)
    p(x_j = 1 | x_O) = sum_g w_g sigma(l_j(z_g)) = (w @ Sig)_j     (Sig = sigma(L), the posterior predictive)

Sampled completions: g ~ Categorical(w) (z in that cell), then x_j ~ Bernoulli(sigma(l_j(z_g))) for the missing
pixels; observed pixels are kept. Observing every pixel gives the full-image posterior and log p(x).

Drawing changes a few pixels at a time, so an update is incremental where it can be: a is linear in (m * x, m), and
a stroke that changed the pixels J moves it by L_{:,J} . d(m * x)_J + S_{:,J} . dm_J, which reads |J| columns of the
tables instead of all D (the tables are kept transposed, D x G, so a column is contiguous; a is accumulated in
float64, so repeated updates do not drift). The predictive sums only the cells with w_g >= tol / G: the cells left
out hold less than ``tol`` of the posterior mass together, and sigma lies in [0, 1], so each p(x_j = 1 | x_O) is off
by less than ``tol`` = ``PREDICTIVE_TOLERANCE``.

``refined_log_p_obs`` checks the grid: it sums a ``factor``-times finer grid over the cells where the coarse
posterior has mass (the coarse-to-fine scheme of ``lvm.estimators.quadrature``); the change is the quadrature's
accuracy.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from lvm.errors import ModelInputError
from lvm.estimators.quadrature import LatentGrid, choose_box, coarse_support, log_marginal_on_support
from lvm.inpainting.masks import MaskLike, as_mask
from lvm.models.base import BernoulliDecoderModel
from lvm.threads import single_thread

# log p(x_obs) is off by ~0.5 nats on a 64^2 grid and ~0.04 on 128^2; an update of a new drawing takes 1.3 and
# 4.8-6.1 ms on them, of a drawing in progress 0.24 and 0.44 ms (lvm bench inpaint)
DEFAULT_SIZE = 128
SMALL_WORK = 16_000_000  # table entries below which an update runs on one thread (see ``one_thread``)
INCREMENTAL_PIXELS = 128  # changed pixels up to which log p(x_O, z_g) is updated rather than recomputed
PREDICTIVE_TOLERANCE = 1e-6  # the most any p(x_j = 1 | x_O) may lose to the cells the predictive leaves out


one_thread = single_thread  # see lvm.threads

# images as the inpainting functions take them: (D,) or (B, D) pixel values in [0, 1]
ImageLike: TypeAlias = torch.Tensor | npt.ArrayLike


@dataclass(eq=False)
class InpaintGrid:
    """The decoded grid: ``points`` (G, Dz), ``log_prior`` (G,), ``log_cell``, the tables L = the logits and
    S = log sigma(-L) in ``joint`` (``ObservedJoint``, transposed; ``logits`` and ``log_sig_neg`` are their G x D
    views), ``probs`` = sigma(L) (G x D), all float32, and ``c`` = S.sum(-1) (G,)."""

    model: BernoulliDecoderModel
    box: torch.Tensor
    size: int
    points: torch.Tensor
    log_prior: torch.Tensor
    log_cell: float
    joint: ObservedJoint
    probs: torch.Tensor
    c: torch.Tensor
    build_seconds: float = 0.0

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        model: BernoulliDecoderModel,
        size: int = DEFAULT_SIZE,
        box: torch.Tensor | None = None,
        x: ImageLike | None = None,
        device: torch.device | str | None = None,
    ) -> InpaintGrid:
        """Decode ``model`` on a ``size``^Dz midpoint grid over ``box`` (default: ``choose_box(model, x)``,
        the prior's bulk [-4, 4]^Dz widened to cover the encoder posteriors of ``x`` when given)."""
        import time

        if (
            not hasattr(model, "bernoulli_logits")
            or getattr(getattr(model, "config", None), "decoder", "bernoulli") != "bernoulli"
        ):
            raise ModelInputError(
                "inpainting needs a model with a pixel-factorised Bernoulli decoder "
                "(bernoulli_logits); this model's decoder is Gaussian"
            )
        t0 = time.perf_counter()
        if box is None:
            box = choose_box(model, None if x is None else torch.as_tensor(np.asarray(x, dtype=np.float32)))
        grid = LatentGrid.build(model, size=size, box=box, device=device, dtype=torch.float32)
        L = grid.tables["L"].float()
        joint = ObservedJoint.from_logits(L, grid.log_prior.float())
        return cls(
            model=model,
            box=grid.box,
            size=size,
            points=grid.points.float(),
            log_prior=grid.log_prior.float(),
            log_cell=grid.log_cell,
            joint=joint,
            probs=torch.sigmoid(L).contiguous(),
            c=joint.log_sig_neg_t.double().sum(0).float(),
            build_seconds=time.perf_counter() - t0,
        )

    # -- shapes ----------------------------------------------------------------------------------------------------
    @property
    def logits(self) -> torch.Tensor:
        """L (G x D), a view of ``joint.logits_t``."""
        return self.joint.logits_t.T

    @property
    def log_sig_neg(self) -> torch.Tensor:
        """S = log sigma(-L) (G x D), a view of ``joint.log_sig_neg_t``."""
        return self.joint.log_sig_neg_t.T

    @property
    def latent_dim(self) -> int:
        return int(self.points.shape[-1])

    @property
    def data_dim(self) -> int:
        return int(self.logits.shape[-1])

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.size,) * self.latent_dim

    @property
    def cell_width(self) -> torch.Tensor:
        return (self.box[:, 1] - self.box[:, 0]) / self.size

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.joint.logits_t, self.joint.log_sig_neg_t, self.probs))

    @property
    def device(self) -> torch.device:
        return self.joint.logits_t.device

    def reshape(self, values: torch.Tensor) -> torch.Tensor:
        """(..., G) -> (..., n, n) with [i, j] at (z1_i, z2_j)."""
        return values.reshape(*values.shape[:-1], *self.shape)

    # -- inputs ----------------------------------------------------------------------------------------------------
    def prepare(self, x: ImageLike, mask: MaskLike) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, m) as float32 tensors on the grid's device; x (D,) or (B, D) in [0, 1]; mask: preset or array."""
        x = torch.as_tensor(np.asarray(x.detach().cpu() if torch.is_tensor(x) else x, dtype=np.float32))
        if x.shape[-1] != self.data_dim or x.dim() not in (1, 2):
            raise ModelInputError(f"x must have shape ({self.data_dim},) or (B, {self.data_dim}); got {tuple(x.shape)}")
        if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise ModelInputError("pixel values must be finite and lie in [0, 1]")
        if (
            torch.is_tensor(mask)
            and mask.dim() == 2
            or (isinstance(mask, np.ndarray) and mask.ndim == 2 and mask.shape[-1] == self.data_dim)
        ):
            m = torch.as_tensor(np.asarray(mask.cpu() if torch.is_tensor(mask) else mask, dtype=np.float32))
        else:
            m = torch.as_tensor(as_mask(mask, self.data_dim).astype(np.float32))
        return x.to(self.device), m.to(self.device)

    # -- the exact computations ------------------------------------------------------------------------------------
    @torch.no_grad()
    def log_joint_obs(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """a_g = log p(x_O, z_g) for prepared x, m: (D,) -> (G,), or (B, D) -> (B, G) (``ObservedJoint``)."""
        if x.dim() == 1:
            return self.joint.one(x, m if m.dim() == 1 else m[0]).float()
        return self.joint.batch(x, m)

    @torch.no_grad()
    def log_joint_full(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x, z_g) for fully observed images (K, D) -> (K, G): one GEMM plus the row constants c."""
        return x @ self.joint.logits_t + self.c + self.log_prior

    @torch.no_grad()
    def log_marginal_full(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) (K,) of complete images by the midpoint rule."""
        return torch.logsumexp(self.log_joint_full(x), -1) + self.log_cell

    @torch.no_grad()
    def support(self, x: ImageLike, mask: MaskLike, threshold: float = 40.0) -> GridSupport:
        """The cells where p(x_O, z) is within ``threshold`` nats of its best cell, for scoring completions of x_O.

        Any completion x' of x_O has log p(x', z_g) <= a_g = log p(x_O, z_g), so the cells left out hold at most
        exp(logsumexp of a over them) of p(x'); ``GridSupport.log_marginal`` checks that bound per completion and
        falls back to the whole grid where it is not negligible (exact either way).
        """
        xt, m = self.prepare(x, mask)
        a = self.log_joint_obs(xt, m)
        keep = a >= a.max() - threshold
        dropped = torch.logsumexp(a[~keep], 0) if bool((~keep).any()) else torch.tensor(-math.inf)
        idx = torch.nonzero(keep).flatten()
        return GridSupport(
            grid=self,
            index=idx,
            logits=self.joint.logits_t.index_select(1, idx).T.contiguous(),
            const=(self.c + self.log_prior).index_select(0, idx),
            log_dropped=float(dropped),
        )

    @torch.no_grad()
    def infer(
        self, x: ImageLike, mask: MaskLike, n_samples: int = 16, generator: torch.Generator | None = None
    ) -> InpaintResult:
        """Posterior on the grid, log p(x_O), the predictive p(x_j = 1 | x_O) and ``n_samples`` completions."""
        with self.update_threads():
            return self._infer(x, mask, n_samples, generator)

    def update_threads(self) -> contextlib.AbstractContextManager[None]:
        """The threads one update runs on: one where the tables are small enough (``SMALL_WORK``, see
        ``one_thread``), all otherwise."""
        return one_thread(self.joint.logits_t.numel() <= SMALL_WORK and self.device.type == "cpu")

    def _infer(self, x: ImageLike, mask: MaskLike, n_samples: int, generator: torch.Generator | None) -> InpaintResult:
        xt, m = self.prepare(x, mask)
        if xt.dim() != 1:
            raise ModelInputError("infer takes one image; use posterior_batch for many")
        a = self.joint.one(xt, m)
        lse = torch.logsumexp(a, 0)
        log_post = (a - lse).float()
        w = log_post.exp()
        pred = self._predictive(w)
        idx = (
            torch.multinomial(w, n_samples, replacement=True, generator=_gen_on(generator, w.device))
            if n_samples > 0
            else torch.zeros(0, dtype=torch.long, device=w.device)
        )
        p_s = self.probs.index_select(0, idx)
        u = torch.rand(p_s.shape, generator=_gen_on(generator, w.device), device=w.device)
        bits = (u < p_s).float()
        keep = m.bool()
        samples = torch.where(keep, xt, bits)
        z = self.points.index_select(0, idx)  # the cell centres the samples were decoded at (marked as such)
        return InpaintResult(
            x=xt,
            mask=keep,
            log_post=log_post,
            log_p_obs=float(lse) + self.log_cell,
            predictive=pred,
            completion=torch.where(keep, xt, pred),
            sample_index=idx,
            sample_z=z,
            samples=samples,
            sample_means=torch.where(keep, xt, p_s),
        )

    def _predictive(self, w: torch.Tensor) -> torch.Tensor:
        """sum_g w_g sigma(L_g) over the cells with w_g >= tol / G (off by less than tol, module docstring)."""
        kept = torch.nonzero(w >= PREDICTIVE_TOLERANCE / w.numel()).flatten()
        if 2 * kept.numel() > w.numel():  # a broad posterior: the whole table is as cheap
            return w @ self.probs
        return w.index_select(0, kept) @ self.probs.index_select(0, kept)

    @torch.no_grad()
    def posterior_batch(self, x: ImageLike, mask: MaskLike, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """(log p(x_O) (B,), predictive p(x_j = 1 | x_O) (B, D)) for many images (GEMMs, chunked over images)."""
        xt, m = self.prepare(x, mask)
        xt = xt.reshape(-1, self.data_dim)
        m = m.reshape(-1, self.data_dim).expand_as(xt)
        lps, preds = [], []
        for i in range(0, xt.shape[0], chunk):
            a = self.log_joint_obs(xt[i : i + chunk], m[i : i + chunk])
            lse = torch.logsumexp(a, -1, keepdim=True)
            lps.append(lse[:, 0] + self.log_cell)
            preds.append(torch.softmax(a, -1) @ self.probs)
        return torch.cat(lps), torch.cat(preds)


@dataclass(eq=False)
class ObservedJoint:
    """a_g = log p(x_O, z_g) = L_g . (m * x) + S_g . m + log p(z_g) on cells z_1..z_G, from the decoder's tables
    kept transposed (``logits_t`` = L^T and ``log_sig_neg_t`` = S^T, D x G, float32) so that a pixel's column is
    contiguous. ``one`` updates the last image's a where at most ``INCREMENTAL_PIXELS`` pixels of m * x or m changed
    (reading only those columns, in float64; module docstring), and recomputes it otherwise. The last image is
    replaced whole, never changed in place, so workers sharing the tables each read a consistent one."""

    logits_t: torch.Tensor
    log_sig_neg_t: torch.Tensor
    log_prior: torch.Tensor
    _last: _JointSnapshot | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_logits(cls, logits: torch.Tensor, log_prior: torch.Tensor) -> ObservedJoint:
        """From L (G x D) and log p(z_g) (G,)."""
        return cls(logits.T.contiguous(), F.logsigmoid(-logits).T.contiguous(), log_prior)

    @torch.no_grad()
    def batch(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """a (B, G) for images x (B, D) and masks m (D,) or (B, D), float32 (nothing kept)."""
        return (m * x) @ self.logits_t + m.expand_as(x) @ self.log_sig_neg_t + self.log_prior

    @torch.no_grad()
    def one(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """a (G,) float64 for one image x (D,) with mask m (D,), incrementally where it can be."""
        v = m * x
        last = self._last  # read once: another worker may replace it meanwhile
        changed = None
        if last is not None and last.v.device == v.device:
            changed = torch.nonzero((v != last.v) | (m != last.m)).flatten()
            if changed.numel() > INCREMENTAL_PIXELS:
                changed = None
        if last is None or changed is None:
            a = (v @ self.logits_t + m @ self.log_sig_neg_t).double() + self.log_prior.double()
        elif changed.numel() == 0:
            a = last.a
        else:
            dv, dm = (v - last.v).index_select(0, changed), (m - last.m).index_select(0, changed)
            a = last.a + dv.double() @ self.logits_t.index_select(0, changed).double()
            if bool(dm.any()):
                a = a + dm.double() @ self.log_sig_neg_t.index_select(0, changed).double()
        self._last = _JointSnapshot(v=v.clone(), m=m.clone(), a=a)
        return a


@dataclass(frozen=True, eq=False)
class _JointSnapshot:
    """log p(x_O, z_g) (``a``, float64) of one image, with the m * x (``v``) and m it was computed for."""

    v: torch.Tensor
    m: torch.Tensor
    a: torch.Tensor


@dataclass(eq=False)
class GridSupport:
    """A subset of an ``InpaintGrid``'s cells (``index``) with their tables; ``log_dropped`` bounds the log of
    the left-out cells' contribution to p(x') for every completion x' of the x_O it was built for."""

    grid: InpaintGrid
    index: torch.Tensor
    logits: torch.Tensor
    const: torch.Tensor
    log_dropped: float
    tolerance: float = -12.0  # accept when dropped / kept mass < e^tolerance (an error below 6e-6 nats)

    @property
    def fraction(self) -> float:
        return self.index.numel() / self.grid.points.shape[0]

    @torch.no_grad()
    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x') (K,) of complete images; exact to ~e^tolerance relative (whole grid where needed)."""
        kept = torch.logsumexp(x @ self.logits.T + self.const, -1) + self.grid.log_cell
        bad = (self.log_dropped + self.grid.log_cell - kept) > self.tolerance
        if bool(bad.any()):
            kept = kept.clone()
            kept[bad] = self.grid.log_marginal_full(x[bad])
        return kept


def _gen_on(generator: torch.Generator | None, device: torch.device | str) -> torch.Generator | None:
    if (
        generator is None
        or generator.device == torch.device(device)
        or torch.device(device).type == "cpu"
        and generator.device.type == "cpu"
    ):
        return generator
    return None


@dataclass(frozen=True, eq=False)
class InpaintResult:
    """One inpainting update. Tensors on the grid's device: ``x`` (D,), ``mask`` (D,) bool (True = observed),
    ``log_post`` (G,) normalised log cell masses, ``predictive`` (D,) p(x_j = 1 | x_O), ``completion`` (D,) the
    observed pixels with the predictive in the missing ones, ``sample_index`` (S,), ``sample_z`` (S, Dz) the grid-cell
    centres the samples were decoded at,
    ``samples`` (S, D) completions with sampled pixels, ``sample_means`` (S, D) with sigma(l(z_s)) instead."""

    x: torch.Tensor
    mask: torch.Tensor
    log_post: torch.Tensor
    log_p_obs: float
    predictive: torch.Tensor
    completion: torch.Tensor
    sample_index: torch.Tensor
    sample_z: torch.Tensor
    samples: torch.Tensor
    sample_means: torch.Tensor

    @property
    def n_observed(self) -> int:
        return int(self.mask.sum())

    def posterior_mean(self, grid: InpaintGrid) -> torch.Tensor:
        """E[z | x_O] (Dz,)."""
        return self.log_post.exp() @ grid.points


def inpaint(
    model: BernoulliDecoderModel,
    x: ImageLike,
    mask: MaskLike,
    n_samples: int = 16,
    size: int = DEFAULT_SIZE,
    seed: int = 0,
    grid: InpaintGrid | None = None,
) -> InpaintResult:
    """One-shot convenience: build (or reuse) the grid and run ``InpaintGrid.infer``."""
    grid = grid or InpaintGrid.build(model, size=size)
    return grid.infer(x, mask, n_samples=n_samples, generator=torch.Generator(device="cpu").manual_seed(seed))


def refined_log_p_obs(
    grid: InpaintGrid, x: ImageLike, mask: MaskLike, factor: int = 4, threshold: float = 30.0
) -> float:
    """log p(x_O) on a ``factor``-times finer grid over the same box, summed only over the coarse cells within
    ``threshold`` nats of the best cell (dilated by one cell): the coarse-to-fine scheme of
    ``lvm.estimators.quadrature`` (``coarse_support`` on this grid, then ``log_marginal_on_support`` on blocks of
    ``factor``^Dz fine cells, whose centres are this grid's points, with the mask of observed pixels).

    The neglected cells carry less than G e^-threshold of the mass (up to the coarse grid's resolution);
    ``refined_log_p_obs - InpaintResult.log_p_obs`` is the grid-refinement change reported as the accuracy.
    """
    xt, m = grid.prepare(x, mask)
    support = coarse_support(grid.log_joint_obs(xt, m)[None], grid.shape, threshold, dilate=1)
    log_px, _, _ = log_marginal_on_support(
        grid.model, xt.reshape(1, -1), support, grid.box, grid.size * factor, tile=1, mask=m.reshape(1, -1)
    )
    return float(log_px[0])
