"""Per-example preprocessing for CLIPSep training: choose a centre frame, crop, pick the query."""

from typing import Dict, Union

import numpy as np
import soundfile
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

    The clip may come as a waveform (ESPnet's ``sound`` type, which reads the whole file) or as
    the audio file's path (the ``text`` type on the same ``wav.scp``: "returned as is, converted by
    the preprocessor"). With a path only the cropped window is read (a seek into the file): a
    4.1-s crop of a 10-s VGGSound clip reads 41 % of it. Both give the same samples.
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

    def _num_frames(self, num_samples: int, query) -> int:
        if query is not None and query.ndim == 2:
            return query.shape[0]
        return max(1, int(num_samples / self.sample_rate * self.frame_rate))

    def _centre_frame(self, num_frames: int) -> int:
        if not self.train:
            return max(1, num_frames // 2)
        margin = min(self.margin, (num_frames - 1) // 2)
        # torch's RNG: DataLoader workers get a fresh seed every epoch (a stored numpy generator
        # would be copied into each worker and repeat the same draws every epoch).
        return int(torch.randint(margin + 1, num_frames - margin + 1, ()).item())

    def _window(self, centre_frame: int, num_samples: int) -> tuple:
        """``(start, lo, hi)``: the crop starts at sample ``start`` (may be < 0); ``[lo, hi)`` of the
        ``num_samples``-long clip lies inside it."""
        centre = int(round((centre_frame - 0.5) / self.frame_rate * self.sample_rate))
        start = centre - self.clip_samples // 2
        return start, max(start, 0), min(start + self.clip_samples, num_samples)

    def _place(self, part: np.ndarray, start: int, lo: int) -> np.ndarray:
        out = np.zeros(self.clip_samples, dtype=np.float32)
        out[lo - start : lo - start + len(part)] = part
        return out

    def crop(self, wave: np.ndarray, centre_frame: int) -> np.ndarray:
        """Crop ``clip_samples`` centred on the frame (tiling too-short clips, zero-padding edges)."""
        if len(wave) == 0:
            return np.zeros(self.clip_samples, dtype=np.float32)
        if len(wave) < self.clip_samples:
            wave = np.tile(wave, int(np.ceil(self.clip_samples / len(wave))))
        start, lo, hi = self._window(centre_frame, len(wave))
        return self._place(wave[lo:max(hi, lo)], start, lo)

    def _read_crop(self, uid: str, path: str, query) -> tuple:
        """``(crop, centre_frame)`` read from the audio file: only the window unless the clip is
        shorter than a crop (then it is read whole and tiled, as :meth:`crop` does)."""
        try:
            with soundfile.SoundFile(path) as f:
                if f.samplerate != self.sample_rate:
                    raise ValueError(f"is {f.samplerate} Hz, expected {self.sample_rate} Hz (the model's sample_rate; "
                                     "resample it, as the recipes' stage 3 does)")
                centre = self._centre_frame(self._num_frames(f.frames, query))
                if f.frames < self.clip_samples:
                    return self.crop(f.read(dtype="float32", always_2d=True).mean(axis=1), centre), centre
                start, lo, hi = self._window(centre, f.frames)
                f.seek(lo)
                if f.channels == 1:  # straight into the crop
                    out = np.zeros(self.clip_samples, dtype=np.float32)
                    f.read(max(hi - lo, 0), dtype="float32", out=out[lo - start : lo - start + max(hi - lo, 0)])
                    return out, centre
                part = f.read(max(hi - lo, 0), dtype="float32", always_2d=True).mean(axis=1)
        except (soundfile.LibsndfileError, RuntimeError, ValueError) as e:
            raise ValueError(f"{uid}: cannot read a training clip from {path}: {e}") from e
        return self._place(part, start, lo), centre

    def query_at(self, query: np.ndarray, centre_frame: int) -> np.ndarray:
        """Mean of the per-frame query over the frames around ``centre_frame`` (1-based)."""
        half = self.query_frames // 2
        lo = max(centre_frame - 1 - half, 0)
        hi = min(centre_frame - 1 + half + 1, query.shape[0])
        return query[lo:hi].mean(axis=0).astype(np.float32)

    def __call__(self, uid: str, data: Dict[str, Union[np.ndarray, str]]) -> Dict[str, np.ndarray]:
        wave = data["speech_ref1"]
        query = data.get("query")
        if query is not None and query.ndim == 2 and query.shape[0] == 0:
            raise ValueError(f"{uid}: the per-frame query has no frames")
        if isinstance(wave, str):  # a path (the ``text`` type): read only the window
            data["speech_ref1"], centre = self._read_crop(uid, wave, query)
        else:
            if wave.ndim == 2:  # (N, C): downmix
                wave = wave.mean(axis=1)
            centre = self._centre_frame(self._num_frames(len(wave), query))
            data["speech_ref1"] = self.crop(wave.astype(np.float32), centre)
        if query is not None and query.ndim == 2:
            data["query"] = self.query_at(query, centre)
        return data
