#!/usr/bin/env python3
"""What became of every listed clip of a downloaded corpus, per split: the counts must add up.

For each split (``train``, ``valid``, ``test``) of a YouTube corpus recipe's world dir:

    listed = usable + missing (not downloaded, by reason) + failed (downloaded, skipped by the extraction)

from ``WORLD/download/<split>/download_report.json`` (listed, missing by reason), the extraction's
``wav.scp`` and ``bad_videos`` (``DUMP/<split>/`` for train / valid, ``WORLD/test_av/`` for test).
Prints one line per split and writes ``--output`` (json). A clip in none of the three (dropped by
stage 2's checks, see its log) is named as unaccounted, with a warning.

    python -m espnet2_clip.bin.corpus_report --world_dir world --dump_dir dump --output dump/corpus_report.json
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from espnet2_clip.data.download import REPORT_NAME, read_id_list
from espnet2_clip.utils.fileio import read_scp, write_text_atomic

SPLITS = ("train", "valid", "test")


def _table(path: Path) -> Dict[str, str]:
    return read_scp(path) if path.is_file() else {}


def _reason(text: str) -> str:
    """A short reason from an extraction message (``bad_videos`` holds ffmpeg's words)."""
    low = text.lower()
    for needle, reason in (("silent", "silent"), ("no audio", "no-audio"), ("no video", "no-video"),
                           ("no such file", "file-gone")):
        if needle in low:
            return reason
    return "undecodable"


def split_report(world: Path, extracted: Path, split: str) -> Optional[Dict]:
    """The counts of one split, or None when it was not downloaded."""
    download = world / "download" / split
    if not (download / REPORT_NAME).is_file():
        return None
    listed = [it.clip_id for it in read_id_list(download / "ids")]
    missing = _table(download / "missing")
    usable = set(_table(extracted / "wav.scp"))
    failed = {k: _reason(v) for k, v in _table(extracted / "bad_videos").items()}
    lost = [k for k in listed if k not in usable and k not in missing and k not in failed]

    def by_reason(table: Dict[str, str]) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for text in table.values():
            reason = text.split()[0]
            out[reason] = out.get(reason, 0) + 1
        return dict(sorted(out.items()))

    return {"listed": len(listed), "usable": sum(1 for k in listed if k in usable),
            "missing": sum(1 for k in listed if k in missing), "missing_by_reason": by_reason(missing),
            "failed": sum(1 for k in listed if k in failed and k not in usable),
            "failed_by_reason": by_reason({k: v for k, v in failed.items() if k not in usable}),
            "unaccounted": lost}


def line(split: str, r: Dict) -> str:
    def detail(counts: Dict[str, int]) -> str:
        return f" ({', '.join(f'{n} {k}' for k, n in counts.items())})" if counts else ""

    text = (f"{split}: listed {r['listed']} = usable {r['usable']} + missing {r['missing']}"
            f"{detail(r['missing_by_reason'])} + failed {r['failed']}{detail(r['failed_by_reason'])}")
    if r["unaccounted"]:
        text += f"; UNACCOUNTED {len(r['unaccounted'])}: {' '.join(r['unaccounted'][:10])}"
    return text


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world_dir", type=Path, required=True, help="the recipe's world dir (download/<split>/)")
    p.add_argument("--dump_dir", type=Path, required=True, help="stage 3's output (<split>/wav.scp, bad_videos)")
    p.add_argument("--output", type=Path, default=None, help="json report (default: DUMP_DIR/corpus_report.json)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    reports = {}
    for split in SPLITS:
        extracted = args.world_dir / "test_av" if split == "test" else args.dump_dir / split
        r = split_report(args.world_dir, extracted, split)
        if r is not None:
            reports[split] = r
            print(line(split, r))
    if not reports:
        print(f"corpus_report: {args.world_dir}/download/<split>/{REPORT_NAME}: no downloaded split", file=sys.stderr)
        return 1
    write_text_atomic(args.output or args.dump_dir / "corpus_report.json", json.dumps(reports, indent=1) + "\n")
    bad: List[str] = [s for s, r in reports.items() if r["unaccounted"]]
    if bad:
        print(f"corpus_report: warning: clips neither usable, missing nor failed in {', '.join(bad)} "
              "(dropped by stage 2? see its log)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
