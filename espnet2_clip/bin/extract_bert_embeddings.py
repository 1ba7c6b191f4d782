#!/usr/bin/env python3
"""Embed the labels of a data dir with a frozen BERT encoder (BERTSep training queries; clipsep.sh stage 5).

    python -m espnet2_clip.bin.extract_bert_embeddings --model bert-base-uncased --input dump/train/label \
        --output_dir dump/train/bert_text --output_scp dump/train/query_text_bert.scp

One ``npy`` (hidden,) per distinct label (``espnet2_clip.query.bert_encoder.BERTQueryEncoder``,
[CLS] pooling, the raw label as text); the scp maps every uttid to its label's file. Reruns
reuse the files of labels already embedded with the same model.
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from espnet2_clip.utils.fileio import atomic_path, read_scp, write_scp, write_text_atomic


def main(cmd=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="Hugging Face model id or local dir")
    p.add_argument("--input", required=True, type=Path, help="'uttid label' file")
    p.add_argument("--output_dir", required=True, type=Path)
    p.add_argument("--output_scp", required=True, type=Path)
    p.add_argument("--pooling", default="cls", choices=["cls", "mean"])
    p.add_argument("--device", default="cpu")
    args = p.parse_args(cmd)
    labels = read_scp(args.input)
    info = args.output_dir / "bert_info.json"
    wanted = {"model": args.model, "pooling": args.pooling}
    if not info.is_file() or json.loads(info.read_text()) != wanted:
        for old in args.output_dir.glob("*.npy"):
            old.unlink()
    path_of = {lab: args.output_dir / (hashlib.sha1(lab.encode()).hexdigest()[:16] + ".npy")
               for lab in sorted(set(labels.values()))}
    todo = [lab for lab, path in path_of.items() if not path.is_file()]
    if todo:
        from espnet2_clip.query.bert_encoder import BERTQueryEncoder

        encoder = BERTQueryEncoder(args.model, pooling=args.pooling, device=args.device)
        emb = encoder.encode_text(todo).cpu().numpy().astype(np.float32)
        for lab, vec in zip(todo, emb):
            with atomic_path(path_of[lab]) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, vec)
    write_text_atomic(info, json.dumps(wanted) + "\n")
    write_scp(args.output_scp, {u: str(path_of[lab].resolve()) for u, lab in labels.items()})
    print(f"extract_bert_embeddings: {len(labels)} items, {len(path_of)} labels ({len(todo)} embedded now) "
          f"-> {args.output_scp}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
