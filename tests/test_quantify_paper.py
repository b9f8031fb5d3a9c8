"""The ``paper`` preset: the reference's descent path and kept iterate at a fraction of its
samples (docs/method.md section 3.4)."""

from __future__ import annotations

import math

import torch

from kdexplain import quantify
from kdexplain.quantification.result import ENTROPY_OFFSET
from tests.quantify_common import W_, C, G, H
from tests.quantify_common import linear_with_closed_form as _linear_model


def reference_path(a: torch.Tensor, lam: float = 7.0, lr: float = 1e-4, steps: int = 80,
                   rule_step: int = 59, target: float = -2.8,
                   sigma0: float = 0.01) -> tuple[torch.Tensor, int]:
    """The reference's rule without sampling noise on ``D / D0 = sum_i a_i sigma_i^2``
    (a linear feature, docs/method.md section 3.3): the kept sigma (g, g) and its step."""
    n = a.numel()
    sig, kept, ent = torch.full_like(a, sigma0), [], []
    for t in range(steps):
        sig = sig.clamp(1e-3, 1.0)
        kept.append(sig.clone())
        ent.append(float(sig.log().mean()) + ENTROPY_OFFSET)
        sig = sig - lr * (2 * a * sig - lam / (n * sig))
        if t == rule_step:
            if max(ent) > target:
                break  # the rule: a unit that has passed the target stops here
            lam *= 1.5
    best = min(range(len(ent)), key=lambda i: abs(ent[i] - target))
    return kept[best], best


def test_paper_preset_follows_the_reference_path_on_a_linear_feature():
    # D / D0 = sum_i a_i sigma_i^2 with a_i = c_i / (sigma0^2 sum_j c_j) (section 3.3): the
    # noise-free path of the reference's rule is known; 16 samples per step stay close to it
    # (median over cells within 3 %, the kept step within one).
    model, c = _linear_model(dim=64, seed=5)
    x = torch.randn(2, C, H, W_, generator=torch.Generator().manual_seed(2))
    res = quantify(model, x, "1", grid=G, preset="paper", feature_transform="identity", seed=1)
    expected, step = reference_path(c / (0.01**2 * c.sum()))
    rel = (res.sigma / expected - 1).abs()
    assert rel.flatten(1).median(1).values.max() <= 0.03, rel
    assert ((res.selected_step - step).abs() <= 1).all(), (res.selected_step, step)
    # the path is the reference's early stretch: sigma moved from sigma0, entropy near -2.8
    assert (res.entropy.flatten(1).mean(1) - (-2.8)).abs().max() < 0.05
    assert not torch.allclose(res.sigma, torch.full_like(res.sigma, 0.01))


def test_stop_past_target_keeps_the_iterate_the_reference_rule_keeps():
    # the same noise: the reference's rule run on with 16 samples per step and the paper
    # preset, which stops each unit once its mean entropy has passed the target
    model, _ = _linear_model(dim=16, seed=4)
    x = torch.randn(3, C, H, W_, generator=torch.Generator().manual_seed(3))
    full = quantify(model, x, "1", grid=G, preset="reference", samples=16, d0_samples=96,
                    feature_transform="identity", seed=2)
    fast = quantify(model, x, "1", grid=G, preset="paper", feature_transform="identity", seed=2)
    assert torch.equal(fast.selected_step, full.selected_step)
    assert torch.equal(fast.sigma, full.sigma)
    # it stops at the first iterate past the target: the kept one, or the one after it
    assert (fast.steps_run <= fast.selected_step + 2).all(), (fast.steps_run, fast.selected_step)
    assert fast.steps_run.sum() < full.steps_run.sum()
    assert math.isclose(fast.settings["samples"], 16)


def test_control_variate_is_exact_on_a_linear_feature():
    # on a linear feature the linearisation is the feature: the control variate leaves no
    # sampling noise, so one sample per step follows the noise-free path of the reference's
    # rule, whatever the noise seed (D0 as well: sigma0^2 sum_i c_i / dim exactly)
    model, c = _linear_model(dim=16, seed=6)
    x = torch.randn(2, C, H, W_, generator=torch.Generator().manual_seed(4))
    runs = [quantify(model, x, "1", grid=G, preset="paper", feature_transform="identity",
                     samples=1, d0_samples=1, control_variate=True, seed=s) for s in (0, 1)]
    expected, step = reference_path(c / (0.01**2 * c.sum()))
    for res in runs:
        assert torch.allclose(res.sigma, expected.expand_as(res.sigma), rtol=1e-4)
        assert (res.selected_step == step).all()
        assert torch.allclose(res.d0, torch.full_like(res.d0, 0.01**2 * float(c.sum()) / 16),
                              rtol=1e-4)


def test_control_variate_exact_sensitivities_match_the_jacobian():
    # c_i = sum over the cell's pixels and channels of ||J[:, p]||^2, from one input gradient
    # per feature dimension, whatever the chunk of rows
    from contextlib import ExitStack

    from kdexplain.quantification.distortion import Distortion

    model, c = _linear_model(dim=16, seed=7)
    x = torch.randn(2, C, H, W_, generator=torch.Generator().manual_seed(5))
    with ExitStack() as stack:
        dist = Distortion([model], "1", None, x, lambda f: f, torch.contiguous_format, stack)
        dist.compute_clean(8)
        for rows in (3, 16, 64):
            got = dist.exact_sensitivity(G, rows)
            assert torch.allclose(got, c.expand_as(got), rtol=1e-5), rows


def test_control_variate_gradient_is_that_of_the_linearisation():
    # the control variate's gradient in sigma comes from one vector-Jacobian product at the
    # clean image; it equals differentiating the forward-mode product itself (possible for
    # ReLU and max-pool)
    from contextlib import ExitStack

    from kdexplain.quantification.distortion import Distortion
    from tests.quantify_common import tiny_cnn

    model = tiny_cnn(seed=3)
    x = torch.randn(2, C, H, W_, generator=torch.Generator().manual_seed(6))
    eps = torch.randn(5, C, H, W_, generator=torch.Generator().manual_seed(7))
    sigma = (0.01 + 0.02 * torch.rand(2, G, G, generator=torch.Generator().manual_seed(8)))
    sigma.requires_grad_(True)
    idx = torch.tensor([0, 0, 0, 1, 1])
    with ExitStack() as stack:
        dist = Distortion([model], "4", None, x, torch.relu, torch.contiguous_format, stack)
        dist.compute_clean(8)
        up = torch.nn.functional.interpolate(sigma[:, None], size=(H, W_), mode="nearest")
        v = up[idx] * eps
        got = dist.linear_rows(0, idx, v)
        (g_got,) = torch.autograd.grad(got.sum(), sigma, retain_graph=True)
        xs = x[idx]
        _, jv = torch.func.jvp(lambda z: dist.feature(0, z), (xs,), (v,))
        want = jv.pow(2).flatten(1).mean(1)
        (g_want,) = torch.autograd.grad(want.sum(), sigma)
    assert torch.allclose(got, want, rtol=1e-5)
    assert torch.allclose(g_got, g_want, rtol=1e-4, atol=1e-9)


def test_paper_preset_reports_the_path_noise_of_its_kept_iterate():
    # on a linear feature the path's only randomness is the sampling noise of its gradients:
    # the reported standard error of log sigma matches the spread of the kept log sigma over
    # noise seeds (median over cells of the ratio within 30 %), and more samples per step
    # report proportionally less (16 -> 64 samples: half)
    model, _ = _linear_model(dim=8, seed=7)
    x = torch.randn(1, C, H, W_, generator=torch.Generator().manual_seed(4))
    runs = [quantify(model, x, "1", grid=G, preset="paper", feature_transform="identity",
                     seed=s, d0_samples=4096) for s in range(24)]
    log_sigma = torch.stack([r.sigma.log() for r in runs])  # (seeds, 1, g, g)
    spread = log_sigma.std(0)
    reported = torch.stack([r.log_sigma_se for r in runs]).mean(0)
    assert torch.isfinite(reported).all() and (reported > 0).all()
    ratio = float((reported / spread).median())
    assert 0.7 <= ratio <= 1.3, ratio
    more = quantify(model, x, "1", grid=G, preset="paper", feature_transform="identity",
                    seed=0, d0_samples=4096, samples=64)
    assert 0.4 <= float((more.log_sigma_se / reported).median()) <= 0.6
    assert torch.allclose(runs[0].precision, runs[0].log_sigma_se.flatten(1).median(1).values)
