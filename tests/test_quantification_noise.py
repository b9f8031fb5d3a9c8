"""kdexplain.quantification.noise: per-image noise streams and the rows they are drawn in."""

from __future__ import annotations

import torch

from kdexplain.quantification.noise import NoiseStreams, row_chunks


def test_row_chunks_cover_every_row_once_with_varying_sizes():
    sizes = iter([3, 5, 2, 7, 100])
    chunks = list(row_chunks([0, 2, 5], 4, sizes))
    assert [sum(s1 - s0 for _, s0, s1 in c) for c in chunks] == [3, 5, 2, 2]
    rows = [(b, s) for c in chunks for b, s0, s1 in c for s in range(s0, s1)]
    assert rows == [(b, s) for b in (0, 2, 5) for s in range(4)]


def test_noise_of_split_rows_equals_one_draw():
    a = NoiseStreams(["x", "y"], 3, (1, 2, 2), torch.device("cpu"))
    b = NoiseStreams(["x", "y"], 3, (1, 2, 2), torch.device("cpu"))
    whole = a.draw(1, 5)
    parts = b.rows([(1, 0, 2)], 5) + b.rows([(1, 2, 5)], 5)
    torch.testing.assert_close(torch.cat(parts), whole, rtol=0, atol=0)

