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


@pytest.mark.parametrize("window", [100, 65535])
def test_one_window_gives_the_process_output_exactly(window):
    """A signal that fits one window keeps the model's output as it is, ends included (a
    sine-squared fade of 65535 samples is ~1e-9 at the first sample: it must not be divided out)."""
    wave = torch.randn(window, dtype=torch.float64)
    gain = torch.linspace(0.5, 2.0, window, dtype=torch.float64)
    out = overlap_add(lambda chunks: (chunks * gain).unsqueeze(1), wave, window=window, hop=window // 2)
    torch.testing.assert_close(out[0], wave * gain, rtol=0, atol=1e-12)


def test_ends_of_a_long_signal_are_not_faded():
    wave = torch.randn(70000, dtype=torch.float64)
    out = overlap_add(lambda chunks: chunks.unsqueeze(1), wave, window=65535, hop=32767)
    torch.testing.assert_close(out[0], wave, rtol=0, atol=1e-9)
