"""How a model's convolutional backbone runs in training: precision, memory format, compilation.

Used by CLIPSep (the separator U-Net) and CLIPSonic (the diffusion U-Net; ``train_precision`` only).
These options change the speed of a training step, not the model: parameters and optimiser
state stay float32 (bf16 autocast keeps float32 master weights), checkpoints are the same
whichever options trained them, and inference precision is chosen at inference time
(``precision=`` of the separation API; CLIPSonic samples in float32). They are set in
``model_conf`` of a config::

    model_conf:
        train_precision: auto     # fp32 (default) | bf16 | auto: bf16 where the device computes it natively
        channels_last: true       # NHWC activations and weights (oneDNN / cuDNN fast paths)
        compile_backbone: false   # torch.compile the backbone (falls back to eager on failure)

The loss is always computed in float32 outside the autocast region. Measured on a 2-core AMX CPU
(README, "Training speed"): channels-last 1.4x, bf16 1.8x, both 3.8x a float32 step; compiling was
slower than eager there, and with bf16 on the CPU it produced NaN losses, so that pair runs eagerly.
"""

import logging
from typing import Optional

import torch

from espnet2_clip.utils.precision import device_has_bf16_units, warn_if_bf16_is_slow

TRAIN_PRECISIONS = ("fp32", "bf16", "auto")


class BackboneRunner:
    """Runs a backbone with the training-speed options (not an ``nn.Module``: it holds no weights).

    Args:
        precision: ``fp32``, ``bf16`` (bfloat16 autocast around the backbone in training) or
            ``auto`` (bf16 on devices with bfloat16 units, else fp32; decided at the first step).
        channels_last: Keep 4-D activations and convolution weights channels-last.
        compile: ``torch.compile`` the backbone for training steps; if compilation fails (no C++
            compiler, an unsupported operator) a warning is logged and the step runs eagerly.
    """

    def __init__(self, precision: str = "fp32", channels_last: bool = False, compile: bool = False):
        if precision not in TRAIN_PRECISIONS:
            raise ValueError(f"model_conf.train_precision: expected one of {TRAIN_PRECISIONS}, got '{precision}'")
        self.precision = precision
        self.channels_last = channels_last
        self.compile = compile
        self._compiled: Optional[torch.nn.Module] = None
        self._device_checked = False

    def prepare(self, backbone: torch.nn.Module) -> None:
        """Convert the backbone's 4-D weights to channels-last (when asked)."""
        if self.channels_last:
            backbone.to(memory_format=torch.channels_last)

    def __call__(self, backbone: torch.nn.Module, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """Run ``backbone(x, *args)`` on (M, C, F, T) inputs ``x`` (and e.g. steps, conditions);
        returns float32 (M, k, F, T) features."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if not backbone.training:
            return backbone(x, *args)
        if not self._device_checked:
            self._settle(x.device)
        if self.precision == "bf16":
            with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
                return self._train_forward(backbone, x, *args).float()
        return self._train_forward(backbone, x, *args)

    def _settle(self, device: torch.device) -> None:
        """Resolve ``auto`` and the device-dependent checks at the first training step."""
        self._device_checked = True
        if self.precision == "auto":
            self.precision = "bf16" if device_has_bf16_units(device) else "fp32"
            logging.info(f"model_conf.train_precision auto: {self.precision} on {device.type}")
        elif self.precision == "bf16":
            warn_if_bf16_is_slow(device, "model_conf.train_precision bf16")
        if self.compile and self.precision == "bf16" and device.type == "cpu":
            logging.warning("model_conf.compile_backbone: not used with bf16 on the CPU (torch 2.9.1's compiled "
                            "bf16 step gave NaN losses there); the backbone runs eagerly")
            self.compile = False

    def _train_forward(self, backbone: torch.nn.Module, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        if not self.compile:
            return backbone(x, *args)
        if self._compiled is None:
            self._compiled = torch.compile(backbone)
        try:
            return self._compiled(x, *args)
        except torch._dynamo.exc.TorchDynamoException as exc:  # compiler failures, not model errors
            logging.warning(f"model_conf.compile_backbone: torch.compile failed ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}); training continues without it")
            self.compile = False
            self._compiled = None
            return backbone(x, *args)

    def __repr__(self) -> str:
        return (f"BackboneRunner(precision={self.precision!r}, channels_last={self.channels_last}, "
                f"compile={self.compile})")
