"""One CLI vocabulary across the entry points, ESPnet's names where ESPnet has one
(``--output_dir``, ``--fs``, ``--batch_size``, ``--text_prompt``, ``--query_encoder`` /
``--query_encoder_conf``). Old spellings are accepted for one release: the argument list is
rewritten before parsing, with a warning that names the new option."""

import importlib
import logging
import sys
from typing import Dict, List, Optional, Sequence, Tuple, Union

logger = logging.getLogger("espnet2_clip.cli")

# old option -> new option, or (new option, format of its value) when the old value becomes part
# of another option (e.g. --clip_model X -> --query_encoder_conf model_name=X)
Alias = Union[str, Tuple[str, str]]
OUTPUT_DIR_ALIASES: Dict[str, Alias] = {"--out": "--output_dir", "--out_dir": "--output_dir"}
CLIP_ENCODER_ALIASES: Dict[str, Alias] = {
    "--clip_model": ("--query_encoder_conf", "model_name={}"),
    "--clip_model_name": ("--query_encoder_conf", "model_name={}"),
    "--clip_pretrained": ("--query_encoder_conf", "pretrained={}"),
}


def rewrite_deprecated(argv: Sequence[str], aliases: Dict[str, Alias]) -> List[str]:
    """Replace deprecated option spellings (``--old value`` and ``--old=value``) by the new ones."""
    out: List[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        name, eq, value = args[i].partition("=")
        alias = aliases.get(name) if name.startswith("--") else None
        if alias is None:
            out.append(args[i])
            i += 1
            continue
        new = alias if isinstance(alias, str) else alias[0]
        logger.warning(f"{name} is deprecated and will be removed after the next release: use {new}")
        if isinstance(alias, str):
            out.append(new + eq + value)
            i += 1
            continue
        if not eq:  # the value is the next argument
            if i + 1 >= len(args):
                out.append(name)  # let argparse say that a value is missing
                break
            value = args[i + 1]
            i += 1
        out += [new, alias[1].format(value)]
        i += 1
    return out


def parse_args(parser, argv: Optional[Sequence[str]] = None, aliases: Optional[Dict[str, Alias]] = None):
    """``parser.parse_args`` of ``argv`` (default: ``sys.argv[1:]``) with deprecated spellings rewritten."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return parser.parse_args(rewrite_deprecated(argv, aliases or {}))


def run_renamed(old: str, new: str) -> None:
    """Body of an entry point that moved (``python -m espnet2_clip.bin.<old>``): warn, run ``<new>``."""
    logger.warning(f"espnet2_clip.bin.{old} is deprecated and will be removed after the next release: "
                   f"use python -m espnet2_clip.bin.{new}")
    result = importlib.import_module(f"espnet2_clip.bin.{new}").main(sys.argv[1:])
    sys.exit(result if isinstance(result, int) else 0)
