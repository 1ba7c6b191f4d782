"""Which backbone a CLIPSep config selects, and a one-line description of it (no torch import).

Shared by the task (building), RESULTS.md and model cards (describing). Precedence:
``backbone`` defaults to ``unet`` (configs written before backbones were swappable have no such
key); the U-Net takes ``unet_conf`` with ``backbone_conf`` keys overriding it one by one; any other
backbone takes ``backbone_conf`` alone (``unet_conf`` is ignored).
"""

import argparse
from typing import Any, Dict, Mapping, Tuple, Union

DEFAULT_BACKBONE = "unet"


def backbone_name_and_conf(config: Union[argparse.Namespace, Mapping[str, Any]]) -> Tuple[str, Dict]:
    """The backbone a config selects and the options it is built with.

    Args:
        config: Parsed arguments or a config.yaml mapping.

    Returns:
        The registry name (lower case) and the keyword arguments (without ``input_dim``, which
        the task adds).
    """
    config = vars(config) if isinstance(config, argparse.Namespace) else dict(config)
    name = str(config.get("backbone") or DEFAULT_BACKBONE).lower()
    conf = dict(config.get("backbone_conf") or {})
    if name == "unet":
        conf = {**(config.get("unet_conf") or {}), **conf}
    return name, conf


def describe_backbone(config: Union[argparse.Namespace, Mapping[str, Any]]) -> str:
    """One line for tables and model cards, e.g. ``U-Net 6 levels, 16 ch, k=16`` or
    ``ESPnet dprnn (layer=2, unit=64, nonlinear=tanh), k=16``."""
    name, conf = backbone_name_and_conf(config)
    k = conf.get("out_channels", "?")
    if name == "unet":
        return f"U-Net {conf.get('num_downs', '?')} levels, {conf.get('base_channels', '?')} ch, k={k}"
    if name == "espnet_separator":
        options = ", ".join(f"{key}={value}" for key, value in (conf.get("separator_conf") or {}).items())
        return f"ESPnet {conf.get('separator', '?')}" + (f" ({options})" if options else "") + f", k={k}"
    options = ", ".join(f"{key}={value}" for key, value in conf.items() if key != "out_channels")
    return name + (f" ({options})" if options else "") + f", k={k}"
