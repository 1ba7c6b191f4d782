"""Video I/O through the ffmpeg command line: audio / frame extraction and mp4 writing.

The ffmpeg binary is ``ffmpeg`` on ``PATH`` when present, else the static build shipped by the
``imageio-ffmpeg`` package (``imageio_ffmpeg.get_ffmpeg_exe()``); ``$ESPNET2_CLIP_FFMPEG``
overrides both.

Frame sampling (CLIPSep convention): :func:`extract_frames` runs ffmpeg's ``fps`` filter with
``round=down``, i.e. output frame ``i`` (1-based, file ``{i:06d}.jpg``) shows the last decoded
frame whose timestamp lies in ``[(i-1)/fps, i/fps)`` -- with ``fps=1`` frame ``i`` covers
second ``[i-1, i)``. A video of ``D`` seconds gives ``floor(D * fps)`` frames (ffmpeg may add one
more when the last interval is almost complete; see :func:`extract_frames`). Every frame's short
side is resized to ``size`` with bicubic interpolation, then the centre ``size x size`` is cropped.

All outputs are written atomically (a temporary file/dir next to the target, renamed on
success): a killed extraction leaves no half-written output, and reruns skip finished outputs.
"""

import errno
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np

from espnet2_clip.utils.fileio import atomic_path

PathLike = Union[str, os.PathLike]

_STDERR_TAIL = 1500


class VideoError(RuntimeError):
    """Base class of the errors raised by this module."""


class FFmpegNotFoundError(VideoError):
    """No usable ffmpeg binary."""


class VideoDecodeError(VideoError):
    """ffmpeg could not read / decode a file (missing, corrupt, unsupported)."""


class NoAudioStreamError(VideoDecodeError):
    """The file decodes but has no audio track."""


class NoVideoStreamError(VideoDecodeError):
    """The file decodes but has no video track."""


class VideoEncodeError(VideoError):
    """ffmpeg failed while writing a video."""


class DiskFullError(OSError):
    """No space left where ffmpeg writes: the disk's fault, not the input's (``errno`` ENOSPC)."""


_FFMPEG: Optional[str] = None


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary (cached)."""
    global _FFMPEG
    if _FFMPEG is None:
        exe = os.environ.get("ESPNET2_CLIP_FFMPEG") or shutil.which("ffmpeg")
        if not exe:
            try:
                import imageio_ffmpeg

                exe = imageio_ffmpeg.get_ffmpeg_exe()
            except Exception as e:  # pragma: no cover - depends on the install
                raise FFmpegNotFoundError(
                    "ffmpeg not found: install it on PATH or `pip install imageio-ffmpeg`"
                ) from e
        _FFMPEG = exe
    return _FFMPEG


def _tail(text: str) -> str:
    text = text.strip()
    if len(text) > _STDERR_TAIL:
        text = "..." + text[-_STDERR_TAIL:]
    return text


def _run_ffmpeg(args: Sequence[str], src: PathLike, what: str, stdin: Optional[bytes] = None):
    """Run ffmpeg; map failures to the exception classes above, naming ``src``."""
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *map(str, args)]
    if stdin is not None:
        cmd.remove("-nostdin")
    proc = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", errors="replace")
        msg = f"{src}: ffmpeg failed to {what} (exit {proc.returncode}): {_tail(err)!r}"
        low = err.lower()
        if "no space left on device" in low:
            raise DiskFullError(errno.ENOSPC, f"no space left on device (ffmpeg, {what} of {src}): {_tail(err)!r}")
        if what.startswith("write"):
            raise VideoEncodeError(msg)
        if "matches no streams" in low and "0:a" in low:
            raise NoAudioStreamError(f"{src}: no audio track ({what}); ffmpeg: {_tail(err)!r}")
        if "matches no streams" in low and "0:v" in low:
            raise NoVideoStreamError(f"{src}: no video track ({what}); ffmpeg: {_tail(err)!r}")
        raise VideoDecodeError(msg)
    if not what.startswith("write"):
        err = proc.stderr.decode("utf-8", errors="replace")
        if "partial file" in err:  # ffmpeg exits 0 on a truncated mp4 (e.g. a cut download)
            raise VideoDecodeError(f"{src}: truncated file ({what}); ffmpeg: {_tail(err)!r}")
    return proc


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _public_mode(path: Path) -> None:
    """Give a temp-created output the usual permissions (mkstemp/mkdtemp use 0600/0700)."""
    try:
        base = 0o777 if path.is_dir() else 0o666
        path.chmod(base & ~_umask())
        if path.is_dir():
            for p in path.iterdir():
                p.chmod(0o666 & ~_umask())
    except OSError:  # pragma: no cover
        pass


def _check_input(video: PathLike) -> Path:
    video = Path(video)
    if not video.is_file():
        raise VideoDecodeError(f"{video}: no such file")
    return video


def extract_audio(
    video: PathLike, wav_out: PathLike, fs: int = 16000, overwrite: bool = False
) -> Path:
    """Decode the first audio track of ``video`` to a mono PCM16 wav at ``fs`` Hz.

    Channels are averaged by ffmpeg's down-mix. Skips the work when ``wav_out`` exists
    (unless ``overwrite``). Returns ``wav_out``.

    Raises:
        NoAudioStreamError: the file has no audio track.
        VideoDecodeError: missing / undecodable file (message names it and quotes ffmpeg).
    """
    wav_out = Path(wav_out)
    if wav_out.is_file() and not overwrite:
        return wav_out
    video = _check_input(video)
    with atomic_path(wav_out) as tmp:
        _run_ffmpeg(
            ["-i", video, "-map", "0:a:0", "-vn", "-ac", 1, "-ar", int(fs),
             "-c:a", "pcm_s16le", "-f", "wav", tmp],
            video, "extract audio",
        )
        if tmp.stat().st_size <= 44:
            raise VideoDecodeError(f"{video}: audio track decoded to no samples")
        _public_mode(tmp)
    return wav_out


def list_frames(frame_dir: PathLike) -> List[Path]:
    """Sorted frame files (``000001.jpg`` ...) of a directory written by :func:`extract_frames`."""
    return sorted(p for p in Path(frame_dir).iterdir() if p.suffix in (".jpg", ".png"))


def extract_frames(
    video: PathLike,
    out_dir: PathLike,
    fps: float = 1,
    size: int = 224,
    overwrite: bool = False,
    max_frames: Optional[int] = None,
) -> List[Path]:
    """Write ``fps`` frames per second of ``video`` as ``out_dir/000001.jpg``, ...

    Frame ``i`` is sampled from ``[(i-1)/fps, i/fps)`` (``fps`` filter, ``round=down``); short
    side resized to ``size`` (bicubic), centre crop ``size x size``; JPEG quality ``-q:v 2``.
    The directory is filled under a temporary name and renamed when complete, so an existing
    ``out_dir`` is a finished one and is reused (unless ``overwrite``).

    Returns the sorted frame paths.

    Raises:
        NoVideoStreamError / VideoDecodeError: see :func:`extract_audio`.
    """
    out_dir = Path(out_dir)
    if out_dir.is_dir() and not overwrite:
        frames = list_frames(out_dir)
        if frames:
            return frames
    video = _check_input(video)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        vf = (
            f"fps=fps={fps}:round=down,"
            f"scale={size}:{size}:force_original_aspect_ratio=increase:flags=bicubic,"
            f"crop={size}:{size}"
        )
        args = ["-i", video, "-map", "0:v:0", "-an", "-vf", vf, "-fps_mode", "passthrough",
                "-q:v", 2]
        if max_frames is not None:
            args += ["-frames:v", int(max_frames)]
        _run_ffmpeg([*args, "-start_number", 1, tmp / "%06d.jpg"], video, "extract frames")
        if not list_frames(tmp):
            raise VideoDecodeError(f"{video}: no video frames decoded")
        _public_mode(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return list_frames(out_dir)


def write_video(
    path: PathLike,
    frames: np.ndarray,
    fps: float,
    audio: Optional[np.ndarray] = None,
    fs: int = 16000,
    vcodec: str = "libx264",
    audio_bitrate: str = "64k",
    crf: int = 23,
) -> Path:
    """Write an mp4 from ``frames`` (uint8, ``(T, H, W, 3)`` RGB) and optional mono ``audio``.

    Video: ``vcodec`` (``libx264`` + yuv420p by default; ``mpeg4`` also works), ``fps`` frames per
    second; odd ``H``/``W`` are padded by one pixel (yuv420p needs even sizes). Audio: float
    samples in [-1, 1] at ``fs`` Hz, AAC. Without ``audio`` the file has no audio track. Written
    atomically; bit-exact flags make the output depend only on the inputs.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{path}: frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    t, h, w, _ = frames.shape
    if t == 0:
        raise ValueError(f"{path}: no frames")
    ph, pw = h % 2, w % 2
    if ph or pw:
        frames = np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
        h, w = h + ph, w + pw
    frames = np.ascontiguousarray(frames)
    args: List = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", fps, "-i", "-"]
    with tempfile.TemporaryDirectory(prefix=".write_video.", dir=path.parent if path.parent.exists() else None) as td:
        if audio is not None:
            audio = np.asarray(audio, dtype=np.float32).reshape(-1)
            raw = Path(td) / "audio.f32"
            np.clip(audio, -1.0, 1.0).astype("<f4").tofile(raw)
            args += ["-f", "f32le", "-ar", int(fs), "-ac", 1, "-i", raw]
        args += ["-map", "0:v:0"]
        if audio is not None:
            args += ["-map", "1:a:0", "-c:a", "aac", "-b:a", audio_bitrate]
        if vcodec == "libx264":
            args += ["-c:v", "libx264", "-preset", "veryfast", "-crf", crf, "-threads", 1]
        else:
            args += ["-c:v", vcodec, "-q:v", 3]
        args += ["-pix_fmt", "yuv420p", "-map_metadata", "-1", "-fflags", "+bitexact",
                 "-flags:v", "+bitexact", "-flags:a", "+bitexact", "-movflags", "+faststart",
                 "-f", "mp4"]
        with atomic_path(path) as tmp:
            _run_ffmpeg([*args, tmp], path, "write video", stdin=frames.tobytes())
            _public_mode(tmp)
    return path


def read_wav(path: PathLike):
    """Read a wav as float32 mono ``(N,)`` and its rate (channels are averaged)."""
    import soundfile

    data, fs = soundfile.read(str(path), dtype="float32", always_2d=True)
    return data.mean(axis=1), fs
