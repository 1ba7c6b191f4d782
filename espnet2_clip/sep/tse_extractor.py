"""CLIPSep as an ESPnet target-speaker-extraction extractor (``--extractor clipsep``).

ESPnet's own ``TargetSpeakerExtractionTask`` trains and runs it through our thin entry points
``python -m espnet2_clip.bin.tse_train`` / ``espnet2_clip.bin.tse_inference`` (ESPnet's
``enh_tse_train`` / ``enh_tse_inference`` after :mod:`espnet2_clip.register`). The query is a
precomputed embedding (CLIP image or text embedding, ``.npy`` of shape (D,)) listed in
``enroll_spk1.scp`` and read with ``load_spk_embedding: true``; it reaches the extractor unchanged
with ``model_conf: {share_encoder: false}``. The encoder/decoder are ESPnet's ``stft`` (CLIPSep:
``n_fft`` 1024, ``hop_length`` 256 at 16 kHz); the loss is ``clipsep_bce`` with the
``clipsep_mask`` wrapper (:mod:`espnet2_clip.sep.tse_loss`).
"""

from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch
from espnet2.enh.extractor.abs_extractor import AbsExtractor
from typeguard import typechecked

from espnet2_clip.sep.frontend import LogFreqSTFT, log_magnitude
from espnet2_clip.sep.heads import QueryMaskHead
from espnet2_clip.sep.query import EmbeddingQuery
from espnet2_clip.sep.unet import AudioUNet


class CLIPSepExtractor(AbsExtractor):
    """Query-conditioned U-Net mask on the log-frequency-warped STFT magnitude.

    The mask is predicted on ``num_warped_bins`` log-frequency rows (where the loss supervises
    it), un-warped to the encoder's linear bins and applied to the mixture spectrum (soft mask,
    mixture phase), as CLIPSep separates.
    """

    @typechecked
    def __init__(
        self,
        input_dim: int,
        num_warped_bins: int = 256,
        query_dim: int = 512,
        unet_conf: Optional[Dict] = None,
    ):
        """Initialize CLIPSepExtractor.

        Args:
            input_dim: Frequency bins of the encoder output (n_fft // 2 + 1).
            num_warped_bins: Rows of the warped spectrogram (divisible by 2**unet num_downs).
            query_dim: Size of the query embedding given as ``enroll_ref1`` (512: CLIP ViT-B/32).
            unet_conf: Options of :class:`espnet2_clip.sep.unet.AudioUNet`.
        """
        super().__init__()
        self.warp = LogFreqSTFT(n_fft=(input_dim - 1) * 2, num_warped_bins=num_warped_bins)
        self.unet = AudioUNet(**(unet_conf or {}))
        size = 2**self.unet.num_downs
        if num_warped_bins % size:
            raise ValueError(
                f"extractor_conf.num_warped_bins={num_warped_bins} must be divisible by "
                f"2**unet_conf.num_downs={size}"
            )
        self.input_dim = input_dim
        self.query_dim = query_dim
        self.head = QueryMaskHead(EmbeddingQuery(self.unet.out_channels, query_dim))

    def _query(self, input_aux: torch.Tensor, batch: int) -> torch.Tensor:
        """(B, D) or (B, 1, D) enrollment embeddings -> (B, D) float queries."""
        if input_aux.is_complex() or input_aux.shape[0] != batch or input_aux[0].numel() != self.query_dim:
            raise ValueError(
                f"--extractor clipsep takes the enrollment as a query embedding of size "
                f"extractor_conf.query_dim={self.query_dim}, shaped (B, {self.query_dim}) or "
                f"(B, 1, {self.query_dim}); got {tuple(input_aux.shape)} {input_aux.dtype}. List "
                "(D,) .npy embeddings in enroll_spk1.scp and set `load_spk_embedding: true` and "
                "`model_conf: {share_encoder: false}`; query_dim must equal the embedding size."
            )
        return input_aux.reshape(batch, -1).float()

    def forward(
        self,
        input: torch.Tensor,
        ilens: torch.Tensor,
        input_aux: torch.Tensor,
        ilens_aux: torch.Tensor,
        suffix_tag: str = "",
        additional: Optional[Dict] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor, OrderedDict]:
        """Mask the mixture spectrum with the query's mask.

        Args:
            input: (B, T, F) complex mixture spectrum from the STFT encoder.
            ilens: (B,) frame counts.
            input_aux: (B, D) or (B, 1, D) query embeddings (``enroll_ref<n>``).
            ilens_aux: (B,) unused.
            suffix_tag: Suffix of the ``others`` keys, e.g. ``"_spk1"``.
            additional: Unused.

        Returns:
            (B, T, F) masked spectrum (one tensor, as ESPnet's TSE model decodes it; not the
            list ``AbsExtractor``'s annotation suggests), ilens, and ``others`` with
            ``mask<suffix>``: (B, T, F) linear-frequency mask (ESPnet's convention) and
            ``warped_mask<suffix>``: (B, T, F_warp) the predicted warped mask (CLIPSep's loss).
        """
        if input.dim() != 3 or input.shape[-1] != self.input_dim or not torch.is_complex(input):
            raise ValueError(
                f"--extractor clipsep expects a complex single-channel (B, T, {self.input_dim}) "
                f"STFT (`encoder: stft`); got {tuple(input.shape)} {input.dtype}"
            )
        query = self._query(input_aux, input.shape[0])
        mag = input.abs().transpose(1, 2)  # (B, F, T)
        features = self.unet(log_magnitude(self.warp.warp(mag)))
        warped_mask = self.head.masks(features, query)[:, 0]  # (B, F_warp, T)
        mask = self.warp.unwarp(warped_mask).transpose(1, 2)
        others = OrderedDict(
            [(f"mask{suffix_tag}", mask), (f"warped_mask{suffix_tag}", warped_mask.transpose(1, 2))]
        )
        return input * mask, ilens, others
