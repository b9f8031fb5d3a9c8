"""kdexplain.quantification.distortion: sensitivity probes against the closed form
(docs/method.md section 3)."""

from __future__ import annotations

import torch

from kdexplain.quantification.noise import NoiseStreams
from tests.quantify_common import linear_with_closed_form as _linear


def test_sensitivity_probes_estimate_the_closed_form_c():
    from contextlib import ExitStack

    from kdexplain.quantification.distortion import Distortion
    model, c = _linear()
    x = torch.randn(2, 3, 16, 16)
    with ExitStack() as stack, torch.enable_grad():
        dist = Distortion([model], "1", None, x, lambda t: t, torch.contiguous_format, stack)
        dist.compute_clean(64)
        noise = NoiseStreams(["a", "b"], 0, (3, 16, 16), x.device, stream="probe-noise")
        signs = NoiseStreams(["a", "b"], 0, (32,), x.device, stream="probe")
        est = dist.sensitivity(noise, signs, 0.01, 4, 400, 64)
    assert est.shape == (1, 2, 4, 4)
    rel = (est[0] / c - 1).abs()  # Hutchinson: rank-32 cells, 400 probes -> ~1.3 % per cell
    assert rel.max() < 0.08, rel

