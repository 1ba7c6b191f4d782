"""Mask heads on the shared backbone's k maps: the variants differ only here (heads and losses).

* :class:`QueryMaskHead` - CLIPSep, CLIPSep-Text, BERTSep, LabelSep: a query vector
  ``q = sigmoid(Linear(e))`` weights the k backbone maps (``InnerProductFusion``).
* :class:`NoiseInvariantHead` - CLIPSep-NIT: two extra noise heads during training.
* :class:`PITHead` - the non-queried PIT baseline: two masks, permutation-invariant loss.
"""

from abc import ABC, abstractmethod
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
from torch import nn
from typeguard import typechecked

from espnet2_clip.sep.loss import weighted_bce
from espnet2_clip.sep.query import AbsQuery

Stats = Dict[str, torch.Tensor]


class InnerProductFusion(nn.Module):
    """Mask logit ``z(f, t) = sum_c q_c * scale_c * U_c(f, t) + bias``."""

    def __init__(self, num_channels: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, features: torch.Tensor, query_vector: torch.Tensor) -> torch.Tensor:
        """(M, k, F, T) features and (M, k) query vectors -> (M, F, T) logits."""
        return torch.einsum("mkft,mk->mft", features, query_vector * self.scale) + self.bias


class AbsMaskHead(nn.Module, ABC):
    """Turns backbone features (and queries) into masks and a training loss."""

    #: Number of masks returned by :meth:`masks` (1 for queried heads).
    num_outputs: int = 1
    #: Whether the head consumes a query.
    needs_query: bool = True

    @abstractmethod
    def masks(self, features: torch.Tensor, query: Optional[torch.Tensor]) -> torch.Tensor:
        """Inference masks (M, num_outputs, F, T) in [0, 1]."""
        raise NotImplementedError

    @abstractmethod
    def loss(
        self,
        features: torch.Tensor,
        queries: Optional[Sequence[torch.Tensor]],
        targets: torch.Tensor,
        weight: torch.Tensor,
    ) -> Tuple[torch.Tensor, Stats]:
        """Training loss.

        Args:
            features: (M, k, F, T) backbone features of M mixtures.
            queries: Two query batches (one per source), or None for non-queried heads.
            targets: (M, 2, F, T) binary masks of the two sources.
            weight: (M, F, T) loss weights.

        Returns:
            Scalar loss and a dict of detached statistics.
        """
        raise NotImplementedError


class QueryMaskHead(AbsMaskHead):
    """One query-conditioned mask per query."""

    @typechecked
    def __init__(self, query: AbsQuery):
        super().__init__()
        self.query = query
        self.fusion = InnerProductFusion(query.num_channels)

    def mask_logits(self, features: torch.Tensor, query_logits: torch.Tensor) -> torch.Tensor:
        """(M, F, T) mask logits for (M, k) pre-sigmoid query logits."""
        return self.fusion(features, torch.sigmoid(query_logits))

    def masks(self, features: torch.Tensor, query: Optional[torch.Tensor]) -> torch.Tensor:
        if query is None:
            raise ValueError("this model is query-conditioned: give a text, image or embedding query")
        return torch.sigmoid(self.mask_logits(features, self.query(query))).unsqueeze(1)

    def loss(self, features, queries, targets, weight):
        per_source = torch.stack(
            [
                weighted_bce(self.masks(features, q).squeeze(1), targets[:, i], weight)
                for i, q in enumerate(queries)
            ],
            dim=1,
        )
        loss = per_source.mean()
        return loss, {"loss_mask": loss.detach()}


class NoiseInvariantHead(QueryMaskHead):
    """CLIPSep-NIT: noise queries from the mean query projection, used in training only.

    Source i with noise head j predicts ``min(1, sigmoid(Q_i) + sigmoid(N_j))``; the loss takes
    the better of the two head assignments per sample and adds the batch-level regulariser
    ``reg_weight * relu(mean(sigmoid(N_1) + sigmoid(N_2)) - reg_threshold)``.

    ``warmup_steps`` (the official code's ``--pit_warmup_steps``, 0 there) trains the query heads
    alone (the CLIPSep loss) for that many updates before the noise heads join: in short runs the
    noise heads otherwise absorb target energy before the query masks have learned anything.
    """

    @typechecked
    def __init__(self, query: AbsQuery, reg_weight: float = 0.1, reg_threshold: float = 0.25,
                 warmup_steps: int = 0):
        """Initialize NoiseInvariantHead.

        Args:
            query: Query source (shared with inference).
            reg_weight: lambda of the noise regulariser.
            reg_threshold: gamma of the noise regulariser.
            warmup_steps: Training updates with the query loss only (noise heads unused).
        """
        super().__init__(query)
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.warmup_steps = warmup_steps
        # training updates seen (saved with the model, so a resumed run keeps its place)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        k = query.num_channels
        # Exactly two noise heads: the official method is defined for 2-source mixtures.
        self.noise_proj = nn.ModuleList([nn.Linear(k, k) for _ in range(2)])
        for proj in self.noise_proj:
            nn.init.normal_(proj.weight, 0.0, 1e-4)
        self.reg_weight = reg_weight
        self.reg_threshold = reg_threshold

    def noise_masks(self, features: torch.Tensor, query_logits: Sequence[torch.Tensor]) -> torch.Tensor:
        """(M, 2, F, T) noise masks from the mean of the sources' query logits."""
        mean_logits = torch.stack(list(query_logits)).mean(dim=0)
        return torch.stack(
            [torch.sigmoid(self.mask_logits(features, proj(mean_logits))) for proj in self.noise_proj],
            dim=1,
        )

    def loss(self, features, queries, targets, weight):
        if self.training:
            self.num_updates += 1
        if self.warmup_steps > 0 and self.num_updates <= self.warmup_steps:
            loss, stats = super().loss(features, queries, targets, weight)
            zero = torch.zeros((), device=loss.device)
            return loss, dict(stats, loss_noise_reg=zero, noise_activation=zero)
        query_logits = [self.query(q) for q in queries]
        query_masks = torch.stack(
            [torch.sigmoid(self.mask_logits(features, ql)) for ql in query_logits], dim=1
        )
        noise = self.noise_masks(features, query_logits)

        per_sample = two_way_permutation_loss(
            lambda i, j: combine_query_noise(query_masks[:, i], noise[:, j]), targets, weight
        )
        sep_loss = per_sample.mean()
        noise_activation = noise.sum(dim=1).mean()
        reg = self.reg_weight * torch.relu(noise_activation - self.reg_threshold)
        loss = sep_loss + reg
        return loss, {
            "loss_mask": sep_loss.detach(),
            "loss_noise_reg": reg.detach(),
            "noise_activation": noise_activation.detach(),
        }


def two_way_permutation_loss(
    prediction: Callable[[int, int], torch.Tensor], targets: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """Per-sample minimum over the two assignments of 2 prediction slots to 2 sources.

    Args:
        prediction: ``prediction(i, j)`` is the (M, F, T) mask for source i using slot j.
        targets: (M, 2, F, T) binary masks.
        weight: (M, F, T) loss weights.

    Returns:
        (M,) per-sample losses, each the mean over both sources of the better assignment.
    """

    def assignment(order: Tuple[int, int]) -> torch.Tensor:
        return torch.stack(
            [weighted_bce(prediction(i, j), targets[:, i], weight) for i, j in enumerate(order)]
        ).mean(dim=0)

    return torch.minimum(assignment((0, 1)), assignment((1, 0)))


def combine_query_noise(query_mask: torch.Tensor, noise_mask: torch.Tensor) -> torch.Tensor:
    """``min(1, query_mask + noise_mask)`` (written as ``1 - relu(1 - sum)`` like the paper)."""
    return 1.0 - torch.relu(1.0 - (query_mask + noise_mask))


class PITHead(AbsMaskHead):
    """Non-queried baseline: two masks from a 1x1 conv, permutation-invariant loss."""

    num_outputs = 2
    needs_query = False

    @typechecked
    def __init__(self, num_channels: int = 32):
        super().__init__()
        self.conv = nn.Conv2d(num_channels, 2, kernel_size=1)
        nn.init.normal_(self.conv.weight, 0.0, 1e-3)

    def masks(self, features: torch.Tensor, query: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Head 0 and its complement ``1 - head 0``, as the official evaluation separates.

        Which of the two is the wanted source is unknown: the paper scores PIT with oracle
        selection (``clipsep_scoring`` with two ``--est_scp``).
        """
        first = torch.sigmoid(self.conv(features)[:, :1])
        return torch.cat([first, 1.0 - first], dim=1)

    def loss(self, features, queries, targets, weight):
        pred = torch.sigmoid(self.conv(features))
        per_sample = two_way_permutation_loss(lambda i, j: pred[:, j], targets, weight)
        loss = per_sample.mean()
        return loss, {"loss_mask": loss.detach()}
