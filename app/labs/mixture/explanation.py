"""The Mixture lab's help panel ("What am I looking at?"): HTML with $TeX$ formulas.

In a module of its own so that the formulas can be typeset ahead of the lab's first showing without importing
the lab (``app.labs.explanation``)."""

EXPLANATION = r"""
<h3>A mixture of Gaussians</h3>
<p><b>Generative model.</b> Pick a component, then a point from it:</p>
<p>&nbsp;&nbsp;$z \sim \mathrm{Cat}(\pi)$, &nbsp;$x \mid z = k \sim \mathcal{N}(\mu_k, \Sigma_k)$</p>
<p>so $p(x) = \sum_k \pi_k\, \mathcal{N}(x; \mu_k, \Sigma_k)$: simple pieces combine into a
complex density (choose <i>log p(x) heatmap</i> or <i>contours</i> in the box above the plot). <i>Sample</i> runs
this process; each sample has the colour of the component that produced it.</p>
<p><b>Posterior (Bayes' rule).</b> Which component made $x$?</p>
<p>
$$p(z = k \mid x) = \frac{\pi_k\, \mathcal{N}(x; \mu_k, \Sigma_k)}{\sum_j \pi_j\, \mathcal{N}(x; \mu_j, \Sigma_j)}$$</p>
<p>Each point's colour mixes the component colours by these probabilities. Click a point (<i>select</i> mode) to see the
numbers.</p>
<p><b>EM</b> maximises the log-likelihood $\sum_n \log p(x_n)$ by alternating</p>
<ul>
<li><b>E-step</b>: responsibilities $r_{nk} = p(z = k \mid x_n)$ under the current parameters
(the colours change, the ellipses stay);</li>
<li><b>M-step</b>: $N_k = \sum_n r_{nk}$, $\pi_k = N_k / N$,
$\mu_k = \frac{1}{N_k} \sum_n r_{nk}\, x_n$,
$\Sigma_k = \frac{1}{N_k} \sum_n r_{nk}$ $(x_n - \mu_k)(x_n - \mu_k)^\top$
(the ellipses move, the colours stay).</li>
</ul>
<p>The log-likelihood <b>never decreases</b> from one iteration to the next (the curve on the right), but EM only finds
a local maximum: change the seed or drag a mean (a target) to restart from elsewhere. <i>Compare with seed</i> runs
EM a second time on the same points from another seed and shows where it ends (under the plot; the dashed line on the
curve): two seeds, two optima.</p>
<p><b>Collapse.</b> A component that shrinks onto one point has $\Sigma_k \to 0$ and an unbounded
likelihood; it is flagged in red. The floor <i>reg</i> (reg_covar, added to every covariance's diagonal) keeps it
finite: the line under the plot gives the smallest variance against it.</p>
<p><b>How many components?</b> $\mathrm{BIC} = -2 \log L + p \log N$ and $\mathrm{AIC} = -2 \log L + 2p$ penalise the
$p$ free parameters; lower is better. Press <i>Compute BIC/AIC</i>, then click a point of the plot to adopt its
$K$. A grid computed for other points (or another covariance type) is greyed and marked stale.</p>
<p><b>Digits.</b> Choose <i>digits</i> to cluster images: pixels with diagonal covariances, 50 principal components,
or the VAE's latent means. Purity and NMI compare clusters with the true labels.</p>
"""
