"""Our own open_clip model configs (tiny for tests, small for the bridge world).

They are registered into open_clip's config registry under the names in
:data:`BUILTIN_CONFIGS` (``espnet2clip-tiny``, ``espnet2clip-small``), through
open_clip's public ``add_model_config``, so every open_clip function
(``create_model``, ``get_tokenizer``) accepts these names like its own.

A config file of one's own (the bare open_clip form ``{"embed_dim", "vision_cfg",
"text_cfg"}`` or the hub form ``{"model_cfg": ..., "preprocess_cfg": ...}``) is
registered by :func:`register_config_file` under a name derived from its content.
"""

import copy
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

# Tiny CLIP for tests: ~1.7 M parameters (1.6 M of them the token embedding),
# builds in well under a second on CPU.
TINY_CLIP_CONFIG: Dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}

# Small CLIP for the bridge world (calibrated prototype: embed 128, 64 px ViT 4 x 192,
# text 3 x 128, ~8.8 M parameters -> 81 % zero-shot on an 8-class synthetic world in
# < 5 min on 2 CPU cores). The context is shortened to 32 tokens: captions and prompt
# templates are short ("a low resolution photo of a red star." is 11 tokens), and the
# text tower costs 2.4 x less than at 77.
SMALL_CLIP_CONFIG: Dict[str, Any] = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 64, "patch_size": 8, "width": 192, "layers": 4, "head_width": 64},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 3},
}

BUILTIN_CONFIGS: Dict[str, Dict[str, Any]] = {
    "espnet2clip-tiny": TINY_CLIP_CONFIG,
    "espnet2clip-small": SMALL_CLIP_CONFIG,
}

_REGISTERED: Dict[str, str] = {}  # registry name -> content hash


def split_config(config: Dict[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Return ``(model_cfg, preprocess_cfg)`` from a bare or a hub-style config dict."""
    if "model_cfg" in config:
        model_cfg, preprocess_cfg = config["model_cfg"], config.get("preprocess_cfg", {}) or {}
    else:
        model_cfg, preprocess_cfg = config, {}
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in model_cfg]
    if missing:
        raise ValueError(f"open_clip model config lacks {missing} (keys: {sorted(model_cfg)})")
    return copy.deepcopy(model_cfg), copy.deepcopy(preprocess_cfg)


def register_config(name: str, model_cfg: Dict[str, Any]) -> str:
    """Register ``model_cfg`` in open_clip's registry under ``name``; returns ``name``."""
    import open_clip

    digest = hashlib.sha1(json.dumps(model_cfg, sort_keys=True).encode()).hexdigest()
    if _REGISTERED.get(name) == digest and name in open_clip.list_models():
        return name
    # open_clip's registry is file based: the file stem becomes the model name. The file is read
    # at once and the parsed config kept, so it is written to a directory removed right after.
    with tempfile.TemporaryDirectory(prefix="espnet2clip_open_clip_cfg_") as tmp:
        path = Path(tmp) / f"{name}.json"
        with open(path, "w", encoding="utf-8") as f:
            json.dump(model_cfg, f, indent=2)
        open_clip.add_model_config(path)
    _REGISTERED[name] = digest
    return name


def register_builtin_configs() -> None:
    """Make ``espnet2clip-tiny`` / ``espnet2clip-small`` known to open_clip (idempotent)."""
    for name, cfg in BUILTIN_CONFIGS.items():
        register_config(name, cfg)


def register_config_file(path: Union[str, os.PathLike]) -> Tuple[str, Dict[str, Any], Dict[str, Any]]:
    """Register a config JSON file; return ``(registry name, model_cfg, preprocess_cfg)``.

    The name is ``espnet2clip-file-<hash of the model config>``, so two different files
    named ``open_clip_config.json`` never collide.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: open_clip model config JSON not found")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    try:
        model_cfg, preprocess_cfg = split_config(config)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
    digest = hashlib.sha1(json.dumps(model_cfg, sort_keys=True).encode()).hexdigest()[:16]
    name = register_config(f"espnet2clip-file-{digest}", model_cfg)
    return name, model_cfg, preprocess_cfg


def resolve_model_config(name_or_path: str) -> Dict[str, Any]:
    """Return a bare model config for a built-in name (ours or open_clip's) or a JSON path."""
    import open_clip

    if name_or_path in BUILTIN_CONFIGS:
        return copy.deepcopy(BUILTIN_CONFIGS[name_or_path])
    p = Path(name_or_path)
    if p.is_dir():
        p = p / "open_clip_config.json"
    if p.suffix == ".json" or p.is_file():
        return register_config_file(p)[1]
    cfg = open_clip.get_model_config(name_or_path)
    if cfg is None:
        avail = list(BUILTIN_CONFIGS) + open_clip.list_models()[:8]
        raise ValueError(
            f"unknown model config '{name_or_path}': not a JSON file and not a known name "
            f"(e.g. {', '.join(avail)}, ...)"
        )
    return cfg
