"""A VGGSound-shaped rehearsal corpus: YouTube-like videos and their faults, served by a local yt-dlp.

The VGGSound recipe's first stages meet, on real data, many containers and codecs, ids that are
gone, rate limits, cut downloads and broken files. :func:`make_rehearsal_corpus` writes a corpus
that has all of these, in a layout the recipe takes as it is, so that a whole run can be rehearsed
offline:

* ``lists/``  the official lists' formats (``vggsound.csv``, ``val.csv``, ``test-good.csv``,
  ``test-no-music.csv``, ``test-good-no-music.csv``, ``music_test.csv``): pass ``--lists_dir``;
  ``vggsound.csv`` lists a video twice and has a line with a bad start time, labels have quoted
  commas and non-ASCII letters;
* ``store/<ytid>.<ext>``  the "uploaded" videos, mixed as YouTube serves them: mp4 (H.264 + AAC,
  44.1 kHz stereo), webm (VP9 + Opus, 48 kHz), mkv (H.264 + Opus); 25 / 29.97 / 30 / 60 fps and
  variable frame rate; 144p to 1080p and portrait; audio a few ms longer or shorter than the
  picture. Pictures and sounds are the bridge world's, so separation still has something to learn;
* ``bin/yt-dlp``  a stand-in for yt-dlp (``python -m espnet2_clip.bin.rehearsal_ytdlp``) serving
  the store, with the faults of :data:`FAULTS`: point ``$ESPNET2_CLIP_YTDLP`` at it;
* ``manifest.json``  every video's format, split and fault, and the outcome each fault must have.

Faults (:data:`FAULTS`) and the outcome the pipeline must give them: ``missing`` with a reason in
the download report, ``retried`` (obtained after transient failures), ``bad`` (downloaded, then
skipped by the extraction with a reason), never a crash and never a silent wrong sample.
"""

import dataclasses
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np

from espnet2_clip.data.bridge_world import CLASSES, WorldConfig, video_item
from espnet2_clip.data.video import _run_ffmpeg
from espnet2_clip.utils.fileio import atomic_path, write_text_atomic

#: fault -> (what the stand-in yt-dlp does, the expected outcome, the download reason or extraction note)
FAULTS: Dict[str, Dict[str, str]] = {
    "unavailable": dict(does="exits 1: 'Video unavailable'", outcome="missing", reason="unavailable"),
    "private": dict(does="exits 1: 'Private video'", outcome="missing", reason="private"),
    "removed": dict(does="exits 1: removed for violating the Terms of Service", outcome="missing",
                    reason="unavailable"),
    "throttled": dict(does="exits 1 with HTTP Error 429 on its first 2 calls", outcome="retried", reason=""),
    "killed": dict(does="is killed (SIGKILL) half way through its first call, a partial file left",
                   outcome="retried", reason=""),
    "no_audio": dict(does="writes a video without an audio stream", outcome="missing", reason="no-audio"),
    "no_video": dict(does="writes an audio-only file", outcome="missing", reason="no-video"),
    "zero_byte": dict(does="writes an empty file and exits 0", outcome="missing", reason="broken"),
    "corrupt": dict(does="writes a file that is no container", outcome="missing", reason="broken"),
    "silent": dict(does="serves a video whose soundtrack is digital silence", outcome="bad", reason="silent"),
    "past_end": dict(does="the listed 10-s window starts after the video ends", outcome="missing",
                     reason="past-end"),
}

#: (container, video codec, audio codec, audio rate, channels) as YouTube serves them
FORMATS = (
    ("mp4", "libx264", "aac", 44100, 2),
    ("webm", "libvpx-vp9", "libopus", 48000, 2),
    ("mkv", "libx264", "libopus", 48000, 2),
    ("mp4", "libx264", "aac", 44100, 1),
)
FRAME_RATES = (25.0, 29.97, 30.0, 60.0, "vfr")
#: (width, height): 144p to 1080p, and portrait phone videos
SIZES = ((256, 144), (426, 240), (640, 360), (854, 480), (1280, 720), (1920, 1080), (360, 640))
#: labels with a comma (quoted in the csv) and non-ASCII letters, as VGGSound has
LABELS = {0: "circle, playing flute", 1: "triangle brass fanfare à la française"}
CLIP_SECONDS = 10


@dataclasses.dataclass
class SourceVideo:
    """One "uploaded" video of the store and how it is listed."""

    ytid: str
    cls: int
    label: str
    split: str  # train | valid | test | music_test
    start: int  # the listed window's start (s); MUSIC videos are downloaded whole
    seconds: float  # length of the uploaded video
    container: str
    vcodec: str
    acodec: str
    audio_rate: int
    channels: int
    fps: Union[float, str]
    width: int
    height: int
    audio_offset_ms: int  # soundtrack minus picture length
    fault: Optional[str] = None

    @property
    def file_name(self) -> str:
        return f"{self.ytid}.{self.container}"


def _ytid(i: int, tag: str) -> str:
    """An 11-character YouTube-like id."""
    return f"r{tag[:4]:_<4}{i:06d}"


def plan_corpus(num_videos: int, seed: int = 0, num_classes: int = 6) -> List[SourceVideo]:
    """The videos of a corpus: every fault once among the training videos, formats drawn per video
    (the first videos take every format, frame rate and size once, so that even a small corpus has
    them all); 10 % validation, 10 % test (at least 4), 2 MUSIC test videos."""
    if num_videos < 24:
        raise ValueError(f"a rehearsal corpus needs at least 24 videos (every fault and test pairs), got {num_videos}")
    rng = np.random.default_rng(seed)
    n_test = max(4, num_videos // 10)
    n_valid = max(2, num_videos // 10)
    splits = ["test"] * n_test + ["valid"] * n_valid + ["train"] * (num_videos - n_test - n_valid - 2) + ["music_test"] * 2
    faults = iter(FAULTS)
    videos = []
    for i, split in enumerate(splits):
        cls = i % num_classes
        container, vcodec, acodec, rate, channels = FORMATS[i % len(FORMATS)] if i < 8 else FORMATS[rng.integers(len(FORMATS))]
        fps = FRAME_RATES[i % len(FRAME_RATES)] if i < 8 else FRAME_RATES[rng.integers(len(FRAME_RATES))]
        # big frames are costly to encode: one of each size, then mostly small ones
        width, height = SIZES[i % len(SIZES)] if i < len(SIZES) else SIZES[rng.choice(4, p=[0.4, 0.3, 0.2, 0.1])]
        fault = next(faults, None) if split == "train" else None
        start = int(rng.integers(0, 3)) if split != "music_test" else 0
        seconds = start + CLIP_SECONDS + float(rng.uniform(0.2, 1.5))
        if fault == "past_end":
            start = 30  # the video is ~12 s long
        tag = "musc" if split == "music_test" else (fault or split)
        label = LABELS.get(cls, CLASSES[cls][0])
        videos.append(SourceVideo(_ytid(i, tag), cls, label, split, start, round(seconds, 3), container, vcodec,
                                  acodec, rate, channels, fps, width, height, int(rng.integers(-40, 41)), fault))
    missing = [f for f in faults]
    if missing:  # pragma: no cover - guarded by the size check above
        raise ValueError(f"not enough training videos for the faults {missing}")
    return videos


def _audio_args(v: SourceVideo) -> List:
    return ["-c:a", v.acodec, "-ar", v.audio_rate, "-ac", v.channels, "-b:a", "96k"]


def _video_args(v: SourceVideo) -> List:
    if v.fps == "vfr":  # drop every third frame of 30 fps and keep the time stamps: variable rate
        vf = f"fps=30,select='not(eq(mod(n\\,3)\\,1))',scale={v.width}:{v.height}:flags=bicubic,setsar=1"
        rate = ["-fps_mode", "vfr"]
    else:
        vf = f"fps={v.fps},scale={v.width}:{v.height}:flags=bicubic,setsar=1"
        rate = []
    if v.vcodec == "libvpx-vp9":
        codec = ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", 8, "-b:v", "300k"]
    else:
        codec = ["-c:v", "libx264", "-preset", "ultrafast", "-crf", 30]
    return ["-vf", vf, *rate, *codec, "-pix_fmt", "yuv420p", "-threads", 1]


def write_source_video(v: SourceVideo, path: Path, world: WorldConfig) -> None:
    """Encode one uploaded video from the bridge world's pictures and sound of its class."""
    cfg = dataclasses.replace(world, video_seconds=v.seconds + max(v.audio_offset_ms, 0) / 1000)
    frames, audio, _ = video_item(cfg, "train" if v.split == "train" else "valid", v.cls, int(v.ytid[-6:]))
    n_audio = int(round((v.seconds + v.audio_offset_ms / 1000) * world.fs))
    audio = audio[:n_audio]
    if v.fault == "silent":
        audio = np.zeros_like(audio)
    n_frames = int(round(v.seconds * world.video_fps))
    frames = np.ascontiguousarray(frames[:n_frames])
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, tempfile.TemporaryDirectory(dir=path.parent) as td:
        raw = Path(td) / "audio.f32"
        np.clip(audio, -1, 1).astype("<f4").tofile(raw)
        size = frames.shape[1]
        args: List = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size}x{size}", "-r", world.video_fps, "-i", "-",
                      "-f", "f32le", "-ar", world.fs, "-ac", 1, "-i", raw]
        if v.fault != "no_video":
            args += ["-map", "0:v:0", *_video_args(v)]
        if v.fault != "no_audio":
            args += ["-map", "1:a:0", *_audio_args(v)]
        fmt = {"mkv": "matroska"}.get(v.container, v.container)
        _run_ffmpeg([*args, "-f", fmt, tmp], path, "write video", stdin=frames.tobytes())


def _label_csv(label: str) -> str:
    return f'"{label}"' if "," in label else label


def write_lists(videos: List[SourceVideo], lists_dir: Path) -> None:
    """The official lists' formats for the corpus (see espnet2_clip.data.lists)."""
    def index_row(v: SourceVideo, frames: int = 12) -> str:
        return (f"data/vggsound/audio/{v.ytid[0]}/{v.ytid[1]}/{v.ytid}.wav,"
                f"data/vggsound/preprocessed/{v.ytid[0]}/{v.ytid[1]}/{v.ytid},{frames},{_label_csv(v.label)}\n")

    vgg = [v for v in videos if v.split != "music_test"]
    rows = [f"{v.ytid},{v.start},{_label_csv(v.label)},{'train' if v.split == 'train' else 'test'}\n" for v in vgg]
    rows.append(rows[0])  # a video listed twice, as vggsound.csv has
    rows.append("rbadtime0000,1:30,star,train\n")  # a malformed line: skipped and reported by stage 1
    test = [v for v in videos if v.split == "test"]
    good = test[: len(test) // 2]
    music = [v for v in videos if v.split == "music_test"]
    files = {
        "vggsound.csv": rows,
        "val.csv": [index_row(v) for v in videos if v.split == "valid"],
        "test-good.csv": [index_row(v) for v in good],
        "test-no-music.csv": [index_row(v) for v in test],
        "test-good-no-music.csv": [index_row(v) for v in good],
        "music_test.csv": [f"data/MUSIC/solo/audio/cello/{v.ytid}.wav,data/MUSIC/solo/preprocessed/cello/{v.ytid},"
                           f"{int(v.seconds)},cello\n" for v in music],
    }
    for name, lines in files.items():
        write_text_atomic(lists_dir / name, "".join(lines))


def write_ytdlp(out: Path) -> Path:
    """``out/bin/yt-dlp``: the stand-in yt-dlp serving this corpus."""
    exe = out / "bin" / "yt-dlp"
    write_text_atomic(exe, f'#!/bin/sh\nexec "{sys.executable}" -m espnet2_clip.bin.rehearsal_ytdlp '
                           f'--corpus "{out.resolve()}" "$@"\n')
    exe.chmod(0o755)
    return exe


def make_rehearsal_corpus(out_dir, num_videos: int = 2000, seed: int = 0, num_classes: int = 6,
                          progress: bool = True) -> Dict:
    """Write the corpus (see the module doc) into ``out_dir``; finished videos are kept on a rerun.

    Returns the manifest (also written to ``out_dir/manifest.json``).
    """
    from tqdm import tqdm

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not (out / "manifest.json").is_file() and not (out / "store").is_dir():
        raise FileExistsError(f"{out}: not empty and not a rehearsal corpus; choose an empty or new directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write_test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise OSError(f"{out}: cannot write the rehearsal corpus there: {e}") from e
    videos = plan_corpus(num_videos, seed, num_classes)
    world = WorldConfig(seed=seed, num_classes=num_classes, video_fps=4.0, frame_size=96)
    for v in tqdm(videos, desc="rehearsal videos", unit="video", disable=not progress):
        path = out / "store" / v.file_name
        if v.fault not in ("zero_byte", "corrupt") and not path.is_file():
            write_source_video(v, path, world)
    write_lists(videos, out / "lists")
    write_ytdlp(out)
    manifest = {"seed": seed, "num_classes": num_classes, "faults": FAULTS,
                "videos": [dataclasses.asdict(v) for v in videos]}
    write_text_atomic(out / "manifest.json", json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    shutil.rmtree(out / "state", ignore_errors=True)  # the stand-in's call counts start afresh
    return manifest
