"""Query sources: what turns a query (embedding or label id) into k pre-sigmoid logits.

* ``embedding``: a precomputed vector (CLIP image/text embedding, BERT embedding) ->
  ``Linear(input_dim -> k)``. CLIPSep, CLIPSep-NIT, CLIPSep-Text and BERTSep use it.
* ``label``: a learned label table ``Embedding(num_labels, 512)`` -> ``Linear(512 -> k)``
  (LabelSep).
"""

from abc import ABC, abstractmethod

import torch
from torch import nn
from typeguard import typechecked


class AbsQuery(nn.Module, ABC):
    """Maps a batch of queries to (B, k) pre-sigmoid query logits."""

    num_channels: int

    @abstractmethod
    def forward(self, query: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @abstractmethod
    def check(self, query: torch.Tensor) -> None:
        """Raise a ValueError if ``query`` does not have the expected kind or size."""
        raise NotImplementedError


class EmbeddingQuery(AbsQuery):
    """A precomputed embedding projected to k channels."""

    @typechecked
    def __init__(self, num_channels: int = 32, input_dim: int = 512):
        """Initialize EmbeddingQuery.

        Args:
            num_channels: k, the number of backbone output maps.
            input_dim: Size of the query embedding (512 for CLIP ViT-B/32).
        """
        super().__init__()
        self.num_channels = num_channels
        self.input_dim = input_dim
        self.proj = nn.Linear(input_dim, num_channels)
        nn.init.normal_(self.proj.weight, 0.0, 1e-4)

    def check(self, query: torch.Tensor) -> None:
        if query.dim() != 2 or query.shape[-1] != self.input_dim or query.is_complex() or not query.is_floating_point():
            raise ValueError(
                f"query embedding must be a float tensor (B, {self.input_dim}); got "
                f"{tuple(query.shape)} {query.dtype}. Was it made with the same encoder as "
                f"training (embedding size {self.input_dim})?"
            )

    def forward(self, query: torch.Tensor) -> torch.Tensor:
        """(B, input_dim) embeddings -> (B, k) logits."""
        self.check(query)
        return self.proj(query)


class LabelQuery(AbsQuery):
    """A learned label table (LabelSep)."""

    @typechecked
    def __init__(self, num_channels: int = 32, num_labels: int = 2, embed_dim: int = 512):
        """Initialize LabelQuery.

        Args:
            num_channels: k, the number of backbone output maps.
            num_labels: Size of the label vocabulary.
            embed_dim: Size of a label's learned embedding.
        """
        super().__init__()
        self.num_channels = num_channels
        self.num_labels = num_labels
        self.table = nn.Embedding(num_labels, embed_dim)
        self.proj = nn.Linear(embed_dim, num_channels)
        nn.init.normal_(self.proj.weight, 0.0, 1e-4)

    def check(self, query: torch.Tensor) -> None:
        if query.is_floating_point() or query.numel() != query.shape[0]:
            raise ValueError(f"label query must be integer ids (B,) or (B, 1); got {tuple(query.shape)} {query.dtype}")
        if query.numel() and (query.min() < 0 or query.max() >= self.num_labels):
            raise ValueError(f"label id out of range [0, {self.num_labels}): {query.flatten().tolist()}")

    def forward(self, query: torch.Tensor) -> torch.Tensor:
        """(B,) or (B, 1) label ids -> (B, k) logits."""
        self.check(query)
        return self.proj(self.table(query.reshape(-1).long()))
