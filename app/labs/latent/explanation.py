"""The Latent lab's help panel ("What am I looking at?"): HTML with $TeX$ formulas.

In a module of its own so that the formulas can be typeset ahead of the lab's first showing without importing
the lab (``app.labs.explanation``)."""

EXPLANATION = r"""
<p>A <b>variational autoencoder</b> with a 2-D latent variable:</p>
<ul>
<li>prior $z \sim \mathcal{N}(0, I)$ (dashed circles: 1, 2, 3 $\sigma$);</li>
<li>decoder $p_\theta(x \mid z) =$ $\prod_d \mathrm{Bernoulli}(x_d; \sigma(f_\theta(z))_d)$
 (or a diagonal Gaussian $\mathcal{N}(\mu_\theta(z), \mathrm{diag}\, \sigma_\theta^2(z))$);</li>
<li>encoder $q_\phi(z \mid x) =$ $\mathcal{N}(\mu_\phi(x), \mathrm{diag}\, \sigma_\phi^2(x))$.</li>
</ul>
<p><b>Left:</b> each image's encoder mean $\mu_\phi(x)$, coloured by its label. Click a point to select it: its
$q(z \mid x)$ is drawn as 1$\sigma$ and 2$\sigma$ ellipses (shift-click pins more). The background shows the
<b>aggregate posterior</b> $q(z) = \frac{1}{N} \sum_n q(z \mid x_n)$, or $\log q(z) - \log p(z)$:
<span style='color:#2166ac'>blue</span> where the prior puts mass no image is encoded to (holes: samples from there
look unlike the data),
<span style='color:#b2182b'>red</span> where encodings crowd.</p>
<p><b>Right:</b> the decoded manifold: $\mathbb{E}[x \mid z]$ on a grid of square cells over the visible region (or on
prior quantiles $z = \Phi^{-1}(u)$, the classic figure). Hover anywhere to see the mean, a sample $x \sim p(x \mid z)$
(drawn with the seed shown; the same $z$ and seed give the same sample) and the per-pixel variance.</p>
<p><b>Training</b> maximises the evidence lower bound with one reparameterised sample
$z = \mu + \sigma \odot \epsilon,\ \epsilon \sim \mathcal{N}(0, I)$:</p>
<p align=center>$\mathrm{ELBO}(x) = \mathbb{E}_{q(z \mid x)}[\log p_\theta(x \mid z)]$
$-\ \mathrm{KL}(q_\phi(z \mid x)\, \Vert\, \mathcal{N}(0, I))$ $\leq \log p_\theta(x)$,</p>
<p>$\mathrm{KL} = \frac{1}{2} \sum_k$ $(\mu_k^2 + \sigma_k^2 - \log \sigma_k^2 - 1)$. The gap is
$\mathrm{KL}(q_\phi(z \mid x)\, \Vert\, p_\theta(z \mid x))$.</p>
<p><b>Continuing</b> a model goes on from where its learning-rate schedule ended (a fresh, large rate knocks a
converged model off its optimum): the ELBO before the first step is epoch 0 of the curves, and training ends with the
best model seen (highest held-out ELBO at an epoch end).</p>
<p><b>Posterior collapse.</b> The <i>autoregressive</i> decoder predicts each pixel from $z$ and the pixels before
it, $p_\theta(x \mid z) = \prod_i p_\theta(x_i \mid x_{1:i-1}, z)$ (MADE-style masked layers; exact in one pass). It
can model the images without $z$; then every bit $z$ carries costs KL and buys nothing, and training drives
$\mathrm{KL}(q_\phi(z \mid x)\, \Vert\, p(z)) \to 0$: every image is encoded to the prior, the plane stops
organising the digits, and the decoded grid shows the same image everywhere (the status line under Train gives the
KL). Its grid shows the mean-field pass, each pixel's probability fed to the next.</p>
<p><b>Draw</b> a digit on the pad: its $q(z \mid x)$ ellipse appears among the data.</p>
<p><b>More latent dimensions</b> ($d > 2$): both plots show a plane $z = o + a_1 v_1 + a_2 v_2$ of the latent
space: through the mean $o$ of the encodings along their top-2 principal directions $v_1, v_2$ (PCA), or two chosen
axes through 0. Points are drawn at their projections $a = V (z - o)$; the ellipses, the aggregate posterior and the
prior are their marginals on the plane; the grid and the hover preview decode the plane's own points.
A model without an encoder has no encodings: its plane is two axes.</p>
"""
