"""Joint image / mask / box transforms (``torchvision.transforms.v2``) and normalisation.

Every dataset of this room turns a raw sample (an RGB image, a foreground mask and an
object box at the image's own size) into the tensors of an item with :class:`JointPipeline`:
an optional crop around the box (padded where it leaves the image, the mask padded with
background), a resize to ``image_size x image_size``, optional augmentation, conversion to
float and normalisation. The image, the mask (``tv_tensors.Mask``) and the box
(``tv_tensors.BoundingBoxes``) go through the same geometric transforms, so they stay
aligned; where pixels are resampled, the mask is resampled like the image and
thresholded at half (:func:`resize_sample`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# Padding colour of crops that leave the image: the mean colour, i.e. zero after normalising.
_PAD_RGB = tuple(round(255 * m) for m in IMAGENET_MEAN)


def normalize(image: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
              std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """Map an image in [0, 1] to the network's input space: ``(x - mean) / std`` per channel.

    Parameters
    ----------
    image : FloatTensor, shape (3, H, W) or (B, 3, H, W)
        RGB values in [0, 1].
    """
    m = torch.as_tensor(mean, dtype=image.dtype, device=image.device).reshape(3, 1, 1)
    s = torch.as_tensor(std, dtype=image.dtype, device=image.device).reshape(3, 1, 1)
    return (image - m) / s


def denormalize(image: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
                std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """Undo :func:`normalize` for display.

    Parameters
    ----------
    image : FloatTensor, shape (3, H, W) or (B, 3, H, W)
        A normalised image (ImageNet mean/std unless told otherwise).

    Returns
    -------
    FloatTensor, same shape
        RGB in [0, 1] (clamped), detached, on the input's device.
    """
    if image.dim() not in (3, 4) or image.shape[-3] != 3:
        raise ValueError(f"expected an image of shape (3, H, W) or (B, 3, H, W), got "
                         f"{tuple(image.shape)}")
    image = image.detach().to(torch.float32)
    m = torch.as_tensor(mean, dtype=image.dtype, device=image.device).reshape(3, 1, 1)
    s = torch.as_tensor(std, dtype=image.dtype, device=image.device).reshape(3, 1, 1)
    return (image * s + m).clamp(0.0, 1.0)


def mask_box(mask: torch.Tensor) -> torch.Tensor:
    """The bounding box of a mask's foreground.

    Parameters
    ----------
    mask : BoolTensor, shape (H, W)

    Returns
    -------
    FloatTensor, shape (4,)
        ``x0, y0, x1, y1`` in pixel-edge coordinates: the box covers columns ``x0..x1-1``
        and rows ``y0..y1-1``. All zeros for an empty mask.
    """
    rows = torch.nonzero(mask.any(dim=1)).flatten()
    cols = torch.nonzero(mask.any(dim=0)).flatten()
    if rows.numel() == 0:
        return torch.zeros(4)
    return torch.tensor([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=torch.float32)


def scale_box(box: Sequence[float], scale: float) -> tuple[int, int, int, int]:
    """Scale a box ``x0, y0, x1, y1`` about its centre; returns integer pixel edges.

    The result may extend beyond the image (it is padded later): 1.2x an object's box
    is the paper's VOC and ILSVRC crop.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    hw, hh = max(x1 - x0, 1.0) * scale / 2, max(y1 - y0, 1.0) * scale / 2
    return (round(cx - hw), round(cy - hh), round(cx + hw), round(cy + hh))


def crop_padded(sample: dict, crop: tuple[int, int, int, int]) -> dict:
    """Crop a sample to ``crop = (x0, y0, x1, y1)``, padding where it leaves the image.

    The image is padded with the ImageNet mean colour (zero after normalisation), the mask
    with background; the box moves with the crop.
    """
    x0, y0, x1, y1 = crop
    h, w = sample["image"].shape[-2:]
    pad = [max(0, -x0), max(0, -y0), max(0, x1 - w), max(0, y1 - h)]  # left, top, right, bottom
    if any(pad):
        sample = v2.Pad(pad, fill={tv_tensors.Image: _PAD_RGB, tv_tensors.Mask: 0})(sample)
        x0, y0, x1, y1 = x0 + pad[0], y0 + pad[1], x1 + pad[0], y1 + pad[1]
    return {k: TF.crop(v, top=y0, left=x0, height=max(1, y1 - y0), width=max(1, x1 - x0))
            for k, v in sample.items()}


def resize_sample(sample: dict, size: tuple[int, int]) -> dict:
    """Resize image, mask and box to ``size = (H, W)``.

    The image is resampled bilinearly with antialiasing. The mask is resampled *the same
    way* as a 0/255 image and thresholded at half, so an output pixel is foreground when
    at least half of it shows the object: the mask follows the image's own resampling.
    (Nearest resampling, torchvision's default for masks, takes the top-left source pixel
    and shifts the mask by up to one source pixel towards the bottom-right edge.)
    """
    out = dict(sample)
    out["image"] = TF.resize(sample["image"], list(size), antialias=True)
    cover = tv_tensors.Image(sample["mask"].as_subclass(torch.Tensor)[None].to(torch.uint8) * 255)
    cover = TF.resize(cover, list(size), antialias=True)
    out["mask"] = tv_tensors.Mask((cover[0] >= 128).to(torch.uint8))
    out["box"] = TF.resize(sample["box"], list(size))
    return out


def resize_center_crop(sample: dict, size: int) -> dict:
    """Resize the shorter side to ``size`` (aspect ratio kept), then crop the central
    ``size x size`` square: torchvision's ``Resize(size)`` + ``CenterCrop(size)``, applied to
    image, mask and box alike (the mask as in :func:`resize_sample`)."""
    h, w = sample["image"].shape[-2:]
    if h <= w:
        new_h, new_w = size, int(size * w / h)
    else:
        new_h, new_w = int(size * h / w), size
    if (new_h, new_w) != (h, w):
        sample = resize_sample(sample, (new_h, new_w))
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    return crop_padded(sample, (left, top, left + size, top + size))


class RandomResizedCropFlip:
    """Training augmentation: a random resized crop and a horizontal flip, applied jointly.

    Parameters
    ----------
    size : int
        Output side (pixels).
    scale : (float, float)
        Range of the crop's area as a share of the image (default 60-100 %).
    ratio : (float, float)
        Range of the crop's aspect ratio.
    flip : float
        Probability of a horizontal flip.

    Randomness comes from torch's global generator (seed it with ``seed_everything``).
    """

    def __init__(self, size: int, scale: tuple[float, float] = (0.6, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), flip: float = 0.5):
        self.size, self.scale, self.ratio, self.flip = int(size), scale, ratio, flip

    def __call__(self, sample: dict) -> dict:
        from torchvision.transforms import RandomResizedCrop

        top, left, h, w = RandomResizedCrop.get_params(sample["image"], list(self.scale),
                                                       list(self.ratio))
        sample = {k: TF.crop(v, top=top, left=left, height=h, width=w) for k, v in sample.items()}
        sample = resize_sample(sample, (self.size, self.size))
        if torch.rand(()) < self.flip:
            sample = {k: TF.horizontal_flip(v) for k, v in sample.items()}
        return sample


def default_augmentation(image_size: int) -> RandomResizedCropFlip:
    """Training augmentation: a random resized crop (60-100 % of the area) and a flip."""
    return RandomResizedCropFlip(image_size)


class JointPipeline:
    """Turn a raw sample into an item's tensors, keeping image, mask and box aligned.

    Parameters
    ----------
    image_size : int
        Side of the square output (pixels).
    crop_scale : float or None
        Crop to ``crop_scale`` times the object box around its centre before resizing
        (1.2 = the paper's VOC / ILSVRC crops); None keeps the whole image.
    augment : bool
        Apply :func:`default_augmentation` (random resized crop to ``image_size`` and
        horizontal flip) instead of the plain resize.
    transform : callable or None
        An extra ``torchvision.transforms.v2`` transform applied to the dict
        ``{"image": tv_tensors.Image (uint8), "mask": tv_tensors.Mask, "box": BoundingBoxes}``
        after the resize / augmentation; it must keep the output size.
    normalize : bool
        Normalise with ImageNet mean/std (True) or return values in [0, 1] (False).
    keep_aspect : bool
        Without ``augment``: resize the shorter side to ``image_size`` keeping the aspect
        ratio, then crop the central square (torchvision's ``Resize(S)`` + ``CenterCrop(S)``).
        False squashes the image to a square.
    """

    def __init__(self, image_size: int, crop_scale: float | None = None, augment: bool = False,
                 transform: Callable | None = None, normalize: bool = True,
                 keep_aspect: bool = False):
        if image_size < 1:
            raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
        if crop_scale is not None and crop_scale <= 0:
            raise ValueError(f"crop_scale must be positive (e.g. 1.2) or None, got {crop_scale}")
        self.image_size = int(image_size)
        self.crop_scale = crop_scale
        self.augment = default_augmentation(self.image_size) if augment else None
        self.transform = transform
        self.normalize = normalize
        self.keep_aspect = keep_aspect

    def __call__(self, image: torch.Tensor, mask: torch.Tensor,
                 box: Sequence[float] | torch.Tensor | None = None) -> dict:
        """Transform one sample.

        Parameters
        ----------
        image : uint8 Tensor, shape (3, H, W)
        mask : bool Tensor, shape (H, W)
            Foreground; must match the image's size.
        box : (4,) x0, y0, x1, y1 or None
            The object box in pixel-edge coordinates, transformed with the image. None:
            the box is the mask's bounding box, recomputed on the output mask.

        Returns
        -------
        dict
            ``image`` FloatTensor (3, S, S), ``mask`` BoolTensor (S, S), ``box`` FloatTensor (4,).
        """
        if image.shape[-2:] != mask.shape[-2:]:
            raise ValueError(f"mask of shape {tuple(mask.shape)} does not match its image of "
                             f"shape {tuple(image.shape)}")
        h, w = image.shape[-2:]
        box_from_mask = box is None
        if box_from_mask:
            box = mask_box(mask)
        sample = {
            "image": tv_tensors.Image(image),
            "mask": tv_tensors.Mask(mask.to(torch.uint8)),
            "box": tv_tensors.BoundingBoxes(torch.as_tensor(box, dtype=torch.float32).reshape(1, 4),
                                            format="XYXY", canvas_size=(h, w)),
        }
        if self.crop_scale is not None:
            sample = crop_padded(sample, scale_box(sample["box"][0].tolist(), self.crop_scale))
        size = (self.image_size, self.image_size)
        if self.augment is not None:  # crops the full-resolution image, then resizes
            sample = self.augment(sample)
        elif self.keep_aspect:
            sample = resize_center_crop(sample, self.image_size)
        elif tuple(sample["image"].shape[-2:]) != size:
            sample = resize_sample(sample, size)
        if self.transform is not None:
            sample = self.transform(sample)
            if tuple(sample["image"].shape[-2:]) != size:
                raise ValueError(f"the transform changed the image size to "
                                 f"{tuple(sample['image'].shape[-2:])}; it must keep {size}")
        x = sample["image"].as_subclass(torch.Tensor)
        x = x.to(torch.float32) / 255.0 if x.dtype == torch.uint8 else x.to(torch.float32)
        if self.normalize:
            x = normalize(x)
        mask = sample["mask"].as_subclass(torch.Tensor).bool()
        if box_from_mask:
            box = mask_box(mask)
        else:
            box = sample["box"].as_subclass(torch.Tensor).reshape(-1, 4)[0].to(torch.float32)
        return {"image": x.contiguous(), "mask": mask, "box": box}
