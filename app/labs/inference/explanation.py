"""The Inference lab's help panel ("What am I looking at?"): HTML with $TeX$ formulas.

In a module of its own so that the formulas can be typeset ahead of the lab's first showing without importing
the lab (``app.labs.explanation``)."""

EXPLANATION = r"""
<h3>Inference: how well do we know log p(x)?</h3>
<p><b>The marginal likelihood</b> is an integral over the latent $z$:
<br>&nbsp;&nbsp;$p(x) = \int\, p(x \mid z)\, p(z)\, dz$.
<br>With a 2-D latent it is computed here <i>exactly</i> by quadrature on a grid
($\log p(x) = \log V$ $+\ \mathrm{logsumexp}_g$ $[\log p(x \mid z_g) + \log p(z_g)]$).</p>
<p><b>Naive Monte Carlo</b> draws $z_i$ without looking at $x$ (uniform on a box, or from the prior):
<br>&nbsp;&nbsp;$$p(x) \approx \frac{1}{k} \sum_{i=1}^{k} p(x \mid z_i)$$, $z_i \sim p(z)$.
<br>Almost every sample misses the tiny region where $p(z \mid x)$ lives, so it needs astronomically many samples.</p>
<p><b>Importance sampling</b> draws from a proposal $q(z)$ close to the posterior and reweights:
<br>&nbsp;&nbsp;$$\hat{p}(x) = \frac{1}{k} \sum_{i=1}^{k} w_i$$,
$$w_i = \frac{p(x \mid z_i)\, p(z_i)}{q(z_i)}$$, $z_i \sim q$.
<br>$\mathbb{E}_q[\hat{p}(x)] = p(x)$: unbiased. The effective sample size
$\mathrm{ESS} = (\sum_i w_i)^2 / \sum_i w_i^2$ says how many samples really count.
<br>The proposal must <i>cover</i> the posterior: where $q$ is tiny but $p(z \mid x)$ is not, rare draws carry huge
weights that $k$ draws mostly miss, and the estimate falls short, however good the measured ESS looks. Then even
naive MC from the broad prior can be closer at the same $k$ (the estimator-convergence panel says when, and why).</p>
<p><b>Jensen's inequality</b>: $\log$ is concave, so
<br>&nbsp;&nbsp;$\mathcal{L}_k = \mathbb{E}[\log \hat{p}(x)]$ $\leq \log \mathbb{E}[\hat{p}(x)] = \log p(x)$.
<br>$\mathcal{L}_k$ is the IWAE bound; it rises with $k$ towards $\log p(x)$.</p>
<p><b>The ELBO</b> is the case $k = 1$:
<br>&nbsp;&nbsp;$\mathrm{ELBO}(q) = \mathbb{E}_q[\log p(x \mid z)]$ $-\ \mathrm{KL}(q(z)\, \Vert\, p(z))$
$= \mathbb{E}_q[\log p(x, z) - \log q(z)]$.</p>
<p><b>The gap</b> is exactly a KL divergence:
<br>&nbsp;&nbsp;$\log p(x) = \mathrm{ELBO}(q)$ $+\ \mathrm{KL}(q(z)\, \Vert\, p(z \mid x))$.
<br>Maximising the ELBO over $q$ minimises this <i>reverse</i> KL, which is mode seeking.
The encoder $q_\phi(z \mid x)$ is one amortised guess; the best Gaussian $q^*$ closes part of the gap
(amortisation gap); what remains is the approximation gap.</p>
<p><b>More than two latent dimensions</b>: no grid can cover the latent space, so $\log p(x)$ is estimated by
<i>annealed importance sampling</i> (AIS): chains move from the best Gaussian $q^*$ to the posterior through
$q^*(z)^{1-\beta}\, p(x, z)^{\beta}$, $\beta$ from 0 to 1, with Hamiltonian Monte Carlo steps; their weights
average to $p(x)$. It is shown as an estimate $\pm$ its standard error, never as exact. The picture is then a
<i>slice</i>: $\log p(x, z)$ on a plane through $q^*$'s mean (not the posterior's marginal), and $q$'s ellipse is
its marginal in that plane.</p>
<p><b>Numbers</b>: in the KL explorer the ELBO uses $16 \times 16$ Gauss-Hermite nodes in $q$'s own coordinates:
about $10^{-3}$ nats from the truth for a $q$ as narrow as the posterior, but for a wide $q$ (the prior's, say) the
nodes are too far apart for the detail of $\log p(x \mid z)$ and the ELBO can be off by several nats;
$\log p(x)$ comes from a coarse grid over the latent box plus a fine grid on the posterior's support.</p>
"""
