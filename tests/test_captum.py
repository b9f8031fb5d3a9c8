"""The Captum contract of PerturbationEntropy."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from captum.attr import NoiseTunnel, PerturbationAttribution  # noqa: E402
from captum.attr import visualization as viz  # noqa: E402
from captum.metrics import infidelity, sensitivity_max  # noqa: E402
from torch import nn  # noqa: E402

from kdexplain import PerturbationEntropy  # noqa: E402


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 5)).eval()


def test_is_a_captum_perturbation_attribution_with_input_shaped_output():
    model = _model()
    pe = PerturbationEntropy(model, "3", grid=4, steps=10, samples=4)
    assert isinstance(pe, PerturbationAttribution)
    x = torch.randn(2, 3, 8, 8)
    attr = pe.attribute(x)
    assert attr.shape == x.shape
    # sign convention: attribution = -entropy of the pixel's cell, same in every channel
    ent = pe.last_result.entropy
    assert torch.allclose(attr[:, 0, :2, :2], -ent[:, :1, :1].expand(-1, 2, 2))
    assert torch.equal(attr[:, 0], attr[:, 2])
    rel = pe.attribute(x, map="relative")
    assert torch.allclose(rel.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5)


def test_visualize_and_captum_metrics_accept_it():
    model = _model()
    pe = PerturbationEntropy(model, "3", grid=4, steps=5, samples=4)
    x = torch.randn(1, 3, 8, 8)
    attr = pe.attribute(x)
    fig, ax = viz.visualize_image_attr(attr[0].permute(1, 2, 0).numpy(),
                                       x[0].permute(1, 2, 0).numpy(), method="heat_map",
                                       sign="all", use_pyplot=False)
    # Captum draws the channel sum of our map, scaled into [-1, 1]: the signs are ours
    shown = np.asarray(ax.images[0].get_array())
    assert fig.axes == [ax] and shown.shape == (8, 8) and ax.images[0].get_clim() == (-1, 1)
    assert np.array_equal(np.sign(shown), np.sign(attr[0].sum(0).numpy()))

    def perturb(inputs):
        noise = torch.randn_like(inputs) * 0.01
        return noise, inputs - noise

    inf = infidelity(model, perturb, x, attr, target=0, n_perturb_samples=4)
    assert inf.shape == (1,) and torch.isfinite(inf).all()
    sens = sensitivity_max(pe.attribute, x, n_perturb_samples=2, perturb_radius=0.01)
    assert sens.shape == (1,) and np.isfinite(sens.numpy()).all()


# --- issue 13: NoiseTunnel, module layers, target, batching knobs, non-negative maps ----------

def test_noise_tunnel_wraps_it_and_averages_the_noisy_maps():
    model = _model()
    pe = PerturbationEntropy(model, "3", grid=4, steps=5, samples=4)
    x = torch.randn(2, 3, 8, 8)
    torch.manual_seed(5)
    smooth = NoiseTunnel(pe).attribute(x, nt_samples=3, stdevs=0.1)
    # NoiseTunnel's own noise, redrawn from the same global seed (captum 0.9's
    # _add_noise_to_input), then the plain attribution of every noisy copy
    torch.manual_seed(5)
    noisy = x.repeat_interleave(3, 0) + torch.normal(0, torch.full((6, 3, 8, 8), 0.1))
    expected = pe.attribute(noisy).reshape(2, 3, 3, 8, 8).mean(1)
    assert smooth.shape == x.shape
    assert torch.allclose(smooth, expected, atol=1e-5)


def test_a_module_object_is_a_layer():
    model = _model()
    x = torch.randn(1, 3, 8, 8)
    by_name = PerturbationEntropy(model, "3", grid=4, steps=5, samples=4).attribute(x)
    pe = PerturbationEntropy(model, model[3], grid=4, steps=5, samples=4)
    assert pe.layer == "3"
    assert torch.equal(pe.attribute(x), by_name)
    with pytest.raises(ValueError, match="not a submodule"):
        PerturbationEntropy(model, nn.Linear(2, 2))


def test_target_is_refused_for_a_layer_feature():
    pe = PerturbationEntropy(_model(), "3", grid=4, steps=2, samples=2)
    with pytest.raises(ValueError, match="has no class"):
        pe.attribute(torch.randn(1, 3, 8, 8), target=1)


def _linear_logits(classes=3, seed=0):
    """z = W x on (3, 8, 8) images with cell-dependent column norms; c_i per class and cell."""
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(classes, 3 * 8 * 8, generator=gen)
    scale = torch.rand(classes, 4, 4, generator=gen) * 3 + 0.2
    weight = weight * scale.repeat_interleave(2, 1).repeat_interleave(2, 2).flatten(1).repeat(1, 3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, classes, bias=False)).eval()
    model[1].weight.data = weight
    cell = (torch.arange(16).reshape(4, 4).repeat_interleave(2, 0).repeat_interleave(2, 1)
            .flatten().repeat(3))
    c = torch.zeros(classes, 16).index_add_(1, cell, weight**2)
    return model, c.reshape(classes, 4, 4)


def test_target_logit_matches_the_closed_form_per_class():
    # phi(x) = z_c(x) = W[c] x: docs/method.md section 3's linear closed form with c_i from row c only. With a
    # one-dimensional feature the estimate of D0 = sigma0^2 sum_j c_j is itself noisy (a
    # chi-square with 1 degree of freedom per sample), so the optimum is taken at the D0 the
    # engine used: sigma_i^2 = lambda D0 / (2 n c_i); tolerances as test_quantify's.
    model, c = _linear_logits()
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    # a one-dimensional feature: (W_c eps)^2 is chi-square with 1 degree of freedom, so the
    # distortion needs more noise samples than a wide layer's for the same precision
    pe = PerturbationEntropy(model, grid=4, seed=0, samples=128)
    pe.attribute(x, target=torch.tensor([2, 0, 2]))
    res = pe.last_result
    assert res.settings["per_target_calls"] == 2
    for b, cls in enumerate([2, 0, 2]):
        assert abs(res.d0[b] / (0.01**2 * c[cls].sum()) - 1) < 0.5
        expected = (7.0 * res.d0[b] / (2 * 16 * c[cls])).sqrt()
        rel = (res.sigma[b] / expected - 1).abs()
        assert rel.median() <= 0.05 and rel.max() <= 0.15, (cls, rel)
    # another class gives another map; an image's map does not depend on its batch
    pe = PerturbationEntropy(model, grid=4, seed=0, steps=5, samples=4)
    other = pe.attribute(x[:1], target=1)
    assert not model.training  # the wrapper around the model leaves its mode as it was
    assert not torch.allclose(other, pe.attribute(x[:1], target=2))
    assert torch.allclose(pe.attribute(x, target=[2, 0, 2])[1:2], pe.attribute(x[1:2], target=0))
    named = PerturbationEntropy(model, grid=4, seed=0, steps=5, samples=4,
                                image_keys=["a", "b", "c"])
    assert torch.allclose(named.attribute(x, target=[2, 0, 2])[1:2],
                          PerturbationEntropy(model, grid=4, seed=0, steps=5, samples=4,
                                              image_keys=["b"]).attribute(x[1:2], target=0))


def test_bad_targets_get_clear_errors():
    model, _ = _linear_logits()
    pe = PerturbationEntropy(model, grid=4, steps=2, samples=2)
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match="one class index per image"):
        pe.attribute(x, target=[0, 1, 2])
    with pytest.raises(ValueError, match="does not index"):
        pe.attribute(x, target=7)


def test_captum_batch_knobs_map_onto_max_batch():
    model = _model()
    x = torch.randn(2, 3, 8, 8)
    pe = PerturbationEntropy(model, "3", grid=4, steps=4, samples=4)
    ref = pe.attribute(x, max_batch=6)
    # results do not depend on the chunking; the knobs are accepted and translated
    assert torch.allclose(pe.attribute(x, perturbations_per_eval=3), ref, atol=1e-5)
    assert torch.allclose(pe.attribute(x, internal_batch_size=5, show_progress=False), ref,
                          atol=1e-5)
    from kdexplain.quantification.captum_attr import batch_option
    assert batch_option({"perturbations_per_eval": 3}, 2) == {"max_batch": 6}
    assert batch_option({"internal_batch_size": 5}, 2) == {"max_batch": 5}
    with pytest.raises(ValueError, match="conflicting"):
        pe.attribute(x, perturbations_per_eval=2, internal_batch_size=5)


def test_normalized_map_is_non_negative_and_keeps_the_ranking():
    model = _model()
    x = torch.randn(2, 3, 8, 8)
    pe = PerturbationEntropy(model, "3", grid=4, steps=5, samples=4)
    raw = pe.attribute(x)
    norm = pe.attribute(x, map="normalized")
    ent = pe.last_result.entropy.flatten(1)
    hi, lo = ent.amax(1), ent.amin(1)
    expected = (hi[:, None] - ent) / (hi - lo)[:, None]
    assert torch.allclose(norm[:, 0, ::2, ::2].flatten(1), expected, atol=1e-6)
    assert norm.min() >= 0 and torch.allclose(norm.flatten(1).amax(1), torch.ones(2))
    def order(t):
        return torch.sort(t.flatten(1), dim=1, stable=True).indices
    assert torch.equal(order(raw), order(norm))
    rel = pe.attribute(x, map="relative")
    assert torch.allclose(rel.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5)
    with pytest.raises(TypeError, match="unknown quantify setting.*relative"):
        pe.attribute(x, relative=True)  # removed in 0.3: map="relative"
    with pytest.raises(ValueError, match="map must be one of"):
        pe.attribute(x, map="abs")
