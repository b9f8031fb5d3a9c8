"""What a careless or hostile user can do to a run, through the real commands.

Each test drives ``kdexplain`` itself (in process through ``kdexplain.cli.main``, or in a
subprocess where a real signal or a second process is needed) with the bad input, and
checks that nothing from a file is executed, no row is lost or duplicated, and the error is
one line that says what to do.
"""

from __future__ import annotations

import csv
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
from PIL import Image

from kdexplain.cli import main
from kdexplain.utils import atomic_write_bytes, folder_lock
from kdexplain.utils.io import UnreadableFileError, load_torch_file
from tests.reliability_common import FAST, TINY, copy_run, finished_run, one_error_line


class Payload:
    """Pickles as a call of ``os.makedirs(marker)``: proof that loading ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def _plant(path: Path, marker: Path, like: Path | None = None) -> None:
    """Overwrite ``path`` with a malicious file (a copy of ``like`` plus the payload)."""
    obj = torch.load(like, weights_only=True) if like is not None else {}
    obj["evil"] = Payload(marker)
    torch.save(obj, path)


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r.pop("seconds", None)
    return rows


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A tiny run trained, swept and reported by ``kdexplain run`` (copy it to mutate it)."""
    return finished_run(tmp_path_factory)




# ---- 1. no code from a loaded file ------------------------------------------------------


@pytest.mark.slow
def test_malicious_checkpoint_through_quantify(finished, tmp_path, capsys):
    marker = tmp_path / "pwned"
    mal = tmp_path / "mal.pt"
    _plant(mal, marker, like=finished / "student" / "checkpoints" / "epoch_0001.pt")
    rc = main(["quantify", "--checkpoint", str(mal), "--layer", "fc1", "--out",
               str(tmp_path / "q"), "--n-images", "2"])
    assert rc == 2 and not marker.exists()
    line = one_error_line(capsys)
    assert "mal.pt holds Python objects (os.makedirs" in line and "weights_only=True" in line


@pytest.mark.slow
def test_malicious_pretrained_teacher(finished, tmp_path, capsys):
    marker = tmp_path / "pwned"
    mal = tmp_path / "teacher.pth"
    _plant(mal, marker, like=finished / "teacher" / "checkpoints" / "epoch_0001.pt")
    rc = main(["train-triplet", str(TINY), f"out_dir={tmp_path}", "name=p", *FAST,
               f"teacher.pretrained={mal}"])
    assert rc == 2 and not marker.exists()
    assert "teacher.pth holds Python objects" in one_error_line(capsys)
    assert not (tmp_path / "p").exists()  # validated before the run folder was written


@pytest.mark.slow
def test_malicious_run_checkpoint_under_sweep(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path)
    shutil.rmtree(run / "sweep")
    marker = tmp_path / "pwned"
    ckpt = run / "baseline" / "checkpoints" / "epoch_0001.pt"
    _plant(ckpt, marker, like=ckpt)
    assert main(["sweep", str(run)]) == 2 and not marker.exists()
    assert "epoch_0001.pt holds Python objects" in one_error_line(capsys)


@pytest.mark.slow
def test_malicious_last_pt_under_resume(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path)
    marker = tmp_path / "pwned"
    _plant(run / "student" / "last.pt", marker, like=run / "student" / "last.pt")
    rc = main(["train-triplet", str(run / "config.yaml"), "--run-dir", str(run),
               "--resume"])
    assert rc == 2 and not marker.exists()
    assert "last.pt holds Python objects" in one_error_line(capsys)


@pytest.mark.slow
def test_malicious_sweep_unit_under_report(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path)
    marker = tmp_path / "pwned"
    unit = run / "sweep" / "teacher" / "epoch_0000.pt"
    _plant(unit, marker, like=unit)
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 2
    assert not marker.exists()
    line = one_error_line(capsys)
    assert "sweep unit" in line and "epoch_0000.pt holds Python objects" in line


@pytest.mark.slow
def test_checkpoints_hold_only_plain_data(finished):
    """Every file a run writes loads with weights_only=True (the RNG states included)."""
    files = [p for p in finished.rglob("*.pt")]
    assert len(files) > 10
    for p in files:
        torch.load(p, weights_only=True)
    state = torch.load(finished / "student" / "last.pt", weights_only=True)
    assert isinstance(state["rng"][0]["numpy"]["key"], torch.Tensor)


def test_yaml_bomb_is_refused(tmp_path, capsys):
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 7):  # 9**7 leaves once expanded
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        levels.append(f"{cur}: &{cur} [{', '.join(['*' + prev] * 9)}]")
    opts = "\n".join("    " + ln for ln in levels)
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(f"name: bomb\ndata:\n  options:\n{opts}\n")
    assert main(["run", str(bomb), f"out_dir={tmp_path}"]) == 2  # refused, never expanded
    line = one_error_line(capsys)
    assert "bomb.yaml, line 5: YAML aliases (*name) are not allowed" in line
    assert not (tmp_path / "bomb").exists()


# ---- 3. a kill at any point, resumed, equals an uninterrupted run -------------------------

_DRIVER = textwrap.dedent("""
    import os, signal, sys
    from kdexplain.train.loop import ModelTrainer
    from kdexplain.cli import main

    role, phase, epoch, sig, where = sys.argv[1:6]
    sig = getattr(signal, sig)
    # Ctrl-C as in a terminal: a process started in the background by a non-interactive
    # shell inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler
    signal.signal(signal.SIGINT, signal.default_int_handler)
    save = ModelTrainer._save_bytes

    def killing_save(obj, paths):
        hit = obj["role"] == role and obj["phase"] == phase and obj["epoch"] == int(epoch)
        if hit and where == "before-save":  # after the epoch's CSV rows, before last.pt
            os.kill(os.getpid(), sig)
        if hit and where == "inside-save":  # last.pt's temporary file written, not moved
            real = os.replace
            def replace(src, dst):
                if str(dst).endswith("last.pt"):
                    os.kill(os.getpid(), sig)
                real(src, dst)
            os.replace = replace
        save(obj, paths)

    ModelTrainer._save_bytes = staticmethod(killing_save)
    sys.exit(main(sys.argv[6:]))
""")


def _train_cmd(out: Path, name: str, *extra: str) -> list[str]:
    return ["train-triplet", str(TINY), f"out_dir={out}", f"name={name}", *FAST,
            "-q", *extra]


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", KDEXPLAIN_PROGRESS="0")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    proc = subprocess.run([sys.executable, "-m", "kdexplain.cli", *_train_cmd(out, "ref")],
                          env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out / "ref"


@pytest.mark.parametrize("role,phase,epoch,sig,where", [
    ("student", "phase1", 0, "SIGKILL", "before-save"),   # the epoch-0 window of a model
    ("baseline", "train", 0, "SIGINT", "before-save"),    # the same window, Ctrl-C
    ("teacher", "finetune", 1, "SIGKILL", "inside-save"),  # a kill during last.pt's write
])
@pytest.mark.slow
def test_real_signal_then_resume_equals_uninterrupted(uninterrupted, tmp_path, role, phase,
                                                      epoch, sig, where):
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    killed = subprocess.run([sys.executable, str(driver), role, phase, str(epoch), sig, where,
                             *_train_cmd(tmp_path, "r")], env=_env(), capture_output=True,
                            text=True, timeout=600)
    expected = -signal.SIGKILL if sig == "SIGKILL" else 130
    assert killed.returncode == expected, killed.stderr[-2000:]
    run = tmp_path / "r"
    if where == "inside-save":
        assert list(run.rglob(".last.pt.*.tmp")), "the kill should have left a temporary file"
    else:  # the model wrote its rows of the epoch, but no resume point for them
        rows = _rows(run / role / "metrics.csv")
        assert rows and rows[-1]["phase"] == phase and rows[-1]["epoch"] == str(epoch)
    resumed = subprocess.run([sys.executable, "-m", "kdexplain.cli",
                              *_train_cmd(tmp_path, "r", "--resume")],
                             env=_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert not list(run.rglob("*.tmp"))
    for r in ("teacher", "student", "baseline"):
        for name in ("metrics.csv", "trajectory.csv", "weight_distance.csv"):
            assert _rows(run / r / name) == _rows(uninterrupted / r / name), (r, name)
        for ck in sorted((uninterrupted / r / "checkpoints").rglob("*.pt")):
            a = torch.load(ck, weights_only=True)["model"]
            b = torch.load(run / ck.relative_to(uninterrupted), weights_only=True)["model"]
            assert all(torch.equal(a[k], b[k]) for k in a), (r, ck.name)


# ---- 4. one process per run folder ---------------------------------------------------------


@pytest.mark.slow
def test_a_second_process_in_the_same_folder_is_refused(tmp_path, capsys):
    run = tmp_path / "busy"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from kdexplain.utils import folder_lock\n"
         f"with folder_lock({str(run)!r}):\n    print('held', flush=True); time.sleep(300)"],
        stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert holder.stdout.readline().strip() == "held"
        rc = main(["run", str(TINY), f"out_dir={tmp_path}", "name=busy", *FAST,
                   "--report-dir", str(tmp_path / "rep")])
        assert rc == 2
        line = one_error_line(capsys)
        assert f"busy is in use by process {holder.pid}" in line
        assert not (run / "config.yaml").exists()
    finally:
        holder.kill()
        holder.wait()
    # the kernel released the dead holder's lock: the folder is usable at once
    with folder_lock(run):
        pass


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    with folder_lock(tmp_path / "x"):
        with folder_lock(tmp_path / "x"):
            (tmp_path / "x" / "f").write_text("1")
    assert (tmp_path / "x" / "f").is_file()


# ---- 5. a corrupt sweep unit or a half-written file ----------------------------------------


@pytest.mark.slow
def test_corrupt_sweep_unit_is_named_then_recomputed(finished, tmp_path, capsys, caplog):
    run = copy_run(finished, tmp_path)
    unit = run / "sweep" / "student" / "epoch_0001.pt"
    original = torch.load(unit, weights_only=True)
    unit.write_bytes(unit.read_bytes()[: unit.stat().st_size // 2])
    stale = run / "sweep" / "student" / ".epoch_0000.pt.abc123.tmp"
    stale.write_bytes(b"half a file")
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 2
    line = one_error_line(capsys)
    assert "sweep unit" in line and "student/epoch_0001.pt is truncated or corrupt" in line
    assert f"kdexplain sweep {run}" in line
    with caplog.at_level("WARNING", logger="kdexplain.pipeline"):
        assert main(["sweep", str(run)]) == 0
    assert "epoch_0001.pt is truncated or corrupt" in caplog.text and "recomputing" in caplog.text
    assert not stale.exists()
    again = torch.load(unit, weights_only=True)
    assert torch.equal(again["entropy"], original["entropy"])
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 0


@pytest.mark.slow
def test_broken_manifest_is_rewritten_by_the_sweep(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path)
    (run / "sweep" / "manifest.json").write_text('{"units": [')
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 2
    assert "manifest.json is not valid JSON" in one_error_line(capsys)
    assert main(["sweep", str(run)]) == 0
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 0


# ---- 6. a corrupt image is left out, never replaced ----------------------------------------


@pytest.mark.slow
def test_corrupt_jpeg_is_skipped_not_substituted(finished, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("bad.jpg", "good.png", "other.png"):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / name)
    bad = folder / "bad.jpg"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 3])  # passes the header check
    out = tmp_path / "q"
    rc = main(["quantify", "--checkpoint", str(finished / "student" / "checkpoints" /
                                                 "epoch_0001.pt"),
               "--layer", "fc1", "--dataset", str(folder), "--image-size", "32", "--n-images", "3",
               "--steps", "2", "--samples", "2", "--out", str(out)])
    assert rc == 0
    assert "bad.jpg" in capsys.readouterr().err
    keys = [r["key"] for r in csv.DictReader((out / "images.csv").open())]
    assert sorted(keys) == ["good.png", "other.png"]


# ---- 7. a typo does not poison the folder --------------------------------------------------


def test_a_failed_command_leaves_nothing_and_the_fix_proceeds(tmp_path, capsys):
    for bad in ("model.layer=fc9", "model.kwargs.depth=3", "data.options.colour=red"):
        assert main(_train_cmd(tmp_path, "t", bad)) == 2
        one_error_line(capsys)
        assert not (tmp_path / "t").exists(), bad
    # a folder left by an older version (config only, no finished epoch) is reused
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "config.yaml").write_text("name: t\nmodel: {layer: fc9}\n")
    assert main(_train_cmd(tmp_path, "t", "baseline.epochs=0", "student.phase1_epochs=0",
                           "student.phase2_epochs=0", "teacher.epochs=0")) == 0
    assert "layer: fc1" in (tmp_path / "t" / "config.yaml").read_text()


# ---- 8 and 9. one clear line, and nothing silently accepted --------------------------------


@pytest.mark.parametrize("args,expected", [
    (["--device", "banana"], "--device: unknown device 'banana'; use auto, cpu, cuda or cuda:N"),
    (["--n-images", "-3"], "--n-images must be at least 1, got -3"),
    (["--entropy-weight", "-1"], "--entropy-weight (lambda_H) must be positive, got -1.0"),
    (["--steps", "0"], "--steps must be at least 1, got 0"),
])
@pytest.mark.slow
def test_quantify_bad_values(finished, tmp_path, capsys, args, expected):
    ckpt = finished / "student" / "checkpoints" / "epoch_0001.pt"
    rc = main(["quantify", "--checkpoint", str(ckpt), "--layer", "fc1", "--out",
               str(tmp_path / "q"), *args])
    assert rc == 2
    assert expected in one_error_line(capsys)
    assert not (tmp_path / "q").exists()


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_quantify_cuda_without_a_gpu(finished, tmp_path, capsys):
    ckpt = finished / "student" / "checkpoints" / "epoch_0001.pt"
    assert main(["quantify", "--checkpoint", str(ckpt), "--layer", "fc1", "--out",
                 str(tmp_path / "q"), "--device", "cuda"]) == 2
    assert "torch sees no CUDA GPU on this machine" in one_error_line(capsys)


@pytest.mark.slow
def test_quantify_out_that_is_a_file_fails_first(finished, tmp_path, capsys):
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    ckpt = finished / "student" / "checkpoints" / "epoch_0001.pt"
    assert main(["quantify", "--checkpoint", str(ckpt), "--layer", "fc1", "--out",
                 str(target)]) == 2
    assert "results.txt is a file" in one_error_line(capsys)
    assert target.read_text() == "keep me"


@pytest.mark.parametrize("content,expected", [
    (np.random.default_rng(0).bytes(512), "is not a readable torch file"),
    (b"", "is empty"),
    (None, "is truncated or corrupt"),
])
@pytest.mark.slow
def test_unreadable_checkpoints(finished, tmp_path, capsys, content, expected):
    bad = tmp_path / "bad.pt"
    if content is None:
        src = finished / "student" / "checkpoints" / "epoch_0001.pt"
        content = src.read_bytes()[: src.stat().st_size // 2]
    bad.write_bytes(content)
    assert main(["quantify", "--checkpoint", str(bad), "--layer", "fc1", "--out",
                 str(tmp_path / "q")]) == 2
    line = one_error_line(capsys)
    assert "bad.pt" in line and expected in line


def test_any_garbage_is_a_clear_error(tmp_path):
    # read as a legacy pickle, random bytes stop the weights-only unpickler in many ways
    # (UnpicklingError, IndexError, KeyError, struct.error, ...); every one must come out as
    # the one clear error, never as a traceback
    bad = tmp_path / "bad.pt"
    rng = np.random.default_rng(12)
    for _ in range(400):
        bad.write_bytes(rng.bytes(int(rng.integers(1, 2048))))
        with pytest.raises(UnreadableFileError, match="bad.pt is (not a readable torch file|"
                                                      "truncated or corrupt)"):
            load_torch_file(bad, what="checkpoint")


@pytest.mark.slow
def test_last_pt_without_a_phase(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path)
    state = torch.load(run / "baseline" / "last.pt", weights_only=True)
    del state["phase"]
    torch.save(state, run / "baseline" / "last.pt")
    rc = main(["train-triplet", str(run / "config.yaml"), "--run-dir", str(run),
               "--resume"])
    assert rc == 2
    assert "last.pt is not a kdexplain resume point (missing phase)" in one_error_line(capsys)


@pytest.mark.slow
def test_sweep_checkpoints_per_call_must_be_positive(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path)
    assert main(["sweep", str(run), "--checkpoints-per-call", "-1"]) == 2
    assert "checkpoints_per_call must be at least 1, got -1" in one_error_line(capsys)


def test_empty_config_is_refused(tmp_path, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here\n")
    assert main(["run", str(empty), f"out_dir={tmp_path}"]) == 2
    assert "empty.yaml is empty" in one_error_line(capsys)


# ---- 10. file modes follow the umask --------------------------------------------------------


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_respect_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        p = atomic_write_bytes(tmp_path / "f.bin", b"x")
    finally:
        os.umask(old)
    assert (p.stat().st_mode & 0o777) == mode


def test_git_revision_is_dirty_for_code_not_for_regenerated_reports(tmp_path):
    import subprocess

    from kdexplain.utils.runinfo import git_revision

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "index.md").write_text("old\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    rev = git_revision(tmp_path)
    assert rev is not None and not rev.endswith("-dirty")
    (tmp_path / "reports" / "index.md").write_text("regenerated\n")
    assert git_revision(tmp_path) == rev
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_revision(tmp_path) == rev + "-dirty"
