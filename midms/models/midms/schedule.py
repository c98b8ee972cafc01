"""The LDM's noise schedule and its DDIM update, with the coefficients the CompVis code computes.

Rombach et al., CVPR 2022 (https://github.com/CompVis/latent-diffusion; vendored by cvlab-kaist/MIDMs as
``models/diffusion/ddpm.py`` ``register_schedule``, ``models/diffusionmodules/util.py`` ``make_beta_schedule`` /
``make_ddim_sampling_parameters`` and ``models/diffusion/ddim.py`` ``p_sample_ddim``):

- betas linear in sqrt space (``linear_start`` 0.0015 to ``linear_end`` 0.0195 over T = 1000 for both MIDMs LDMs),
  ``alphas_cumprod`` their cumulative product, all in float64 and stored as float32, as are ``sqrt(a)`` and
  ``sqrt(1 - a)`` for ``q_sample``;
- the DDIM grid of n steps ``range(0, T, T // n) + 1``; at grid timestep t the previous one is ``t - T // n``, and
  the first step's ``alpha_prev`` is ``alphas_cumprod[0]``; ``sigma = eta * sqrt((1 - a_prev) / (1 - a) * (1 - a /
  a_prev))`` in float64;
- the update ``x0 = (x - sqrt(1 - a) eps) / sqrt(a)``, ``dir = sqrt(1 - a_prev - sigma^2) eps``,
  ``x_prev = sqrt(a_prev) x0 + dir + sigma noise``.

diffusers' :class:`~diffusers.DDIMScheduler` computes the same schedule in float32 (``alphas_cumprod`` differs by
up to 1e-6 relative) and the same update in another order; MIDMs re-matches its latents with a softmax at
temperature 0.005, which makes such differences visible, so the LDM's own arithmetic is kept here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import Tensor

#: the LDM schedule's settings this module implements, as diffusers' DDIMScheduler names them
SUPPORTED = {"beta_schedule": "scaled_linear", "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1,
             "prediction_type": "epsilon"}  # fmt: skip


@dataclass
class DDIMUpdate:
    """One DDIM step's parts: the next state, the x0 prediction, and ``sqrt(a_prev)`` and ``dir`` (the official
    ``ddim_param``, from which the state is rebuilt around another x0)."""

    prev_sample: Tensor
    pred_original_sample: Tensor
    sqrt_alpha_prev: Tensor
    direction: Tensor


class LDMSchedule:
    """The LDM noise schedule (``num_train_timesteps``, ``beta_start``, ``beta_end``) and its DDIM update."""

    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.0015, beta_end: float = 0.0195,
                 **settings: Any) -> None:  # fmt: skip
        wrong = {k: v for k, v in settings.items() if k in SUPPORTED and v != SUPPORTED[k]}
        unknown = set(settings) - set(SUPPORTED)
        if wrong or unknown:
            raise ValueError(f"the LDM schedule supports {SUPPORTED}; got {wrong or sorted(unknown)}")
        self.config = SimpleNamespace(num_train_timesteps=num_train_timesteps, beta_start=beta_start,
                                      beta_end=beta_end, **SUPPORTED)  # fmt: skip
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float64).numpy() ** 2
        cumprod = np.cumprod(1.0 - betas, axis=0)  # float64, as make_beta_schedule / register_schedule
        self.alphas_cumprod = torch.tensor(cumprod, dtype=torch.float32)
        self.sqrt_alphas_cumprod = torch.tensor(np.sqrt(cumprod), dtype=torch.float32)
        self.sqrt_one_minus_alphas_cumprod = torch.tensor(np.sqrt(1.0 - cumprod), dtype=torch.float32)
        self.num_inference_steps: int | None = None

    def set_timesteps(self, num_inference_steps: int) -> None:
        self.num_inference_steps = int(num_inference_steps)

    def prev_timestep(self, t: int) -> int:
        if not self.num_inference_steps:
            raise RuntimeError("set_timesteps(n) first: the DDIM grid decides the previous timestep")
        return t - self.config.num_train_timesteps // self.num_inference_steps

    def alpha_prev(self, t: int) -> Tensor:
        prev = self.prev_timestep(t)
        return self.alphas_cumprod[prev if prev >= 0 else 0]

    def sigma(self, t: int, eta: float) -> Tensor:
        """``eta * sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))`` in float64, stored as float32. The original
        divides a float64 numpy array by a float32 tensor, which torch computes as the float32 reciprocal of
        ``1 - a`` times the array: so here (equal to the last bit on both grids MIDMs uses)."""
        a, a_prev = self.alphas_cumprod[t], self.alpha_prev(t).double()
        inv_one_minus_a = (1 / (1 - a)).double()
        return (eta * torch.sqrt((1 - a_prev) * inv_one_minus_a * (1 - a.double() / a_prev))).float()

    def add_noise(self, x0: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
        """``q_sample``: ``sqrt(a_t) x0 + sqrt(1 - a_t) noise`` for a B-vector of timesteps."""
        t = timesteps.cpu().long()
        shape = (-1,) + (1,) * (x0.dim() - 1)
        a = self.sqrt_alphas_cumprod[t].view(shape).to(x0)
        s = self.sqrt_one_minus_alphas_cumprod[t].view(shape).to(x0)
        return a * x0 + s * noise

    def update(self, eps: Tensor, t: int, x: Tensor, eta: float = 0.0, noise: Tensor | None = None) -> DDIMUpdate:
        """``p_sample_ddim`` at grid timestep ``t`` (``noise`` is required when ``eta > 0``)."""
        a_t = self.alphas_cumprod[t].to(x)
        a_prev = self.alpha_prev(t).to(x)
        sigma = self.sigma(t, eta).to(x)
        x0 = (x - (1.0 - a_t).sqrt() * eps) / a_t.sqrt()
        direction = (1.0 - a_prev - sigma**2).sqrt() * eps
        prev = a_prev.sqrt() * x0 + direction
        if eta > 0:
            if noise is None:
                raise ValueError("a stochastic DDIM step (eta > 0) needs its noise")
            prev = prev + sigma * noise
        return DDIMUpdate(prev, x0, a_prev.sqrt(), direction)


def make_schedule(settings: Mapping[str, Any] | None = None) -> LDMSchedule:
    return LDMSchedule(**dict(settings or {}))
