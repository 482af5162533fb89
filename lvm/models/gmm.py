"""Gaussian mixture model fitted by EM, in torch, with scikit-learn's ``GaussianMixture`` interface.

p(x) = sum_k pi_k N(x; mu_k, Sigma_k). EM alternates

- E-step: r_nk = pi_k N(x_n; mu_k, Sigma_k) / sum_j pi_j N(x_n; mu_j, Sigma_j), computed in log space, and the mean
  log-likelihood L = 1/N sum_n log sum_k pi_k N(x_n; mu_k, Sigma_k);
- M-step: n_k = sum_n r_nk, pi_k = n_k / N, mu_k = sum_n r_nk x_n / n_k,
  Sigma_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T / n_k + reg_covar I (or the tied / diagonal / spherical variant).

The loop mirrors scikit-learn's exactly (E-step giving L, M-step, stop when |L - L_prev| < tol), so from the same
initial parameters both reach the same result; ``lower_bound_`` is the L of the final iteration's E-step.

Teaching API: :meth:`GaussianMixture.e_step`, :meth:`GaussianMixture.m_step` and :meth:`GaussianMixture.em_steps`
(a generator of :class:`EMSnapshot` after each half step), :meth:`GaussianMixture.from_params` and
:meth:`GaussianMixture.log_component_densities`.
"""

from __future__ import annotations

import functools
import inspect
import math
import sys
import warnings
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Concatenate, Literal, ParamSpec, TypeAlias, TypeVar, cast, overload

import numpy as np
import numpy.typing as npt
import torch

from lvm.device import resolve_device
from lvm.errors import ModelInputError
from lvm.models import gmm_kernels as K_
from lvm.models.gmm_init import RandomStateLike, kmeans, kmeans_plusplus, numpy_rng

if TYPE_CHECKING:
    from sklearn.utils import Tags

# X as the estimator takes it: an (N, D) array, nested sequence of numbers or tensor
DataLike: TypeAlias = npt.ArrayLike | torch.Tensor
# X where its length is the number of samples (``bic``, ``aic``)
SizedData: TypeAlias = npt.NDArray[Any] | torch.Tensor | Sequence[Sequence[float]]
_T = TypeVar("_T")
_P = ParamSpec("_P")

INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")
RESP_SNAPSHOT_LIMIT = 20_000


class ComponentCollapseWarning(UserWarning):
    """A component's covariance collapsed (not positive definite even with reg_covar, or almost no points)."""


class ConvergenceWarning(UserWarning):
    """EM stopped at max_iter before |L - L_prev| < tol."""


class NotFittedError(ModelInputError):
    """The model is used before ``fit`` (or ``from_params``)."""


class NonNumericInputError(ModelInputError, TypeError):
    """X holds something other than numbers (a TypeError too, as numpy's and scikit-learn's)."""


def _not_fitted_error(message: str) -> NotFittedError:
    """A :class:`NotFittedError` that is also scikit-learn's ``NotFittedError`` where scikit-learn is in use (so
    ``except sklearn.exceptions.NotFittedError`` catches it), without importing scikit-learn."""
    sk = sys.modules.get("sklearn.exceptions")
    if sk is None:
        return NotFittedError(message)
    global _SklearnNotFittedError
    if _SklearnNotFittedError is None:
        _SklearnNotFittedError = cast(
            type[NotFittedError],
            type(
                "NotFittedError",
                (NotFittedError, sk.NotFittedError),
                {"__module__": __name__, "__doc__": NotFittedError.__doc__},
            ),
        )
    return _SklearnNotFittedError(message)


_SklearnNotFittedError: type[NotFittedError] | None = None


def full_covariances(
    covariances: DataLike, covariance_type: str, n_components: int, n_features: int
) -> npt.NDArray[np.float64]:
    """The (K, D, D) covariance matrices Sigma_k from the compact form of ``covariance_type`` ('full' (K, D, D),
    'tied' (D, D) shared, 'diag' (K, D) variances, 'spherical' (K,) one variance), as float64."""
    cov = np.asarray(covariances, dtype=np.float64)
    k, d = int(n_components), int(n_features)
    if covariance_type == "full":
        return cov.reshape(k, d, d).copy()
    if covariance_type == "tied":
        return np.broadcast_to(cov.reshape(d, d), (k, d, d)).copy()
    if covariance_type == "diag":
        return cov.reshape(k, d)[:, :, None] * np.eye(d)[None]
    if covariance_type == "spherical":
        return cov.reshape(k)[:, None, None] * np.eye(d)[None]
    raise ModelInputError(f"covariance_type must be one of {', '.join(K_.COV_TYPES)}, got {covariance_type!r}")


def log_component_joint(
    X: DataLike, weights: DataLike, means: DataLike, covariances: DataLike, covariance_type: str = "full"
) -> npt.NDArray[np.float64]:
    """log pi_k + log N(x_n; mu_k, Sigma_k) as an (N, K) float64 array, in numpy: the numerators of Bayes' rule
    p(z=k | x_n) for a few points, without building a fitted model (``GaussianMixture.from_params`` plus
    ``log_component_densities`` cost ~1.5 ms for one point; this, ~30 us). The weights are normalised; the
    covariances must be positive definite (``numpy.linalg.LinAlgError`` otherwise: ``from_params`` repairs them)."""
    x = np.atleast_2d(np.asarray(X, dtype=np.float64))
    mu = np.asarray(means, dtype=np.float64)
    k, d = mu.shape
    w = np.asarray(weights, dtype=np.float64).reshape(k)
    chol = np.linalg.cholesky(full_covariances(covariances, covariance_type, k, d))  # Sigma_k = L_k L_k^T
    white = np.linalg.solve(chol, (x[None, :, :] - mu[:, None, :]).transpose(0, 2, 1))  # L_k^-1 (x_n - mu_k)
    log_det = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(1)
    with np.errstate(divide="ignore"):  # a weight of 0: log 0 = -inf, the component cannot have made x
        log_w = np.log(w / w.sum())
    log_normal = -0.5 * (d * math.log(2 * math.pi) + log_det[:, None] + (white**2).sum(1))
    return np.asarray((log_w[:, None] + log_normal).T, dtype=np.float64)


@dataclass(frozen=True)
class EMSnapshot:
    """The state after one half step of EM: ``half`` is 'init', 'E' or 'M'.

    ``log_likelihood``: mean log-likelihood per sample under the parameters shown (after an M step: the new ones).
    ``resp``: (N, K) float32 responsibilities used by / produced at this step, or None for large N.
    ``collapsed``: indices of components repaired in this step (see :class:`ComponentCollapseWarning`).
    """

    iteration: int
    half: str
    weights: npt.NDArray[np.float64]
    means: npt.NDArray[np.float64]
    covariances: npt.NDArray[np.float64]
    log_likelihood: float
    resp: npt.NDArray[np.float32] | None
    collapsed: tuple[int, ...] = ()


def _result(gen: Generator[Any, None, _T]) -> _T:
    """Run a generator to its end and return its return value."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            value: _T = stop.value
            return value


def _em_threads(
    method: Callable[Concatenate[GaussianMixture, _P], _T],
) -> Callable[Concatenate[GaussianMixture, _P], _T]:
    """Run a method under ``gmm_kernels.em_threads`` (streamed passes on the calling thread's torch threads, the
    small parameter updates on one) for its first tensor argument, the data X (N, D), else (no tensor argument) for
    the model's (K, D) means."""

    @functools.wraps(method)
    def wrapper(self: GaussianMixture, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        X = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if X is None and hasattr(self, "_means"):
            X = self._means
        if X is None:
            return method(self, *args, **kwargs)
        with K_.em_threads(X.device, X.shape[-1]):
            return method(self, *args, **kwargs)

    return wrapper


def _shape_of_precisions(cov_type: str, k: int, d: int) -> tuple[int, ...]:
    return {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}[cov_type]


class GaussianMixture:
    """Gaussian mixture model (scikit-learn's parameters and attributes), computed in torch.

    Extra parameters: ``device`` ('auto'/'cpu'/'cuda' or a torch.device) and ``dtype`` (torch.float32 or
    torch.float64). Fitted attributes are numpy arrays of that dtype: ``weights_, means_, covariances_,
    precisions_, precisions_cholesky_``, plus ``converged_, n_iter_, lower_bound_, lower_bounds_`` and
    ``history_`` (mean log-likelihood per iteration of the best initialisation).
    """

    # the state (torch tensors; absent before fitting) and the fitted attributes
    _weights: torch.Tensor
    _means: torch.Tensor
    _cov: torch.Tensor | None
    _pchol: torch.Tensor
    _last_collapsed: tuple[int, ...]
    weights_: npt.NDArray[np.floating[Any]]
    means_: npt.NDArray[np.floating[Any]]
    covariances_: npt.NDArray[np.floating[Any]]
    precisions_cholesky_: npt.NDArray[np.floating[Any]]
    precisions_: npt.NDArray[np.floating[Any]]
    n_features_in_: int
    converged_: bool
    n_iter_: int
    lower_bound_: float
    lower_bounds_: list[float]
    history_: list[float]

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weights_init: DataLike | None = None,
        means_init: DataLike | None = None,
        precisions_init: DataLike | None = None,
        random_state: RandomStateLike = None,
        warm_start: bool = False,
        device: str | torch.device = "auto",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.device = device
        self.dtype = dtype

    # ------------------------------------------------------------------------------------------------------------
    # parameters and input checks
    # ------------------------------------------------------------------------------------------------------------

    # scikit-learn's estimator protocol, implemented here so that lvm imports without scikit-learn (importing
    # sklearn.base would cost every lvm user ~1 s): the parameters are the keyword arguments of __init__, stored
    # unchanged under their own names (so ``clone`` and ``GridSearchCV`` can rebuild the estimator), and
    # ``__sklearn_tags__`` (asked only by scikit-learn, so it may import it) says: a density estimator, no y.

    _estimator_type = "DensityEstimator"  # how scikit-learn < 1.6 recognised a density estimator

    @classmethod
    def _get_param_names(cls) -> list[str]:
        """The names of the keyword arguments of ``__init__`` (sorted, as scikit-learn)."""
        sig = inspect.signature(cls.__init__)
        return sorted(
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters as a dict (``deep`` is accepted for scikit-learn; nothing is nested)."""
        return {n: getattr(self, n) for n in self._get_param_names()}

    def set_params(self, **params: Any) -> GaussianMixture:
        """Set constructor parameters (checked when fitting, as scikit-learn); unknown names are an error."""
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ModelInputError(
                    f"invalid parameter {name!r} for GaussianMixture; valid parameters are {', '.join(valid)}"
                )
            setattr(self, name, value)
        return self

    def __sklearn_tags__(self) -> Tags:
        from sklearn.utils import Tags, TargetTags

        return Tags(estimator_type="density_estimator", target_tags=TargetTags(required=False))

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "_means")

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = []
        for name in self._get_param_names():
            value = getattr(self, name)
            default = defaults.get(name, inspect.Parameter.empty)
            same = value is default or (
                isinstance(value, (str, int, float, bool, type(None), torch.dtype))
                and type(value) is type(default)
                and value == default
            )
            if not same:
                changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"

    def _check_parameters(self) -> None:
        if not isinstance(self.n_components, (int, np.integer)) or self.n_components < 1:
            raise ModelInputError(f"n_components must be a positive integer, got {self.n_components!r}")
        if self.covariance_type not in K_.COV_TYPES:
            raise ModelInputError(
                f"covariance_type must be one of {', '.join(K_.COV_TYPES)}, got {self.covariance_type!r}"
            )
        if self.init_params not in INIT_PARAMS:
            raise ModelInputError(f"init_params must be one of {', '.join(INIT_PARAMS)}, got {self.init_params!r}")
        if self.tol < 0 or self.reg_covar < 0:
            raise ModelInputError("tol and reg_covar must be non-negative")
        if self.max_iter < 0 or self.n_init < 1:
            raise ModelInputError("max_iter must be >= 0 and n_init >= 1")
        if self.dtype not in (torch.float32, torch.float64):
            raise ModelInputError(f"dtype must be torch.float32 or torch.float64, got {self.dtype!r}")

    @property
    def _device(self) -> torch.device:
        return resolve_device(self.device)

    def _to_tensor(self, X: DataLike, what: str = "X") -> torch.Tensor:
        if isinstance(X, torch.Tensor):
            t = X.detach()
            if t.is_floating_point() or t.dtype in (torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64):
                t = t.to(device=self._device, dtype=self.dtype)
            else:
                raise ModelInputError(f"{what} must hold real numbers, got a tensor of {t.dtype}")
        else:
            if type(X).__module__.startswith("scipy.sparse"):
                raise ModelInputError(
                    f"{what} is a sparse matrix; sparse input is not supported: pass a dense array (X.toarray())"
                )
            try:
                a = np.asarray(X)
            except Exception as exc:  # ragged lists
                raise ModelInputError(
                    f"{what} could not be read as a numeric array ({exc}); pass an (N, D) array of numbers"
                ) from None
            if a.dtype == object:  # numbers in an object array convert, as scikit-learn's check_array
                try:
                    a = a.astype(np.float64)
                except (TypeError, ValueError) as exc:
                    raise NonNumericInputError(
                        f"{what} must be a numeric (N, D) array, but an element is not a "
                        f"number ({exc}); convert it with np.asarray(X, dtype=float)"
                    ) from None
            if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
                raise NonNumericInputError(
                    f"{what} must be a numeric (N, D) array, got dtype {a.dtype}; convert it "
                    "with np.asarray(X, dtype=float)"
                )
            if np.iscomplexobj(a):
                raise ModelInputError(
                    f"Complex data not supported: {what} holds complex numbers; pass real-valued data"
                )
            np_dtype = np.float32 if self.dtype == torch.float32 else np.float64
            a = np.ascontiguousarray(a, dtype=np_dtype)
            t = torch.from_numpy(a).to(self._device)
        return t.contiguous()

    def _validate_X(self, X: DataLike, *, fitting: bool) -> torch.Tensor:
        t = self._to_tensor(X)
        if t.ndim != 2:
            hint = (
                " Reshape your data: for one feature use X.reshape(-1, 1); for one sample X.reshape(1, -1)."
                if t.ndim == 1
                else " Flatten each sample to a row, e.g. X.reshape(len(X), -1)."
            )
            raise ModelInputError(
                f"X must be a 2-D array of shape (n_samples, n_features), got {t.ndim}-D with "
                f"shape {tuple(t.shape)}.{hint}"
            )
        n, d = t.shape
        if d == 0:
            raise ModelInputError(
                f"X has 0 feature(s) (shape={tuple(t.shape)}) while a minimum of 1 is required; "
                "pass at least one column"
            )
        # one cheap pass: a NaN/inf anywhere makes the sum non-finite (the exact check only then; a finite sum
        # that overflowed passes it)
        if not math.isfinite(float(t.sum())) and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).any(1).sum())
            raise ModelInputError(
                f"X contains NaN or infinite values in {bad} row(s); remove or impute them "
                "(e.g. X[np.isfinite(X).all(1)]) before fitting"
            )
        if fitting:
            if n < max(2, self.n_components):
                raise ModelInputError(
                    f"X has {n} sample(s) but the model has n_components={self.n_components}; "
                    "give at least as many samples as components (and at least 2), or lower "
                    "n_components"
                )
        else:
            self._check_fitted()
            if d != self.n_features_in_:
                raise ModelInputError(
                    f"X has {d} features, but GaussianMixture is expecting {self.n_features_in_} "
                    f"features as input (it was fitted on {self.n_features_in_}); pass data with "
                    f"{self.n_features_in_} columns (the same space as in fit)"
                )
        return t

    def _check_fitted(self) -> None:
        if not hasattr(self, "_means"):
            raise _not_fitted_error(
                "this GaussianMixture is not fitted yet; call fit(X) or GaussianMixture.from_params"
            )

    # ------------------------------------------------------------------------------------------------------------
    # state: torch tensors (_weights, _means, _cov, _pchol) mirrored into numpy attributes by _export
    # ------------------------------------------------------------------------------------------------------------

    def _set_state(
        self, weights: torch.Tensor, means: torch.Tensor, cov: torch.Tensor | None, pchol: torch.Tensor
    ) -> None:
        self._weights, self._means, self._cov, self._pchol = weights, means, cov, pchol

    def _get_state(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
        return (self._weights, self._means, self._cov, self._pchol)

    @_em_threads
    def _export(self) -> None:
        def np_(t: torch.Tensor) -> npt.NDArray[np.floating[Any]]:
            return t.detach().cpu().numpy().copy()

        ct = self.covariance_type
        if self._cov is None:
            self._cov = K_.covariance_from_pchol(self._pchol, ct)
        P = self._pchol
        prec = P @ P.transpose(-1, -2) if ct in ("full", "tied") else P * P
        self.weights_ = np_(self._weights)
        self.means_ = np_(self._means)
        self.covariances_ = np_(self._cov)
        self.precisions_cholesky_ = np_(P)
        self.precisions_ = np_(prec)
        self.n_features_in_ = int(self._means.shape[1])

    def _param_tensor(self, value: DataLike, shape: tuple[int, ...], what: str) -> torch.Tensor:
        a = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value, dtype=np.float64)
        if a.shape != tuple(shape):
            raise ModelInputError(
                f"{what} has shape {a.shape} but {tuple(shape)} is needed for "
                f"n_components={self.n_components}, covariance_type={self.covariance_type!r}"
            )
        if not np.isfinite(a).all():
            raise ModelInputError(f"{what} contains NaN or infinite values")
        return torch.as_tensor(np.ascontiguousarray(a), dtype=self.dtype, device=self._device)

    def _user_init(self, d: int) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        k, ct = self.n_components, self.covariance_type
        w = m = p = None
        if self.weights_init is not None:
            w = self._param_tensor(self.weights_init, (k,), "weights_init")
            if bool((w < 0).any()) or bool((w > 1).any()):
                raise ModelInputError("weights_init must lie in [0, 1]")
            atol = 1e-6 if self.dtype == torch.float32 else 1e-8
            if abs(1.0 - float(w.double().sum())) > atol:
                raise ModelInputError(f"weights_init must sum to 1 (got {float(w.sum()):.6g}); divide by its sum")
        if self.means_init is not None:
            m = self._param_tensor(self.means_init, (k, d), "means_init")
        if self.precisions_init is not None:
            prec = self._param_tensor(self.precisions_init, _shape_of_precisions(ct, k, d), "precisions_init")
            if ct in ("full", "tied") and not bool(torch.allclose(prec, prec.transpose(-1, -2), rtol=1e-5, atol=1e-8)):
                raise ModelInputError("precisions_init must be symmetric")
            try:
                p = K_.precision_cholesky_from_precisions(prec, ct)
            except ValueError as exc:
                raise ModelInputError(f"{exc}; pass valid precision matrices (inverse covariances)") from None
        return w, m, p

    def _initialize(self, X: torch.Tensor, rng: np.random.RandomState, cache: K_.DataCache) -> None:
        """Initial parameters as scikit-learn: user-given ones, the rest from initial responsibilities."""
        n, d = X.shape
        k, ct = self.n_components, self.covariance_type
        w, m, p = self._user_init(d)
        if w is not None and m is not None and p is not None:
            self._set_state(w, m, None, p)
            with K_.em_threads(X.device, d):
                self._cov = K_.covariance_from_pchol(p, ct)
            self._last_collapsed = ()
            return
        respT = torch.zeros((k, n), dtype=self.dtype, device=X.device)  # responsibilities, components first
        if self.init_params == "kmeans":
            _, labels = kmeans(X, k, rng)
            respT[labels, torch.arange(n, device=X.device)] = 1.0
        elif self.init_params == "random":
            r = torch.as_tensor(rng.uniform(size=(n, k)), dtype=self.dtype, device=X.device)
            respT = (r / r.sum(1, keepdim=True)).T.contiguous()
        else:  # one point per component
            if self.init_params == "random_from_data":
                idx = rng.choice(n, size=k, replace=False)
            else:  # k-means++
                _, idx = kmeans_plusplus(X, k, rng)
            respT[torch.arange(k, device=X.device), torch.as_tensor(idx, device=X.device)] = 1.0
        self._init_from_resp(X, respT, cache, w, m, p)

    @_em_threads
    def _init_from_resp(
        self,
        X: torch.Tensor,
        respT: torch.Tensor,
        cache: K_.DataCache,
        w: torch.Tensor | None,
        m: torch.Tensor | None,
        p: torch.Tensor | None,
    ) -> None:
        """The initial parameters: an M-step from the initial responsibilities, user-given ones kept."""
        ct = self.covariance_type
        nk, means, cov = K_.m_step(X, respT, self.reg_covar, ct, cache)
        weights = nk / X.shape[0] if w is None else w
        means = means if m is None else m
        if p is None:
            pchol, cov, bad = K_.precision_cholesky(cov, ct, self.reg_covar)
            self._warn_collapse(bad)
        else:
            pchol, cov, bad = p, K_.covariance_from_pchol(p, ct), []
        self._set_state(weights, means, cov, pchol)
        self._last_collapsed = tuple(bad)

    def _warn_collapse(self, bad: Sequence[int]) -> None:
        if bad:
            warnings.warn(
                f"Gaussian mixture component(s) {list(bad)} collapsed (covariance not positive definite "
                f"even with reg_covar={self.reg_covar:g}); kept them with a regularised covariance. "
                "Increase reg_covar, lower n_components or scale the data.",
                ComponentCollapseWarning,
                stacklevel=3,
            )

    # ------------------------------------------------------------------------------------------------------------
    # internal E and M steps on tensors
    # ------------------------------------------------------------------------------------------------------------

    @_em_threads
    def _e(
        self, X: torch.Tensor, cache: K_.DataCache | None = None, output: str = "resp"
    ) -> tuple[float, torch.Tensor]:
        """(mean log-likelihood, RT (K, N))."""
        log_norm, RT = K_.e_step(
            X, torch.log(self._weights), self._means, self._pchol, self.covariance_type, output=output, cache=cache
        )
        return float(log_norm.mean(dtype=torch.float64)), RT

    @_em_threads
    def _m(self, X: torch.Tensor, respT: torch.Tensor, cache: K_.DataCache | None = None) -> tuple[int, ...]:
        return self._set_from_stats(*K_.m_step(X, respT, self.reg_covar, self.covariance_type, cache))

    @_em_threads
    def _em(self, X: torch.Tensor, cache: K_.DataCache) -> float:
        """One EM iteration; returns the E-step's mean log-likelihood (the lower bound, as scikit-learn)."""
        if self.covariance_type == "diag":  # one pass over X: E and M per chunk of rows while it is in cache
            lb, stats = K_.em_step_diag(X, torch.log(self._weights), self._means, self._pchol, self.reg_covar)
            self._set_from_stats(*stats)
            return lb
        lb, resp = self._e(X, cache, "resp")
        self._m(X, resp, cache)
        return lb

    def _set_from_stats(self, nk: torch.Tensor, means: torch.Tensor, cov: torch.Tensor) -> tuple[int, ...]:
        pchol, cov, bad = K_.precision_cholesky(cov, self.covariance_type, self.reg_covar)
        tiny = torch.nonzero(nk < 1e-3).flatten().tolist()  # (almost) no points: kept with reg_covar
        bad = sorted(set(bad) | set(tiny)) if self.covariance_type != "tied" else bad
        self._set_state(nk / nk.sum(), means, cov, pchol)
        self._warn_collapse(bad)
        self._last_collapsed = tuple(bad)
        return tuple(bad)

    # ------------------------------------------------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------------------------------------------------

    def fit(self, X: DataLike, y: object = None) -> GaussianMixture:
        """Estimate the parameters with EM (``n_init`` starts, the best lower bound kept)."""
        self._fit(X, labels=False)
        return self

    def fit_predict(self, X: DataLike, y: object = None) -> npt.NDArray[np.int64]:
        """Fit, then return the most probable component of each sample (consistent with ``fit(X).predict(X)``)."""
        return self._fit(X, labels=True)

    @overload
    def _fit(self, X: DataLike, labels: Literal[True]) -> npt.NDArray[np.int64]: ...

    @overload
    def _fit(self, X: DataLike, labels: Literal[False]) -> None: ...

    def _fit(self, X: DataLike, labels: bool) -> npt.NDArray[np.int64] | None:
        self._check_parameters()
        Xt = self._validate_X(X, fitting=True)
        with K_.elementwise_threads(Xt.device, Xt.shape[1]):
            return self._fit_tensor(Xt, labels)

    def _start(self, Xt: torch.Tensor) -> bool:
        """True when a run initialises the parameters (not ``warm_start`` from a fitted model)."""
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        if not do_init and Xt.shape[1] != self.n_features_in_:
            raise ModelInputError(f"warm_start: X has {Xt.shape[1]} features, the model {self.n_features_in_}")
        return do_init

    def _fit_tensor(self, Xt: torch.Tensor, labels: bool) -> npt.NDArray[np.int64] | None:
        cache = K_.DataCache(Xt, self.covariance_type)
        do_init = self._start(Xt)
        n_init = self.n_init if do_init else 1
        rng = numpy_rng(self.random_state)
        max_lb = -math.inf
        best: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor] | None = None
        best_n_iter: int
        best_lbs: list[float]
        self.converged_ = False
        for _ in range(n_init):
            if do_init:
                self._initialize(Xt, rng, cache)
            lb0 = -math.inf if do_init else self.lower_bound_
            lb, lbs, n_iter, converged = _result(self._em_loop(Xt, cache, self.max_iter, lb0))
            if self.max_iter == 0:
                best, best_n_iter, best_lbs = self._get_state(), 0, []
            elif lb > max_lb or max_lb == -math.inf:
                max_lb = lb
                best, best_n_iter, best_lbs = self._get_state(), n_iter, lbs
                self.converged_ = converged
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init parameters, or "
                "increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning,
                stacklevel=2,
            )
        assert best is not None  # n_init >= 1, and the first start always sets it
        self._set_state(*best)
        self._record(best_n_iter, max_lb, best_lbs, self.converged_)
        if not labels:
            return None
        _, RT = self._e(Xt, cache, "weighted")
        return RT.argmax(0).cpu().numpy()

    def _record(self, n_iter: int, lower_bound: float, lbs: list[float], converged: bool) -> None:
        """The fitted attributes after a run (numpy mirrors of the current parameters included)."""
        self.converged_, self.n_iter_, self.lower_bound_ = bool(converged), int(n_iter), lower_bound
        self.lower_bounds_ = list(lbs)
        self.history_ = list(lbs)
        self._export()

    def _em_loop(
        self,
        Xt: torch.Tensor,
        cache: K_.DataCache,
        max_iter: int,
        lb: float,
        *,
        halves: bool = False,
        pending: tuple[float, torch.Tensor] | None = None,
        first_iteration: int = 1,
        show_first_e: bool = True,
    ) -> Generator[EMSnapshot, None, tuple[float, list[float], int, bool]]:
        """The EM iterations that ``fit`` and ``em_steps`` share (a generator; its return value is
        ``(lower bound L, the L per iteration, iterations run, converged)``).

        Iteration n: L_n = the E-step's mean log-likelihood under the current parameters, then the M-step; stop
        after ``max_iter`` iterations or when |L_n - L_{n-1}| < tol (``lb`` is L_0). ``pending`` (with ``halves``): an
        E-step ``(L, resp (K, N))`` already made under the current parameters.

        ``halves=False`` (``fit``) yields nothing and fuses E and M where a kernel can (diagonal covariances).
        ``halves=True`` (``em_steps``) makes the E-step after each M-step at once, to report the likelihood under
        the new parameters, reuses it as the next iteration's E-step, and yields an :class:`EMSnapshot` after every
        half step (numbered from ``first_iteration``; without the first 'E' snapshot when
        ``show_first_e`` is false), leaving the fitted attributes current at each 'M'.
        """
        lbs: list[float] = []
        converged = False
        n_iter = 0
        for n_iter in range(1, max_iter + 1):
            prev = lb
            it = first_iteration + n_iter - 1
            if halves:
                lb, resp = pending if pending is not None else self._e(Xt, cache, "resp")
                if show_first_e or n_iter > 1:
                    yield self._snapshot(it, "E", lb, resp)
                bad = self._m(Xt, resp, cache)
                pending = self._e(Xt, cache, "resp")
                lbs.append(lb)
                self._record(n_iter, lb, lbs, abs(lb - prev) < self.tol)
                yield self._snapshot(it, "M", pending[0], pending[1], bad)
            else:
                lb = self._em(Xt, cache)
                lbs.append(lb)
            if abs(lb - prev) < self.tol:
                converged = True
                break
        return lb, lbs, n_iter, converged

    # ------------------------------------------------------------------------------------------------------------
    # prediction
    # ------------------------------------------------------------------------------------------------------------

    @_em_threads
    def _weighted(self, X: DataLike) -> tuple[torch.Tensor, torch.Tensor]:
        """(log p(x_n) (N,), log pi_k + log N(x_n | k) as (K, N))."""
        Xt = self._validate_X(X, fitting=False)
        return K_.e_step(
            Xt, torch.log(self._weights), self._means, self._pchol, self.covariance_type, output="weighted"
        )

    def log_component_densities(self, X: DataLike) -> npt.NDArray[np.floating[Any]]:
        """log pi_k + log N(x_n; mu_k, Sigma_k), (N, K): the terms of Bayes' rule r_nk ∝ pi_k N(x_n | k)."""
        return self._weighted(X)[1].T.cpu().numpy()

    def score_samples(self, X: DataLike) -> npt.NDArray[np.floating[Any]]:
        """log p(x_n) = logsumexp_k (log pi_k + log N(x_n; mu_k, Sigma_k)), (N,)."""
        return self._weighted(X)[0].cpu().numpy()

    def score(self, X: DataLike, y: object = None) -> float:
        """Mean log-likelihood per sample."""
        return float(self._weighted(X)[0].mean(dtype=torch.float64))

    def predict(self, X: DataLike) -> npt.NDArray[np.int64]:
        """argmax_k r_nk."""
        return self._weighted(X)[1].argmax(0).cpu().numpy()

    @_em_threads
    def predict_proba(self, X: DataLike) -> npt.NDArray[np.floating[Any]]:
        """Responsibilities r_nk (rows sum to 1), (N, K)."""
        Xt = self._validate_X(X, fitting=False)
        _, RT = K_.e_step(
            Xt, torch.log(self._weights), self._means, self._pchol, self.covariance_type, output="log_resp"
        )
        return RT.exp_().T.cpu().numpy()

    @_em_threads
    def posterior(self, X: DataLike) -> tuple[npt.NDArray[np.floating[Any]], npt.NDArray[np.floating[Any]]]:
        """One E-step's two results: ``(resp (N, K), log p(x_n) (N,))`` with resp r_nk = p(z=k | x_n) =
        pi_k N(x_n | k) / p(x_n) (rows sum to 1) and log p(x_n) = logsumexp_k (log pi_k + log N(x_n | k)), numpy
        arrays of the model's dtype. Runs on one thread for low-dimensional data on the CPU (see
        ``gmm_kernels.elementwise_threads``)."""
        Xt = self._validate_X(X, fitting=False)
        with K_.elementwise_threads(Xt.device, Xt.shape[1]):
            log_px, RT = K_.e_step(
                Xt, torch.log(self._weights), self._means, self._pchol, self.covariance_type, output="resp"
            )
            return RT.T.contiguous().cpu().numpy(), log_px.cpu().numpy()

    def sample(self, n_samples: int = 1) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """Draw ``n_samples`` points: component counts ~ Multinomial(n, pi), then x ~ N(mu_k, Sigma_k).

        Returns ``(X (n, D) float64, y (n,) int64)`` ordered by component, as scikit-learn.
        """
        self._check_fitted()
        if n_samples < 1:
            raise ModelInputError(f"n_samples must be at least 1, got {n_samples}")
        rng = numpy_rng(self.random_state)
        w = np.asarray(self.weights_, dtype=np.float64)
        counts = rng.multinomial(n_samples, w / w.sum())
        means = np.asarray(self.means_, dtype=np.float64)
        cov = np.asarray(self.covariances_, dtype=np.float64)
        d = means.shape[1]
        parts = []
        for k, c in enumerate(counts):
            z = rng.standard_normal(size=(int(c), d))
            if self.covariance_type in ("full", "tied"):
                L = np.linalg.cholesky(cov[k] if self.covariance_type == "full" else cov)
                parts.append(means[k] + z @ L.T)
            else:
                parts.append(means[k] + z * np.sqrt(cov[k]))
        y = np.concatenate([np.full(int(c), k, dtype=np.int64) for k, c in enumerate(counts)])
        return np.vstack(parts), y

    def _n_parameters(self) -> int:
        d = self.n_features_in_
        k = self.n_components
        cov_params = {"full": k * d * (d + 1) / 2.0, "diag": k * d, "tied": d * (d + 1) / 2.0, "spherical": k}[
            self.covariance_type
        ]
        return int(cov_params + d * k + k - 1)

    def bic(self, X: SizedData) -> float:
        """-2 N L + p log N (lower is better)."""
        n = len(X)
        return -2 * self.score(X) * n + self._n_parameters() * math.log(n)

    def aic(self, X: SizedData) -> float:
        """-2 N L + 2 p (lower is better)."""
        n = len(X)
        return -2 * self.score(X) * n + 2 * self._n_parameters()

    # ------------------------------------------------------------------------------------------------------------
    # teaching API
    # ------------------------------------------------------------------------------------------------------------

    def e_step(self, X: DataLike) -> tuple[float, torch.Tensor | npt.NDArray[np.floating[Any]]]:
        """One E-step: ``(mean log-likelihood, log_resp (N, K))`` under the current parameters.

        log_resp is a numpy array for numpy input, a tensor (on the model's device) for tensor input.
        """
        Xt = self._validate_X(X, fitting=False)
        ll, RT = self._e(Xt, None, "log_resp")
        return ll, (RT.T if isinstance(X, torch.Tensor) else np.ascontiguousarray(RT.T.cpu().numpy()))

    def m_step(self, X: DataLike, log_resp: DataLike) -> tuple[int, ...]:
        """One M-step from log responsibilities; returns the indices of collapsed (repaired) components."""
        Xt = self._validate_X(X, fitting=False)
        lr = self._to_tensor(log_resp, "log_resp")
        if lr.shape != (Xt.shape[0], self.n_components):
            raise ModelInputError(f"log_resp has shape {tuple(lr.shape)}, expected {(Xt.shape[0], self.n_components)}")
        bad = self._m(Xt, torch.exp(lr).T.contiguous())
        self._export()
        return bad

    def _snapshot(
        self, iteration: int, half: str, ll: float, resp: torch.Tensor | None, collapsed: Iterable[int] = ()
    ) -> EMSnapshot:
        def f64(t: torch.Tensor) -> npt.NDArray[np.float64]:
            return t.detach().to("cpu", torch.float64).numpy().copy()

        cov = self._cov
        if cov is None:
            with K_.em_threads(self._pchol.device, self._means.shape[1]):
                cov = K_.covariance_from_pchol(self._pchol, self.covariance_type)
        r = None
        if resp is not None and resp.shape[1] <= RESP_SNAPSHOT_LIMIT:  # resp is (K, N)
            r = np.ascontiguousarray(resp.detach().T.to("cpu", torch.float32).numpy())
        return EMSnapshot(
            iteration,
            half,
            f64(self._weights),
            f64(self._means),
            f64(cov),
            float(ll),
            r,
            tuple(int(i) for i in collapsed),
        )

    def em_steps(
        self, X: DataLike, max_iter: int | None = None, *, resume: str | None = None, iteration: int = 0
    ) -> Iterator[EMSnapshot]:
        """Run EM, yielding an :class:`EMSnapshot` after every half step (the same loop as ``fit``).

        ``resume=None``: from the initialisation (or, fitted and ``warm_start``, from the current parameters),
        yielding an 'init' snapshot first. ``resume='init'``, ``'M'`` or ``'E'``: the fitted model's current
        parameters are what that half step left (e.g. ``from_params`` of a stored snapshot); the run continues with
        the next half step, so after ``'E'`` (E done, M not yet) the first snapshot is the 'M' that completes that
        iteration. ``iteration``: the number of the iteration the resumed half step belongs to (snapshots count on
        from it; after ``'E'`` the M snapshot keeps it).

        The mean log-likelihood after each half step never decreases (EM's guarantee, up to reg_covar). Stops as
        ``fit`` does (|L - L_prev| < tol on the E-step values, or ``max_iter`` M-steps); the model is left fitted
        with the final parameters. One extra E-step per iteration gives the likelihood after the M step; it is
        reused by the next E step.
        """
        if resume not in (None, "init", "E", "M"):
            raise ModelInputError(f"resume must be None, 'init', 'E' or 'M', got {resume!r}")
        self._check_parameters()
        Xt = self._validate_X(X, fitting=True)
        cache = K_.DataCache(Xt, self.covariance_type)
        max_iter = self.max_iter if max_iter is None else int(max_iter)
        if resume is None:
            do_init = self._start(Xt)
            if do_init:
                self._initialize(Xt, numpy_rng(self.random_state), cache)
        else:
            self._check_fitted()
            if Xt.shape[1] != self.n_features_in_:
                raise ModelInputError(f"resume: X has {Xt.shape[1]} features, the model {self.n_features_in_}")
            do_init = False
        pending = self._e(Xt, cache, "resp")
        if resume is None:
            yield self._snapshot(iteration, "init", pending[0], None, getattr(self, "_last_collapsed", ()))
        lb0 = -math.inf if do_init else getattr(self, "lower_bound_", -math.inf)
        after_e = resume == "E"
        lb, lbs, n_iter, converged = yield from self._em_loop(
            Xt,
            cache,
            max_iter,
            lb0,
            halves=True,
            pending=pending,
            first_iteration=iteration if after_e else iteration + 1,
            show_first_e=not after_e,
        )
        self._record(n_iter, lb, lbs, converged)

    @classmethod
    def from_params(
        cls,
        weights: DataLike,
        means: DataLike,
        covariances: DataLike,
        covariance_type: str = "full",
        **kwargs: Any,
    ) -> GaussianMixture:
        """A fitted model with the given parameters (e.g. after the user dragged a mean), ready for ``predict``,
        ``score``, ``e_step`` or ``em_steps`` with ``warm_start=True``."""
        means_a = np.asarray(means.detach().cpu() if isinstance(means, torch.Tensor) else means, dtype=np.float64)
        if means_a.ndim != 2:
            raise ModelInputError(f"means must be (K, D), got shape {means_a.shape}")
        k, d = means_a.shape
        kwargs.setdefault("warm_start", True)
        gm = cls(n_components=k, covariance_type=covariance_type, **kwargs)
        gm._check_parameters()
        w = gm._param_tensor(weights, (k,), "weights")
        if bool((w < 0).any()):
            raise ModelInputError("weights must be non-negative")
        w = w / w.sum()
        m = gm._param_tensor(means_a, (k, d), "means")
        cov = gm._param_tensor(covariances, _shape_of_precisions(covariance_type, k, d), "covariances")
        pchol, cov, bad = K_.precision_cholesky(cov, covariance_type, gm.reg_covar)
        if bad:
            raise ModelInputError(
                f"covariances of component(s) {bad} are not positive definite; pass symmetric "
                "positive definite matrices (or positive variances)"
            )
        gm._set_state(w, m, cov, pchol)
        gm._last_collapsed = ()
        gm._export()
        gm.converged_ = False
        gm.n_iter_ = 0
        gm.lower_bound_ = -math.inf
        gm.lower_bounds_, gm.history_ = [], []  # (two lists: appending to one must not change the other)
        return gm
