"""VGGish (Hershey et al., 2017) for FAD, written here: frontend, network and checkpoint loading.

The network's parameter names and shapes are those of the PyTorch port ``harritaylor/torchvggish``
(``features.{0,3,6,8,11,13}`` convolutions, ``embeddings.{0,2,4}`` linear layers), so its published
checkpoint :data:`VGGISH_URL` loads as it is. The frontend follows VGGish's definition: 16 kHz mono,
25 ms periodic-Hann window, 10 ms hop, 512-point FFT magnitude, 64 HTK mel bands 125-7500 Hz (DC bin
dropped), ``log(mel + 0.01)``, non-overlapping 96-frame (0.96 s) examples.

FAD's convention (the ``frechet-audio-distance`` package's defaults, ``use_pca=False``,
``use_activation=False``): the raw 128-d embedding before the final ReLU, one per 0.96-s example;
a set's embeddings are the examples of all its clips. That package pins numpy < 2, so it is not
used here; ``tools/vggish_parity.py`` checks this module against ``torchvggish`` itself.

Loading (:func:`load_vggish`): ``"vggish"`` downloads the published weights with
``torch.hub.load_state_dict_from_url`` (as ``torchvggish`` does; cached in
``<torch.hub.get_dir()>/checkpoints/``, i.e. ``$TORCH_HOME/hub/checkpoints``); a local ``.pth`` file
of the same state dict works offline.
"""

from pathlib import Path
from typing import Dict, List, Sequence, Union

import numpy as np
import torch
from torch import nn

VGGISH_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"

SAMPLE_RATE = 16000
WINDOW = 400            # 25 ms at 16 kHz
HOP = 160               # 10 ms
N_FFT = 512             # next power of two of the window
NUM_BANDS = 64
MEL_LOW, MEL_HIGH = 125.0, 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96     # 0.96 s, non-overlapping
EMBEDDING_SIZE = 128

#: the convolution channels; "M" = 2x2 max pooling
_LAYERS = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M")


def _hz_to_mel(hz):
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)  # HTK


def mel_matrix(num_bins: int = N_FFT // 2 + 1, sample_rate: int = SAMPLE_RATE, num_bands: int = NUM_BANDS,
               low: float = MEL_LOW, high: float = MEL_HIGH) -> np.ndarray:
    """``(num_bins, num_bands)`` triangular HTK mel weights; bands equally spaced in mel, DC bin unused."""
    bin_mel = _hz_to_mel(np.linspace(0.0, sample_rate / 2, num_bins))[:, None]
    edges = np.linspace(_hz_to_mel(low), _hz_to_mel(high), num_bands + 2)
    left, centre, right = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mel - left) / (centre - left)
    falling = (right - bin_mel) / (right - centre)
    weights = np.clip(np.minimum(rising, falling), 0.0, None)
    weights[0] = 0.0
    return weights


def log_mel(wave: np.ndarray) -> np.ndarray:
    """``(frames, 64)`` VGGish log-mel spectrogram of a 16 kHz mono wave (float64)."""
    x = np.asarray(wave, dtype=np.float64).reshape(-1)
    if len(x) < WINDOW:
        return np.zeros((0, NUM_BANDS))
    frames = np.lib.stride_tricks.sliding_window_view(x, WINDOW)[::HOP]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW) / WINDOW)  # periodic Hann
    spectrum = np.abs(np.fft.rfft(frames * window, N_FFT))
    return np.log(spectrum @ mel_matrix() + LOG_OFFSET)


def waveform_to_examples(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``(N, 96, 64)`` float32 examples of a mono wave (resampled to 16 kHz; multi-channel: mean of ``axis 1``).

    A clip gives ``floor(frames / 96)`` examples (4 for 65535 samples at 16 kHz); a clip shorter than
    0.96 s gives none.
    """
    x = np.asarray(wave, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(1)
    if sample_rate != SAMPLE_RATE:
        import librosa

        x = librosa.resample(x, orig_sr=sample_rate, target_sr=SAMPLE_RATE)
    mel = log_mel(x)
    n = len(mel) // EXAMPLE_FRAMES
    return mel[: n * EXAMPLE_FRAMES].reshape(n, EXAMPLE_FRAMES, NUM_BANDS).astype(np.float32)


class VGGish(nn.Module):
    """The VGGish network with ``torchvggish``'s parameter names.

    Args:
        final_activation: apply the last ReLU (``torchvggish``'s default); False for FAD's convention.
    """

    def __init__(self, final_activation: bool = False):
        super().__init__()
        layers: List[nn.Module] = []
        channels = 1
        for v in _LAYERS:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, v, 3, padding=1), nn.ReLU(inplace=True)]
                channels = v
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(nn.Linear(512 * 4 * 6, 4096), nn.ReLU(inplace=True),
                                        nn.Linear(4096, 4096), nn.ReLU(inplace=True),
                                        nn.Linear(4096, EMBEDDING_SIZE))
        self.final_activation = final_activation

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        """``(N, [1,] 96, 64)`` log-mel examples -> ``(N, 128)`` embeddings."""
        if examples.dim() == 3:
            examples = examples[:, None]
        x = self.features(examples)              # (N, 512, 6, 4): time x mel
        x = x.permute(0, 2, 3, 1).flatten(1)     # TF's NHWC flattening order
        x = self.embeddings(x)
        return torch.relu(x) if self.final_activation else x


def check_state_dict(model: nn.Module, state: Dict[str, torch.Tensor], source: str) -> None:
    """Raise a ValueError naming each missing, unexpected or mis-shaped entry of ``state``."""
    if not isinstance(state, dict):
        raise ValueError(f"{source}: expected a VGGish state dict (torchvggish's vggish-10086976.pth layout), "
                         f"got {type(state).__name__}")
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    problems = [f"missing {k} {want[k]}" for k in want if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in want]
    problems += [f"{k}: shape {tuple(state[k].shape)}, expected {want[k]}" for k in want
                 if k in state and tuple(getattr(state[k], "shape", ())) != want[k]]
    if problems:
        raise ValueError(f"{source} is not a VGGish state dict (torchvggish layout: features.N.weight/bias, "
                         f"embeddings.{{0,2,4}}.weight/bias): " + "; ".join(problems[:8])
                         + (f"; ... ({len(problems)} problems)" if len(problems) > 8 else ""))


def download_state_dict(url: str = VGGISH_URL) -> Dict[str, torch.Tensor]:
    """The published weights through torch.hub's download cache (``<torch.hub.get_dir()>/checkpoints``)."""
    return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=True)


def load_vggish(model: Union[str, Path] = "vggish", final_activation: bool = False,
                device: str = "cpu") -> VGGish:
    """``"vggish"`` (download / torch.hub cache) or a local ``.pth`` state dict -> VGGish in eval mode."""
    with torch.device("meta"):  # no random init of 72 M parameters: the state dict replaces them
        net = VGGish(final_activation)
    if str(model) == "vggish":
        state, source = download_state_dict(), VGGISH_URL
    else:
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"VGGish checkpoint not found: {path} (give 'vggish' to download the "
                                    f"published weights, or a local copy of {VGGISH_URL.rsplit('/', 1)[1]})")
        state, source = torch.load(path, map_location="cpu", weights_only=True), str(path)
    check_state_dict(net, state, source)
    net.load_state_dict({k: v.float().contiguous() for k, v in state.items()}, assign=True)
    return net.eval().to(device)


def save_stand_in(path: Union[str, Path], seed: int = 0) -> Path:
    """Write a random VGGish state dict with the published layout and shapes, for tests and offline pipeline runs.

    Every weight is a strided view of a short random vector (``w[i, j, ...] = v[3 i + 2 j + ...]``), which
    ``torch.save`` stores as that vector: a file of about 0.3 MB instead of 290 MB that loads as a full
    VGGish. Its FAD numbers mean nothing.
    """
    g = torch.Generator().manual_seed(seed)
    state = {}
    with torch.device("meta"):  # shapes only
        shapes = {name: tuple(t.shape) for name, t in VGGish().state_dict().items()}
    for name, shape in shapes.items():
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        strides = tuple(range(len(shape) + 1, 1, -1))[:-1] + (1,)  # (..., 3, 2, 1)
        base = torch.randn(sum((d - 1) * st for d, st in zip(shape, strides)) + 1, generator=g)
        state[name] = (base / fan_in ** 0.5).as_strided(shape, strides)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


class VGGishEmbedding:
    """``embed_audio``: the per-example (0.96 s) VGGish embeddings of all clips, FAD's convention."""

    sample_rate = SAMPLE_RATE

    def __init__(self, model: Union[str, Path, VGGish] = "vggish", device: str = "cpu", batch_size: int = 64):
        self.net = model if isinstance(model, VGGish) else load_vggish(model, device=device)
        self.device = device
        self.batch_size = batch_size

    def embed_audio(self, waves: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        examples = [waveform_to_examples(w, sample_rate) for w in waves]
        x = np.concatenate(examples) if examples else np.zeros((0, EXAMPLE_FRAMES, NUM_BANDS), np.float32)
        if len(x) == 0:
            raise ValueError("no VGGish examples: every clip is shorter than 0.96 s")
        out = []
        with torch.no_grad():
            for i in range(0, len(x), self.batch_size):
                out.append(self.net(torch.from_numpy(x[i: i + self.batch_size]).to(self.device)).cpu().numpy())
        return np.concatenate(out)
