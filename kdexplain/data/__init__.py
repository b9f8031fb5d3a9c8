"""The data room: images with exact foreground masks, and masks on the perturbation grid.

``build_dataset(name, split, root, image_size, **options)`` gives a torch Dataset whose
items are dicts ``image`` (3, S, S) normalised, ``label``, ``mask`` (S, S) bool, ``box``
(4,), ``index``, ``key``. ``mask_to_grid`` down-samples masks to the ``g x g`` grid of the
quantify room. See docs/data.md.
"""

from kdexplain.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".animals": ["ANIMAL_CLASSES"],
    ".base": [
        "CorruptImageError", "CorruptImageWarning", "ImageOptions", "MaskedImageDataset",
        "RecordDataset", "Skipped", "collate", "readable_items",
    ],
    ".cub": ["CUBDataset"],
    ".folder": ["FolderDataset"],
    ".grid": ["MASK_RULES", "cell_index", "center_mask", "mask_to_grid"],
    ".ilsvrc": ["ILSVRCDataset"],
    ".pets": ["PetsDataset"],
    ".preloaded": ["PreloadedDataset", "collate_image_label"],
    ".preview": ["dataset_summary", "draw_preview", "format_summary"],
    ".registry": ["build_dataset", "dataset_names", "register_dataset"],
    ".scene_paint": ["BACKGROUND_FAMILIES"],
    ".scenes": ["ScenesDataset", "build_scenes", "default_data_root"],
    ".transforms": ["IMAGENET_MEAN", "IMAGENET_STD", "JointPipeline", "denormalize", "normalize"],
    ".voc": ["VOC_CLASSES", "VOCObjectsDataset"],
    ".digits": [
        "DIGIT_DATASETS", "FASHION_MNIST_CLASSES", "DigitData", "load_digits",
        "load_fashion_mnist", "load_mnist", "load_mnist5k", "load_sklearn_digits",
        "load_torchvision_mnist",
    ],
})
