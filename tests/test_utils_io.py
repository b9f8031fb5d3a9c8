"""kdexplain.utils.io: the one JSON policy."""

import json
import math

import numpy as np
import torch

from kdexplain.utils.io import jsonable, write_json


def test_write_json_writes_strict_json_with_null_for_nan(tmp_path):
    path = write_json(tmp_path / "a.json", {"nan": float("nan"), "inf": -math.inf, 3: (1, 2),
                                           "np": np.float32(0.5), "i": np.int64(4),
                                           "arr": np.array([1.0, np.nan]),
                                           "t": torch.tensor([2, 3]), "p": tmp_path.name})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    back = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    assert back == {"nan": None, "inf": None, "3": [1, 2], "np": 0.5, "i": 4,
                    "arr": [1.0, None], "t": [2, 3], "p": tmp_path.name}


def test_jsonable_keeps_builtins_and_names_the_rest():
    assert jsonable({"a": [True, None, 1, 1.5, "x"]}) == {"a": [True, None, 1, 1.5, "x"]}
    assert jsonable(object) == str(object)
