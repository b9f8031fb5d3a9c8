"""The test images: accuracy sets and the two analysed image sets.

Two renderings of the ``scenes`` test split are used, with the same silhouettes and labels
(the silhouette of image ``i`` does not depend on ``spurious_background``):

- ``tied``: generated with ``spurious_background = 1``, every background is the photo family
  tied to the image's class, so the background predicts the label;
- ``neutral``: generated with ``spurious_background = 0``, the background family is drawn
  uniformly. Relative to the classes, a neutral image's background is ``tied`` (by chance
  its own class's family), ``conflicting`` (another class's family) or ``unrelated`` (a
  family tied to no class): :func:`background_relation`.

The analysed ``neutral`` set takes only ``unrelated`` images, so its background carries no
class information for either network; both sets are balanced over classes
(:func:`select_balanced`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from analyses.spurious.config import SpuriousConfig
from kdexplain.data import build_dataset, mask_to_grid

__all__ = ["RELATIONS", "ImageSet", "analysed_sets", "background_relation", "load_test_split",
           "select_balanced"]

#: How a background family relates to an image's class (see :func:`background_relation`).
RELATIONS = ("tied", "conflicting", "unrelated")


def background_relation(labels: np.ndarray, families: np.ndarray, n_classes: int) -> np.ndarray:
    """How each image's background family relates to its class.

    Class position ``c`` is tied to family ``c`` (for ``n_classes <= 10``).

    Parameters
    ----------
    labels : int array (N,)
        Class positions.
    families : int array (N,)
        Background family indices.
    n_classes : int

    Returns
    -------
    str array (N,)
        ``"tied"`` (family == label), ``"conflicting"`` (the family of another class) or
        ``"unrelated"`` (a family tied to no class).
    """
    labels = np.asarray(labels)
    families = np.asarray(families)
    if labels.shape != families.shape:
        raise ValueError(f"labels {labels.shape} and families {families.shape} differ in shape")
    out = np.full(labels.shape, "unrelated", dtype=object)
    out[families < n_classes] = "conflicting"
    out[families == labels] = "tied"
    return out.astype(str)


def select_balanced(labels: np.ndarray, eligible: np.ndarray, n: int) -> np.ndarray:
    """``n`` eligible indices, balanced over classes, earliest first.

    Classes take turns in label order; each turn takes the class's earliest eligible index
    not yet taken. A class that runs out is skipped.

    Parameters
    ----------
    labels : int array (N,)
    eligible : bool array (N,)
    n : int

    Returns
    -------
    int array (n,)
        Sorted indices.

    Raises
    ------
    ValueError
        Fewer than ``n`` eligible indices.
    """
    labels = np.asarray(labels)
    eligible = np.asarray(eligible, dtype=bool)
    if int(eligible.sum()) < n:
        raise ValueError(f"only {int(eligible.sum())} eligible images, {n} asked for; lower "
                         "images_per_set or raise test_per_class")
    queues = {c: list(np.flatnonzero(eligible & (labels == c))) for c in np.unique(labels)}
    picked: list[int] = []
    while len(picked) < n:
        for c in sorted(queues):
            if queues[c] and len(picked) < n:
                picked.append(int(queues[c].pop(0)))
    return np.sort(np.asarray(picked, dtype=np.int64))


@dataclass
class ImageSet:
    """Images with masks, labels and background families.

    Attributes
    ----------
    name : str
        ``tied`` or ``neutral`` (the analysed sets), or the rendering for accuracy sets.
    images : Tensor (N, 3, H, W)
        Normalised (the networks' input space).
    masks : BoolTensor (N, H, W)
        Exact foreground pixels.
    foreground : bool ndarray (N, g, g)
        The masks on the perturbation grid.
    labels : int ndarray (N,)
    families : int ndarray (N,)
    relation : str ndarray (N,)
        See :func:`background_relation`.
    indices : int ndarray (N,)
        Positions in the test split.
    keys : list of str
        Names of the images' noise streams: ``<name>:<dataset key>``; identical for both
        networks, so they see the same noise (common random numbers).
    """

    name: str
    images: torch.Tensor
    masks: torch.Tensor
    foreground: np.ndarray
    labels: np.ndarray
    families: np.ndarray
    relation: np.ndarray
    indices: np.ndarray
    keys: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray, name: str | None = None) -> ImageSet:
        """The images at positions ``idx`` of this set."""
        idx = np.asarray(idx, dtype=np.int64)
        t = torch.as_tensor(idx)
        name = name or self.name
        keys = [f"{name}:{self.keys[i].split(':', 1)[-1]}" for i in idx]
        return ImageSet(name, self.images[t], self.masks[t], self.foreground[idx],
                        self.labels[idx], self.families[idx], self.relation[idx],
                        self.indices[idx], keys)


def load_test_split(cfg: SpuriousConfig, p: float, name: str) -> ImageSet:
    """The whole test split rendered with ``spurious_background = p``.

    Parameters
    ----------
    cfg : SpuriousConfig
    p : float
        ``spurious_background`` of the rendering (1 = every background tied).
    name : str
        The set's name (prefix of its noise keys).
    """
    ds = build_dataset("scenes", split="test", root=cfg.data_root, image_size=cfg.image_size,
                       images_per_class=cfg.train_per_class, test_per_class=cfg.test_per_class,
                       seed=cfg.data_seed, spurious_background=float(p),
                       classes=list(cfg.classes))
    items = [ds[i] for i in range(len(ds))]
    masks = torch.stack([it["mask"] for it in items]).bool()
    labels = np.asarray([int(it["label"]) for it in items], dtype=np.int64)
    families = ds.backgrounds.numpy().astype(np.int64)
    return ImageSet(
        name=name,
        images=torch.stack([it["image"] for it in items]).float(),
        masks=masks,
        foreground=mask_to_grid(masks, cfg.grid, rule=cfg.mask_rule).numpy().astype(bool),
        labels=labels,
        families=families,
        relation=background_relation(labels, families, len(cfg.classes)),
        indices=np.arange(len(items), dtype=np.int64),
        keys=[f"{name}:{it['key']}" for it in items],
    )


def analysed_sets(cfg: SpuriousConfig, tied_split: ImageSet, neutral_split: ImageSet
                  ) -> dict[str, ImageSet]:
    """The two analysed image sets, ``images_per_set`` images each, balanced over classes.

    ``tied``: from the ``p = 1`` rendering. ``neutral``: from the ``p = 0`` rendering, only
    images whose background family is tied to no class (``unrelated``).
    """
    n = cfg.images_per_set
    tied_idx = select_balanced(tied_split.labels, np.ones(len(tied_split), dtype=bool), n)
    neutral_idx = select_balanced(neutral_split.labels,
                                  neutral_split.relation == "unrelated", n)
    return {"tied": tied_split.subset(tied_idx, "tied"),
            "neutral": neutral_split.subset(neutral_idx, "neutral")}


def load_analysed_sets(cfg: SpuriousConfig) -> dict[str, ImageSet]:
    """:func:`analysed_sets` of the two renderings of the test split (p = 1 and p = 0)."""
    return analysed_sets(cfg, load_test_split(cfg, 1.0, "tied"),
                         load_test_split(cfg, 0.0, "neutral"))
