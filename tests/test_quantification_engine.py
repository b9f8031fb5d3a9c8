"""The perturbation engine (kdexplain/quantification/engine.py) against its closed form, the
original algorithm, and its contract."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdexplain.models import LayerNotFoundError, build_model
from kdexplain.quantification import image_key, quantify
from kdexplain.quantification.engine import NOISE_BLOCK
from kdexplain.utils.seed import derive_seed
from tests.quantify_common import W_, C, G, H
from tests.quantify_common import linear_with_closed_form as _linear_model
from tests.quantify_common import tiny_cnn as _tiny_cnn


def closed_form_sigma(c: torch.Tensor, lam: float, sigma0: float) -> torch.Tensor:
    """docs/method.md section 3: sigma_i^2 = lambda * sigma0^2 * sum_j c_j / (2 * n_cells * c_i)."""
    return (lam * sigma0**2 * c.sum() / (2 * c.numel() * c)).sqrt()


def test_closed_form_linear_default_preset():
    # Default preset (closed-form start from 10 probes, 15 Newton steps x 16 samples).
    # Tolerance: median relative error over cells <= 5 %, every cell <= 15 %.
    model, c = _linear_model()
    x = torch.randn(3, C, H, W_, generator=torch.Generator().manual_seed(1))
    res = quantify(model, x, "1", grid=G, feature_transform="identity", seed=0)
    expected = closed_form_sigma(c, 7.0, 0.01)
    rel = (res.sigma / expected - 1).abs()
    assert res.sigma.shape == (3, G, G)
    assert rel.flatten(1).median(1).values.max() <= 0.05, rel
    assert rel.max() <= 0.15, rel
    assert (res.steps_run == 15).all()
    assert torch.allclose(res.entropy, torch.log(res.sigma) + 0.5 * math.log(2 * math.pi * math.e))


@pytest.mark.parametrize("lam,sigma0,preset", [(4.0, 0.02, "default"), (10.0, 0.005, "default"),
                                               (7.0, 0.01, "adam")])
def test_closed_form_other_lambda_and_sigma0(lam, sigma0, preset):
    model, c = _linear_model(seed=3)
    x = torch.randn(1, C, H, W_)
    res = quantify(model, x, "1", grid=G, feature_transform="identity", entropy_weight=lam,
                   sigma_init=sigma0, seed=2, preset=preset)
    rel = (res.sigma[0] / closed_form_sigma(c, lam, sigma0) - 1).abs()
    assert rel.median() <= 0.05 and rel.max() <= 0.15, rel


def test_narrow_feature_takes_the_steps_its_precision_needs():
    # A linear feature with 2 outputs: each sample's distortion is a chi-square of 2 degrees
    # of freedom, so 15 steps leave log sigma about 0.1 from the optimum; the precision stop
    # (median standard error <= 0.045) runs more steps and lands within 5 % of the closed form.
    model, c = _linear_model(dim=2, seed=4)
    x = torch.randn(2, C, H, W_, generator=torch.Generator().manual_seed(5))
    expected = closed_form_sigma(c, 7.0, 0.01)
    res = quantify(model, x, "1", grid=G, feature_transform="identity", seed=0)
    fixed = quantify(model, x, "1", grid=G, feature_transform="identity", seed=0, steps=15)
    assert (res.steps_run > 15).all() and (res.steps_run < 100).all(), res.steps_run
    assert (fixed.steps_run == 15).all() and (fixed.precision > 0.045).all(), fixed.precision
    assert (res.precision <= 0.045).all(), res.precision
    rel = (res.sigma / expected - 1).abs().flatten(1).median(1).values
    assert rel.max() <= 0.05, rel


def test_the_standard_error_predicts_the_spread_between_noise_seeds():
    # Two noise seeds: the median |log sigma_a - log sigma_b| over cells should be
    # 0.674 * sqrt(se_a^2 + se_b^2) (the median of a half-normal) if the estimate is right;
    # within a factor 1.6 either way (4 x 16 cells per seed).
    model, _ = _linear_model(dim=4, seed=6)
    x = torch.randn(4, C, H, W_, generator=torch.Generator().manual_seed(7))
    a, b = (quantify(model, x, "1", grid=G, feature_transform="identity", seed=s, steps=15)
            for s in (0, 1))
    observed = (a.sigma.log() - b.sigma.log()).abs().median()
    predicted = 0.674 * (a.log_sigma_se**2 + b.log_sigma_se**2).sqrt().median()
    assert predicted / 1.6 <= observed <= predicted * 1.6, (observed, predicted)
    assert a.log_sigma_se.shape == a.sigma.shape


def test_presets_without_an_estimate_report_nan_precision():
    model, _ = _linear_model()
    res = quantify(model, torch.randn(1, C, H, W_), "1", grid=G, preset="adam", steps=3,
                   feature_transform="identity")
    assert res.log_sigma_se.shape == res.sigma.shape and res.log_sigma_se.isnan().all()


# --- the original algorithm, written plainly, one image and one checkpoint at a time --------

def sequential_reference(model, image, layer_module, key, *, seed=0, grid=G, lam=7.0,
                         target=-2.8, steps=80, samples=96, lr=1e-4, sigma0=0.01,
                         rule_step=59):
    """The original train_sigma loop (Cheng et al.'s code), with kdexplain's noise stream."""
    gen = torch.Generator().manual_seed(derive_seed(seed, "noise", key))

    def draw(n):
        return torch.cat([torch.randn((min(NOISE_BLOCK, n - s), *image.shape), generator=gen)
                          for s in range(0, n, NOISE_BLOCK)])

    captured = {}
    handle = layer_module.register_forward_hook(lambda m, a, o: captured.__setitem__("f", o))

    def feature(batch):
        model(batch)
        return captured["f"]

    try:
        x = image[None]
        with torch.no_grad():
            origin = torch.relu(feature(x))
            sig = torch.full((1, 1, grid, grid), sigma0)
            noisy = x + F.interpolate(sig.expand(samples, 1, grid, grid), size=image.shape[1:],
                                      mode="nearest") * draw(samples)
            d0 = F.mse_loss(torch.relu(feature(noisy)), origin.expand(samples, *origin.shape[1:]))
        sigma = torch.nn.Parameter(torch.full((1, 1, grid, grid), sigma0))
        opt = torch.optim.SGD([sigma], lr=lr)
        entropies, sigmas = [], []
        for step in range(steps):
            sigma.data.clamp_(0.001, 1)
            noise = draw(samples)
            noisy = x + F.interpolate(sigma.expand(samples, 1, grid, grid), size=image.shape[1:],
                                      mode="nearest") * noise
            penalty = torch.mean(torch.log(sigma)) + 0.5 * math.log(2 * math.pi) + 0.5
            sigmas.append(sigma.detach().clone()[0, 0])
            f = torch.relu(feature(noisy))
            loss = F.mse_loss(f, origin.expand_as(f)) / d0 - lam * penalty
            opt.zero_grad()
            loss.backward()
            opt.step()
            entropies.append(float(penalty.detach()))
            if step == rule_step:
                if max(entropies) > target:
                    break
                lam = lam * 1.5
        best = min(range(len(entropies)), key=lambda i: abs(entropies[i] - target))
        return sigmas[best], torch.tensor(entropies), d0, best, lam
    finally:
        handle.remove()


@pytest.mark.parametrize("target", [-2.8, -3.1, -2.0])
def test_reference_preset_matches_sequential_original(target):
    # -2.8: the original's threshold; -3.1: reached before step 59 (the run stops there);
    # -2.0: never reached (lambda is multiplied by 1.5 and all 80 steps run).
    model = _tiny_cnn()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.randn(2, C, H, W_, generator=torch.Generator().manual_seed(5))
    res = quantify(model, x, "4", grid=G, preset="reference", target_entropy=target, seed=7,
                   entropy_weight=7.0)
    # both branches of the x1.5 rule are exercised
    assert (res.steps_run == (80 if target == -2.0 else 60)).all()
    for b in range(2):
        sig, ent, d0, best, lam = sequential_reference(model, x[b], model[4], image_key(x[b]),
                                                       seed=7, target=target)
        n = len(ent)
        assert int(res.steps_run[b]) == n
        torch.testing.assert_close(res.entropy_trace[:n, b], ent, rtol=1e-5, atol=1e-5)
        assert int(res.selected_step[b]) == best
        torch.testing.assert_close(res.sigma[b], sig, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(res.d0[b], d0, rtol=1e-5, atol=0)
        assert float(res.entropy_weight[b]) == pytest.approx(lam)


def test_batch_and_chunk_invariance():
    model = _tiny_cnn(1)
    x = torch.randn(4, C, H, W_, generator=torch.Generator().manual_seed(2))
    full = quantify(model, x, "4", grid=G, steps=30, samples=8, seed=3)
    part = quantify(model, x[[2, 0]], "4", grid=G, steps=30, samples=8, seed=3, max_batch=3)
    torch.testing.assert_close(part.sigma[0], full.sigma[2])
    torch.testing.assert_close(part.sigma[1], full.sigma[0])
    torch.testing.assert_close(part.d0, full.d0[[2, 0]])


def test_memory_formats_agree():
    # "auto" picks channels-last for a CNN on a CPU; the layout changes rounding only
    model = _tiny_cnn(2)
    x = torch.randn(3, C, H, W_, generator=torch.Generator().manual_seed(4))
    runs = {mf: quantify(model, x, "4", grid=G, steps=15, samples=8, seed=1, memory_format=mf)
            for mf in ("auto", "channels_last", "contiguous")}
    torch.testing.assert_close(runs["auto"].sigma, runs["channels_last"].sigma)
    torch.testing.assert_close(runs["contiguous"].sigma, runs["channels_last"].sigma,
                               rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(runs["contiguous"].d0, runs["channels_last"].d0, rtol=1e-5, atol=0)
    with pytest.raises(ValueError, match="memory_format"):
        quantify(model, x, "4", grid=G, steps=1, memory_format="nhwc")


def test_several_checkpoints_in_one_call_equal_separate_calls():
    models = [_tiny_cnn(s) for s in (0, 1, 2)]
    x = torch.randn(2, C, H, W_)
    joint = quantify(models, x, "4", grid=G, steps=20, samples=8)
    assert joint.sigma.shape == (3, 2, G, G) and joint.loss_trace.shape[1:] == (3, 2)
    for k, m in enumerate(models):
        alone = quantify(m, x, "4", grid=G, steps=20, samples=8)
        torch.testing.assert_close(joint.sigma[k], alone.sigma)


def test_weights_get_no_gradient_and_state_is_restored():
    model = _tiny_cnn().train()
    x = torch.randn(1, C, H, W_)
    quantify(model, x, "4", grid=G, steps=3, samples=4)
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())
    assert not model[4]._forward_hooks


def test_forward_stops_at_the_layer():
    model = _tiny_cnn()
    calls = []
    model[4].register_forward_hook(lambda *a: calls.append(1))
    quantify(model, torch.randn(1, C, H, W_), "1", grid=G, steps=2, samples=4)
    assert not calls  # the layer after the analysed one never ran


def test_wrong_layer_name_lists_closest_names():
    model = build_model("kdnet", 10)
    with pytest.raises(LayerNotFoundError, match=r"classifier\.0"):
        quantify(model, torch.randn(1, 3, 32, 32), "clasifier.0", steps=1)


def test_alias_resolves_per_architecture():
    model = build_model("kdnet", 10)
    res = quantify(model, torch.randn(1, 3, 32, 32), "fc1", steps=2, samples=2)
    assert res.layer == "classifier.0"


def test_d0_zero_is_flagged_not_nan():
    # A layer whose ReLU'd output is 0 for every input (negative bias): D0 = 0.
    model = nn.Sequential(nn.Flatten(), nn.Linear(C * H * W_, 4))
    model[1].weight.data.zero_()
    model[1].bias.data.fill_(-1.0)
    x = torch.randn(2, C, H, W_)
    res = quantify(model, x, "1", grid=G, steps=5, samples=4)
    assert res.no_signal.all()
    assert torch.isfinite(res.sigma).all() and torch.isfinite(res.entropy).all()
    assert torch.allclose(res.sigma, torch.full_like(res.sigma, 0.01))
    assert (res.steps_run == 0).all()


def test_bad_inputs():
    model = _tiny_cnn()
    with pytest.raises(ValueError, match="B, C, H, W"):
        quantify(model, torch.randn(C, H, W_), "4")
    bad = torch.randn(2, C, H, W_)
    bad[1, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        quantify(model, bad, "4")
    with pytest.raises(ValueError, match="preset"):
        quantify(model, torch.randn(1, C, H, W_), "4", preset="fast")
    with pytest.raises(ValueError, match="grid"):
        quantify(model, torch.randn(1, C, H, W_), "4", grid=32)
    with pytest.raises(ValueError, match="empty"):
        quantify(model, torch.randn(0, C, H, W_), "4")


def test_deterministic_for_a_seed():
    model = _tiny_cnn()
    x = torch.randn(2, C, H, W_)
    a = quantify(model, x, "4", grid=G, steps=10, samples=4, seed=11)
    b = quantify(model, x, "4", grid=G, steps=10, samples=4, seed=11)
    c = quantify(model, x, "4", grid=G, steps=10, samples=4, seed=12)
    assert torch.equal(a.sigma, b.sigma)
    assert not torch.equal(a.sigma, c.sigma)


def test_sensitive_cells_get_low_entropy():
    # A feature that reads only the top-left quadrant: those cells must get lower entropy
    # than the cells it ignores (which grow until the clamp).
    mask = torch.zeros(C, H, W_)
    mask[:, : H // 2, : W_ // 2] = 1
    model = nn.Sequential(nn.Flatten(), nn.Linear(C * H * W_, 8, bias=False))
    model[1].weight.data = torch.randn(8, C * H * W_) * mask.flatten()[None]
    res = quantify(model, torch.randn(1, C, H, W_), "1", grid=G, feature_transform="identity")
    ent = res.entropy[0]
    assert ent[:2, :2].max() < ent[2:, 2:].min()


def test_the_same_model_object_twice():
    model = _tiny_cnn()
    x = torch.randn(1, C, H, W_)
    res = quantify([model, model], x, "4", grid=G, steps=4, samples=4)
    torch.testing.assert_close(res.sigma[0], res.sigma[1])
