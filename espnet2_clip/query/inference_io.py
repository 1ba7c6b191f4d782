"""What the inference front ends (CLIPSep separation, CLIPSonic generation) share: the frozen
query encoder recorded in a training config, the query lists of the CLIs and their common options."""

import argparse
import logging
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np

from espnet2_clip.utils.cpu import flush_denormals
from espnet2_clip.utils.fileio import read_scp, split_paths


def build_query_encoder(name: Optional[str], conf: Dict, device: str):
    """The frozen encoder recorded in a training config (``query_encoder`` / ``query_encoder_conf``)."""
    if name == "clip":
        from espnet2_clip.query.clip_encoder import CLIPQueryEncoder

        return CLIPQueryEncoder(device=device, **conf)
    if name == "bert":
        from espnet2_clip.query.bert_encoder import BERTQueryEncoder

        return BERTQueryEncoder(device=device, **conf)
    raise ValueError(f"this model records no query encoder ({name!r}): pass embeddings as queries")


def add_query_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    """``--query_text`` | ``--query_image`` | ``--query_embedding`` (one of them) and the encoder options."""
    from espnet2.utils.nested_dict_action import NestedDictAction

    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--query_text", help="'uttid query text' list (text queries)")
    group.add_argument("--query_image", help="'uttid image.png [image2.png ...]' list (image queries; "
                                             "several frames are averaged)")
    group.add_argument("--query_embedding", help="'uttid emb.npy' list (precomputed embeddings)")
    parser.add_argument("--text_prompt", default=None, choices=["single", "ensemble", "none"],
                        help="Prompt templates of text queries (default: the training config's)")
    parser.add_argument("--query_encoder_conf", action=NestedDictAction, default=None,
                        help="Overrides of the recorded query encoder options (e.g. local weights)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--log_level", default="INFO")


class QueryLists:
    """The query list given to a CLI (text, image or embedding ``scp``), read by utterance id."""

    def __init__(self, args: argparse.Namespace):
        self.texts = read_scp(args.query_text) if args.query_text else None
        self.images = read_scp(args.query_image) if args.query_image else None
        self.embeddings = read_scp(args.query_embedding) if args.query_embedding else None
        self.option, self.table = next(
            ((name, table) for name, table in (("--query_text", self.texts), ("--query_image", self.images),
                                               ("--query_embedding", self.embeddings)) if table is not None),
            (None, None),
        )

    def check_covers(self, keys: Sequence[str]) -> None:
        """Raise naming the option if some utterance has no query."""
        if self.table is not None:
            missing = sorted(set(keys) - set(self.table))
            if missing:
                raise ValueError(f"{self.option} has no query for {len(missing)} mixtures, e.g. {missing[:5]}")

    def __getitem__(self, key: str) -> Any:
        """Text, list of PIL frames, or an embedding array (None without a query list)."""
        if self.texts is not None:
            return self.texts[key]
        if self.images is not None:
            return _load_frames(self.images[key])
        if self.embeddings is not None:
            return np.load(self.embeddings[key])
        return None


def _load_frames(value: str) -> list:
    """One image path (which may contain spaces) or several space-separated (shell-quoted) paths
    -> RGB frames."""
    from PIL import Image

    paths = split_paths(value)
    frames = []
    for path in paths:
        try:
            with Image.open(path) as im:
                frames.append(im.convert("RGB"))
        except OSError as exc:
            raise ValueError(f"cannot read the query image '{path}': {exc}") from exc
    return frames


def run_cli(parser: argparse.ArgumentParser, job: Callable[[argparse.Namespace], None],
            cmd: Optional[Sequence[str]] = None) -> None:
    """Parse, set up CPU and logging, run ``job(args)``."""
    args = parser.parse_args(cmd)
    flush_denormals()
    logging.basicConfig(level=args.log_level, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    job(args)
