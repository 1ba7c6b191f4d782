"""CLIPSonic's log-mel front end (our choice; the paper does not state it) and its inverse.

Default (``MelFrontend()``): 16 kHz, n_fft 1024, win 1024 (hann), hop 256, centred frames,
80 mel bins (Slaney), fmin 0, fmax 8000. Features are ESPnet's TTS log-mel
(``espnet2.tts.feats_extract.log_mel_fbank.LogMelFbank``: log10 of the mel-filtered STFT
*magnitude*, clamped at 1e-10), then clamped to ``[log_min, +inf)`` (default -5, i.e.
amplitude 1e-5) and mapped linearly so that ``log_min -> -1`` and ``log_max -> +1`` (default
``log_max`` 1.0, the level of a full-scale sine; louder bins go a little above 1).
A 65535-sample clip gives ``1 + 65535 // 256 = 256`` frames.

The whole configuration is :meth:`MelFrontend.mel_conf`; the diffusion model and the vocoder
store it in their configs and :func:`check_same_mel_conf` refuses a mismatch.
"""

from typing import Dict, Optional

import numpy as np
import torch
from espnet2.tts.feats_extract.log_mel_fbank import LogMelFbank
from typeguard import typechecked

#: The keys that define the representation (compared between the diffusion model and vocoder).
MEL_KEYS = ("fs", "n_fft", "win_length", "hop_length", "n_mels", "fmin", "fmax", "log_min", "log_max")


class MelFrontend(torch.nn.Module):
    """Waveform ``(B, N)`` -> normalised log-mel ``(B, n_mels, T)``, ``T = 1 + N // hop``."""

    @typechecked
    def __init__(
        self,
        fs: int = 16000,
        n_fft: int = 1024,
        win_length: Optional[int] = None,
        hop_length: int = 256,
        n_mels: int = 80,
        fmin: int = 0,
        fmax: Optional[int] = 8000,
        log_min: float = -5.0,
        log_max: float = 1.0,
    ):
        """Initialize MelFrontend.

        Args:
            fs: Sample rate (Hz).
            n_fft: FFT size.
            win_length: Window length (None: n_fft).
            hop_length: Hop in samples.
            n_mels: Mel bins.
            fmin: Lowest mel frequency (Hz).
            fmax: Highest mel frequency (Hz; None: fs / 2).
            log_min: log10-amplitude floor, mapped to -1.
            log_max: log10 amplitude mapped to +1.
        """
        super().__init__()
        if log_max <= log_min:
            raise ValueError(f"need log_min < log_max, got {log_min}, {log_max}")
        win_length = n_fft if win_length is None else win_length
        fmax = fs // 2 if fmax is None else fmax
        self._conf = dict(fs=fs, n_fft=n_fft, win_length=win_length, hop_length=hop_length,
                          n_mels=n_mels, fmin=fmin, fmax=fmax, log_min=float(log_min), log_max=float(log_max))
        self.fbank = LogMelFbank(fs=fs, n_fft=n_fft, win_length=win_length, hop_length=hop_length,
                                 n_mels=n_mels, fmin=fmin, fmax=fmax, log_base=10.0)

    def mel_conf(self) -> Dict:
        """The representation's settings (a plain dict, as stored in configs)."""
        return dict(self._conf)

    @property
    def n_mels(self) -> int:
        return self._conf["n_mels"]

    @property
    def hop_length(self) -> int:
        return self._conf["hop_length"]

    def num_frames(self, num_samples: int) -> int:
        """Frames of a ``num_samples`` wave (centred STFT)."""
        return 1 + num_samples // self.hop_length

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, N) -> (B, n_mels, T) log10 mel magnitude (ESPnet TTS convention, unnormalised)."""
        feats, _ = self.fbank(wave)
        return feats.transpose(1, 2)

    def normalize(self, log_mel: torch.Tensor) -> torch.Tensor:
        """log10 mel -> about [-1, 1] (values below ``log_min`` are clamped to -1)."""
        lo, hi = self._conf["log_min"], self._conf["log_max"]
        return 2.0 * (log_mel.clamp(min=lo) - lo) / (hi - lo) - 1.0

    def denormalize(self, mel: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize` (above the floor)."""
        lo, hi = self._conf["log_min"], self._conf["log_max"]
        return (mel.clamp(min=-1.0) + 1.0) * (hi - lo) / 2.0 + lo

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, N) wave -> (B, n_mels, T) normalised log-mel."""
        return self.normalize(self.log_mel(wave))


def check_same_mel_conf(expected: Dict, got: Dict, what: str = "vocoder") -> None:
    """Raise ValueError naming every differing key unless both mel configurations match."""
    diffs = [f"{k}: model {expected.get(k)!r} vs {what} {got.get(k)!r}"
             for k in MEL_KEYS if expected.get(k) != got.get(k)]
    if diffs:
        raise ValueError(
            f"the {what} was trained on another mel configuration and cannot invert this model's "
            f"mel spectrograms ({'; '.join(diffs)}); train a {what} with the same mel_conf"
        )


class GriffinLim:
    """Fallback vocoder: ESPnet's mel pseudo-inverse (``espnet2.utils.griffin_lim.logmel2linear``)
    + librosa's fast Griffin-Lim with a fixed phase seed (so output is deterministic).

    Not ESPnet's whole converter (``Spectrogram2Waveform`` / ``griffin_lim``): it is the same
    pseudo-inverse and the same librosa call, but it cannot seed the initial phase (librosa then
    draws a fresh generator: a different wave on every call) nor ask for the clip's length (it
    returns ``(T - 1) * hop`` samples). Measured with ``python -m espnet2_clip.bin.library_benchmark
    --sections griffin_lim`` (80 mels, 32 iterations, four 65535-sample bridge-world sounds):
    spectral convergence on the mel 0.111 (ours) vs 0.113 (ESPnet's, one draw of its phase),
    2.4 vs 2.5 s per clip on a shared 2-core machine: no gain to buy with determinism."""

    @typechecked
    def __init__(self, mel: MelFrontend, n_iter: int = 32, seed: int = 0):
        self.mel = mel
        self.n_iter = n_iter
        self.seed = seed

    def __call__(self, mel: torch.Tensor, length: Optional[int] = None) -> torch.Tensor:
        """(n_mels, T) normalised mel -> (N,) wave (``length`` samples, default ``(T - 1) * hop``)."""
        import librosa
        from espnet2.utils.griffin_lim import logmel2linear

        conf = self.mel.mel_conf()
        log_mel = self.mel.denormalize(mel.float().cpu()).transpose(0, 1).numpy()
        spc = logmel2linear(log_mel, fs=conf["fs"], n_fft=conf["n_fft"], n_mels=conf["n_mels"],
                            fmin=conf["fmin"], fmax=conf["fmax"])
        wave = librosa.griffinlim(np.abs(spc.T), n_iter=self.n_iter, hop_length=conf["hop_length"],
                                  win_length=conf["win_length"], n_fft=conf["n_fft"], window="hann",
                                  center=True, length=length, random_state=self.seed)
        return torch.from_numpy(np.asarray(wave, dtype=np.float32))


def fit_length(wave: np.ndarray, length: int) -> np.ndarray:
    """Crop or zero-pad a 1-D wave to ``length``."""
    if len(wave) >= length:
        return wave[:length]
    return np.pad(wave, (0, length - len(wave)))
