"""The CLIPSep model of a training config: the registries of its parts and the builder.

``CLIPSepTask.build_model`` (training, ESPnet's ``build_model_from_file``) and the inference
front end (``TextQueriedSeparation``, through ``espnet2_clip.utils.model_files``) both build the
model here, so inference need not import ESPnet's task machinery. Add a backbone, head or query
of your own to these ``ClassChoices`` (see ``espnet2_clip.sep.abs_backbone``).
"""

import argparse
import inspect
import logging

from espnet2.torch_utils.initialize import initialize
from espnet2.train.class_choices import ClassChoices
from espnet2.utils.get_default_kwargs import get_default_kwargs
from typeguard import TypeCheckError

from espnet2_clip.sep.abs_backbone import AbsSeparatorBackbone
from espnet2_clip.sep.backbone_config import DEFAULT_BACKBONE, backbone_name_and_conf
from espnet2_clip.sep.espnet_model import ESPnetCLIPSepModel
from espnet2_clip.sep.espnet_separator_backbone import ESPnetSeparatorBackbone
from espnet2_clip.sep.frontend import LogFreqSTFT
from espnet2_clip.sep.heads import AbsMaskHead, NoiseInvariantHead, PITHead, QueryMaskHead
from espnet2_clip.sep.query import AbsQuery, EmbeddingQuery, LabelQuery
from espnet2_clip.sep.unet import AudioUNet

backbone_choices = ClassChoices(
    name="backbone",
    classes=dict(unet=AudioUNet, espnet_separator=ESPnetSeparatorBackbone),
    type_check=AbsSeparatorBackbone,
    default=DEFAULT_BACKBONE,
)
head_choices = ClassChoices(
    name="head",
    classes=dict(query=QueryMaskHead, nit=NoiseInvariantHead, pit=PITHead),
    type_check=AbsMaskHead,
    default="query",
)
query_choices = ClassChoices(
    name="query",
    classes=dict(embedding=EmbeddingQuery, label=LabelQuery),
    type_check=AbsQuery,
    default="embedding",
    optional=True,
)


def build_clipsep_model(args: argparse.Namespace) -> ESPnetCLIPSepModel:
    """The model of parsed training arguments or a loaded config.yaml (front end, backbone, head)."""
    frontend = LogFreqSTFT(**args.frontend_conf)
    backbone = build_backbone(args, frontend.num_warped_bins)
    k = backbone.out_channels
    head_class = head_choices.get_class(args.head)
    if head_class is PITHead:
        head = PITHead(num_channels=k, **args.head_conf)
    else:
        if args.query is None:
            raise ValueError(f"--head {args.head} needs a query source (--query embedding|label)")
        query = query_choices.get_class(args.query)(num_channels=k, **args.query_conf)
        head = head_class(query=query, **args.head_conf)
    model = ESPnetCLIPSepModel(frontend, backbone, head, **args.model_conf)
    init = getattr(args, "unet_init", None)
    if init == "pytorch":
        for module in backbone.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    elif init is not None:
        initialize(backbone, init)
    return model


def build_backbone(args: argparse.Namespace, input_dim: int) -> AbsSeparatorBackbone:
    """Build the backbone of ``--backbone`` / ``--backbone_conf`` (``--unet_conf`` for the U-Net;
    precedence in ``espnet2_clip.sep.backbone_config``).

    Args:
        args: Parsed arguments or a loaded config.yaml.
        input_dim: Number F of warped frequency bins, given to backbones that take ``input_dim``.
    """
    name, conf = backbone_name_and_conf(args)
    if name not in backbone_choices.classes:
        raise ValueError(f"--backbone: unknown backbone '{name}'; choose one of {backbone_choices.choices()}")
    cls = backbone_choices.get_class(name)
    unet_conf = getattr(args, "unet_conf", None) or {}
    if name != "unet" and unet_conf and unet_conf != get_default_kwargs(AudioUNet):
        logging.warning(f"--unet_conf {unet_conf} is ignored: --backbone is {name} (its options: --backbone_conf)")
    if "input_dim" in inspect.signature(cls.__init__).parameters:
        if conf.get("input_dim", input_dim) != input_dim:
            raise ValueError(f"backbone_conf.input_dim={conf['input_dim']} differs from the front end's "
                             f"frontend_conf.num_warped_bins={input_dim}; leave it out")
        conf["input_dim"] = input_dim
    try:
        backbone = cls(**conf)
    except (TypeError, TypeCheckError) as exc:  # an unknown or mistyped option
        option = "unet_conf / backbone_conf" if name == "unet" else "backbone_conf"
        raise ValueError(f"{option}: cannot build backbone '{name}' with {conf}: {exc}") from exc
    if not isinstance(getattr(backbone, "out_channels", None), int):
        raise TypeError(f"backbone '{name}' ({cls.__name__}) must set out_channels (k) to an int")
    return backbone
