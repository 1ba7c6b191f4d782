"""CLIPSonicTask: ESPnet2 task for CLIP-conditioned mel diffusion (CLIPSonic IQ / ZS / PD / SD).

Why an ``AbsTask`` subclass and not ``TTSTask``: TTSTask is built around token sequences
(``--token_list``, ``CommonPreprocessor``, ``text``/``text_lengths`` into ``ESPnetTTSModel``,
GlobalMVN statistics) and an autoregressive/duration-based ``AbsTTS`` interface; CLIPSonic's
input is one fixed-size CLIP vector per clip, its features are normalised by fixed constants,
and its data stages (frame-centred 65535-sample crops, per-frame CLIP embeddings) are CLIPSep's.
So the task reuses CLIPSep's data format and preprocessor and keeps everything else
ESPnet-native (Trainer, config.yaml, ``build_model_from_file``, ``espnet2.bin.pack``).

Data (``--train_data_path_and_name_and_type``):
  * ``speech`` (``sound``): the audio track of a video (any length; cropped around a frame by
    ``espnet2_clip.sep.preprocessor.CLIPSepPreprocessor``).
  * ``query`` (``npy``): per-frame CLIP image embeddings ``(n_frames, D)`` (IQ training; the
    3 frames around the crop centre are averaged) or a per-clip embedding ``(D,)`` (e.g. the
    CLIP text embedding of the label text for the SD reference).
Model: ``mel_conf`` (the representation, also stored by the vocoder), ``unet_conf``,
``model_conf``. ``query_encoder``/``query_encoder_conf``/``text_prompt`` record the frozen CLIP
that made the embeddings; ``vocoder_config``/``vocoder_file``/``prior_config``/``prior_file``
(optional) are used by ``espnet2_clip.bin.clipsonic_inference`` (and packed with the model).
"""

import argparse
from typing import Callable, Collection, Dict, List, Optional, Tuple

import numpy as np
import torch
from espnet2.tasks.abs_task import AbsTask
from espnet2.train.collate_fn import CommonCollateFn
from espnet2.utils.get_default_kwargs import get_default_kwargs
from espnet2.utils.nested_dict_action import NestedDictAction
from espnet2.utils.types import str_or_none
from typeguard import typechecked

from espnet2_clip.query.choices import query_encoder_choices
from espnet2_clip.sep.preprocessor import CLIPSepPreprocessor
from espnet2_clip.t2a.espnet_model import ESPnetCLIPSonicModel, build_clipsonic_model
from espnet2_clip.t2a.mel import MelFrontend
from espnet2_clip.t2a.unet import DiffusionUNet
from espnet2_clip.tasks.checkpoints import Trainer


class CLIPSonicPreprocessor:
    """``CLIPSepPreprocessor`` (frame-centred crop, 3-frame query mean) on ``speech``/``query``."""

    @typechecked
    def __init__(self, train: bool, **kwargs):
        self.crop = CLIPSepPreprocessor(train=train, **kwargs)

    def __call__(self, uid: str, data: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        data = dict(data)
        if "query" not in data:
            raise ValueError(f"{uid}: CLIPSonic needs a 'query' embedding for every clip")
        data["speech_ref1"] = data.pop("speech")
        data = self.crop(uid, data)
        data["speech"] = data.pop("speech_ref1")
        if data["query"].ndim != 1:
            raise ValueError(f"{uid}: query must be (D,) or (n_frames, D), got {data['query'].shape}")
        data["query"] = data["query"].astype(np.float32)
        return data


class CLIPSonicTask(AbsTask):
    """Train the CLIP-conditioned mel diffusion model with ESPnet's Trainer."""

    num_optimizers: int = 1
    # query_encoder: the frozen CLIP that made the conditioning embeddings (recorded for inference)
    class_choices_list = [query_encoder_choices]
    trainer = Trainer

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser):
        group = parser.add_argument_group(description="Task related")
        group.add_argument("--mel_conf", action=NestedDictAction, default=get_default_kwargs(MelFrontend),
                           help="Log-mel front end (must match the vocoder's).")
        group.add_argument("--unet_conf", action=NestedDictAction, default=get_default_kwargs(DiffusionUNet),
                           help="Diffusion U-Net options (cond_dim = CLIP embedding size).")
        group.add_argument("--model_conf", action=NestedDictAction,
                           default=get_default_kwargs(ESPnetCLIPSonicModel),
                           help="cond_drop_prob, schedule_conf.")
        group.add_argument("--text_prompt", type=str, default="single", choices=["single", "ensemble", "none"],
                           help="Template of text queries at inference ('a photo of {}' by default).")
        group.add_argument("--vocoder_config", type=str_or_none, default=None,
                           help="Vocoder config.yaml used at inference (None: Griffin-Lim).")
        group.add_argument("--vocoder_file", type=str_or_none, default=None, help="Vocoder parameters (.pth).")
        group.add_argument("--prior_config", type=str_or_none, default=None,
                           help="Diffusion prior config.yaml for text queries (None: zero-shot, ZS).")
        group.add_argument("--prior_file", type=str_or_none, default=None, help="Diffusion prior parameters.")
        group = parser.add_argument_group(description="Preprocess related")
        group.add_argument("--clip_samples", type=int, default=65535,
                           help="Clip length in samples (65535 gives 256 mel frames with hop 256).")
        group.add_argument("--frame_rate", type=float, default=1.0, help="Video frame rate of the query frames.")
        group.add_argument("--centre_margin", type=int, default=3,
                           help="Frames kept from each end when drawing the centre frame.")
        for class_choices in cls.class_choices_list:
            class_choices.add_arguments(group)
        parser.set_defaults(num_att_plot=0, batch_type="unsorted", shuffle_within_batch=True)  # batches redrawn each epoch

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
        return CLIPSonicPreprocessor(
            train=train,
            sample_rate=int(args.mel_conf.get("fs", 16000)),
            clip_samples=args.clip_samples,
            frame_rate=args.frame_rate,
            margin=args.centre_margin,
        )

    @classmethod
    def required_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ("query",) if inference else ("speech", "query")

    @classmethod
    def optional_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ()

    @classmethod
    @typechecked
    def build_model(cls, args: argparse.Namespace) -> ESPnetCLIPSonicModel:
        return build_clipsonic_model(args)
