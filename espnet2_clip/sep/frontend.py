"""CLIPSep front end: STFT magnitude and the base-21 log-frequency warp.

The official model resamples the 513-bin magnitude onto 256 rows with
``grid_sample(align_corners=True)``: output row ``y in [-1, 1]`` reads input coordinate
``(21 ** ((y + 1) / 2) - 11) / 10``. Masks are predicted and supervised in the warped
domain and un-warped with the inverse map ``log(10 x + 11) / log(21) * 2 - 1``.
"""

import math
from typing import Tuple

import torch
import torch.nn.functional as F
from typeguard import typechecked

WARP_BASE = 21.0


def _warp_coordinates(num_out: int) -> torch.Tensor:
    """Input frequency coordinate in [-1, 1] read by each warped row (num_out,)."""
    y = torch.linspace(-1.0, 1.0, num_out, dtype=torch.float64)
    return ((WARP_BASE ** ((y + 1) / 2) - 11) / 10).float()


def _unwarp_coordinates(num_out: int) -> torch.Tensor:
    """Warped-row coordinate in [-1, 1] read by each linear bin (num_out,)."""
    x = torch.linspace(-1.0, 1.0, num_out, dtype=torch.float64)
    return (torch.log(10 * x + 11) / math.log(WARP_BASE) * 2 - 1).float()


def _resample_freq(spec: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinear resampling of the frequency axis of (B, C, F, T) onto ``coords``."""
    batch, _, _, frames = spec.shape
    ys = coords.to(spec).view(1, -1, 1).expand(batch, -1, frames)
    xs = torch.linspace(-1.0, 1.0, frames, device=spec.device, dtype=spec.dtype)
    xs = xs.view(1, 1, -1).expand(batch, coords.numel(), -1)
    grid = torch.stack([xs, ys], dim=-1)  # (B, F_out, T, 2), last dim = (x=time, y=freq)
    return F.grid_sample(spec, grid, mode="bilinear", align_corners=True)


def log_magnitude(warped_mag: torch.Tensor) -> torch.Tensor:
    """U-Net input ``log(|X| + 1e-10)``: (M, F, T) -> (M, 1, F, T)."""
    return torch.log(warped_mag + 1e-10).unsqueeze(1)


class LogFreqSTFT(torch.nn.Module):
    """Hann STFT (``center=True``, zero padding) and log-frequency warp/unwarp."""

    @typechecked
    def __init__(self, n_fft: int = 1024, hop_length: int = 256, num_warped_bins: int = 256):
        """Initialize LogFreqSTFT.

        Args:
            n_fft: FFT size (= window length).
            hop_length: Hop size in samples.
            num_warped_bins: Number of rows of the warped spectrogram.
        """
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.num_bins = n_fft // 2 + 1
        self.num_warped_bins = num_warped_bins
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("warp_coords", _warp_coordinates(num_warped_bins), persistent=False)
        self.register_buffer("unwarp_coords", _unwarp_coordinates(self.num_bins), persistent=False)

    def stft(self, wave: torch.Tensor) -> torch.Tensor:
        """Complex STFT.

        Args:
            wave: (B, N) waveforms.

        Returns:
            (B, F, T) complex spectrogram, F = n_fft // 2 + 1, T = 1 + N // hop.
        """
        return torch.stft(
            wave,
            self.n_fft,
            hop_length=self.hop_length,
            win_length=self.n_fft,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )

    def istft(self, spec: torch.Tensor, length: int = None) -> torch.Tensor:
        """Inverse STFT of (B, F, T) complex spectra to (B, N) waves."""
        return torch.istft(
            spec,
            self.n_fft,
            hop_length=self.hop_length,
            win_length=self.n_fft,
            window=self.window,
            center=True,
            length=length,
        )

    def warp(self, mag: torch.Tensor) -> torch.Tensor:
        """Warp (B, F, T) linear-frequency magnitudes to (B, F_warp, T)."""
        return _resample_freq(mag.unsqueeze(1), self.warp_coords).squeeze(1)

    def unwarp(self, warped: torch.Tensor) -> torch.Tensor:
        """Map (B, F_warp, T) warped values (e.g. masks) back to (B, F, T)."""
        return _resample_freq(warped.unsqueeze(1), self.unwarp_coords).squeeze(1)

    def forward(self, wave: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return the complex STFT (B, F, T) and its warped magnitude (B, F_warp, T)."""
        spec = self.stft(wave)
        return spec, self.warp(spec.abs())
