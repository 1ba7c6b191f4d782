#!/usr/bin/env python3
"""Build the MUSIC+ / VGGSound-Clean+ evaluation pairs as CLIPSep's evaluation does.

Examples::

    # MUSIC+
    python -m espnet2_clip.bin.make_eval_pairs --targets MUSIC/solo/test.csv \\
        --pool vggsound/test-good-no-music.csv --output pairs_music_plus.csv
    # VGGSound-Clean+ (pool derived from test.csv by dropping "playing ..." labels)
    python -m espnet2_clip.bin.make_eval_pairs --targets vggsound/test-good.csv \\
        --pool vggsound/test.csv --derive_no_music --output pairs_vggsound_clean_plus.csv

Target ``idx`` gets ``pool[random.seed(idx); random.randint(0, len(pool) - 1)]``; both
clips use their centre frame ``n_frames // 2``.  Output columns:
idx,target_id,target_label,target_center_frame,interf_id,interf_label,interf_center_frame
"""

import argparse
import logging
import sys
from typing import Optional, Sequence

from espnet2_clip.data.lists import (
    ListFormatError,
    ParseReport,
    derive_no_music,
    read_index_csv,
    write_index_csv,
)
from espnet2_clip.data.pairs import build_eval_pairs, write_pairs_csv


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--targets", required=True, help="target index CSV (audio,frames,n_frames,label)")
    p.add_argument("--pool", required=True, help="interference index CSV")
    p.add_argument("--output", required=True, help="pairs CSV to write")
    p.add_argument("--derive_no_music", action="store_true",
                   help='drop pool clips whose label starts with "playing " before pairing')
    p.add_argument("--pool_output", default=None,
                   help="also write the (derived) pool list here, in the index format")
    p.add_argument("--on_error", choices=("raise", "skip"), default="raise",
                   help="malformed list rows: fail (default) or skip and count them. "
                   "Skipping changes the indices, so the pairs no longer match the paper's")
    return p


def main(cmd: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    report = ParseReport()
    try:
        targets = read_index_csv(args.targets, on_error=args.on_error, report=report)
        pool = read_index_csv(args.pool, on_error=args.on_error, report=report)
    except (ListFormatError, FileNotFoundError) as e:
        logging.error(str(e))
        return 1
    for msg in report.errors:
        logging.warning(f"skipped: {msg}")
    if report.n_skipped:
        logging.warning(f"{report.n_skipped} malformed row(s) skipped")
    if args.derive_no_music:
        n = len(pool)
        pool = derive_no_music(pool)
        logging.info(f"no-music pool: {len(pool)} of {n} clips")
    if not targets or not pool:
        logging.error(f"empty list: {len(targets)} targets, {len(pool)} pool clips")
        return 1
    pairs = build_eval_pairs(targets, pool)
    write_pairs_csv(args.output, pairs)
    if args.pool_output:
        write_index_csv(args.pool_output, pool)
    logging.info(f"wrote {len(pairs)} pairs ({len(targets)} targets, pool of {len(pool)}) to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
