"""Any ESPnet TF-domain separator as CLIPSep's backbone (``--backbone espnet_separator``).

The separator is built from ESPnet's own registry (``espnet2.tasks.enh.separator_choices``, which
also holds separators that users add to it) with ``input_dim`` = F (the warped frequency bins)
and k = ``out_channels`` outputs (its ``num_spk``, or ``n_srcs`` for TF-GridNet). It sees the
(normalised) warped log-magnitude as a (M, T, F) feature sequence, and its k per-"speaker"
outputs, each (M, T, F), become the k feature maps that CLIPSep's query weighs::

    backbone: espnet_separator
    backbone_conf:
        out_channels: 16           # k
        separator: dprnn
        separator_conf: {layer: 2, unit: 64, nonlinear: tanh}

What the maps are (``features``): a masking separator's masks (``others["mask_spk<i>"]``) by
default (``auto``), else its returned outputs (mapping separators such as TF-GridNet). A complex
output contributes its real part.

Non-linearities: CLIPSep's heads expect unbounded, logit-like maps (the U-Net ends in a linear
convolution), weighted by sigmoid(query) and a learned per-channel scale, summed, and then passed
through a sigmoid. A separator's mask non-linearity bounds each map: ``sigmoid`` to (0, 1),
``tanh`` to (-1, 1), ``relu`` to [0, inf) (a channel that is 0 everywhere gets no gradient). The
learned scale and bias still reach any logit range, so all three train; pick the least limiting
option the separator offers: ``nonlinear: linear`` where it exists (TCN), else ``tanh`` (DPRNN,
RNN/BLSTM, Transformer, Conformer, DPTNet, SkiM default to ``relu`` or ``sigmoid``).

Input: separators that take a real (M, T, F) feature (DPRNN, TCN, RNN, Transformer, Conformer,
DPTNet, SkiM, DPCL-E2E) use ``input_type: real``; separators that take a complex STFT (TF-GridNetV3,
USES, DC-CRN) use ``input_type: complex``, which feeds the log-magnitude as the real part with a zero
imaginary part (CLIPSep has no phase on its warped grid). Separators that take waveforms
(TF-GridNet v1/v2, FaSNet, iNeuBe) or need a fixed band layout (BSRNN) do not fit CLIPSep's features;
building the backbone runs a one-frame-batch probe and names the option that does not fit.
"""

import inspect
from typing import Dict, List, Optional

import torch
from typeguard import typechecked

from espnet2_clip.sep.abs_backbone import AbsSeparatorBackbone

# Constructor arguments that set the number of outputs, in the order they are looked for.
_NUM_OUTPUT_ARGS = ("num_spk", "n_srcs")
# Frames of the probe forward at construction (long enough for dual-path segments).
_PROBE_FRAMES = 32


class ESPnetSeparatorBackbone(AbsSeparatorBackbone):
    """An ESPnet separator (``espnet2.enh.separator``) giving CLIPSep's k feature maps."""

    @typechecked
    def __init__(
        self,
        input_dim: int,
        out_channels: int = 32,
        separator: str = "dprnn",
        separator_conf: Optional[Dict] = None,
        input_type: str = "real",
        features: str = "auto",
        input_norm: bool = True,
    ):
        """Initialize ESPnetSeparatorBackbone.

        Args:
            input_dim: Number F of warped frequency bins (given by the task).
            out_channels: Number k of feature maps (the separator's ``num_spk`` / ``n_srcs``).
            separator: Name in ``espnet2.tasks.enh.separator_choices`` (e.g. dprnn, tcn, rnn,
                transformer, conformer, tfgridnetv3).
            separator_conf: Keyword arguments of the separator (without input_dim and num_spk).
            input_type: ``real`` (a (M, T, F) float feature) or ``complex`` (the log-magnitude
                as the real part of a complex spectrum).
            features: ``masks`` (the separator's ``mask_spk<i>``), ``outputs`` (its returned
                list) or ``auto`` (masks if it returns k of them, else outputs).
            input_norm: Batch-normalise the log-magnitude first (as the U-Net does).
        """
        super().__init__()
        if out_channels < 1:
            raise ValueError(f"backbone_conf.out_channels must be >= 1, got {out_channels}")
        if input_type not in ("real", "complex"):
            raise ValueError(f"backbone_conf.input_type must be 'real' or 'complex', got '{input_type}'")
        if features not in ("auto", "masks", "outputs"):
            raise ValueError(f"backbone_conf.features must be 'auto', 'masks' or 'outputs', got '{features}'")
        from espnet2.tasks.enh import separator_choices  # here: ESPnet's enh task takes ~8 s to import

        name = separator.lower()
        if name not in separator_choices.classes:
            raise ValueError(
                f"backbone_conf.separator: unknown ESPnet separator '{separator}'; choose one of "
                f"{sorted(separator_choices.classes)} (espnet2.tasks.enh.separator_choices)"
            )
        sep_class = separator_choices.classes[name]
        conf = dict(separator_conf or {})
        params = inspect.signature(sep_class.__init__).parameters
        count_arg = next((arg for arg in _NUM_OUTPUT_ARGS if arg in params), None)
        if count_arg is None:
            raise ValueError(
                f"backbone_conf.separator: '{separator}' has no {' / '.join(_NUM_OUTPUT_ARGS)} argument, so it "
                "cannot give k = out_channels outputs"
            )
        for arg in ("input_dim", count_arg):
            if arg in conf:
                given, needed = conf.pop(arg), input_dim if arg == "input_dim" else out_channels
                if given != needed:
                    raise ValueError(
                        f"backbone_conf.separator_conf.{arg}={given} conflicts with the backbone: it is set to "
                        f"{needed} ({'the warped frequency bins' if arg == 'input_dim' else 'out_channels, k'}); "
                        "leave it out"
                    )
        try:
            self.separator = sep_class(input_dim, **{count_arg: out_channels}, **conf)
        except (TypeError, ValueError, AssertionError) as exc:
            raise ValueError(
                f"backbone_conf.separator_conf: cannot build ESPnet separator '{separator}' with input_dim={input_dim}, "
                f"{count_arg}={out_channels} and {conf}: {type(exc).__name__}: {exc}"
            ) from exc
        self.out_channels = out_channels
        self.input_dim = input_dim
        self.separator_name = name
        self.input_type = input_type
        self.features = features
        self.input_norm = torch.nn.BatchNorm2d(1) if input_norm else None
        self._probe()

    def _probe(self) -> None:
        """Run the separator once on a small input, so that a misfit fails at build time."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                out = self(torch.zeros(1, 1, self.input_dim, _PROBE_FRAMES))
        except Exception as exc:  # any failure here means the separator does not fit (re-raised)
            hint = "; try backbone_conf.input_type: complex" if self.input_type == "real" else ""
            raise ValueError(
                f"backbone_conf: ESPnet separator '{self.separator_name}' does not run on CLIPSep's features "
                f"((M, T, F={self.input_dim}) {self.input_type} log-magnitude){hint}: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            self.train(was_training)
        expected = (1, self.out_channels, self.input_dim, _PROBE_FRAMES)
        if tuple(out.shape) != expected:
            raise ValueError(f"backbone_conf: ESPnet separator '{self.separator_name}' gives maps of shape "
                             f"{tuple(out.shape)}, expected {expected}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Forward.

        Args:
            x: (M, 1, F, T) log-magnitude of the warped mixture spectrogram.

        Returns:
            (M, out_channels, F, T) feature maps.
        """
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != self.input_dim:
            raise ValueError(f"expected a (M, 1, {self.input_dim}, T) log-magnitude, got {tuple(x.shape)}")
        if self.input_norm is not None:
            x = self.input_norm(x)
        feats = x[:, 0].transpose(1, 2)  # (M, T, F)
        if self.input_type == "complex":
            feats = torch.complex(feats, torch.zeros_like(feats))
        ilens = torch.full((feats.shape[0],), feats.shape[1], dtype=torch.long, device=feats.device)
        outputs, _, others = self.separator(feats, ilens)
        maps = self._select(list(outputs), others or {})
        maps = [m.real if torch.is_complex(m) else m for m in maps]
        return torch.stack(maps, dim=1).transpose(2, 3)  # (M, k, T, F) -> (M, k, F, T)

    def _select(self, outputs: List[torch.Tensor], others: Dict) -> List[torch.Tensor]:
        """The k (M, T, F) maps: the separator's masks or its outputs (see ``features``)."""
        masks = [others.get(f"mask_spk{i + 1}") for i in range(self.out_channels)]
        have_masks = all(isinstance(m, torch.Tensor) for m in masks)
        if self.features == "masks" or (self.features == "auto" and have_masks):
            if not have_masks:
                raise ValueError(f"backbone_conf.features: masks: ESPnet separator '{self.separator_name}' returns no "
                                 f"mask_spk1..{self.out_channels}; use features: outputs")
            return masks
        if len(outputs) != self.out_channels:
            raise ValueError(f"ESPnet separator '{self.separator_name}' returned {len(outputs)} outputs, expected "
                             f"out_channels={self.out_channels}")
        return outputs
