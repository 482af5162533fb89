"""``lvm fit-gmm``: fit a Gaussian mixture by EM and report its fit (and clustering scores for labelled data)."""

from __future__ import annotations

import argparse
import json
import warnings

from lvm.device import DEVICE_CHOICES
from lvm.errors import LVMError

HELP = "fit a Gaussian mixture model (EM) to a dataset; report log-likelihood, BIC, purity and NMI"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        required=True,
        metavar="SPEC",
        help="dataset: an MNIST-layout folder, an .npz file, 'digits' or a toy set like blobs:n=500",
    )
    p.add_argument("--split", default=None, help="which split to fit (default: train, else the first)")
    p.add_argument("--k", type=int, default=10, help="number of components (default 10)")
    p.add_argument("--cov", default="full", choices=("full", "tied", "diag", "spherical"), help="covariance type")
    p.add_argument(
        "--space",
        default="pixels",
        metavar="pixels|pca:N",
        help="fit on the raw features or on the first N principal components (default pixels)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-iter", type=int, default=100)
    p.add_argument("--tol", type=float, default=1e-3)
    p.add_argument("--reg-covar", type=float, default=1e-6)
    p.add_argument("--init", default="kmeans", choices=("kmeans", "k-means++", "random", "random_from_data"))
    p.add_argument("--float64", action="store_true", help="compute in float64 (default float32)")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument("--json", action="store_true", help="print the report as JSON only")
    p.add_argument("--means-png", metavar="FILE", help="write the component means as a picture grid (image data)")


def _parse_space(space: str) -> int | None:
    s = space.strip().lower()
    if s == "pixels":
        return None
    if s.startswith("pca:"):
        try:
            n = int(s[4:])
        except ValueError:
            n = 0
        if n >= 1:
            return n
    raise LVMError(f"--space {space!r}: use 'pixels' or 'pca:N' with N a positive integer, e.g. pca:50")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from lvm.data import load_dataset
    from lvm.device import resolve_device
    from lvm.imageio import image_grid, write_png
    from lvm.models.gmm import ComponentCollapseWarning, ConvergenceWarning, GaussianMixture
    from lvm.models.gmm_metrics import normalized_mutual_info, purity
    from lvm.models.pca import pca_fit, pca_inverse, pca_transform

    if args.k < 1:
        raise LVMError(f"--k must be at least 1, got {args.k}")
    if args.max_iter < 1:
        raise LVMError(f"--max-iter must be at least 1, got {args.max_iter}")
    n_pca = _parse_space(args.space)
    device = resolve_device(args.device)
    dtype = torch.float64 if args.float64 else torch.float32
    ds = load_dataset(args.data)
    split = ds.split(args.split)
    x = torch.as_tensor(np.ascontiguousarray(split.x), dtype=dtype, device=device)
    if n_pca is not None:
        if n_pca > min(x.shape):
            raise LVMError(
                f"--space pca:{n_pca}: the data has only {x.shape[1]} features and {x.shape[0]} samples; "
                f"choose at most {min(x.shape)}"
            )
        mean, comps = pca_fit(x, n_pca)
        feats = pca_transform(x, mean, comps)
    else:
        feats = x
    gm = GaussianMixture(
        args.k,
        covariance_type=args.cov,
        tol=args.tol,
        reg_covar=args.reg_covar,
        max_iter=args.max_iter,
        init_params=args.init,
        random_state=args.seed,
        device=device,
        dtype=dtype,
    )
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ComponentCollapseWarning)
        warnings.simplefilter("always", ConvergenceWarning)
        labels = gm.fit_predict(feats)
    for w in caught:
        if issubclass(w.category, (ComponentCollapseWarning, ConvergenceWarning)):
            notes.append(str(w.message))
    n = int(feats.shape[0])
    report = {
        "data": ds.source,
        "split": args.split or ds.default_split,
        "n_samples": n,
        "n_features": int(feats.shape[1]),
        "space": args.space,
        "k": args.k,
        "covariance_type": args.cov,
        "mean_log_likelihood": float(gm.score(feats)),
        "bic": float(gm.bic(feats)),
        "aic": float(gm.aic(feats)),
        "n_iter": int(gm.n_iter_),
        "converged": bool(gm.converged_),
        "weights": [float(w) for w in gm.weights_],
        "device": str(device),
        "dtype": str(dtype).replace("torch.", ""),
        "warnings": sorted(set(notes)),
    }
    if split.y is not None:
        report["purity"] = purity(labels, split.y)
        report["nmi"] = normalized_mutual_info(labels, split.y)
    if args.means_png:
        if ds.image_shape is None:
            raise LVMError(f"--means-png needs image data; {ds.source} holds {ds.dim}-D points")
        means = torch.as_tensor(gm.means_, dtype=dtype, device=device)
        if n_pca is not None:
            means = pca_inverse(means, mean, comps)
        pix = np.clip(means.cpu().numpy(), 0.0, 1.0)
        imgs = np.round(pix * 255).astype(np.uint8).reshape(args.k, *ds.image_shape)
        write_png(args.means_png, image_grid(imgs))
        report["means_png"] = str(args.means_png)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{args.k}-component {args.cov} Gaussian mixture on {n} x {report['n_features']} ({args.space}), "
            f"{report['n_iter']} iterations, {'converged' if gm.converged_ else 'NOT converged'}"
        )
        print(f"  mean log-likelihood {report['mean_log_likelihood']:.6g} nats, BIC {report['bic']:.6g}")
        if "purity" in report:
            print(f"  purity {report['purity']:.4f}, NMI {report['nmi']:.4f}")
        for note in report["warnings"]:
            print(f"  warning: {note}")
        if args.means_png:
            print(f"  means written to {args.means_png}")
    return 0
