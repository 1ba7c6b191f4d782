"""CLIPSep mask losses (weighted binary cross-entropy in the warped domain)."""

import torch
import torch.nn.functional as F


def mask_loss_weight(mix_warped_mag: torch.Tensor) -> torch.Tensor:
    """Per-bin weight ``clamp(log1p(|X|), 1e-3, 10)`` of (M, F, T) warped mixture magnitudes."""
    return torch.clamp(torch.log1p(mix_warped_mag), 1e-3, 10.0)


def binary_mask_targets(src_warped_mags: torch.Tensor, mix_warped_mag: torch.Tensor) -> torch.Tensor:
    """Binary targets ``|S_i| > 0.5 |X|``.

    Args:
        src_warped_mags: (M, S, F, T) warped source magnitudes.
        mix_warped_mag: (M, F, T) warped mixture magnitude.

    Returns:
        (M, S, F, T) float masks in {0, 1}.
    """
    return (src_warped_mags > 0.5 * mix_warped_mag.unsqueeze(1)).to(src_warped_mags.dtype)


def weighted_bce(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted BCE averaged over bins (not normalised by the weight sum), per sample.

    Computed in float32 with autocast off, so mixed-precision training (ESPnet's ``--use_amp``,
    ``model_conf.train_precision: bf16``) keeps the official loss (CUDA autocast refuses BCE).

    Args:
        pred: (M, F, T) mask probabilities in [0, 1].
        target: (M, F, T) targets.
        weight: (M, F, T) weights.

    Returns:
        (M,) losses.
    """
    with torch.autocast(device_type=pred.device.type, enabled=False):
        bce = F.binary_cross_entropy(pred.float(), target.float(), weight=weight.float(), reduction="none")
    return bce.flatten(1).mean(dim=1)
