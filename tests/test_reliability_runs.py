"""A run's numbers stay tied to the networks they came from, through the real commands.

The six defects of issue 25, each driven through ``kdexplain`` on the tiny config: sweep
units bound to their checkpoints, a refused run that leaves ``config.yaml`` alone, a
report folder that is never a run folder, 16-bit images scaled by their bit depth, the
config's layer analysed, and an interrupted report that leaves no temporary files.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from kdexplain.cli import main
from kdexplain.data.base import CorruptImageError, load_rgb
from tests.reliability_common import FAST, TINY, copy_run, finished_run, one_error_line

#: every test here needs a finished training run or trains one
pytestmark = pytest.mark.slow

ROLES = ("teacher", "student", "baseline")


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A tiny run trained, swept and reported by ``kdexplain run`` (copy it to mutate it)."""
    return finished_run(tmp_path_factory)




def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", KDEXPLAIN_PROGRESS="0")


def _units(run: Path) -> dict[tuple[str, int], dict]:
    return {(r, int(p.stem.split("_")[1])): torch.load(p, weights_only=True)
            for r in ROLES for p in sorted((run / "sweep" / r).glob("epoch_*.pt"))}


def _assert_bound(run: Path) -> None:
    """Every unit records its role, epoch and the hash of the checkpoint now in the run."""
    for (role, epoch), unit in _units(run).items():
        ckpt = run / role / "checkpoints" / f"epoch_{epoch:04d}.pt"
        assert (unit["role"], unit["epoch"]) == (role, epoch)
        assert unit.get("checkpoint_sha256") == hashlib.sha256(ckpt.read_bytes()).hexdigest()


# ---- 1. a unit is bound to the checkpoint it measured --------------------------------------


def _swap_units(run: Path) -> None:
    shutil.copy(run / "sweep" / "teacher" / "epoch_0001.pt",
                run / "sweep" / "student" / "epoch_0001.pt")


def _retrain_checkpoint(run: Path) -> None:
    path = run / "student" / "checkpoints" / "epoch_0001.pt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"]["classifier.0.weight"] *= 1.5
    torch.save(ckpt, path)


@pytest.mark.parametrize("tamper", [_swap_units, _retrain_checkpoint])
def test_a_unit_of_another_checkpoint_is_named_then_recomputed(finished, tmp_path, capsys,
                                                               caplog, tamper):
    run = copy_run(finished, tmp_path)
    tamper(run)
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 2
    line = one_error_line(capsys)
    assert "1 sweep unit(s)" in line and "student/epoch_0001.pt" in line
    assert f"kdexplain sweep {run}" in line
    with caplog.at_level("WARNING", logger="kdexplain.pipeline"):
        assert main(["sweep", str(run)]) == 0
    assert "does not measure this run's checkpoint" in caplog.text
    _assert_bound(run)
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 0


def test_retrained_models_are_swept_again(finished, tmp_path):
    """The models deleted and retrained with another rate: no unit of the old ones is kept."""
    run = copy_run(finished, tmp_path)
    before = _units(run)
    for role in ROLES:
        shutil.rmtree(run / role)
    assert main(["run", str(TINY), f"out_dir={tmp_path}", "name=copy", *FAST, "optim.lr=0.05",
                 "--report-dir", str(tmp_path / "rep")]) == 0
    _assert_bound(run)
    after = _units(run)
    assert not torch.equal(after[("student", 1)]["entropy"], before[("student", 1)]["entropy"])


def test_images_drawn_from_other_data_are_drawn_again(finished, tmp_path, caplog):
    run = copy_run(finished, tmp_path)
    before = torch.load(run / "sweep" / "images.pt", weights_only=True)["images"]
    config = run / "config.yaml"
    raw = yaml.safe_load(config.read_text())
    raw["data"]["options"]["seed"] = 5  # the run's images are now drawn from other scenes
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    with caplog.at_level("WARNING", logger="kdexplain.pipeline"):
        assert main(["sweep", str(run)]) == 0
    assert "was drawn from other data settings" in caplog.text
    assert "computed on other images" in caplog.text
    after = torch.load(run / "sweep" / "images.pt", weights_only=True)["images"]
    assert not torch.equal(after, before)
    sha = {u["images_sha256"] for u in _units(run).values()}
    assert len(sha) == 1


# ---- 2. a refused run leaves config.yaml as it was -----------------------------------------


def test_a_refused_run_does_not_rewrite_the_config(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path)
    config = (run / "config.yaml").read_bytes()
    assert main(["run", str(TINY), f"out_dir={tmp_path}", "name=copy", *FAST,
                 "analysis.n_images=2", "--report-dir", str(tmp_path / "rep")]) == 2
    assert "holds a sweep made with other analysis settings" in one_error_line(capsys)
    assert (run / "config.yaml").read_bytes() == config
    assert main(["sweep", str(run)]) == 0


# ---- 3. a report folder is never a run folder ----------------------------------------------


@pytest.mark.parametrize("where,expected", [
    ("run", "is a run folder"),
    ("parent", "contains ("),
])
@pytest.mark.parametrize("command", ["report", "run"])
def test_report_folder_that_is_or_holds_a_run_is_refused(finished, tmp_path, capsys, where,
                                                         expected, command):
    run = copy_run(finished, tmp_path)
    out = run if where == "run" else tmp_path
    summary = (run / "summary.json").read_bytes()
    args = (["report", str(run), "--out", str(out)] if command == "report" else
            ["run", str(TINY), f"out_dir={tmp_path}", "name=copy", *FAST,
             "--report-dir", str(out)])
    assert main(args) == 2
    line = one_error_line(capsys)
    assert expected in line and "choose another folder" in line
    assert (run / "summary.json").read_bytes() == summary
    assert not (run / "index.md").exists()


def test_a_second_report_into_the_same_folder_is_refused(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path)
    out = tmp_path / "rep"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; from kdexplain.utils import folder_lock\n"
         f"with folder_lock({str(out)!r}, 'report'):\n    print('held', flush=True); "
         "time.sleep(300)"], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["report", str(run), "--out", str(out)]) == 2
        assert f"rep is in use by process {holder.pid}" in one_error_line(capsys)
        assert not (out / "index.md").exists()
    finally:
        holder.kill()
        holder.wait()


# ---- 4. 16-bit images keep their range ------------------------------------------------------


def test_16_bit_images_are_scaled_by_their_bit_depth(tmp_path):
    ramp = (np.arange(32 * 32).reshape(32, 32) * 4).astype(np.uint16)  # 12-bit: 0 .. 4092
    Image.fromarray(ramp).save(tmp_path / "twelve.png")
    full = (np.arange(32 * 32).reshape(32, 32) * 64).astype(np.uint16)  # 0 .. 65472
    Image.fromarray(full).save(tmp_path / "sixteen.png")
    assert Image.open(tmp_path / "twelve.png").mode == "I;16"
    for name, arr in (("twelve.png", ramp), ("sixteen.png", full)):
        rgb = load_rgb(tmp_path / name)
        assert rgb.shape == (3, 32, 32) and rgb.dtype == torch.uint8
        expected = np.rint(arr / 65535 * 255)
        assert np.array_equal(rgb[0].numpy(), expected) and torch.equal(rgb[0], rgb[2])
    # convert("RGB") made the 12-bit ramp 94 % white; scaled, it is dark and not clipped
    assert (load_rgb(tmp_path / "twelve.png") == 255).float().mean() == 0
    wide = np.full((8, 8), 70000, dtype=np.int32)
    Image.fromarray(wide).save(tmp_path / "wide.tif")
    with pytest.raises(CorruptImageError, match="no known bit depth"):
        load_rgb(tmp_path / "wide.tif")


# ---- 5. the config's layer, and checkpoints that agree with it -----------------------------


@pytest.mark.parametrize("key,value,expected", [
    ("layer", "classifier.3", "was trained for layer 'classifier.3', but the run's config "
                              "analyses model.layer = 'fc1' (classifier.0)"),
    ("role", "student", "is a student's, but lies in the teacher's folder"),
])
def test_a_checkpoint_of_another_layer_or_role_is_refused(finished, tmp_path, capsys, key,
                                                          value, expected):
    run = copy_run(finished, tmp_path)
    shutil.rmtree(run / "sweep")
    path = run / "teacher" / "checkpoints" / "epoch_0000.pt"  # the sweep's first checkpoint
    ckpt = torch.load(path, weights_only=True)
    ckpt[key] = value
    torch.save(ckpt, path)
    assert main(["sweep", str(run)]) == 2
    line = one_error_line(capsys)
    assert "epoch_0000.pt" in line and expected in line
    assert not list((run / "sweep").glob("*/epoch_*.pt"))  # refused before any compute


# ---- 6. an interrupted report leaves no temporary files ------------------------------------


def test_a_rerun_report_removes_stale_temporaries(finished, tmp_path):
    run = copy_run(finished, tmp_path)
    out = tmp_path / "rep"
    stale = [out / ".index.md.k2j3h4.tmp", out / "figures" / ".peak_distance.png.a1b2.tmp"]
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"half a file")
    assert main(["report", str(run), "--out", str(out)]) == 0
    assert not list(out.rglob("*.tmp"))
    assert (out / "index.md").is_file()
    assert not (out / ".kdexplain.lock").exists()  # users commit report folders


_SIGTERM_DRIVER = textwrap.dedent("""
    import os, signal, sys
    from kdexplain.cli import main

    real = os.replace

    def replace(src, dst):
        if str(dst).endswith("index.md"):  # index.md's temporary file written, not moved
            os.kill(os.getpid(), signal.SIGTERM)
        real(src, dst)

    os.replace = replace
    sys.exit(main(sys.argv[1:]))
""")


def test_sigterm_during_a_report_is_handled_like_ctrl_c(finished, tmp_path):
    run = copy_run(finished, tmp_path)
    out = tmp_path / "rep"
    driver = tmp_path / "driver.py"
    driver.write_text(_SIGTERM_DRIVER)
    proc = subprocess.run([sys.executable, str(driver), "report", str(run), "--out", str(out)],
                          env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 130, (proc.returncode, proc.stderr[-2000:])
    assert proc.returncode != -signal.SIGTERM
    assert "interrupted" in proc.stderr
    assert not list(out.rglob("*.tmp"))
    assert not (out / "index.md").exists()
