"""kdexplain.quantification.chunking: the chunk sizer's calibration and its cache, and the
default chunk from the activation footprint."""

from __future__ import annotations

import torch

from kdexplain.quantification import LayerFeature
from tests.quantify_common import W_, C, H
from tests.quantify_common import tiny_cnn as _tiny_cnn


def test_chunk_sizer_doubles_while_faster_then_keeps_and_caches():
    from kdexplain.quantification import chunking
    key = ("test-sizer",)
    chunking._CALIBRATED.pop(key, None)
    per_row = {4: 1.0, 8: 0.6, 16: 0.5, 32: 0.49}  # seconds per row at each size
    sizer = chunking.ChunkSizer(4, 64, key)
    seen = []
    while not sizer.settled:
        seen.append(sizer.size)
        sizer.record(sizer.size, per_row[sizer.size] * sizer.size)
    assert seen == [4, 4, 8, 8, 16, 16, 32, 32]  # 32 is < 5 % faster than 16: keep 16
    assert sizer.size == 16 and chunking._CALIBRATED[key] == 16
    assert chunking.ChunkSizer(4, 64, key).size == 16  # the next call starts settled
    assert chunking.ChunkSizer(4, 64, key).settled
    fixed = chunking.ChunkSizer(5, 5, key=None)
    fixed.record(5, 1.0)
    assert fixed.settled and fixed.size == 5
    partial = chunking.ChunkSizer(4, 64, ("test-sizer-2",))
    partial.record(3, 1.0)  # a partial chunk (the last of a step) is not a measurement
    assert partial.size == 4 and not partial.settled


def test_default_chunk_from_activation_footprint():
    from kdexplain.quantification.engine import (
        CPU_CHUNK_BYTES,
        MAX_DEFAULT_ROWS,
        activation_bytes_per_row,
        default_max_batch,
    )
    model = _tiny_cnn()
    x = torch.randn(2, C, H, W_)
    with LayerFeature(model, "4") as phi:
        per_row = activation_bytes_per_row(phi, model, x)
    # conv (4 x 16 x 16) + ReLU (same) + pool (4 x 8 x 8) + flatten (256) floats, stopped at "4"
    assert per_row == 4 * (1024 + 1024 + 256 + 256)
    assert default_max_batch("cpu", CPU_CHUNK_BYTES // 10) == 10
    assert default_max_batch("cpu", 10 * CPU_CHUNK_BYTES) == 1
    assert default_max_batch("cpu", 1) == MAX_DEFAULT_ROWS
    assert default_max_batch("cuda", per_row) == MAX_DEFAULT_ROWS
