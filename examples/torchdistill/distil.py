"""Distil with torchdistill, explain with kdexplain (docs/own-models.md, route 3).

torchdistill (https://github.com/yoshitomo-matsubara/torchdistill) trains; kdexplain's
:class:`~kdexplain.record.Recorder` records; :func:`~kdexplain.record.assemble_run` makes a
run folder of the teacher, the distilled student and the baseline; the sweep and the report
explain it. Steps, with the settings of ``kd_scenes.yaml``:

1. a kdnet teacher trained with torchdistill's ``TrainingBox`` (cross-entropy) on the
   built-in ``scenes`` data;
2. the student distilled from it with torchdistill's ``DistillationBox`` and ``KDLoss``,
   recorded;
3. the baseline trained with a ``TrainingBox`` and cross-entropy from the student's initial
   weights, recorded;
4. ``assemble_run`` -> ``sweep`` -> ``make_report``.

torchdistill's loop is written by its user (its own example scripts call the box's
``pre_epoch_process``, ``forward_process``, ``post_forward_process`` and
``post_epoch_process``), so the recorder goes in as it is: ``step()`` after
``post_forward_process`` (which runs the optimiser step), ``end_epoch()`` after
``post_epoch_process``. No torchdistill hook is needed.

Run from the repository root (CPU, about a minute)::

    pip install -e ".[torchdistill]"
    python examples/torchdistill/distil.py --out /tmp/td
"""

from __future__ import annotations

import argparse
import copy
import logging
from pathlib import Path

import torch
import yaml
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from kdexplain.config import load_config
from kdexplain.data import build_dataset
from kdexplain.models import build_model
from kdexplain.record import Recorder, assemble_run
from kdexplain.utils import derive_seed

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def scenes(cfg, split: str) -> TensorDataset:
    """The config's data set as (image (3, H, W), label) pairs, as torchdistill expects."""
    d = cfg.data
    ds = build_dataset(d.name, split=split, root=d.root, image_size=d.image_size, **d.options)
    items = [ds[i] for i in range(len(ds))]
    return TensorDataset(torch.stack([it["image"] for it in items]),
                         torch.tensor([int(it["label"]) for it in items]))


@torch.no_grad()
def accuracy(model: torch.nn.Module, data: TensorDataset) -> float:
    model.eval()
    hits = sum(int((model(x).argmax(1) == y).sum()) for x, y in DataLoader(data, 64))
    return hits / len(data)


def train_config(setting: dict, criterion: str, epochs: int | None = None,
                 teacher: bool = False) -> dict:
    """A torchdistill ``train`` section: the shared loader/optimiser/scheduler plus a
    criterion (and the teacher/student sections for distillation)."""
    conf = copy.deepcopy(setting["train"])
    conf["train_data_loader"]["sampler"]["class_or_func"] = RandomSampler
    conf["criterion"] = copy.deepcopy(setting["criteria"][criterion])
    if epochs is not None:
        conf["num_epochs"] = epochs
    if teacher:
        conf["teacher"] = copy.deepcopy(setting["teacher"])
        conf["student"] = copy.deepcopy(setting["student"])
    else:
        conf["model"] = copy.deepcopy(setting["model"])
    return conf


def run_box(box, model, val, recorder: Recorder | None, seed: int) -> None:
    """torchdistill's training loop (as in its example scripts), with the recorder's calls."""
    torch.manual_seed(seed)  # the RandomSampler's order
    if recorder is not None:
        recorder.start(val_acc=accuracy(model, val))
    for epoch in range(box.num_epochs):
        box.pre_epoch_process(epoch=epoch)
        total, n = 0.0, 0
        for sample_batch, targets, supp_dict in box.train_data_loader:
            loss = box.forward_process(sample_batch, targets, supp_dict)
            box.post_forward_process(loss)  # backward, optimiser step, zero_grad
            if recorder is not None:
                recorder.step()
            total, n = total + float(loss.detach()) * len(targets), n + len(targets)
        box.post_epoch_process()  # the epoch-wise scheduler step
        if recorder is not None:
            recorder.end_epoch(epoch + 1, train_loss=total / n, val_acc=accuracy(model, val))


def distil(out: Path, setting_path: Path = HERE / "kd_scenes.yaml") -> Path:
    """Train T, S and B with torchdistill, record S and B, assemble the run; returns it."""
    from torchdistill.core.distillation import get_distillation_box
    from torchdistill.core.training import get_training_box

    setting = yaml.safe_load(setting_path.read_text(encoding="utf-8"))
    kd = setting["kdexplain"]
    cfg = load_config(ROOT / kd["config"], [f"seed={kd['seed']}"])
    train, val = scenes(cfg, cfg.data.train_split), scenes(cfg, cfg.data.val_split)
    data = {"scenes/train": train}
    n_classes = len(cfg.data.options.get("classes", [])) or int(train.tensors[1].max()) + 1
    arch, kwargs = cfg.model.arch, cfg.model.kwargs
    cpu = torch.device("cpu")

    torch.manual_seed(derive_seed(kd["teacher_seed"], "teacher"))
    teacher = build_model(arch, n_classes, **kwargs)
    box = get_training_box(teacher, data, train_config(setting, "ce", kd["teacher_epochs"]),
                           cpu, None, False, 1.0)
    run_box(box, teacher, val, None, kd["teacher_seed"])
    out.mkdir(parents=True, exist_ok=True)
    torch.save(teacher.state_dict(), out / "teacher.pth")
    teacher.eval()

    recorded = {}
    for role in ("student", "baseline"):
        torch.manual_seed(derive_seed(kd["seed"], "init"))  # S and B start alike
        model = build_model(arch, n_classes, **kwargs)
        rec = Recorder(out / "recorded" / role, model, arch=arch, layer=kd["layer"],
                       keep=kd["keep"], num_classes=n_classes, role=role, model_kwargs=kwargs,
                       seed=kd["seed"])
        if role == "student":
            box = get_distillation_box(teacher, model, data,
                                       train_config(setting, "kd", teacher=True),
                                       cpu, None, False, 1.0)
        else:
            box = get_training_box(model, data, train_config(setting, "ce"), cpu, None, False,
                                   1.0)
        run_box(box, model, val, rec, derive_seed(kd["seed"], role, "order"))
        recorded[role] = rec.dir
    return assemble_run(out / "run", teacher=out / "teacher.pth", student=recorded["student"],
                        baseline=recorded["baseline"], num_classes=n_classes, config=cfg,
                        layer=kd["layer"], seed=kd["seed"], name="torchdistill-kd")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="a new folder for everything")
    p.add_argument("--setting", type=Path, default=HERE / "kd_scenes.yaml")
    args = p.parse_args()
    logging.getLogger("torchdistill").setLevel(logging.WARNING)
    from kdexplain.pipeline import make_report, sweep

    run = distil(args.out, args.setting)
    sweep(run, show_progress=False)
    report = make_report([run], args.out / "report", title="torchdistill KD, explained")
    print(f"run: {run}\nreport: {report / 'index.md'}")


if __name__ == "__main__":
    main()
