"""kdexplain.quantification.optimizers: the closed-form start (docs/method.md section 3)."""

from __future__ import annotations

import torch


def test_closed_form_log_sigma_golden():
    from kdexplain.quantification.optimizers import closed_form_log_sigma
    c = torch.tensor([[1.0, 4.0], [9.0, 16.0]])[None, None]
    dim, sigma0, lam = 8, 0.01, 7.0
    d0 = torch.tensor([[sigma0**2 * 30.0 / dim]])  # the linear D0 = sigma0^2 sum(c) / dim
    got = closed_form_log_sigma(c, d0, torch.tensor([[lam]]), dim).exp()
    # docs/method.md section 3: sigma_i^2 = lambda sigma0^2 sum_j c_j / (2 n c_i) = 7e-4 * 30 / (8 c_i)
    want = (7e-4 * 30 / (8 * c)).sqrt()
    torch.testing.assert_close(got, want)

