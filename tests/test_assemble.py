"""``kdexplain assemble`` from plain per-epoch state dicts: the run is swept and reported like
a kdexplain-trained one; bad input is one ``error:`` line and writes nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from kdexplain.cli import main
from kdexplain.record import assemble_run, epoch_of_file
from tests import plain_loop as plain


@pytest.fixture(scope="module")
def state_dicts(tmp_path_factory):
    """A teacher file and plain per-epoch state dicts of S and B (epochs 0..3) written by a
    plain loop, as a user's own training would leave them."""
    tmp = tmp_path_factory.mktemp("assemble")
    cfg = plain.tiny_config(tmp / "runs")
    train_set, val_set = plain.tensors(cfg, "train"), plain.tensors(cfg, "val")
    n = len(cfg.data.options["classes"])
    torch.manual_seed(5)
    teacher = plain.build_model(cfg.model.arch, n, **cfg.model.kwargs)
    plain.train(teacher, "baseline", cfg, train_set, val_set, 2)
    torch.save(teacher.state_dict(), tmp / "teacher.pth")
    files = {}
    for role, t in (("baseline", None), ("student", teacher.eval())):
        model = plain.init_model(cfg, n)
        files[role] = [tmp / role / f"{role}_epoch{0}.pt"]
        files[role][0].parent.mkdir()
        torch.save(model.state_dict(), files[role][0])
        for e in range(1, 4):  # one epoch per call, as a user's loop saving every epoch
            plain.train(model, role, cfg, train_set, val_set, 1, teacher=t)
            files[role].append(tmp / role / f"{role}_epoch{e}.pt")
            torch.save(model.state_dict(), files[role][-1])
    return {"cfg": cfg, "tmp": tmp, "teacher": tmp / "teacher.pth", "files": files, "n": n}


def _args(sd, out, student=None, baseline=None, extra=()):
    args = ["assemble", str(out), str(plain.ROOT / "configs" / "tiny.yaml"),
            f"out_dir={sd['tmp']}", "model.kwargs={width: 4, hidden: 16, dropout: 0.0}",
            "--teacher", str(sd["teacher"]), "--num-classes", str(sd["n"]), "--seed", "0"]
    for role, files in (("student", student or sd["files"]["student"]),
                        ("baseline", baseline or sd["files"]["baseline"])):
        for f in files:
            args += [f"--{role}", str(f)]
    return args + list(extra)


@pytest.mark.slow
def test_assembled_from_state_dicts_is_swept_and_reported(state_dicts, capsys):
    sd = state_dicts
    out = sd["tmp"] / "run"
    assert main(_args(sd, out)) == 0
    # the per-epoch distance, by hand from the state dicts
    ws = [torch.load(f, weights_only=True)["classifier.0.weight"].double()
          for f in sd["files"]["student"]]
    steps = [float(torch.linalg.vector_norm(b - a)) for a, b in zip(ws, ws[1:], strict=False)]
    w0 = float(torch.linalg.vector_norm(ws[0]))
    expect = [0.0] + list(np.cumsum(steps) / w0)
    wd = pd.read_csv(out / "student" / "weight_distance.csv")
    assert wd["epoch"].tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(wd["d_epoch"], expect, rtol=1e-12)
    assert wd["d_step"].isna().all()
    cfg_text = (out / "config.yaml").read_text()
    assert "distance: epoch" in cfg_text and "teacher.pth" not in cfg_text
    assert main(["sweep", str(out)]) == 0
    assert main(["report", str(out), "--out", str(sd["tmp"] / "report")]) == 0
    index = (sd["tmp"] / "report" / "index.md").read_text()
    assert "only the per-epoch form of the weight distance is available" in index
    per_image = pd.read_csv(sd["tmp"] / "report" / "per_image.csv")
    s = per_image[per_image["role"] == "student"]
    assert s["peak_distance_step"].isna().all()
    np.testing.assert_allclose(s["total_distance_epoch"], expect[-1], rtol=1e-12)
    # asking the report for the per-step form is a clear error
    assert main(["report", str(out), "--out", str(sd["tmp"] / "r2"), "--set",
                 "distance=step"]) == 2
    assert "per-step weight distance of the" in capsys.readouterr().err


@pytest.mark.parametrize("case,message", [
    ("gap", "needs a state dict for every epoch from 0"),
    ("order", "must increase in the order given"),
    ("shape", "does not fit kdnet"),
    ("layer", "fc9"),
    ("arch", "resnet18"),
])
def test_bad_input_is_one_error_line_and_writes_nothing(state_dicts, case, message, capsys):
    sd = state_dicts
    out = sd["tmp"] / f"bad_{case}"
    s = list(sd["files"]["student"])
    extra: list[str] = []
    if case == "gap":
        s = s[:2] + s[3:]
    elif case == "order":
        s = [s[1], s[0], s[2], s[3]]
    elif case == "shape":
        torch.save({"conv": torch.zeros(2)}, sd["tmp"] / "wrong_epoch1.pt")
        s = [s[0], sd["tmp"] / "wrong_epoch1.pt", s[2], s[3]]
    elif case == "layer":
        extra = ["--layer", "fc9"]
    elif case == "arch":
        extra = ["--arch", "resnet18"]
    code = main(_args(sd, out, student=s, extra=extra))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err
    assert not out.exists()


def test_a_folder_with_files_is_refused(state_dicts, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an empty folder"):
        assemble_run(tmp_path, teacher=state_dicts["teacher"],
                     student=state_dicts["files"]["student"],
                     baseline=state_dicts["files"]["baseline"], num_classes=3)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_epoch_of_file():
    assert epoch_of_file("runs/s3/student_epoch_007.pt") == 7
    assert epoch_of_file("12.pth") == 12
    with pytest.raises(ValueError, match="holds no number"):
        epoch_of_file("final.pt")


@pytest.mark.slow
def test_one_assembled_run_per_seed_makes_a_multi_seed_report(state_dicts):
    """Seeds: one assembled run per seed in <experiment>/seed_<s>; the report reads the
    experiment folder as it reads a multi-seed kdexplain experiment."""
    sd = state_dicts
    exp = sd["tmp"] / "experiment"
    for seed in (0, 1):
        args = _args(sd, exp / f"seed_{seed}")
        args[args.index("--seed") + 1] = str(seed)
        assert main(args) == 0
        assert main(["sweep", str(exp / f"seed_{seed}")]) == 0
    assert main(["report", str(exp), "--out", str(sd["tmp"] / "report_seeds")]) == 0
    index = (sd["tmp"] / "report_seeds" / "index.md").read_text()
    assert "- Runs (seeds): 2 (0, 1)." in index
