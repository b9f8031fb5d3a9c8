"""The Captum contract of PerturbationEntropy."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from captum.attr import PerturbationAttribution  # noqa: E402
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
    attr = pe.attribute(x, target=1)
    assert attr.shape == x.shape
    # sign convention: attribution = -entropy of the pixel's cell, same in every channel
    ent = pe.last_result.entropy
    assert torch.allclose(attr[:, 0, :2, :2], -ent[:, :1, :1].expand(-1, 2, 2))
    assert torch.equal(attr[:, 0], attr[:, 2])
    rel = pe.attribute(x, relative=True)
    assert torch.allclose(rel.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5)


def test_visualize_and_captum_metrics_accept_it():
    model = _model()
    pe = PerturbationEntropy(model, "3", grid=4, steps=5, samples=4)
    x = torch.randn(1, 3, 8, 8)
    attr = pe.attribute(x)
    fig, _ = viz.visualize_image_attr(attr[0].permute(1, 2, 0).numpy(),
                                      x[0].permute(1, 2, 0).numpy(), method="heat_map",
                                      sign="all", use_pyplot=False)
    assert fig is not None

    def perturb(inputs):
        noise = torch.randn_like(inputs) * 0.01
        return noise, inputs - noise

    inf = infidelity(model, perturb, x, attr, target=0, n_perturb_samples=4)
    assert inf.shape == (1,) and torch.isfinite(inf).all()
    sens = sensitivity_max(pe.attribute, x, n_perturb_samples=2, perturb_radius=0.01)
    assert sens.shape == (1,) and np.isfinite(sens.numpy()).all()
