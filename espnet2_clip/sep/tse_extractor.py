"""CLIPSep as an ESPnet target-speaker-extraction extractor (``--extractor clipsep``).

Lets ESPnet's own TSE task (``espnet2_clip.bin.tse_train``) train/run CLIPSep on fixed mixtures
with a precomputed query embedding as ``enroll_ref1`` (``load_spk_embedding: true``,
``share_encoder: false``) and an STFT encoder with ``n_fft`` 1024 / hop 256.
"""

from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
from espnet2.enh.extractor.abs_extractor import AbsExtractor
from typeguard import typechecked

from espnet2_clip.sep.frontend import LogFreqSTFT, log_magnitude
from espnet2_clip.sep.heads import QueryMaskHead
from espnet2_clip.sep.query import EmbeddingQuery
from espnet2_clip.sep.unet import AudioUNet


class CLIPSepExtractor(AbsExtractor):
    """Query-conditioned U-Net mask on the log-frequency-warped STFT magnitude."""

    @typechecked
    def __init__(self, input_dim: int, num_warped_bins: int = 256, query_dim: int = 512,
                 unet_conf: Optional[Dict] = None):
        """Initialize CLIPSepExtractor.

        Args:
            input_dim: Frequency bins of the encoder output (n_fft // 2 + 1).
            num_warped_bins: Rows of the warped spectrogram.
            query_dim: Size of the query embedding given as ``enroll_ref1``.
            unet_conf: Options of :class:`AudioUNet`.
        """
        super().__init__()
        self.warp = LogFreqSTFT(n_fft=(input_dim - 1) * 2, num_warped_bins=num_warped_bins)
        self.unet = AudioUNet(**(unet_conf or {}))
        self.head = QueryMaskHead(EmbeddingQuery(self.unet.out_channels, query_dim))

    def forward(
        self,
        input: torch.Tensor,
        ilens: torch.Tensor,
        input_aux: torch.Tensor,
        ilens_aux: torch.Tensor,
        suffix_tag: str = "",
        additional: Optional[Dict] = None,
    ) -> Tuple[List[torch.Tensor], torch.Tensor, OrderedDict]:
        """Mask the mixture spectrum with the query's mask.

        Args:
            input: (B, T, F) complex mixture spectrum from the STFT encoder.
            ilens: (B,) frame counts.
            input_aux: (B, D) or (B, 1, D) query embeddings.
            ilens_aux: (B,) unused.

        Returns:
            [(B, T, F) masked spectrum], ilens, {"mask<suffix>": (B, T, F)}.
        """
        mag = input.abs().transpose(1, 2)  # (B, F, T)
        features = self.unet(log_magnitude(self.warp.warp(mag)))
        warped_mask = self.head.masks(features, input_aux.reshape(input_aux.shape[0], -1).float())[:, 0]
        mask = self.warp.unwarp(warped_mask).transpose(1, 2)
        return [input * mask], ilens, OrderedDict({f"mask{suffix_tag}": mask})
