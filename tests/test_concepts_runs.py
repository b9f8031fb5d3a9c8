"""kdexplain.concepts.runs: RunEntropies checks its contract (docs/method.md section 4)."""

from __future__ import annotations

import numpy as np
import pytest

from kdexplain.concepts import RunEntropies
from tests.concepts_common import DIST, EPOCHS
from tests.concepts_common import hand_entropy as _entropy
from tests.concepts_common import hand_foreground as _foreground
from tests.concepts_common import run_entropies as _run


def test_run_entropies_validates_its_contract():
    fg = _foreground()
    with pytest.raises(ValueError, match="partly NaN"):
        e = _entropy()
        e[0, 0, 0, 0] = np.nan
        _run(e, _entropy(), fg)
    with pytest.raises(ValueError, match="strictly increasing"):
        RunEntropies(entropy={"student": _entropy()}, epochs={"student": [0, 10, 5]},
                     distance={"student": DIST}, foreground=fg, image_keys=["a", "b"])
    with pytest.raises(ValueError, match="foreground"):
        RunEntropies(entropy={"student": _entropy()}, epochs={"student": EPOCHS},
                     distance={"student": DIST}, foreground=fg[:1], image_keys=["a"])
    with pytest.raises(ValueError, match="unknown model roles"):
        RunEntropies(entropy={"pupil": _entropy()}, epochs={"pupil": EPOCHS},
                     distance={"pupil": DIST}, foreground=fg, image_keys=["a", "b"])

