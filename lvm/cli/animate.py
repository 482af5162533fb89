"""``lvm animate em|vi|train``: a history of the lecture as an animated GIF or a PNG sequence (``lvm.animation``).

- ``em``: EM on 2-D points, one frame per half step (points coloured by responsibility, ellipses, log-likelihood);
- ``vi``: a Gaussian q(z) fitted to the exact posterior of one image under a 2-D VAE, one frame per snapshot;
- ``train``: a 2-D VAE trained for a few epochs on a subset, the encoder means after each epoch.

``--out FILE.gif`` writes a GIF, ``--out DIR/`` a folder of frame_0001.png ...; the size, the frame rate and the
place are checked before any work (a bad one exits 2 and writes nothing).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from lvm.errors import DatasetError

if TYPE_CHECKING:
    from PIL import Image

HELP = "animate EM's half steps, VI's q path or VAE training epochs as a GIF (--out FILE.gif) or PNGs (--out DIR/)"
KINDS = ("em", "vi", "train")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "what", choices=KINDS, help="em: EM half steps; vi: q's path while maximising the ELBO; train: epochs"
    )
    p.add_argument("--out", required=True, metavar="FILE.gif|DIR/", help="a .gif file, or a folder for a PNG sequence")
    p.add_argument("--fps", type=float, default=4.0, help="frames per second, 1 to 50 (default 4)")
    p.add_argument("--size", default="640x480", metavar="WxH", help="frame size in pixels (default 640x480)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation / subset / training (default 0)")
    p.add_argument("--data", default=None, help="dataset spec (default: blobs:n=400 for em, digits otherwise)")
    p.add_argument("--split", default=None, help="split of --data (default: the dataset's default)")
    em = p.add_argument_group("em")
    em.add_argument("--k", type=int, default=4, help="components (default 4)")
    em.add_argument("--max-iter", type=int, default=15, help="EM iterations at most (default 15; 2 frames each)")
    em.add_argument("--cov", default="full", choices=("full", "tied", "diag", "spherical"), help="covariance type")
    em.add_argument("--init", default="random_from_data", choices=("kmeans", "k-means++", "random", "random_from_data"))
    vi = p.add_argument_group("vi")
    vi.add_argument(
        "--model",
        default=None,
        help="a 2-D latent VAE checkpoint, or a Python file (FILE.py[:FACTORY]) building a latent model (naming it "
        "runs it); default: the bundled vae2d",
    )
    vi.add_argument("--index", type=int, default=0, help="the image of --data whose posterior is fitted (default 0)")
    vi.add_argument("--steps", type=int, default=60, help="optimisation steps (default 60)")
    vi.add_argument("--every", type=int, default=3, help="steps between frames (default 3)")
    vi.add_argument("--lr", type=float, default=None, help="learning rate (default 0.1 for vi, 3e-3 for train)")
    vi.add_argument(
        "--start",
        default="broad",
        choices=("broad", "encoder", "prior"),
        help="q's start: N(encoder mean, I) (default), the encoder's q(z|x), or the prior (often a local optimum)",
    )
    tr = p.add_argument_group("train")
    tr.add_argument("--n", type=int, default=2000, help="training images, a seeded subset (default 2000)")
    tr.add_argument("--epochs", type=int, default=5, help="epochs (default 5)")
    tr.add_argument("--hidden", type=int, default=128, help="hidden units of the one-layer encoder/decoder (128)")
    tr.add_argument("--show", type=int, default=1000, help="points whose encoder means are drawn (default 1000)")


def run(args: argparse.Namespace) -> int:
    from lvm import animation as anim

    size = anim.parse_size(args.size)
    writer = anim.open_writer(args.out, size, args.fps)  # (checks the place before any work)
    with writer:
        t0 = time.perf_counter()
        frames = _frames(args, size)
        try:
            for frame in frames:
                writer.add(frame)
            writer.finish()
        except OSError as exc:
            raise anim.ExportError(f"could not write {writer.target}: {exc.strerror or exc}") from None
    kind = "GIF" if isinstance(writer, anim.GifWriter) else "PNG sequence"
    print(
        f"wrote {writer.count} frames to {writer.target} ({kind}, {size[0]}x{size[1]}, {args.fps:g} fps) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    return 0


def _frames(args: argparse.Namespace, size: tuple[int, int]) -> Iterator[Image.Image]:
    """The frames of ``args.what`` (computed first: a bad argument stops before anything is drawn)."""
    import numpy as np

    from lvm import animation as anim
    from lvm.data import load_dataset

    if args.what == "em":
        data = load_dataset(args.data or "blobs:n=400").split(args.split)
        half_steps = anim.em_history(
            data.x, args.k, seed=args.seed, max_iter=args.max_iter, covariance_type=args.cov, init=args.init
        )
        return anim.em_frames(data.x, half_steps, size, args.cov)
    if args.what == "vi":
        from lvm.resources import pretrained_model_path
        from lvm.user_models import load_any_model

        # (naming a file on the command line: consent to run it)
        model, _ = load_any_model(args.model or pretrained_model_path(), allow_code=True)
        data = load_dataset(args.data or "digits").split(args.split)
        if not 0 <= args.index < len(data):
            raise DatasetError(f"--index {args.index}: the data has {len(data)} images; give 0 to {len(data) - 1}")
        vi = anim.vi_history(
            model,
            data.x[args.index],
            steps=args.steps,
            lr=0.1 if args.lr is None else args.lr,
            every=args.every,
            init=args.start,
        )
        return anim.vi_frames(vi, size)
    ds = load_dataset(args.data or "digits")
    data = ds.split(args.split)
    if args.n < 2 or args.hidden < 1 or args.show < 1:
        raise anim.ExportError("--n must be at least 2, --hidden and --show at least 1")
    rng = np.random.default_rng(args.seed)
    rows = np.sort(rng.choice(len(data), size=min(args.n, len(data)), replace=False))
    epochs = anim.train_history(
        data.x[rows],
        None if data.y is None else data.y[rows],
        epochs=args.epochs,
        seed=args.seed,
        hidden=(args.hidden,),
        lr=3e-3 if args.lr is None else args.lr,
        n_show=args.show,
        image_shape=ds.image_shape,
    )
    return anim.train_frames(epochs, size)
