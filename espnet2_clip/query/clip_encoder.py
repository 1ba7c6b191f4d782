"""Frozen CLIP query encoder over open_clip (CLIPSep §1.3: raw, unnormalised projections).

Ways to name a model (``model_name``, ``pretrained``):

* open_clip built-in name + pretrained tag, e.g. ``("ViT-B-32", "openai")`` (downloads
  once into the open_clip / HF cache; needs network the first time). For tags trained
  with QuickGELU (all ``openai`` ones) QuickGELU is switched on, as in the original CLIP.
* open_clip built-in name (or ``espnet2clip-tiny`` / ``espnet2clip-small``) + a local
  checkpoint file (``.safetensors``, ``.pt``, ``.bin``, ``.pth``).
* a directory written by ``espnet2_clip.bin.clip_train`` (or any open_clip
  ``local-dir:`` / HF-hub style folder): ``open_clip_config.json`` +
  ``open_clip_model.safetensors``; ``"local-dir:<dir>"`` works too. ``pretrained`` is
  then ignored unless it is a checkpoint file, which replaces the folder's weights.
* a config JSON file (bare open_clip config or hub form with ``model_cfg``) + a
  checkpoint file (``pretrained=None`` gives random weights).
* ``hf-hub:org/repo`` (network).

``pretrained`` may also be a model directory; it then replaces ``model_name``.
"""

import logging
import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from tqdm import tqdm

from espnet2_clip.query.abs_query_encoder import AbsQueryEncoder
from espnet2_clip.query.configs import register_builtin_configs, register_config_file

PROMPT_ENSEMBLE: Tuple[str, ...] = (
    "a photo of {}.",
    "a photo of the small {}.",
    "a photo of the small {}.",  # listed twice in the official evaluate.py
    "a low resolution photo of a {}.",
    "a photo of many {}.",
)
SINGLE_PROMPT: Tuple[str, ...] = ("a photo of {}",)

CONFIG_NAME = "open_clip_config.json"
WEIGHTS_NAME = "open_clip_model.safetensors"
logger = logging.getLogger(__name__)
_CKPT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt", ".npz")


class CheckpointNotFoundError(FileNotFoundError, ValueError):
    """A checkpoint / config path that does not exist (both a FileNotFoundError and a ValueError)."""


def get_templates(prompt: Union[str, Sequence[str]]) -> Tuple[str, ...]:
    """``"single"`` / ``"ensemble"`` / ``"none"`` (raw query) or an explicit template list."""
    if isinstance(prompt, str):
        table = {"single": SINGLE_PROMPT, "ensemble": PROMPT_ENSEMBLE, "none": ("{}",)}
        if prompt not in table:
            raise ValueError(f"unknown prompt '{prompt}' (choose from {sorted(table)})")
        return table[prompt]
    templates = tuple(prompt)
    if not templates or any("{}" not in t for t in templates):
        raise ValueError(f"prompt templates must be non-empty and each contain '{{}}': {templates}")
    return templates


def _looks_like_path(s: str) -> bool:
    return os.sep in s or "/" in s or s.endswith(_CKPT_SUFFIXES) or s.endswith(".json")


def _check_pretrained_file(pretrained: str) -> None:
    if not Path(pretrained).is_file():
        raise CheckpointNotFoundError(f"CLIP checkpoint file not found: {pretrained}")


def _unknown_model_error(model_name: str) -> ValueError:
    import open_clip

    import difflib

    models = open_clip.list_models()
    close = difflib.get_close_matches(model_name, models, n=6, cutoff=0.5)
    examples = close or ["ViT-B-32", "ViT-B-16", "ViT-L-14", "RN50", "espnet2clip-small", "espnet2clip-tiny"]
    return ValueError(
        f"unknown open_clip model '{model_name}': not a built-in name, a directory or a config "
        f"JSON (e.g. {', '.join(examples)}; {len(models)} names in open_clip.list_models())"
    )


def _register_json(path: Path):
    """Register a config JSON with open_clip; return its name and preprocess overrides."""
    name, _, preprocess_cfg = register_config_file(path)
    kwargs = {}
    for key, arg in (("mean", "image_mean"), ("std", "image_std"),
                     ("interpolation", "image_interpolation"), ("resize_mode", "image_resize_mode")):
        if key in preprocess_cfg:
            kwargs[arg] = preprocess_cfg[key]
    return name, kwargs


def create_clip(
    model_name: str = "ViT-B-32",
    pretrained: Optional[str] = "openai",
    device: Union[str, torch.device] = "cpu",
):
    """Build ``(model, preprocess, tokenizer)`` with open_clip; see the module docstring."""
    import open_clip

    register_builtin_configs()
    model_name = str(model_name)
    pretrained = None if pretrained in (None, "", "none", "None") else str(pretrained)
    if pretrained is not None and Path(pretrained).is_dir():  # a train_clip output dir as "weights"
        model_name, pretrained = pretrained, None
    kwargs = {}
    is_local_dir = model_name.startswith("local-dir:")
    path = Path(model_name[len("local-dir:"):] if is_local_dir else model_name)

    if model_name.startswith("hf-hub:"):  # config + weights from the HF hub (network)
        name, pretrained = model_name, None
    elif is_local_dir or path.is_dir():  # a train_clip / open_clip model directory
        if not path.is_dir():
            raise CheckpointNotFoundError(f"CLIP model directory not found: {path}")
        if not (path / CONFIG_NAME).is_file():
            raise CheckpointNotFoundError(f"{path}: no {CONFIG_NAME} (not an open_clip model directory)")
        if pretrained is not None and (Path(pretrained).is_file() or _looks_like_path(pretrained)):
            # config from the folder, weights from `pretrained`
            _check_pretrained_file(pretrained)
            name, kwargs = _register_json(path / CONFIG_NAME)
        else:
            if pretrained is not None:
                logger.info(f"pretrained='{pretrained}' ignored: weights come from {path}")
            if not any(any(path.glob(f"*{s}")) for s in (".safetensors", ".bin", ".pth")):
                raise CheckpointNotFoundError(f"{path}: no weights file (e.g. {WEIGHTS_NAME})")
            name, pretrained = f"local-dir:{path}", None
    elif path.suffix == ".json" or path.is_file():  # a config JSON (+ a checkpoint file)
        if not path.is_file():
            raise CheckpointNotFoundError(f"open_clip model config JSON not found: {path}")
        name, kwargs = _register_json(path)
        if pretrained is not None:
            _check_pretrained_file(pretrained)
    else:  # an open_clip built-in name (or ours) + a pretrained tag or checkpoint file
        name = model_name.replace("/", "-")
        if name not in open_clip.list_models():
            if _looks_like_path(model_name):
                raise CheckpointNotFoundError(f"CLIP model config / directory not found: {model_name}")
            raise _unknown_model_error(model_name)
        if pretrained is not None:
            tag_cfg = open_clip.get_pretrained_cfg(name, pretrained)
            if tag_cfg:
                # e.g. all "openai" weights were trained with QuickGELU
                if tag_cfg.get("quick_gelu", False):
                    kwargs["force_quick_gelu"] = True
            elif Path(pretrained).is_file():
                pass
            elif _looks_like_path(pretrained):
                _check_pretrained_file(pretrained)
            else:
                tags = open_clip.list_pretrained_tags_by_model(name)
                raise ValueError(
                    f"pretrained '{pretrained}' is neither a checkpoint file nor a known tag of "
                    f"'{name}' (tags: {tags or 'none'})"
                )

    model, _, preprocess = open_clip.create_model_and_transforms(
        name, pretrained=pretrained, device=device, **kwargs
    )
    tokenizer = open_clip.get_tokenizer(name)
    return model, preprocess, tokenizer


class CLIPQueryEncoder(AbsQueryEncoder):
    """Frozen open_clip model giving CLIPSep's query embeddings (fp32, not normalised).

    Args:
        model_name: open_clip name, ``espnet2clip-*`` name, model directory,
            ``local-dir:<dir>``, ``hf-hub:<repo>`` or a config JSON path.
        pretrained: open_clip pretrained tag or a checkpoint file (``None``: random init).
        device: where the model runs.
        batch_size: batch size of :meth:`encode_text` / :meth:`encode_images`.
        precision: ``"fp32"`` (default) or ``"fp16"`` (like the official code on CUDA);
            outputs are always fp32.
    """

    def __init__(
        self,
        model_name: str = "ViT-B-32",
        pretrained: Optional[str] = "openai",
        device: str = "cpu",
        batch_size: int = 64,
        precision: str = "fp32",
    ):
        super().__init__()
        model, preprocess, tokenizer = create_clip(model_name, pretrained, device)
        if precision == "fp16":
            model = model.half()
        elif precision != "fp32":
            raise ValueError(f"precision must be 'fp32' or 'fp16', got '{precision}'")
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self.model = model
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.model_name = str(model_name)
        self.pretrained = pretrained
        self.batch_size = int(batch_size)
        self._dtype = torch.float16 if precision == "fp16" else torch.float32

    modalities = ("text", "image")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def embed_dim(self) -> int:
        proj = getattr(self.model, "text_projection", None)
        if isinstance(proj, torch.Tensor):
            return int(proj.shape[-1])
        return int(self.encode_text(["x"], templates=("{}",)).shape[-1])

    @property
    def image_size(self) -> Tuple[int, int]:
        size = self.model.visual.image_size
        return (size, size) if isinstance(size, int) else tuple(size)

    # ------------------------------------------------------------------ text
    @staticmethod
    def _check_queries(queries: Sequence[str]) -> List[str]:
        if isinstance(queries, str):
            queries = [queries]
        out = []
        for i, q in enumerate(queries):
            if not isinstance(q, str) or not q.strip():
                raise ValueError(f"text query #{i} is empty or whitespace only: {q!r}")
            out.append(" ".join(q.split()))
        return out

    @torch.no_grad()
    def _encode_token_batches(self, texts: List[str], progress: Optional[bool]) -> torch.Tensor:
        outs = []
        starts = range(0, len(texts), self.batch_size)
        show = len(starts) > 1 if progress is None else progress
        for s in tqdm(starts, desc="CLIP text", disable=not show, leave=False):
            tokens = self.tokenizer(texts[s : s + self.batch_size]).to(self.device)
            outs.append(self.model.encode_text(tokens, normalize=False).float())
        return torch.cat(outs, 0)

    @torch.no_grad()
    def encode_text(
        self,
        queries: Sequence[str],
        templates: Union[str, Sequence[str]] = SINGLE_PROMPT,
        progress: Optional[bool] = None,
    ) -> torch.Tensor:
        """Embed text queries: ``(N, D)`` fp32, the unnormalised mean over ``templates``.

        ``templates`` may also be ``"single"``, ``"ensemble"`` or ``"none"``.
        """
        queries = self._check_queries(queries)
        templates = get_templates(templates)
        if not queries:
            return torch.zeros(0, self.embed_dim)
        texts = [t.format(q) for q in queries for t in templates]
        emb = self._encode_token_batches(texts, progress)
        return emb.view(len(queries), len(templates), -1).mean(1)

    @torch.no_grad()
    def encode_text_tokens(self, texts: Sequence[str]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Pooled embeddings ``(N, D)`` and per-token encodings ``(N, L, W)`` of texts (no template).

        The token encodings are the text tower's final layer-norm outputs (what DALL-E 2 priors attend
        to), zeroed after the end token (the highest token id, as CLIP pools) and on padding.
        """
        texts = self._check_queries(texts)
        ln_final = getattr(self.model, "ln_final", None)
        if not isinstance(ln_final, torch.nn.Module):
            raise ValueError(f"CLIP model '{self.model_name}' has no ln_final text layer: it cannot give the "
                             "token encodings a DALL-E 2 prior needs")
        captured = []
        hook = ln_final.register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            tokens = self.tokenizer(texts).to(self.device)
            emb = self.model.encode_text(tokens, normalize=False).float()
        finally:
            hook.remove()
        enc = captured[-1].float()
        if enc.shape[:2] != tokens.shape:  # (L, N, W) layouts of older towers
            enc = enc.transpose(0, 1)
        keep = (torch.arange(tokens.shape[1], device=tokens.device)[None] <= tokens.argmax(-1)[:, None]) & (tokens != 0)
        return emb, enc.masked_fill(~keep[..., None], 0.0)

    # ---------------------------------------------------------------- images
    def _to_pixels(self, images) -> torch.Tensor:
        if isinstance(images, torch.Tensor):
            if images.dim() == 3:
                images = images.unsqueeze(0)
            if images.dim() != 4 or images.shape[1] != 3 or not images.is_floating_point():
                raise ValueError(
                    f"image tensor must be preprocessed float (N, 3, H, W), got {tuple(images.shape)} "
                    f"{images.dtype}"
                )
            return images
        from PIL import Image

        pix = []
        for i, im in enumerate(images):
            if isinstance(im, (str, os.PathLike)):
                with Image.open(im) as f:
                    im = f.convert("RGB")
            elif isinstance(im, np.ndarray):
                im = Image.fromarray(im)
            if not isinstance(im, Image.Image):
                raise TypeError(f"image #{i}: expected a PIL image, path or uint8 array, got {type(im)}")
            pix.append(self.preprocess(im.convert("RGB")))
        return torch.stack(pix, 0)

    @torch.no_grad()
    def encode_images(self, images, progress: Optional[bool] = None) -> torch.Tensor:
        """Embed images: a list of PIL images (or paths / HxWx3 uint8 arrays), which get
        the model's preprocess transform, or a preprocessed float tensor ``(N, 3, H, W)``.
        Returns ``(N, D)`` fp32, unnormalised."""
        n = len(images)
        if n == 0:
            return torch.zeros(0, self.embed_dim)
        outs = []
        starts = range(0, n, self.batch_size)
        show = len(starts) > 1 if progress is None else progress
        for s in tqdm(starts, desc="CLIP image", disable=not show, leave=False):
            pix = self._to_pixels(images[s : s + self.batch_size]).to(self.device, self._dtype)
            outs.append(self.model.encode_image(pix, normalize=False).float())
        return torch.cat(outs, 0)

    def forward(self, queries: Sequence[str], templates: Union[str, Sequence[str]] = SINGLE_PROMPT):
        return self.encode_text(queries, templates)
