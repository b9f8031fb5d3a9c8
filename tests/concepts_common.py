"""Hand-made entropy grids shared by the concept tests (docs/method.md section 4).

Every number the tests assert on these grids is computed by hand in the docstrings below.
"""

from __future__ import annotations

import numpy as np

from kdexplain.concepts import RunEntropies

G = 4
EPOCHS = np.array([0, 5, 10])
DIST = np.array([0.0, 0.5, 1.25])


def hand_foreground() -> np.ndarray:
    """Image 0: top-left 2x2 block (12 background cells); image 1: columns 0-1 (8 bg)."""
    fg = np.zeros((2, G, G), dtype=bool)
    fg[0, :2, :2] = True
    fg[1, :, :2] = True
    return fg


def hand_entropy() -> np.ndarray:
    """(M=3, N=2, 4, 4), base -3.0 with a few low (and one high) cells.

    H_bar (pooled = mean of per-image background means):
      ck0: img0 bg (11*-3 - 3.3)/12 = -3.025, img1 bg (7*-3 - 2.4)/8 = -2.925 -> -2.975
      ck1: img0 -3.0, img1 (7*-3 - 3.4)/8 = -3.05 -> -3.025
      ck2: img0 (11*-3 - 3.6)/12 = -3.05, img1 -3.0 -> -3.025
    Concepts (H_i < H_bar - 0.2):
      ck0: img0 fg (0,0), bg (3,3); img1 fg (0,0)              N_fg [1, 1]  N_bg [1, 0]
      ck1: img0 fg (0,0),(0,1); img1 fg (0,0),(1,0),(2,1), bg (0,3)  N_fg [2, 3]  N_bg [0, 1]
      ck2: img0 fg (0,0),(1,1), bg (2,2); img1 fg (0,0),(1,0),(2,1),(3,0)  N_fg [2, 4]  N_bg [1, 0]
    """
    e = np.full((3, 2, G, G), -3.0)
    e[0, 0, 0, 0], e[0, 0, 3, 3] = -3.5, -3.3
    e[0, 1, 2, 2], e[0, 1, 0, 0] = -2.4, -3.2
    e[1, 0, 0, 0] = e[1, 0, 0, 1] = -3.6
    e[1, 1, 0, 0] = e[1, 1, 1, 0] = e[1, 1, 2, 1] = -3.5
    e[1, 1, 0, 3] = -3.4
    e[2, 0, 0, 0] = e[2, 0, 1, 1] = e[2, 0, 2, 2] = -3.6
    e[2, 1, 0, 0] = e[2, 1, 1, 0] = e[2, 1, 2, 1] = e[2, 1, 3, 0] = -3.5
    return e


def run_entropies(student: np.ndarray, baseline: np.ndarray, fg: np.ndarray, keys=None, seed=None,
         teacher: np.ndarray | None = None) -> RunEntropies:
    ent = {"student": student, "baseline": baseline}
    if teacher is not None:
        ent["teacher"] = teacher
    n = fg.shape[0]
    return RunEntropies(entropy=ent, epochs={r: EPOCHS for r in ent},
                        distance={r: DIST for r in ent}, foreground=fg,
                        image_keys=keys or [f"img{i}" for i in range(n)], seed=seed,
                        total_epochs={r: 15 for r in ent})

