"""The interleaved sampler of MIDMs: matching and DDIM denoising in turns, then a stochastic refinement.

MIDMs (Seo et al., AAAI 2023; https://github.com/cvlab-kaist/MIDMs: ``models/midms.py`` ``forward`` in
``e2e_recurrent`` mode, ``models/diffusion/ddim.py`` ``one_step_sample`` / ``sample``) at inference:

1. the warped exemplar latent is noised (``q_sample``) to the grid timestep one step above the first
   interleaved step: on the 16-step grid (``range(0, 1000, 62) + 1``, 17 entries, 993 … 1) that is t = 311;
2. ``ddim_steps // 4`` deterministic DDIM steps (eta = 0) with the UNet at t = 249, 187, 125, 63;
3. before the 2nd and 3rd of them the current x0 prediction is re-matched to the exemplar; confident
   positions (cycle check) take the re-warped latent, from which the DDIM state is rebuilt as
   ``x_prev = sqrt(alpha_prev) * x0_new + dir_xt`` (the official ``ddim_param``; without a re-match the same
   expression gives the state back unchanged);
4. refinement: the x0 prediction is noised to t = 101 on the 200-step grid (``hijack_step=180``) and
   denoised by the 20 remaining DDIM steps with eta = 1 (t = 96 … 1); the last x0 prediction is decoded.

That is 4 + 20 = 24 UNet evaluations per image. Models and schedulers stay separate (diffusers style): the
schedule and the DDIM update are :class:`~.schedule.LDMSchedule`'s, the CompVis arithmetic (its
``prev_timestep = t - T // n`` is the CompVis grid of :func:`official_grid` for every step used here).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from midms.models.midms.matching import blend
from midms.models.midms.schedule import DDIMUpdate, LDMSchedule

log = logging.getLogger(__name__)

#: ``rematch(x0, step_index) -> (x0_rewarped, confidence mask or None)``
Rematch = Callable[[Tensor, int], tuple[Tensor, Tensor | None]]
#: ``eps(x_t, t) -> predicted noise``
EpsFn = Callable[[Tensor, int], Tensor]


def official_grid(num_steps: int, num_train_timesteps: int = 1000) -> list[int]:
    """The CompVis 'uniform' DDIM grid, descending: ``range(0, T, T // n) + 1`` reversed (may hold n + 1 steps)."""
    if not 1 <= num_steps <= num_train_timesteps:
        raise ValueError(f"ddim_steps must be in [1, {num_train_timesteps}], got {num_steps}")
    return [t + 1 for t in range(0, num_train_timesteps, num_train_timesteps // num_steps)][::-1]


@dataclass(frozen=True)
class InterleaveSchedule:
    """Which timesteps the sampler visits.

    Args:
        ddim_steps: size of the DDIM grid of the interleaved phase (official inference: 16).
        interleave_steps: UNet steps taken on that grid, from position ``ddim_steps - ddim_steps // 4`` on
            (official: ``ddim_steps // 4``; ``None`` means that).
        rematch_at: indices of the interleaved steps before which the x0 prediction is re-matched
            (official: 1 and 2; ``()`` matches once and then only denoises).
        confidence: blend re-warped latents with the cycle-consistency mask (``False``: re-warp everywhere).
        refine: run the final stochastic refinement.
        refine_grid / refine_start / refine_eta: the refinement's grid size, start index (official
            ``hijack_step=180`` on the 200-step grid: noise to t = 101, then 20 steps) and eta.
    """

    ddim_steps: int = 16
    interleave_steps: int | None = None
    rematch_at: Sequence[int] = field(default=(1, 2))
    confidence: bool = True
    refine: bool = True
    refine_grid: int = 200
    refine_start: int = 180
    refine_eta: float = 1.0
    num_train_timesteps: int = 1000

    @property
    def grid(self) -> list[int]:
        return official_grid(self.ddim_steps, self.num_train_timesteps)

    @property
    def positions(self) -> list[int]:
        start = self.ddim_steps - self.ddim_steps // 4
        k = self.ddim_steps // 4 if self.interleave_steps is None else self.interleave_steps
        if start < 1 or k < 1 or start + k > len(self.grid):
            raise ValueError(
                f"interleave_steps={k} does not fit the {self.ddim_steps}-step grid from position {start} "
                f"({len(self.grid)} timesteps); use at most {len(self.grid) - start}"
            )
        return list(range(start, start + k))

    @property
    def noise_timestep(self) -> int:
        return self.grid[self.positions[0] - 1]

    @property
    def unet_timesteps(self) -> list[int]:
        return [self.grid[i] for i in self.positions]

    @property
    def refine_noise_timestep(self) -> int:
        return official_grid(self.refine_grid, self.num_train_timesteps)[self.refine_start - 1]

    @property
    def refine_timesteps(self) -> list[int]:
        return official_grid(self.refine_grid, self.num_train_timesteps)[self.refine_start :]


def _noise(like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


def add_noise(scheduler: LDMSchedule, x0: Tensor, t: int, generator: torch.Generator | None = None) -> Tensor:
    """``q_sample``: sqrt(a_t) x0 + sqrt(1 - a_t) noise."""
    t_vec = torch.full((x0.shape[0],), t, dtype=torch.long)
    return scheduler.add_noise(x0, _noise(x0, generator), t_vec)


def ddim_update(scheduler: LDMSchedule, eps: Tensor, t: int, x: Tensor, eta: float = 0.0, generator=None) -> DDIMUpdate:
    """One DDIM update from ``t`` to ``t - T // n`` (n = the scheduler's ``num_inference_steps``), with its parts."""
    return scheduler.update(eps, t, x, eta, _noise(x, generator) if eta > 0 else None)


def ddim_step(
    scheduler: LDMSchedule, eps: Tensor, t: int, x: Tensor, eta: float = 0.0, generator=None
) -> tuple[Tensor, Tensor]:
    """One DDIM update from ``t`` to ``t - T // n``: (x_prev, x0)."""
    out = ddim_update(scheduler, eps, t, x, eta, generator)
    return out.prev_sample, out.pred_original_sample


def reinject(update: DDIMUpdate, x0_new: Tensor) -> Tensor:
    """The eta = 0 DDIM state of ``update`` rebuilt around another x0: ``sqrt(alpha_prev) x0_new + dir``."""
    return update.sqrt_alpha_prev * x0_new + update.direction


class InterleavedSampler:
    """Runs :class:`InterleaveSchedule` with a UNet (``eps``), a ``rematch`` callback and two DDIM schedulers."""

    def __init__(self, schedule: InterleaveSchedule, scheduler: LDMSchedule, refine_scheduler: LDMSchedule):
        self.schedule = schedule
        self.scheduler, self.refine_scheduler = scheduler, refine_scheduler
        self.scheduler.set_timesteps(schedule.ddim_steps)
        self.refine_scheduler.set_timesteps(schedule.refine_grid)

    def interleave(
        self, x0: Tensor, eps: EpsFn, rematch: Rematch | None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Steps 1-3: noise the warped latent x0 (B×c×h×w), denoise with re-matching; returns the last x0."""
        s = self.schedule
        x = add_noise(self.scheduler, x0, s.noise_timestep, generator)
        x0_pred, update = x0, None
        for i, t in enumerate(s.unet_timesteps):
            if update is not None and rematch is not None and i in s.rematch_at:
                x0_new, mask = rematch(x0_pred, i)
                x = reinject(update, blend(x0_new, x0_pred, mask if s.confidence else None))
            update = ddim_update(self.scheduler, eps(x, t), t, x, eta=0.0)
            x, x0_pred = update.prev_sample, update.pred_original_sample
        return x0_pred

    def refine(self, x0: Tensor, eps: EpsFn, generator: torch.Generator | None = None) -> Tensor:
        """Step 4: noise to the refinement start and run the remaining stochastic DDIM steps; returns x0."""
        s = self.schedule
        x = add_noise(self.refine_scheduler, x0, s.refine_noise_timestep, generator)
        for t in s.refine_timesteps:
            x, x0 = ddim_step(self.refine_scheduler, eps(x, t), t, x, eta=s.refine_eta, generator=generator)
        return x0

    def __call__(self, x0: Tensor, eps: EpsFn, rematch: Rematch | None, generator=None) -> Tensor:
        x0 = self.interleave(x0, eps, rematch, generator)
        return self.refine(x0, eps, generator) if self.schedule.refine else x0
