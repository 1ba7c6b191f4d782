#!/usr/bin/env python3
"""Deprecated name of ``espnet2_clip.bin.query_embed`` (kept for one release): ``--clip_model X
--clip_pretrained Y`` are read as ``--query_encoder clip --query_encoder_conf "{model_name: X,
pretrained: Y}"``, ``--prompt`` as ``--text_prompt``."""

import sys
from typing import List, Optional

from espnet2_clip.bin.query_embed import get_parser, run  # noqa: F401  (old imports keep working)
from espnet2_clip.utils.cli import logger


def main(argv: Optional[List[str]] = None) -> None:
    from espnet2_clip.bin import query_embed

    logger.warning("espnet2_clip.bin.extract_clip_embeddings is deprecated and will be removed after the next "
                   "release: use python -m espnet2_clip.bin.query_embed")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a == "--clip_model" or a.startswith("--clip_model=") for a in argv):
        argv += ["--clip_model", "ViT-B-32"]  # the old defaults
    if not any(a == "--clip_pretrained" or a.startswith("--clip_pretrained=") for a in argv):
        argv += ["--clip_pretrained", "openai"]
    query_embed.main(["--query_encoder", "clip"] + argv)


if __name__ == "__main__":
    main()
