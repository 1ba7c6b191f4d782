import pytest
import torch

from espnet2_clip.sep.espnet_model import ESPnetCLIPSepModel
from espnet2_clip.sep.frontend import LogFreqSTFT
from espnet2_clip.sep.heads import NoiseInvariantHead, QueryMaskHead
from espnet2_clip.sep.query import EmbeddingQuery
from espnet2_clip.sep.unet import AudioUNet


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_paper_configuration_parameter_count():
    unet = AudioUNet()  # 7 levels, 64...512 channels, k = 32
    clipsep = ESPnetCLIPSepModel(LogFreqSTFT(), unet, QueryMaskHead(EmbeddingQuery(32, 512)))
    assert count(unet) == pytest.approx(30.27e6, rel=1e-3)
    # U-Net + Linear(512 -> 32) + per-channel scale + bias
    assert count(clipsep) - count(unet) == 512 * 32 + 32 + 32 + 1
    assert count(clipsep) == pytest.approx(30.29e6, rel=1e-3)
    nit = ESPnetCLIPSepModel(LogFreqSTFT(), AudioUNet(), NoiseInvariantHead(EmbeddingQuery(32, 512)))
    assert count(nit) - count(clipsep) == 2112


def test_paper_channels_and_output():
    unet = AudioUNet()
    convs = [m for m in unet.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 512, 512, 512]


@pytest.mark.parametrize("frames", [32, 45])
def test_small_unet_output_shape_any_frame_count(frames):
    unet = AudioUNet(out_channels=4, num_downs=5, base_channels=4)
    out = unet(torch.randn(2, 1, 64, frames))
    assert out.shape == (2, 4, 64, frames)
    out.abs().mean().backward()


def test_bad_frequency_size_and_depth():
    with pytest.raises(ValueError, match="divisible"):
        AudioUNet(num_downs=5, base_channels=4)(torch.randn(1, 1, 40, 32))
    with pytest.raises(ValueError, match="num_downs"):
        AudioUNet(num_downs=4)


def test_small_initialisation():
    unet = AudioUNet(out_channels=4, num_downs=5, base_channels=8)
    conv = next(m for m in unet.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.std().item() < 3e-3


@pytest.mark.parametrize("frames", [16, 32])
def test_bf16_short_input_matches_float32(frames):
    """Inputs whose innermost maps would be one column wide (oneDNN's bf16 stride-2 convolution is
    wrong there) are padded further in bf16: the result matches float32 on the same padding."""
    torch.manual_seed(0)
    unet = AudioUNet(out_channels=4, num_downs=5, base_channels=16).train()
    x = torch.randn(2, 1, 256, frames)
    with torch.no_grad():
        reference = unet(torch.nn.functional.pad(x, (0, 64 - frames, 0, 0), mode="replicate"))[..., :frames]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = unet(x).float()
    assert torch.isfinite(fast).all()
    assert ((fast - reference).norm() / reference.norm()).item() < 0.05
