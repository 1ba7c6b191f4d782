#!/usr/bin/env python3
"""Deprecated (kept for one release): ``python -m espnet2_clip.bin.query_embed --mode text
--query_encoder bert --query_encoder_conf model_name_or_path=M --text_prompt none`` does the same
(one embedding per distinct label); ``--model M --input F`` are read that way."""

import argparse
import sys
from typing import List, Optional

from espnet2_clip.utils.cli import logger


def main(argv: Optional[List[str]] = None) -> int:
    from espnet2_clip.bin import query_embed

    logger.warning("espnet2_clip.bin.extract_bert_embeddings is deprecated and will be removed after the next "
                   "release: use python -m espnet2_clip.bin.query_embed --query_encoder bert")
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", required=True, help="Hugging Face model id or local dir")
    p.add_argument("--input", required=True, help="'uttid label' file")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--output_scp", required=True)
    p.add_argument("--pooling", default="cls", choices=["cls", "mean"])
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    query_embed.main([
        "--mode", "text", "--query_encoder", "bert", "--query_encoder_conf", f"model_name_or_path={args.model}",
        "--query_encoder_conf", f"pooling={args.pooling}", "--text_prompt", "none", "--input_scp", args.input,
        "--output_dir", args.output_dir, "--output_scp", args.output_scp, "--device", args.device,
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main())
