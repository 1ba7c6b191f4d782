"""Build a trained model from its ``config.yaml`` and parameter file, for inference.

The same files and conventions as ESPnet's ``AbsTask.build_model_from_file`` (the config is the
training run's ``config.yaml``, next to the parameter file by default; the task's ``build_model``
makes the model from it), without importing ESPnet's task machinery: ``espnet2.tasks.abs_task``
pulls in every tokenizer and text front end ESPnet has, ~10 s at the start of each process, which
an inference CLI or ``from_pretrained`` does not need. Unlike ESPnet's loader, a parameter file
that lacks some of the model's parameters is an error (ESPnet loads with ``strict=False`` and
would leave them at their random initial values).
"""

import argparse
import logging
from pathlib import Path
from typing import Callable, Optional, Tuple, Union

import torch
import yaml

PathLike = Union[str, Path]


def read_config(config_file: Optional[PathLike], model_file: Optional[PathLike] = None) -> argparse.Namespace:
    """The training config as a Namespace (default: ``config.yaml`` beside ``model_file``)."""
    if config_file is None:
        if model_file is None:
            raise ValueError("give the training config.yaml (or a model file with config.yaml beside it)")
        config_file = Path(model_file).parent / "config.yaml"
    config_file = Path(config_file)
    if not config_file.is_file():
        raise FileNotFoundError(f"training config not found: {config_file}")
    try:
        conf = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{config_file} is not valid YAML: {exc}") from exc
    if not isinstance(conf, dict):
        raise ValueError(f"{config_file}: expected a mapping of training options, got {type(conf).__name__}")
    return argparse.Namespace(**conf)


def load_state(model: torch.nn.Module, model_file: PathLike, device: str) -> None:
    """Load ``model_file`` (an ESPnet checkpoint state dict) into ``model``: every parameter and buffer
    of the model must be in it; entries the model does not have are logged and skipped."""
    model_file = Path(model_file)
    if not model_file.is_file():
        raise FileNotFoundError(f"model file not found: {model_file}")
    if device == "cuda":
        device = f"cuda:{torch.cuda.current_device()}"
    try:
        state = torch.load(model_file, map_location="cpu" if device == "mps" else device, weights_only=False)
    except Exception as exc:  # torch raises several types for unreadable files
        raise ValueError(f"cannot read the model file {model_file}: {exc}") from exc
    if isinstance(state, dict) and "module" in state and isinstance(state["module"], dict):
        state = state["module"]  # DeepSpeed checkpoints
    if not isinstance(state, dict):
        raise ValueError(f"{model_file}: expected a state dict, got {type(state).__name__}")
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise ValueError(f"{model_file} does not fit the model of its config: {exc}") from exc
    if result.missing_keys:
        raise ValueError(f"{model_file} lacks {len(result.missing_keys)} of the model's parameters, e.g. "
                         f"{result.missing_keys[:5]}: is it the parameter file of this config?")
    if result.unexpected_keys:
        logging.warning(f"{model_file}: {len(result.unexpected_keys)} entries the model does not have are "
                        f"ignored, e.g. {result.unexpected_keys[:5]}")


def load_trained_model(build_model: Callable[[argparse.Namespace], torch.nn.Module],
                       config_file: Optional[PathLike] = None, model_file: Optional[PathLike] = None,
                       device: str = "cpu") -> Tuple[torch.nn.Module, argparse.Namespace]:
    """``(model, training args)``: ``build_model(args)`` of the config, on ``device``, with the
    parameters of ``model_file`` when given (in training mode, like ESPnet's loader)."""
    args = read_config(config_file, model_file)
    model = build_model(args)
    if device != "mps":
        model.to(device)
    if model_file is not None:
        load_state(model, model_file, device)
    return model, args
