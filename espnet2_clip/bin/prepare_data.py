#!/usr/bin/env python3
"""Validate a world/corpus data layout and copy it into a recipe's ``data/`` dir (stage 2).

Expected under ``--world_dir`` (lines are ``uttid value``; the value may contain spaces)::

    data/clip_train/{image.scp, caption}            images + captions (CLIP training; optional)
    data/train/video.scp [label]                     training videos
    data/valid/video.scp [label]                     optional: held out from train if missing
    data/test_mix/{wav.scp, spk1.scp, text} [spk2.scp, query_image.scp, label]
    data/<other test set>/...                        the same, for each extra --test_sets name

``query_image.scp`` values may list several frames (space-separated, shell-quoted): their mean
CLIP embedding is the image query.

Training items with a missing file, a missing/empty value or an id absent from a side file are
skipped and counted (safe); a broken test set stops the stage (scores would be wrong).
"""

import argparse
import logging
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from espnet2_clip.utils.cli import OUTPUT_DIR_ALIASES, parse_args
from espnet2_clip.utils.fileio import read_scp, split_paths, write_scp

PATH_FILES = {"video.scp", "image.scp", "wav.scp", "spk1.scp", "spk2.scp", "query_image.scp"}


class DataError(ValueError):
    """A data dir that cannot be used as it is."""


def _read_table(path: Path) -> Tuple[Dict[str, str], List[str]]:
    """Read ``uttid value`` lines, returning the entries and the ids with an empty value."""
    table = read_scp(path, allow_empty_value=True)
    empty = [k for k, v in table.items() if not v]
    return {k: v for k, v in table.items() if v}, empty


def load_set(
    src: Path, main: str, required: Sequence[str], optional: Sequence[str], strict: bool
) -> Tuple[Dict[str, Dict[str, str]], Counter]:
    """Load one data dir, keeping the ids that are complete in every file.

    Args:
        src: The data dir.
        main: The file whose ids define the set (e.g. ``video.scp``).
        required: Other files that must exist.
        optional: Files used when present.
        strict: Raise on the first problem instead of skipping the item.

    Returns:
        ``{file name: {uttid: value}}`` restricted to the good ids, and the skip reasons.
    """
    missing_files = [name for name in [main, *required] if not (src / name).is_file()]
    if missing_files:
        raise DataError(f"{src}: missing {', '.join(missing_files)} (see --help for the layout)")
    names = [main, *required, *[n for n in optional if (src / n).is_file()]]
    tables, skipped = {}, Counter()
    bad: Dict[str, str] = {}
    for name in names:
        table, empty = _read_table(src / name)
        for key in empty:
            bad.setdefault(key, f"{src / name}: empty value for '{key}'")
        tables[name] = table
    ids = set(tables[main]) | set(bad)
    for name, table in tables.items():
        for key in sorted(ids - set(table)):
            bad.setdefault(key, f"{src / name}: no line for '{key}' (present in {src / main})")
        for key in sorted(set(table) - ids):
            bad.setdefault(key, f"{src / main}: no line for '{key}' (present in {src / name})")
        if name in PATH_FILES:
            for key, value in table.items():
                missing = [p for p in split_paths(value) if not Path(p).is_file()]
                if missing:
                    bad.setdefault(key, f"{src / name}: '{key}' points to a missing file {missing[0]}")
    for key, reason in sorted(bad.items()):
        if strict:
            raise DataError(reason)
        logging.warning(f"skipped {key}: {reason}")
        skipped[reason.split(":")[0]] += 1
    good = sorted(ids - set(bad))
    return {name: {k: table[k] for k in good if k in table} for name, table in tables.items()}, skipped


def hold_out(tables: Dict[str, Dict[str, str]], main: str, fraction: float, seed: int):
    """Split a set into (train, valid) by id, deterministically."""
    ids = sorted(tables[main])
    rng = random.Random(seed)
    valid = set(rng.sample(ids, max(1, int(round(len(ids) * fraction)))))
    pick = lambda keep: {n: {k: v for k, v in t.items() if (k in valid) == keep} for n, t in tables.items()}  # noqa: E731
    return pick(False), pick(True)


def write_set(dst: Path, tables: Dict[str, Dict[str, str]]) -> None:
    for name, table in tables.items():
        write_scp(dst / name, table)


def prepare(world_dir: Path, out_dir: Path, valid_fraction: float, seed: int,
            test_sets: Sequence[str] = ("test_mix",)) -> Dict[str, int]:
    """Validate and copy every set; returns item counts per set."""
    src = world_dir / "data"
    counts, skipped_total = {}, 0
    sets: Dict[str, Dict[str, Dict[str, str]]] = {}
    if (src / "clip_train").is_dir():
        sets["clip_train"], skipped = load_set(src / "clip_train", "image.scp", ["caption"], ["label"], strict=False)
        skipped_total += sum(skipped.values())
    train, skipped = load_set(src / "train", "video.scp", [], ["label", "offscreen"], strict=False)
    skipped_total += sum(skipped.values())
    if (src / "valid" / "video.scp").is_file():
        valid, skipped = load_set(src / "valid", "video.scp", [], ["label"], strict=False)
        skipped_total += sum(skipped.values())
    else:
        logging.info(f"{src / 'valid'} not found: holding out {valid_fraction:.0%} of train as valid")
        train, valid = hold_out(train, "video.scp", valid_fraction, seed)
    sets["train"], sets["valid"] = train, valid
    for name in test_sets:
        sets[name], _ = load_set(
            src / name, "wav.scp", ["spk1.scp", "text"], ["spk2.scp", "query_image.scp", "label"], strict=True
        )
    for name, tables in sets.items():
        if not next(iter(tables.values())):
            raise DataError(f"{src / name}: no usable items")
        write_set(out_dir / name, tables)
        counts[name] = len(next(iter(tables.values())))
    counts["skipped"] = skipped_total
    return counts


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world_dir", required=True, type=Path)
    parser.add_argument("--output_dir", default=Path("data"), type=Path)
    parser.add_argument("--valid_fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--test_sets", nargs="+", default=["test_mix"],
                        help="test mixture dirs of <world_dir>/data (each laid out like test_mix)")
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> int:
    args = parse_args(get_parser(), cmd, OUTPUT_DIR_ALIASES)
    logging.basicConfig(level="INFO", format="%(levelname)s: %(message)s")
    try:
        counts = prepare(args.world_dir, args.output_dir, args.valid_fraction, args.seed, args.test_sets)
    except (DataError, ValueError, FileNotFoundError) as exc:
        logging.error(str(exc))
        return 1
    logging.info("prepared " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
