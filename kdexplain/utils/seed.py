"""Seeding: one seed for everything, and stable derived seeds for sub-streams."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA).

    Parameters
    ----------
    seed : int
        The run's seed.
    deterministic : bool
        Ask torch for deterministic kernels where it has them (``warn_only`` so that an
        operation without a deterministic kernel does not abort a long run).
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        if torch.backends.cudnn.is_available():
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed derived from ``seed`` and any number of keys.

    The same (seed, keys) always gives the same value, on every machine and Python
    version (unlike ``hash``), so independent random streams can be named, e.g.
    ``derive_seed(seed, "noise", image_key)``.
    """
    h = hashlib.blake2b(digest_size=8)
    h.update(str(int(seed)).encode())
    for k in keys:
        h.update(b"\x1f")
        h.update(str(k).encode())
    return int.from_bytes(h.digest(), "little") & ((1 << 63) - 1)
