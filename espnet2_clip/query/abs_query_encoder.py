"""The interface of a frozen query encoder (CLIP, BERT, a label table, or one of your own).

A query encoder turns what a user asks for into the vector a model is conditioned on. It is
frozen and not part of the trained model: training queries are embedded once (stage 5 of the
recipes, ``espnet2_clip.bin.query_embed``), and inference embeds the user's query the same way.
A training config records which encoder made its queries (``query_encoder`` /
``query_encoder_conf``, an entry of :data:`espnet2_clip.query.choices.query_encoder_choices`).

Adding an encoder = one file with a subclass + one line in that registry.
"""

from abc import ABC, abstractmethod
from typing import Sequence, Tuple, Union

import torch

QUERY_KINDS = ("text", "image", "frames")  # what encode() takes; "embedding" queries skip the encoder


class AbsQueryEncoder(torch.nn.Module, ABC):
    """Frozen encoder of text and/or image queries into ``(N, embed_dim)`` vectors.

    Subclasses set :attr:`modalities` and implement :attr:`embed_dim` and the ``encode_*``
    methods of their modalities.
    """

    modalities: Tuple[str, ...] = ()  # "text" and/or "image"

    @property
    @abstractmethod
    def embed_dim(self) -> int:
        """Size D of one embedding."""

    def encode_text(self, queries: Sequence[str], templates: Union[str, Sequence[str]] = ("{}",)) -> torch.Tensor:
        """Text queries -> (N, D); ``templates``: prompt templates averaged over (where it applies)."""
        raise self._unsupported("text")

    def encode_images(self, images: Sequence) -> torch.Tensor:
        """Images (PIL images, paths or HxWx3 uint8 arrays) -> (N, D)."""
        raise self._unsupported("image")

    def encode_frames(self, frames: Sequence) -> torch.Tensor:
        """The frames of one video -> (D,): the mean of their embeddings."""
        if len(frames) == 0:
            raise ValueError("encode_frames: no frames given")
        return self.encode_images(frames).mean(0)

    def encode(self, kind: str, items: Sequence, templates: Union[str, Sequence[str]] = ("{}",)) -> torch.Tensor:
        """Embed ``items`` of one query kind: (N, D).

        Args:
            kind: "text" (strings), "image" (one image per item) or "frames" (a list of frames per
                item, averaged).
            items: The queries.
            templates: Prompt templates of text queries.
        """
        if kind == "text":
            return self.encode_text(list(items), templates=templates)
        if kind == "image":
            return self.encode_images(list(items))
        if kind == "frames":
            return torch.stack([self.encode_frames(list(frames)) for frames in items])
        raise ValueError(f"unknown query kind '{kind}' (expected one of {QUERY_KINDS})")

    def train(self, mode: bool = True):
        """Stays in eval mode: query encoders are frozen."""
        return super().train(False)

    def _unsupported(self, modality: str) -> ValueError:
        return ValueError(f"the {type(self).__name__} query encoder takes {' or '.join(self.modalities) or 'no'} "
                          f"queries, not {modality} queries")
