"""What the quantification tests share: the image shape, a linear model whose closed-form
sensitivities c are known (docs/method.md section 3), and a tiny CNN."""

from __future__ import annotations

import torch
from torch import nn

#: Channels, height, width of the test images, and the grid's cells per side.
C, H, W_, G = 3, 16, 16, 4


def linear_with_closed_form(dim=32, size=16, grid=4, seed=0):
    """phi(x) = W x with cell-dependent column norms, on (3, size, size) images; returns the
    model and c_i per cell, (grid, grid)."""
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


def tiny_cnn(seed=0):
    """Conv(3 -> 4) - ReLU - MaxPool - Flatten - Linear(256 -> 10) for (3, 16, 16) images,
    in eval mode, its weights drawn from ``seed``."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 8 * 8, 10)).eval()
