import math

import pytest
import torch

from espnet2_clip.sep.frontend import LogFreqSTFT, _unwarp_coordinates, _warp_coordinates


def test_shapes_paper_configuration():
    frontend = LogFreqSTFT()
    spec, warped = frontend(torch.randn(2, 65535))
    assert spec.shape == (2, 513, 256) and spec.is_complex()
    assert warped.shape == (2, 256, 256)


def test_warp_coordinates_follow_base21_map():
    coords = _warp_coordinates(256)
    assert coords[0].item() == pytest.approx(-1.0) and coords[-1].item() == pytest.approx(1.0)
    y = -1 + 2 * 100 / 255
    assert coords[100].item() == pytest.approx((21 ** ((y + 1) / 2) - 11) / 10, abs=1e-6)
    # the inverse map undoes the forward map
    x = _unwarp_coordinates(513)
    assert x[0].item() == pytest.approx(-1.0) and x[-1].item() == pytest.approx(1.0)
    assert x[300].item() == pytest.approx(math.log(10 * (-1 + 2 * 300 / 512) + 11) / math.log(21) * 2 - 1, abs=1e-6)


def test_warp_samples_low_frequencies_densely():
    frontend = LogFreqSTFT()
    ramp = torch.linspace(0, 1, 513).view(1, 513, 1).expand(1, 513, 4)
    warped = frontend.warp(ramp)[0, :, 0]
    assert torch.all(warped[1:] >= warped[:-1])  # monotonic
    assert warped[128].item() < 0.25  # half the rows cover the lowest quarter of the band


def test_warp_unwarp_round_trip_of_smooth_mask():
    frontend = LogFreqSTFT()
    freq = torch.linspace(0, 1, 513).view(1, 513, 1)
    mask = 0.5 + 0.4 * torch.sin(2 * math.pi * freq * torch.linspace(1, 3, 8).view(1, 1, 8))
    restored = frontend.unwarp(frontend.warp(mask))
    assert restored.shape == mask.shape
    assert (restored - mask).abs().max().item() < 5e-3


def test_stft_istft_reconstruction_keeps_length():
    frontend = LogFreqSTFT()
    wave = torch.randn(1, 65535)
    out = frontend.istft(frontend.stft(wave), length=65535)
    assert out.shape == wave.shape
    assert (out - wave).abs().max().item() < 1e-4
