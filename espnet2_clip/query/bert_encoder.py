"""Frozen BERT-family text encoder for the BERTSep baseline (any Hugging Face encoder).

The official BERTSep used an unreleased 256-d per-label BERT embedding; here any
``transformers`` encoder given by name or local path works, pooled by its [CLS] token or the
mean of its token states. Offline users and tests pass a local directory.
"""

from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from typeguard import typechecked

from espnet2_clip.query.abs_query_encoder import AbsQueryEncoder
from espnet2_clip.query.clip_encoder import get_templates


class BERTQueryEncoder(AbsQueryEncoder):
    """Text -> (N, hidden) embeddings from a frozen Hugging Face encoder."""

    modalities = ("text",)

    @typechecked
    def __init__(self, model_name_or_path: Union[str, Path] = "prajjwal1/bert-mini", pooling: str = "cls",
                 device: str = "cpu", batch_size: int = 64):
        """Initialize BERTQueryEncoder.

        Args:
            model_name_or_path: Hugging Face model id (needs network once) or local directory.
            pooling: "cls" ([CLS] state) or "mean" (mask-weighted mean of token states).
            device: Where the model runs.
            batch_size: Texts per forward pass.
        """
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got '{pooling}'")
        from transformers import AutoModel, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model_name_or_path))
            self.model = AutoModel.from_pretrained(str(model_name_or_path)).to(device).eval()
        except OSError as exc:
            raise ValueError(f"cannot load the BERT encoder '{model_name_or_path}': {exc}") from exc
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.pooling = pooling
        self.batch_size = batch_size
        self.device = device

    @property
    def embed_dim(self) -> int:
        return int(self.model.config.hidden_size)

    @torch.no_grad()
    def encode_text(self, queries: Sequence[str], templates: Union[str, Sequence[str]] = ("{}",),
                    progress: Optional[bool] = None) -> torch.Tensor:
        """Embed text queries: (N, hidden), the mean over ``templates``."""
        queries = [queries] if isinstance(queries, str) else list(queries)
        for i, q in enumerate(queries):
            if not isinstance(q, str) or not q.strip():
                raise ValueError(f"text query #{i} is empty or whitespace only: {q!r}")
        templates = get_templates(templates)
        texts = [t.format(" ".join(q.split())) for q in queries for t in templates]
        outs = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(texts[start : start + self.batch_size], padding=True, truncation=True,
                                   return_tensors="pt").to(self.device)
            states = self.model(**batch).last_hidden_state
            if self.pooling == "cls":
                outs.append(states[:, 0])
            else:
                mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
                outs.append((states * mask).sum(1) / mask.sum(1))
        emb = torch.cat(outs).float()
        return emb.view(len(queries), len(templates), -1).mean(1)
