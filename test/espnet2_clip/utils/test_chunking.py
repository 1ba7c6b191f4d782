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


def test_multichannel_windows_reach_the_process_per_channel():
    wave = torch.randn(3, 333)
    out = overlap_add(lambda chunks: chunks, wave, window=100, hop=50)  # (W, C, window) -> C outputs
    assert out.shape == (3, 333)
    assert torch.allclose(out, wave, atol=1e-5)


def _streamed(wave, process, segment, overlap):
    from espnet2_clip.utils.chunking import stream_overlap_add

    pieces = list(stream_overlap_add(lambda s, n: wave[:, s : s + n], wave.shape[-1], process, segment, overlap))
    return torch.cat(pieces, -1), len(pieces)


def test_streamed_clip_that_fits_one_segment_is_the_single_pass_result():
    wave = torch.randn(2, 900, dtype=torch.float64)
    gain = torch.linspace(0.5, 2.0, 900, dtype=torch.float64)
    out, pieces = _streamed(wave, lambda seg: seg * gain[: seg.shape[-1]], segment=1000, overlap=200)
    assert pieces == 1 and torch.equal(out, wave * gain)


def test_streamed_identity_reconstructs_and_checks_its_arguments():
    from espnet2_clip.utils.chunking import stream_overlap_add

    wave = torch.randn(2, 5003, dtype=torch.float64)
    out, pieces = _streamed(wave, lambda seg: seg.clone(), segment=1000, overlap=250)
    assert pieces > 5 and out.shape == wave.shape
    torch.testing.assert_close(out, wave)
    with pytest.raises(ValueError, match="overlap"):
        list(stream_overlap_add(lambda s, n: wave[:, s : s + n], 5003, lambda x: x, 100, 100))


def _unity_separator(sample_rate=16000, clip=4095):
    """A TextQueriedSeparation whose masks are all one (identity U-Net features, a saturated head)."""
    from espnet2_clip.bin.clipsep_inference import TextQueriedSeparation
    from espnet2_clip.sep.frontend import LogFreqSTFT

    class UnityHead:
        needs_query, num_outputs = False, 1

        @staticmethod
        def masks(features, query):
            return torch.ones(features.shape[0], 1, *features.shape[-2:])

    class Model:
        frontend = LogFreqSTFT(n_fft=256, hop_length=64, num_warped_bins=64)
        head = UnityHead()

        @staticmethod
        def features(mag):
            return mag[:, None]

    sep = TextQueriedSeparation.__new__(TextQueriedSeparation)
    sep.model, sep.device, sep.sample_rate, sep.clip_samples = Model(), "cpu", sample_rate, clip
    sep.hop = clip // 2
    return sep


@pytest.mark.parametrize("fs", [16000, 44100])
def test_stationary_tone_through_a_unity_mask_streamed_is_below_minus_60_db(tmp_path, fs):
    """A 6 s stereo tone streamed in 1-s segments (many windows, segment and window seams): error
    < -60 dB away from the ends, at the model's rate and through resampling from 44.1 kHz."""
    import soundfile as sf

    sep = _unity_separator()
    t = torch.arange(6 * fs, dtype=torch.float64) / fs
    tone = 0.5 * torch.sin(2 * torch.pi * 440 * t)
    wave = torch.stack([tone, 0.5 * tone], 1).float().numpy()
    sf.write(tmp_path / "tone.wav", wave, fs, subtype="FLOAT")
    sep.separate_file(tmp_path / "tone.wav", [tmp_path / "est.wav"], [None], segment_seconds=1.0, progress=False)
    est, rate = sf.read(tmp_path / "est.wav", always_2d=True)
    assert rate == fs and est.shape == wave.shape
    inner = slice(fs // 10, -fs // 10)
    err = 10 * torch.log10(torch.tensor(((est[inner] - wave[inner]) ** 2).sum() / (wave[inner] ** 2).sum()))
    assert err < -60, float(err)


def test_overlap_add_equals_single_window_with_a_random_separator():
    """A clip that fits one window: the windowed, batched, multichannel path gives exactly the
    model's single-window ``separate`` output (random small CLIPSep, embedding query)."""
    from espnet2_clip.query.embedder import QueryEmbedder
    from espnet2_clip.sep.espnet_model import ESPnetCLIPSepModel
    from espnet2_clip.sep.frontend import LogFreqSTFT
    from espnet2_clip.sep.heads import QueryMaskHead
    from espnet2_clip.sep.query import EmbeddingQuery
    from espnet2_clip.sep.unet import AudioUNet

    torch.manual_seed(0)
    model = ESPnetCLIPSepModel(LogFreqSTFT(n_fft=256, hop_length=64, num_warped_bins=64),
                               AudioUNet(out_channels=4, num_downs=5, base_channels=4),
                               QueryMaskHead(EmbeddingQuery(num_channels=4, input_dim=8))).eval()
    sep = _unity_separator()
    sep.model, sep.embedder = model, QueryEmbedder(None, None)
    wave, query = torch.randn(4095) * 0.1, torch.randn(8)
    with torch.no_grad():
        single = model.separate(wave[None], query[None])[0][0, 0]
        full = sep(wave.numpy(), 16000, query)
        stereo = sep(torch.stack([wave, wave], 1).numpy(), 16000, [query, query])
    torch.testing.assert_close(torch.from_numpy(full), single, atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.from_numpy(stereo[1, :, 1]), single, atol=1e-6, rtol=0)
