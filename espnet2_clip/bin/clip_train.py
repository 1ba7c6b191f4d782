"""Train a small CLIP (open_clip model class + contrastive loss) on captioned images only.

Example::

    python -m espnet2_clip.bin.clip_train --data_dir data/clip_train --output_dir exp/clip \\
        --model_config espnet2clip-small --max_minutes 5 --eval_labels auto

The output dir loads like a pretrained CLIP:
``CLIPQueryEncoder(model_name="exp/clip")`` or ``--query_encoder_conf "{model_name: exp/clip, pretrained: none}"`` in other tools.
"""

import argparse
import logging
import sys
from typing import List, Optional

from espnet2_clip.query.clip_training import DEFAULT_EVAL_TEMPLATES, train_clip


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data_dir", required=True,
                   help="dir with image.scp ('uttid path.png'), caption ('uttid text') and optional label")
    p.add_argument("--output_dir", required=True,
                   help="writes open_clip_model.safetensors, open_clip_config.json, train_info.json, train_clip.log")
    p.add_argument("--model_config", default="espnet2clip-small",
                   help="espnet2clip-small / espnet2clip-tiny / an open_clip model name / an open_clip "
                        "config JSON (random init), or a trained model dir (continues from its weights)")
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight_decay", type=float, default=0.1)
    p.add_argument("--warmup_steps", type=int, default=50)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--max_steps", type=int, default=None)
    p.add_argument("--max_minutes", type=float, default=None,
                   help="wall-clock budget for the training loop; the cosine schedule follows it")
    p.add_argument("--num_workers", type=int, default=2, help="threads decoding images at preload")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min_crop_scale", type=float, default=0.5,
                   help="random-resized-crop minimum area fraction (1 = no crop)")
    p.add_argument("--hflip_prob", type=float, default=0.5)
    p.add_argument("--load_size", type=int, default=None,
                   help="preload resolution (default 1.25 x the model's image size)")
    p.add_argument("--eval_labels", default=None,
                   help="zero-shot check on held-out images: 'auto' (classes of <data_dir>/label; "
                        "skipped with a log line when there is no label file), "
                        "'a,b,c' or a file with one class name per line")
    p.add_argument("--eval_fraction", type=float, default=0.1)
    p.add_argument("--eval_template", action="append", default=None,
                   help=f"prompt template(s) of the zero-shot check (default {DEFAULT_EVAL_TEMPLATES[0]!r})")
    p.add_argument("--eval_interval", type=int, default=5, help="zero-shot check every N epochs (0: end only)")
    p.add_argument("--log_interval", type=int, default=20)
    return p


def main(argv: Optional[List[str]] = None) -> None:
    args = get_parser().parse_args(argv)
    # our INFO, but only WARNING from open_clip's (root logger) messages
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("espnet2_clip").setLevel(logging.INFO)
    kwargs = vars(args)
    kwargs["eval_templates"] = tuple(kwargs.pop("eval_template") or DEFAULT_EVAL_TEMPLATES)
    train_clip(**kwargs)


if __name__ == "__main__":
    main()
