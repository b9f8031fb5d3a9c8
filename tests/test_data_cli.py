"""``kdexplain data build|info|preview`` through ``kdexplain.cli.main``."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from kdexplain.cli import main

SCENES = ["--image-size", "32", "-o", "images_per_class=5", "-o", "classes=[bear, cow]"]


def test_build_then_reuse(tmp_path, capsys):
    args = ["data", "build", "--image-size", "32", "--images-per-class", "5",
            "--classes", "bear,cow", "--cache-dir", str(tmp_path / "scenes")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.count("built in") == 3 and "train     10 images" in out
    assert len(list((tmp_path / "scenes").glob("scenes-*.npz"))) == 3
    assert main(args) == 0
    assert capsys.readouterr().out.count("cached") == 3


def test_info_counts_classes_and_foreground(tmp_path, capsys):
    assert main(["data", "info", "scenes", "--data-root", str(tmp_path), "--split", "train",
                 *SCENES]) == 0
    out = capsys.readouterr().out
    assert "scenes (train): 10 images, 2 classes, 32 px" in out
    assert "  bear   5" in out and "  cow    5" in out
    assert "foreground share over 10 images" in out
    assert main(["data", "info", "scenes", "--data-root", str(tmp_path), "--json",
                 *SCENES]) == 0  # the default split: val, as quantify's
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 2 and summary["per_class"] == {"bear": 1, "cow": 1}
    assert 0.05 < summary["foreground_pixels"] < 0.8 and summary["skipped"] == []


def test_preview_writes_a_png(tmp_path, capsys):
    out = tmp_path / "p" / "preview.png"
    assert main(["data", "preview", "scenes", "--data-root", str(tmp_path), "--out", str(out),
                 "--n-images", "4", "--grid", "8", *SCENES]) == 0
    assert "wrote" in capsys.readouterr().out
    with Image.open(out) as im:
        arr = np.asarray(im.convert("RGB"))
    assert arr.shape[0] > 200 and arr.shape[1] > 200 and arr.std() > 20


def test_info_on_a_folder_and_errors(tmp_path, capsys):
    folder = tmp_path / "imgs" / "cats"
    folder.mkdir(parents=True)
    Image.fromarray(np.full((20, 30, 3), 90, dtype=np.uint8)).save(folder / "a.png")
    assert main(["data", "info", str(tmp_path / "imgs")]) == 0
    out = capsys.readouterr().out
    assert "1 images, 1 classes" in out and "no foreground masks" in out
    assert main(["data", "info", "voc", "--data-root", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: expected the VOC folder") and "JPEGImages" in err
    assert main(["data", "info", "scenes", "--data-root", str(tmp_path), "-o", "bogus=1"]) == 2
    assert "unknown option(s) 'bogus' for dataset 'scenes'" in capsys.readouterr().err
    assert main(["data", "info", "scenes", "-o", "nonsense"]) == 2
    assert "expects key=value" in capsys.readouterr().err
