#!/usr/bin/env python3
"""Build the MUSIC+ / VGGSound-Clean+ test mixtures from a pairs CSV and extracted clips.

    python -m espnet2_clip.bin.build_test_mixtures --pairs pairs_music_plus.csv \\
        --wav_scp test_av/wav.scp --frames_scp test_av/frames.scp --output_dir world/data/test_mix

As CLIPSep's evaluation: both clips of pair ``idx`` are cut around their centre frame ``c``
(the pairs CSV's ``*_center_frame``, ``n_frames // 2`` of the official lists): the audio is the
``--clip_samples`` (65535) samples ``[C - L//2, C + L//2 + 1)`` with ``C = int((c - 0.5) / fps * fs)``
(zero-padded where that window passes an end of the file, as the official loader does); both
sources are divided by 2 and summed, with no gain and no normalisation.

Writes (ESPnet's convention: references as they are in the mixture) ``wav.scp`` (s1/2 + s2/2),
``spk1.scp`` (s1/2), ``spk2.scp`` (s2/2), ``text`` and ``label`` (the target's label; MUSIC
labels keep their underscores), ``interference_label``, ``query_image.scp`` (the target's
frames ``c - 1, c, c + 1`` as ``FRAMES_DIR/{i:06d}.jpg``, space-separated: the image query is the
mean CLIP embedding of the three, as the official evaluation; a neighbour missing at an end of
the video is left out; a path with spaces is shell-quoted), and ``build_report.json`` (counts, skipped pairs).

A pair is skipped and counted (never fatal) when a clip was not obtained (absent from
``--wav_scp``), when a clip's audio is shorter than one test clip, or when the target's frame
at the centre is missing. Exit status 1 only when no mixture at all could be built.
"""

import argparse
import json
import logging
import shlex
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf

from espnet2_clip.data.lists import ListFormatError
from espnet2_clip.data.pairs import EvalPair, read_pairs_csv
from espnet2_clip.utils.cli import OUTPUT_DIR_ALIASES, parse_args
from espnet2_clip.utils.fileio import atomic_path, read_scp, write_scp, write_text_atomic

REPORT_NAME = "build_report.json"


class SkipPair(Exception):
    """A pair that cannot be built; ``reason`` is a short key, the message says why."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def mixture_id(pair: EvalPair) -> str:
    return f"{pair.idx:04d}_{pair.target_id}_{pair.interf_id}"


def centre_sample(center_frame: int, fps: float, fs: int) -> int:
    """Sample index of the middle of frame ``center_frame`` (1-based, frame i covers [(i-1)/fps, i/fps))."""
    return int((center_frame - 0.5) / fps * fs)


def read_segment(path: str, center_frame: int, clip_samples: int, fs: int, fps: float,
                 what: str) -> Tuple[np.ndarray, bool]:
    """The ``clip_samples`` samples around the centre of ``center_frame`` (mono float32), and
    whether the window passed an end of the file (zero-padded there, as the official loader)."""
    try:
        info = sf.info(path)
    except Exception as exc:
        raise SkipPair("unreadable", f"{what}: cannot read audio '{path}': {exc}") from exc
    if info.samplerate != fs:
        raise SkipPair("bad_rate", f"{what}: {path} is {info.samplerate} Hz, expected {fs} Hz (extract at --fs {fs})")
    if info.frames < clip_samples:
        raise SkipPair(
            "too_short",
            f"{what}: audio {path} has {info.frames} samples ({info.frames / fs:.2f} s), shorter than one "
            f"test clip ({clip_samples} samples)",
        )
    centre = centre_sample(center_frame, fps, fs)
    half = clip_samples // 2
    start, stop = centre - half, centre - half + clip_samples
    if centre < 0 or centre >= info.frames:
        raise SkipPair(
            "too_short",
            f"{what}: centre frame {center_frame} ({centre / fs:.2f} s) is past the end of {path} "
            f"({info.frames / fs:.2f} s); the video is shorter than the official list says",
        )
    lo, hi = max(start, 0), min(stop, info.frames)
    data, _ = sf.read(path, start=lo, stop=hi, dtype="float32", always_2d=True)
    out = np.zeros(clip_samples, dtype=np.float32)
    out[lo - start : lo - start + data.shape[0]] = data.mean(axis=1)
    return out, (lo, hi) != (start, stop)


def frame_path(frames_dir: str, frame: int) -> Path:
    return Path(frames_dir) / f"{frame:06d}.jpg"


def query_frame_paths(frames_dir: str, center_frame: int, context: int = 1) -> List[Path]:
    """The frames ``c - context .. c + context`` that exist (the centre frame must)."""
    frames = [frame_path(frames_dir, i) for i in range(center_frame - context, center_frame + context + 1)]
    return [f for f in frames if f.is_file()]


def build_one(pair: EvalPair, wavs: Dict[str, str], frames: Dict[str, str], clip_samples: int, fs: int,
              fps: float) -> Tuple[np.ndarray, np.ndarray, List[Path], int]:
    for role, clip in (("target", pair.target_id), ("interference", pair.interf_id)):
        if clip not in wavs:
            raise SkipPair("not_obtained", f"{role} {clip} was not obtained (missing download or extraction)")
    if pair.target_id not in frames:
        raise SkipPair("no_frames", f"target {pair.target_id} has no frames")
    centre = frame_path(frames[pair.target_id], pair.target_center_frame)
    if not centre.is_file():
        raise SkipPair("no_centre_frame",
                       f"target {pair.target_id}: frame {pair.target_center_frame} at the centre is missing ({centre})")
    query = query_frame_paths(frames[pair.target_id], pair.target_center_frame)
    s1, pad1 = read_segment(wavs[pair.target_id], pair.target_center_frame, clip_samples, fs, fps,
                            f"target {pair.target_id}")
    s2, pad2 = read_segment(wavs[pair.interf_id], pair.interf_center_frame, clip_samples, fs, fps,
                            f"interference {pair.interf_id}")
    return s1, s2, query, int(pad1) + int(pad2)


def build_test_mixtures(pairs: Sequence[EvalPair], wavs: Dict[str, str], frames: Dict[str, str], out_dir: Path,
                        wav_dir: Path, clip_samples: int = 65535, fs: int = 16000, fps: float = 1.0) -> dict:
    """Write the mixtures and the data files; returns the report (also written to ``build_report.json``)."""
    tables: Dict[str, Dict[str, str]] = {n: {} for n in (
        "wav.scp", "spk1.scp", "spk2.scp", "text", "label", "interference_label", "query_image.scp")}
    skipped: Dict[str, str] = {}
    reasons: Counter = Counter()
    padded = 0
    wav_dir = wav_dir.resolve()
    for pair in pairs:
        key = mixture_id(pair)
        try:
            s1, s2, query, n_padded = build_one(pair, wavs, frames, clip_samples, fs, fps)
        except SkipPair as exc:
            skipped[key] = f"{exc.reason}: {exc}"
            reasons[exc.reason] += 1
            logging.warning(f"skipped pair {pair.idx} ({key}): {exc}")
            continue
        padded += n_padded
        ref1 = (s1 / 2).astype(np.float32)
        ref2 = (s2 / 2).astype(np.float32)
        mix = ref1 + ref2
        for suffix, wave, name in (("", mix, "wav.scp"), ("_spk1", ref1, "spk1.scp"), ("_spk2", ref2, "spk2.scp")):
            path = wav_dir / f"{key}{suffix}.wav"
            with atomic_path(path) as tmp:
                sf.write(tmp, wave, fs, subtype="FLOAT", format="WAV")
            tables[name][key] = str(path)
        tables["text"][key] = pair.target_label
        tables["label"][key] = pair.target_label
        tables["interference_label"][key] = pair.interf_label
        tables["query_image.scp"][key] = " ".join(shlex.quote(str(q.resolve())) for q in query)
    for name, table in tables.items():
        write_scp(out_dir / name, table)
    report = {
        "requested": len(pairs),
        "built": len(tables["wav.scp"]),
        "skipped": len(skipped),
        "skipped_by_reason": dict(sorted(reasons.items())),
        "skipped_pairs": skipped,
        "clip_samples": clip_samples,
        "sample_rate": fs,
        "zero_padded_segments": padded,
    }
    write_text_atomic(out_dir / REPORT_NAME, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report


def report_line(report: dict) -> str:
    """``built 44/46 test mixtures (2 skipped: 1 not_obtained, 1 too_short)``."""
    detail = ", ".join(f"{n} {r}" for r, n in report["skipped_by_reason"].items())
    return (f"built {report['built']}/{report['requested']} test mixtures "
            f"({report['skipped']} skipped{': ' + detail if detail else ''})")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", required=True, type=Path, help="pairs CSV (espnet2_clip.bin.make_eval_pairs)")
    p.add_argument("--wav_scp", required=True, type=Path, help="'clip_id wav' of the extracted clips")
    p.add_argument("--frames_scp", required=True, type=Path, help="'clip_id frames_dir' (000001.jpg ...)")
    p.add_argument("--output_dir", required=True, type=Path, help="the test_mix data dir to write")
    p.add_argument("--wav_dir", default=None, type=Path, help="mixture/reference wavs (default OUT_DIR/wav)")
    p.add_argument("--clip_samples", type=int, default=65535)
    p.add_argument("--fs", type=int, default=16000)
    p.add_argument("--fps", type=float, default=1.0, help="frame rate of the frames (and of the centre frames)")
    return p


def main(cmd: Optional[Sequence[str]] = None) -> int:
    args = parse_args(get_parser(), cmd, OUTPUT_DIR_ALIASES)
    logging.basicConfig(level="INFO", format="%(levelname)s: %(message)s")
    try:
        pairs = read_pairs_csv(args.pairs)
        wavs = read_scp(args.wav_scp)
        frames = read_scp(args.frames_scp) if args.frames_scp.is_file() else {}
    except (ListFormatError, FileNotFoundError, ValueError) as exc:
        logging.error(str(exc))
        return 1
    if not args.frames_scp.is_file():
        logging.warning(f"{args.frames_scp}: not found; every pair will be skipped (no query frames)")
    report = build_test_mixtures(pairs, wavs, frames, args.output_dir, args.wav_dir or args.output_dir / "wav",
                                 args.clip_samples, args.fs, args.fps)
    line = report_line(report)
    if report["built"] == 0:
        logging.error(f"{args.pairs}: {line}; see {args.output_dir / REPORT_NAME}")
        return 1
    logging.info(f"{args.pairs}: {line} -> {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
