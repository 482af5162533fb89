"""Exact and Monte Carlo log p(x) for binary latents z in {0,1}^K (``lvm.models.binary_latent``).

The exact sum, p(x) = sum_{z in {0,1}^K} p(z) p(x|z), enumerated in chunks of configurations. With logits l(z),

    log p(x, z) = x . l(z) + a(z),     a(z) = log p(z) - sum_d softplus(l_d(z)),

so a(z) does not depend on x: it is computed once per z (and cached in a ``ZTable`` for K <= 24) and the x-dependent
part for many x at once is one matrix product X l(z)^T; for the linear decoder l(z) = W z + b it is
(X W) z + X b, a (B, K) x (K, C) product. a(z) itself uses the split z = (z_hi, z_lo): l = (b + W_hi z_hi) + W_lo z_lo,
i.e. one addition of two precomputed rows per (z, pixel) instead of a K-term dot product. log p(x) is the
logsumexp of the chunks' logsumexps; memory is bounded by the chunk size whatever K is (2^30 included).

Configuration i has bits z_k = (i >> k) & 1.

Estimators, as on the lecture's slides (each returns ``lvm.estimators.Estimate`` per x):

- naive MC with z uniform over {0,1}^K: p_hat = |Z| (1/k) sum_i p(x, z_i), |Z| = 2^K (unbiased in p);
- importance sampling with a mean-field Bernoulli q: p_hat = (1/k) sum_i p(x, z_i) / q(z_i), z_i ~ q (unbiased in p;
  E[log p_hat] is the IWAE bound L_k <= log p(x), non-decreasing in k, Burda et al. 2016);
- the ELBO: (1/k) sum_i log p(x, z_i) - log q(z_i), an unbiased estimate of ELBO(q) <= log p(x);
- exactly by enumeration: ELBO(q) = sum_z q(z) (log p(x,z) - log q(z)) and KL(q || p(z|x)) = log p(x) - ELBO(q).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch.distributions import Distribution

from lvm.errors import LVMError, ModelInputError
from lvm.estimators.montecarlo import _LSE, Estimate
from lvm.estimators.validation import check_x

if TYPE_CHECKING:
    from lvm.models.base import BernoulliDecoderModel
    from lvm.models.binary_latent import BinaryLatentModel

LOW_BITS = 10  # z_lo: the 2^10 = 1024 low configurations share precomputed rows W_lo z_lo
TABLE_MAX_K = 24  # a(z) is cached for K <= 24 (2^24 float32 = 64 MB)
ROWS = 256  # rows of (z, pixel) logits processed at once: 256 x 784 float32 = 0.8 MB, stays in L2
MAX_BLOCK_ELEMENTS = 2**23  # (B, C) log-joint block of the x-dependent part: 32 MB of float32
TABLE_BLOCK = 2**16  # configurations per block when a(z) is computed on the way (2^16 x 784 softplus: ~0.1 s)
HIST_BINS = 20000  # histogram of -log p(x, z) in 1-nat bins; the last bin collects everything beyond


def configurations(
    latent_dim: int,
    start: int = 0,
    stop: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The configurations start..stop-1 of {0,1}^K as rows (n, K): z_k = (i >> k) & 1."""
    stop = 2**latent_dim if stop is None else stop
    i = torch.arange(start, stop, device=device, dtype=torch.int64)
    bits = torch.arange(latent_dim, device=device, dtype=torch.int64)
    return ((i.unsqueeze(1) >> bits) & 1).to(dtype)


def _split(latent_dim: int) -> tuple[int, int]:
    lo = min(latent_dim, LOW_BITS)
    return lo, latent_dim - lo


def _check_x(model: BinaryLatentModel, x: torch.Tensor | npt.ArrayLike) -> torch.Tensor:
    """x (B, D) or one x (D,) -> a finite float32 (B, D) tensor on the model's device (``validation.check_x``)."""
    return check_x(model, x, allow_single=True, device=model.prior_logits.device, dtype=torch.float32)


EXP_SAFE = 80.0  # exp of numbers in [-80, 80] is a normal float32 with full precision


def _exp_shift(W: torch.Tensor, b: torch.Tensor, n_lo: int) -> torch.Tensor | None:
    """Per-pixel shifts c_d for softplus(l) = log1p(exp(b + W_hi z_hi + c) * exp(W_lo z_lo - c)), or None when no
    shift keeps both factors within [-80, 80] for every z and pixel and every logit below 80 (then the product and
    the log1p are exact to float32 rounding); the ranges are the bounds sum_k min(W_dk, 0) .. sum_k max(W_dk, 0)."""
    lo, hi = W[:, :n_lo], W[:, n_lo:]
    lo_min, lo_max = lo.clamp(max=0).sum(1), lo.clamp(min=0).sum(1)
    base_min, base_max = b + hi.clamp(max=0).sum(1), b + hi.clamp(min=0).sum(1)
    if float((lo_max + base_max).max()) >= EXP_SAFE:
        return None
    c_lo = torch.maximum(lo_max - EXP_SAFE, -EXP_SAFE - base_min)
    c_hi = torch.minimum(lo_min + EXP_SAFE, EXP_SAFE - base_max)
    if bool((c_lo > c_hi).any()):
        return None
    return 0.5 * (c_lo + c_hi)


@torch.no_grad()
def x_independent_terms(model: BinaryLatentModel, start: int, stop: int) -> torch.Tensor:
    """a(z) = log p(z) - sum_d softplus(l_d(z)) for configurations start..stop-1 -> (stop - start,).

    Linear decoder: l = (b + W_hi z_hi) + W_lo z_lo, precomputed rows; when every |logit| is provably below 80,
    softplus(l) = log1p(exp(b + W_hi z_hi) * exp(W_lo z_lo)): one product and one log1p per (z, pixel) (exact up to
    float32 rounding; 2x faster than softplus of a sum). Otherwise the decoder is evaluated on the configurations."""
    K = model.latent_dim
    dev = model.prior_logits.device
    out = torch.empty(stop - start, device=dev)
    if not model.is_linear:
        for s in range(start, stop, ROWS * 4):
            z = configurations(K, s, min(stop, s + ROWS * 4), dev)
            out[s - start : s - start + z.shape[0]] = model.log_prior(z) - F.softplus(model.bernoulli_logits(z)).sum(-1)
        return out
    n_lo, _ = _split(K)
    prior = model.prior_logits.float()
    prior_lo = configurations(n_lo, device=dev) @ prior[:n_lo] - F.softplus(prior).sum()
    W, b = model.weight.float(), model.bias.float()
    rows_lo = configurations(n_lo, device=dev) @ W[:, :n_lo].T  # (2^lo, D)
    W_hi = W[:, n_lo:]
    shift = _exp_shift(W, b, n_lo)
    if shift is not None:
        rows_lo = (rows_lo - shift).exp()
    span = 2**n_lo
    buf = torch.empty(min(ROWS, span), W.shape[0], device=dev)
    with _flush_denormals(shift is not None and dev.type == "cpu"):
        _fill_terms(out, start, stop, K, n_lo, rows_lo, b, W_hi, prior, prior_lo, shift, buf)
    return out


@contextlib.contextmanager
def _flush_denormals(enabled: bool) -> Iterator[None]:
    """Treat float32 results below 1.2e-38 as 0 on this thread for the block (x86 computes with subnormal numbers
    tens of times slower: products exp(p_hi) exp(p_lo) of background pixels, whose softplus is < 1e-38 anyway, made
    the whole table 1.6x slower). torch has no getter; the default (off) is restored."""
    if not enabled or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def _fill_terms(
    out: torch.Tensor,
    start: int,
    stop: int,
    K: int,
    n_lo: int,
    rows_lo: torch.Tensor,
    b: torch.Tensor,
    W_hi: torch.Tensor,
    prior: torch.Tensor,
    prior_lo: torch.Tensor,
    shift: torch.Tensor | None,
    buf: torch.Tensor,
) -> None:
    """The loop of ``x_independent_terms`` over rows of ``ROWS`` configurations sharing one z_hi."""
    dev = out.device
    span = 2**n_lo
    pos = start
    while pos < stop:
        hi, lo = divmod(pos, span)
        n = min(ROWS, span - lo, stop - pos)
        prior_hi: torch.Tensor | float
        if K > n_lo:
            zhi = ((hi >> torch.arange(K - n_lo, device=dev)) & 1).float()
            base = torch.addmv(b, W_hi, zhi)
            prior_hi = zhi @ prior[n_lo:]
        else:
            base, prior_hi = b, 0.0
        view = buf[:n]
        if shift is not None:
            torch.mul(rows_lo[lo : lo + n], (base + shift).exp(), out=view)
            view.log1p_()
        else:
            torch.add(rows_lo[lo : lo + n], base, out=view)
            # the stub of torch._C._nn.softplus lacks its out= argument
            torch._C._nn.softplus(view, 1, 20, out=view)  # type: ignore[call-arg]
        torch.sub(prior_lo[lo : lo + n] + prior_hi, view.sum(-1), out=out[pos - start : pos - start + n])
        pos += n


@dataclass(frozen=True)
class ZTable:
    """a(z) for all 2^K configurations of one model (``a`` (2^K,) float32): the x-independent half of log p(x, z)."""

    latent_dim: int
    a: torch.Tensor
    seconds: float


@dataclass(frozen=True)
class TableProgress:
    done: int
    total: int
    table: ZTable | None  # set on the last snapshot


def build_table_steps(model: BinaryLatentModel, chunk: int = 2**16) -> Iterator[TableProgress]:
    """Compute a(z) for all configurations in chunks, yielding progress; the last snapshot holds the ``ZTable``."""
    K = model.latent_dim
    if K > TABLE_MAX_K:
        raise ModelInputError(
            f"a table of all 2^{K} configurations would need {4 * 2**K / 2**30:.0f} GiB; "
            f"tables are built for K <= {TABLE_MAX_K} (larger K is streamed)"
        )
    t0 = time.perf_counter()
    total = 2**K
    a = torch.empty(total, device=model.prior_logits.device)
    for s in range(0, total, chunk):
        e = min(total, s + chunk)
        a[s:e] = x_independent_terms(model, s, e)
        if e < total:
            yield TableProgress(e, total, None)
    yield TableProgress(total, total, ZTable(K, a, time.perf_counter() - t0))


def build_table(model: BinaryLatentModel) -> ZTable:
    table = None
    for p in build_table_steps(model):
        table = p.table
    assert table is not None  # the last snapshot holds it
    return table


@dataclass(frozen=True)
class EnumerationResult:
    """Exact quantities for a batch of B x, from all 2^K configurations.

    ``log_px`` (B,); ``marginals`` (B, K) p(z_k = 1 | x) or None; ``top_index``/``top_log_joint`` (B, n) the n most
    probable configurations and their log p(x, z) (posterior mass = exp(top_log_joint - log_px)); ``hist``
    (B, HIST_BINS) counts of configurations with floor(-log p(x, z)) = j (last bin: j >= HIST_BINS - 1) and
    ``hist_mass`` their posterior mass sum p(z|x); ``elbo``/``kl`` (B,) the exact ELBO(q) and KL(q || p(z|x)) for the
    q given; ``seconds`` the wall time."""

    log_px: torch.Tensor
    configurations: int
    marginals: torch.Tensor | None = None
    top_index: torch.Tensor | None = None
    top_log_joint: torch.Tensor | None = None
    hist: torch.Tensor | None = None
    hist_mass: torch.Tensor | None = None
    elbo: torch.Tensor | None = None
    kl: torch.Tensor | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class EnumerationProgress:
    """A snapshot: ``done`` of ``total`` configurations summed; ``log_px_partial`` (B,) is the log of the partial
    sum (a lower bound that rises to log p(x)); ``result`` is set on the last snapshot."""

    done: int
    total: int
    log_px_partial: torch.Tensor
    seconds: float
    result: EnumerationResult | None = None

    @property
    def fraction(self) -> float:
        return self.done / self.total


def _block_size(batch: int, latent_dim: int, chunk: int | None, linear: bool) -> int:
    """Configurations per block: a power of two (blocks align with the z_hi/z_lo split), (B, C) <= 2^23 elements;
    a non-linear decoder decodes each block, so its blocks stay at 2^12 configurations."""
    c = int(chunk) if chunk is not None else max(ROWS * 4, MAX_BLOCK_ELEMENTS // max(1, batch))
    if not linear and chunk is None:
        c = min(c, 2**12)
    c = 1 << (max(1, c).bit_length() - 1)
    n_configurations: int = 2**latent_dim
    return min(c, n_configurations)


@torch.no_grad()
def enumerate_steps(
    model: BinaryLatentModel,
    x: torch.Tensor | npt.ArrayLike,
    *,
    table: ZTable | None = None,
    marginals: bool = False,
    top: int = 0,
    histogram: bool = False,
    q_logits: torch.Tensor | None = None,
    chunk: int | None = None,
    report_every_s: float = 0.1,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[EnumerationProgress]:
    """Sum p(x, z) over all 2^K configurations for every row of x (B, D), chunk by chunk, yielding progress at most
    every ``report_every_s`` seconds; the last snapshot carries the ``EnumerationResult``. Stops early (no result)
    when ``should_stop()`` returns True. See the module docstring for the factorisation."""
    t0 = time.perf_counter()
    x = _check_x(model, x)
    B, K = x.shape[0], model.latent_dim
    if table is not None and table.latent_dim != K:
        raise ModelInputError(f"the table is for K = {table.latent_dim}, the model has K = {K}")
    total = 2**K
    dev = x.device
    linear = model.is_linear
    lse_only = linear and not (marginals or top or histogram or q_logits is not None)
    n_lo = _split(K)[0] if linear else K
    span = 2**n_lo
    if lse_only and chunk is None:  # memory is (B, 2^lo) + (B, C / 2^lo), not (B, C): whole z_hi rows per block
        block = min(2**K, max(span, span * (MAX_BLOCK_ELEMENTS // 4 // max(1, B))))
    else:
        block = _block_size(B, K, chunk, linear)
    if table is None and chunk is None:
        block = min(block, max(span if lse_only else 1, TABLE_BLOCK))  # a(z) per block: yield every ~0.1 s
    z_lo_all: torch.Tensor | None = None  # set for the linear decoder
    exp_s: _ExpRows | None = None  # set when only log p(x) is asked for
    if linear:
        z_lo_all = configurations(n_lo, device=dev)
        xw = x @ model.weight.float()  # (B, K): x.l(z) = x.b + (x W) z
        xb = x @ model.bias.float()  # (B,)
        s_lo_all = xw[:, :n_lo] @ z_lo_all.T  # (B, 2^lo)
        exp_s = _ExpRows(s_lo_all) if lse_only else None
    lse = torch.full((B,), -math.inf, device=dev, dtype=torch.float64)
    marg = torch.zeros(B, K, device=dev, dtype=torch.float64) if marginals else None
    top_v = torch.empty(B, 0, device=dev)
    top_i = torch.empty(B, 0, device=dev, dtype=torch.int64)
    hist = torch.zeros(B, HIST_BINS, device=dev, dtype=torch.int64) if histogram else None
    hist_mass = torch.zeros(B, HIST_BINS, device=dev, dtype=torch.float64) if histogram else None
    if q_logits is not None:
        ql = torch.as_tensor(q_logits, device=dev, dtype=torch.float32).expand(B, K)
        log_q1, log_q0 = F.logsigmoid(ql), F.logsigmoid(-ql)
        dq = log_q1 - log_q0  # log q(z) = sum_k log_q0_k + dq . z
        q_sum = torch.zeros(B, device=dev, dtype=torch.float64)
    last = t0
    for start in range(0, total, block):
        stop = min(total, start + block)
        a = table.a[start:stop] if table is not None else x_independent_terms(model, start, stop)
        # the block as (hi, lo): configurations h * span + l, h in [h0, h0 + nh), l in [l0, l0 + nl)
        if z_lo_all is not None:  # the linear decoder
            h0, l0 = divmod(start, span)
            nl = min(span, stop - start)
            nh = (stop - start) // nl
            z_lo = z_lo_all[l0 : l0 + nl]
            z_hi = configurations(K - n_lo, h0, h0 + nh, dev)  # (nh, K - lo)
            t_hi = xb.unsqueeze(1) + xw[:, n_lo:] @ z_hi.T  # (B, nh)
            if not lse_only:
                lj = s_lo_all[:, l0 : l0 + nl].unsqueeze(1) + t_hi.unsqueeze(2) + a.view(1, nh, nl)  # (B, nh, nl)
        else:
            z_lo = configurations(K, start, stop, dev)
            z_hi = z_lo[:1, :0]
            nh, nl = 1, stop - start
            lj = (x @ model.bernoulli_logits(z_lo).T + a.unsqueeze(0)).view(B, 1, nl)
        if exp_s is not None:  # log p(x) alone: the block's logsumexp as a matrix product
            lse = torch.logaddexp(lse, _factorised_lse(exp_s.get(l0, nl), t_hi, a.view(nh, nl)))
        else:
            flat = lj.view(B, -1)
            new = torch.logaddexp(lse, torch.logsumexp(flat, 1).double())
            if hist is not None and hist_mass is not None:
                bins = (-flat).floor().clamp_(0, HIST_BINS - 1).long()
                hist.scatter_add_(1, bins, torch.ones_like(bins))
                hist_mass *= torch.exp(lse - new).unsqueeze(1)
                hist_mass.scatter_add_(1, bins, torch.exp(flat.double() - new.unsqueeze(1)))
            if marg is not None:
                w = torch.exp(lj - new.float().view(B, 1, 1))
                marg *= torch.exp(lse - new).unsqueeze(1)
                marg[:, :n_lo] += (w.sum(1) @ z_lo).double()
                marg[:, n_lo:] += (w.sum(2) @ z_hi).double()
            lse = new
            if top:
                v, i = torch.topk(flat, min(top, stop - start), dim=1)
                top_v, idx = torch.topk(torch.cat([top_v, v], 1), min(top, top_v.shape[1] + v.shape[1]), dim=1)
                top_i = torch.gather(torch.cat([top_i, i + start], 1), 1, idx)
            if q_logits is not None:
                log_q = (
                    log_q0.sum(1).view(B, 1, 1)
                    + (dq[:, :n_lo] @ z_lo.T).unsqueeze(1)
                    + (dq[:, n_lo:] @ z_hi.T).unsqueeze(2)
                )
                q_sum += (torch.exp(log_q) * (lj - log_q)).sum((1, 2)).double()
        if should_stop is not None and should_stop():
            return
        now = time.perf_counter()
        if stop < total and now - last >= report_every_s:
            last = now
            yield EnumerationProgress(stop, total, lse.float(), now - t0)
    log_px = lse.float()
    elbo = q_sum.float() if q_logits is not None else None
    result = EnumerationResult(
        log_px=log_px,
        configurations=total,
        marginals=marg.float() if marg is not None else None,
        top_index=top_i if top else None,
        top_log_joint=top_v if top else None,
        hist=hist,
        hist_mass=hist_mass.float() if hist_mass is not None else None,
        elbo=elbo,
        kl=(log_px - elbo) if elbo is not None else None,
        seconds=time.perf_counter() - t0,
    )
    yield EnumerationProgress(total, total, log_px, result.seconds, result)


UNDERFLOW_LOG = -600.0  # float64 sums below e^-600 are recomputed directly (nothing is lost to underflow)


class _ExpRows:
    """exp(s[:, l0:l0 + nl] - m) in float64 with its row maxima m, cached for the last (l0, nl) asked for (every
    block of whole z_hi rows uses the same l-range, so it is computed once)."""

    def __init__(self, s: torch.Tensor) -> None:
        self.s = s
        self.key: tuple[int, int] | None = None
        self.value: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def get(self, l0: int, nl: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.key != (l0, nl) or self.value is None:
            s = self.s[:, l0 : l0 + nl]
            m = s.max(1, keepdim=True).values
            self.key, self.value = (l0, nl), (s, m, torch.exp((s - m).double()))
        return self.value


def _factorised_lse(
    s_rows: tuple[torch.Tensor, torch.Tensor, torch.Tensor], t_hi: torch.Tensor, a: torch.Tensor
) -> torch.Tensor:
    """logsumexp over (h, l) of t[b, h] + s[b, l] + a[h, l] for every b, as a matrix product:

        log sum_h e^{t_bh} sum_l e^{s_bl} e^{a_hl} = log sum_h e^{t_bh + m_b + m_h} (E_s E_a^T)[b, h],

    with E_s = exp(s - m_b), E_a = exp(a - m_h) in float64 (m_b, m_h row maxima). A (b, h) entry whose sum falls
    below e^-600 (so float64 underflow could have dropped terms) is recomputed by a direct logsumexp.
    s_rows = (s (B, nl), m_b (B, 1), E_s) from ``_ExpRows``, t_hi (B, nh), a (nh, nl) -> (B,) float64."""
    s_lo, m_s, e_s = s_rows
    m_a = a.max(1, keepdim=True).values
    e_a = torch.exp((a - m_a).double())
    r = e_s @ e_a.T  # (B, nh)
    row = torch.log(r) + m_s.double() + m_a.double().T + t_hi.double()
    bad = torch.nonzero(r < math.exp(UNDERFLOW_LOG))
    for i in range(0, bad.shape[0], 4096):
        bs, hs = bad[i : i + 4096].unbind(1)
        vals = (s_lo[bs] + a[hs]).double() + t_hi[bs, hs].double().unsqueeze(1)
        row[bs, hs] = torch.logsumexp(vals, 1)
    return torch.logsumexp(row, 1)


def enumerate_exact(model: BinaryLatentModel, x: torch.Tensor | npt.ArrayLike, **kwargs: Any) -> EnumerationResult:
    """Run ``enumerate_steps`` to the end and return its result."""
    result = None
    for p in enumerate_steps(model, x, **kwargs):
        result = p.result
    if result is None:
        raise LVMError("the enumeration was stopped (should_stop) before it summed every configuration")
    return result


def exact_log_marginal(
    model: BinaryLatentModel, x: torch.Tensor | npt.ArrayLike, batch: int = 4096, **kwargs: Any
) -> torch.Tensor:
    """log p(x) (B,) by enumerating all 2^K configurations, ``batch`` rows of x at a time (bounded memory)."""
    x = torch.as_tensor(x)
    if x.dim() == 2 and x.shape[0] > batch:
        return torch.cat([enumerate_exact(model, x[i : i + batch], **kwargs).log_px for i in range(0, len(x), batch)])
    return enumerate_exact(model, x, **kwargs).log_px


@torch.no_grad()
def reference_log_marginal(
    model: BinaryLatentModel, x: torch.Tensor | npt.ArrayLike, chunk: int = 4096
) -> torch.Tensor:
    """The plain PyTorch loop over z-chunks (the benchmark's reference): decode each chunk, then
    log p(x, z) = x l^T - sum softplus(l) + log p(z), logsumexp accumulated over chunks."""
    x = _check_x(model, x)
    K = model.latent_dim
    lse = torch.full((x.shape[0],), -math.inf, device=x.device)
    for start in range(0, 2**K, chunk):
        z = configurations(K, start, min(2**K, start + chunk), x.device)
        logits = model.bernoulli_logits(z)
        lj = x @ logits.T - F.softplus(logits).sum(-1) + model.log_prior(z)
        lse = torch.logaddexp(lse, torch.logsumexp(lj, 1))
    return lse


def histogram_edges(hist: torch.Tensor, bins: int = 60, *others: torch.Tensor) -> tuple[np.ndarray, ...]:
    """Re-bin 1-nat histogram counts (HIST_BINS,) of -log p(x, z) into ``bins`` bins over the occupied range of
    log p(x, z); returns (edges (bins + 1,) in log p(x, z), counts (bins,), then each of ``others`` (same 1-nat
    bins, e.g. the posterior mass) re-binned alike)."""
    h = hist.detach().cpu().numpy().astype(np.float64)
    nz = np.flatnonzero(h)
    if nz.size == 0:
        return (np.array([0.0, 1.0]), np.array([0.0]), *[np.array([0.0]) for _ in others])
    lo_j, hi_j = int(nz[0]), int(nz[-1]) + 1  # -log p in [lo_j, hi_j)
    width = max(1, math.ceil((hi_j - lo_j) / bins))
    n = math.ceil((hi_j - lo_j) / width)
    neg_edges = lo_j + width * np.arange(n + 1)

    def rebin(a: np.ndarray) -> np.ndarray:
        a = np.concatenate([a, np.zeros(max(0, lo_j + n * width - a.size))])
        return np.add.reduceat(a[lo_j : lo_j + n * width], np.arange(0, n * width, width))[:n][::-1]

    rest = [rebin(o.detach().cpu().numpy().astype(np.float64)) for o in others]
    return (-neg_edges[::-1].astype(float), rebin(h), *rest)


# -- Monte Carlo ---------------------------------------------------------------------------------------------------
def log_joint(model: BernoulliDecoderModel, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """log p(x, z) for x (B, D) and z (S, B, K) -> (S, B)."""
    logits = model.bernoulli_logits(z)
    return (logits * x).sum(-1) - F.softplus(logits).sum(-1) + model.log_prior(z)


def sample_bernoulli(logits: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n draws (n, *logits.shape) of z_k ~ Bernoulli(sigmoid(logits_k)), from ``generator``."""
    u = torch.rand((n, *logits.shape), generator=generator, device=logits.device)
    return (u < torch.sigmoid(logits)).float()


def _estimate(log_w: torch.Tensor, k: int, keep: bool) -> Estimate:
    acc = _LSE(keep)
    acc.add(log_w)
    return acc.result(k)


@torch.no_grad()
def naive_uniform(
    model: BinaryLatentModel,
    x: torch.Tensor | npt.ArrayLike,
    k: int,
    *,
    generator: torch.Generator | None = None,
    return_log_weights: bool = False,
) -> Estimate:
    """Naive MC, z_i uniform over {0,1}^K: log p_hat = K log 2 + log (1/k) sum_i p(x, z_i) (the slide's |Z| times
    the sample mean; E[p_hat] = p(x))."""
    x = _check_x(model, x)
    if k < 1:
        raise ModelInputError(f"k must be at least 1; got {k}")
    z = (torch.rand((k, x.shape[0], model.latent_dim), generator=generator, device=x.device) < 0.5).float()
    return _estimate(log_joint(model, x, z) + model.latent_dim * math.log(2.0), k, return_log_weights)


@torch.no_grad()
def importance_bernoulli(
    model: BinaryLatentModel,
    x: torch.Tensor | npt.ArrayLike,
    q_logits: torch.Tensor,
    k: int,
    *,
    generator: torch.Generator | None = None,
    return_log_weights: bool = False,
) -> Estimate:
    """Importance sampling with q(z) = prod_k Bernoulli(sigmoid(q_logits_k)) (q_logits (B, K) or (K,)):
    log w_i = log p(x, z_i) - log q(z_i), z_i ~ q; value = log (1/k) sum_i w_i (a draw of the IWAE bound's estimate)."""
    x = _check_x(model, x)
    if k < 1:
        raise ModelInputError(f"k must be at least 1; got {k}")
    ql = torch.as_tensor(q_logits, device=x.device, dtype=torch.float32).expand(x.shape[0], model.latent_dim)
    z = sample_bernoulli(ql, k, generator)
    q: Distribution = torch.distributions.Independent(torch.distributions.Bernoulli(logits=ql), 1)
    log_q = q.log_prob(z)  # through Distribution: Independent.log_prob has no annotations
    return _estimate(log_joint(model, x, z) - log_q, k, return_log_weights)


@torch.no_grad()
def elbo_bernoulli(
    model: BinaryLatentModel,
    x: torch.Tensor | npt.ArrayLike,
    q_logits: torch.Tensor,
    k: int,
    *,
    generator: torch.Generator | None = None,
) -> Estimate:
    """ELBO(q) estimated from k samples: (1/k) sum_i log p(x, z_i) - log q(z_i); stderr = sample sd / sqrt(k)."""
    x = _check_x(model, x)
    ql = torch.as_tensor(q_logits, device=x.device, dtype=torch.float32).expand(x.shape[0], model.latent_dim)
    z = sample_bernoulli(ql, k, generator)
    q: Distribution = torch.distributions.Independent(torch.distributions.Bernoulli(logits=ql), 1)
    log_q = q.log_prob(z)  # through Distribution: Independent.log_prob has no annotations
    lw = log_joint(model, x, z) - log_q
    se = lw.std(0) / math.sqrt(k) if k > 1 else torch.full_like(lw[0], float("nan"))
    ess = _estimate(lw, k, False).ess
    return Estimate(value=lw.mean(0), stderr=se, ess=ess, k=k)


# -- the lab's convergence picture ----------------------------------------------------------------------------------
ESTIMATORS = ("uniform", "is_encoder", "is_marginals", "elbo")
ESTIMATOR_LABELS = {
    "uniform": "naive MC, z uniform on {0,1}^K",
    "is_encoder": "IS, q = encoder (IWAE L_k)",
    "is_marginals": "IS, q = exact marginals",
    "elbo": "ELBO estimate, q = encoder",
}


@dataclass(frozen=True)
class ConvergenceSnapshot:
    """Estimates for each estimator and k: ``values[name]`` (len(ks), repeats) of log p_hat (ELBO: its k-sample mean);
    ``repeats_done`` repeats so far."""

    ks: tuple[int, ...]
    values: dict[str, npt.NDArray[np.float64]]
    repeats_done: int
    repeats: int


def convergence_steps(
    model: BinaryLatentModel,
    x: torch.Tensor | npt.ArrayLike,
    encoder_logits: torch.Tensor,
    marginal_logits: torch.Tensor,
    ks: Iterable[int] = (1, 10, 100, 1000, 10000),
    repeats: int = 10,
    seed: int = 0,
) -> Iterator[ConvergenceSnapshot]:
    """For each repeat r, k_max draws per proposal and the estimates from their first k for every k in ``ks``
    (nested samples); yields after each repeat."""
    x = _check_x(model, x)[:1]
    ks = tuple(int(k) for k in ks)
    kmax = max(ks)

    def first_log_weights(e: Estimate) -> torch.Tensor:
        assert e.log_weights is not None  # asked for with return_log_weights=True
        return e.log_weights[:, 0]

    g = torch.Generator(device=x.device).manual_seed(int(seed))
    vals = {n: np.full((len(ks), repeats), np.nan) for n in ESTIMATORS}
    with torch.no_grad():
        for r in range(repeats):
            lw = {
                "uniform": first_log_weights(naive_uniform(model, x, kmax, generator=g, return_log_weights=True)),
                "is_encoder": first_log_weights(
                    importance_bernoulli(model, x, encoder_logits, kmax, generator=g, return_log_weights=True)
                ),
                "is_marginals": first_log_weights(
                    importance_bernoulli(model, x, marginal_logits, kmax, generator=g, return_log_weights=True)
                ),
            }
            lw["elbo"] = lw["is_encoder"]
            for name, w in lw.items():
                w = w.double()
                for j, k in enumerate(ks):
                    if name == "elbo":
                        vals[name][j, r] = float(w[:k].mean())
                    else:
                        vals[name][j, r] = float(torch.logsumexp(w[:k], 0) - math.log(k))
            yield ConvergenceSnapshot(ks, {n: v.copy() for n, v in vals.items()}, r + 1, repeats)


# -- the mixture as the one-hot special case ------------------------------------------------------------------------
def one_hot_log_marginal(log_prior_one_hot: torch.Tensor, log_component: torch.Tensor) -> torch.Tensor:
    """The mixture model as the sum restricted to one-hot z (exactly one feature on):

        p(x) = sum_{k} p(z = e_k) p(x | z = e_k) = sum_k pi_k p_k(x),   pi_k = p(z = e_k) / sum_j p(z = e_j).

    ``log_prior_one_hot`` (K,) unnormalised log p(z = e_k); ``log_component`` (B, K) log p(x | z = e_k). With Gaussian
    components this is a mixture of Gaussians (the Mixture lab's sum); with the Bernoulli decoder, of Bernoullis."""
    log_pi = log_prior_one_hot - torch.logsumexp(log_prior_one_hot, 0)
    return torch.logsumexp(log_component + log_pi, 1)
