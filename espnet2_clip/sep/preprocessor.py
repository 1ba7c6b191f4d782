"""Per-example preprocessing for CLIPSep training: choose a centre frame, crop, pick the query."""

from typing import Dict

import numpy as np
import torch
from typeguard import typechecked


class CLIPSepPreprocessor:
    """Crops a clip around a video frame and averages the query frames around it.

    Frames are at ``frame_rate`` fps and 1-based: frame ``c`` covers ``[(c-1)/fps, c/fps)`` and
    the audio window is centred at ``(c - 0.5) / fps``. Training draws ``c`` uniformly with
    ``margin`` frames kept from each end (reduced for short videos); validation uses the middle
    frame ``n_frames // 2`` like the official evaluation. A per-frame query ``(n_frames, D)`` is
    averaged over frames ``c - 1, c, c + 1``; a per-clip query (text embedding, label id) is
    used as it is.
    """

    @typechecked
    def __init__(
        self,
        train: bool,
        sample_rate: int = 16000,
        clip_samples: int = 65535,
        frame_rate: float = 1.0,
        margin: int = 3,
        query_frames: int = 3,
    ):
        self.train = train
        self.sample_rate = sample_rate
        self.clip_samples = clip_samples
        self.frame_rate = frame_rate
        self.margin = margin
        self.query_frames = query_frames

    def _num_frames(self, wave: np.ndarray, query) -> int:
        if query is not None and query.ndim == 2:
            return query.shape[0]
        return max(1, int(len(wave) / self.sample_rate * self.frame_rate))

    def _centre_frame(self, num_frames: int) -> int:
        if not self.train:
            return max(1, num_frames // 2)
        margin = min(self.margin, (num_frames - 1) // 2)
        # torch's RNG: DataLoader workers get a fresh seed every epoch (a stored numpy generator
        # would be copied into each worker and repeat the same draws every epoch).
        return int(torch.randint(margin + 1, num_frames - margin + 1, ()).item())

    def crop(self, wave: np.ndarray, centre_frame: int) -> np.ndarray:
        """Crop ``clip_samples`` centred on the frame (tiling too-short clips, zero-padding edges)."""
        if len(wave) == 0:
            return np.zeros(self.clip_samples, dtype=np.float32)
        if len(wave) < self.clip_samples:
            wave = np.tile(wave, int(np.ceil(self.clip_samples / len(wave))))
        centre = int(round((centre_frame - 0.5) / self.frame_rate * self.sample_rate))
        start = centre - self.clip_samples // 2
        out = np.zeros(self.clip_samples, dtype=np.float32)
        src_lo, src_hi = max(start, 0), min(start + self.clip_samples, len(wave))
        if src_hi > src_lo:
            out[src_lo - start : src_hi - start] = wave[src_lo:src_hi]
        return out

    def query_at(self, query: np.ndarray, centre_frame: int) -> np.ndarray:
        """Mean of the per-frame query over the frames around ``centre_frame`` (1-based)."""
        half = self.query_frames // 2
        lo = max(centre_frame - 1 - half, 0)
        hi = min(centre_frame - 1 + half + 1, query.shape[0])
        return query[lo:hi].mean(axis=0).astype(np.float32)

    def __call__(self, uid: str, data: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        wave = data["speech_ref1"]
        if wave.ndim == 2:  # (N, C): downmix
            wave = wave.mean(axis=1)
        query = data.get("query")
        if query is not None and query.ndim == 2 and query.shape[0] == 0:
            raise ValueError(f"{uid}: the per-frame query has no frames")
        centre = self._centre_frame(self._num_frames(wave, query))
        data["speech_ref1"] = self.crop(wave.astype(np.float32), centre)
        if query is not None and query.ndim == 2:
            data["query"] = self.query_at(query, centre)
        return data
