"""HiFi-GAN vocoder model: both GAN turns, segment preprocessor, hop check."""

import numpy as np
import pytest
import torch

from espnet2_clip.t2a.mel import MelFrontend
from espnet2_clip.t2a.vocoder import HiFiGANVocoderModel, VocoderSegmentPreprocessor

GEN = {"channels": 8, "upsample_scales": [8, 8], "upsample_kernel_sizes": [16, 16],
       "resblock_kernel_sizes": [3], "resblock_dilations": [[1]]}
DISC = {"scales": 1, "periods": [2],
        "scale_discriminator_params": {"channels": 4, "max_downsample_channels": 8, "max_groups": 2,
                                       "kernel_sizes": [15, 41, 5, 3], "downsample_scales": [2, 1]},
        "period_discriminator_params": {"channels": 4, "max_downsample_channels": 8,
                                        "downsample_scales": [3, 1]}}


def test_generator_and_discriminator_turns():
    model = HiFiGANVocoderModel(MelFrontend(n_fft=256, hop_length=64, n_mels=16), GEN, DISC)
    speech = torch.randn(2, 512) * 0.1
    g = model(speech, forward_generator=True)
    d = model(speech, forward_generator=False)
    assert g["optim_idx"] == 0 and d["optim_idx"] == 1
    assert {"generator_mel_loss", "generator_adv_loss", "generator_feat_match_loss"} <= set(g["stats"])
    g["loss"].backward()
    assert any(p.grad is not None for p in model.generator.parameters())
    assert model.inference(torch.zeros(16, 5)).shape == (5 * 64,)


def test_hop_mismatch_is_refused():
    with pytest.raises(ValueError, match="must equal the mel hop 64"):
        gen = dict(GEN, upsample_scales=[8, 4], upsample_kernel_sizes=[16, 8])
        HiFiGANVocoderModel(MelFrontend(n_fft=256, hop_length=64, n_mels=16), gen, DISC)


def test_segment_preprocessor():
    pre = VocoderSegmentPreprocessor(train=True, segment_samples=100, seed=0)
    assert pre("u", {"speech": np.ones(50)})["speech"].shape == (100,)
    assert pre("u", {"speech": np.ones((300, 2))})["speech"].shape == (100,)
    val = VocoderSegmentPreprocessor(train=False, segment_samples=4)
    np.testing.assert_array_equal(val("u", {"speech": np.arange(10.0)})["speech"], [0, 1, 2, 3])
