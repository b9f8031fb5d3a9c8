"""The networks of Hinton et al.'s MNIST experiments and their training loops.

Fully connected nets on flattened images: ``in -> hidden -> hidden -> classes`` with ReLU,
as in the paper (teacher 2x1200 with dropout and jitter, students 2x800, 2x300 or 2x30
without regularisation). Distillation uses kdexplain's own losses
(:func:`kdexplain.train.losses.distillation_loss`); nothing is re-implemented here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kdexplain.train.losses import distillation_loss
from kdexplain.utils import derive_seed, deterministic, progress, seed_everything


@dataclass(frozen=True)
class NetConfig:
    """Architecture and optimisation of one fully connected net.

    Attributes
    ----------
    hidden : int
        Units in each of the two hidden layers (paper: 1200 teacher, 800 student).
    input_dropout, hidden_dropout : float
        Dropout probabilities on the input pixels and on the hidden units (paper's teacher:
        about 0.2 and 0.5; students: none).
    jitter : int
        Largest random translation of a training image, in pixels, in x and y (paper's
        teacher: "jittering the input" by up to 2 pixels); 0 = none.
    epochs : int
        Passes over the training (or transfer) set.
    batch_size : int
    lr : float
        Adam's initial learning rate; it decays linearly to 0 over the run so the last
        epoch is a stable end point (the number reported).
    weight_decay : float
        L2 penalty (Adam's ``weight_decay``).
    """

    hidden: int = 800
    input_dropout: float = 0.0
    hidden_dropout: float = 0.0
    jitter: int = 0
    epochs: int = 20
    batch_size: int = 100
    lr: float = 1e-3
    weight_decay: float = 0.0

    def as_dict(self) -> dict:
        """The fields as a plain dict (for configs, cache keys and reports)."""
        return asdict(self)


class MLP(nn.Module):
    """``in -> hidden -> hidden -> num_classes`` with ReLU and optional dropout.

    Parameters
    ----------
    in_features : int
        Pixels per image (784 for 28x28).
    hidden : int
        Width of both hidden layers.
    num_classes : int
    input_dropout, hidden_dropout : float
        Dropout on the input and after each hidden ReLU (active in ``train()`` only).

    Shapes
    ------
    ``forward(x)``: ``x (B, in_features)`` -> logits ``(B, num_classes)``.
    """

    def __init__(self, in_features: int, hidden: int, num_classes: int = 10,
                 input_dropout: float = 0.0, hidden_dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(input_dropout),
            nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(hidden_dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(hidden_dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def jitter_images(x: torch.Tensor, image_shape: tuple[int, int], max_shift: int,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Translate each image by a random integer shift in ``[-max_shift, max_shift]``.

    Parameters
    ----------
    x : Tensor (B, H*W)
        Flattened images; the background that shifts in is 0 (black, as MNIST's).
    image_shape : (H, W)
    max_shift : int
        Largest shift in pixels, drawn independently for x and y and for every image.
    generator : torch.Generator, optional

    Returns
    -------
    Tensor (B, H*W)
    """
    if max_shift <= 0:
        return x
    b = x.shape[0]
    h, w = image_shape
    s = int(max_shift)
    padded = F.pad(x.view(b, h, w), (s, s, s, s))
    dy = torch.randint(0, 2 * s + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * s + 1, (b,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]  # (B, H, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, :]  # (B, 1, W)
    return padded[torch.arange(b)[:, None, None], rows, cols].reshape(b, h * w)


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Logits of ``model`` in eval mode (no dropout). ``x (N, D)`` -> ``(N, classes)``."""
    model.eval()
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


@deterministic()  # torch's determinism switches for the fit, the caller's restored after
def train_mlp(x: torch.Tensor, y: torch.Tensor | None, cfg: NetConfig, seed: int, *,
              image_shape: tuple[int, int], num_classes: int = 10,
              teacher_logits: torch.Tensor | None = None, temperature: float = 1.0,
              soft_weight: float = 1.0, desc: str = "train") -> MLP:
    """Train one :class:`MLP` on labels, or distil it from a teacher's logits.

    Parameters
    ----------
    x : Tensor (N, D)
        Training images, or the transfer set when distilling.
    y : Tensor (N,) or None
        Hard labels; ``None`` distils from soft targets alone (an unlabelled transfer set).
    cfg : NetConfig
    seed : int
        Seeds the initialisation, the batch order, dropout and jitter.
    image_shape : (H, W)
        Needed to jitter.
    num_classes : int
    teacher_logits : Tensor (N, num_classes), optional
        The teacher's logits for ``x`` (computed once, without jitter or dropout). Given:
        the loss is ``soft_weight * T^2 * KL(q_T(teacher) || q_T(student)) +
        (1 - soft_weight) * CE(y, q_1(student))``; absent: cross-entropy on ``y``.
    temperature : float
        T of the soft term.
    soft_weight : float
        Weight ``a`` of the soft term; ``1 - a`` is the hard-label weight.
    desc : str
        Label of the progress bar.

    Returns
    -------
    MLP
        The trained net, in eval mode.
    """
    if teacher_logits is None and y is None:
        raise ValueError("train_mlp needs labels y, teacher_logits, or both")
    if teacher_logits is not None and teacher_logits.shape != (len(x), num_classes):
        raise ValueError(f"teacher_logits must have shape ({len(x)}, {num_classes}), "
                         f"got {tuple(teacher_logits.shape)}")
    seed_everything(derive_seed(seed, "init"))
    model = MLP(x.shape[1], cfg.hidden, num_classes, cfg.input_dropout, cfg.hidden_dropout)
    gen = torch.Generator().manual_seed(derive_seed(seed, "batches"))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(x)
    steps_per_epoch = (n + cfg.batch_size - 1) // cfg.batch_size
    total = max(1, cfg.epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 - step / total)
    model.train()
    # without a terminal: a plain line at least every 30 s (a teacher epoch on 60 000
    # images takes about that long on one core)
    for _ in progress(range(cfg.epochs), desc=desc, unit="epoch", leave=False, log_lines=True):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            xb = jitter_images(x[idx], image_shape, cfg.jitter, gen)
            logits = model(xb)
            if teacher_logits is None:
                loss = F.cross_entropy(logits, y[idx])
            else:
                loss = distillation_loss(logits, teacher_logits[idx],
                                         None if y is None else y[idx], temperature, soft_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return model


def count_errors(logits: torch.Tensor, y: torch.Tensor) -> int:
    """Number of rows whose arg-max differs from the label. ``logits (N, C)``, ``y (N,)``."""
    return int((logits.argmax(dim=1) != y).sum())


def mlp_from_state(state: dict[str, torch.Tensor], cfg: NetConfig, in_features: int,
                   num_classes: int = 10) -> MLP:
    """An :class:`MLP` of ``cfg``'s shape holding ``state`` (a cached ``state_dict``), in eval mode."""
    model = MLP(in_features, cfg.hidden, num_classes, cfg.input_dropout, cfg.hidden_dropout)
    model.load_state_dict(state)
    return model.eval()


def mix_views(xb: torch.Tensor, alpha: float, rng: torch.Generator) -> torch.Tensor:
    """Mixup of a batch with a shuffled copy of itself: ``lam * x + (1 - lam) * x[perm]``.

    Parameters
    ----------
    xb : Tensor (B, D)
    alpha : float
        ``lam ~ Beta(alpha, alpha)`` per image; 0 returns ``xb`` unchanged.
    rng : torch.Generator

    Returns
    -------
    Tensor (B, D)
    """
    if alpha <= 0:
        return xb
    # Beta(a, a) from two Gamma(a) draws, seeded by ``rng`` (torch's Beta takes no generator)
    u = torch.rand(2, len(xb), generator=rng, dtype=torch.float64)
    g = torch.distributions.Gamma(alpha, 1.0)
    with torch.random.fork_rng():
        torch.manual_seed(int(u[0, 0] * 2**31))
        g1, g2 = g.sample((len(xb),)), g.sample((len(xb),))
    lam = (g1 / (g1 + g2)).to(xb.dtype)[:, None]
    perm = torch.randperm(len(xb), generator=rng)
    return lam * xb + (1 - lam) * xb[perm]


@deterministic()
def train_consistent(x: torch.Tensor, y: torch.Tensor | None, cfg: NetConfig, seed: int,
                     teacher: nn.Module, *, image_shape: tuple[int, int], jitter: int,
                     num_classes: int = 10, temperature: float = 1.0, soft_weight: float = 1.0,
                     mixup: float = 0.0, desc: str = "consistent") -> MLP:
    """Distil an :class:`MLP` with consistent teaching (Beyer et al., CVPR 2022).

    The teacher labels the very view the student sees: every batch is jittered (and, with
    ``mixup``, mixed) once, and the teacher's logits for that view are the soft targets, so
    the transfer set is as large as the augmentation makes it. The student itself has no
    dropout; the view is its only regulariser besides the teacher.

    Parameters
    ----------
    x : Tensor (N, D)
        The transfer set's images (before augmentation).
    y : Tensor (N,) or None
        Hard labels for the ``1 - soft_weight`` term; must be ``None`` (or ``soft_weight``
        1) with ``mixup``, whose views have no single label.
    cfg : NetConfig
        The student (its ``jitter`` is ignored: ``jitter`` below shifts the shared view).
    seed : int
        Seeds initialisation (as :func:`train_mlp` does for the same seed: paired with the
        label-trained net), batch order, shifts and mixing.
    teacher : nn.Module
        Called in eval mode (no dropout) on each view, without gradients.
    image_shape : (H, W)
    jitter : int
        Largest shift of a view, in pixels.
    num_classes : int
    temperature, soft_weight : float
        As in :func:`train_mlp`.
    mixup : float
        Beta parameter of mixup on the views; 0 = none.
    desc : str

    Returns
    -------
    MLP
        In eval mode.
    """
    if mixup > 0 and y is not None and soft_weight < 1.0:
        raise ValueError("mixup views have no single hard label: use soft_weight=1 or y=None")
    if y is None:
        soft_weight = 1.0
    seed_everything(derive_seed(seed, "init"))
    model = MLP(x.shape[1], cfg.hidden, num_classes)
    gen = torch.Generator().manual_seed(derive_seed(seed, "batches"))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(x)
    total = max(1, cfg.epochs * ((n + cfg.batch_size - 1) // cfg.batch_size))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 - step / total)
    teacher.eval()
    model.train()
    for _ in progress(range(cfg.epochs), desc=desc, unit="epoch", leave=False, log_lines=True):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            view = mix_views(jitter_images(x[idx], image_shape, jitter, gen), mixup, gen)
            with torch.no_grad():
                targets = teacher(view)
            loss = distillation_loss(model(view), targets,
                                     None if soft_weight >= 1.0 else y[idx],
                                     temperature, soft_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return model
