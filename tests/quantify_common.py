"""A linear model whose closed-form sensitivities c are known (docs/method.md section 3),
shared by the quantification tests."""

from __future__ import annotations

import torch
from torch import nn


def linear_with_closed_form(dim=32, size=16, grid=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(dim, 3 * size * size, generator=gen)
    scale = torch.rand(grid, grid, generator=gen) * 3 + 0.2
    k = size // grid
    weight = weight * scale.repeat_interleave(k, 0).repeat_interleave(k, 1).flatten().repeat(3)[None]
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, dim, bias=False))
    model[1].weight.data = weight
    cell = (torch.arange(grid * grid).reshape(grid, grid).repeat_interleave(k, 0)
            .repeat_interleave(k, 1).flatten().repeat(3))
    c = torch.zeros(grid * grid).index_add_(0, cell, (weight**2).sum(0)).reshape(grid, grid)
    return model, c

