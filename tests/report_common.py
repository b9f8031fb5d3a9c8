"""What the report tests share: a tiny concept analysis (six images, four checkpoints, the
baseline without signal on one image) and the PNG signature. The written report is the
``report`` fixture in tests/conftest.py."""

from __future__ import annotations

import numpy as np

from kdexplain.concepts import RunEntropies, analyze_concepts

G, N, M = 4, 6, 4
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny_analysis(roles=("teacher", "student", "baseline"), seeds=(0,)):
    """Concept analysis of ``seeds`` runs of ``roles`` on hand-made entropies: the foreground
    cells get lower entropy over the checkpoints, more so for later roles."""
    rng = np.random.default_rng(0)
    fg = np.zeros((N, G, G), bool)
    fg[:, 1:3, 1:4] = True
    runs = []
    for seed in seeds:
        ent = {}
        for k, role in enumerate(roles):
            e = -3.0 + 0.1 * rng.standard_normal((M, N, G, G))
            e[:, :, 1:3, 1:4] -= (0.2 + 0.3 * k) * np.linspace(0, 1, M)[:, None, None, None]
            ent[role] = e
        if "baseline" in ent:
            ent["baseline"][2, 5] = np.nan  # image 5 has no signal for B at epoch 4
        runs.append(RunEntropies(
            entropy=ent, epochs={r: np.array([0, 2, 4, 6]) for r in roles},
            distance={r: np.array([0.0, 0.4, 0.7, 0.9]) for r in roles}, foreground=fg,
            image_keys=[f"scene_{i:02d}" for i in range(N)], seed=seed))
    return analyze_concepts(runs, n_resamples=200, n_permutations=200)
