"""Noise schedule, sampler and classifier-free guidance (diffusers' schedulers; our defaults).

* Training: DDPM forward process, ``num_train_timesteps`` 1000, linear β 1e-4 … 0.02
  (``DDPMScheduler.add_noise``); the model predicts ε, v or x0 (``prediction_type``).
* Sampling: DDIM (``DDIMScheduler``, η = 0, "trailing" step spacing so few steps still start
  from pure noise; the last step lands on the clean x0 estimate, ``set_alpha_to_one``),
  default 25 steps.
* Guidance (convention: ``w = 1`` is no guidance, ``w = 0`` unconditional)::

      eps = eps_uncond + w * (eps_cond - eps_uncond)

* CLIP embeddings are L2-normalised in one place, :func:`l2_normalize` (clipsonic.md §7.3),
  called by the model on every condition it receives (training and inference) and by the prior.
"""

from typing import Callable, Dict, Optional

import torch
from diffusers import DDIMScheduler, DDPMScheduler


def l2_normalize(emb: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Unit-norm CLIP embeddings along the last axis (the project's only normalisation)."""
    return emb / emb.norm(dim=-1, keepdim=True).clamp(min=eps)


def cfg_combine(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance: ``eps_u + w (eps_c - eps_u)`` (w = 1: no guidance)."""
    return eps_uncond + guidance_scale * (eps_cond - eps_uncond)


def check_sampling_args(guidance_scale: float, num_steps: int, num_train_timesteps: int = 1000) -> None:
    """Clear errors for bad sampler settings."""
    if not guidance_scale >= 0:  # also catches NaN
        raise ValueError(f"guidance_scale must be >= 0 (1 = no guidance), got {guidance_scale}")
    if int(num_steps) != num_steps or num_steps < 1:
        raise ValueError(f"num_steps must be an integer >= 1, got {num_steps}")
    if num_steps > num_train_timesteps:
        raise ValueError(f"num_steps ({num_steps}) exceeds the training steps ({num_train_timesteps})")


def default_schedule_conf() -> Dict:
    """Our schedule defaults (recorded in every config)."""
    return dict(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)


def training_scheduler(schedule_conf: Dict, prediction_type: str = "epsilon") -> DDPMScheduler:
    """DDPM scheduler used for ``add_noise`` in training."""
    return DDPMScheduler(**schedule_conf, prediction_type=prediction_type, clip_sample=False)


def sampling_scheduler(schedule_conf: Dict, num_steps: int, prediction_type: str = "epsilon") -> DDIMScheduler:
    """A fresh DDIM scheduler set to ``num_steps`` steps."""
    sched = DDIMScheduler(**schedule_conf, prediction_type=prediction_type, clip_sample=False,
                          set_alpha_to_one=True, timestep_spacing="trailing")
    sched.set_timesteps(int(num_steps))
    return sched


def ddim_sample(
    denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    shape,
    schedule_conf: Dict,
    num_steps: int,
    generator: Optional[torch.Generator] = None,
    device: Optional[torch.device] = None,
    prediction_type: str = "epsilon",
    noise: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Run DDIM from Gaussian noise.

    Args:
        denoise: ``f(x_t, t) -> model output`` (t: (B,) long), guidance already applied.
        shape: Sample shape (B, ...).
        schedule_conf: Training schedule (see :func:`default_schedule_conf`).
        num_steps: Sampler steps.
        generator: CPU generator for the initial noise (determinism by seed).
        device: Where to sample.
        prediction_type: "epsilon", "v_prediction" or "sample" (what ``denoise`` returns).
        noise: The initial noise of shape ``shape`` (instead of drawing it from ``generator``).
    """
    sched = sampling_scheduler(schedule_conf, num_steps, prediction_type)
    if noise is not None and tuple(noise.shape) != tuple(shape):
        raise ValueError(f"noise has shape {tuple(noise.shape)}, expected {tuple(shape)}")
    x = (torch.randn(shape, generator=generator) if noise is None else noise).to(device)
    for t in sched.timesteps:
        tt = torch.full((shape[0],), int(t), device=device, dtype=torch.long)
        x = sched.step(denoise(x, tt), int(t), x, eta=0.0).prev_sample
    return x
