"""The Discrete latents lab's help panel ("What am I looking at?"): HTML with $TeX$ formulas.

In a module of its own so that the formulas can be typeset ahead of the lab's first showing without importing
the lab (``app.labs.explanation``)."""

EXPLANATION = r"""
<h3>Discrete latents: 30 binary features, 2<sup>30</sup> terms</h3>
<p><b>The model.</b> K binary features z ∈ {0,1}<sup>K</sup> with a factorised prior
p(z) = ∏<sub>k</sub> σ(a<sub>k</sub>)<sup>z<sub>k</sub></sup> (1 − σ(a<sub>k</sub>))<sup>1−z<sub>k</sub></sup>,
and pixels
x<sub>d</sub> | z ~ Bernoulli(σ(l<sub>d</sub>)) with logits l = W z + b (a one-layer sigmoid belief net).
The digit is thresholded at ½.</p>
<p><b>The exact sum.</b> p(x) = Σ<sub>z</sub> p(z) p(x|z) has 2<sup>K</sup> terms. Here it is computed, all of them:
<br>&nbsp;&nbsp;$\log p(x, z) = x \cdot l(z) + a(z)$, &nbsp; $a(z) = \log p(z) - \sum_d \mathrm{softplus}(l_d(z))$.
<br>a(z) does not depend on x: it is computed once per z (a table of 2<sup>K</sup> numbers), and
x·l(z) = x·b + (xW)·z is one small matrix product. log p(x) is the logsumexp over all z, accumulated chunk by chunk.</p>
<p><b>"For most z, p(x, z) is very low."</b> The histogram counts the configurations by log p(x, z); the lower plot
shows where the posterior mass p(z|x) = p(x, z)/p(x) is, and where samples fall: uniform z land where the
configurations are (far left), the mass is in a handful of them (far right).</p>
<p><b>Naive Monte Carlo</b> (the slide): z<sub>i</sub> uniform on {0,1}<sup>K</sup>,
<br>&nbsp;&nbsp;$$\hat{p}(x) = |Z| \, \frac{1}{k} \sum_{i=1}^{k} p(x, z_i)$$, $|Z| = 2^K$. Unbiased, hopeless.</p>
<p><b>Importance sampling</b> with a mean-field Bernoulli
q(z) = ∏<sub>k</sub> q<sub>k</sub><sup>z<sub>k</sub></sup>(1−q<sub>k</sub>)<sup>1−z<sub>k</sub></sup>:
<br>&nbsp;&nbsp;$$\hat{p}(x) = \frac{1}{k} \sum_{i=1}^{k} \frac{p(x, z_i)}{q(z_i)}$$, $z_i \sim q$;
$\mathbb{E}[\hat{p}(x)] = p(x)$.
<br>Two q's: the encoder's q(z|x), and the product of the exact marginals p(z<sub>k</sub>=1|x) (the mean-field q
closest to the posterior in KL(p‖q): mass-covering, as a proposal should be).</p>
<p><b>IWAE</b>: $\mathcal{L}_k = \mathbb{E}[\log \hat{p}(x)] \leq \log p(x)$, rising with k (Jensen). <b>ELBO</b> =
$\mathcal{L}_1 = \mathbb{E}_q[\log p(x,z) - \log q(z)]$, and exactly, by enumeration,
$\log p(x) = \mathrm{ELBO}(q) + \mathrm{KL}(q \,\|\, p(z \mid x))$.</p>
<p><b>Cost.</b> Enumeration costs 2<sup>K</sup> · D operations per x: the plot shows measured times and the
2<sup>K</sup> line through them; the lecture's budget is one gradient evaluation per training data point.</p>
<p><b>Training.</b> For K ≤ 12: the exact log-likelihood by enumeration (exact gradient); the encoder is fitted to the
exact marginals. Above: VIMCO (Mnih &amp; Rezende, <i>Variational inference for Monte Carlo objectives</i>, ICML 2016):
the multi-sample bound L<sub>k</sub> with score-function gradients for q and leave-one-out baselines.</p>
<p><b>The mixture as a special case.</b> Restrict z to one-hot vectors (exactly one feature on): the sum has K terms,
$p(x) = \sum_k \pi_k\, p(x \mid z = e_k)$ — a mixture model, the Mixture lab's picture of the same sum
(with Gaussian components there).</p>
"""
