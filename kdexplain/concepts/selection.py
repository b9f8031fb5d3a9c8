"""Which images each model's numbers come from (the selection rule, docs/method.md section 4)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kdexplain.concepts.hypotheses import ROLE_LABELS
from kdexplain.concepts.metrics import effective_images, region_means, usable_images
from kdexplain.concepts.runs import RunEntropies
from kdexplain.concepts.settings import ConceptSettings
from kdexplain.vocabulary import COMPARED_ROLES

__all__ = ["select_images"]


def select_images(run: RunEntropies, seed: int, settings: ConceptSettings
            ) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Decide, per role, which images are used. Returns role -> bool (N,) and the table."""
    keys = np.asarray(run.image_keys, dtype=object)
    usable, effective, reasons = {}, {}, {}
    for role in run.roles:
        ent, epochs = run.entropy[role], run.epochs[role]
        ok, first_bad = usable_images(ent)
        why = np.array([""] * run.n_images, dtype=object)
        for i in np.flatnonzero(~ok):
            why[i] = f"no usable signal (D0 = 0) at epoch {int(epochs[first_bad[i]])}"
        eff = np.ones(run.n_images, dtype=bool)
        if settings.select_effective:
            total = (run.total_epochs or {}).get(role, int(epochs[-1]))
            late = settings.late_fraction * total
            eff, first = effective_images(ent, run.foreground, epochs, late)
            fg_mean, bg_mean = region_means(ent, run.foreground)
            for i in np.flatnonzero(~eff & ok):
                j = first[i]
                f, b = fg_mean[j, i], bg_mean[j, i]
                if np.isfinite(f) and np.isfinite(b):
                    detail = f"mean background entropy {b:.3f} < mean foreground {f:.3f}"
                else:
                    detail = ("no " + ("foreground" if not np.isfinite(f) else "background")
                              + " cell to compare")
                why[i] = f"not effective: {detail} at epoch {int(epochs[j])}"
        usable[role], effective[role], reasons[role] = ok, eff, why
    pair = [r for r in COMPARED_ROLES if r in run.roles] or run.roles
    common = np.logical_and.reduce([usable[r] & effective[r] for r in pair])
    beyond = np.zeros_like(common)
    if settings.keep_effective is not None:
        beyond[np.flatnonzero(common)[settings.keep_effective:]] = True
        common = common & ~beyond
    used, rows = {}, []
    for role in run.roles:
        own = usable[role] & effective[role]
        used[role] = common & own
        why = reasons[role].copy()
        for i in np.flatnonzero(beyond):
            why[i] = (f"beyond the first {settings.keep_effective} effective images "
                      "(keep_effective)")
        for i in np.flatnonzero(own & ~common & ~beyond):
            others = [f"{ROLE_LABELS[r]}: {reasons[r][i]}" for r in pair
                      if r != role and reasons[r][i]]
            why[i] = "not used by the compared pair (" + "; ".join(others) + ")"
        rows.append(pd.DataFrame({
            "seed": seed, "role": role, "image_key": keys, "usable": usable[role],
            "effective": effective[role] if settings.select_effective else np.nan,
            "used": used[role], "reason": why,
        }))
    return used, pd.concat(rows, ignore_index=True)
