"""The diffusion-prior interface of CLIPSonic-PD: CLIP text embedding -> CLIP image embedding."""

from abc import ABC, abstractmethod
from typing import Optional

import torch


class AbsPrior(torch.nn.Module, ABC):
    """A text -> image embedding prior.

    Implementations: :class:`espnet2_clip.t2a.prior.DiffusionPrior` (``trained``: trained by the
    recipe on captioned images, packed with the model) and
    :class:`espnet2_clip.t2a.laion_prior.LaionPrior` (``laion``: the published DALL-E 2 prior).
    """

    #: True when :meth:`sample` needs the CLIP token encodings of the text as well.
    uses_text_encodings: bool = False

    @property
    @abstractmethod
    def embed_dim(self) -> int:
        """The CLIP embedding size D it works on."""

    @abstractmethod
    def sample(self, text_emb: torch.Tensor, num_steps: Optional[int] = None, guidance_scale: float = 1.0,
               generator: Optional[torch.Generator] = None, *,
               text_encodings: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, D) CLIP text embeddings [+ (B, L, W) token encodings] -> (B, D) unit-norm image embeddings."""
