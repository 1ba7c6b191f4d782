import numpy as np
import pytest
import torch

from espnet2_clip.sep.espnet_model import ESPnetCLIPSepModel
from espnet2_clip.sep.frontend import LogFreqSTFT
from espnet2_clip.sep.heads import NoiseInvariantHead, PITHead, QueryMaskHead
from espnet2_clip.sep.preprocessor import CLIPSepPreprocessor
from espnet2_clip.sep.query import EmbeddingQuery
from espnet2_clip.sep.unet import AudioUNet


def small_model(head_kind="query"):
    torch.manual_seed(0)
    unet = AudioUNet(out_channels=4, num_downs=5, base_channels=4)
    if head_kind == "pit":
        head = PITHead(num_channels=4)
    else:
        cls = NoiseInvariantHead if head_kind == "nit" else QueryMaskHead
        head = cls(EmbeddingQuery(num_channels=4, input_dim=8))
    return ESPnetCLIPSepModel(LogFreqSTFT(n_fft=256, hop_length=64, num_warped_bins=64), unet, head)


@pytest.mark.parametrize("head_kind", ["query", "nit", "pit"])
@pytest.mark.parametrize("batch", [2, 5])
def test_forward_backward(head_kind, batch):
    model = small_model(head_kind)
    loss, stats, weight = model(torch.randn(batch, 4095) * 0.1, query=torch.randn(batch, 8))
    assert torch.isfinite(loss) and loss.item() > 0
    assert weight.item() == (batch + 1) // 2
    loss.backward()
    assert model.backbone.levels.model[0].weight.grad.abs().sum() > 0


def test_validation_loss_is_deterministic():
    model = small_model("nit").eval()
    clips, query = torch.randn(4, 4095) * 0.1, torch.randn(4, 8)
    assert model(clips, query=query)[0].item() == model(clips, query=query)[0].item()


def test_needs_query_and_two_clips():
    model = small_model()
    with pytest.raises(ValueError, match="query"):
        model(torch.randn(2, 4095))
    with pytest.raises(ValueError, match="2 clips"):
        model(torch.randn(1, 4095), query=torch.randn(1, 8))


def test_separate_with_all_pass_mask_returns_mixture():
    model = small_model().eval()
    with torch.no_grad():
        model.head.fusion.bias.fill_(50.0)  # sigmoid(50) = 1: the mask passes everything
    mixture = torch.randn(2, 4095) * 0.1
    waves, masks = model.separate(mixture, torch.randn(2, 8))
    assert waves.shape == (2, 1, 4095) and masks.shape == (2, 1, 64, 64)
    assert torch.allclose(waves[:, 0], mixture, atol=1e-4)


def test_preprocessor_crops_around_centre_frame_and_averages_query():
    pre = CLIPSepPreprocessor(train=False, sample_rate=100, clip_samples=101, frame_rate=1.0)
    wave = np.arange(1000, dtype=np.float32)  # 10 s at 100 Hz
    query = np.arange(10, dtype=np.float32)[:, None].repeat(3, axis=1)  # 10 frames
    out = pre("utt", {"speech_ref1": wave, "query": query})
    # middle frame c = 5: centre (5 - 0.5) s = sample 450
    assert out["speech_ref1"][50] == 450 and len(out["speech_ref1"]) == 101
    assert out["query"].tolist() == [4.0, 4.0, 4.0]  # mean of frames 4, 5, 6 (0-based 3, 4, 5)


def test_preprocessor_training_draw_respects_margin_and_pads():
    pre = CLIPSepPreprocessor(train=True, sample_rate=100, clip_samples=301, frame_rate=1.0, margin=3)
    query = np.arange(10, dtype=np.float32)[:, None]
    centres = {float(pre("u", {"speech_ref1": np.ones(1000, np.float32), "query": query})["query"][0]) for _ in range(200)}
    assert centres == {3.0, 4.0, 5.0, 6.0}  # c in [4, 7] 1-based -> frames c-1..c+1 mean = c - 1
    short = pre("u", {"speech_ref1": np.ones((50, 2), np.float32)})  # stereo, shorter than a clip
    assert short["speech_ref1"].shape == (301,) and short["speech_ref1"].max() == 1.0
