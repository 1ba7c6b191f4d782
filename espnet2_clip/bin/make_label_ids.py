#!/usr/bin/env python3
"""Label ids for LabelSep: a vocabulary from the training labels and one ``.npy`` id per item.

    python -m espnet2_clip.bin.make_label_ids --vocab dump/label_vocab \\
        --train_label data/train/label --input data/valid/label --input data/test_mix/text \\
        --output_dir dump/label_ids

writes ``label_vocab`` (one label a line; id = line number - 1) and for every input file
``<output_dir>/<set>/label_id.scp`` (``uttid path.npy`` holding an int64 array (1,)). A label
missing from the vocabulary is an error naming the file and line.
"""

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from espnet2_clip.utils.fileio import atomic_path, read_scp, write_scp, write_text_atomic


def build_vocab(train_label: Path) -> List[str]:
    return sorted(set(read_scp(train_label).values()))


def write_ids(labels_file: Path, vocab: Dict[str, int], out_dir: Path) -> int:
    labels = read_scp(labels_file)
    lines = labels_file.read_text(encoding="utf-8").splitlines()
    line_of = {line.split(maxsplit=1)[0]: i for i, line in enumerate(lines, 1) if line.strip()}
    scp = {}
    for key, label in labels.items():
        if label not in vocab:
            raise ValueError(
                f"{labels_file}:{line_of[key]}: label '{label}' of '{key}' is not among the "
                f"{len(vocab)} training labels (LabelSep can only query labels it was trained on)"
            )
        path = out_dir / "npy" / f"{key}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, np.array([vocab[label]], dtype=np.int64))
        scp[key] = str(path.resolve())
    write_scp(out_dir / "label_id.scp", scp)
    return len(scp)


def get_parser() -> argparse.ArgumentParser:
    """Argument parser of the CLI."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_label", required=True, type=Path, help="'uttid label' of the training set")
    parser.add_argument("--input", action="append", type=Path, default=[],
                        help="'uttid label' files to convert (repeatable); <set> = its parent dir name")
    parser.add_argument("--vocab", required=True, type=Path, help="output label vocabulary")
    parser.add_argument("--output_dir", required=True, type=Path)
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> int:
    parser = get_parser()
    args = parser.parse_args(cmd)
    try:
        vocab_list = build_vocab(args.train_label)
        write_text_atomic(args.vocab, "".join(f"{v}\n" for v in vocab_list))
        vocab = {label: i for i, label in enumerate(vocab_list)}
        for path in [args.train_label, *args.input]:
            n = write_ids(path, vocab, args.output_dir / path.parent.name)
            print(f"{path}: {n} label ids")
    except (ValueError, FileNotFoundError) as e:
        print(f"make_label_ids: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
