import pytest
import torch

from espnet2_clip.utils.chunking import overlap_add


@pytest.mark.parametrize("length", [50, 100, 333])
@pytest.mark.parametrize("hop", [50, 100])
def test_identity_process_reconstructs_input(length, hop):
    wave = torch.randn(length)
    out = overlap_add(lambda chunks: chunks.unsqueeze(1), wave, window=100, hop=hop)
    assert out.shape == (1, length)
    assert torch.allclose(out[0], wave, atol=1e-5)


def test_multiple_outputs_and_bad_hop():
    wave = torch.randn(250)
    out = overlap_add(lambda c: torch.stack([c, -c], 1), wave, window=100, hop=50)
    assert torch.allclose(out[1], -wave, atol=1e-5)
    with pytest.raises(ValueError, match="hop"):
        overlap_add(lambda c: c.unsqueeze(1), wave, window=100, hop=0)
