"""The Inference lab's readouts and display rules, Qt-free: the texts under the plots (HTML for QLabel), the
histograms of the Jensen panel and the scatter's colour classes, computed with numpy from lvm's results."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lvm.estimators.convergence import ConvergenceSnapshot, ProposalCoverage, naive_beats_proposal
from lvm.estimators.encoder_gap import EncoderGapSnapshot
from lvm.posterior_grid import PosteriorPicture

ESTIMATOR_LABELS = {
    "iwae": "IWAE L<sub>k</sub> (proposal q = encoder)",
    "uniform": "naive MC, z ~ uniform box",
    "prior": "naive MC, z ~ prior p(z)",
}
SHORT_LABELS = {
    "iwae": "IWAE with the encoder's q",
    "uniform": "naive MC from the uniform box",
    "prior": "naive MC from the prior",
}
PROPOSAL_NAMES = {"iwae": "the encoder's q", "uniform": "the uniform box", "prior": "the prior"}


def sci(v: float) -> str:
    """A positive number for a readout: 3 significant digits, powers of ten as 1.7×10<sup>12</sup>."""
    if math.isinf(v):
        return "&gt; 10<sup>300</sup>"
    if v == 0 or 1e-3 <= v < 1e4:
        return f"{v:.3g}"
    e = int(math.floor(math.log10(v)))
    return f"{v / 10**e:.2g}×10<sup>{e}</sup>"


def x_name(index: int | None) -> str:
    return "x" if index is None else f"x = #{index}"


# -- KL gap explorer -----------------------------------------------------------------------------------------------
def kl_info(pic: PosteriorPicture, coarse_size: int) -> str:
    return (
        f"<b>{x_name(pic.index)}</b><br>log p(x) = {pic.log_px:.4f} (quadrature: coarse {coarse_size}²"
        f" grid over the box, fine {pic.density.shape[0]}² grid on the support; mass outside the fine box "
        f"{pic.outside_mass:.1e}; box error {pic.box_error:.1e} nats)<br>posterior mode ≈ ({pic.mode[0]:.3f}, "
        f"{pic.mode[1]:.3f})"
    )


# -- the 1-D picture -----------------------------------------------------------------------------------------------
def mode_of(modes: np.ndarray, mu: float, sigma: float) -> int | None:
    """The index of the mode q = N(mu, sigma^2) sits on: the nearest, when it lies within max(sigma, 0.25) of mu and
    q's mean is nearer to it than to any other mode; None when q sits between or beyond them."""
    if not len(modes):
        return None
    i = int(np.argmin(np.abs(modes - mu)))
    return i if abs(float(modes[i]) - mu) <= max(sigma, 0.25) else None


def basins(modes: np.ndarray) -> list[tuple[float, float]]:
    """The z intervals around each mode, split halfway between neighbouring modes."""
    cuts = [-math.inf, *((modes[1:] + modes[:-1]) / 2).tolist(), math.inf]
    return [(cuts[i], cuts[i + 1]) for i in range(len(modes))]


def modes_readout(modes: np.ndarray, masses: list[float], mu: float, sigma: float, kl: float) -> str:
    """The exact posterior's modes (with the mass around each) and where q sits: on one mode of several, q leaves
    the others' mass out and KL(q || p) stays at least about -log(the mass it covers)."""
    where = ", ".join(f"{m:+.2f} ({100 * w:.0f} %)" for m, w in zip(modes, masses, strict=True))
    text = f"Exact p(z|x): {len(modes)} mode{'s' if len(modes) != 1 else ''} at z = {where}. "
    i = mode_of(modes, mu, sigma)
    if len(modes) < 2:
        return text + f"KL(q‖p) = {kl:.3f}."
    if i is None:
        return text + f"q (μ = {mu:.2f}) sits on none of them: KL(q‖p) = {kl:.3f}."
    covered = masses[i]
    return text + (
        f"q (μ = {mu:.2f}, σ = {sigma:.2f}) sits on the mode at {modes[i]:+.2f} and leaves the rest out: "
        f"KL(q‖p) = <b>{kl:.3f}</b> nats; leaving out {100 * (1 - covered):.0f} % of the mass costs at least about "
        f"−log {covered:.2f} = {-math.log(max(covered, 1e-300)):.3f}."
    )


# -- estimator convergence -----------------------------------------------------------------------------------------
def convergence_readout(
    snap: ConvergenceSnapshot,
    index: int | None,
    log_px: float,
    elbo: float,
    coverage: ProposalCoverage | None = None,
) -> str:
    """The convergence panel's text: what was computed, each estimator's L_k at the largest k with its ESS, and (when
    a naive estimate beats IWAE there: ``surprise``) why."""
    k = snap.k_max
    parts = [
        f"{ESTIMATOR_LABELS[name]}: L<sub>k</sub> = {snap.final(name):.2f} at k = {k} (ESS {snap.ess[name]:.1f} of {k})"
        for name in snap.stats
    ]
    text = (
        f"{x_name(index)}, seed {snap.seed}, repeat {snap.done}/{snap.repeats}. "
        f"Exact log p(x) = {log_px:.3f}; ELBO(encoder) = {elbo:.3f}. " + "; ".join(parts) + "."
    )
    why = surprise(snap, log_px, coverage)
    return text if why is None else text + "<br>" + why


DEGENERATE_ESS = 2.0  # an ESS below this: one draw carries (almost) all the importance weight


def proposal_readout(proposal: str, ess: float, n: int) -> str:
    """The importance-sampling proposal and Kish's ESS = (sum w)^2 / sum w^2 of its ``n`` weights drawn (those
    shown as dots); below ``DEGENERATE_ESS`` the weights have degenerated."""
    text = f"Proposal: {proposal}. Its {n} weights drawn: ESS = (Σw)²/Σw² = <b>{ess:.2f}</b> of {n}"
    if ess < DEGENERATE_ESS:
        return text + (
            " — <b>degenerate</b>: one draw carries almost all the weight (the biggest dot), the others count for "
            "nothing, and the estimate rests on that one draw."
        )
    return text + "."


COVERAGE_RATIO = 2.0  # E_q[w^2] this many times the naive proposal's: q covers p(z|x) clearly worse
OFF_POSTERIOR_MASS = 0.5  # q's 2-sigma ellipse holding less of p(z|x) than this: q is off the posterior


def surprise(snap: ConvergenceSnapshot, log_px: float, coverage: ProposalCoverage | None) -> str | None:
    """When a naive estimate is above IWAE's at the largest k (closer to log p(x): every L_k <= log p(x)), the
    readout says so and why, with the ESS of both proposals; None otherwise.

    Why, from the exact ``coverage``: E_q[w^2]/p(x)^2 more than ``COVERAGE_RATIO`` times the naive proposal's means
    q covers p(z|x) worse: off the posterior (its 2-sigma ellipse holds less than ``OFF_POSTERIOR_MASS`` of
    p(z|x)) or too narrow (light tails where p(z|x) still has mass). Otherwise the two are comparable or q is the
    better proposal, and the order of the means is chance."""
    winners = naive_beats_proposal(snap, "iwae")
    if not winners:
        return None
    k = snap.k_max
    best = max(winners, key=snap.final)
    head = (
        f"<b>Surprise:</b> at k = {k}, {SHORT_LABELS[best]} ({snap.final(best):.2f}) beats "
        f"{SHORT_LABELS['iwae']} ({snap.final('iwae'):.2f}); exact log p(x) = {log_px:.2f}. "
    )
    ess = (
        f"Measured ESS: {PROPOSAL_NAMES['iwae']} {snap.ess['iwae']:.1f} of {k}, "
        f"{PROPOSAL_NAMES[best]} {snap.ess[best]:.1f} of {k}."
    )
    if coverage is None:
        return head + ess
    m2q, m2n = coverage.second_moment["iwae"], coverage.second_moment[best]
    expected = (
        f"expected, from the exact E[w²]/p(x)² ({sci(m2q)} and {sci(m2n)}): "
        f"{sci(coverage.expected_ess('iwae', k))} and {sci(coverage.expected_ess(best, k))}"
    )
    if m2q > COVERAGE_RATIO * m2n:
        mass = 100 * coverage.q_mass_2sigma
        if coverage.q_mass_2sigma < OFF_POSTERIOR_MASS:
            what = f"is off the posterior: its 2σ ellipse holds only {mass:.0f} % of p(z|x). The rest"
        else:
            what = f"is too narrow: its 2σ ellipse holds {mass:.0f} % of p(z|x), but the mass in its light tails"
        return head + (
            f"<b>Why:</b> the encoder's q(z|x) {what} is reached only by rare draws with huge weights, which {k} "
            f"draws mostly miss. {ess[:-1]}; {expected}. The measured ESS counts only the weights drawn."
        )
    st = snap.stats["iwae"]
    return head + (
        f"<b>Why:</b> chance. The encoder's q covers p(z|x) at least about as well, so which mean is higher at "
        f"this k is down to the draws: the difference, {snap.final(best) - snap.final('iwae'):.2f} nats, compares "
        f"with the spread of IWAE's estimates (10–90 %: {st.q10[-1]:.2f} to {st.q90[-1]:.2f}); more repeats settle "
        f"it. {ess[:-1]}; {expected}."
    )


# -- Jensen made visible -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JensenHistograms:
    """Over repeats: the ratio p_hat / p(x) (clipped at its 99.5 % quantile ``clip``) and log p_hat - log p(x)."""

    ratio_edges: np.ndarray
    ratio_counts: np.ndarray
    log_edges: np.ndarray
    log_counts: np.ndarray
    mean_ratio: float
    se_ratio: float
    mean_log: float
    clip: float


def jensen_histograms(log_estimates: np.ndarray, log_px: float, bins: int = 60) -> JensenHistograms:
    d = np.asarray(log_estimates, dtype=float) - log_px
    ratio = np.exp(d)
    hi = float(np.quantile(ratio, 0.995))
    y, edges = np.histogram(np.clip(ratio, 0, hi), bins=bins, range=(0, max(hi, 1.05)))
    y2, e2 = np.histogram(d, bins=bins)
    se = float(ratio.std(ddof=1) / math.sqrt(len(ratio))) if len(ratio) > 1 else math.nan
    return JensenHistograms(edges, y, e2, y2, float(ratio.mean()), se, float(d.mean()), hi)


def jensen_readout(h: JensenHistograms, index: int | None, k: int, repeats: int, seed: int) -> str:
    return (
        f"{x_name(index)}, k = {k}, {repeats} repeats, seed {seed}.  "
        f"mean p<sub>est</sub>/p(x) = <b>{h.mean_ratio:.3f}</b> ± {h.se_ratio:.3f} (unbiased: 1);  "
        f"mean log p<sub>est</sub> − log p(x) = <b>{h.mean_log:.3f}</b> nats &lt; 0: "
        "E[log p<sub>est</sub>] = L<sub>k</sub> ≤ log p(x).  "
        f"(ratios above the 99.5 % quantile {h.clip:.2f} are drawn in the last bin)"
    )


# -- ELBO vs log p(x) ----------------------------------------------------------------------------------------------
def gap_classes(gap: np.ndarray, n_classes: int) -> tuple[np.ndarray, float]:
    """Colour class (0 .. n_classes - 1) of each KL gap on a scale clipped at the 98 % quantile, and that top."""
    hi = max(float(np.quantile(gap, 0.98)) if gap.size > 1 else 1.0, 1e-3)
    return np.clip((gap / hi * (n_classes - 1)).astype(int), 0, n_classes - 1), hi


def scatter_readout(snap: EncoderGapSnapshot, seed: int) -> str:
    k = snap.done
    lp, el, gap = snap.log_px[:k], snap.elbo[:k], snap.gap
    return (
        f"{k} of {len(snap.indices)} points (seed {seed}): mean exact log p(x) = {lp.mean():.2f}, "
        f"mean ELBO = {el.mean():.2f}, mean KL gap = {gap.mean():.2f} nats (max {gap.max():.2f}). "
        "All points lie below the diagonal: ELBO ≤ log p(x). Colour scale clipped at the 98 % quantile."
    )
