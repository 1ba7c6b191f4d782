"""Log-mel front end: shapes, normalisation round trip, config checks, Griffin-Lim."""

import numpy as np
import pytest
import torch

from espnet2_clip.t2a.mel import GriffinLim, MelFrontend, check_same_mel_conf, fit_length


def test_default_config_and_256_frames():
    mel = MelFrontend()
    conf = mel.mel_conf()
    assert conf == dict(fs=16000, n_fft=1024, win_length=1024, hop_length=256, n_mels=80, fmin=0, fmax=8000,
                        log_min=-5.0, log_max=1.0)
    wave = 0.5 * torch.sin(2 * np.pi * 440 * torch.arange(65535) / 16000)[None]
    out = mel(wave)
    assert out.shape == (1, 80, 256) and mel.num_frames(65535) == 256
    assert out.min() >= -1.0 and out.max() <= 1.05


def test_normalisation_round_trip_and_espnet_equivalence():
    from espnet2.tts.feats_extract.log_mel_fbank import LogMelFbank

    mel = MelFrontend()
    wave = torch.randn(2, 8000) * 0.1
    ref, _ = LogMelFbank(fs=16000, n_fft=1024, hop_length=256, n_mels=80, fmin=0, fmax=8000, log_base=10.0)(wave)
    torch.testing.assert_close(mel.log_mel(wave), ref.transpose(1, 2))
    log_mel = mel.log_mel(wave)
    torch.testing.assert_close(mel.denormalize(mel.normalize(log_mel)), log_mel.clamp(min=-5.0))
    assert float(mel.normalize(torch.tensor(-5.0))) == -1.0 and float(mel.normalize(torch.tensor(1.0))) == 1.0


def test_mel_conf_check():
    a = MelFrontend(n_mels=16, n_fft=256, hop_length=64).mel_conf()
    check_same_mel_conf(a, dict(a))
    with pytest.raises(ValueError, match=r"hop_length: model 64 vs vocoder 128"):
        check_same_mel_conf(a, dict(a, hop_length=128))
    with pytest.raises(ValueError, match="log_min < log_max"):
        MelFrontend(log_min=1.0, log_max=0.0)


def test_griffin_lim_is_deterministic_and_sized():
    mel = MelFrontend(n_mels=16, n_fft=256, hop_length=64)
    t = torch.arange(4095) / 16000
    feats = mel(0.3 * torch.sin(2 * np.pi * 500 * t)[None])[0]
    gl = GriffinLim(mel, n_iter=4)
    a, b = gl(feats, length=4095), gl(feats, length=4095)
    assert a.shape == (4095,) and torch.equal(a, b)
    spec = np.abs(np.fft.rfft(a.numpy()))
    assert abs(np.argmax(spec) * 16000 / 4095 - 500) < 60  # the tone survives inversion


def test_fit_length():
    assert fit_length(np.ones(5), 3).shape == (3,)
    np.testing.assert_array_equal(fit_length(np.ones(2), 4), [1, 1, 0, 0])
