"""The animal silhouettes of the ``animal-mnist`` package (MIT), shipped with kdexplain.

``animal-mnist`` 0.4 holds two gzipped pickles: ``animal_data_version_3.gz``, a uint8 array
(10000, 28, 28) of white silhouettes on black (zebras textured), and
``animal_label_version_3.gz``, the labels (10000,), 1000 per class. Its loader needs
TensorFlow, so kdexplain does not depend on it: the two arrays are shipped inside this
package as ``animal_mnist/animal_mnist.npz`` (licence notice beside it), which loads with
``allow_pickle=False``. :func:`read_animal_pickles` reads the original files without
``pickle.load`` (the unpickler below rebuilds numpy arrays and refuses every other object, so
a tampered file cannot run code); :func:`write_animal_npz` regenerates the shipped file.
"""

from __future__ import annotations

import gzip
import importlib
import importlib.resources
import io
import pickle
from functools import lru_cache
from pathlib import Path

import numpy as np

ANIMAL_CLASSES: tuple[str, ...] = ("bear", "bird", "cat", "cow", "dog", "elephant",
                                   "giraffe", "horse", "sheep", "zebra")
DATA_FILE = "animal_data_version_3.gz"
LABEL_FILE = "animal_label_version_3.gz"
#: The shipped arrays, inside the package.
NPZ_FILE = "animal_mnist/animal_mnist.npz"
#: sha256 of ``images.tobytes()`` and of ``labels.tobytes()`` of the shipped arrays.
NPZ_SHA256 = {"images": "3d1bb93498a7f7cb5a4c0d5dc57d57d78adc2ac1722398921542a7515172c46f",
              "labels": "c5575395e636cadcdfe5764ffc8d56f56d234a4dc687096f8fc2d975dd6a5597"}
_REINSTALL = "reinstall kdexplain (the file ships with the package)"


def _multiarray():
    try:
        return importlib.import_module("numpy._core.multiarray")  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        return importlib.import_module("numpy.core.multiarray")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to unpickle {module}.{name}: only numpy arrays are allowed")
        if name == "_reconstruct":
            return _multiarray()._reconstruct
        return getattr(np, name)


def safe_load_array(path: str | Path) -> np.ndarray:
    """Read a gzipped pickle holding one numpy array, refusing any other object.

    Raises
    ------
    ValueError
        The file is not a gzipped pickle of a numpy array (the message names it).
    """
    path = Path(path)
    try:
        with gzip.open(path, "rb") as f:
            obj = _NumpyOnlyUnpickler(io.BytesIO(f.read())).load()
    except (OSError, EOFError, pickle.UnpicklingError) as e:
        raise ValueError(f"{path} is not a gzipped pickle of a numpy array ({e})") from e
    if not isinstance(obj, np.ndarray):
        raise ValueError(f"{path} holds a {type(obj).__name__}, expected a numpy array")
    return obj


def read_animal_pickles(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels of an ``animal_mnist/data/Animal_MNIST`` folder (the two pickles).

    Returns
    -------
    images : uint8 ndarray, shape (10000, 28, 28)
    labels : int64 ndarray, shape (10000,)
    """
    folder = Path(folder)
    for name in (DATA_FILE, LABEL_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"expected the animal-mnist data file {folder / name}")
    return safe_load_array(folder / DATA_FILE), safe_load_array(folder / LABEL_FILE)


def write_animal_npz(folder: str | Path, out: str | Path) -> Path:
    """Re-encode the two animal-mnist pickles of ``folder`` as the ``.npz`` kdexplain ships."""
    images, labels = read_animal_pickles(folder)
    np.savez_compressed(out, images=images, labels=labels)
    return Path(out)


def animal_npz_path() -> Path:
    """The shipped ``animal_mnist.npz`` (inside the installed package)."""
    path = Path(str(importlib.resources.files("kdexplain.data").joinpath(NPZ_FILE)))
    if not path.is_file():
        raise FileNotFoundError(f"the animal silhouettes {path} are missing; {_REINSTALL}")
    return path


@lru_cache(maxsize=1)
def load_animal_silhouettes() -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 animal-mnist silhouettes and their labels.

    Returns
    -------
    images : uint8 ndarray, shape (10000, 28, 28)
        Grey silhouettes on black; foreground is ``images > 0``.
    labels : int64 ndarray, shape (10000,)
        Class index into :data:`ANIMAL_CLASSES`.
    """
    path = animal_npz_path()
    try:
        with np.load(path, allow_pickle=False) as z:
            images, labels = z["images"], z["labels"]
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"cannot read the animal silhouettes {path} ({e}); {_REINSTALL}") from e
    if images.ndim != 3 or images.dtype != np.uint8 or labels.shape != images.shape[:1]:
        raise ValueError(f"unexpected arrays in {path}: images {images.shape} {images.dtype}, "
                         f"labels {labels.shape}; {_REINSTALL}")
    if labels.min() < 0 or labels.max() >= len(ANIMAL_CLASSES):
        raise ValueError(f"animal labels outside 0..{len(ANIMAL_CLASSES) - 1} in {path}")
    images.setflags(write=False)
    labels = labels.astype(np.int64)
    labels.setflags(write=False)
    return images, labels
