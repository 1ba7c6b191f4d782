#!/usr/bin/env python3
"""Turn the official CLIPSep lists into download id lists, labels and the test pairs.

Shared by egs2/music/clipsep1 and egs2/vggsound/clipsep1 (stage 1, local/data.sh).
Reads ``--lists`` (flat names, as local/data.sh stores them):

    MUSIC    : music_train.csv music_val.csv music_test.csv test-good-no-music.csv vggsound.csv
               [MUSIC_solo_videos.json]
    VGGSound : vggsound.csv val.csv test-good.csv test-no-music.csv, and for MUSIC+ also
               music_test.csv test-good-no-music.csv

Writes into ``--output_dir`` (the world dir):

    download/{train,valid,test}/ids    'clip_id ytid [start 10]' lines for download_youtube
    download/{train,valid,test}/label  'clip_id label'
    pairs.csv                          the official evaluation pairs (espnet2_clip.data.pairs) of the
                                       corpus's own test set (MUSIC+ or VGGSound-Clean+)
    pairs_music_plus.csv               VGGSound only: the MUSIC+ pairs, so that the VGGSound-trained
                                       models are also scored on MUSIC+ (the paper's Table 1)
    lists_report.json                  split sizes, overlap removed, clips without a time window

Splits (by YouTube id, no leakage; the test set is never reduced):

* MUSIC: test = music_test.csv (46); valid = music_val.csv minus test; train = music_train.csv
  (labels from its directories; ``--music_train json``: every MUSIC_solo_videos.json video) minus
  valid and test. Test mixtures (MUSIC+): each test clip + a clip of test-good-no-music.csv (75).
* VGGSound: train = vggsound.csv rows of split ``train`` (10-s windows, ``ytid_{start:06d}``);
  valid = CLIPSep's val.csv; test (VGGSound-Clean+): test-good.csv (100) + a clip of
  test-no-music.csv (5,322); and MUSIC+ (the 46 MUSIC test videos + a clip of test-good-no-music.csv),
  downloaded with the test set. Train loses every video in valid or either test set.

Only the interference clips the pairs use are downloaded. VGGSound clips of the index lists are
named by their YouTube id; their 10-s window comes from vggsound.csv (a test-split row first).
"""

import argparse
import dataclasses
import json
import logging
import random
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from espnet2_clip.data.download import DownloadItem, items_from_music_json, write_id_list
from espnet2_clip.data.lists import (ClipRecord, ListFormatError, ParseReport, clipsep_label, read_index_csv,
                                     read_vggsound_csv, remove_split_overlap)
from espnet2_clip.data.pairs import build_eval_pairs, write_pairs_csv
from espnet2_clip.utils.cli import OUTPUT_DIR_ALIASES, parse_args
from espnet2_clip.utils.fileio import write_scp, write_text_atomic


def vggsound_windows(rows) -> Dict[str, Tuple[int, str]]:
    """ytid -> (start, split), preferring a test-split row when a video is listed twice."""
    out: Dict[str, Tuple[int, str]] = {}
    for r in rows:
        if r.ytid not in out or (out[r.ytid][1] != "test" and r.split == "test"):
            out[r.ytid] = (r.start, r.split)
    return out


def vggsound_items(records: Sequence[ClipRecord], windows, duration: float, no_window: List[str]) -> List[DownloadItem]:
    items = []
    for r in records:
        if r.video_id not in windows:
            no_window.append(r.clip_id)
            continue
        items.append(DownloadItem(r.clip_id, r.video_id, float(windows[r.video_id][0]), duration))
    return items


def whole_video_items(records: Sequence[ClipRecord]) -> List[DownloadItem]:
    return [DownloadItem(r.clip_id, r.video_id) for r in records]


def write_set(out: Path, name: str, items: Sequence[DownloadItem], labels: Dict[str, str]) -> None:
    d = out / "download" / name
    d.mkdir(parents=True, exist_ok=True)
    seen, unique = set(), []
    for it in items:
        if it.clip_id not in seen:
            seen.add(it.clip_id)
            unique.append(it)
    write_id_list(d / "ids", unique)
    write_scp(d / "label", {it.clip_id: labels[it.clip_id] for it in unique})


def used_interference(pool: Sequence[ClipRecord], pairs) -> List[ClipRecord]:
    """The clips of ``pool`` that some pair uses (only those are downloaded)."""
    used = {p.interf_id for p in pairs}
    return [r for r in pool if r.clip_id in used]


def subset(records: List[ClipRecord], n: int, seed: int) -> List[ClipRecord]:
    if n <= 0 or n >= len(records):
        return records
    keep = set(random.Random(seed).sample(range(len(records)), n))
    return [r for i, r in enumerate(records) if i in keep]


def clipsep_spelling(records: Sequence[ClipRecord]) -> List[ClipRecord]:
    """VGGSound labels of an index list spelled as the training labels are (from vggsound.csv, ", " ->
    " "), so that a label with a comma is one label in every split (CLIPSep's own lists have none)."""
    return [dataclasses.replace(r, label=clipsep_label(r.label)) if r.label else r for r in records]


def prepare(args: argparse.Namespace) -> dict:
    lists, out = Path(args.lists), Path(args.output_dir)
    # malformed training / validation lines are skipped, and reported (lists_report.json, a warning)
    parse_reports: Dict[str, ParseReport] = {}

    def parse_report(name: str) -> ParseReport:
        return parse_reports.setdefault(name, ParseReport())

    read = lambda name: read_index_csv(lists / name, on_error="skip", report=parse_report(name))  # noqa: E731
    no_window: List[str] = []
    report: dict = {"corpus": args.corpus}
    vgg_rows = read_vggsound_csv(lists / "vggsound.csv", on_error="skip", report=parse_report("vggsound.csv"))
    windows = vggsound_windows(vgg_rows)
    # malformed test rows are fatal: the official pairs would shift
    music_test = read_index_csv(lists / "music_test.csv")
    music_pool = clipsep_spelling(read_index_csv(lists / "test-good-no-music.csv"))
    music_pairs = build_eval_pairs(music_test, music_pool)
    music_interference = used_interference(music_pool, music_pairs)
    if args.corpus == "music":
        test, pool, pairs = music_test, music_pool, music_pairs
        valid = read("music_val.csv")
        if args.music_train == "json":
            items, labels = items_from_music_json(lists / "MUSIC_solo_videos.json")
            train = [ClipRecord(f"{it.clip_id}.wav", it.clip_id, 0, labels[it.clip_id], it.source) for it in items]
        else:
            train = read_index_csv(lists / "music_train.csv", on_error="skip", relative_paths=True,
                                   report=parse_report("music_train.csv"))
    else:
        test = clipsep_spelling(read_index_csv(lists / "test-good.csv"))
        pool = clipsep_spelling(read_index_csv(lists / "test-no-music.csv"))
        pairs = build_eval_pairs(test, pool)
        valid = clipsep_spelling(read("val.csv"))
        train = [ClipRecord(f"{r.clip_id}.wav", r.clip_id, 0, r.clipsep_label, r.source)
                 for r in vgg_rows if r.split == "train"]
        train = list({r.clip_id: r for r in train}.values())  # a window listed twice is kept once
    interference = used_interference(pool, pairs)
    test_clips = test + interference
    if args.corpus == "vggsound":  # MUSIC+ is scored too: its clips are test clips
        test_clips += music_test + music_interference
    # the test set first: its videos leave valid and train
    splits, overlap = remove_split_overlap({"test": test_clips, "valid": valid, "train": train},
                                           priority=("test", "valid", "train"))
    train = subset(splits["train"], args.max_train_clips, args.seed)
    valid = subset(splits["valid"], args.max_valid_clips, args.seed)
    for name, recs in (("train", train), ("valid", valid)):
        labels = {r.clip_id: r.label for r in recs if r.label}
        recs = [r for r in recs if r.label]
        if args.corpus == "music":
            items = whole_video_items(recs)
        elif name == "train":
            items = [DownloadItem(r.clip_id, r.video_id, float(int(r.clip_id[-6:])), args.clip_duration)
                     for r in recs]
        else:
            items = vggsound_items(recs, windows, args.clip_duration, no_window)
        write_set(out, name, items, labels)
        report[f"{name}_clips"] = len(items)
    test_labels = {r.clip_id: r.label or "" for r in test_clips}
    music_items = (whole_video_items(music_test)
                   + vggsound_items(music_interference, windows, args.clip_duration, no_window))
    if args.corpus == "music":
        test_items = music_items
    else:
        test_items = vggsound_items(test + interference, windows, args.clip_duration, no_window) + music_items
        write_pairs_csv(out / "pairs_music_plus.csv", music_pairs)
        report["music_plus_pairs"] = len(music_pairs)
    write_set(out, "test", test_items, test_labels)
    write_pairs_csv(out / "pairs.csv", pairs)
    report.update({
        "test_pairs": len(pairs),
        "test_clips": len({it.clip_id for it in test_items}),
        "interference_pool": len(pool),
        "overlap_removed": overlap.removed,
        "overlap": {f"{a}&{b}": len(ids) for (a, b), ids in overlap.overlaps.items()},
        "no_vggsound_window": sorted(set(no_window)),
        "skipped_lines": {name: r.errors for name, r in parse_reports.items() if r.errors},
    })
    write_text_atomic(out / "lists_report.json", json.dumps(report, indent=2) + "\n")
    return report


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True, choices=["music", "vggsound"])
    p.add_argument("--lists", required=True, help="dir holding the official lists (flat names)")
    p.add_argument("--output_dir", required=True, help="world dir")
    p.add_argument("--music_train", default="list", choices=["list", "json"],
                   help="MUSIC training videos: the official train.csv, or every MUSIC_solo_videos.json video")
    p.add_argument("--clip_duration", type=float, default=10.0, help="VGGSound window (s)")
    p.add_argument("--max_train_clips", type=int, default=0, help="random subset of train (0: all)")
    p.add_argument("--max_valid_clips", type=int, default=0, help="random subset of valid (0: all)")
    p.add_argument("--seed", type=int, default=1234)
    return p


def main(cmd: Optional[Sequence[str]] = None) -> int:
    args = parse_args(get_parser(), cmd, OUTPUT_DIR_ALIASES)
    logging.basicConfig(level="INFO", format="%(levelname)s: %(message)s")
    try:
        report = prepare(args)
    except (ListFormatError, FileNotFoundError, ValueError) as exc:
        logging.error(str(exc))
        return 1
    for name, errors in report["skipped_lines"].items():
        logging.warning(f"{name}: {len(errors)} malformed line(s) skipped (all in lists_report.json), e.g. {errors[0]}")
    if report["no_vggsound_window"]:
        logging.warning(f"{len(report['no_vggsound_window'])} clip(s) not in vggsound.csv (no time window), "
                        f"not downloaded: {report['no_vggsound_window'][:10]}")
    logging.info(
        f"{args.corpus}: train {report['train_clips']}, valid {report['valid_clips']} clips; test {report['test_pairs']} "
        f"pairs ({report['test_clips']} clips); removed by video overlap: {report['overlap_removed']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
