"""The registry of frozen query encoders, shared by the CLIPSep and CLIPSonic tasks, the embedding
extraction entry point (``espnet2_clip.bin.query_embed``) and inference.

A training config names one (``query_encoder: clip``) with its options (``query_encoder_conf``).
To add an encoder: subclass :class:`~espnet2_clip.query.abs_query_encoder.AbsQueryEncoder` in a
file of its own and add one line to ``classes`` below (or, from outside the package,
``query_encoder_choices.classes["name"] = MyEncoder`` before building a parser).
"""

import inspect
from typing import Dict, Optional

from espnet2.train.class_choices import ClassChoices

from espnet2_clip.query.abs_query_encoder import AbsQueryEncoder
from espnet2_clip.query.bert_encoder import BERTQueryEncoder
from espnet2_clip.query.clip_encoder import CLIPQueryEncoder
from espnet2_clip.query.label_encoder import LabelTableEncoder

query_encoder_choices = ClassChoices(
    name="query_encoder",
    classes=dict(
        clip=CLIPQueryEncoder,
        bert=BERTQueryEncoder,
        label=LabelTableEncoder,
    ),
    type_check=AbsQueryEncoder,
    default="clip",
    optional=True,
)


def build_query_encoder(name: Optional[str], conf: Optional[Dict] = None, device: str = "cpu",
                        **common) -> AbsQueryEncoder:
    """Build the encoder ``name`` of the registry with ``conf``.

    Args:
        name: Registry name (``clip``, ``bert``, ``label``, ...).
        conf: Its options (``query_encoder_conf``).
        device: Where it runs.
        common: Options given only to encoders that take them (e.g. ``batch_size``).
    """
    if name is None:
        raise ValueError("this model records no query encoder (query_encoder: null): give embeddings as queries")
    try:
        cls = query_encoder_choices.get_class(name)
    except ValueError as exc:
        raise ValueError(f"unknown query_encoder '{name}' (registered: {sorted(query_encoder_choices.classes)})") from exc
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in common.items() if k in accepted}
    try:
        return cls(device=device, **kwargs, **(conf or {}))
    except TypeError as exc:
        raise ValueError(f"query_encoder_conf {conf} does not fit the '{name}' encoder ({cls.__name__}): {exc}") from exc
