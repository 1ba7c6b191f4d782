"""CLIPSep as an ESPnet model: mix-and-separate training on single-source clips."""

from typing import Dict, Optional, Tuple

import torch
from espnet2.train.abs_espnet_model import AbsESPnetModel
from typeguard import typechecked

from espnet2_clip.sep.abs_backbone import AbsSeparatorBackbone
from espnet2_clip.utils.backbone_runner import BackboneRunner
from espnet2_clip.sep.frontend import LogFreqSTFT, log_magnitude
from espnet2_clip.sep.heads import AbsMaskHead
from espnet2_clip.sep.loss import binary_mask_targets, mask_loss_weight

# State-dict prefix of the backbone before it was swappable (checkpoints and packed models in the wild).
LEGACY_BACKBONE_PREFIX = "unet."


class ESPnetCLIPSepModel(AbsESPnetModel):
    """Backbone (U-Net by default) mask estimation on the warped spectrogram, with a variant-specific head.

    Training: each batch item is one source clip (B, N) with its query; the model pairs the
    clips at random into B // 2 two-source mixtures (gains U(gain_low, gain_high), clipped to
    [-1, 1], divided by 2) and supervises binary masks of both sources.
    """

    @typechecked
    def __init__(
        self,
        frontend: LogFreqSTFT,
        backbone: AbsSeparatorBackbone,
        head: AbsMaskHead,
        gain_low: float = 0.5,
        gain_high: float = 1.5,
        train_precision: str = "fp32",
        channels_last: bool = False,
        compile_backbone: bool = False,
    ):
        """Initialize ESPnetCLIPSepModel.

        Args:
            frontend: STFT + log-frequency warp.
            backbone: The separator backbone giving the k feature maps (its out_channels is k).
            head: Variant head (query / NIT / PIT).
            gain_low: Lower bound of the random source gain.
            gain_high: Upper bound of the random source gain.
            train_precision: ``fp32``, ``bf16`` (backbone under bfloat16 autocast in training;
                float32 weights, loss and inference) or ``auto`` (bf16 where the device computes
                it natively). See ``espnet2_clip.utils.backbone_runner``.
            channels_last: Channels-last activations and weights in the backbone.
            compile_backbone: ``torch.compile`` the backbone for training (eager fallback).
        """
        super().__init__()
        if not 0 < gain_low <= gain_high:
            raise ValueError(f"need 0 < gain_low <= gain_high, got {gain_low}, {gain_high}")
        self.frontend = frontend
        self.backbone = backbone
        self.head = head
        self.gain_low = gain_low
        self.gain_high = gain_high
        self.backbone_runner = BackboneRunner(train_precision, channels_last, compile_backbone)
        self.backbone_runner.prepare(backbone)
        self.register_load_state_dict_pre_hook(_rename_legacy_backbone_keys)

    @property
    def unet(self) -> AbsSeparatorBackbone:
        """Deprecated alias of ``backbone`` (the attribute's name when the U-Net was the only one)."""
        return self.backbone

    # ------------------------------------------------------------------ training
    def forward(
        self,
        speech_ref1: torch.Tensor,
        speech_ref1_lengths: Optional[torch.Tensor] = None,
        query: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """Mix pairs of clips and compute the head's loss.

        Args:
            speech_ref1: (B, N) single-source clips, B >= 2.
            speech_ref1_lengths: (B,) unused (clips have a fixed length).
            query: (B, ...) queries of the clips, or None for non-queried heads.

        Returns:
            loss, stats, weight (number of mixtures).
        """
        if speech_ref1.shape[0] < 2:
            raise ValueError("mix-and-separate training needs at least 2 clips per batch")
        if self.head.needs_query and query is None:
            raise ValueError("this head needs a 'query' data entry for every training clip")
        first, second = self._random_pairs(speech_ref1.shape[0], speech_ref1.device)
        sources = torch.stack([self._random_gain(speech_ref1[first]), self._random_gain(speech_ref1[second])], 1)
        mixture = sources.sum(dim=1)
        mix_mag = self.frontend.warp(self.frontend.stft(mixture).abs())
        num_mix, num_src, num_samples = sources.shape
        src_spec = self.frontend.stft(sources.reshape(num_mix * num_src, num_samples))
        src_mag = self.frontend.warp(src_spec.abs()).reshape(num_mix, num_src, *mix_mag.shape[1:])
        targets = binary_mask_targets(src_mag, mix_mag)
        weight = mask_loss_weight(mix_mag)
        features = self.features(mix_mag)
        queries = None if query is None or not self.head.needs_query else (query[first], query[second])
        loss, stats = self.head.loss(features, queries, targets, weight)
        stats["loss"] = loss.detach()
        return loss, stats, torch.full((), num_mix, device=loss.device)  # filled there: no copy from the host

    def _random_pairs(self, batch: int, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
        """Disjoint pairs of batch items (random in training, in order in evaluation, so the
        validation loss is deterministic); with an odd batch one item is used twice."""
        order = torch.randperm(batch, device=device) if self.training else torch.arange(batch, device=device)
        if batch % 2:
            order = torch.cat([order, order[:1]])  # last item pairs with the (different) first
        return order[0::2], order[1::2]

    def _random_gain(self, wave: torch.Tensor) -> torch.Tensor:
        """Random gain in training (unit gain in evaluation), clip to [-1, 1], halve."""
        if not self.training:
            return torch.clamp(wave, -1.0, 1.0) / 2
        gain = torch.empty(wave.shape[0], 1, device=wave.device).uniform_(self.gain_low, self.gain_high)
        return torch.clamp(wave * gain, -1.0, 1.0) / 2

    def features(self, mix_warped_mag: torch.Tensor) -> torch.Tensor:
        """(M, F_warp, T) warped mixture magnitudes -> (M, k, F_warp, T) backbone features."""
        return self.backbone_runner(self.backbone, log_magnitude(mix_warped_mag))

    def collect_feats(self, speech_ref1: torch.Tensor, **kwargs) -> Dict[str, torch.Tensor]:
        """No feature statistics are needed (the backbones normalise their input)."""
        return {"feats": speech_ref1, "feats_lengths": torch.full((speech_ref1.shape[0],), speech_ref1.shape[1])}

    # ----------------------------------------------------------------- inference
    @torch.no_grad()
    def separate(
        self, mixture: torch.Tensor, query: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Soft-mask separation with the mixture phase.

        Args:
            mixture: (M, N) mixtures.
            query: (M, ...) queries, or None for non-queried heads.

        Returns:
            waves (M, num_outputs, N) and warped masks (M, num_outputs, F_warp, T).
        """
        spec = self.frontend.stft(mixture)
        mix_mag = self.frontend.warp(spec.abs())
        masks = self.head.masks(self.features(mix_mag), query)
        num_mix, num_out = masks.shape[:2]
        linear_masks = self.frontend.unwarp(masks.flatten(0, 1)).reshape(num_mix, num_out, *spec.shape[1:])
        est = spec.unsqueeze(1) * linear_masks
        waves = self.frontend.istft(est.flatten(0, 1), length=mixture.shape[-1])
        return waves.reshape(num_mix, num_out, -1), masks


def _rename_legacy_backbone_keys(module, state_dict, prefix, *args) -> None:
    """Load hook: ``unet.*`` keys of checkpoints made before backbones were swappable -> ``backbone.*``."""
    old = prefix + LEGACY_BACKBONE_PREFIX
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[prefix + "backbone." + key[len(old):]] = state_dict.pop(key)
