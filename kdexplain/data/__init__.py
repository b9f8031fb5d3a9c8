"""The data room: images with exact foreground masks, and masks on the perturbation grid.

``build_dataset(name, split, root, image_size, **options)`` gives a torch Dataset whose
items are dicts ``image`` (3, S, S) normalised, ``label``, ``mask`` (S, S) bool, ``box``
(4,), ``index``, ``key``. ``mask_to_grid`` down-samples masks to the ``g x g`` grid of the
quantify room. See docs/data.md.
"""

from kdexplain.data.animals import ANIMAL_CLASSES
from kdexplain.data.base import (
    CorruptImageError,
    CorruptImageWarning,
    MaskedImageDataset,
    RecordDataset,
    Skipped,
    collate,
    readable_items,
)
from kdexplain.data.cub import CUBDataset
from kdexplain.data.folder import FolderDataset
from kdexplain.data.grid import MASK_RULES, cell_index, center_mask, mask_to_grid
from kdexplain.data.ilsvrc import ILSVRCDataset
from kdexplain.data.pets import PetsDataset
from kdexplain.data.preview import dataset_summary, draw_preview, format_summary
from kdexplain.data.registry import build_dataset, dataset_names, register_dataset
from kdexplain.data.scenes import (
    BACKGROUND_FAMILIES,
    ScenesDataset,
    build_scenes,
    default_data_root,
)
from kdexplain.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    JointPipeline,
    denormalize,
    normalize,
)
from kdexplain.data.voc import VOC_CLASSES, VOCObjectsDataset

__all__ = [
    "ANIMAL_CLASSES",
    "BACKGROUND_FAMILIES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MASK_RULES",
    "VOC_CLASSES",
    "CUBDataset",
    "CorruptImageError",
    "CorruptImageWarning",
    "FolderDataset",
    "ILSVRCDataset",
    "JointPipeline",
    "MaskedImageDataset",
    "RecordDataset",
    "PetsDataset",
    "ScenesDataset",
    "Skipped",
    "VOCObjectsDataset",
    "build_dataset",
    "build_scenes",
    "cell_index",
    "center_mask",
    "collate",
    "dataset_names",
    "dataset_summary",
    "default_data_root",
    "denormalize",
    "draw_preview",
    "format_summary",
    "mask_to_grid",
    "normalize",
    "readable_items",
    "register_dataset",
]

# Digit data sets for the distillation analyses (MNIST-5k, Fashion-MNIST, sklearn digits).
from kdexplain.data.digits import (  # noqa: E402
    DIGIT_DATASETS,
    FASHION_MNIST_CLASSES,
    DigitData,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    load_mnist5k,
    load_sklearn_digits,
    load_torchvision_mnist,
)

__all__ += [
    "DIGIT_DATASETS",
    "FASHION_MNIST_CLASSES",
    "DigitData",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_mnist5k",
    "load_sklearn_digits",
    "load_torchvision_mnist",
]
