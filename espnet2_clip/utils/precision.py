"""Inference precision of a separator backbone: float32, or bfloat16 on CPUs with bf16 matrix units."""

import logging

import torch

PRECISIONS = ("fp32", "bf16")


def cpu_has_bf16_units() -> bool:
    """Whether this CPU computes bfloat16 natively (AMX tiles or AVX512-BF16); else bf16 is slow."""
    cpu = getattr(torch._C, "_cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return bool(cpu) and any(getattr(cpu, name, lambda: False)() for name in checks)


def device_has_bf16_units(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively (AMX / AVX512-BF16 CPUs, Ampere or newer GPUs)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == "cpu" and cpu_has_bf16_units()


def warn_if_bf16_is_slow(device: torch.device, option: str) -> None:
    """Log that ``option`` (a bf16 setting) will be slow on a CPU without bfloat16 units."""
    if device.type == "cpu" and not cpu_has_bf16_units():
        logging.warning(f"{option}: this CPU has no bfloat16 units (AMX / AVX512-BF16); "
                        "bf16 will likely be slower than fp32 here")


def fold_batch_norms(module: torch.nn.Module) -> torch.nn.Module:
    """Fold each eval-mode BatchNorm that directly follows a convolution in an ``nn.Sequential`` into
    that convolution (the BatchNorm becomes an identity); the function computed stays the same."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for seq in [m for m in module.modules() if isinstance(m, torch.nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, norm = seq[i], seq[i + 1]
            if isinstance(conv, torch.nn.Conv2d) and isinstance(norm, torch.nn.BatchNorm2d):
                seq[i], seq[i + 1] = fuse_conv_bn_eval(conv, norm), torch.nn.Identity()
    return module


class LowPrecisionBackbone(torch.nn.Module):
    """Runs a backbone in bfloat16 (batch norms folded, channels-last for 4-D inputs); float32 in
    and out.

    The backbone's parameters are folded and cast once; its input is cast per call and its output
    is cast back, so the query fusion, masks and STFT around it stay in float32.
    """

    def __init__(self, backbone: torch.nn.Module):
        super().__init__()
        backbone = fold_batch_norms(backbone.eval())
        self.inner = backbone.to(torch.bfloat16).to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, F, T) float32 -> the backbone's output in float32."""
        x = x.to(torch.bfloat16)
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.inner(x).float()


def set_backbone_precision(model: torch.nn.Module, precision: str) -> torch.nn.Module:
    """Run ``model.backbone`` at ``precision`` for inference ("fp32" leaves the model as it is).

    Args:
        model: A CLIPSep model (``model.backbone``), already in eval mode.
        precision: "fp32" or "bf16".

    Returns:
        The same model.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "bf16" and not isinstance(model.backbone, LowPrecisionBackbone):
        warn_if_bf16_is_slow(next(model.backbone.parameters()).device, "precision bf16")
        model.backbone = LowPrecisionBackbone(model.backbone)
    return model
