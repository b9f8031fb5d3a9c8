"""The entropy grids of one trained run, checked on arrival (:class:`RunEntropies`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from kdexplain.vocabulary import ALL_ROLES

__all__ = ["RunEntropies"]


def _as_array(x: Any, name: str, dtype: Any = None) -> np.ndarray:
    try:
        return np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be an array, got {type(x).__name__}: {err}") from None


@dataclass
class RunEntropies:
    """The entropy grids of one trained run (one seed), as the sweep delivers them.

    Attributes
    ----------
    entropy : dict role -> float array (M_r, N, g, g)
        Entropy ``H_i`` (nats per dimension) at each analysed checkpoint of model ``role``
        (``"teacher"``, ``"student"``, ``"baseline"``; any subset), sorted by epoch. A whole
        grid is NaN where that image had no usable signal at that checkpoint (``D0 == 0``).
    epochs : dict role -> int array (M_r,)
        Strictly increasing checkpoint epochs.
    distance : dict role -> float array (M_r,)
        Normalised weight distance ``d`` of the analysed layer at each checkpoint, the
        path length over optimiser steps (docs/method.md section 4); all NaN where it was not recorded (a run
        assembled from per-epoch state dicts: only ``distance_epoch`` exists).
    foreground : bool array (N, g, g)
        The images' masks on the grid.
    image_keys : list of str (N)
        Stable image identifiers (same order as the grids).
    distance_epoch : dict role -> float array (M_r,), optional
        The paper's per-epoch form of ``d``; used when ``ConceptSettings.distance == "epoch"``.
    seed : int, optional
        The run's training seed (position in the list when None).
    total_epochs : dict role -> int, optional
        Length of each model's training, for the selection rule's "late" epochs; defaults
        to the last checkpoint epoch.

    Torch tensors are accepted and converted to numpy.
    """

    entropy: dict[str, np.ndarray]
    epochs: dict[str, np.ndarray]
    distance: dict[str, np.ndarray]
    foreground: np.ndarray
    image_keys: list[str]
    distance_epoch: dict[str, np.ndarray] | None = None
    seed: int | None = None
    total_epochs: dict[str, int] | None = None

    def __post_init__(self) -> None:
        # own copies: validation converts the values and must not touch the caller's dicts
        self.entropy, self.epochs, self.distance = (dict(self.entropy), dict(self.epochs),
                                                    dict(self.distance))
        if self.distance_epoch is not None:
            self.distance_epoch = dict(self.distance_epoch)
        if self.total_epochs is not None:
            self.total_epochs = {r: int(v) for r, v in self.total_epochs.items()}
        self.foreground = _as_array(self.foreground, "foreground")
        if self.foreground.ndim != 3 or self.foreground.shape[1] != self.foreground.shape[2]:
            raise ValueError(f"foreground must be a bool array (images, g, g), got shape "
                             f"{self.foreground.shape}")
        if self.foreground.dtype != bool:
            if not np.isin(self.foreground, (0, 1)).all():
                raise ValueError("foreground must be boolean (or 0/1) per cell")
            self.foreground = self.foreground.astype(bool)
        n = self.foreground.shape[0]
        self.image_keys = [str(k) for k in self.image_keys]
        if len(self.image_keys) != n:
            raise ValueError(f"{len(self.image_keys)} image keys for {n} foreground masks")
        if len(set(self.image_keys)) != n:
            dup = sorted({k for k in self.image_keys if self.image_keys.count(k) > 1})
            raise ValueError(f"image keys repeat: {dup[:5]}")
        roles = set(self.entropy)
        unknown = roles - set(ALL_ROLES)
        if unknown:
            raise ValueError(f"unknown model roles {sorted(unknown)}; use {list(ALL_ROLES)}")
        if not roles:
            raise ValueError("RunEntropies needs the entropy of at least one model")
        for name, d in (("epochs", self.epochs), ("distance", self.distance)):
            if set(d) != roles:
                raise ValueError(f"{name} has roles {sorted(d)} but entropy has {sorted(roles)}")
        if self.distance_epoch is not None and set(self.distance_epoch) != roles:
            raise ValueError(f"distance_epoch has roles {sorted(self.distance_epoch)} but "
                             f"entropy has {sorted(roles)}")
        for role in list(self.entropy):
            ent = _as_array(self.entropy[role], f"entropy[{role!r}]", np.float64)
            if ent.ndim != 4 or ent.shape[1:] != self.foreground.shape:
                raise ValueError(f"entropy[{role!r}] has shape {ent.shape}; expected "
                                 f"(checkpoints, images, g, g) with (images, g, g) = "
                                 f"{self.foreground.shape} as the foreground")
            if ent.shape[0] == 0:
                raise ValueError(f"entropy[{role!r}] has no checkpoint")
            if np.isinf(ent).any():
                raise ValueError(f"entropy[{role!r}] holds infinite values (sigma 0?)")
            finite = np.isfinite(ent).reshape(*ent.shape[:2], -1)
            partial = finite.any(-1) & ~finite.all(-1)
            if partial.any():
                j, i = np.argwhere(partial)[0]
                raise ValueError(f"entropy[{role!r}] of image {self.image_keys[i]!r} at "
                                 f"checkpoint {j} is partly NaN; a grid is either all finite "
                                 "or all NaN (no usable signal)")
            self.entropy[role] = ent
            m = ent.shape[0]
            ep = _as_array(self.epochs[role], f"epochs[{role!r}]")
            if ep.shape != (m,) or not np.issubdtype(ep.dtype, np.number):
                raise ValueError(f"epochs[{role!r}] must hold {m} epochs, got shape {ep.shape}")
            if (np.diff(ep) <= 0).any():
                raise ValueError(f"epochs[{role!r}] must be strictly increasing, got "
                                 f"{ep.tolist()}; sort the checkpoints by epoch")
            self.epochs[role] = ep.astype(np.int64)
            for name, d in (("distance", self.distance), ("distance_epoch", self.distance_epoch)):
                if d is None:
                    continue
                dist = _as_array(d[role], f"{name}[{role!r}]", np.float64)
                unrecorded = name == "distance" and np.isnan(dist).all()
                if dist.shape != (m,) or not (np.isfinite(dist).all() or unrecorded):
                    raise ValueError(f"{name}[{role!r}] must be {m} finite values, got "
                                     f"shape {dist.shape}")
                d[role] = dist

    @property
    def roles(self) -> list[str]:
        """The models present, in table order."""
        return [r for r in ALL_ROLES if r in self.entropy]

    @property
    def n_images(self) -> int:
        return int(self.foreground.shape[0])

    @property
    def grid(self) -> int:
        return int(self.foreground.shape[1])
