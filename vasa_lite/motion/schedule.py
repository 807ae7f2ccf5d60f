"""The noise schedule and the samplers, apart from the network (as in diffusers' DDPMScheduler / DDIMScheduler).

Forward process: q(X_t | X_0) = N(sqrt(abar_t) X_0, (1 - abar_t) I), t = 0 .. T-1, with abar_t the cumulative
product of alpha_t = 1 - beta_t (`NoiseSchedule.q_sample`).

The network predicts x0 (VASA-1: "the clean signal, not the noise"), so both samplers take a callable
`x0_fn(x_t, t) -> x0_hat` and step with it:

- `DDPMSampler`: ancestral sampling over `steps` of the T training timesteps ("respacing", Nichol & Dhariwal
  2021). Between two kept timesteps t > s the step is the x0-parameterised posterior
  q(X_s | X_t, X_0 = x0_hat) = N(c0 x0_hat + ct X_t, var), with beta' = 1 - abar_t / abar_s,
  c0 = sqrt(abar_s) beta' / (1 - abar_t), ct = sqrt(1 - beta') (1 - abar_s) / (1 - abar_t),
  var = beta' (1 - abar_s) / (1 - abar_t). The paper samples with 50 steps.
- `DDIMSampler`: the deterministic DDIM update (Song et al. 2021, eta = 0), usually with fewer steps:
  eps_hat = (X_t - sqrt(abar_t) x0_hat) / sqrt(1 - abar_t), X_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s) eps_hat.

The last step of either goes to abar = 1 (no noise), where both updates return x0_hat itself.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from vasa_lite.errors import InputError

SCHEDULES = ("cosine", "linear")


class NoiseSchedule:
    """betas, alphas and alphas_cumprod (abar) of T training timesteps, and q_sample.

    kind "cosine": abar_t = f(t + 1) / f(0) with f(t) = cos(((t / T) + s) / (1 + s) * pi / 2)^2, s = 0.008, betas
    clipped at 0.999 (improved DDPM). "linear": betas from 1e-4 to 0.02 scaled to T (the original DDPM)."""

    def __init__(self, steps: int = 1000, kind: str = "cosine"):
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
            raise InputError(f"diffusion steps must be an integer >= 2, got {steps!r}")
        if kind not in SCHEDULES:
            raise InputError(f"unknown noise schedule {kind!r}; choose one of: {', '.join(SCHEDULES)}")
        self.steps, self.kind = int(steps), kind
        n = self.steps
        if kind == "cosine":
            s = 0.008
            f = np.cos(((np.arange(n + 1) / n) + s) / (1 + s) * math.pi / 2) ** 2
            betas = np.clip(1 - f[1:] / f[:-1], 0, 0.999)
        else:
            scale = 1000 / n
            betas = np.linspace(scale * 1e-4, scale * 0.02, n)
        abar = np.cumprod(1 - betas)
        self.betas = torch.tensor(betas, dtype=torch.float32)
        self.alphas = 1 - self.betas
        self.alphas_cumprod = torch.tensor(abar, dtype=torch.float32)
        self._abar64 = abar                                   # float64 for the samplers' coefficients

    def abar(self, t: int) -> float:
        """abar_t as a Python float; t = -1 means "no noise" (1.0), the target of a sampler's last step."""
        return 1.0 if t < 0 else float(self._abar64[t])

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """X_t = sqrt(abar_t) X_0 + sqrt(1 - abar_t) noise, one t per batch row (x0 [B, ...], t [B])."""
        ab = self.alphas_cumprod.to(x0.device)[t].view(-1, *([1] * (x0.dim() - 1)))
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def sample_timesteps(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Training timesteps, uniform over 0 .. T-1."""
        return torch.randint(self.steps, (n,), generator=generator)


def respaced(schedule: NoiseSchedule, steps: int) -> list[int]:
    """`steps` of the training timesteps, evenly spaced from T-1 down to 0 (descending)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= schedule.steps:
        raise InputError(f"sampling steps must be an integer in [1, {schedule.steps}], got {steps!r}")
    ts = np.round(np.linspace(schedule.steps - 1, 0, int(steps))).astype(int)
    return [int(t) for t in ts]


class _Sampler:
    """Shared loop: start from pure noise at the first kept timestep, call x0_fn, step, repeat."""

    def __init__(self, schedule: NoiseSchedule, steps: int = 50):
        self.schedule = schedule
        self.timesteps = respaced(schedule, steps)

    def prev_timestep(self, i: int) -> int:
        return self.timesteps[i + 1] if i + 1 < len(self.timesteps) else -1

    def step(self, x0_hat: torch.Tensor, i: int, x_t: torch.Tensor, generator: "torch.Generator | None" = None
             ) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, x0_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], shape, generator: torch.Generator,
               device=None, noise: "torch.Tensor | None" = None) -> torch.Tensor:
        """Run the reverse process; returns the final x0. Noise is drawn on the CPU from `generator`, so a seed
        gives the same result on every device."""
        x = torch.randn(*shape, generator=generator) if noise is None else noise
        x = x.to(device or "cpu")
        for i, t in enumerate(self.timesteps):
            x0_hat = x0_fn(x, torch.full((shape[0],), t, dtype=torch.long, device=x.device))
            x = self.step(x0_hat, i, x, generator)
        return x


class DDPMSampler(_Sampler):
    """Ancestral DDPM sampling with the x0-parameterised posterior over respaced timesteps (default 50)."""

    def step(self, x0_hat, i, x_t, generator=None):
        t, s = self.timesteps[i], self.prev_timestep(i)
        ab_t, ab_s = self.schedule.abar(t), self.schedule.abar(s)
        beta = 1 - ab_t / ab_s                                   # the respaced step's beta'
        c0 = math.sqrt(ab_s) * beta / (1 - ab_t)
        ct = math.sqrt(1 - beta) * (1 - ab_s) / (1 - ab_t)
        mean = c0 * x0_hat + ct * x_t
        if s < 0:
            return mean                                          # abar_s = 1: c0 = 1, ct = 0, no noise
        var = beta * (1 - ab_s) / (1 - ab_t)
        z = torch.randn(x_t.shape, generator=generator).to(x_t.device)
        return mean + math.sqrt(var) * z


class DDIMSampler(_Sampler):
    """Deterministic DDIM (eta = 0): the same seed gives the same start noise and hence the same sample."""

    def step(self, x0_hat, i, x_t, generator=None):
        t, s = self.timesteps[i], self.prev_timestep(i)
        ab_t, ab_s = self.schedule.abar(t), self.schedule.abar(s)
        eps = (x_t - math.sqrt(ab_t) * x0_hat) / math.sqrt(1 - ab_t)
        return math.sqrt(ab_s) * x0_hat + math.sqrt(1 - ab_s) * eps


SAMPLERS = {"ddpm": DDPMSampler, "ddim": DDIMSampler}


def make_sampler(name: str, schedule: NoiseSchedule, steps: int) -> _Sampler:
    """A sampler by name ("ddpm" or "ddim"), or an InputError listing the names."""
    if name not in SAMPLERS:
        raise InputError(f"unknown sampler {name!r}; choose one of: {', '.join(SAMPLERS)}")
    return SAMPLERS[name](schedule, steps)


__all__ = ["NoiseSchedule", "DDPMSampler", "DDIMSampler", "SAMPLERS", "make_sampler", "respaced"]
