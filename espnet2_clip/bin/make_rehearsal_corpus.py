#!/usr/bin/env python3
"""Write a VGGSound-shaped rehearsal corpus (espnet2_clip.data.rehearsal) and say how to run the recipe on it.

    python -m espnet2_clip.bin.make_rehearsal_corpus --output_dir rehearsal --num_videos 2000
    cd egs2/vggsound/clipsep1
    ESPNET2_CLIP_YTDLP=$PWD/../../../rehearsal/bin/yt-dlp ./run.sh --stage 1 --lists_dir ../../../rehearsal/lists ...
"""

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from espnet2_clip.data.rehearsal import FAULTS, make_rehearsal_corpus


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output_dir", type=Path, required=True, help="the corpus dir (store/, lists/, bin/yt-dlp)")
    p.add_argument("--num_videos", type=int, default=2000, help="videos (at least 24)")
    p.add_argument("--num_classes", type=int, default=6, help="bridge-world classes (2-10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no_progress", action="store_true")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    try:
        manifest = make_rehearsal_corpus(args.output_dir, args.num_videos, args.seed, args.num_classes,
                                         progress=not args.no_progress)
    except (ValueError, OSError) as e:
        print(f"make_rehearsal_corpus: error: {e}", file=sys.stderr)
        return 1
    out = args.output_dir.resolve()
    print(f"{out}: {len(manifest['videos'])} videos, faults: {', '.join(FAULTS)}")
    print(f"run the recipe on it: ESPNET2_CLIP_YTDLP={out}/bin/yt-dlp ./run.sh --stage 1 --lists_dir {out}/lists")
    return 0


if __name__ == "__main__":
    sys.exit(main())
