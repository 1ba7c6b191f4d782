"""Extract 16 kHz mono audio and 1 fps frames from the videos of a data dir.

Input: ``DATA_DIR/video.scp`` (``uttid path.mp4``). Output (in ``--output_dir``, default DATA_DIR):

* ``wav.scp``          ``uttid AUDIO_DIR/uttid.wav`` (PCM16, ``--fs`` Hz, mono)
* ``frames.scp``       ``uttid FRAMES_DIR/uttid`` (``000001.jpg`` ...; frame i covers
                       ``[(i-1)/fps, i/fps)`` seconds, short side resized to ``--size`` + centre crop)
* ``utt2num_frames``   ``uttid number_of_frames``
* ``bad_videos``       ``uttid reason`` for every skipped item (only if any)

and, when ``--output_dir`` differs from the input, copies of the input's other ``uttid value``
files (``label``, ``caption``, ``offscreen``, ``video.scp``...) restricted to the good items.

Runs ``--nj`` workers; videos without an audio track, with a silent one, or that ffmpeg cannot decode are skipped,
counted and reported (file + reason). Finished outputs are reused, so reruns are cheap and an
interrupted run resumes (the temporaries a killed run left in the audio / frames dirs are deleted).
Exit status: 0, or 1 if every item failed or (``--strict``) any failed.
"""

import argparse
import errno
import multiprocessing as mp
import os
import sys
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import soundfile as sf

from espnet2_clip.data.video import VideoError, extract_audio, extract_frames
from espnet2_clip.utils.cli import OUTPUT_DIR_ALIASES, parse_args
from espnet2_clip.utils.fileio import read_scp, remove_stale_temps, write_scp

DISK_FULL = "disk full: "
#: a soundtrack whose peak stays below this (full scale 1; 3 steps of PCM16) is silent and skipped
SILENT_PEAK = 1e-4
_COPY = ("label", "caption", "offscreen", "video.scp", "text", "utt2spk", "utt2category")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Extract audio + frames from DATA_DIR/video.scp",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("data_dir", nargs="?", default=None, help="directory holding video.scp")
    p.add_argument("--data_dir", dest="data_dir_opt", default=None, help="same as the positional")
    p.add_argument("--output_dir", default=None, help="where the scp files go (default: data_dir)")
    p.add_argument("--audio_dir", default=None, help="wav files (default: OUT_DIR/wav)")
    p.add_argument("--frames_dir", default=None, help="frame dirs (default: OUT_DIR/frames)")
    p.add_argument("--fs", type=int, default=16000, help="audio sampling rate")
    p.add_argument("--fps", type=float, default=1.0, help="frames per second")
    p.add_argument("--size", type=int, default=224, help="frame size (short side, centre crop)")
    p.add_argument("--no_audio", action="store_true", help="skip audio extraction")
    p.add_argument("--no_frames", action="store_true", help="skip frame extraction")
    p.add_argument("--nj", type=int, default=min(2, os.cpu_count() or 1), help="parallel workers")
    p.add_argument("--strict", action="store_true", help="exit 1 if any item fails")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    return p


def _work(job) -> Tuple[str, Optional[str], Optional[str], int, Optional[str]]:
    uttid, video, wav, fdir, fs, fps, size = job
    try:
        if not os.path.isfile(video):
            raise VideoError(f"{video}: no such file")
        if wav is not None:
            extract_audio(video, wav, fs=fs)
            peak = float(np.abs(sf.read(wav, dtype="float32")[0]).max(initial=0.0))
            if peak < SILENT_PEAK:
                raise VideoError(f"{video}: the soundtrack is silent (peak {peak:.1e} < {SILENT_PEAK:g}): "
                                 "nothing to learn from or to separate")
        n = 0
        if fdir is not None:
            n = len(extract_frames(video, fdir, fps=fps, size=size))
        return uttid, wav, fdir, n, None
    except VideoError as e:
        return uttid, None, None, 0, str(e)
    except OSError as e:
        if e.errno == errno.ENOSPC:  # the disk, not the video: never listed as a bad video
            return uttid, None, None, 0, DISK_FULL + (e.strerror or "") + (f": {e.filename}" if e.filename else "")
        return uttid, None, None, 0, f"{video}: {type(e).__name__}: {e}"
    except Exception as e:  # unexpected, but never let one item kill the pool
        return uttid, None, None, 0, f"{video}: {type(e).__name__}: {e}"


def main(argv: Optional[List[str]] = None) -> int:
    parser = get_parser()
    args = parse_args(parser, argv, OUTPUT_DIR_ALIASES)
    if (args.data_dir is None) == (args.data_dir_opt is None):
        parser.error("give the data dir once, as positional or --data_dir")
    data_dir = Path(args.data_dir or args.data_dir_opt)
    out_dir = Path(args.output_dir) if args.output_dir else data_dir
    audio_dir = Path(args.audio_dir) if args.audio_dir else out_dir / "wav"
    frames_dir = Path(args.frames_dir) if args.frames_dir else out_dir / "frames"
    try:
        videos = read_scp(data_dir / "video.scp")
    except (FileNotFoundError, ValueError) as e:
        print(f"extract_av: error: {e}", file=sys.stderr)
        return 1
    if args.no_audio and args.no_frames:
        print("extract_av: error: nothing to do (--no_audio and --no_frames)", file=sys.stderr)
        return 1
    audio_dir, frames_dir = audio_dir.resolve(), frames_dir.resolve()
    for d in (audio_dir, frames_dir):  # what a killed run was writing
        remove_stale_temps(d)
    jobs = []
    for uttid, video in videos.items():
        jobs.append((
            uttid, video,
            None if args.no_audio else str(audio_dir / f"{uttid}.wav"),
            None if args.no_frames else str(frames_dir / uttid),
            args.fs, args.fps, args.size,
        ))

    results = []
    bar = None
    if not args.no_progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(jobs), desc=f"extract_av {data_dir}", unit="video", file=sys.stderr,
                       mininterval=0.5 if sys.stderr.isatty() else 5.0)
        except ImportError:  # pragma: no cover
            bar = None
    if args.nj > 1 and len(jobs) > 1:
        ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        with ctx.Pool(min(args.nj, len(jobs))) as pool:
            for r in pool.imap_unordered(_work, jobs, chunksize=2):
                results.append(r)
                if bar is not None:
                    bar.update()
    else:
        for job in jobs:
            results.append(_work(job))
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()

    good = {r[0]: r for r in results if r[4] is None}
    full = [r[4] for r in results if r[4] is not None and r[4].startswith(DISK_FULL)]
    if full:  # nothing is written: a rerun with space resumes (finished outputs are kept)
        print(f"extract_av: error: {full[0][len(DISK_FULL):]}\nextract_av: {len(full)} item(s) could not be written: "
              "free some space and rerun (the finished outputs are kept); no list was written", file=sys.stderr)
        return 1
    bad = {r[0]: r[4] for r in results if r[4] is not None}
    out_dir.mkdir(parents=True, exist_ok=True)
    if not args.no_audio:
        write_scp(out_dir / "wav.scp", {u: r[1] for u, r in good.items()})
    if not args.no_frames:
        write_scp(out_dir / "frames.scp", {u: r[2] for u, r in good.items()})
        write_scp(out_dir / "utt2num_frames", {u: str(r[3]) for u, r in good.items()})
    bad_file = out_dir / "bad_videos"
    if bad:
        write_scp(bad_file, {u: " ".join(reason.split()) for u, reason in bad.items()})
    elif bad_file.exists():
        bad_file.unlink()
    if out_dir.resolve() != data_dir.resolve():
        for name in _COPY:
            src = data_dir / name
            if src.is_file():
                try:
                    entries = read_scp(src, allow_empty_value=True)
                except ValueError as e:
                    print(f"extract_av: warning: not copied: {e}", file=sys.stderr)
                    continue
                write_scp(out_dir / name, {u: v for u, v in entries.items() if u in good})

    for u in sorted(bad):
        print(f"extract_av: skipped {u}: {bad[u]}", file=sys.stderr)
    print(
        f"extract_av: {data_dir}: {len(good)}/{len(jobs)} videos extracted"
        + (f", {len(bad)} skipped (listed in {bad_file})" if bad else "")
        + f" -> {out_dir}",
        file=sys.stderr,
    )
    if jobs and not good:
        print("extract_av: error: every video failed", file=sys.stderr)
        return 1
    if bad and args.strict:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
