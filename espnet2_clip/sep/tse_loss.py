"""CLIPSep's mask loss inside ESPnet's enhancement loss machinery (TSE task).

Two ESPnet classes, registered by :mod:`espnet2_clip.register`:

* ``clipsep_bce`` (:class:`CLIPSepMaskBCELoss`, a ``FrequencyDomainLoss`` with
  ``compute_on_mask=True``): CLIPSep's weighted binary cross-entropy. The label of target n is
  made by ESPnet's ``ESPnetExtractionModel`` from the encoder's mixture and reference spectra
  through :meth:`CLIPSepMaskBCELoss.create_mask_label`; the loss warps both magnitudes onto the
  log-frequency rows of the predicted mask and scores ``BCE(mask, |S_n| > 0.5 |X|)`` weighted by
  ``clamp(log1p(|X|), 1e-3, 10)`` (warped magnitudes), as the official code does.
* ``clipsep_mask`` (:class:`ExtractorMaskSolver`, ESPnet's ``FixedOrderSolver``: target n
  against enrollment n, as TSE defines it) fed with the mask the extractor predicted,
  ``others["warped_mask_spk<n>"]`` from ``--extractor clipsep``. A wrapper is needed because the
  ESPnet release we pin (202511) drops extractor masks before the criterion:
  ``ESPnetExtractionModel._get_speech_masks`` keeps ``others["mask_spk<n>"]`` only when a
  ``mask_dereverb<n>`` entry exists too, so ``fixed_order`` would see no prediction at all.

YAML (``criterions:`` of ``espnet2_clip.bin.tse_train``)::

    criterions:
      - name: clipsep_bce
        conf: {}
        wrapper: clipsep_mask
        wrapper_conf: {weight: 1.0}

Why there is no NIT form here: CLIPSep-NIT's noise heads are computed from the mean of *both*
sources' query projections, and its loss takes a minimum over the assignments of the two noise
heads to the two sources. ESPnet's TSE model calls the extractor once per enrollment, each call
seeing one query only, and its data layout gives one enrollment per target (``load_all_speakers:
false`` even picks one source per mixture at random). A joint two-query forward pass does not
exist there, so NIT would need a different model, not a different loss; a loss holding the noise
heads' parameters would fake it. CLIPSep-NIT is trained with ``espnet2_clip.bin.clipsep_train``
(``head: nit``), whose model mixes two clips and sees both queries.
"""

from typing import Dict, List, Tuple

import torch
from espnet2.enh.loss.criterions.abs_loss import AbsEnhLoss
from espnet2.enh.loss.criterions.tf_domain import FrequencyDomainLoss
from espnet2.enh.loss.wrappers.fixed_order import FixedOrderSolver
from typeguard import typechecked

from espnet2_clip.sep.frontend import LogFreqSTFT
from espnet2_clip.sep.loss import binary_mask_targets, mask_loss_weight, weighted_bce


class CLIPSepMaskBCELoss(FrequencyDomainLoss):
    """Weighted BCE between a warped mask and CLIPSep's binary target (per sample)."""

    @typechecked
    def __init__(self, name: str = "clipsep_bce", only_for_test: bool = False):
        """Initialize CLIPSepMaskBCELoss.

        Args:
            name: Key of the loss in ESPnet's training statistics.
            only_for_test: Evaluate on validation data only.
        """
        super().__init__(name, only_for_test=only_for_test)
        self._warps: Dict[Tuple[int, int], LogFreqSTFT] = {}

    @property
    def compute_on_mask(self) -> bool:
        return True

    @property
    def mask_type(self) -> str:
        """Binary ``|S| > 0.5 |X|`` on log-frequency-warped magnitudes (not ESPnet's IBM)."""
        return "CLIPSEP_IBM"

    def create_mask_label(
        self, mix_spec: torch.Tensor, ref_spec: List[torch.Tensor], noise_spec: torch.Tensor = None
    ) -> List[torch.Tensor]:
        """Pair the mixture magnitude with each reference magnitude.

        The binary label and the weight are formed in :meth:`forward`, once the resolution of
        the predicted warped mask is known (so the criterion needs no copy of the extractor's
        ``num_warped_bins``).

        Args:
            mix_spec: (B, T, F) complex mixture spectrum (encoder output).
            ref_spec: [(B, T, F) complex reference spectrum] per target.
            noise_spec: Unused (CLIPSep's target ignores a separate noise reference).

        Returns:
            [(B, T, F, 2) real tensor: ``[..., 0] = |X|``, ``[..., 1] = |S_n|``] per target.
        """
        if mix_spec.dim() != 3:
            raise ValueError(
                f"clipsep_bce needs single-channel (B, T, F) spectra; got {tuple(mix_spec.shape)}"
            )
        mix_mag = mix_spec.abs()
        return [torch.stack([mix_mag, ref.abs()], dim=-1) for ref in ref_spec]

    def _warp(self, num_bins: int, num_warped_bins: int) -> LogFreqSTFT:
        key = (num_bins, num_warped_bins)
        if key not in self._warps:
            self._warps[key] = LogFreqSTFT(n_fft=(num_bins - 1) * 2, num_warped_bins=num_warped_bins)
        return self._warps[key]

    def forward(self, ref: torch.Tensor, inf: torch.Tensor) -> torch.Tensor:
        """CLIPSep's weighted BCE.

        Args:
            ref: (B, T, F, 2) label from :meth:`create_mask_label` (mixture, reference magnitudes).
            inf: (B, T, F_warp) predicted warped mask in [0, 1] (``others["warped_mask_spk<n>"]``).

        Returns:
            (B,) losses (mean over time-frequency bins).
        """
        if ref.dim() != 4 or ref.shape[-1] != 2:
            raise ValueError(
                "clipsep_bce expects labels from its own create_mask_label, (B, T, F, 2); got "
                f"{tuple(ref.shape)}"
            )
        # a warped mask never has the F = n_fft // 2 + 1 rows of a linear one (F is odd, the
        # U-Net needs an even number of warped rows)
        if inf.dim() != 3 or inf.shape[:2] != ref.shape[:2] or inf.shape[2] == ref.shape[2] or inf.is_complex():
            raise ValueError(
                f"clipsep_bce scores a (B, T, F_warp) warped mask of {tuple(ref.shape[:2])} frames; "
                f"got {tuple(inf.shape)}. Use it with `wrapper: clipsep_mask` and an extractor that "
                "returns others['warped_mask_spk<n>'] (`extractor: clipsep`)."
            )
        warp = self._warp(ref.shape[2], inf.shape[2])
        mags = warp.warp(ref.permute(0, 3, 2, 1).flatten(0, 1).float())  # (2B, F_warp, T)
        mags = mags.unflatten(0, (ref.shape[0], 2))
        mix_mag, src_mag = mags[:, 0], mags[:, 1:]
        target = binary_mask_targets(src_mag, mix_mag)[:, 0]
        weight = mask_loss_weight(mix_mag)
        return weighted_bce(inf.transpose(1, 2).float(), target, weight)


class ExtractorMaskSolver(FixedOrderSolver):
    """ESPnet's fixed-order solver over the masks an extractor returns in ``others``.

    Target n (``speech_ref<n>``) is scored against ``others[f"{mask_key}_spk<n>"]``, the mask
    the extractor predicted for enrollment n. The ``inf`` list that ESPnet passes (masks it
    re-derives, or none at all in ESPnet 202511) is not used.
    """

    @typechecked
    def __init__(self, criterion: AbsEnhLoss, weight: float = 1.0, mask_key: str = "warped_mask"):
        """Initialize ExtractorMaskSolver.

        Args:
            criterion: Mask criterion, e.g. ``clipsep_bce``; its ``create_mask_label`` builds ``ref``.
            weight: Weight of this loss in the total loss.
            mask_key: Prefix of the extractor's mask entries in ``others``.
        """
        if not getattr(criterion, "compute_on_mask", False):
            raise ValueError(
                f"wrapper clipsep_mask scores extractor masks: criterion {criterion.name!r} must "
                "compute on masks (e.g. `name: clipsep_bce`)"
            )
        super().__init__(criterion, weight=weight)
        self.mask_key = mask_key

    def forward(
        self, ref: List[torch.Tensor], inf: List[torch.Tensor], others: Dict = {}
    ) -> Tuple[torch.Tensor, Dict, Dict]:
        """Average the criterion over targets.

        Args:
            ref: [(B, ...) mask label] per target, from ``criterion.create_mask_label``.
            inf: Ignored (see the class docstring).
            others: Extractor outputs with ``f"{mask_key}_spk<n>"`` for n = 1 .. len(ref).

        Returns:
            loss (scalar), stats ``{criterion.name: loss}``, ``{"perm": (B, num_spk) identity}``.
        """
        keys = [f"{self.mask_key}_spk{n + 1}" for n in range(len(ref))]
        missing = [k for k in keys if k not in others]
        if missing:
            raise ValueError(
                f"wrapper clipsep_mask needs the extractor's masks {missing} in `others` (the "
                f"extractor returned {sorted(others)}); use `extractor: clipsep`"
            )
        return super().forward(ref, [others[k] for k in keys], others)
