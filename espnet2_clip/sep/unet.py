"""The CLIPSep audio U-Net (Sound-of-Pixels style) shared by every CLIPSep variant.

Encoder: stride-2 4x4 convolutions, channels ``base * (1, 2, 4, 8, 8, ...)``; each level but
the first is LeakyReLU(0.2) -> conv -> BN (the innermost without BN). Decoder: ReLU -> bilinear
x2 upsample -> 3x3 conv -> BN, with ``[x, block(x)]`` skip concatenation. The outermost level
ends in a biased 3x3 conv without activation, giving ``out_channels`` feature maps.
"""

import torch
import torch.nn.functional as F
from torch import nn
from typeguard import typechecked

from espnet2_clip.sep.abs_backbone import AbsSeparatorBackbone


class _UNetLevel(nn.Module):
    """One encoder/decoder level wrapping the inner levels."""

    def __init__(self, outer: int, inner: int, inner_module: nn.Module = None,
                 in_channels: int = None, out_channels: int = None):
        super().__init__()
        outermost = in_channels is not None
        innermost = inner_module is None
        in_channels = outer if in_channels is None else in_channels
        out_channels = outer if out_channels is None else out_channels
        down = [] if outermost else [nn.LeakyReLU(0.2)]
        down.append(nn.Conv2d(in_channels, inner, kernel_size=4, stride=2, padding=1, bias=False))
        if not (outermost or innermost):
            down.append(nn.BatchNorm2d(inner))
        up_in = inner if innermost else inner * 2
        up = [
            nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
            nn.Conv2d(up_in, out_channels, kernel_size=3, padding=1, bias=outermost),
        ]
        if not outermost:
            up.append(nn.BatchNorm2d(out_channels))
        layers = down + ([] if innermost else [inner_module]) + up
        self.model = nn.Sequential(*layers)
        self.outermost = outermost

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x)
        return y if self.outermost else torch.cat([x, y], dim=1)


class AudioUNet(AbsSeparatorBackbone):
    """U-Net mapping a (B, 1, F, T) log-magnitude to (B, out_channels, F, T) features.

    The paper's backbone (``--backbone unet``, the default).
    """

    @typechecked
    def __init__(self, in_channels: int = 1, out_channels: int = 32, num_downs: int = 7,
                 base_channels: int = 64):
        """Initialize AudioUNet.

        Args:
            in_channels: Input channels (1: log magnitude).
            out_channels: Number k of output feature maps ("intermediate masks").
            num_downs: Number of stride-2 levels; F and T must be divisible by 2**num_downs.
            base_channels: Channels of the first level; deeper levels double up to 8x.
        """
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"num_downs must be >= 5, got {num_downs}")
        self.num_downs = num_downs
        self.out_channels = out_channels
        widest = base_channels * 8
        level = _UNetLevel(widest, widest)
        for _ in range(num_downs - 5):
            level = _UNetLevel(widest, widest, level)
        for mult in (4, 2, 1):
            level = _UNetLevel(base_channels * mult, base_channels * mult * 2, level)
        self.input_norm = nn.BatchNorm2d(in_channels)
        self.levels = _UNetLevel(base_channels, base_channels, level,
                                 in_channels=in_channels, out_channels=out_channels)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Forward.

        Args:
            x: (B, in_channels, F, T); F divisible by 2**num_downs. T may be any length: it is
                padded (replicating the last frame) to a multiple of 2**num_downs and cropped back.

        Returns:
            (B, out_channels, F, T) feature maps.
        """
        size = 2 ** self.num_downs
        if x.shape[-2] % size:
            raise ValueError(f"U-Net frequency size {x.shape[-2]} is not divisible by 2**num_downs={size}")
        frames = x.shape[-1]
        pad = -frames % size
        if frames + pad == size and _low_precision_cpu(x):
            pad += size  # the innermost maps would be 1 frame wide: see _low_precision_cpu
        if pad:
            x = F.pad(x, (0, pad, 0, 0), mode="replicate")
        return self.levels(self.input_norm(x))[..., :frames]


def _low_precision_cpu(x: torch.Tensor) -> bool:
    """Whether the convolutions run in bfloat16 on the CPU (bf16 input or CPU autocast).

    oneDNN's bfloat16 stride-2 convolution returns wrong values (relative error > 1, sometimes NaN)
    when its output is one column wide and several rows high (torch 2.9.1 on AMX CPUs; checked in
    test_unet.py), so in bfloat16 the U-Net pads such inputs to two innermost columns.
    """
    return x.device.type == "cpu" and (x.dtype == torch.bfloat16 or torch.is_autocast_enabled("cpu"))


def init_weights(module: nn.Module) -> None:
    """The official small initialisation: conv N(0, 1e-3), BN N(1, 0.02)/0, linear N(0, 1e-4)."""
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 1e-3)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, 0.0, 1e-4)
