"""bf16 inference of the separator backbone: same masks within bf16 rounding, float32 around it."""

import pytest
import torch


def _small_clipsep():
    from espnet2_clip.sep.espnet_model import ESPnetCLIPSepModel
    from espnet2_clip.sep.frontend import LogFreqSTFT
    from espnet2_clip.sep.heads import QueryMaskHead
    from espnet2_clip.sep.query import EmbeddingQuery
    from espnet2_clip.sep.unet import AudioUNet

    torch.manual_seed(0)
    model = ESPnetCLIPSepModel(LogFreqSTFT(n_fft=256, hop_length=64, num_warped_bins=64),
                               AudioUNet(out_channels=4, num_downs=5, base_channels=8),
                               QueryMaskHead(EmbeddingQuery(num_channels=4, input_dim=8)))
    for module in model.modules():  # larger weights than the official init, so masks are not all 0.5
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.normal_(module.weight, 0.0, 0.12)
    return model.eval()


def test_bf16_backbone_gives_the_fp32_estimate_within_bf16_rounding():
    from espnet2_clip.utils.precision import LowPrecisionBackbone, set_backbone_precision

    model = _small_clipsep()
    wave, query = torch.randn(2, 4095) * 0.1, torch.randn(2, 8)
    with torch.no_grad():
        fp32_est, fp32_masks = model.separate(wave, query)
        set_backbone_precision(model, "bf16")
        bf16_est, bf16_masks = model.separate(wave, query)
    assert isinstance(model.backbone, LowPrecisionBackbone)
    assert {p.dtype for p in model.backbone.parameters()} == {torch.bfloat16}
    assert bf16_est.dtype == torch.float32 and bf16_est.shape == fp32_est.shape
    assert fp32_masks.std() > 0.05  # the masks vary, so the comparison means something
    assert (bf16_masks - fp32_masks).abs().mean() < 0.01
    snr = 10 * torch.log10(fp32_est.pow(2).sum() / (bf16_est - fp32_est).pow(2).sum())
    assert snr > 30, float(snr)
    assert not torch.equal(bf16_est, fp32_est)  # it really ran in bf16
    set_backbone_precision(model, "bf16")  # idempotent: not wrapped twice
    assert not isinstance(model.backbone.inner, LowPrecisionBackbone)


def test_fp32_leaves_the_model_and_unknown_precision_is_a_clear_error():
    from espnet2_clip.utils.precision import set_backbone_precision

    model = _small_clipsep()
    backbone = model.backbone
    assert set_backbone_precision(model, "fp32").backbone is backbone
    with pytest.raises(ValueError, match="precision must be one of .*'fp16'"):
        set_backbone_precision(model, "fp16")
