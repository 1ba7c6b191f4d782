"""The separator backbone: what turns the mixture spectrogram into CLIPSep's k feature maps.

CLIPSep's heads combine k maps of the warped spectrogram with the query (a weighted sum, then a
sigmoid), so any network that maps the (M, 1, F, T) log-magnitude to (M, k, F, T) maps can be the
backbone. Implementations are chosen with ``--backbone`` / ``--backbone_conf`` (see
``espnet2_clip.tasks.clipsep.backbone_choices``): ``unet`` (the paper's U-Net, the default) and
``espnet_separator`` (any ESPnet TF-domain separator through an adapter).
"""

from abc import ABC, abstractmethod

import torch


class AbsSeparatorBackbone(torch.nn.Module, ABC):
    """Maps a (M, 1, F, T) log-magnitude to (M, k, F, T) feature maps.

    Subclasses set ``out_channels`` (k, the number of maps the query weighs). The maps are
    unbounded, logit-like features: the heads weigh them by a sigmoid of the query, scale them per
    channel, sum them and add a bias before their own sigmoid.

    A subclass whose constructor has an ``input_dim`` argument receives the number F of
    (warped) frequency bins from the task, as ESPnet passes ``encoder.output_dim`` to its
    separators.
    """

    out_channels: int

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Forward.

        Args:
            x: (M, 1, F, T) log-magnitude of the warped mixture spectrogram.

        Returns:
            (M, out_channels, F, T) feature maps.
        """
        raise NotImplementedError
