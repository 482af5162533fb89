"""Batched EM kernels for Gaussian mixtures: pure functions over tensors.

Notation: X is (N, D), K components with weights pi_k, means mu_k and covariances Sigma_k. Precisions are kept
as Cholesky factors P_k with ``P_k P_k^T = Sigma_k^{-1}`` (P_k upper triangular, as in scikit-learn), so

    log N(x; mu_k, Sigma_k) = -1/2 (D log 2 pi + ||x P_k - mu_k P_k||^2) + sum_d log (P_k)_dd.

Covariance types and the shape of ``cov`` / ``pchol``: 'full' (K, D, D), 'tied' (D, D), 'diag' (K, D),
'spherical' (K,).

Speed (DESIGN-NOTES section 6): the E-step evaluates the Mahalanobis terms of all K components with one GEMM
``X_c @ [P_1 ... P_K]`` per chunk of rows X_c small enough to stay in cache (no N x K x D tensor for large N);
the M-step builds the centred, sqrt(r)-weighted scatter matrices chunk by chunk with a batched GEMM, which also
avoids the cancellation of ``E[x x^T] - mu mu^T`` in float32.
"""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2.0 * math.pi)
COV_TYPES = ("full", "tied", "diag", "spherical")
_CHUNK_ELEMS = 1 << 18  # elements of a chunk's (rows, K*D) block: ~1 MB in float32


def chunk_rows(n_rows: int, width: int) -> int:
    """Rows per chunk so that a (rows, width) block stays in cache."""
    return int(max(256, min(n_rows, _CHUNK_ELEMS // max(width, 1), 16384)))


class DataCache:
    """Per-fit derived copies of X that several passes reuse (X*X for 'diag', row norms for 'spherical')."""

    def __init__(self, X: torch.Tensor, cov_type: str):
        self.X = X
        self.X2 = X * X if cov_type in ("diag", "spherical") else None
        self.sqnorm = self.X2.sum(1) if cov_type == "spherical" else None


# ----------------------------------------------------------------------------------------------------------------
# precision Cholesky factors
# ----------------------------------------------------------------------------------------------------------------

def precision_cholesky(cov: torch.Tensor, cov_type: str, reg_covar: float = 0.0):
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
        Pinv = torch.linalg.solve_triangular(pchol, eye, upper=True)  # P^{-1}
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

def _mahalanobis_setup(means: torch.Tensor, pchol: torch.Tensor, cov_type: str):
    K, D = means.shape
    if cov_type in ("full", "tied"):
        P = pchol if cov_type == "full" else pchol.unsqueeze(0).expand(K, D, D)
        W = P.permute(1, 0, 2).reshape(D, K * D).contiguous()          # [P_1 ... P_K]
        b = torch.einsum("kd,kde->ke", means, P).reshape(K * D).contiguous()  # [mu_1 P_1 ... mu_K P_K]
        return {"W": W, "b": b}
    prec = pchol * pchol
    if cov_type == "diag":
        return {"A": (-2.0 * means * prec).T.contiguous(), "B": prec.T.contiguous(),
                "c": (means * means * prec).sum(1)}
    return {"A": (-2.0 * means).T.contiguous(), "c": (means * means).sum(1), "prec": prec}


def weighted_log_prob(X: torch.Tensor, log_weights: torch.Tensor, means: torch.Tensor, pchol: torch.Tensor,
                      cov_type: str, out: torch.Tensor, rows: slice, setup: dict, cache: DataCache | None,
                      buf: torch.Tensor | None = None) -> torch.Tensor:
    """log pi_k + log N(x_n; mu_k, Sigma_k) for the rows ``rows`` of X, written into ``out`` (rows, K)."""
    K, D = means.shape
    Xc = X[rows]
    if cov_type in ("full", "tied"):
        n = Xc.shape[0]
        Y = torch.addmm(setup["b"], Xc, setup["W"], beta=-1.0, out=None if buf is None else buf[:n])
        Y.square_()
        torch.sum(Y.view(n, K, D), dim=2, out=out)
    elif cov_type == "diag":
        X2c = cache.X2[rows] if cache is not None and cache.X2 is not None else Xc * Xc
        torch.addmm(setup["c"], Xc, setup["A"], out=out)
        out.addmm_(X2c, setup["B"])
    else:
        sq = cache.sqnorm[rows] if cache is not None and cache.sqnorm is not None else (Xc * Xc).sum(1)
        torch.addmm(setup["c"], Xc, setup["A"], out=out)
        out.add_(sq.unsqueeze(1)).mul_(setup["prec"])
    const = -0.5 * D * LOG_2PI + log_det_cholesky(setup["pchol"], cov_type, D) + log_weights
    out.mul_(-0.5).add_(const)
    return out


def e_step(X: torch.Tensor, log_weights: torch.Tensor, means: torch.Tensor, pchol: torch.Tensor, cov_type: str,
           *, output: str = "resp", cache: DataCache | None = None, out: torch.Tensor | None = None):
    """One E-step over all rows, chunked.

    ``output``: 'resp' (responsibilities r_nk), 'log_resp' (log r_nk) or 'weighted' (log pi_k + log N, no
    normalisation). Returns ``(log_norm, R)`` with ``log_norm[n] = log sum_k pi_k N(x_n; mu_k, Sigma_k)`` (N,)
    and R (N, K).
    """
    N, D = X.shape
    K = means.shape[0]
    R = out if out is not None else torch.empty((N, K), dtype=X.dtype, device=X.device)
    log_norm = torch.empty(N, dtype=X.dtype, device=X.device)
    setup = _mahalanobis_setup(means, pchol, cov_type)
    setup["pchol"] = pchol
    width = K * D if cov_type in ("full", "tied") else D
    step = chunk_rows(N, width)
    buf = None
    if cov_type in ("full", "tied"):
        buf = torch.empty((min(step, N), K * D), dtype=X.dtype, device=X.device)
    for s in range(0, N, step):
        rows = slice(s, min(s + step, N))
        Rc = R[rows]
        weighted_log_prob(X, log_weights, means, pchol, cov_type, Rc, rows, setup, cache, buf)
        if output == "weighted":
            torch.logsumexp(Rc, dim=1, out=log_norm[rows])
            continue
        ln = log_norm[rows]
        torch.logsumexp(Rc, dim=1, out=ln)
        Rc.sub_(ln.unsqueeze(1))
        if output == "resp":
            Rc.exp_()
    return log_norm, R


# ----------------------------------------------------------------------------------------------------------------
# M-step
# ----------------------------------------------------------------------------------------------------------------

def _scatter_full(X: torch.Tensor, resp: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """S_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T, (K, D, D): centred per component, chunked, batched GEMM."""
    N, D = X.shape
    K = means.shape[0]
    S = torch.zeros((K, D, D), dtype=X.dtype, device=X.device)
    step = chunk_rows(N, K * D)
    Z = torch.empty((min(step, N), K, D), dtype=X.dtype, device=X.device)
    sq = torch.empty((min(step, N), K), dtype=X.dtype, device=X.device)
    for s in range(0, N, step):
        e = min(s + step, N)
        n = e - s
        Zc = Z[:n]
        torch.sub(X[s:e].unsqueeze(1), means.unsqueeze(0), out=Zc)
        sqc = sq[:n]
        torch.sqrt(resp[s:e], out=sqc)
        Zc.mul_(sqc.unsqueeze(2))
        S.baddbmm_(Zc.permute(1, 2, 0), Zc.permute(1, 0, 2))
    return S


def m_step(X: torch.Tensor, resp: torch.Tensor, reg_covar: float, cov_type: str, cache: DataCache | None = None):
    """Maximum-likelihood parameters given responsibilities (scikit-learn's estimator, reg_covar on the diagonal).

    n_k = sum_n r_nk + 10 eps, mu_k = sum_n r_nk x_n / n_k, Sigma_k = S_k / n_k + reg I ('tied': sum_k S_k / N;
    'diag': E_k[x^2] - mu_k^2 + reg; 'spherical': its mean over features). Returns ``(nk, means, cov)``.
    """
    eps = torch.finfo(X.dtype).eps
    nk = resp.sum(0) + 10 * eps
    means = (resp.T @ X) / nk.unsqueeze(1)
    D = X.shape[1]
    if cov_type in ("full", "tied"):
        S = _scatter_full(X, resp, means)
        if cov_type == "full":
            cov = S / nk.view(-1, 1, 1)
        else:
            cov = S.sum(0) / nk.sum()
        cov.diagonal(dim1=-2, dim2=-1).add_(reg_covar)
        cov = 0.5 * (cov + cov.transpose(-1, -2))
        return nk, means, cov
    X2 = cache.X2 if cache is not None and cache.X2 is not None else X * X
    avg_X2 = (resp.T @ X2) / nk.unsqueeze(1)
    var = (avg_X2 - means * means).clamp_min_(0.0) + reg_covar
    if cov_type == "diag":
        return nk, means, var
    return nk, means, var.mean(1)
