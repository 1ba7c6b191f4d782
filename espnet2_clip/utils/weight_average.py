"""An exponential moving average of a module's weights, kept beside it (Polyak averaging).

Diffusion models are sampled with averaged weights as a rule (DDPM, Ho et al. 2020; ADM, Dhariwal &
Nichol 2021): the raw weights of a short, high-learning-rate run wander from step to step, and the
average is the better denoiser. ESPnet's trainer has no weight averaging during training (its
``valid.loss.ave`` averages a few saved epochs), so a model that wants one owns a
:class:`WeightAverage` and calls :meth:`WeightAverage.update` once per training step.

The average lives in the model's ``state_dict`` (checkpoints, ``--resume`` and packed models carry
it); its parameters do not require gradients, so the optimiser never changes them.
"""

import copy

import torch


class WeightAverage(torch.nn.Module):
    """``average = d * average + (1 - d) * weights`` after each update, d warming up to ``decay``.

    The decay of the n-th update is ``min(decay, (1 + n) / (10 + n))`` (the usual warm-up), so the
    first updates follow the weights closely and early random weights are soon forgotten.

    Args:
        module: The module to average (copied; it is not modified).
        decay: Final decay in (0, 1): about ``1 / (1 - decay)`` steps are averaged.
    """

    def __init__(self, module: torch.nn.Module, decay: float):
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the weight-average decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.average = copy.deepcopy(module).requires_grad_(False)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def current_decay(self) -> float:
        """The decay the next update uses."""
        n = int(self.num_updates)
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        """Move the average towards ``module``'s weights (same architecture as the averaged module)."""
        weight = 1.0 - self.current_decay()
        averaged = list(self.average.parameters())
        current = [p.detach() for p in module.parameters()]
        if len(averaged) != len(current):
            raise ValueError(f"the averaged module has {len(averaged)} parameters, the update {len(current)}")
        torch._foreach_lerp_(averaged, current, weight)
        for mine, theirs in zip(self.average.buffers(), module.buffers()):
            mine.copy_(theirs)
        self.num_updates += 1
