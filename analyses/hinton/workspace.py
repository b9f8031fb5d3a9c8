"""The shared state of one invocation: config, data, and cached training runs.

Every trained net is reduced to its logits on the whole training split and on the test
split; those are all the analyses need. Each run is saved (atomically) under the cache
folder keyed by everything that determines it, so ``all`` trains each teacher once, an
interrupted run resumes where it stopped, and re-running an analysis only rebuilds the
report.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from analyses.hinton.config import CODE_VERSION, HintonConfig
from analyses.hinton.nets import (
    MLP,
    NetConfig,
    mlp_from_state,
    predict_logits,
    train_consistent,
    train_mlp,
)
from kdexplain.data.digits import DigitData, load_digits
from kdexplain.utils import atomic_torch_save, derive_seed

DEFAULT_CACHE_DIR = Path("runs") / "hinton" / "cache"


def log(msg: str) -> None:
    """One line of progress on stderr."""
    print(f"[hinton] {msg}", file=sys.stderr, flush=True)


def load_data(cfg: HintonConfig, root: str | Path | None = None,
              download: bool = False) -> DigitData:
    """The config's data set, subsampled to ``train_size`` / ``test_size`` when set."""
    data = load_digits(cfg.dataset, root=root, download=download)
    if cfg.train_size is not None or cfg.test_size is not None:
        data = data.subsample(cfg.train_size, cfg.test_size, seed=0)
    return data


class Workspace:
    """Config + data + a cache of trained nets' logits.

    Parameters
    ----------
    cfg : HintonConfig
    data : DigitData
    cache_dir : str or Path or None
        Folder of cached runs (one sub-folder per data set); ``None`` keeps runs in memory
        only.
    """

    def __init__(self, cfg: HintonConfig, data: DigitData,
                 cache_dir: str | Path | None = DEFAULT_CACHE_DIR) -> None:
        self.cfg = cfg
        self.data = data
        self.cache_dir = Path(cache_dir) / data.name if cache_dir is not None else None
        self._memo: dict[str, dict[str, torch.Tensor]] = {}
        self.trained = 0  # runs trained by this workspace (not loaded from the cache)
        #: key -> seconds its training took (None for cache files older than the record),
        #: for every run used since the last :meth:`reset_usage`
        self.used: dict[str, float | None] = {}

    def reset_usage(self) -> None:
        """Forget which runs were used (call before each analysis to time its nets)."""
        self.used = {}

    def usage(self) -> dict:
        """The runs used since :meth:`reset_usage`: how many, and what they took to train.

        Returns
        -------
        dict
            ``"nets"``: runs used (trained now or read from the cache); ``"train_s"``:
            the wall-clock seconds their training took, as recorded when each was trained;
            ``"untimed"``: runs whose cache file predates that record.
        """
        known = [t for t in self.used.values() if t is not None]
        return {"nets": len(self.used), "train_s": float(sum(known)),
                "untimed": len(self.used) - len(known)}

    # ------------------------------------------------------------------ caching
    def _key(self, spec: dict) -> str:
        spec = {"code_version": CODE_VERSION, "data": self.data.split_note, **spec}
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()

    def _cached(self, label: str, spec: dict, train_fn, desc: str,
                keep_state: bool = False) -> dict[str, torch.Tensor]:
        key = self._key(spec)
        if key in self._memo and (not keep_state or "state" in self._memo[key]):
            return self._use(key, self._memo[key])
        path = self.cache_dir / f"{label}-{key[:16]}.pt" if self.cache_dir is not None else None
        if path is not None and path.is_file():
            try:
                out = torch.load(path, map_location="cpu", weights_only=True)
                # a file without the weights (written before teachers kept them) is
                # trained again when the weights are needed
                if not keep_state or "state" in out:
                    self._memo[key] = out
                    return self._use(key, out)
            except Exception as e:  # a damaged cache file is retrained, not fatal
                log(f"ignoring unreadable cache file {path} ({e}); training again")
        log(f"training {desc}")
        t0, c0 = time.perf_counter(), time.process_time()
        model = train_fn()
        out = {"train": predict_logits(model, self.data.x_train),
               "test": predict_logits(model, self.data.x_test),
               "train_s": time.perf_counter() - t0, "train_cpu_s": time.process_time() - c0}
        if keep_state:
            out["state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.trained += 1
        if path is not None:
            atomic_torch_save(out, path)  # one unit at a time: a killed run resumes here
        log(f"trained {desc} in {out['train_s']:.0f} s ({self.trained} nets trained so far)")
        self._memo[key] = out
        return self._use(key, out)

    def _use(self, key: str, out: dict) -> dict:
        t = out.get("train_s")
        self.used[key] = None if t is None else float(t)
        return out

    # ------------------------------------------------------------------ runs
    def teacher(self, seed: int, net: NetConfig | None = None) -> dict[str, torch.Tensor]:
        """The teacher of ``seed``, trained on the whole training split with labels.

        Parameters
        ----------
        seed : int
        net : NetConfig, optional
            Another teacher than the config's (e.g. a named preset); same seed stream.

        Returns
        -------
        dict
            ``"train"``: logits ``(N_train, C)``, ``"test"``: logits ``(N_test, C)`` (eval
            mode: no dropout, no jitter); ``"state"``: the net's weights.
        """
        net = net or self.cfg.teacher
        spec = {"role": "teacher", "net": net.as_dict(), "seed": seed}
        return self._cached(f"teacher-s{seed}", spec, lambda: train_mlp(
            self.data.x_train, self.data.y_train, net, derive_seed(seed, "teacher"),
            image_shape=self.data.image_shape, num_classes=self.data.num_classes,
            desc=f"teacher seed {seed}"), desc=f"teacher 2x{net.hidden}, seed {seed}",
            keep_state=True)

    def teacher_model(self, seed: int, net: NetConfig | None = None) -> MLP:
        """The teacher of :meth:`teacher` as a module (eval mode), to label new views."""
        net = net or self.cfg.teacher
        return mlp_from_state(self.teacher(seed, net)["state"], net,
                              self.data.x_train.shape[1], self.data.num_classes)

    def ensemble(self, seed: int, size: int, net: NetConfig | None = None
                 ) -> dict[str, torch.Tensor]:
        """``size`` label-trained nets of ``net`` (default: the student), averaged.

        Member 0 is the label-trained net of :meth:`student` itself; members 1 to size-1
        differ only in their seed stream (initialisation and batch order). The ensemble's
        logits are the mean of the members' logits (the normalised geometric mean of their
        probabilities), which serves both as its prediction and as soft targets.

        Returns
        -------
        dict
            ``"train"`` ``(N_train, C)`` and ``"test"`` ``(N_test, C)`` mean logits.
        """
        net = net or self.cfg.student
        members = [self.student(seed, net, member=k) for k in range(size)]
        return {part: torch.stack([m[part] for m in members]).mean(0)
                for part in ("train", "test")}

    def consistent(self, seed: int, net: NetConfig, teacher: NetConfig, *, jitter: int,
                   temperature: float, soft_weight: float, mixup: float = 0.0
                   ) -> dict[str, torch.Tensor]:
        """A student distilled by consistent teaching from the teacher ``teacher`` of ``seed``.

        See :func:`~analyses.hinton.nets.train_consistent`; the transfer set is the whole
        training split, each batch shifted by up to ``jitter`` pixels (and mixed with
        ``mixup``), the teacher labelling that view. Same initialisation as the label-trained
        student of ``seed`` (paired).
        """
        spec = {"role": "consistent", "net": net.as_dict(), "seed": seed,
                "teacher": teacher.as_dict(), "jitter": jitter, "temperature": temperature,
                "soft_weight": soft_weight, "mixup": mixup}
        d = self.data
        return self._cached(f"consistent-h{net.hidden}-s{seed}", spec, lambda: train_consistent(
            d.x_train, d.y_train, net, derive_seed(seed, "student", net.hidden),
            self.teacher_model(seed, teacher), image_shape=d.image_shape, jitter=jitter,
            num_classes=d.num_classes, temperature=temperature, soft_weight=soft_weight,
            mixup=mixup, desc=f"consistent 2x{net.hidden} seed {seed}"),
            desc=f"consistent student 2x{net.hidden} (T={temperature:g}, {net.epochs} "
                 f"epochs, teacher 2x{teacher.hidden} jitter {teacher.jitter}), seed {seed}")

    def student(self, seed: int, net: NetConfig, *, temperature: float | None = None,
                soft_weight: float = 1.0, rows: torch.Tensor | None = None,
                use_labels: bool = True, match_steps_to: int | None = None,
                teacher: NetConfig | None = None, ensemble: int = 0, member: int = 0,
                ) -> dict[str, torch.Tensor]:
        """A small net trained on labels (``temperature=None``) or distilled from the teacher.

        Parameters
        ----------
        seed : int
            Seed of the run; the teacher of the same seed provides the soft targets. Nets of
            one width and seed share their initialisation whatever the loss, so comparisons
            between losses are paired.
        net : NetConfig
        temperature : float or None
            T of the soft term; ``None`` trains on hard labels only.
        soft_weight : float
            ``a``; the hard-label cross-entropy gets ``1 - a``.
        rows : LongTensor (M,), optional
            Rows of the training split forming the transfer set (default: all).
        use_labels : bool
            ``False`` distils from soft targets alone.
        match_steps_to : int, optional
            Scale the epochs so a transfer set of ``len(rows)`` images gets as many optimiser
            steps as ``match_steps_to`` images would in ``net.epochs`` epochs (for the small
            transfer sets of the missing-class analysis).
        teacher : NetConfig, optional
            Distil from this teacher of ``seed`` instead of the config's.
        ensemble : int
            > 0: distil from the :meth:`ensemble` of that many label-trained nets of
            ``net``'s size instead of a teacher.
        member : int
            > 0: a further label-trained net of the same size and ``seed`` (an ensemble
            member), with its own initialisation and batch order.

        Returns
        -------
        dict
            ``"train"`` ``(N_train, C)`` and ``"test"`` ``(N_test, C)`` logits.
        """
        x, y = self.data.x_train, self.data.y_train
        if rows is not None:
            x, y = x[rows], y[rows]
        if match_steps_to is not None and len(x) < match_steps_to:
            net = replace(net, epochs=max(1, round(net.epochs * match_steps_to / len(x))))
        distil = temperature is not None
        if not distil and not use_labels:
            raise ValueError("a student needs labels, a temperature, or both")
        spec = {"role": "student", "net": net.as_dict(), "seed": seed,
                "temperature": temperature, "soft_weight": soft_weight if distil else None,
                "labels": use_labels,
                "teacher": (teacher or self.cfg.teacher).as_dict() if distil else None,
                "rows": None if rows is None else hashlib.sha256(
                    rows.to(torch.int64).numpy().tobytes()).hexdigest()}
        if distil and ensemble > 0:
            spec["teacher"] = {"ensemble": ensemble, "net": net.as_dict()}
        if member:  # only then: the keys of the nets cached before members existed hold
            spec["member"] = member
        teacher_logits = None
        if distil:
            teacher_logits = (self.ensemble(seed, ensemble, net) if ensemble > 0
                              else self.teacher(seed, teacher))["train"]
            if rows is not None:
                teacher_logits = teacher_logits[rows]
        what = f"T={temperature:g} a={soft_weight:g}" if distil else "labels"
        label = f"student-h{net.hidden}-s{seed}" + (f"-m{member}" if member else "")
        init = derive_seed(seed, "student", net.hidden, *(("member", member) if member else ()))
        return self._cached(label, spec, lambda: train_mlp(
            x, y if use_labels else None, net, init,
            image_shape=self.data.image_shape, num_classes=self.data.num_classes,
            teacher_logits=teacher_logits, temperature=temperature or 1.0,
            soft_weight=soft_weight, desc=f"2x{net.hidden} {what} seed {seed}"),
            desc=f"student 2x{net.hidden} ({what}, {len(x)} images, {net.epochs} epochs), "
                 f"seed {seed}")
