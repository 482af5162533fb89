"""Batched EM kernels for Gaussian mixtures: pure functions over tensors.

Notation: X is (N, D), K components with weights pi_k, means mu_k and covariances Sigma_k. Precisions are kept
as Cholesky factors P_k with ``P_k P_k^T = Sigma_k^{-1}`` (P_k upper triangular, as in scikit-learn), so

    log N(x; mu_k, Sigma_k) = -1/2 (D log 2 pi + ||x P_k - mu_k P_k||^2) + sum_d log (P_k)_dd.

Covariance types and the shape of ``cov`` / ``pchol``: 'full' (K, D, D), 'tied' (D, D), 'diag' (K, D),
'spherical' (K,).

Speed: scikit-learn loops over components with one GEMM each; here everything is a few large GEMMs, and no
N x K x D tensor is ever materialised (a batched prototype that did reached 3.3x scikit-learn on 100k x 2 but only
1.1x on 60k x 50 full). Every pass streams over the rows of X in chunks small enough to stay in cache (2 MB of
float32: measured for 60k x 50, K=10, full, float32, 2 threads: 126 ms over all rows at once, memory-bound on a
120 MB block, 27 ms in chunks of 1,024 rows; one diag iteration on 60k x 784 pixels, 2 threads: 43 ms in chunks
of 334 rows (1 MB), 33 ms in 668 (2 MB) or 1,337, 38 ms in 2,674: fewer, larger chunks hold the GIL less often).
The E-step evaluates the Mahalanobis terms of all K components of a chunk with one GEMM ``X_c @ [P_1 ... P_K]``
minus the precomputed ``mu_k P_k`` and normalises them while they are in cache; the M-step builds the centred,
sqrt(r)-weighted scatter matrices ``Xs = sqrt(r_k) X; Xs^T Xs`` into a preallocated buffer (37 ms for all K,
against 68 ms for one GEMM over an N x K*D weighted copy), which also avoids the cancellation of
``E[x x^T] - mu mu^T`` in float32. 'diag' makes x^2 per chunk in cache and fuses E and M into one pass
(``em_step_diag``): nothing of the size of X is stored besides X itself. Float32 GEMMs with few rows go to oneDNN
where torch has it (``onednn_linear``).

Threads: the chunks are grouped into at most ``MAX_BLOCKS`` blocks that the calling thread and threads started
for the pass take one at a time, each running torch on one intra-op thread (``parallel_blocks``): no OpenMP
barrier per small operation. Measured on this 2-core machine under load (other processes busy): one diag EM
iteration on 60k x 784 pixels took 0.5-3.8 s with two OpenMP threads per operation (a (10, 512) ``exp_`` alone 6 ms:
each barrier waits for a descheduled thread), 90-110 ms in blocks; 60k x 50 full: 215-8,400 ms against 95 ms.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, TypeVar, cast

import torch

from lvm.threads import single_thread

LOG_2PI = math.log(2.0 * math.pi)
COV_TYPES = ("full", "tied", "diag", "spherical")
CHUNK_ELEMS = 1 << 19  # elements of a chunk of a streamed pass on the CPU: 2 MB of float32 (L2 + L3 cache)
DEVICE_CHUNK_ELEMS = 1 << 24  # on a GPU: 64 MB of float32 (few kernel launches, bounded memory for 10^6 rows)
MAX_BLOCKS = 64  # a pass is shared out among threads in at most this many blocks of chunks
ONEDNN_MIN_FEATURES = 16  # 'full'/'tied' take oneDNN's GEMMs from this many features (tiny ones: torch.mm's)
SCATTER_ONEDNN_ROWS = 2048  # chunk of the per-component oneDNN scatter (its ~13 us a call amortised)
BLOCK_RESULT_ELEMS = 1 << 24  # at most this many elements of partial sums kept (one per block) before adding them
_T = TypeVar("_T")


def elementwise_threads(device: torch.device, n_features: int, max_features: int = 8) -> AbstractContextManager[None]:
    """One intra-op thread (``lvm.threads.single_thread``) while EM runs on low-dimensional data on the CPU.

    There EM is bound by elementwise passes over (K, N) arrays, each an OpenMP parallel region with a barrier;
    on a small CPU shared with other processes a barrier waits for a descheduled thread (measured here: 100k x 2,
    K=5, float32: 7 ms of CPU per iteration on one thread, 160-600 ms on two threads of a busy 2-core machine).
    GEMM-bound problems (more features) keep every thread.
    """
    return single_thread(device.type == "cpu" and n_features <= max_features)


_local = threading.local()


@contextlib.contextmanager
def em_threads(device: torch.device, n_features: int, max_features: int = 8) -> Iterator[None]:
    """EM's threads on the CPU: the streamed passes (``parallel_blocks``) share their blocks among the calling
    thread's torch intra-op threads (one thread for at most ``max_features`` features, as ``elementwise_threads``),
    and everything else (the K x D x D parameter updates, Cholesky factors, triangular solves) runs on one intra-op
    thread. Those are small BLAS/LAPACK calls, and each OpenMP parallel region waits for its second thread to be
    scheduled: measured on this 2-core machine under load, a (10, 50, 50) batched triangular solve took 76 ms on
    two threads and 0.2 ms on one, a Cholesky factorisation 16 ms against 0.16, a (10, 60000) @ (60000, 50) GEMM
    16 ms against 1.8. Reentrant (an inner block keeps the outer one's thread count)."""
    if device.type != "cpu" or getattr(_local, "workers", None) is not None:
        yield
        return
    _local.workers = torch.get_num_threads() if n_features > max_features else 1
    try:
        with single_thread():
            yield
    finally:
        _local.workers = None


def pass_workers() -> int:
    """Threads for a streamed pass: ``em_threads``' count inside one, else this thread's torch intra-op count."""
    workers = getattr(_local, "workers", None)
    return int(workers) if workers is not None else torch.get_num_threads()


class DataCache:
    """Per-fit derived copies of X reused by every iteration: X^T (contiguous, for the centred scatter of
    'full'/'tied'). 'diag' and 'spherical' keep none (they square each chunk of rows while it is in cache)."""

    def __init__(self, X: torch.Tensor, cov_type: str) -> None:
        self.X = X
        self.Xt = X.T.contiguous() if cov_type in ("full", "tied") else None


# ----------------------------------------------------------------------------------------------------------------
# streaming over rows: chunks in cache, blocks of chunks shared out among threads
# ----------------------------------------------------------------------------------------------------------------


def row_plan(X: torch.Tensor, width: int, result_elems: int = 0, min_rows: int = 64) -> tuple[int, int, int]:
    """``(rows, block, workers)`` for a pass over the N rows of X whose chunks make a (rows, ``width``) array:
    chunks of ``rows`` rows (``CHUNK_ELEMS`` elements, in cache), blocks of whole chunks (at most ``MAX_BLOCKS``,
    and at most ``BLOCK_RESULT_ELEMS / result_elems`` when each block returns partial sums of that size), and the
    threads that share the blocks (``pass_workers``). The blocks depend on the data's shape only, never on the
    threads, so results are the same for any number of threads. ``min_rows``: chunks of at least this many rows.
    Off the CPU: chunks of ``DEVICE_CHUNK_ELEMS`` (few kernel launches, bounded memory), one block, one thread."""
    N = X.shape[0]
    if X.device.type != "cpu":
        return max(1, min(N, DEVICE_CHUNK_ELEMS // max(width, 1))), N, 1
    rows = min(N, max(min_rows, CHUNK_ELEMS // max(width, 1)))
    chunks = -(-N // rows)
    n_blocks = min(MAX_BLOCKS, max(2, BLOCK_RESULT_ELEMS // result_elems) if result_elems else MAX_BLOCKS)
    return rows, rows * -(-chunks // n_blocks), pass_workers()


def parallel_blocks(
    n: int, block: int, workers: int, fn: Callable[[int, int, dict[str, torch.Tensor]], _T]
) -> list[_T]:
    """``fn(start, stop, scratch)`` for the blocks ``[0, block), [block, 2 block), ...`` of ``n`` rows, in
    ``workers`` threads; the results in block order.

    The calling thread is one worker; the others are started here (so they inherit its priority, e.g. a GUI
    worker's nice value) and end with the pass. Each runs torch on one intra-op thread and takes the next block
    when it is done with one: no OpenMP barrier per operation, and a thread the OS deschedules holds up one block,
    not the pass. Results come back in block order, so a reduction over them does not depend on the number of
    threads nor on which thread took which block. ``scratch``: a dict per thread for buffers its blocks reuse. With
    one worker (or one block) ``fn`` runs in the calling thread as it is.
    """
    starts = list(range(0, n, block))
    workers = max(1, min(workers, len(starts)))
    if workers == 1:
        scratch: dict[str, torch.Tensor] = {}
        return [fn(s, min(s + block, n), scratch) for s in starts]
    results: list[_T | None] = [None] * len(starts)
    lock = threading.Lock()
    taken = 0
    errors: list[BaseException] = []

    def work() -> None:
        nonlocal taken
        mine: dict[str, torch.Tensor] = {}
        with single_thread():
            while True:
                with lock:
                    if errors or taken >= len(starts):
                        return
                    i = taken
                    taken += 1
                try:
                    results[i] = fn(starts[i], min(starts[i] + block, n), mine)
                except BaseException as exc:  # handed to the calling thread, which raises it
                    with lock:
                        errors.append(exc)
                    return

    threads = [threading.Thread(target=work, name="lvm-em-rows", daemon=True) for _ in range(workers - 1)]
    for t in threads:
        t.start()
    try:
        work()
    finally:
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    return cast(list[_T], results)


def sum_blocks(parts: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    """Elementwise sums of the blocks' partial results, added in block order."""
    total = [p.clone() for p in parts[0]]
    for part in parts[1:]:
        for acc, p in zip(total, part, strict=True):
            acc += p
    return tuple(total)


def scratch_buffer(
    scratch: dict[str, torch.Tensor], name: str, shape: tuple[int, ...], like: torch.Tensor
) -> torch.Tensor:
    """``scratch[name]``, (re)allocated as an empty tensor of ``shape`` and ``like``'s dtype and device (a pass's
    chunks all have one length but the last: a thread reallocates at most twice a pass)."""
    buf = scratch.get(name)
    if buf is None or buf.shape != shape or buf.dtype != like.dtype or buf.device != like.device:
        buf = scratch[name] = torch.empty(shape, dtype=like.dtype, device=like.device)
    return buf


def chunk_and_squares(
    X: torch.Tensor, s: int, e: int, scratch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows s:e of X and their elementwise squares (made in a reused buffer)."""
    Xc = X[s:e]
    X2c = scratch_buffer(scratch, "x2", (e - s, X.shape[1]), X)
    torch.mul(Xc, Xc, out=X2c)
    return Xc, X2c


# ----------------------------------------------------------------------------------------------------------------
# skinny float32 GEMMs (K rows): oneDNN where torch has it
# ----------------------------------------------------------------------------------------------------------------

USE_ONEDNN = True  # tests switch it off to compare the two paths
Linear = Callable[..., Any]
_onednn: list[tuple[Linear, Linear] | None] = []  # the probe's result, once per process
_onednn_lock = threading.Lock()


def onednn_linear(X: torch.Tensor) -> tuple[Linear, Linear] | None:
    """``(linear, linear_add)`` for float32 tensors on the CPU: oneDNN's matmul through
    ``torch.ops.mkldnn._linear_pointwise`` (the op torch's own compiler uses for CPU linear layers), with
    ``linear(A, B, None, "none", [], "") = A B^T`` and ``linear_add(A, C, B, None, "add") = A B^T + C``; None for
    another dtype or device, a torch without oneDNN, or one whose results disagree with ``torch.mm`` on a probe.

    Why: EM's diag GEMMs have K (~10) rows. torch.mm calls MKL, whose sgemm takes an AVX2 path on AMD CPUs
    (``MKL_VERBOSE=1``: "Intel(R) Architecture processors"); oneDNN's brgemm uses AVX-512 (``ONEDNN_VERBOSE=1``:
    ``brg_matmul:avx512_core``, f32 in and out). Measured on this 2-core AMD EPYC, one thread, (10 x 784) x
    (784 x 334): 88 GF/s against 58 for the E-step's A X_c^T, 103-109 against 64 for the M-step's R X_c; one
    diag EM iteration on MNIST pixels: 45 ms against 71 (one thread), 28 against 42 (two). A call costs ~13 us
    against ~2 us for torch.mm (with the GIL released), hence chunks of 2 MB and, for 'full', a minimum of
    ``ONEDNN_MIN_FEATURES`` features.
    """
    if not USE_ONEDNN or X.dtype != torch.float32 or X.device.type != "cpu":
        return None
    with _onednn_lock:
        if not _onednn:
            _onednn.append(_probe_onednn())
    return _onednn[0]


def _probe_onednn() -> tuple[Linear, Linear] | None:
    try:
        ops = torch.ops.mkldnn._linear_pointwise
        linear, linear_add = ops.default, ops.binary
        g = torch.Generator().manual_seed(0)
        A, B, C = (torch.randn(shape, generator=g) for shape in ((3, 37), (70, 37), (3, 70)))
        R, S = torch.randn(70, 5, generator=g), torch.randn(3, 5, generator=g)
        pairs = (
            (linear(A, B, None, "none", [], ""), A @ B.T),
            (linear_add(A, C, B, None, "add"), A @ B.T + C),
            (linear_add(C, S, R.T, None, "add"), C @ R + S),  # a transposed (strided) right-hand side
        )
        if all(torch.allclose(got, want, rtol=1e-4, atol=1e-4) for got, want in pairs):
            return linear, linear_add
    except Exception:  # no such op, or it refuses these tensors: torch.mm then
        pass
    return None


def linear_t(A: torch.Tensor, Xc: torch.Tensor, dnn: tuple[Linear, Linear] | None) -> torch.Tensor:
    """A X_c^T, (K, rows), for A (K, D) and a chunk X_c (rows, D)."""
    if dnn is None:
        return A @ Xc.T
    return cast(torch.Tensor, dnn[0](A, Xc, None, "none", [], ""))


def add_linear_t(C: torch.Tensor, A: torch.Tensor, Xc: torch.Tensor, dnn: tuple[Linear, Linear] | None) -> torch.Tensor:
    """C + A X_c^T, (K, rows): in place in C with torch.mm, a new tensor with oneDNN."""
    if dnn is None:
        return C.addmm_(A, Xc.T)
    return cast(torch.Tensor, dnn[1](A, C, Xc, None, "add"))


def add_linear(S: torch.Tensor, R: torch.Tensor, Xc: torch.Tensor, dnn: tuple[Linear, Linear] | None) -> torch.Tensor:
    """S + R X_c, (K, D), for R (K, rows) and a chunk X_c (rows, D): in place in S with torch.mm, a new tensor with
    oneDNN (R made contiguous first)."""
    if dnn is None:
        return S.addmm_(R, Xc)
    return cast(torch.Tensor, dnn[1](R.contiguous(), S, Xc.T, None, "add"))


# ----------------------------------------------------------------------------------------------------------------
# precision Cholesky factors
# ----------------------------------------------------------------------------------------------------------------


def precision_cholesky(
    cov: torch.Tensor, cov_type: str, reg_covar: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """P with P P^T = cov^{-1} (upper triangular for 'full'/'tied'), and the indices of components whose
    covariance was not positive definite and had to be repaired (diagonal jitter, growing from reg_covar).

    Returns ``(pchol, cov, bad)``: ``cov`` is the (possibly repaired) covariance, ``bad`` a list of ints.
    """
    bad: list[int] = []
    if cov_type in ("full", "tied"):
        c = cov if cov_type == "full" else cov.unsqueeze(0)
        L, info = torch.linalg.cholesky_ex(c)
        failed = torch.nonzero(info != 0).flatten().tolist()
        if failed:
            c = c.clone()
            D = c.shape[-1]
            eye = torch.eye(D, dtype=c.dtype, device=c.device)
            for k in failed:
                ck = 0.5 * (c[k] + c[k].T)
                scale = float(torch.diagonal(ck).abs().mean()) or 1.0
                jitter = max(reg_covar, scale * 1e-10, torch.finfo(c.dtype).tiny)
                for _ in range(60):
                    trial = ck + jitter * eye
                    Lk, ik = torch.linalg.cholesky_ex(trial)
                    if int(ik) == 0:
                        break
                    jitter *= 10.0
                else:  # give up on the correlations: a diagonal covariance
                    trial = torch.diag(torch.clamp(torch.diagonal(ck), min=max(reg_covar, 1e-6)))
                    Lk = torch.linalg.cholesky(trial)
                c[k] = trial
                L[k] = Lk
            bad = failed if cov_type == "full" else ([0] if failed else [])
        eye = torch.eye(c.shape[-1], dtype=c.dtype, device=c.device).expand_as(c)
        P = torch.linalg.solve_triangular(L, eye, upper=False).transpose(-1, -2)
        if cov_type == "tied":
            return P[0].contiguous(), c[0], bad
        return P.contiguous(), c, bad
    nonpos = cov <= 0
    if bool(nonpos.any()):
        idx = torch.nonzero(nonpos if cov_type == "spherical" else nonpos.any(-1)).flatten().tolist()
        floor = max(reg_covar, 1e-6 if cov.dtype == torch.float32 else 1e-12)
        cov = torch.where(nonpos, torch.full_like(cov, floor), cov)
        bad = idx
    return torch.rsqrt(cov), cov, bad


def precision_cholesky_from_precisions(prec: torch.Tensor, cov_type: str) -> torch.Tensor:
    """Upper-triangular P with P P^T = prec (scikit-learn's flip trick: J chol(J prec J) J)."""
    if cov_type in ("full", "tied"):
        flipped = torch.flip(prec, dims=(-2, -1))
        L, info = torch.linalg.cholesky_ex(flipped)
        if bool((info != 0).any()):
            raise ValueError("precisions_init is not symmetric positive definite")
        return torch.flip(L, dims=(-2, -1)).contiguous()
    if bool((prec <= 0).any()):
        raise ValueError("precisions_init must be positive")
    return torch.sqrt(prec)


def covariance_from_pchol(pchol: torch.Tensor, cov_type: str) -> torch.Tensor:
    """Sigma = (P P^T)^{-1} from the precision Cholesky factor."""
    if cov_type in ("full", "tied"):
        D = pchol.shape[-1]
        eye = torch.eye(D, dtype=pchol.dtype, device=pchol.device).expand_as(pchol)
        Pinv: torch.Tensor = torch.linalg.solve_triangular(pchol, eye, upper=True)  # P^{-1}
        return Pinv.transpose(-1, -2) @ Pinv
    return 1.0 / (pchol * pchol)


def log_det_cholesky(pchol: torch.Tensor, cov_type: str, n_features: int) -> torch.Tensor:
    """sum_d log P_dd = -1/2 log det Sigma; shape (K,) ('tied': a scalar)."""
    if cov_type in ("full", "tied"):
        return torch.log(torch.diagonal(pchol, dim1=-2, dim2=-1)).sum(-1)
    if cov_type == "diag":
        return torch.log(pchol).sum(-1)
    return n_features * torch.log(pchol)


# ----------------------------------------------------------------------------------------------------------------
# E-step
# ----------------------------------------------------------------------------------------------------------------

# fill(start, stop, W, scratch): W (K, stop - start) <- log pi_k + log N(x_n; mu_k, Sigma_k) for rows start:stop
Filler = Callable[[int, int, torch.Tensor, dict[str, torch.Tensor]], None]


def diag_terms(
    log_weights: torch.Tensor, means: torch.Tensor, pchol: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(A1, A2, b)`` with log pi_k + log N(x; mu_k, diag(1/prec_k)) = b_k + A1_k . x + A2_k . x^2:
    A1 = mu prec, A2 = -prec / 2, b = log pi - (D log 2 pi + sum_d mu^2 prec) / 2 + sum_d log P (b as (K, 1))."""
    D = means.shape[1]
    prec = pchol * pchol
    A1 = (means * prec).contiguous()
    A2 = (-0.5 * prec).contiguous()
    b = -0.5 * ((means * means * prec).sum(1) + D * LOG_2PI) + log_det_cholesky(pchol, "diag", D) + log_weights
    return A1, A2, b.reshape(-1, 1)


def weighted_filler(
    X: torch.Tensor, log_weights: torch.Tensor, means: torch.Tensor, pchol: torch.Tensor, cov_type: str
) -> tuple[int, Filler]:
    """``(width, fill)``: ``fill`` computes log pi_k + log N(x_n; mu_k, Sigma_k) for a chunk of rows, with a
    (rows, ``width``) working array.

    'full'/'tied': one GEMM ``[P_1 ... P_K]^T X_c^T - [mu_1 P_1 ... mu_K P_K]^T`` (K*D, rows), squared and summed
    over each component's D rows: M_kn = ||x_n P_k - mu_k P_k||^2, then -1/2 (D log 2 pi + M) + sum_d log P_dd +
    log pi. 'diag': b + A1 X_c^T + A2 (X_c^2)^T (two GEMMs, ``diag_terms``; x^2 made in cache). 'spherical':
    -prec_k / 2 (||mu_k||^2 - 2 mu_k . x + ||x||^2) + const.
    """
    D = X.shape[1]
    K = means.shape[0]
    if cov_type == "diag":
        A1, A2, b = diag_terms(log_weights, means, pchol)
        dnn = onednn_linear(X)

        def fill_diag(s: int, e: int, W: torch.Tensor, scratch: dict[str, torch.Tensor]) -> None:
            Xc, X2c = chunk_and_squares(X, s, e, scratch)
            if dnn is None:
                torch.addmm(b, A1, Xc.T, out=W)
                W.addmm_(A2, X2c.T)
            else:
                torch.add(add_linear_t(linear_t(A1, Xc, dnn), A2, X2c, dnn), b, out=W)

        return D, fill_diag
    const = (-0.5 * D * LOG_2PI + log_det_cholesky(pchol, cov_type, D) + log_weights).reshape(-1, 1)
    if cov_type == "spherical":
        prec = (pchol * pchol).unsqueeze(1)
        mu2 = (means * means).sum(1, keepdim=True)

        def fill_spherical(s: int, e: int, W: torch.Tensor, scratch: dict[str, torch.Tensor]) -> None:
            Xc = X[s:e]
            torch.addmm(mu2, means, Xc.T, alpha=-2.0, out=W)
            W.add_((Xc * Xc).sum(1)).mul_(prec).mul_(-0.5).add_(const)

        return D, fill_spherical
    P = pchol if cov_type == "full" else pchol.unsqueeze(0).expand(K, D, D)
    WT = P.permute(0, 2, 1).reshape(K * D, D).contiguous()  # rows: columns of P_1 ... P_K
    bm = torch.einsum("kd,kde->ke", means, P).reshape(K * D, 1).contiguous()  # mu_k P_k
    XT = X.T
    dnn = onednn_linear(X) if D >= ONEDNN_MIN_FEATURES else None

    def fill_full(s: int, e: int, W: torch.Tensor, scratch: dict[str, torch.Tensor]) -> None:
        if dnn is None:
            Y = torch.addmm(bm, WT, XT[:, s:e], beta=-1.0, out=scratch_buffer(scratch, "y", (K * D, e - s), X))
        else:  # 153-174 GF/s against 82 for (500 x 50) x (50 x 524), one thread
            Y = linear_t(WT, X[s:e], dnn).sub_(bm)
        Y.square_()
        torch.sum(Y.view(K, D, e - s), 1, out=W)
        W.mul_(-0.5).add_(const)

    return K * D, fill_full


def normalise_(RT: torch.Tensor, output: str) -> torch.Tensor:
    """From W = log pi_k + log N (K, n), in place: the responsibilities ('resp'), log r ('log_resp') or W itself
    ('weighted'). Returns log sum_k exp W_kn (n,).

    'resp' needs one exp: r = exp(W - max) / sum exp(W - max), with W - max raised to at least log(smallest normal
    float) + 1 first (-86.3 in float32, -707.4 in float64): exp is several times slower where its result underflows
    (measured here, a (10, 334) float32 chunk of a diag E-step on MNIST: 32 us, 6 us after the floor). So a
    responsibility below 3e-38 (float32; 3e-308 float64) of the point's largest one becomes that: below what any
    sum in EM resolves (n_k has 10 eps added). A point that no component explains (W = -inf for every k) keeps
    log p(x) = -inf and undefined (NaN) responsibilities."""
    if output == "resp":
        m = RT.amax(0)
        none = m == -math.inf
        m.masked_fill_(none, 0.0)
        RT.sub_(m).clamp_min_(math.log(torch.finfo(RT.dtype).tiny) + 1.0).exp_()
        if bool(none.any()):
            RT.masked_fill_(none, 0.0)
        s = RT.sum(0)
        RT.div_(s)
        return s.log_().add_(m)
    log_norm = torch.logsumexp(RT, dim=0)
    if output == "log_resp":
        RT.sub_(log_norm)
    return log_norm


def e_step(
    X: torch.Tensor,
    log_weights: torch.Tensor,
    means: torch.Tensor,
    pchol: torch.Tensor,
    cov_type: str,
    *,
    output: str = "resp",
    cache: DataCache | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One E-step over all rows, streamed: per chunk of rows, ``weighted_filler``'s log pi_k + log N written into
    its columns of RT, then normalised while it is in cache (``normalise_``).

    ``output``: 'resp' (responsibilities r_kn), 'log_resp' (log r_kn) or 'weighted' (log pi_k + log N, not
    normalised). Returns ``(log_norm, RT)`` with ``log_norm[n] = log sum_k pi_k N(x_n; mu_k, Sigma_k)`` (N,) and
    RT (K, N) (components first: every later reduction over k runs along long contiguous rows). ``cache`` is
    accepted for symmetry with ``m_step``; the E-step needs none.
    """
    N = X.shape[0]
    K = means.shape[0]
    width, fill = weighted_filler(X, log_weights, means, pchol, cov_type)
    rows, block, workers = row_plan(X, width)
    RT = torch.empty((K, N), dtype=X.dtype, device=X.device)
    log_norm = torch.empty(N, dtype=X.dtype, device=X.device)

    def run(s: int, e: int, scratch: dict[str, torch.Tensor]) -> None:
        for c in range(s, e, rows):
            ce = min(c + rows, e)
            W = RT[:, c:ce]
            fill(c, ce, W, scratch)
            log_norm[c:ce] = normalise_(W, output)

    parallel_blocks(N, block, workers, run)
    return log_norm, RT


# ----------------------------------------------------------------------------------------------------------------
# M-step
# ----------------------------------------------------------------------------------------------------------------


def scatter_full(XT: torch.Tensor, respT: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """S_k = sum_n r_kn (x_n - mu_k)(x_n - mu_k)^T, (K, D, D), from X^T (D, N) and r (K, N).

    Centred per component (no E[x x^T] - mu mu^T cancellation) and sqrt(r)-weighted, Z_k = (X^T - mu_k) sqrt(r_k),
    S_k = Z_k Z_k^T; columns in cache-sized chunks, one batched GEMM over k per chunk (or, with oneDNN, one GEMM
    per component on chunks of ``SCATTER_ONEDNN_ROWS``: 99-108 GF/s against 66-69 for the batched one, K=10, D=50,
    one thread); blocks of chunks in parallel threads, their partial S added in block order.
    """
    D, N = XT.shape
    K = means.shape[0]
    dnn = onednn_linear(XT) if D >= ONEDNN_MIN_FEATURES else None
    min_rows = SCATTER_ONEDNN_ROWS if dnn is not None else 64
    rows, block, workers = row_plan(XT.T, K * D, result_elems=K * D * D, min_rows=min_rows)
    mu = means.unsqueeze(2)

    def run(s: int, e: int, scratch: dict[str, torch.Tensor]) -> tuple[torch.Tensor]:
        S = torch.zeros((K, D, D), dtype=XT.dtype, device=XT.device)
        Sk = list(S.unbind(0))
        for c in range(s, e, rows):
            ce = min(c + rows, e)
            Zc = scratch_buffer(scratch, "z", (K, D, ce - c), XT)
            sqc = scratch_buffer(scratch, "sq", (K, ce - c), XT)
            torch.sub(XT[:, c:ce].unsqueeze(0), mu, out=Zc)
            torch.sqrt(respT[:, c:ce], out=sqc)
            Zc.mul_(sqc.unsqueeze(1))
            if dnn is None:
                S.baddbmm_(Zc, Zc.transpose(1, 2))
            else:
                Sk = [cast(torch.Tensor, dnn[1](Zc[k], Sk[k], Zc[k], None, "add")) for k in range(K)]
        return (S,) if dnn is None else (torch.stack(Sk),)

    return sum_blocks(parallel_blocks(N, block, workers, run))[0]


def diag_params(
    nk: torch.Tensor, Sx: torch.Tensor, Sxx: torch.Tensor, reg_covar: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(n_k + 10 eps, mu_k, var_k)`` from n_k = sum_n r_kn, Sx_k = sum_n r_kn x_n and Sxx_k = sum_n r_kn x_n^2:
    mu = Sx / n, var = max(Sxx / n - mu^2, 0) + reg_covar (scikit-learn's estimator)."""
    nk = nk + 10 * torch.finfo(nk.dtype).eps
    means = Sx / nk.unsqueeze(1)
    var = (Sxx / nk.unsqueeze(1) - means * means).clamp_min_(0.0) + reg_covar
    return nk, means, var


def diag_stats(X: torch.Tensor, respT: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(sum_n r_kn, sum_n r_kn x_n, sum_n r_kn x_n^2)`` for r (K, N), streamed (two GEMMs a chunk, x^2 made in
    cache), the blocks' partial sums added in block order."""
    K, D = respT.shape[0], X.shape[1]
    rows, block, workers = row_plan(X, D, result_elems=2 * K * D)
    dnn = onednn_linear(X)

    def run(s: int, e: int, scratch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        Sx = torch.zeros((K, D), dtype=X.dtype, device=X.device)
        Sxx = torch.zeros_like(Sx)
        for c in range(s, e, rows):
            ce = min(c + rows, e)
            Xc, X2c = chunk_and_squares(X, c, ce, scratch)
            Rc = respT[:, c:ce]
            Sx = add_linear(Sx, Rc, Xc, dnn)
            Sxx = add_linear(Sxx, Rc, X2c, dnn)
        return respT[:, s:e].sum(1), Sx, Sxx

    nk, Sx, Sxx = sum_blocks(parallel_blocks(X.shape[0], block, workers, run))
    return nk, Sx, Sxx


def m_step(
    X: torch.Tensor, respT: torch.Tensor, reg_covar: float, cov_type: str, cache: DataCache | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Maximum-likelihood parameters given responsibilities r (K, N) (scikit-learn's estimator).

    n_k = sum_n r_kn + 10 eps, mu_k = sum_n r_kn x_n / n_k, Sigma_k = S_k / n_k + reg I ('tied': sum_k S_k / N;
    'diag': E_k[x^2] - mu_k^2 + reg, from ``diag_stats``; 'spherical': its mean over features). Returns
    ``(nk, means, cov)``.
    """
    if cov_type in ("diag", "spherical"):
        nk, means, var = diag_params(*diag_stats(X, respT), reg_covar)
        return (nk, means, var) if cov_type == "diag" else (nk, means, var.mean(1))
    eps = torch.finfo(X.dtype).eps
    nk = respT.sum(1) + 10 * eps
    means = (respT @ X) / nk.unsqueeze(1)
    XT = cache.Xt if cache is not None and cache.Xt is not None else X.T.contiguous()
    S = scatter_full(XT, respT, means)
    if cov_type == "full":
        cov = S / nk.view(-1, 1, 1)
    else:
        cov = S.sum(0) / nk.sum()
    cov.diagonal(dim1=-2, dim2=-1).add_(reg_covar)
    cov = 0.5 * (cov + cov.transpose(-1, -2))
    return nk, means, cov


def em_step_diag(
    X: torch.Tensor,
    log_weights: torch.Tensor,
    means: torch.Tensor,
    pchol: torch.Tensor,
    reg_covar: float,
) -> tuple[float, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """One EM iteration for 'diag' in a single pass over the rows of X: per chunk of rows (2 MB, in cache),
    x^2 into a buffer, the E-step r_kn with the current parameters (two GEMMs, ``diag_terms``), then the M-step sums
    n_k, sum_n r_kn x_n and sum_n r_kn x_n^2 (two GEMMs) while the chunk is still in cache: X is read from memory
    once per iteration and nothing of its size is stored. Blocks of chunks run in parallel threads
    (``parallel_blocks``); their partial sums are added in block order. Same estimator as ``e_step`` + ``m_step``.

    Returns ``(mean log-likelihood, (nk, means, var))``.
    """
    N, D = X.shape
    K = means.shape[0]
    A1, A2, b = diag_terms(log_weights, means, pchol)
    rows, block, workers = row_plan(X, D, result_elems=2 * K * D)
    dnn = onednn_linear(X)

    def run(s: int, e: int, scratch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        nk = torch.zeros(K, dtype=X.dtype, device=X.device)
        Sx = torch.zeros((K, D), dtype=X.dtype, device=X.device)
        Sxx = torch.zeros_like(Sx)
        total = torch.zeros((), dtype=torch.float64, device=X.device)
        for c in range(s, e, rows):
            ce = min(c + rows, e)
            Xc, X2c = chunk_and_squares(X, c, ce, scratch)
            if dnn is None:
                Wc = torch.addmm(b, A1, Xc.T, out=scratch_buffer(scratch, "w", (K, ce - c), X))
                Wc.addmm_(A2, X2c.T)
            else:
                Wc = add_linear_t(linear_t(A1, Xc, dnn), A2, X2c, dnn).add_(b)
            total += normalise_(Wc, "resp").sum(dtype=torch.float64)
            nk += Wc.sum(1)
            Sx = add_linear(Sx, Wc, Xc, dnn)
            Sxx = add_linear(Sxx, Wc, X2c, dnn)
        return nk, Sx, Sxx, total

    nk, Sx, Sxx, total = sum_blocks(parallel_blocks(N, block, workers, run))
    return float(total) / N, diag_params(nk, Sx, Sxx, reg_covar)
