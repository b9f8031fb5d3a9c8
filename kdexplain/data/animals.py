"""The animal silhouettes of the ``animal-mnist`` package, read safely.

The package ships two gzipped pickles: ``animal_data_version_3.gz``, a uint8 array
(10000, 28, 28) of white silhouettes on black (zebras textured), and
``animal_label_version_3.gz``, the labels (10000,), 1000 per class. They are read here
without importing the package (whose loader needs TensorFlow) and without ``pickle.load``:
the unpickler below only rebuilds numpy arrays and refuses every other object, so a
tampered file cannot run code.
"""

from __future__ import annotations

import gzip
import importlib
import importlib.util
import io
import pickle
from functools import lru_cache
from pathlib import Path

import numpy as np

ANIMAL_CLASSES: tuple[str, ...] = ("bear", "bird", "cat", "cow", "dog", "elephant",
                                   "giraffe", "horse", "sheep", "zebra")
DATA_FILE = "animal_data_version_3.gz"
LABEL_FILE = "animal_label_version_3.gz"
_INSTALL_HINT = "install it with `pip install animal-mnist==0.4` (MIT, 2.6 MB)"


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
        raise ValueError(f"{path} is not a gzipped pickle of a numpy array ({e}); "
                         f"reinstall animal-mnist: {_INSTALL_HINT}") from e
    if not isinstance(obj, np.ndarray):
        raise ValueError(f"{path} holds a {type(obj).__name__}, expected a numpy array")
    return obj


def animal_mnist_dir() -> Path:
    """The folder of the installed package's data files (the package is not imported)."""
    spec = importlib.util.find_spec("animal_mnist")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the built-in 'scenes' dataset needs the animal silhouettes of the animal-mnist "
            f"package, which is not installed; {_INSTALL_HINT}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data" / "Animal_MNIST"
    for name in (DATA_FILE, LABEL_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"expected the animal-mnist data file {folder / name}, "
                                    f"which is missing; {_INSTALL_HINT}")
    return folder


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
    folder = animal_mnist_dir()
    images = safe_load_array(folder / DATA_FILE)
    labels = safe_load_array(folder / LABEL_FILE)
    if images.ndim != 3 or images.dtype != np.uint8 or labels.shape != images.shape[:1]:
        raise ValueError(f"unexpected animal-mnist arrays in {folder}: images "
                         f"{images.shape} {images.dtype}, labels {labels.shape}; "
                         f"{_INSTALL_HINT}")
    if labels.min() < 0 or labels.max() >= len(ANIMAL_CLASSES):
        raise ValueError(f"animal-mnist labels outside 0..{len(ANIMAL_CLASSES) - 1} in {folder}")
    images.setflags(write=False)
    labels = labels.astype(np.int64)
    labels.setflags(write=False)
    return images, labels
