#!/usr/bin/env python3
"""Format a test-mixture dir for scoring (stage 6): 16 kHz mono wavs, consistent references.

Input ``--data_dir``: ``wav.scp`` (mixtures), ``spk1.scp`` (targets), ``text`` (queries),
optional ``spk2.scp`` (interference), ``query_image.scp``, ``label``. Wavs already at
``--fs`` and mono are referenced as they are; others are downmixed/resampled into
``--output_dir/wav``. With ``spk2.scp`` the references must add up to the mixture (ESPnet's
convention; the sources as they appear in the mixture), otherwise the stage stops.
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import soundfile as sf

from espnet2_clip.utils.cli import OUTPUT_DIR_ALIASES, parse_args
from espnet2_clip.utils.fileio import OWN_OUTPUT_DIR_HELP, atomic_path, read_scp, remove_stale_temps, write_scp

AUDIO = ("wav.scp", "spk1.scp", "spk2.scp")
OTHER = ("text", "query_image.scp", "label")


def load_mono(path: str, fs: int) -> np.ndarray:
    """Read ``path`` as mono float32 at ``fs`` (downmixing / resampling as needed)."""
    try:
        wave, rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as exc:
        raise ValueError(f"cannot read audio '{path}': {exc}") from exc
    wave = wave.mean(axis=1)
    if rate != fs:
        import soxr

        wave = soxr.resample(wave, rate, fs).astype(np.float32)
    return wave


def needs_rewrite(path: str, fs: int) -> bool:
    info = sf.info(path)
    return info.samplerate != fs or info.channels != 1


def format_test_set(data_dir: Path, out_dir: Path, fs: int) -> int:
    """Write the formatted scp files into ``out_dir``; returns the number of mixtures."""
    tables = {name: read_scp(data_dir / name) for name in ("wav.scp", "spk1.scp", "text")}
    tables.update({name: read_scp(data_dir / name) for name in ("spk2.scp", *OTHER[1:]) if (data_dir / name).is_file()})
    ids = set(tables["wav.scp"])
    for name, table in tables.items():
        if set(table) != ids:
            diff = sorted(ids ^ set(table))
            raise ValueError(f"{data_dir / name}: ids differ from wav.scp for {len(diff)} items, e.g. {diff[:5]}")
    for key, text in tables["text"].items():
        if not text.strip():
            raise ValueError(f"{data_dir / 'text'}: empty query for '{key}'")
    remove_stale_temps(out_dir, out_dir / "wav")  # a killed run's
    rewritten = 0
    for name in AUDIO:
        if name not in tables:
            continue
        for key, path in tables[name].items():
            if needs_rewrite(path, fs):
                dst = out_dir / "wav" / f"{key}_{name.split('.')[0]}.wav"
                with atomic_path(dst) as tmp:
                    sf.write(tmp, load_mono(path, fs), fs, subtype="FLOAT", format="WAV")
                tables[name][key] = str(dst.resolve())
                rewritten += 1
    if "spk2.scp" in tables:
        for key in sorted(ids):
            mix, s1, s2 = (load_mono(tables[n][key], fs) for n in AUDIO)
            n = min(len(mix), len(s1), len(s2))
            residual = np.linalg.norm(mix[:n] - s1[:n] - s2[:n]) / max(np.linalg.norm(mix[:n]), 1e-12)
            if residual > 0.01:
                raise ValueError(
                    f"{key}: spk1 + spk2 differs from the mixture by {residual:.1%}; give the sources "
                    f"as they appear in the mixture ({data_dir / 'spk1.scp'}, {data_dir / 'spk2.scp'})"
                )
    for name, table in tables.items():
        write_scp(out_dir / name, table)
    logging.info(f"{len(ids)} test mixtures ({rewritten} files downmixed/resampled to {fs} Hz) -> {out_dir}")
    return len(ids)


def get_parser() -> argparse.ArgumentParser:
    """Argument parser of the CLI."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, type=Path)
    parser.add_argument("--output_dir", required=True, type=Path, help=OWN_OUTPUT_DIR_HELP)
    parser.add_argument("--fs", type=int, default=16000)
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> int:
    parser = get_parser()
    args = parse_args(parser, cmd, OUTPUT_DIR_ALIASES)
    logging.basicConfig(level="INFO", format="%(levelname)s: %(message)s")
    try:
        format_test_set(args.data_dir, args.output_dir, args.fs)
    except (ValueError, FileNotFoundError) as exc:
        logging.error(str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
