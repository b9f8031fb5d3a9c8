"""One optimiser of sigma per preset, behind one small protocol.

An optimiser owns the iterate ``theta`` (``(K, B, g, g)``, one unit per checkpoint and
image), the entropy weight ``lambda_H`` of each unit, and the state of its step rule. The
engine asks it for ``sigma`` (differentiable), lets autograd fill ``theta.grad``, and calls
:meth:`SigmaOptimizer.step`, which moves the active units and applies the stopping test.
:meth:`SigmaOptimizer.kept` returns the sigma that is reported.

* :class:`SGDClamp` — the original (``"reference"`` preset): plain SGD on raw sigma,
  clamped every step, the lambda rule after step 59, the iterate closest to the target
  entropy.
* :class:`NewtonLog` — the ``"default"`` preset: log sigma starts at the closed form of the
  linearised objective (per-cell sensitivities from a few vector-Jacobian products), then
  takes stochastic Newton steps on the true objective with a ``1 / (t + 1 + w)`` step (a
  running average of the Newton targets in which the start counts ``w`` steps,
  Robbins-Monro), until the estimated standard error of log sigma is small enough
  (250 sample-passes on a wide feature, more on a narrow one).
* :class:`AdamLog` — the ``"adam"`` preset (the previous default): Adam on log sigma with
  a learning rate per unit that decays on a plateau, a convergence stop and an average of
  the last iterates.
"""

from __future__ import annotations

import math

import torch

from kdexplain.quantification.result import sigma_to_entropy
from kdexplain.quantification.settings import QuantifySettings

__all__ = ["AdamLog", "NewtonLog", "SGDClamp", "SigmaOptimizer", "Traces", "build_optimizer",
           "closed_form_log_sigma"]


class Traces:
    """Per-step records: objective, ``D/D0`` and mean entropy per unit ``(T, K, B)`` (CPU)."""

    def __init__(self, steps: int, K: int, B: int, grid: int, keep_sigma: bool,
                 keep_noise: bool = False) -> None:
        self.loss = torch.full((steps, K, B), float("nan"))
        self.distortion = torch.full((steps, K, B), float("nan"))
        self.entropy = torch.full((steps, K, B), float("nan"))
        self.steps_run = torch.zeros(K, B, dtype=torch.long)
        self.sigma = torch.empty((steps, K, B, grid, grid)) if keep_sigma else None
        #: per recorded iterate, the variance its sampled steps gave each cell's sigma
        self.path_var = torch.empty((steps, K, B, grid, grid)) if keep_noise else None

    @torch.no_grad()
    def record(self, t: int, active: torch.Tensor, dist: torch.Tensor, lam: torch.Tensor,
               mean_h: torch.Tensor) -> None:
        """Record step t for the active units (NaN for the others)."""
        a = active.cpu()
        self.loss[t] = torch.where(a, (dist - lam * mean_h).cpu(), torch.nan)
        self.distortion[t] = torch.where(a, dist.cpu(), torch.nan)
        self.entropy[t] = torch.where(a, mean_h.cpu(), torch.nan)
        self.steps_run += a.long()


class SigmaOptimizer:
    """The protocol, and what both optimisers share (the lambda rule, the kept iterate).

    Parameters
    ----------
    settings : QuantifySettings
        Resolved; ``entropy_weight`` is set.
    shape : (K, B, g, g)
    device : torch.device
    """

    def __init__(self, settings: QuantifySettings, shape: tuple[int, int, int, int],
                 device: torch.device) -> None:
        self.s = settings
        self.lam = torch.full(shape[:2], float(settings.entropy_weight), device=device)
        self.theta = torch.full(shape, self.to_theta(settings.sigma_init), device=device,
                                requires_grad=True)
        #: The standard error that the estimate of D0 gives every log sigma (K, B).
        self.d0_log_se = torch.zeros(shape[:2], device=device)

    #: Whether :meth:`start` wants the per-cell sensitivities (a closed-form start).
    needs_sensitivity = False
    #: Whether the engine passes each step's gradient noise to :meth:`record_noise`.
    tracks_noise = False

    def record_noise(self, t: int, g1: torch.Tensor, g2: torch.Tensor, S: int,
                     active: torch.Tensor, traces: Traces) -> None:
        """Step t's per-sample gradients in the cells' sigma: their sum ``g1`` and sum of
        squares ``g2`` over the ``S`` samples, ``(K, B, g, g)``."""

    def to_theta(self, sigma: float) -> float:
        """The parameter of a sigma value."""
        raise NotImplementedError

    def start(self, log_sigma: torch.Tensor) -> None:
        """Start from ``log_sigma`` ``(K, B, g, g)`` instead of ``sigma_init``."""
        raise NotImplementedError

    def sigma(self) -> torch.Tensor:
        """The current sigma ``(K, B, g, g)``, differentiable in ``theta``."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Before a step's forward passes (the original clamps here)."""

    def zero_grad(self) -> None:
        if self.theta.grad is not None:
            self.theta.grad.zero_()

    def _move(self) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, t: int, active: torch.Tensor, traces: Traces) -> torch.Tensor:
        """Move the active units one step; return the units still active after the test."""
        if not torch.isfinite(self.theta.grad).all():
            raise FloatingPointError(
                "non-finite gradient of sigma: the model's feature is not finite under "
                "noise; check the inputs' scale or lower sigma_init")
        before = self.theta.detach().clone()
        self._move()
        self.theta[~active] = before[~active]  # stopped units do not move
        active = self._after_move(t, active)
        active = self._past_target(t, active, traces)
        return self._lambda_rule(t, active, traces)

    def _past_target(self, t: int, active: torch.Tensor, traces: Traces) -> torch.Tensor:
        """``stop_past_target``: stop the units whose iterate t (recorded before this step)
        has a mean entropy above the target; no later iterate of a rising path is kept."""
        s = self.s
        if not s.stop_past_target or s.target_entropy is None:
            return active
        return active & ~(traces.entropy[t].to(active.device) > s.target_entropy)

    def _after_move(self, t: int, active: torch.Tensor) -> torch.Tensor:
        return active

    def _lambda_rule(self, t: int, active: torch.Tensor, traces: Traces) -> torch.Tensor:
        """The original's rule: at ``entropy_weight_step``, stop or raise lambda_H."""
        s = self.s
        if s.entropy_weight_step is None or t != s.entropy_weight_step:
            return active
        ent = traces.entropy[: t + 1].nan_to_num(-float("inf")).amax(0).to(active.device)
        reached = ent > s.target_entropy
        self.lam = torch.where(active & ~reached, self.lam * s.entropy_weight_factor, self.lam)
        return active & ~reached

    @torch.no_grad()
    def kept(self, traces: Traces) -> tuple[torch.Tensor, torch.Tensor]:
        """The reported sigma ``(K, B, g, g)`` (CPU) and the step it comes from ``(K, B)``."""
        if self.s.target_entropy is not None:
            # the iterate whose mean entropy is closest to the target (first on ties)
            dev = (traces.entropy - self.s.target_entropy).abs().nan_to_num(float("inf"))
            selected = dev.argmin(0)  # (K, B)
            idx = selected[None, ..., None, None].expand(1, *traces.sigma.shape[1:])
            return torch.gather(traces.sigma, 0, idx)[0], selected
        return self._final(traces), (traces.steps_run - 1).clamp(min=0)

    def _final(self, traces: Traces) -> torch.Tensor:
        raise NotImplementedError

    def log_sigma_se(self) -> torch.Tensor:
        """The estimated standard error of the kept log sigma per cell ``(K, B, g, g)``
        (CPU); NaN where the optimiser does not estimate it."""
        return torch.full(self.theta.shape, float("nan"))


class SGDClamp(SigmaOptimizer):
    """Plain SGD on raw sigma, clamped to ``settings.clamp`` before every step (original)."""

    #: The path's sampling noise, propagated along the path to first order: a step adds
    #: ``lr^2`` times the variance of its mean gradient to each cell's sigma, and shrinks
    #: what the earlier steps left by ``(1 - lr h)^2``, ``h`` the objective's curvature in
    #: the cell's sigma (the entropy term's ``lambda_H / (n sigma^2)`` exactly, the
    #: distortion's as that of a quadratic, its mean gradient over sigma): a path pulled
    #: off course is pulled back. D0's error, which moves every cell's path alike, is left
    #: out. :meth:`log_sigma_se` gives its standard error over sigma.
    tracks_noise = True

    def __init__(self, settings: QuantifySettings, shape: tuple[int, int, int, int],
                 device: torch.device) -> None:
        super().__init__(settings, shape, device)
        self.lo, self.hi = settings.clamp
        self.opt = torch.optim.SGD([self.theta], lr=settings.lr)
        self.path_var = torch.zeros(shape, device=device)
        self._kept_se: torch.Tensor | None = None

    @torch.no_grad()
    def record_noise(self, t: int, g1: torch.Tensor, g2: torch.Tensor, S: int,
                     active: torch.Tensor, traces: Traces) -> None:
        if traces.path_var is not None:  # what the iterate recorded at step t carries
            traces.path_var[t] = self.path_var.cpu()
        if S > 1:
            var = ((g2 - g1 * g1 / S) / (S - 1)).clamp(min=0) / S  # of the step's mean
        else:
            var = torch.full_like(g1, float("nan"))
        sigma = self.theta.detach()
        n = sigma.shape[-1] * sigma.shape[-2]
        curvature = (g1 / S).clamp(min=0) / sigma + self.lam[..., None, None] / (n * sigma**2)
        moved = (1 - self.s.lr * curvature) ** 2 * self.path_var + self.s.lr ** 2 * var
        self.path_var = torch.where(active[..., None, None], moved, self.path_var)

    @torch.no_grad()
    def kept(self, traces: Traces) -> tuple[torch.Tensor, torch.Tensor]:
        sigma, selected = super().kept(traces)
        if traces.path_var is not None:
            idx = selected[None, ..., None, None].expand(1, *traces.path_var.shape[1:])
            var = torch.gather(traces.path_var, 0, idx)[0]
        else:
            var = self.path_var.cpu()
        self._kept_se = var.sqrt() / sigma.clamp(min=1e-30)
        return sigma, selected

    def log_sigma_se(self) -> torch.Tensor:
        """The standard error of each cell's kept log sigma from the path's sampling noise
        (``(K, B, g, g)``, CPU; see :attr:`tracks_noise`)."""
        if self._kept_se is None:
            return super().log_sigma_se()
        return self._kept_se.clone()

    def to_theta(self, sigma: float) -> float:
        return sigma

    def sigma(self) -> torch.Tensor:
        return self.theta

    @torch.no_grad()
    def prepare(self) -> None:
        self.theta.clamp_(self.lo, self.hi)

    def _move(self) -> None:
        self.opt.step()

    def _final(self, traces: Traces) -> torch.Tensor:
        return self.theta.detach().clamp(self.lo, self.hi).cpu()


class AdamLog(SigmaOptimizer):
    """Adam on log sigma, a learning rate per unit, a plateau decay and a convergence stop.

    The returned sigma is the average of log sigma over the last ``patience`` iterates,
    which removes most of the noise of a stochastic optimiser.
    """

    def __init__(self, settings: QuantifySettings, shape: tuple[int, int, int, int],
                 device: torch.device) -> None:
        super().__init__(settings, shape, device)
        self.lo, self.hi = math.log(settings.clamp[0]), math.log(settings.clamp[1])
        self.adam = _UnitAdam(self.theta, settings.lr)
        self.window = max(1, settings.patience)
        self.recent = torch.zeros((self.window, *shape), device=device)
        self.prev_mean = torch.full(shape, math.log(settings.sigma_init), device=device)

    def to_theta(self, sigma: float) -> float:
        return math.log(sigma)

    def sigma(self) -> torch.Tensor:
        return self.theta.exp()

    def _move(self) -> None:
        self.adam.step()

    def _after_move(self, t: int, active: torch.Tensor) -> torch.Tensor:
        s, w = self.s, self.window
        self.theta.clamp_(self.lo, self.hi)
        self.recent[t % w] = torch.where(active[..., None, None], self.theta, self.recent[t % w])
        if (t + 1) % w:
            return active
        # plateau test once per window; all active units have run t+1 steps
        cur_mean = self.recent.mean(0)
        drift = (cur_mean - self.prev_mean).abs().flatten(2).mean(2)
        flat = active & (t + 1 >= 2 * w) & (drift < s.plateau * w * self.adam.unit_lr)
        self.prev_mean = torch.where(active[..., None, None], cur_mean, self.prev_mean)
        self.adam.unit_lr = torch.where(flat, self.adam.unit_lr * s.lr_decay, self.adam.unit_lr)
        return active & ~(self.adam.unit_lr < s.min_lr_factor * s.lr * (1 - 1e-6))

    def _final(self, traces: Traces) -> torch.Tensor:
        dev, w = self.theta.device, self.window
        steps_run = traces.steps_run.to(dev)
        n_avg = torch.clamp(steps_run, max=w)
        # average of the last min(steps, window) iterates
        order = torch.arange(w, device=dev)[:, None, None]
        pos = (steps_run - 1) % w  # slot of the newest iterate
        age = (pos[None] - order) % w  # 0 = newest
        use = (age < n_avg[None]).float()[..., None, None]
        mean_log = (self.recent * use).sum(0) / use.sum(0).clamp(min=1)
        never = steps_run == 0
        mean_log[never] = self.theta.detach()[never]
        return mean_log.exp().cpu()


class NewtonLog(SigmaOptimizer):
    """Stochastic Newton steps on log sigma from the closed form of the linearised objective.

    Near the optimum the distortion grows like ``sigma_i^2`` in each cell, so the objective's
    curvature in ``theta_i = log sigma_i`` is ``2 lambda_H / n`` (n cells) and a Newton step
    is ``-n g_i / (2 lambda_H)`` for the gradient ``g_i``. Step t is scaled by
    ``1 / (t + 1 + w)`` (``w = start_weight``): the iterate is then the running average of
    the Newton targets and the start (weighted w), which averages the noise of the sampled
    gradients away (the variance falls like ``1 / (t S)``). A step is
    clipped to ``[-1, 1]`` in log sigma. The start (:meth:`start`) comes from the per-cell
    sensitivities (:func:`closed_form_log_sigma`); without it, ``sigma_init``.

    Precision (the sampling noise of the targets and of ``D0``): near the optimum every
    Newton target ``theta - delta`` is the optimum plus
    sampling noise, so their variance over a unit's steps (per cell) estimates that noise,
    and the iterate, the start (weight w) and T targets averaged, has the standard error
    ``sqrt(T var) / (T + w)``; ``D0``'s relative error ``r`` adds ``r / 2`` to every cell
    (``sigma`` scales with ``sqrt(D0)``), in quadrature (:meth:`log_sigma_se`). With ``settings.precision`` a unit
    stops, after ``min_steps``, once the median of it over its cells is at most
    ``precision``: a wide feature (many outputs average the noise) stops early, a narrow one
    (a classifier's logits) takes the steps it needs, up to ``steps``. Early targets
    from a start far from the optimum also vary, which errs on the side of more steps.
    """

    needs_sensitivity = True

    def __init__(self, settings: QuantifySettings, shape: tuple[int, int, int, int],
                 device: torch.device) -> None:
        super().__init__(settings, shape, device)
        self.lo, self.hi = math.log(settings.clamp[0]), math.log(settings.clamp[1])
        self.cells = shape[-1] * shape[-2]
        self.t = 0
        # Welford's running mean and sum of squares of each cell's Newton targets
        self.count = torch.zeros(shape[:2], device=device)
        self.target_mean = torch.zeros(shape, device=device)
        self.target_m2 = torch.zeros(shape, device=device)
        self._target: torch.Tensor | None = None

    def to_theta(self, sigma: float) -> float:
        return math.log(sigma)

    @torch.no_grad()
    def start(self, log_sigma: torch.Tensor) -> None:
        self.theta.copy_(log_sigma.clamp(self.lo, self.hi))

    def sigma(self) -> torch.Tensor:
        return self.theta.exp()

    def _move(self) -> None:
        newton = (self.cells * self.theta.grad / (2 * self.lam[..., None, None])).clamp(-1, 1)
        self._target = self.theta.detach() - newton
        self.theta.sub_(newton / (self.t + 1 + self.s.start_weight))
        self.theta.clamp_(self.lo, self.hi)
        self.t += 1

    def _after_move(self, t: int, active: torch.Tensor) -> torch.Tensor:
        a = active.float()
        self.count += a
        delta = (self._target - self.target_mean) * a[..., None, None]
        self.target_mean += delta / self.count.clamp(min=1)[..., None, None]
        self.target_m2 += delta * (self._target - self.target_mean)
        s = self.s
        if s.precision is None or t + 1 < min(s.min_steps, s.steps):
            return active
        done = self._se().flatten(2).median(2).values <= s.precision
        return active & ~done

    def _se(self) -> torch.Tensor:
        """``sqrt(T var) / (T + w)`` per cell with D0's share added in quadrature, on the
        device; inf before two targets."""
        n = self.count[..., None, None]
        var = self.target_m2 / (n - 1).clamp(min=1)
        se2 = n * var / (n + self.s.start_weight) ** 2 + self.d0_log_se[..., None, None] ** 2
        return torch.where(n >= 2, se2.sqrt(), torch.inf)

    def log_sigma_se(self) -> torch.Tensor:
        return self._se().nan_to_num(nan=float("nan"), posinf=float("nan")).cpu()

    def _final(self, traces: Traces) -> torch.Tensor:
        return self.theta.detach().cpu().exp()


def closed_form_log_sigma(sensitivity: torch.Tensor, d0: torch.Tensor, lam: torch.Tensor,
                          dim: int) -> torch.Tensor:
    """log sigma at the optimum of the linearised objective (docs/method.md section 3).

    With ``D(sigma) = (1/dim) sum_i sigma_i^2 c_i`` the optimum of
    ``D / D0 - lambda_H mean_i H_i`` is ``sigma_i^2 = lambda_H D0 dim / (2 n c_i)``.

    Parameters
    ----------
    sensitivity : Tensor (K, B, g, g)
        ``c_i``: the squared norm of the feature's Jacobian over cell i's pixels.
    d0 : Tensor (K, B)
    lam : Tensor (K, B)
        ``lambda_H`` per unit.
    dim : int
        Elements of the feature.
    """
    n = sensitivity.shape[-1] * sensitivity.shape[-2]
    ratio = (lam * d0)[..., None, None] * dim / (2 * n * sensitivity.clamp(min=1e-30))
    return 0.5 * ratio.log()


class _UnitAdam:
    """Adam on a (K, B, g, g) tensor with a learning rate per (checkpoint, image) unit."""

    def __init__(self, param: torch.Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.99),
                 eps: float = 1e-8) -> None:
        self.param = param
        self.unit_lr = torch.full(param.shape[:2], float(lr), device=param.device)
        self.b1, self.b2 = betas
        self.eps = eps
        self.m = torch.zeros_like(param)
        self.v = torch.zeros_like(param)
        self.t = 0

    @torch.no_grad()
    def step(self) -> None:
        g = self.param.grad
        self.t += 1
        self.m.mul_(self.b1).add_(g, alpha=1 - self.b1)
        self.v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
        m_hat = self.m / (1 - self.b1 ** self.t)
        v_hat = self.v / (1 - self.b2 ** self.t)
        self.param.sub_(self.unit_lr[..., None, None] * m_hat / (v_hat.sqrt() + self.eps))


OPTIMIZERS: dict[str, type[SigmaOptimizer]] = {"sgd_clamp": SGDClamp, "adam_log": AdamLog,
                                                "newton_log": NewtonLog}


def build_optimizer(settings: QuantifySettings, shape: tuple[int, int, int, int],
                    device: torch.device) -> SigmaOptimizer:
    """The optimiser named by ``settings.optimizer``."""
    return OPTIMIZERS[settings.optimizer](settings, shape, device)


def mean_entropy(sigma: torch.Tensor) -> torch.Tensor:
    """Mean over cells of ``H_i``: ``(K, B, g, g) -> (K, B)``."""
    return sigma_to_entropy(sigma).flatten(2).mean(2)
