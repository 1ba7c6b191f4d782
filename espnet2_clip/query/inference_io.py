"""What the inference front ends (CLIPSep separation, CLIPSonic generation) share: the query lists
of the CLIs (each of an explicit kind) and their common options."""

import argparse
import logging
from typing import Any, Callable, Optional, Sequence, Tuple

import numpy as np

from espnet2_clip.utils.cpu import flush_denormals
from espnet2_clip.utils.fileio import read_scp, split_paths


def add_query_list_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    """``--query_text`` | ``--query_image`` | ``--query_embedding``: one of them."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--query_text", help="'uttid query text' list (text queries)")
    group.add_argument("--query_image", help="'uttid image.png [image2.png ...]' list (image queries; "
                                             "several frames are averaged)")
    group.add_argument("--query_embedding", help="'uttid emb.npy' list (precomputed embeddings)")


def add_query_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    """The query list (:func:`add_query_list_arguments`) and the encoder options."""
    from espnet2.utils.nested_dict_action import NestedDictAction

    add_query_list_arguments(parser, required)
    parser.add_argument("--text_prompt", default=None, choices=["single", "ensemble", "none"],
                        help="Prompt templates of text queries (default: the training config's)")
    parser.add_argument("--query_encoder_conf", action=NestedDictAction, default=None,
                        help="Overrides of the recorded query encoder options (e.g. local weights)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--log_level", default="INFO")


class QueryLists:
    """The query list given to a CLI (text, image or embedding ``scp``), read by utterance id."""

    KINDS = (("--query_text", "text"), ("--query_image", "frames"), ("--query_embedding", "embedding"))

    def __init__(self, args: argparse.Namespace):
        tables = {"text": args.query_text, "frames": args.query_image, "embedding": args.query_embedding}
        self.option, self.kind, self.table = next(
            ((option, kind, read_scp(tables[kind])) for option, kind in self.KINDS if tables[kind]),
            (None, None, None),
        )

    def check_covers(self, keys: Sequence[str]) -> None:
        """Raise naming the option if some utterance has no query."""
        if self.table is not None:
            missing = sorted(set(keys) - set(self.table))
            if missing:
                raise ValueError(f"{self.option} has no query for {len(missing)} mixtures, e.g. {missing[:5]}")

    def __getitem__(self, key: str) -> Tuple[Optional[str], Any]:
        """``(kind, query)``: ("text", str), ("frames", list of PIL frames), ("embedding", array),
        or (None, None) without a query list."""
        if self.table is None:
            return None, None
        value = self.table[key]
        if self.kind == "frames":
            return self.kind, _load_frames(value)
        if self.kind == "embedding":
            return self.kind, np.load(value)
        return self.kind, value


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
