"""`kdexplain quantify` on kdexplain checkpoints, torchvision state dicts and image folders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from kdexplain.cli import main
from kdexplain.models import build_model
from kdexplain.quantification.io import load_result


def test_quantify_state_dict_on_builtin_images(tmp_path):
    weights = tmp_path / "w.pth"
    torch.save(build_model("kdnet", 10, width=4, hidden=16).state_dict(), weights)
    out = tmp_path / "q"
    rc = main(["quantify", "--checkpoint", str(weights), "--arch", "kdnet", "--layer", "fc1",
               "--out", str(out), "--n-images", "2", "--image-size", "32", "--grid", "8",
               "--steps", "3", "--samples", "4", "--heatmaps"])
    assert rc == 0
    res = load_result(out / "quantify.pt")
    assert res.entropy.shape == (2, 8, 8) and res.layer == "classifier.0"
    cells = pd.read_csv(out / "cells.csv")
    assert len(cells) == 2 * 64 and {"sigma", "entropy", "foreground", "row", "col"} <= set(cells)
    images = pd.read_csv(out / "images.csv")
    assert list(images["steps_run"]) == [3, 3]
    names = sorted(p.name for p in (out / "heatmaps").glob("*.png"))  # named after the images
    assert list(images["key"]) == ["scenes/val/000000", "scenes/val/000001"]
    assert names == ["scenes_val_000000.png", "scenes_val_000001.png"]


def test_quantify_torchvision_arch_on_a_folder(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    weights = tmp_path / "r18.pth"
    torch.save(build_model("resnet18", 3).state_dict(), weights)
    out = tmp_path / "q"
    rc = main(["quantify", "--checkpoint", str(weights), "--arch", "resnet18", "--layer", "conv",
               "--dataset", str(folder), "--image-size", "32", "--grid", "4", "--out", str(out),
               "--steps", "2", "--samples", "2"])
    assert rc == 0
    res = load_result(out / "quantify.pt")
    assert res.layer == "layer4.1.bn2" and res.sigma.shape == (2, 4, 4)


def test_quantify_errors_are_one_line(tmp_path, capsys):
    weights = tmp_path / "w.pth"
    torch.save(build_model("kdnet", 10, width=4, hidden=16).state_dict(), weights)
    rc = main(["quantify", "--checkpoint", str(weights), "--arch", "kdnet", "--layer", "fc9",
               "--out", str(tmp_path / "q"), "--n-images", "1", "--image-size", "32"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "fc1" in err
    rc = main(["quantify", "--checkpoint", str(tmp_path / "missing.pt"), "--layer", "fc1",
               "--out", str(tmp_path / "q")])
    assert rc == 2
    assert "does not exist" in capsys.readouterr().err
    rc = main(["quantify", "--checkpoint", str(weights), "--layer", "fc1", "--out", str(tmp_path / "q")])
    assert rc == 2
    assert "--arch" in capsys.readouterr().err
    for old in (["--n", "1"], ["--images", "scenes"]):  # the old names are gone, not hidden
        rc = main(["quantify", "--checkpoint", str(weights), "--arch", "kdnet", "--layer", "fc1",
                   "--out", str(tmp_path / "q"), *old])
        assert rc == 2 and "No such option" in capsys.readouterr().err


def test_bad_layer_and_preset_are_refused_before_the_first_progress_line(tmp_path, capsys):
    weights = tmp_path / "w.pth"
    torch.save(build_model("kdnet", 10, width=4, hidden=16).state_dict(), weights)
    base = ["quantify", "--checkpoint", str(weights), "--arch", "kdnet",
            "--out", str(tmp_path / "q"), "--n-images", "1", "--image-size", "32"]
    for extra, message in ((["--layer", "fc9"], "layer 'fc9' does not exist"),
                           (["--layer", "fc1", "--preset", "newton"], "unknown preset 'newton'"),
                           (["--layer", "fc1", "--feature-transform", "tanh"],
                            "--feature-transform must be one of")):
        assert main([*base, *extra]) == 2
        out, err = capsys.readouterr()
        assert "quantifying" not in out and message in err and err.startswith("error: ")
    assert not (tmp_path / "q").exists()


def test_quantify_any_torchvision_classifier_from_a_state_dict(tmp_path):
    weights = tmp_path / "mnv3.pth"
    torch.manual_seed(0)
    torch.save(build_model("mobilenet_v3_small", 4).state_dict(), weights)
    out = tmp_path / "q"
    rc = main(["quantify", "--checkpoint", str(weights), "--arch", "mobilenet_v3_small",
               "--layer", "classifier.0", "--out", str(out), "--n-images", "1", "--image-size", "32",
               "--grid", "4", "--steps", "2", "--samples", "2"])
    assert rc == 0
    res = load_result(out / "quantify.pt")
    assert res.layer == "classifier.0" and res.sigma.shape == (1, 4, 4)


def test_other_torchvision_heads_are_resized_and_bad_names_list_close_ones(tmp_path, capsys):
    import pytest

    model = build_model("mobilenet_v3_small", 7)
    assert model.classifier[3].out_features == 7 and model.kdexplain_arch == "mobilenet_v3_small"
    weights = tmp_path / "sq.pth"  # a 1000-way state dict is loaded, then the head re-sized
    torch.save(build_model("mobilenet_v3_small", 1000).state_dict(), weights)
    model = build_model("mobilenet_v3_small", 3, pretrained=weights)
    assert model.classifier[3].out_features == 3
    with pytest.raises(ValueError, match="closest: mobilenet_v3_small"):
        build_model("mobilenet_v3_smal", 3)
    rc = main(["quantify", "--checkpoint", str(weights), "--arch", "resnet19", "--layer", "fc",
               "--out", str(tmp_path / "q")])
    assert rc == 2 and "closest: resnet18" in capsys.readouterr().err


def test_a_run_checkpoint_is_quantified_on_the_data_it_was_trained_with(tmp_path, capsys):
    from kdexplain.config import dump_config, load_config

    run = tmp_path / "run"
    (run / "student" / "checkpoints").mkdir(parents=True)
    cfg = load_config("configs/tiny.yaml")  # scenes, 32 px, classes bird, elephant, zebra
    (run / "config.yaml").write_text(dump_config(cfg))
    model = build_model("kdnet", 3, width=4, hidden=16)
    ckpt = run / "student" / "checkpoints" / "epoch_0000.pt"
    torch.save({"model": model.state_dict(), "arch": "kdnet", "num_classes": 3,
                "model_kwargs": {"width": 4, "hidden": 16}}, ckpt)
    out = tmp_path / "q"
    rc = main(["quantify", "--checkpoint", str(ckpt), "--layer", "fc1", "--out", str(out),
               "--n-images", "6", "--grid", "4", "--steps", "1", "--samples", "2"])
    assert rc == 0
    captured = capsys.readouterr()
    assert "dataset options of the run" in captured.out and "bird" in captured.out
    assert "warning" not in captured.err
    images = pd.read_csv(out / "images.csv")
    assert sorted(set(images["label"])) == [0, 1, 2]
    assert load_result(out / "quantify.pt").sigma.shape == (6, 4, 4)


def test_folder_masks_from_mask_dir(tmp_path, capsys):
    folder, masks = tmp_path / "imgs", tmp_path / "masks"
    folder.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (24, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        m = np.zeros((24, 40), np.uint8)
        m[:, 20:] = 255  # the right half of the (centre-cropped) image
        Image.fromarray(m).save(masks / f"{i}.png")
    weights = tmp_path / "w.pth"
    torch.save(build_model("kdnet", 10, width=4, hidden=16).state_dict(), weights)
    out = tmp_path / "q"
    args = ["quantify", "--checkpoint", str(weights), "--arch", "kdnet", "--layer", "fc1",
            "--dataset", str(folder), "--image-size", "32", "--grid", "4", "--out", str(out),
            "--steps", "1", "--samples", "2"]
    assert main([*args, "--mask-dir", str(masks)]) == 0
    res = load_result(out / "quantify.pt")
    cells = pd.read_csv(out / "cells.csv")
    fg = cells[cells["image"] == cells["image"].iloc[0]].pivot(index="row", columns="col",
                                                              values="foreground")
    assert fg.to_numpy().astype(bool).tolist() == [[False, False, True, True]] * 4
    assert res.sigma.shape == (2, 4, 4)
    # the concept summary, computed by hand from the grids: H_bar pooled over both images
    images = pd.read_csv(out / "images.csv")
    h = res.entropy.double().numpy()
    right = np.zeros((4, 4), bool)
    right[:, 2:] = True
    h_bar = np.mean([h[b][~right].mean() for b in range(2)])
    for b in range(2):
        row = images.iloc[b]
        assert row["fg_entropy"] == pytest.approx(h[b][right].mean())
        assert row["bg_entropy"] == pytest.approx(h[b][~right].mean())
        assert row["n_fg"] == int((h_bar - h[b][right] > 0.2).sum())
        assert row["n_bg"] == int((h_bar - h[b][~right] > 0.2).sum())
    printed = capsys.readouterr().out
    assert "concepts at b = 0.2" in printed and "N_fg, N_bg" in printed
    assert f"  0.png: {images.iloc[0]['fg_entropy']:.3f} / " in printed
    assert main([*args, "--mask-dir", str(masks), "--concept-threshold", "-10"]) == 0
    images = pd.read_csv(out / "images.csv")  # b = -10: every cell with signal is a concept
    assert list(images["n_fg"]) == [8, 8] and list(images["n_bg"]) == [8, 8]
    assert main([*args[:-8], "--dataset", "scenes", "--mask-dir", str(masks),
                 "--out", str(out)]) == 2
    assert "--mask-dir gives the masks of a folder" in capsys.readouterr().err
