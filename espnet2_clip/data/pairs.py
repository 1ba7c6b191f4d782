"""Evaluation mixtures of MUSIC+ and VGGSound-Clean+, paired as in CLIPSep's evaluation.

Target ``idx`` (its row in the target list) is mixed with the interference clip
``pool[random.seed(idx); random.randint(0, len(pool) - 1)]``; both clips are cut around
their centre frame ``n_frames // 2``.

* MUSIC+: targets = MUSIC solo ``test.csv`` (46), pool = VGGSound ``test-good-no-music.csv`` (75)
* VGGSound-Clean+: targets = ``test-good.csv`` (100), pool = ``test-no-music.csv`` (5,322)
"""

import csv
import io
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Union

from espnet2_clip.data.lists import ClipRecord, ListFormatError
from espnet2_clip.utils.fileio import write_text_atomic

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

PAIR_COLUMNS = (
    "idx",
    "target_id",
    "target_label",
    "target_center_frame",
    "interf_id",
    "interf_label",
    "interf_center_frame",
)


@dataclass(frozen=True)
class EvalPair:
    idx: int
    target_id: str
    target_label: str
    target_center_frame: int
    interf_id: str
    interf_label: str
    interf_center_frame: int

    def to_row(self) -> List[str]:
        return [str(getattr(self, c)) for c in PAIR_COLUMNS]


def interference_index(idx: int, pool_size: int) -> int:
    """``random.seed(idx); random.randint(0, pool_size - 1)`` without touching the global RNG."""
    if pool_size <= 0:
        raise ValueError("the interference pool is empty")
    return random.Random(idx).randint(0, pool_size - 1)


def build_eval_pairs(targets: Sequence[ClipRecord], pool: Sequence[ClipRecord]) -> List[EvalPair]:
    """Pair every target with its interference clip exactly as the official evaluation.

    The official draw may give a target itself as its interference (the published pairs have no such
    pair; a small pool can): the pair is kept, as the protocol says, with a warning that its score
    measures nothing.
    """
    pairs = []
    for idx, t in enumerate(targets):
        s = pool[interference_index(idx, len(pool))]
        if s.clip_id == t.clip_id:
            logger.warning(f"pair {idx}: the interference drawn for {t.clip_id} is the clip itself ({s.source}); "
                           "kept as the official pairing does, but its score measures nothing (a larger pool avoids it)")
        pairs.append(
            EvalPair(
                idx=idx,
                target_id=t.clip_id,
                target_label=t.label or "",
                target_center_frame=t.center_frame,
                interf_id=s.clip_id,
                interf_label=s.label or "",
                interf_center_frame=s.center_frame,
            )
        )
    return pairs


def pairs_to_csv_text(pairs: Sequence[EvalPair]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(PAIR_COLUMNS)
    for p in pairs:
        w.writerow(p.to_row())
    return buf.getvalue()


def write_pairs_csv(path: PathLike, pairs: Sequence[EvalPair]) -> None:
    """Write pairs with the header of ``pairs_*.csv`` (atomically)."""
    write_text_atomic(path, pairs_to_csv_text(pairs))


def read_pairs_csv(path: PathLike) -> List[EvalPair]:
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != PAIR_COLUMNS:
            raise ListFormatError(f"{path}:1: expected header {','.join(PAIR_COLUMNS)}")
        out = []
        for row in reader:
            if not row:
                continue
            where = f"{path}:{reader.line_num}"
            if len(row) != len(PAIR_COLUMNS):
                raise ListFormatError(f"{where}: expected {len(PAIR_COLUMNS)} columns, got {len(row)}")
            try:
                out.append(
                    EvalPair(int(row[0]), row[1], row[2], int(row[3]), row[4], row[5], int(row[6]))
                )
            except ValueError as e:
                raise ListFormatError(f"{where}: {e}") from e
    return out
