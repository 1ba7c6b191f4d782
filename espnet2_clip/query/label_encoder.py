"""A label table as a query encoder (LabelSep): label text -> its id in the training vocabulary."""

from pathlib import Path
from typing import List, Sequence, Union

import torch
from typeguard import typechecked

from espnet2_clip.query.abs_query_encoder import AbsQueryEncoder


class LabelTableEncoder(AbsQueryEncoder):
    """Maps a label to its int64 id ``(N, 1)`` in a vocabulary file (one label a line, id = line - 1:
    the ``label_vocab`` that ``espnet2_clip.bin.make_label_ids`` writes). Prompt templates do not
    apply: a query must be one of the training labels (whitespace is normalised)."""

    modalities = ("text",)

    @typechecked
    def __init__(self, vocab: Union[str, Path], device: str = "cpu"):
        """Initialize LabelTableEncoder.

        Args:
            vocab: The label vocabulary file.
            device: Where the ids are put.
        """
        super().__init__()
        try:
            lines = Path(vocab).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ValueError(f"cannot read the label vocabulary '{vocab}': {exc}") from exc
        self.labels: List[str] = [" ".join(line.split()) for line in lines if line.strip()]
        if not self.labels:
            raise ValueError(f"the label vocabulary '{vocab}' is empty")
        self.ids = {label: i for i, label in enumerate(self.labels)}
        self.vocab = str(vocab)
        self.device = device

    @property
    def embed_dim(self) -> int:
        return 1

    def encode_text(self, queries: Sequence[str], templates: Union[str, Sequence[str]] = ("{}",)) -> torch.Tensor:
        """(N, 1) int64 label ids."""
        ids = []
        for query in [queries] if isinstance(queries, str) else queries:
            label = " ".join(str(query).split())
            if label not in self.ids:
                shown = ", ".join(self.labels[:10]) + (" ..." if len(self.labels) > 10 else "")
                raise ValueError(f"'{query}' is not a label of {self.vocab} ({len(self.labels)} labels: {shown}); "
                                 "LabelSep can only be queried with its training labels")
            ids.append(self.ids[label])
        return torch.tensor(ids, dtype=torch.long, device=self.device).reshape(-1, 1)
