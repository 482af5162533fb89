"""``lvm fit-infinite --data moons [--k 8] [--latent-dim 1|2] [--json]``: finite vs infinite mixtures on 2-D data.

Fits, on the same train points, the lecture's small VAE (mu = sigmoid(A z + c), Sigma = diag exp(sigmoid(B z + d)))
by the exact log-likelihood and by the ELBO with an amortised encoder, the Gaussian-decoder VAE with MLPs for mu and
Sigma, and a K-component Gaussian mixture by EM; reports each one's mean exact log-likelihood per point (nats,
quadrature over z for the VAEs) on the train points and on a second, independent draw (test), with the fit's time.
The same fits as the Infinite mixture lab's "Fit" cells (same seeds and settings).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING

import numpy as np

from lvm.data.toy import TOY_SETS
from lvm.errors import LVMError

if TYPE_CHECKING:  # torch and the models are imported in the functions: the CLI parses arguments without them
    from lvm.models.lecture_vae import LectureVAE

HELP = "fit the lecture's VAE (exact and ELBO), an MLP-decoder VAE and a Gaussian mixture to 2-D toy data"
METHODS = ("exact", "elbo", "mlp", "gmm")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="moons", help=f"a 2-D toy set: {', '.join(TOY_SETS)}")
    p.add_argument("--n", type=int, default=1000, help="points in the train and in the test draw")
    p.add_argument("--k", type=int, default=8, help="components of the Gaussian mixture")
    p.add_argument("--latent-dim", type=int, default=1, choices=(1, 2), help="z of the lecture's VAE")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")


def _lecture_model(latent_dim: int, x_train: np.ndarray, seed: int) -> LectureVAE:
    """The lecture's model, its output ranges stretched to the data, from a small random theta (as the lab)."""
    import torch

    from lvm.models.lecture_vae import LectureVAE, OutputRanges

    torch.manual_seed(seed)
    model = LectureVAE(latent_dim, ranges=OutputRanges.for_data(x_train))
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        model.set_theta(**{k: 0.5 * rng.standard_normal(v.shape) for k, v in model.theta().items()})
    return model


def run(args: argparse.Namespace) -> int:
    from lvm.density_fits import fit_elbo, fit_exact, fit_gmm, fit_mlp, train_test_toy

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise LVMError(f"unknown method(s) {', '.join(bad) or '(none)'}; choose from {', '.join(METHODS)}")
    if not 1 <= args.k <= 64:
        raise LVMError(f"--k must be between 1 and 64, got {args.k}")
    if not 10 <= args.n <= 100_000:
        raise LVMError(f"--n must be between 10 and 100000, got {args.n}")
    x_train, x_test = train_test_toy(args.data, n=args.n, seed=args.seed)
    rows = []
    for m in methods:
        t0 = time.perf_counter()
        if m in ("exact", "elbo"):
            model = _lecture_model(args.latent_dim, x_train, args.seed)
            fit = (fit_exact if m == "exact" else fit_elbo)(model, x_train, x_test, seed=args.seed)
            label = f"lecture VAE, {args.latent_dim}-D z, {'exact log-likelihood' if m == 'exact' else 'ELBO'}"
        elif m == "mlp":
            fit, label = fit_mlp(x_train, x_test, seed=args.seed), "VAE with MLP mu, Sigma (2-D z), ELBO"
        else:
            fit, label = fit_gmm(x_train, x_test, n_components=args.k, seed=args.seed), f"Gaussian mixture, K={args.k}"
        last = None
        for snap in fit:
            last = snap
        assert last is not None  # every fit yields at least its final snapshot
        rows.append(
            {
                "method": m,
                "model": label,
                "train_log_lik": last.train_log_lik,
                "test_log_lik": last.test_log_lik,
                "objective": last.objective,
                "seconds": time.perf_counter() - t0,
            }
        )
    out = {"data": args.data, "n_train": len(x_train), "n_test": len(x_test), "fits": rows}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{args.data}: {len(x_train)} train, {len(x_test)} test points; mean exact log p(x) per point (nats)")
    for r in rows:
        print(
            f"  {r['model']:48s} train {r['train_log_lik']:8.3f}  test {r['test_log_lik']:8.3f}  ({r['seconds']:.1f} s)"
        )
    return 0
