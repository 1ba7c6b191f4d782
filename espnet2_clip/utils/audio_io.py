"""Reading recordings as they are (any rate, any channel count, any length) in blocks, and
writing outputs atomically. Every failure is a ``ValueError`` whose one-line message names the
file and says what was expected."""

import contextlib
import logging
import tempfile
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np
import soundfile as sf

PathLike = Union[str, Path]
VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".m4v")
OUTPUT_SUBTYPES = {".wav": "FLOAT", ".flac": "PCM_24", ".ogg": "VORBIS"}
EXPECTED_AUDIO = "an audio file soundfile reads (wav, flac, ogg, mp3, ...) or a video with a soundtrack"


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line (whitespace runs collapsed), cut to ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_input_file(path: PathLike, what: str = "input") -> Path:
    """``path`` as a Path if it is a non-empty file, else a ValueError naming it."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{what} '{path}': no such file")
    if not path.is_file():
        raise ValueError(f"{what} '{path}': not a file")
    if path.stat().st_size == 0:
        raise ValueError(f"{what} '{path}': empty (0 bytes); expected {EXPECTED_AUDIO}")
    return path


class AudioReader:
    """Random access to a recording in blocks, without loading it.

    Attributes:
        path: The file read (a temporary wav holding the soundtrack of a video input).
        samplerate: Its rate (Hz); channels: its channel count; frames: its length N.
    """

    def __init__(self, path: PathLike, what: str = "input"):
        """Open ``path`` (audio, or a video whose soundtrack is decoded as it is)."""
        self.source = check_input_file(path, what)
        self.what = what
        self._tmpdir = None
        self.path = self.source
        if self.source.suffix.lower() in VIDEO_SUFFIXES:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="espnet2_clip_soundtrack_")
            self.path = Path(self._tmpdir.name) / "soundtrack.wav"
            extract_soundtrack(self.source, self.path)
        truncated = wav_truncation(self.path)
        if truncated:
            self.close()
            raise ValueError(f"{what} '{self.source}': truncated WAV ({truncated})")
        try:
            self._file = sf.SoundFile(str(self.path))
        except Exception as exc:  # libsndfile raises several types for unreadable files
            self.close()
            raise ValueError(f"{what} '{self.source}': not readable audio ({one_line(exc, 120)}); "
                             f"expected {EXPECTED_AUDIO}") from exc
        self.samplerate = int(self._file.samplerate)
        self.channels = int(self._file.channels)
        self.frames = int(self._file.frames)
        if self.frames <= 0:
            self.close()
            raise ValueError(f"{what} '{self.source}': no audio samples; expected {EXPECTED_AUDIO}")

    def read(self, start: int, frames: int) -> np.ndarray:
        """(C, frames) float32 samples from ``start``; NaN / Inf / missing samples raise."""
        try:
            self._file.seek(start)
            block = self._file.read(frames, dtype="float32", always_2d=True)
        except Exception as exc:
            raise ValueError(f"{self.what} '{self.source}': cannot read samples at {start / self.samplerate:.2f} s "
                             f"({one_line(exc, 120)}); the file may be truncated or corrupt") from exc
        if block.shape[0] < frames:
            raise ValueError(f"{self.what} '{self.source}': truncated: the header promises {self.frames} frames "
                             f"but only {start + block.shape[0]} could be read")
        if not np.isfinite(block).all():
            bad = int(np.flatnonzero(~np.isfinite(block).all(1))[0]) + start
            raise ValueError(f"{self.what} '{self.source}': NaN or Inf sample at {bad / self.samplerate:.3f} s "
                             f"(frame {bad}); expected finite audio")
        return block.T

    def read_all(self) -> np.ndarray:
        """(C, N) float32: the whole recording."""
        return self.read(0, self.frames)

    def close(self) -> None:
        """Close the file and remove a decoded soundtrack."""
        if getattr(self, "_file", None) is not None:
            self._file.close()
            self._file = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> "AudioReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def wav_truncation(path: Path) -> Optional[str]:
    """What is missing from a RIFF/WAVE file whose data chunk is shorter than its header says
    (libsndfile silently reads such a file as a shorter one); None if complete or not a WAV."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk, length = f.read(4), int.from_bytes(f.read(4), "little")
            if chunk == b"data":
                found = size - pos - 8
                if 0 < length < 0xFFFFFFFF and found < length:
                    return f"the header promises {length} bytes of samples, the file holds {found}"
                return None
            pos += 8 + length + (length & 1)
    return None


def extract_soundtrack(video: Path, wav_out: Path) -> None:
    """Decode the first audio track of ``video`` to a float wav at its own rate and channels."""
    from espnet2_clip.data.video import VideoError, _run_ffmpeg

    try:
        _run_ffmpeg(["-i", video, "-map", "0:a:0", "-vn", "-c:a", "pcm_f32le", "-f", "wav", wav_out],
                    video, "extract audio")
    except VideoError as exc:
        raise ValueError(one_line(exc)) from exc
    if not wav_out.is_file() or wav_out.stat().st_size <= 80:
        raise ValueError(f"video '{video}': its audio track decoded to no samples")


def output_subtype(path: PathLike) -> str:
    """The soundfile subtype written for ``path``'s extension (ValueError for other extensions)."""
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_SUBTYPES:
        raise ValueError(f"output '{path}': unsupported extension '{suffix}'; expected one of "
                         f"{', '.join(OUTPUT_SUBTYPES)}")
    return OUTPUT_SUBTYPES[suffix]


def check_output_path(path: PathLike) -> Path:
    """``path`` if its directory exists and is writable (checked before any work is done)."""
    import os

    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"output '{path}': directory '{parent}' does not exist")
    try:  # a real probe: permission bits do not tell root about read-only mounts
        fd, probe = tempfile.mkstemp(prefix=".espnet2_clip_probe.", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"output '{path}': directory '{parent}' is not writable ({exc.strerror})") from exc
    if path.is_dir():
        raise ValueError(f"output '{path}': is a directory; expected a file path")
    return path


@contextlib.contextmanager
def open_outputs(paths, samplerate: int, channels: int) -> Iterator[list]:
    """Open ``paths`` for writing under temporary names; they are moved into place only when the
    block exits without an error, so a failure leaves no partial output."""
    from espnet2_clip.utils.fileio import atomic_path

    with contextlib.ExitStack() as stack:
        files = []
        for path in paths:
            tmp = stack.enter_context(atomic_path(path))
            fmt = Path(path).suffix.lower().lstrip(".").upper()
            handle = sf.SoundFile(str(tmp), "w", samplerate, channels, output_subtype(path), format=fmt)
            files.append(handle)
            stack.callback(handle.close)  # closed (LIFO) before atomic_path moves it
        yield files


def warn_if_above_full_scale(wave: np.ndarray, path: PathLike, logger: Optional[logging.Logger] = None) -> None:
    """Say so when ``wave``, written to ``path``, peaks above full scale: float WAV keeps it whole (players
    clip it), the integer and lossy formats clip it."""
    peak = float(np.max(np.abs(wave), initial=0.0))
    if peak <= 1.0:
        return
    subtype = output_subtype(path)
    fate = ("kept whole in the float WAV, but players clip it" if subtype in ("FLOAT", "DOUBLE")
            else f"clipped in {Path(path).suffix.lower()} ({subtype}); write .wav (float) to keep it whole")
    (logger or logging.getLogger("espnet2_clip")).warning(
        f"output '{path}' peaks at {peak:.2f}, above full scale: {fate}")


def warn_if_silent(peak: float, source: PathLike, logger: Optional[logging.Logger] = None) -> None:
    """Say so when the input was all zeros (the outputs are silence then)."""
    if peak == 0.0:
        (logger or logging.getLogger("espnet2_clip")).warning(
            f"input '{source}' is all zeros: the outputs are silence")
