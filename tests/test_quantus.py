"""The Quantus adapter, and the docs example (docs/attribution.md) of Quantus metrics on the scenes masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

quantus = pytest.importorskip(
    "quantus", reason="Quantus is an optional extra: pip install -e \".[quantus]\"")

from kdexplain import build_dataset, build_model  # noqa: E402
from kdexplain.quantus import explain_func  # noqa: E402


@pytest.fixture(scope="module")
def scenes_batch():
    ds = build_dataset("scenes", split="val", image_size=32, images_per_class=2,
                       val_per_class=1, seed=0, classes=["bird", "cat", "zebra"])
    items = [ds[i] for i in range(len(ds))]
    x = torch.stack([it["image"] for it in items]).numpy()
    y = np.array([it["label"] for it in items])
    s = torch.stack([it["mask"] for it in items])[:, None].numpy().astype(np.float32)
    torch.manual_seed(0)
    model = build_model("kdnet", num_classes=ds.num_classes, width=4, hidden=16).eval()
    return model, x, y, s


def test_explain_func_shape_and_maps(scenes_batch):
    model, x, y, _ = scenes_batch
    kwargs = {"layer": "conv", "grid": 8, "steps": 6, "samples": 4}
    a = explain_func(model, x, y, **kwargs)
    assert a.shape == (len(x), 1, 32, 32) and a.dtype == np.float32
    assert a.min() >= 0 and np.allclose(a.reshape(len(x), -1).max(1), 1)
    raw = explain_func(model, x, y, map="neg_entropy", **kwargs)
    assert np.all(raw < 0) or np.all(np.isfinite(raw))
    # a layer map does not depend on the targets; the target-logit map does
    assert np.array_equal(explain_func(model, x, (y + 1) % 3, **kwargs), a)
    logit = {"grid": 8, "steps": 6, "samples": 4}
    assert not np.allclose(explain_func(model, x[:1], y[:1], **logit),
                           explain_func(model, x[:1], (y[:1] + 1) % 3, **logit))
    with pytest.raises(ValueError, match="channels-first"):
        explain_func(model, x, y, channel_first=False, **kwargs)


def test_readme_example_runs_the_four_metrics(scenes_batch):
    model, x_batch, y_batch, s_batch = scenes_batch
    # --- the docs example (Quantus on the built-in scenes masks) ------------------
    kwargs = {"layer": "conv", "grid": 8, "steps": 6, "samples": 4, "seed": 0}
    metrics = {
        "PointingGame": quantus.PointingGame(disable_warnings=True),
        "RelevanceRankAccuracy": quantus.RelevanceRankAccuracy(disable_warnings=True),
        "RelevanceMassAccuracy": quantus.RelevanceMassAccuracy(disable_warnings=True),
        "FaithfulnessCorrelation": quantus.FaithfulnessCorrelation(
            nr_runs=5, subset_size=64, perturb_baseline="black", disable_warnings=True),
    }
    scores = {name: metric(model=model, x_batch=x_batch, y_batch=y_batch, s_batch=s_batch,
                           explain_func=explain_func, explain_func_kwargs=kwargs, device="cpu")
              for name, metric in metrics.items()}
    # --------------------------------------------------------------------------------
    a = explain_func(model, x_batch, y_batch, **kwargs)
    flat, mask = a.reshape(len(a), -1), s_batch.reshape(len(a), -1) > 0
    # golden values from the map itself: mass inside the mask / total mass (the map is
    # non-negative, and Quantus's normalise_by_max does not change the ratio)
    mass = (flat * mask).sum(1) / flat.sum(1)
    assert np.allclose(scores["RelevanceMassAccuracy"], mass, atol=1e-5)
    # rank accuracy: the share of the mask's size of top-ranked pixels that lie in it
    k = mask.sum(1)
    rank = [np.isin(np.argsort(-f, kind="stable")[:n], np.flatnonzero(m)).mean()
            for f, m, n in zip(flat, mask, k, strict=True)]
    assert np.allclose(scores["RelevanceRankAccuracy"], rank, atol=0.1)
    assert all(v in (0.0, 1.0, True, False) for v in scores["PointingGame"])
    assert np.all(np.abs(scores["FaithfulnessCorrelation"]) <= 1)
