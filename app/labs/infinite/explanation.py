"""The Infinite mixture lab's help panel ("What am I looking at?"): HTML with $TeX$ formulas.

In a module of its own so that the formulas can be typeset ahead of the lab's first showing without importing
the lab (``app.labs.explanation``)."""

EXPLANATION = r"""
<h3>From a finite to an infinite mixture</h3>
<p>A Gaussian mixture adds $K$ Gaussians: $p(x) = \sum_k \pi_k\, \mathcal{N}(x; \mu_k, \Sigma_k)$.
The lecture's small VAE adds <b>one Gaussian per value of z</b>:</p>
<p align="center">$z \sim \mathcal{N}(0, I)$, &nbsp;$x \mid z \sim \mathcal{N}(\mu_\theta(z), \Sigma_\theta(z))$<br>
$\mu_\theta(z) = \mathrm{sigmoid}(A z + c)$<br>
$\Sigma_\theta(z) =$ $\mathrm{diag}\, \exp(\mathrm{sigmoid}(B z + d))$<br>
$$p(x) =$$ $$\int\, \mathcal{N}(x; \mu_\theta(z), \Sigma_\theta(z))\, \mathcal{N}(z; 0, I)\, dz$$</p>
<p>$\theta = (A, B, c, d)$ are 12 numbers (2-D $z$) or 8 (1-D $z$): move them with the sliders.</p>
<p><b>Heatmap</b>: $p(x)$ by quadrature over $z$ (midpoint rule on $[-4.5, 4.5]^{D_z}$),
$p(x) \approx \sum_g w_g\, \mathcal{N}(x; \mu(z_g), \Sigma(z_g))$ with
$w_g = \mathcal{N}(z_g; 0, I) \times$ cell volume; with a diagonal $\Sigma$ the whole $100 \times 100$ grid is
one matrix product. Lower the nodes per axis to see the finite mixture that approximates the infinite one
break into beads.<br>
<b>Ellipses</b>: 1-$\sigma$ contours of a few components $\mathcal{N}(\mu(z), \Sigma(z))$, coloured by $z$
(1-D: purple $z = -2.5$ &hellip; yellow $z = +2.5$; 2-D: hue = direction of $z$, grey at $z = 0$).<br>
<b>Black curve</b>: $z \mapsto \mu_\theta(z)$ (a warped mesh for 2-D $z$).<br>
<b>Dots</b>: samples $x = \mu(z) + \Sigma(z)^{1/2} \epsilon$ with fixed $z$ and $\epsilon$, so they
move smoothly with $\theta$; they are drawn with the <b>sample seed</b> shown beside them.</p>
<p><b>Output ranges</b>: the lecture's formula fixes $\mu \in (0, 1)^2$ and $\sigma^2 \in (1, e)$. The
other presets use the same formula with $\mu = \mathrm{lo}$
$+\ (\mathrm{hi} - \mathrm{lo})\, \mathrm{sigmoid}(A z + c)$ and
$\log \sigma^2 = v_{\mathrm{lo}}$ $+\ (v_{\mathrm{hi}} - v_{\mathrm{lo}})\, \mathrm{sigmoid}(B z + d)$.</p>
<h4>Fitting</h4>
<p><b>Exact</b>: maximise $\frac{1}{N} \sum_i \log p_\theta(x_i)$, the integral over $z$
done by a (randomly shifted) midpoint rule: possible because $z$ is 1-D or 2-D.<br>
<b>ELBO</b>: maximise $\mathbb{E}_q[\log p(x \mid z)]$
$-\ \mathrm{KL}(q_\phi(z \mid x)\, \Vert\, \mathcal{N}(0, I))$ jointly over
$\theta$ and an MLP encoder $q_\phi(z \mid x)$; $\log p(x) \geq \mathrm{ELBO}$, so this fit is usually a bit worse in
exact log-likelihood.<br>
<b>MLP decoder</b>: $\mu_\theta$ and $\Sigma_\theta$ become small neural networks (2-D $z$):
the density becomes flexible.<br>
<b>GMM</b>: $K$ Gaussians by EM. All figures are mean exact log-likelihoods per point (nats, higher is better) on
1000 training and 1000 independent test points, drawn with the fit panel's <b>seed</b>, which also seeds every
fit.</p>
"""
