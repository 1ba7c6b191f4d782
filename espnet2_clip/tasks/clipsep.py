"""CLIPSepTask: ESPnet2 task for text-/image-queried separation trained by mix-and-separate.

Data (``--train_data_path_and_name_and_type``):
  * ``speech_ref1`` (``sound``): a single-source clip (any length; cropped around a frame).
  * ``query``: ``npy`` per-frame embeddings (n_frames, D) or a per-clip embedding (D,), or
    ``text_int`` label ids for LabelSep. Not needed by the PIT baseline.
Model: ``frontend_conf``, ``backbone`` (unet / espnet_separator) + ``backbone_conf`` (the k feature
maps; ``unet_conf`` still configures the U-Net, see ``espnet2_clip.sep.backbone_config``), ``head``
(query / nit / pit), ``query`` (embedding / label), ``model_conf``. ``query_encoder`` + ``query_encoder_conf`` record which frozen encoder
made the query embeddings, so inference can embed text/image queries the same way.
"""

import argparse
import logging
from typing import Callable, Collection, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from espnet2.iterators.abs_iter_factory import AbsIterFactory
from espnet2.tasks.abs_task import AbsTask, IteratorOptions
from espnet2.train.collate_fn import CommonCollateFn
from espnet2.utils.get_default_kwargs import get_default_kwargs
from espnet2.utils.nested_dict_action import NestedDictAction
from espnet2.utils.types import str_or_none
from torch.utils.data import DataLoader
from typeguard import typechecked

from espnet2_clip.query.choices import query_encoder_choices
from espnet2_clip.sep.build import (  # noqa: F401  (build_backbone: also imported from here)
    backbone_choices,
    build_backbone,
    build_clipsep_model,
    head_choices,
    query_choices,
)
from espnet2_clip.sep.espnet_model import ESPnetCLIPSepModel
from espnet2_clip.sep.frontend import LogFreqSTFT
from espnet2_clip.sep.preprocessor import CLIPSepPreprocessor
from espnet2_clip.sep.unet import AudioUNet
from espnet2_clip.tasks.checkpoints import Trainer

# Seed of the fixed validation key order. Independent of --seed on purpose: runs with different
# seeds are then validated (and their best checkpoints chosen) on the same mixtures.
VALID_ORDER_SEED = 0

Batch = Tuple[str, ...]


def fixed_key_order(batches: Sequence[Sequence[str]], seed: int = VALID_ORDER_SEED) -> List[Batch]:
    """Deal the keys of all batches, in a seeded random order, into batches of the same sizes.

    The model pairs evaluation clips in batch order (0-1, 2-3, ...), and key lists are usually
    sorted (often by class): without this, validation mixtures would mostly be same-class.
    Keys are sorted first, so the order is a function of the key set alone.

    Args:
        batches: Batches of keys.
        seed: Seed of the permutation.

    Returns:
        Batches with the same sizes, holding the permuted keys.
    """
    keys = sorted(key for batch in batches for key in batch)
    keys = [keys[i] for i in np.random.RandomState(seed).permutation(len(keys))]
    out, start = [], 0
    for batch in batches:
        out.append(tuple(keys[start:start + len(batch)]))
        start += len(batch)
    return out


def merge_small_batches(batches: Sequence[Sequence[str]], min_clips: int) -> List[Batch]:
    """Merge every batch with fewer than ``min_clips`` keys into the previous (or next) one.

    Mix-and-separate needs two clips per mixture. Merging drops no clip and spends no optimizer
    step on a batch that cannot form a mixture; a batch grows by at most ``min_clips - 1`` keys.

    Args:
        batches: Batches of keys.
        min_clips: Smallest allowed batch.

    Returns:
        The merged batches (all of at least ``min_clips`` keys if there are that many keys).
    """
    merged: List[Batch] = []
    for batch in batches:
        if merged and len(batch) < min_clips:
            merged[-1] = merged[-1] + tuple(batch)
        else:
            merged.append(tuple(batch))
    if len(merged) > 1 and len(merged[0]) < min_clips:
        merged[1] = merged[0] + merged[1]
        merged.pop(0)
    return merged


class MixingBatchIterFactory(AbsIterFactory):
    """Wraps an ESPnet iterator factory so that every batch can be mixed within itself.

    ESPnet's samplers can leave a 1-clip batch (``shuffle_within_batch`` re-chunks the epoch's
    keys by the size of its first batch, so 2k + 1 keys at batch size 2 end in one clip;
    folded / numel / length samplers keep a short last batch; a category with one key; sharding
    over ranks). Such batches are merged into a neighbour every epoch, after ESPnet's shuffles.
    """

    def __init__(self, factory: AbsIterFactory, min_clips: int = 2, fixed_order: bool = False):
        """Initialize MixingBatchIterFactory.

        Args:
            factory: ESPnet's factory; its ``build_iter`` returns a DataLoader with a batch list.
            min_clips: Smallest batch of a process.
            fixed_order: Deal the keys in the fixed seeded order (validation).
        """
        self.factory = factory
        self.min_clips = min_clips
        self.fixed_order = fixed_order

    def build_iter(self, epoch: int, shuffle: Optional[bool] = None) -> DataLoader:
        """Build ESPnet's loader of this epoch, then rebuild it on the corrected batch list."""
        loader = self.factory.build_iter(epoch, shuffle)
        batches = [tuple(batch) for batch in loader.batch_sampler]
        if self.fixed_order:
            batches = fixed_key_order(batches)
        batches = merge_small_batches(batches, self.min_clips)
        return DataLoader(
            dataset=loader.dataset,
            batch_sampler=batches,
            num_workers=loader.num_workers,
            collate_fn=loader.collate_fn,
            pin_memory=loader.pin_memory,
            worker_init_fn=loader.worker_init_fn,
        )


class NoBatchIterFactory(AbsIterFactory):
    """Yields no batch: for ESPnet's attention plots, which CLIPSep cannot serve (it has no
    attention, and the plotting forwards one clip at a time, which cannot be mixed)."""

    def build_iter(self, epoch: int, shuffle: Optional[bool] = None) -> List:
        """An empty iterator."""
        return []


class CLIPSepTask(AbsTask):
    """CLIPSep, CLIPSep-NIT and the baselines (CLIPSep-Text, BERTSep, LabelSep, PIT)."""

    num_optimizers: int = 1
    # query_encoder: the frozen encoder that made the query embeddings (not part of the model;
    # recorded so that inference embeds text / image queries the same way)
    class_choices_list = [backbone_choices, head_choices, query_choices, query_encoder_choices]
    trainer = Trainer

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser):
        group = parser.add_argument_group(description="Task related")
        group.add_argument(
            "--unet_init", type=lambda x: str_or_none(x.lower()), default=None,
            choices=["pytorch", "chainer", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal",
                     None],
            help="Re-initialise the backbone (the name is kept for old configs): 'pytorch' (each layer's "
            "default) or an ESPnet method. Default: the backbone's own initialisation; the U-Net's is the "
            "official small one (conv N(0, 1e-3)), which learns slowly at first (fine for 200k steps, slow "
            "for a short CPU run). The query projection always keeps its small N(0, 1e-4) init: a larger "
            "one saturates the sigmoid query and stalls learning.",
        )
        group.add_argument("--frontend_conf", action=NestedDictAction,
                           default=get_default_kwargs(LogFreqSTFT), help="STFT / warp options.")
        group.add_argument("--unet_conf", action=NestedDictAction,
                           default=get_default_kwargs(AudioUNet),
                           help="U-Net options (with --backbone unet; keys of --backbone_conf override them).")
        group.add_argument("--model_conf", action=NestedDictAction,
                           default=get_default_kwargs(ESPnetCLIPSepModel), help="Model options.")
        group.add_argument(
            "--train_query", type=str, default="image", choices=["image", "text", "label", "none"],
            help="What the training queries are (recipes pick the query data from it): CLIP image "
            "embeddings of frames (CLIPSep), text embeddings of labels (CLIPSep-Text, BERTSep), "
            "label ids (LabelSep), none (PIT).",
        )
        group.add_argument(
            "--text_prompt", type=str, default="single", choices=["single", "ensemble", "none"],
            help="Text queries at inference: 'a photo of {}' (single), the official 5-template "
            "ensemble, or the raw text (none).",
        )
        group = parser.add_argument_group(description="Preprocess related")
        group.add_argument("--sample_rate", type=int, default=16000, help="Audio sample rate.")
        group.add_argument("--clip_samples", type=int, default=65535,
                           help="Training clip length in samples (65535 gives 256 STFT frames).")
        group.add_argument("--frame_rate", type=float, default=1.0, help="Video frame rate of the query frames.")
        group.add_argument("--centre_margin", type=int, default=3,
                           help="Frames kept from each end when drawing the centre frame.")
        for class_choices in cls.class_choices_list:
            class_choices.add_arguments(group)
        # No attention to plot (ESPnet's plotting would also feed 1-clip batches to the model;
        # a non-zero --num_att_plot gets no batch, see build_sequence_iter_factory).
        # Mixtures are formed within a batch, so training batches must be redrawn every epoch
        # (shuffle_within_batch); otherwise a batch of a sorted list holds one or two classes.
        # Validation batches are fixed instead (build_sequence_iter_factory).
        parser.set_defaults(num_att_plot=0, batch_type="unsorted", shuffle_within_batch=True)

    @classmethod
    @typechecked
    def build_sequence_iter_factory(
        cls, args: argparse.Namespace, iter_options: IteratorOptions, mode: str
    ) -> AbsIterFactory:
        """ESPnet's factory, with batches every clip of which can be mixed.

        Training keeps ESPnet's per-epoch shuffles; a 1-clip batch is merged into a neighbour.
        Validation mixtures must be a pure function of the validation set (as in the official
        code), or the best-checkpoint choice would follow the draw: there ``shuffle_within_batch``
        (which ESPnet applies in every mode) is off and the keys are dealt in a fixed seeded order.
        """
        if mode not in ("train", "valid"):
            logging.info("CLIPSep has no attention to plot: --num_att_plot is ignored")
            return NoBatchIterFactory()
        if args.ngpu > 1 and not iter_options.distributed:
            # DataParallel splits each batch over the GPUs and every share is mixed on its own:
            # torch's split can leave a GPU a single clip (e.g. 7 clips on 4 GPUs: 2, 2, 2, 1).
            raise ValueError(
                "CLIPSep mixes clips within each GPU's share of a batch, which DataParallel can leave "
                "with one clip: for several GPUs use --multiprocessing_distributed true"
            )
        if mode == "valid":
            args = argparse.Namespace(**{**vars(args), "shuffle_within_batch": False})
        factory = super().build_sequence_iter_factory(args, iter_options, mode)
        num_keys = sum(len(batch) for batch in factory.sampler)
        if num_keys < 2:
            raise ValueError(f"mix-and-separate needs at least 2 {mode} clips per process, got {num_keys}")
        return MixingBatchIterFactory(factory, fixed_order=mode == "valid")

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
        return CLIPSepPreprocessor(
            train=train,
            sample_rate=args.sample_rate,
            clip_samples=args.clip_samples,
            frame_rate=args.frame_rate,
            margin=args.centre_margin,
        )

    @classmethod
    def required_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ("speech_mix",) if inference else ("speech_ref1",)

    @classmethod
    def optional_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ("query",)

    @classmethod
    @typechecked
    def build_model(cls, args: argparse.Namespace) -> ESPnetCLIPSepModel:
        return build_clipsep_model(args)
