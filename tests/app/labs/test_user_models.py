"""Every lab with a model the app did not make (issue #15): a linear-Gaussian model (no encoder, Gaussian decoder,
d = 10), VAEs with a 10-D latent space (Bernoulli and Gaussian decoders) and a generic model with only latent_dim,
log_prior and log_likelihood. Each lab renders it or says in the lab what it cannot show; a new model clears the
previous model's pictures; the Latent lab decodes on the plane it shows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPointF

from lvm.models.base import standard_normal_log_prob
from lvm.models.capabilities import decoder_mean
from lvm.models.linear_gaussian import LinearGaussianModel
from lvm.models.vae import VAE

TIMEOUT = 20000


class LogLikelihoodOnly:
    """A user's model with the protocol's three required members and nothing else."""

    latent_dim = 3

    def log_prior(self, z):
        return standard_normal_log_prob(z)

    def log_likelihood(self, x, z):
        return -(x - z.sum(-1, keepdim=True)).pow(2).sum(-1)


def make_model(name: str):
    torch.manual_seed(0)
    if name == "linear-gaussian":
        return LinearGaussianModel.random(784, 10, s=0.5, dtype=torch.float32)
    if name == "vae10":
        return VAE(latent_dim=10, hidden=(32,)).eval()
    if name == "vae10-gaussian":
        return VAE(latent_dim=10, hidden=(32,), decoder="gaussian").eval()
    return LogLikelihoodOnly()


MODELS = ("linear-gaussian", "vae10", "vae10-gaussian", "generic")


# -- the Latent lab --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_the_latent_lab_renders_each_model_or_says_why_not(qtbot, open_lab, name):
    from app.labs.latent.view import LatentLab

    model = make_model(name)
    lab = open_lab(LatentLab, model)
    lab.set_help_visible(False)
    st = lab.state
    if name == "generic":
        qtbot.waitUntil(lambda: "no decoder mean" in lab.grid_message_text, timeout=TIMEOUT)
        assert "no encoder" in lab.message_text and "amortisation gap" in lab.message_text
        assert "no decoder mean" in lab.hover_label.text() and lab.mosaic_item.image is None
        assert "no `bernoulli_logits`" in lab.hover_label.toolTip()
        return
    qtbot.waitUntil(lambda: lab.mosaic_item.image is not None, timeout=TIMEOUT)
    assert lab.grid_message_text == "" and "10-D latent" in lab.plane_label.text()
    assert lab.plane_controls.isVisible()
    if name == "linear-gaussian":  # no encoder: no points, a message, the plane of two axes
        assert "no encoder" in lab.message_text and len(st.plane_mu) == 0
        assert st.plane.kind == "axes" and not lab.plane_box.model().item(0).isEnabled()
        assert lab.plot.getAxis("bottom").labelText == "z₁"
    else:  # an encoder: the data encoded and projected on the PCA plane of its means
        qtbot.waitUntil(lambda: len(st.plane_mu) == len(lab.workspace.data.x), timeout=TIMEOUT)
        assert st.plane.kind == "pca" and lab.message_text == ""
        assert "PCA direction 1" in lab.plot.getAxis("bottom").labelText
        np.testing.assert_allclose(st.plane.basis @ st.plane.basis.T, np.eye(2), atol=1e-6)
    assert lab.preview_items[0].image is not None  # the hover preview decodes on the plane


def test_the_latent_lab_decodes_the_plane_point_under_the_mouse(qtbot, open_lab):
    from app.labs.latent.view import LatentLab

    model = make_model("vae10")
    lab = open_lab(LatentLab, model)
    lab.set_help_visible(False)
    qtbot.waitUntil(lambda: lab.state.plane is not None and lab.state.plane.kind == "pca", timeout=TIMEOUT)
    qtbot.waitUntil(lambda: lab.mosaic_item.image is not None, timeout=TIMEOUT)
    lab._on_mouse_moved(lab.grid_vb.mapViewToScene(QPointF(0.7, -0.4)))  # (the scene's mouse-move signal)
    a = lab.state.hover
    assert a == pytest.approx((0.7, -0.4), abs=0.02)
    z = lab.state.plane.to_latent(torch.tensor([a], dtype=torch.float32))
    assert not torch.allclose(z[0, 2:], torch.zeros(8))  # a point of the PCA plane, not (a, 0, ..., 0)
    with torch.no_grad():
        expected = decoder_mean(model, z).reshape(28, 28).numpy()
    np.testing.assert_allclose(lab.preview_items[0].image, expected, atol=1e-5)
    assert "a = (0.70, -0.40)" in lab.hover_label.text()


def test_the_latent_lab_shows_two_chosen_axes(qtbot, open_lab):
    from app.labs.latent.view import LatentLab

    lab = open_lab(LatentLab, make_model("vae10"))
    qtbot.waitUntil(lambda: lab.state.plane is not None and lab.state.plane.kind == "pca", timeout=TIMEOUT)
    lab.plane_box.setCurrentIndex(lab.plane_box.findData("axes"))
    lab.axis_boxes[0].setValue(3)
    lab.axis_boxes[1].setValue(7)
    plane = lab.state.plane
    assert plane.kind == "axes" and plane.axes == (2, 6)
    assert lab.plot.getAxis("bottom").labelText == "z₃" and lab.plot.getAxis("left").labelText == "z₇"
    np.testing.assert_allclose(lab.state.plane_mu, lab.state.mu[:, [2, 6]], atol=1e-6)
    assert lab.view_state()["plane_axes"] == [3, 7] and lab.view_state()["plane"] == "axes"


def test_a_new_model_clears_the_latent_labs_pictures(qtbot, open_lab, tiny_vae):
    from app.labs.latent.view import LatentLab

    lab = open_lab(LatentLab, tiny_vae)
    qtbot.waitUntil(lambda: lab.mosaic_item.image is not None and len(lab.state.plane_mu) > 0, timeout=TIMEOUT)
    assert not lab.plane_controls.isVisible()  # (a 2-D latent space is its own plane)
    vae10 = make_model("vae10")
    lab.workspace.set_model(vae10)
    # at once: nothing of the 2-D model is drawn (its mosaic, its points, its preview)
    assert lab.mosaic_item.image is None and len(lab.state.plane_mu) == 0
    assert lab.scatter.image.image is None or not np.asarray(lab.scatter.image.image)[..., 3].any()
    qtbot.waitUntil(lambda: lab.mosaic_item.image is not None and len(lab.state.plane_mu) > 0, timeout=TIMEOUT)
    assert lab.state.model is vae10 and lab.state.plane.latent_dim == 10


# -- the Inpainting lab ----------------------------------------------------------------------------------------------
def _inpainting(open_lab, model):
    from app.labs.inpainting.view import InpaintingLab

    lab = open_lab(InpaintingLab, model)
    lab.set_help_visible(False)
    lab.activate()
    return lab


@pytest.mark.parametrize("name", MODELS)
def test_the_inpainting_lab_completes_each_model_by_importance_sampling_or_says_why_not(qtbot, open_lab, name):
    lab = _inpainting(open_lab, make_model(name))
    if name == "generic":
        assert "cannot be inpainted" in lab.logp_label.text()
        assert "pixel-factorised decoder" in lab.meanfield.summary.text()
        assert lab.result is None and lab.plots.completion_img.image is None
        assert not lab.optimise_button.isEnabled()
        return
    qtbot.waitUntil(lambda: lab.result is not None and not lab.is_updating(), timeout=TIMEOUT)
    text = lab.logp_label.text()
    assert "SNIS" in text and "ESS" in text and f"of {lab.result.n_proposals}" in text
    assert lab.result.proposal == "fitted" and "fitted to p(z|x_O)" in lab.drawing.status.text()
    assert lab.plots.completion_img.image is not None and lab.plots.samples_img.image is not None
    assert "10-D" in lab.plots.post_message.textItem.toPlainText()
    assert "exact latent grid" in lab.meanfield.summary.text() and not lab.optimise_button.isEnabled()


def test_a_new_model_clears_the_inpainting_labs_pictures(qtbot, open_lab, tiny_vae):
    lab = _inpainting(open_lab, tiny_vae)
    qtbot.waitUntil(lambda: lab.grid is not None and lab.result is not None, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: lab.plots.post_img.image is not None, timeout=TIMEOUT)
    lab.workspace.set_model(make_model("vae10"))
    assert lab.result is None and lab.grid is None  # the exact grid and its posterior were the 2-D model's
    for item in (lab.plots.completion_img, lab.plots.samples_img, lab.plots.post_img, lab.plots.phi_img):
        assert item.image is None
    assert lab.state.elbos == {} and lab.state.log_p_obs is None
    qtbot.waitUntil(lambda: lab.result is not None and not lab.is_updating(), timeout=TIMEOUT)
    assert lab.plots.post_img.image is None and lab.result.z.shape[1] == 10


# -- the other labs --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_the_mixture_labs_digits_page_offers_the_latent_space_only_with_an_encoder(qtbot, open_lab, name):
    from app.labs.mixture.digits_fit import SPACES
    from app.labs.mixture.view import MixtureLab

    lab = open_lab(MixtureLab, make_model(name))
    item = lab.digits.space.model().item(lab.digits.space.findText(SPACES[2]))
    if name in ("linear-gaussian", "generic"):
        assert not item.isEnabled() and "no encoder" in item.toolTip()
    else:
        assert item.isEnabled() and item.toolTip() == ""


def test_the_labs_with_their_own_models_ignore_the_workspace_model(qtbot, open_lab):
    from app.labs.discrete.view import DiscreteLab
    from app.labs.infinite.view import InfiniteMixtureLab

    for lab_class in (DiscreteLab, InfiniteMixtureLab):
        lab = open_lab(lab_class, make_model("generic"))
        own = lab.state.model
        lab.workspace.set_model(make_model("vae10"))
        assert lab.state.model is own and own is not lab.workspace.model


def test_the_inference_lab_takes_a_2d_model_without_an_encoder(qtbot, open_lab):
    from app.labs.inference.view import InferenceLab

    model = LinearGaussianModel.random(784, 2, s=0.5, dtype=torch.float32)
    lab = open_lab(InferenceLab, model)
    lab.set_help_visible(False)
    lab.activate()
    lab.workspace.select(3)
    qtbot.waitUntil(lambda: lab.kl.mean is not None and not lab.is_busy(), timeout=TIMEOUT)
    assert not lab.kl.enc_button.isEnabled() and "no encoder" in lab.kl.enc_button.toolTip()
    assert lab.why_not() == ""
    lab.kl.set_encoder()  # (no encoder: nothing happens, nothing crashes)
