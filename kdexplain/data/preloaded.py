"""A dataset held in memory as two tensors, fetched a whole batch at a time."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from kdexplain.data.base import readable_items
from kdexplain.utils import progress

__all__ = ["PreloadedDataset", "collate_image_label"]


def collate_image_label(items: list[dict] | tuple[torch.Tensor, torch.Tensor]
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack dataset items (dicts with ``image`` (3, H, W) and ``label``) into
    ``images (B, 3, H, W)`` and ``labels (B,)`` (long). A batch that is already stacked
    (from :meth:`PreloadedDataset.__getitems__`) passes through."""
    if isinstance(items, tuple):
        return items
    images = torch.stack([it["image"] for it in items])
    labels = torch.as_tensor([int(it["label"]) for it in items], dtype=torch.long)
    return images, labels


class PreloadedDataset(Dataset):
    """A dataset's images and labels, read once and held as two tensors.

    ``images`` (N, 3, H, W) float, ``labels`` (N,) long. ``DataLoader`` fetches whole
    batches through :meth:`__getitems__` (one indexing operation instead of N item reads
    and a stack), which on a CPU makes an epoch of a small dataset several times faster.
    Only valid for datasets whose items are the same at every read (no random augmentation).

    Parameters
    ----------
    dataset : Dataset
        Items are dicts with ``image`` and ``label``.
    desc : str
        Progress-bar label.
    """

    def __init__(self, dataset: Dataset, desc: str = "preload") -> None:
        # corrupt files are left out (with a warning naming them), never replaced
        items = readable_items(dataset, progress(range(len(dataset)), desc=desc, unit="img",
                                                 leave=False))
        if not items:
            raise ValueError(f"none of the {len(dataset)} images of {desc!r} can be read")
        self.images = torch.stack([it["image"] for it in items])
        self.labels = torch.as_tensor([int(it["label"]) for it in items], dtype=torch.long)
        self.num_classes = getattr(dataset, "num_classes", int(self.labels.max()) + 1)
        self.class_names = list(getattr(dataset, "class_names", []))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "label": int(self.labels[i])}

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return self.images[idx], self.labels[idx]
