"""Digit loaders: the real MNIST-5k file, scikit-learn's digits, and fabricated IDX files."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from kdexplain.data.digits import (
    DigitData,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    load_mnist5k,
    load_sklearn_digits,
    load_torchvision_mnist,
    read_idx,
)


def _idx_bytes(arr: np.ndarray) -> bytes:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    return bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def _write_idx_set(folder: Path, n_train: int = 20, n_test: int = 10, gz: bool = True,
                   ) -> dict[str, np.ndarray]:
    """The four files of an MNIST-style data set (Fashion-MNIST, MNIST), made up."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test, dtype=np.uint8) * 3) % 10,
    }
    folder.mkdir(parents=True, exist_ok=True)
    for stem, arr in arrays.items():
        data = _idx_bytes(arr)
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)
    return arrays


# ----------------------------------------------------------------------------- MNIST-5k

def test_mnist5k_shapes_split_and_range():
    d = load_mnist5k()
    assert isinstance(d, DigitData) and d.name == "mnist5k"
    assert d.x_train.shape == (4000, 784) and d.x_test.shape == (1000, 784)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert torch.equal(torch.bincount(d.y_train, minlength=10), torch.full((10,), 400))
    assert torch.equal(torch.bincount(d.y_test, minlength=10), torch.full((10,), 100))
    assert float(d.x_train.min()) == 0.0 and float(d.x_train.max()) == 1.0
    assert d.image_shape == (28, 28) and d.num_features == 784 and d.num_classes == 10
    assert "first 400" in d.split_note and "4000 train / 1000 test" in d.split_note
    # train and test share no image (the file holds distinct MNIST images)
    train_rows = {bytes(r) for r in (d.x_train * 255).round().to(torch.uint8).numpy()}
    test_rows = {bytes(r) for r in (d.x_test * 255).round().to(torch.uint8).numpy()}
    assert not train_rows & test_rows


def test_mnist5k_other_split_and_bad_split():
    d = load_mnist5k(train_per_class=450)
    assert d.x_train.shape == (4500, 784) and d.x_test.shape == (500, 784)
    with pytest.raises(ValueError, match="train_per_class"):
        load_mnist5k(train_per_class=500)


def test_mnist5k_wrong_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist5k(tmp_path / "nothing.csv.gz")
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(ValueError, match="785"):
        load_mnist5k(bad)


def test_subsample_is_stratified_and_deterministic():
    d = load_mnist5k()
    s1, s2 = d.subsample(500, 200, seed=3), d.subsample(500, 200, seed=3)
    assert s1.x_train.shape == (500, 784) and s1.x_test.shape == (200, 784)
    assert torch.equal(torch.bincount(s1.y_train, minlength=10), torch.full((10,), 50))
    assert torch.equal(s1.x_train, s2.x_train)
    assert "subset" in s1.split_note
    assert d.subsample(None, None) is d
    with pytest.raises(ValueError, match="at least one per class"):
        d.subsample(5)


# ----------------------------------------------------------------------------- sklearn

def test_sklearn_digits():
    d = load_sklearn_digits()
    assert d.x_train.shape == (1437, 64) and d.x_test.shape == (360, 64)
    assert d.image_shape == (8, 8) and float(d.x_train.max()) == 1.0
    counts = torch.bincount(d.y_test, minlength=10)
    assert int(counts.min()) >= 35  # stratified: every digit is in the test split
    assert load_digits("sklearn-digits").x_train.shape == (1437, 64)


# ----------------------------------------------------------------------------- IDX / Fashion

def test_read_idx_roundtrip_plain_and_gz(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(_idx_bytes(arr))
    (tmp_path / "a.gz").write_bytes(gzip.compress(_idx_bytes(arr)))
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), arr)


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    arr = np.zeros((3, 2), dtype=np.uint8)
    (tmp_path / "short").write_bytes(_idx_bytes(arr)[:-2])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short")


def test_read_idx_missing_and_truncated_gzip(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected the IDX file .*nope.gz"):
        read_idx(tmp_path / "nope.gz")
    arr = np.arange(600, dtype=np.uint8).reshape(6, 10, 10)
    packed = gzip.compress(_idx_bytes(arr))
    (tmp_path / "cut.gz").write_bytes(packed[: len(packed) // 2])  # a download cut short
    with pytest.raises(ValueError, match="cut.gz: cannot decompress .*truncated or corrupt"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "notgz.gz").write_bytes(_idx_bytes(arr))  # named .gz, not gzipped
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_idx(tmp_path / "notgz.gz")
    (tmp_path / "header").write_bytes(_idx_bytes(arr)[:9])  # ends inside the 3 dimensions
    with pytest.raises(ValueError, match="ends inside the header"):
        read_idx(tmp_path / "header")


@pytest.mark.parametrize("layout", ["flat-gz", "flat-raw", "torchvision"])
def test_fashion_mnist_from_fabricated_files(tmp_path, layout):
    folder = tmp_path / "FashionMNIST" / "raw" if layout == "torchvision" else tmp_path
    arrays = _write_idx_set(folder, gz=layout != "flat-raw")
    d = load_fashion_mnist(tmp_path)
    assert d.name == "fashion" and d.class_names[3] == "Dress"
    assert d.x_train.shape == (20, 784) and d.x_test.shape == (10, 784)
    np.testing.assert_allclose(d.x_train.numpy(),
                               arrays["train-images-idx3-ubyte"].reshape(20, 784) / 255.0,
                               rtol=0, atol=1e-7)
    np.testing.assert_array_equal(d.y_test.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert "20 train / 10 test" in d.split_note
    assert load_digits("fashion", root=tmp_path).x_test.shape == (10, 784)


def test_fashion_mnist_missing_files_say_what_to_install(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_fashion_mnist(tmp_path)
    msg = str(e.value)
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "train-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    # one file missing: only that one is named
    _write_idx_set(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="missing t10k-labels-idx1-ubyte.gz \\("):
        load_fashion_mnist(tmp_path)


def test_fashion_mnist_mismatched_counts(tmp_path):
    _write_idx_set(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(_idx_bytes(np.zeros(7, dtype=np.uint8))))
    with pytest.raises(ValueError, match="disagree"):
        load_fashion_mnist(tmp_path)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_from_a_fabricated_torchvision_root(tmp_path, gz):
    arrays = _write_idx_set(tmp_path / "MNIST" / "raw", n_train=30, n_test=10, gz=gz)
    d = load_mnist(tmp_path)
    assert d.name == "mnist" and d.class_names[3] == "3" and d.image_shape == (28, 28)
    assert d.x_train.shape == (30, 784) and d.y_train.dtype == torch.int64
    np.testing.assert_array_equal(d.y_train.numpy(), arrays["train-labels-idx1-ubyte"])
    assert "30 train / 10 test" in d.split_note
    assert load_digits("mnist", root=tmp_path).x_test.shape == (10, 784)
    assert load_torchvision_mnist(tmp_path).x_train.shape == (30, 784)


def test_mnist_missing_file_says_which_and_how_to_get_it(tmp_path):
    _write_idx_set(tmp_path / "MNIST" / "raw")
    (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError) as e:
        load_mnist(tmp_path)
    msg = str(e.value)
    assert "missing train-images-idx3-ubyte.gz" in msg and str(tmp_path / "MNIST" / "raw") in msg
    assert "download=True" in msg and "mnist5k" in msg
    assert "t10k-labels" not in msg  # only the missing file is named


def test_idx_labels_out_of_range(tmp_path):
    _write_idx_set(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(_idx_bytes(np.full(10, 12, dtype=np.uint8))))
    with pytest.raises(ValueError, match="labels must lie in 0..9"):
        load_fashion_mnist(tmp_path)


# ----------------------------------------------------------------------------- dispatcher

def test_dispatcher_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown digit data set"):
        load_digits("cifar")
    with pytest.raises(ValueError, match="needs a root"):
        load_digits("mnist")
    with pytest.raises(FileNotFoundError, match="mnist5k"):
        load_torchvision_mnist(tmp_path, download=False)
    assert load_digits("MNIST-5k").name == "mnist5k"
