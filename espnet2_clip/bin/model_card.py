#!/usr/bin/env python3
"""Write the model card (README.md) of a trained model, for the recipes' pack stage.

    python -m espnet2_clip.bin.model_card --exp_dir exp/clipsep_nit --corpus VGGSound \\
        --results RESULTS.md --world_dir world --train_scp dump/train/wav.scp

Works for separation (CLIPSep, -NIT, -Text, BERTSep, LabelSep, PIT) and generation (CLIPSonic
IQ / ZS / PD, SD) models alike: the task is read from ``exp_dir/config.yaml``. Writes
``--output`` (default ``exp_dir/README.md``) atomically: the Hub's front matter (licence, tags,
``library_name: espnet``), the task, the training data (corpus, number of training clips, videos
missing from every ``WORLD/download/*/download_report.json``), the query encoder, the model's rows
of RESULTS.md ("not scored" without them), the licence and how to run it. ``espnet2.bin.pack
--option exp_dir/README.md`` then packs it; ``espnet2-clip info`` prints it and
``espnet2_clip.bin.upload_hf`` publishes it.
"""

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import yaml

from espnet2_clip.utils.model_card import DEFAULT_LICENSE, CardError, CardInputs, task_of, write_card

PROG = "model_card"


def get_parser() -> argparse.ArgumentParser:
    """Argument parser of the CLI."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp_dir", required=True, type=Path, help="model dir with config.yaml (exp/<tag>)")
    p.add_argument("--tag", default=None, help="model tag (default: the exp dir name)")
    p.add_argument("--output", default=None, type=Path, help="card path (default: EXP_DIR/README.md)")
    p.add_argument("--corpus", default="", help="corpus / recipe name: vggsound, music, mini_bridge or your own")
    p.add_argument("--results", default=None, type=Path, help="the recipe's RESULTS.md (missing: 'not scored')")
    p.add_argument("--world_dir", default=None, type=Path, help="recipe world dir (download reports, world.json)")
    p.add_argument("--train_scp", default=None, type=Path, help="training list (one line per clip), e.g. "
                   "dump/train/wav.scp")
    p.add_argument("--train_query", default=None, choices=["image", "text", "label", "none"],
                   help="CLIPSonic: what the model was trained on (image: IQ/ZS/PD, text: SD); CLIPSep "
                   "configs record it")
    p.add_argument("--model_ref", default=None,
                   help="what the card's run lines load (default: EXP_DIR/packed_model.zip)")
    p.add_argument("--license", default=DEFAULT_LICENSE, help="licence of the model weights (Hub identifier)")
    p.add_argument("--title", default="", help="title after the system name (default: the task)")
    return p


def main(cmd: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(cmd)
    config_path = args.exp_dir / "config.yaml"
    try:
        if not config_path.is_file():
            raise CardError(f"--exp_dir {args.exp_dir}: no config.yaml (expected a trained model dir exp/<tag>)")
        try:
            config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise CardError(f"{config_path}: unreadable config ({str(exc).splitlines()[0]})") from exc
        if not isinstance(config, dict):
            raise CardError(f"{config_path}: not a YAML mapping")
        if task_of(config) is None:
            raise CardError(f"{config_path}: neither a CLIPSep (head / frontend_conf) nor a CLIPSonic (mel_conf) "
                            "training config")
        tag = args.tag or args.exp_dir.resolve().name
        output = args.output or args.exp_dir / "README.md"
        inputs = CardInputs(config=config, tag=tag, corpus=args.corpus, results=args.results,
                            world_dir=args.world_dir, train_scp=args.train_scp, train_query=args.train_query,
                            model_ref=args.model_ref or str(args.exp_dir / "packed_model.zip"),
                            license=args.license, title=args.title)
        write_card(output, inputs)
    except (CardError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    print(f"{PROG}: wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
