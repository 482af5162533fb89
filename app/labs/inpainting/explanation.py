"""The Inpainting lab's help panel ("What am I looking at?"): HTML with $TeX$ formulas.

In a module of its own so that the formulas can be typeset ahead of the lab's first showing without importing
the lab (``app.labs.explanation``)."""

EXPLANATION = r"""
<p>Observe part of an image, $x_O$ (the mask); the rest, $x_M$, is missing (shaded blue).
The decoder factorises over pixels, so the missing pixels integrate out exactly:</p>
<p>$$\log p(x_O \mid z) = \sum_{j \in O} x_j \log \sigma(l_j(z))$$ $+\ (1 - x_j) \log \sigma(-l_j(z))$</p>
<p>On a latent grid $z_g$ (decoded once) with cell area $V$:</p>
<ul>
<li><b>evidence</b> $\log p(x_O) = \log V$ $+\ \mathrm{logsumexp}_g$ $[\log p(x_O \mid z_g) + \log p(z_g)]$</li>
<li><b>posterior</b> $p(z \mid x_O) \propto p(x_O \mid z)\, p(z)$ (the heatmap; white dots: the samples' $z$)</li>
<li><b>predictive</b> $p(x_j = 1 \mid x_O) =$ $\sum_g p(z_g \mid x_O)\, \sigma(l_j(z_g))$
(orange in the missing region)</li>
<li><b>samples</b>: $z \sim p(z \mid x_O)$, then $x_j \sim \mathrm{Bernoulli}(\sigma(l_j(z)))$</li>
</ul>
<p>A pen stroke that changed the pixels $J$ moves every $\log p(x_O, z_g)$ by its terms for $J$ alone (the sum is
linear in the observed pixels), and the predictive sums the cells holding all but $10^{-6}$ of the posterior: under a
millisecond per update while you draw.</p>
<h4>Mean-field q over the missing pixels</h4>
<p>$q(x_M; \phi) = \prod_i \phi_i^{x_i} (1 - \phi_i)^{1 - x_i}$</p>
<p>$\mathrm{ELBO}(\phi) = \mathbb{E}_q[\log p(x_O, x_M)]$ $+\ H(q) \leq \log p(x_O)$, and
$\log p(x_O) - \mathrm{ELBO}(\phi)$ $= \mathrm{KL}(q\, \Vert\, p(x_M \mid x_O))$.
The expectation uses sampled completions, each scored by its exact $\log p(x)$ (quadrature); $H(q)$ is closed form.</p>
<p>The lecture's question "is this a good q?": $\phi = 0.5$ everywhere (noise: no), $\phi = 1$ everywhere (a white
block: no), $\phi$ close to 1 on the top of a 9 (yes, for a 9). <b>Optimise &phi;</b> ascends the ELBO by
natural-gradient steps in logit space: with $\Delta_i(x) = \log p(x \mathrm{\ with\ } x_i = 1)$
$-\ \log p(x \mathrm{\ with\ } x_i = 0)$,
the gradient is exactly $\phi_i (1 - \phi_i) (\mathbb{E}_q[\Delta_i] - \mathrm{logit}\, \phi_i)$, so each step moves
$\mathrm{logit}\, \phi_i$ towards $\mathbb{E}_q[\Delta_i]$; the best $\phi$ seen (scored on common random numbers)
is kept.</p>
<h4>Any latent dimension: self-normalised importance sampling</h4>
<p>A model the grid cannot take (more than 2 latent dimensions, or a Gaussian decoder) completes the drawing by
importance sampling over $z$: draw $z_s \sim q(z)$ (the encoder's $q(z \mid \tilde x)$ of the image with its
missing pixels set to 0.5, or the prior without an encoder), weigh
$w_s \propto p(z_s)\, p(x_O \mid z_s) / q(z_s)$ (normalised to sum to 1), and complete with
$\sum_s w_s\, \mathbb{E}[x_M \mid z_s]$; samples resample $z_s$ by $w_s$. The effective sample size
$\mathrm{ESS} = 1 / \sum_s w_s^2$ says how many draws really count: a few means the completion is unreliable.</p>
<p><b>Seed.</b> The sampled completions, the ELBO estimates, the optimiser and the random masks draw their random
numbers from the seed under the pen tools: the same seed gives the same numbers.</p>
"""
