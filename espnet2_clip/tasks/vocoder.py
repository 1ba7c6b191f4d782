"""HiFiGANVocoderTask: train CLIPSonic's HiFi-GAN vocoder under ESPnet's GANTrainer.

Data: ``speech`` (``sound``), any length; random ``segment_samples`` crops in training.
Options: ``mel_conf`` (must equal the diffusion model's; inference refuses a mismatch),
``generator_params`` / ``discriminator_params`` (``espnet2.gan_tts.hifigan``), ``model_conf``
(loss weights). Two optimisers: ``--optim``/``--optim_conf`` for the generator,
``--optim2``/``--optim2_conf`` for the discriminator (and ``--scheduler``/``--scheduler2``).
"""

import argparse
from typing import Callable, Collection, Dict, List, Optional, Tuple

import numpy as np
import torch
from espnet2.tasks.abs_task import AbsTask, optim_classes
from espnet2.train.collate_fn import CommonCollateFn
from espnet2.utils.get_default_kwargs import get_default_kwargs
from espnet2.utils.nested_dict_action import NestedDictAction
from typeguard import typechecked

from espnet2_clip.t2a.mel import MelFrontend
from espnet2_clip.t2a.vocoder import (  # noqa: F401  (load_vocoder: also imported from here)
    HiFiGANVocoderModel,
    VocoderSegmentPreprocessor,
    build_vocoder_model,
    load_vocoder,
)
from espnet2_clip.tasks.checkpoints import GANTrainer


class HiFiGANVocoderTask(AbsTask):
    """HiFi-GAN (generator + multi-scale multi-period discriminator) on CLIPSonic mels."""

    num_optimizers: int = 2
    class_choices_list = []
    trainer = GANTrainer

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser):
        group = parser.add_argument_group(description="Task related")
        group.add_argument("--mel_conf", action=NestedDictAction, default=get_default_kwargs(MelFrontend),
                           help="Log-mel front end (must equal the diffusion model's mel_conf).")
        group.add_argument("--generator_params", action=NestedDictAction, default=dict(),
                           help="espnet2 HiFiGANGenerator options (in_channels = n_mels).")
        group.add_argument("--discriminator_params", action=NestedDictAction, default=dict(),
                           help="espnet2 HiFiGANMultiScaleMultiPeriodDiscriminator options.")
        group.add_argument("--model_conf", action=NestedDictAction, default=dict(lambda_mel=45.0, lambda_adv=1.0,
                                                                                  lambda_feat_match=2.0),
                           help="Loss weights.")
        group = parser.add_argument_group(description="Preprocess related")
        group.add_argument("--segment_samples", type=int, default=8192,
                           help="Training segment length in samples (a multiple of the hop).")
        parser.set_defaults(num_att_plot=0, batch_type="unsorted")

    @classmethod
    @typechecked
    def build_collate_fn(cls, args: argparse.Namespace, train: bool) -> Callable[
        [Collection[Tuple[str, Dict[str, np.ndarray]]]], Tuple[List[str], Dict[str, torch.Tensor]]
    ]:
        return CommonCollateFn(float_pad_value=0.0, int_pad_value=0)

    @classmethod
    @typechecked
    def build_preprocess_fn(
        cls, args: argparse.Namespace, train: bool
    ) -> Optional[Callable[[str, Dict[str, np.ndarray]], Dict[str, np.ndarray]]]:
        return VocoderSegmentPreprocessor(train=train, segment_samples=args.segment_samples, seed=args.seed)

    @classmethod
    def required_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ("speech",)

    @classmethod
    def optional_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ()

    @classmethod
    @typechecked
    def build_model(cls, args: argparse.Namespace) -> HiFiGANVocoderModel:
        return build_vocoder_model(args)

    @classmethod
    def build_optimizers(cls, args: argparse.Namespace, model: HiFiGANVocoderModel) -> List[torch.optim.Optimizer]:
        """Optimiser 0 updates the generator, optimiser 1 the discriminator."""
        optimizers = []
        for name, conf, module in ((args.optim, args.optim_conf, model.generator),
                                   (args.optim2, args.optim2_conf, model.discriminator)):
            optim_class = optim_classes.get(name)
            if optim_class is None:
                raise ValueError(f"optimizer must be one of {list(optim_classes)}: {name}")
            optimizers.append(optim_class(module.parameters(), **conf))
        return optimizers
