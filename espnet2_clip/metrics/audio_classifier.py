"""A small audio classifier (CNN on log-mels) used as the bridge world's evaluation model.

CLIPSonic is judged on real data by FAD (VGGish) and CLAP score; neither has weights that fit the
bridge world's made-up sounds. So the mini recipe trains this classifier on the world's own
clean audio (training-video crops + their labels; no generated audio) and uses it twice:

* **relevance**: its accuracy on clips generated for each class's query (chance 1/K);
* **fidelity proxy**: a Fréchet distance between generated and real clips in its penultimate
  (embedding) layer, like FAD's use of VGGish (:func:`espnet2_clip.metrics.generation.frechet_distance`).

Its own log-mel front end (64 bins by default) is independent of the generator's mel
configuration, so every system is scored by the same ear. Features are per-clip
level-normalised (max of the log-mel set to 0) so that the level of a generated clip does not
decide its class.

Why not ESPnet's classification task (``espnet2.tasks.cls.CLSTask``, in espnet 202511): it does
not fit here as a task. Its model, ``ESPnetClassificationModel``, refuses to be built without
``torcheval`` (used for its metrics only; not in our pinned stack, so a new dependency); the task
trains through ESPnet's Trainer from a data dir with a ``token_list`` and writes class scores,
while this classifier must also give the penultimate-layer embedding that the Fréchet distance
is computed in (:class:`espnet2_clip.metrics.generation.ClassifierEmbedding`) and trains in the
recipe's stage in seconds to minutes. The modules the task would build (ESPnet's default
frontend, utterance MVN, a transformer encoder, the linear decoder) were measured beside ours
with the same training recipe (``python -m espnet2_clip.bin.library_benchmark --sections
classifier``; 8 bridge-world classes, 150 steps of 16 1-s crops, a shared 2-core machine): both
reach 100 % on 48 held-out targets, at 1.8 s (ours, 69 k parameters) vs 1.3 s (ESPnet's, 200 k)
per step. They would do; but swapping them changes the embedding space of every FD number the
README reports (the CLIPSonic recipe would have to be rerun), for no gain in accuracy, so the
classifier stays ours until ``torcheval`` is in the stack and the task can host it whole.
"""

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from typeguard import typechecked

from espnet2_clip.t2a.mel import MelFrontend

PathLike = Union[str, Path]


class AudioClassifier(torch.nn.Module):
    """Wave ``(B, N)`` -> logits ``(B, K)``; :meth:`embed` gives the ``(B, embed_dim)`` features."""

    @typechecked
    def __init__(
        self,
        class_names: Sequence[str],
        fs: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 256,
        n_mels: int = 64,
        channels: Sequence[int] = (16, 32, 64, 64),
        embed_dim: int = 64,
        dropout: float = 0.1,
    ):
        """Initialize AudioClassifier.

        Args:
            class_names: The K class names (output order).
            fs: Sample rate (Hz) of the input waves.
            n_fft: FFT size of the log-mel.
            hop_length: Hop of the log-mel.
            n_mels: Mel bins.
            channels: Channels of the conv blocks (conv-BN-ReLU, 2x2 max-pool each).
            embed_dim: Width of the embedding layer (FD is computed there).
            dropout: Dropout before the output layer.
        """
        super().__init__()
        if len(class_names) < 2:
            raise ValueError(f"need at least 2 classes, got {list(class_names)}")
        if len(set(class_names)) != len(class_names):
            raise ValueError(f"class names must be unique: {list(class_names)}")
        self.class_names = list(class_names)
        self.conf = dict(fs=fs, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, channels=list(channels),
                         embed_dim=embed_dim, dropout=dropout)
        self.mel = MelFrontend(fs=fs, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, fmax=fs // 2,
                               log_min=-6.0, log_max=1.0)
        blocks, in_ch = [], 1
        for ch in channels:
            blocks += [torch.nn.Conv2d(in_ch, ch, 3, padding=1), torch.nn.BatchNorm2d(ch), torch.nn.ReLU(),
                       torch.nn.MaxPool2d(2)]
            in_ch = ch
        self.convs = torch.nn.Sequential(*blocks)
        self.proj = torch.nn.Linear(2 * in_ch, embed_dim)
        self.dropout = torch.nn.Dropout(dropout)
        self.out = torch.nn.Linear(embed_dim, len(self.class_names))

    @property
    def sample_rate(self) -> int:
        return int(self.conf["fs"])

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, N) -> (B, 1, n_mels, T) level-normalised log-mel."""
        if wave.dim() != 2:
            raise ValueError(f"waves must be (B, N), got {tuple(wave.shape)}")
        x = self.mel(wave.float())
        x = x - x.amax(dim=(1, 2), keepdim=True)  # per-clip level normalisation (loudest bin -> 0)
        return x.unsqueeze(1)

    def embed(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, N) -> (B, embed_dim) embedding (mean + max pooled conv features, projected)."""
        h = self.convs(self.features(wave))
        h = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        return F.relu(self.proj(h))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(self.embed(wave)))

    @torch.no_grad()
    def predict(self, waves: Sequence[np.ndarray], batch_size: int = 16) -> Tuple[np.ndarray, np.ndarray]:
        """Class indices ``(N,)`` and embeddings ``(N, embed_dim)`` of 1-D waves at ``sample_rate``.

        Waves of different lengths are processed one batch of equal length at a time
        (shorter ones are zero-padded to the longest of their batch).
        """
        self.eval()
        preds, embs = [], []
        for start in range(0, len(waves), batch_size):
            batch = [np.asarray(w, dtype=np.float32).reshape(-1) for w in waves[start : start + batch_size]]
            if any(len(w) == 0 for w in batch):
                raise ValueError("cannot classify an empty wave")
            length = max(len(w) for w in batch)
            x = torch.from_numpy(np.stack([np.pad(w, (0, length - len(w))) for w in batch]))
            device = self.out.weight.device
            emb = self.embed(x.to(device))
            preds.append(self.out(emb).argmax(-1).cpu().numpy())
            embs.append(emb.cpu().numpy())
        if not preds:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.conf["embed_dim"]), dtype=np.float32)
        return np.concatenate(preds), np.concatenate(embs).astype(np.float64)


def save_classifier(model: AudioClassifier, out_dir: PathLike, extra: Optional[Dict] = None) -> Dict[str, Path]:
    """Write ``config.yaml`` (class names + architecture) and ``model.pth``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = {"class_names": model.class_names, "classifier_conf": model.conf}
    config.update(extra or {})
    (out_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    torch.save(model.state_dict(), out_dir / "model.pth")
    return {"config": out_dir / "config.yaml", "model_file": out_dir / "model.pth"}


def load_classifier(model_dir: PathLike, device: str = "cpu") -> AudioClassifier:
    """Load a classifier written by :func:`save_classifier` (a directory), in eval mode."""
    model_dir = Path(model_dir)
    config_path = model_dir / "config.yaml"
    if not config_path.is_file():
        raise FileNotFoundError(f"no audio classifier in {model_dir} (config.yaml missing): train one with "
                                "python -m espnet2_clip.bin.classifier_train")
    config = yaml.safe_load(config_path.read_text())
    model = AudioClassifier(config["class_names"], **config["classifier_conf"])
    model.load_state_dict(torch.load(model_dir / "model.pth", map_location=device))
    return model.to(device).eval()


def random_crops(waves: List[np.ndarray], num_samples: int, rng: np.random.Generator,
                 gain_db: float = 0.0) -> np.ndarray:
    """One random ``num_samples`` crop per wave (zero-padded if shorter), random gain of ±``gain_db``."""
    out = np.zeros((len(waves), num_samples), dtype=np.float32)
    for i, w in enumerate(waves):
        if len(w) > num_samples:
            s = int(rng.integers(0, len(w) - num_samples + 1))
            seg = w[s : s + num_samples]
        else:
            seg = w
        gain = 10.0 ** (rng.uniform(-gain_db, gain_db) / 20.0) if gain_db > 0 else 1.0
        out[i, : len(seg)] = seg * gain
    return out
