"""One query embedder for separation (CLIPSep) and generation (CLIPSonic).

A query has an explicit kind: ``"text"`` (a string), ``"frames"`` (the frames of one video, or one
image: their mean embedding) or ``"embedding"`` (a precomputed vector, per-frame vectors that are
averaged, or label ids). Text and frames go through the frozen encoder that the model's training
config records (``query_encoder`` / ``query_encoder_conf``); text uses the config's prompt templates.
"""

from typing import Any, Dict, Optional, Union

import numpy as np
import torch

QUERY_KINDS = ("text", "frames", "embedding")


def infer_query_kind(query: Any) -> str:
    """The kind of a query given to the Python APIs without one: a string is text, an array or tensor
    an embedding, anything else (PIL image(s), paths in a list) frames."""
    if isinstance(query, str):
        return "text"
    if isinstance(query, (np.ndarray, torch.Tensor)):
        return "embedding"
    return "frames"


class QueryEmbedder:
    """Embeds queries of an explicit kind the way a trained model's queries were embedded."""

    def __init__(self, encoder_name: Optional[str], encoder_conf: Optional[Dict], text_prompt: str = "single",
                 device: str = "cpu"):
        """Initialize QueryEmbedder.

        Args:
            encoder_name: Registry name of the frozen encoder (None: embeddings only).
            encoder_conf: Its options.
            text_prompt: Prompt templates of text queries ("single", "ensemble", "none" or a list).
            device: Where the encoder runs and the embeddings are put.
        """
        self.encoder_name = encoder_name
        self.encoder_conf = dict(encoder_conf or {})
        self.text_prompt = text_prompt
        self.device = device
        self._encoder = None

    @property
    def encoder(self):
        """The frozen encoder, built on first use (embedding queries never build it)."""
        if self._encoder is None:
            from espnet2_clip.query.choices import build_query_encoder

            self._encoder = build_query_encoder(self.encoder_name, self.encoder_conf, self.device)
        return self._encoder

    def __call__(self, kind: str, query: Any) -> torch.Tensor:
        """Embed one query: (1, D) (float), or (1, 1) int64 label ids.

        Args:
            kind: "text", "frames" or "embedding".
            query: A string; a PIL image / path or a list of them; an array or tensor.
        """
        if kind == "text":
            if not isinstance(query, str) or not query.strip():
                raise ValueError(f"empty text query: {query!r}")
            emb = self.encoder.encode("text", [query], templates=self.text_prompt)
        elif kind == "frames":
            frames = list(query) if isinstance(query, (list, tuple)) else [query]
            if not frames:
                raise ValueError("empty image query: no frames")
            emb = self.encoder.encode("frames", [frames])
        elif kind == "embedding":
            emb = self._as_embedding(query)
        else:
            raise ValueError(f"unknown query kind '{kind}' (expected one of {QUERY_KINDS})")
        return emb.to(self.device)

    @staticmethod
    def _as_embedding(query: Union[np.ndarray, torch.Tensor]) -> torch.Tensor:
        emb = torch.as_tensor(np.asarray(query) if isinstance(query, np.ndarray) else query)
        if emb.numel() == 0:
            raise ValueError("empty query embedding")
        if not emb.is_floating_point():
            return emb.long().reshape(1, -1)  # label ids
        if emb.dim() == 2:  # per-frame embeddings: their mean
            emb = emb.mean(0)
        return emb.float().reshape(1, -1)
