"""Distillation losses: golden values computed by hand, the T^2 scaling, and the
high-temperature limit (docs/method.md section 1)."""

from __future__ import annotations

import math

import pytest
import torch

from kdexplain.train import distillation_loss, logit_l2_loss, soft_target_loss, softmax_t


def test_soft_target_golden_two_classes_t2():
    # z = [1, 0], v = [0, 1], T = 2: q_T(z) = softmax([0.5, 0]), p_T(v) = softmax([0, 0.5]).
    # p = (s, 1-s) with s = 1/(1+e^0.5), q = (1-s, s), and log(q_0/p_0) = 0.5, so
    # KL(p||q) = (p_1 - p_0) * 0.5 = tanh(0.25) / 2 = 0.12245933; times T^2 = 4: 0.48983732.
    z = torch.tensor([[1.0, 0.0]])
    v = torch.tensor([[0.0, 1.0]])
    kl = math.tanh(0.25) / 2
    assert math.isclose(kl, 0.12245933, rel_tol=1e-7)
    assert soft_target_loss(z, v, 2.0, scale_t2=False).item() == pytest.approx(kl, rel=1e-6)
    assert soft_target_loss(z, v, 2.0).item() == pytest.approx(4 * kl, rel=1e-6)
    assert soft_target_loss(z, v, 2.0).item() == pytest.approx(0.48983732, rel=1e-6)
    # equal logits: nothing to learn
    assert soft_target_loss(z, z.clone(), 2.0).item() == pytest.approx(0.0, abs=1e-7)


def test_distillation_loss_golden():
    # a = 0.9: 0.9 * 0.48983732 + 0.1 * CE(y=0, softmax([1, 0])) = 0.9 * 0.48983732
    # + 0.1 * log(1 + e^-1) = 0.44085359 + 0.03132617 = 0.47217976
    z = torch.tensor([[1.0, 0.0]])
    v = torch.tensor([[0.0, 1.0]])
    y = torch.tensor([0])
    ce = math.log(1 + math.exp(-1))
    assert ce == pytest.approx(0.31326169, rel=1e-7)
    got = distillation_loss(z, v, y, temperature=2.0, soft_weight=0.9).item()
    assert got == pytest.approx(0.9 * 2 * math.tanh(0.25) + 0.1 * ce, rel=1e-6)
    assert got == pytest.approx(0.47217976, rel=1e-6)
    assert distillation_loss(z, v, None, 2.0, 0.9).item() == pytest.approx(0.48983732, rel=1e-6)
    with pytest.raises(ValueError, match="soft_weight"):
        distillation_loss(z, v, y, 2.0, soft_weight=1.5)


def test_t2_scaling_keeps_gradient_scale():
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(8, 5, generator=g)
    v = torch.randn(8, 5, generator=g)
    norms = {}
    for t in (1.0, 4.0, 16.0, 64.0):
        for scaled in (True, False):
            z = z0.clone().requires_grad_(True)
            soft_target_loss(z, v, t, scale_t2=scaled).backward()
            norms[t, scaled] = z.grad.norm().item()
        assert norms[t, True] == pytest.approx(norms[t, False] * t * t, rel=1e-5)
    # scaled: the gradient stays of one order of magnitude; unscaled: it shrinks as 1/T^2
    assert 0.2 < norms[64.0, True] / norms[4.0, True] < 5
    assert norms[64.0, False] / norms[4.0, False] < 1e-2


def _grad(loss_fn, z0, v):
    z = z0.clone().requires_grad_(True)
    loss_fn(z, v).backward()
    return z.grad


def test_high_temperature_gradient_approaches_logit_l2():
    n = 6
    g = torch.Generator().manual_seed(1)
    z = torch.randn(1, n, generator=g, dtype=torch.float64)  # float64: T (q - p) at T = 1000
    v = torch.randn(1, n, generator=g, dtype=torch.float64)  # needs more than float32 digits
    z, v = z - z.mean(), v - v.mean()  # zero-mean logits
    expected = (z - v) / n  # docs/method.md section 1: dC/dz ~ (z - v) / N (the T^2 factor included)
    errors = []
    for t in (10.0, 100.0, 1000.0):
        grad = _grad(lambda a, b, t=t: soft_target_loss(a, b, t), z, v)
        errors.append((grad - expected).abs().max().item())
    # the next-order term is O(1/T): each tenfold T cuts the error about tenfold
    assert 5 < errors[0] / errors[1] < 20 and 5 < errors[1] / errors[2] < 20
    assert errors[2] < 1e-3 * expected.abs().max().item()
    # the L2 logit loss has exactly this gradient
    assert torch.allclose(_grad(logit_l2_loss, z, v), expected, atol=1e-12)


def test_high_temperature_limit_needs_zero_mean_logits():
    n = 6
    g = torch.Generator().manual_seed(2)
    z = torch.randn(1, n, generator=g, dtype=torch.float64)
    v = torch.randn(1, n, generator=g, dtype=torch.float64)
    z, v = z - z.mean(), v - v.mean()
    shifted = z + 3.0  # same softmax, but no longer zero-mean
    grad = _grad(lambda a, b: soft_target_loss(a, b, 1000.0), shifted, v)
    naive = (shifted - v) / n
    # the soft-target gradient ignores the shift; the naive L2 form does not
    assert (grad - naive).abs().max().item() == pytest.approx(3.0 / n, rel=1e-3)
    assert torch.allclose(grad, (z - v) / n, atol=2e-4)
    # logit_l2_loss zero-means, so it matches; without zero-meaning it does not
    assert torch.allclose(_grad(logit_l2_loss, shifted, v), (z - v) / n, atol=1e-6)
    no_zm = _grad(lambda a, b: logit_l2_loss(a, b, zero_mean=False), shifted, v)
    assert torch.allclose(no_zm, naive, atol=1e-6)
    assert not torch.allclose(no_zm, grad, atol=1e-2)


def test_softmax_t_and_errors():
    z = torch.tensor([[2.0, 0.0]])
    assert softmax_t(z, 2.0)[0, 0].item() == pytest.approx(1 / (1 + math.exp(-1)), rel=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        softmax_t(z, 0.0)
    with pytest.raises(ValueError, match="shape"):
        soft_target_loss(z, torch.zeros(1, 3), 2.0)
