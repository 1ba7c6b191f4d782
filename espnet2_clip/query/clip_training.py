"""Train an open_clip CLIP from scratch on captioned images only (the bridge world's
stand-in for pretrained CLIP).

Data dir: ``image.scp`` (``uttid path.png``) and ``caption`` (``uttid caption text``),
optional ``label`` (``uttid class``) for the zero-shot check.

Output dir (open_clip's own local-dir / HF-hub layout, so that
``CLIPQueryEncoder(model_name=<output_dir>)`` or ``open_clip.create_model("local-dir:<output_dir>")``
load it like any pretrained CLIP):

* ``open_clip_model.safetensors``  weights
* ``open_clip_config.json``        ``{"model_cfg": ..., "preprocess_cfg": ...}``
* ``train_info.json``              steps, time, loss, zero-shot accuracy, options (written last)
* ``train_clip.log``             the log (the CLI also logs to stderr)
"""

import json
import logging
import math
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from espnet2_clip.query.clip_encoder import CONFIG_NAME, WEIGHTS_NAME, create_clip
from espnet2_clip.query.configs import resolve_model_config
from espnet2_clip.utils.fileio import atomic_path, read_scp, write_text_atomic

logger = logging.getLogger("espnet2_clip.train_clip")

DEFAULT_EVAL_TEMPLATES = ("a photo of a {}.",)


# --------------------------------------------------------------------------- data
def _line_of(path: Path, key: str) -> int:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split(maxsplit=1)
            if parts and parts[0] == key:
                return lineno
    return 0


def read_captioned_images(data_dir: Union[str, Path]) -> Tuple[List[str], List[str], List[str], int]:
    """Return ``(ids, image paths, captions, n_empty_captions)``; ids in sorted order.

    Raises ValueError naming file and line when ids of ``image.scp`` and ``caption`` differ.
    Utterances with an empty caption are skipped and counted.
    """
    data_dir = Path(data_dir)
    img_scp, cap_file = data_dir / "image.scp", data_dir / "caption"
    images = read_scp(img_scp)
    captions = read_scp(cap_file, allow_empty_value=True)
    for key in captions:
        if key not in images:
            raise ValueError(f"{cap_file}:{_line_of(cap_file, key)}: id '{key}' has no image in {img_scp}")
    for key in images:
        if key not in captions:
            raise ValueError(f"{img_scp}:{_line_of(img_scp, key)}: id '{key}' has no caption in {cap_file}")
    ids, paths, caps, n_empty = [], [], [], 0
    for key in sorted(images):
        cap = " ".join(captions[key].split())
        if not cap:
            n_empty += 1
            continue
        p = Path(images[key])
        if not p.is_absolute() and not p.exists() and (data_dir / p).exists():
            p = data_dir / p
        ids.append(key)
        paths.append(str(p))
        caps.append(cap)
    return ids, paths, caps, n_empty


def _load_square(path: str, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        im = im.crop((left, top, left + s, top + s)).resize((size, size), Image.BICUBIC)
        return np.asarray(im, dtype=np.uint8).copy()


def preload_images(paths: Sequence[str], size: int, num_workers: int = 1) -> torch.Tensor:
    """Decode, centre-crop to a square and resize all images once: uint8 ``(N, 3, size, size)``."""
    out = torch.empty(len(paths), 3, size, size, dtype=torch.uint8)

    def load(i):
        try:
            arr = _load_square(paths[i], size)
        except Exception as e:  # noqa: BLE001 - name the file
            raise RuntimeError(f"cannot read image {paths[i]}: {e}") from e
        out[i] = torch.from_numpy(arr).permute(2, 0, 1)

    with ThreadPoolExecutor(max(1, num_workers)) as ex:
        list(tqdm(ex.map(load, range(len(paths))), total=len(paths), desc="load images",
                  mininterval=5, leave=False))
    return out


def augment_batch(
    images: torch.Tensor,
    out_size: int,
    generator: torch.Generator,
    min_scale: float = 0.5,
    hflip_prob: float = 0.5,
) -> torch.Tensor:
    """Batched random-resized-crop (area in [min_scale, 1], aspect 3/4..4/3) + h-flip.

    ``images``: uint8 or float ``(B, 3, H, W)``; returns float ``(B, 3, out, out)`` in [0, 1].
    """
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images
    b = x.shape[0]
    area = torch.empty(b).uniform_(min_scale, 1.0, generator=generator)
    log_ratio = torch.empty(b).uniform_(math.log(3 / 4), math.log(4 / 3), generator=generator)
    ratio = torch.exp(log_ratio)
    sx = torch.sqrt(area * ratio).clamp(max=1.0)
    sy = torch.sqrt(area / ratio).clamp(max=1.0)
    tx = (torch.rand(b, generator=generator) * 2 - 1) * (1 - sx)
    ty = (torch.rand(b, generator=generator) * 2 - 1) * (1 - sy)
    flip = torch.where(torch.rand(b, generator=generator) < hflip_prob, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = sx * flip
    theta[:, 0, 2] = tx
    theta[:, 1, 1] = sy
    theta[:, 1, 2] = ty
    grid = F.affine_grid(theta, (b, 3, out_size, out_size), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def center_batch(images: torch.Tensor, out_size: int) -> torch.Tensor:
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images
    if x.shape[-1] != out_size or x.shape[-2] != out_size:
        x = F.interpolate(x, size=(out_size, out_size), mode="bicubic", antialias=True, align_corners=False)
    return x.clamp(0, 1)


def _normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


# ------------------------------------------------------------------ zero-shot check
def parse_eval_labels(spec: Optional[str], label_values: Sequence[str]) -> Optional[List[str]]:
    """``"auto"`` (classes found in the ``label`` file), a file (one name a line) or ``a,b,c``."""
    if not spec:
        return None
    if spec == "auto":
        return sorted(set(label_values))
    p = Path(spec)
    if p.is_file():
        names = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
    else:
        names = [s.strip() for s in spec.split(",") if s.strip()]
    if len(names) < 2:
        raise ValueError(f"--eval_labels needs at least 2 class names, got {names}")
    return names


@torch.no_grad()
def zero_shot_accuracy(
    model,
    tokenizer,
    images: torch.Tensor,
    labels: Sequence[int],
    classnames: Sequence[str],
    templates: Sequence[str] = DEFAULT_EVAL_TEMPLATES,
    batch_size: int = 256,
) -> float:
    """Top-1 zero-shot accuracy of ``model`` on uint8 ``images`` with class prompts."""
    was_training = model.training
    model.eval()
    cfg = model.visual.preprocess_cfg
    size = model.visual.image_size
    size = size if isinstance(size, int) else size[0]
    texts = [t.format(c.replace("_", " ")) for c in classnames for t in templates]
    txt = model.encode_text(tokenizer(texts), normalize=True).view(len(classnames), len(templates), -1)
    txt = F.normalize(txt.mean(1), dim=-1)
    correct = 0
    for s in range(0, len(images), batch_size):
        x = _normalize(center_batch(images[s : s + batch_size], size), cfg["mean"], cfg["std"])
        img = model.encode_image(x, normalize=True)
        pred = (img @ txt.T).argmax(-1)
        correct += int((pred == torch.as_tensor(labels[s : s + batch_size])).sum())
    model.train(was_training)
    return correct / max(1, len(images))


# --------------------------------------------------------------------------- train
def _param_groups(model, weight_decay: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name \
                or "embedding" in name or "token" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def save_open_clip_dir(model, model_cfg: Dict[str, Any], output_dir: Union[str, Path]) -> None:
    """Write ``open_clip_model.safetensors`` + ``open_clip_config.json`` atomically."""
    from safetensors.torch import save_file

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(output_dir / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    pp = dict(model.visual.preprocess_cfg)
    pp = {k: (list(v) if isinstance(v, tuple) else v) for k, v in pp.items()}
    config = {"model_cfg": model_cfg, "preprocess_cfg": pp}
    write_text_atomic(output_dir / CONFIG_NAME, json.dumps(config, indent=2) + "\n")


def train_clip(
    data_dir: Union[str, Path],
    output_dir: Union[str, Path],
    model_config: str = "espnet2clip-small",
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.1,
    warmup_steps: int = 50,
    epochs: int = 100,
    max_steps: Optional[int] = None,
    max_minutes: Optional[float] = None,
    num_workers: int = 2,
    seed: int = 0,
    min_crop_scale: float = 0.5,
    hflip_prob: float = 0.5,
    eval_labels: Optional[str] = None,
    eval_fraction: float = 0.1,
    eval_templates: Sequence[str] = DEFAULT_EVAL_TEMPLATES,
    eval_interval: int = 5,
    log_interval: int = 20,
    load_size: Optional[int] = None,
):
    """Train CLIP contrastively on captioned images; returns the trained model (eval mode).

    Stops after ``epochs``, ``max_steps`` or ``max_minutes``, whichever comes first; the
    cosine schedule runs on the fraction of that budget used (steps or time, the larger).
    """
    t_start = time.time()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(output_dir / "train_clip.log", mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        return _train(**{k: v for k, v in locals().items() if k not in ("handler",)})
    finally:
        logger.removeHandler(handler)
        handler.close()


def _train(
    data_dir, output_dir, model_config, batch_size, lr, weight_decay, warmup_steps, epochs, max_steps,
    max_minutes, num_workers, seed, min_crop_scale, hflip_prob, eval_labels, eval_fraction,
    eval_templates, eval_interval, log_interval, load_size, t_start,
):
    options = {k: v for k, v in locals().items() if k != "t_start"}
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items()}
    options["eval_templates"] = list(eval_templates)
    logger.info(f"train_clip options: {json.dumps(options)}")

    gen, rng = _seed_everything(seed)
    data_dir = Path(data_dir)
    ids, paths, captions, n_empty = _read_training_set(data_dir)
    clip = _build_clip(model_config)
    held_out = _held_out_split(data_dir, ids, eval_labels, eval_fraction, rng)
    data = _load_training_data(data_dir, paths, captions, clip, held_out, load_size, num_workers)
    budget = TrainBudget.make(len(data.train_idx), batch_size, epochs, max_steps, max_minutes, warmup_steps)
    run = _fit(clip, data, held_out, budget, gen, lr=lr, weight_decay=weight_decay, min_crop_scale=min_crop_scale,
               hflip_prob=hflip_prob, eval_templates=eval_templates, eval_interval=eval_interval,
               log_interval=log_interval)
    if held_out.images is not None:
        run.zs_acc = zero_shot_accuracy(clip.model, clip.tokenizer, held_out.images, held_out.labels,
                                        held_out.classnames, eval_templates)
        logger.info(f"final zero-shot accuracy on {len(held_out.idx)} held-out images "
                    f"({len(held_out.classnames)} classes, templates {list(eval_templates)}): {run.zs_acc:.3f}")

    save_open_clip_dir(clip.model, clip.model_cfg, output_dir)
    info = {
        "steps": run.step,
        "epochs": run.epoch,
        "train_seconds": round(run.seconds, 1),
        "total_seconds": round(time.time() - t_start, 1),
        "final_loss": run.last_loss,
        "final_batch_acc": run.last_acc,
        "zero_shot_accuracy": run.zs_acc,
        "classnames": held_out.classnames,
        "n_train": len(data.train_idx),
        "n_eval": len(held_out.idx),
        "n_empty_captions": n_empty,
        "n_params": clip.n_params,
        "options": options,
    }
    write_text_atomic(Path(output_dir) / "train_info.json", json.dumps(info, indent=2) + "\n")
    logger.info(f"saved {Path(output_dir) / WEIGHTS_NAME} after {run.step} steps / {run.epoch} epochs "
                f"({run.seconds:.0f} s)" + (f"; {n_empty} empty caption(s) skipped" if n_empty else ""))
    return clip.model


# ------------------------------------------------------------------ the steps of _train
def _seed_everything(seed: int) -> Tuple[torch.Generator, np.random.RandomState]:
    """Seed Python, NumPy and torch; returns the batch generator and the held-out split's RNG."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed), np.random.RandomState(seed)


def _read_training_set(data_dir: Path) -> Tuple[List[str], List[str], List[str], int]:
    ids, paths, captions, n_empty = read_captioned_images(data_dir)
    if n_empty:
        logger.warning(f"{data_dir / 'caption'}: {n_empty} utterance(s) with an empty caption skipped")
    if len(ids) < 2:
        raise ValueError(f"{data_dir}: need at least 2 captioned images, found {len(ids)}")
    return ids, paths, captions, n_empty


@dataclass
class _Clip:
    """The model being trained and what the loop needs to feed it."""

    model: Any
    tokenizer: Any
    model_cfg: Dict[str, Any]
    image_size: int
    mean: Sequence[float]
    std: Sequence[float]
    n_params: int


def _build_clip(model_config: str) -> _Clip:
    """A config name / JSON (random init) or a model directory (its weights)."""
    model_cfg = resolve_model_config(model_config)
    model, _, tokenizer = create_clip(model_config, pretrained=None, device="cpu")
    n_params = sum(p.numel() for p in model.parameters())
    size = model.visual.image_size
    size = size if isinstance(size, int) else size[0]
    pp = model.visual.preprocess_cfg
    logger.info(f"model {model_config}: {n_params / 1e6:.2f} M parameters, image size {size}, "
                f"embed_dim {model_cfg['embed_dim']}")
    return _Clip(model, tokenizer, model_cfg, size, pp["mean"], pp["std"], n_params)


@dataclass
class _HeldOut:
    """The zero-shot check's images (none when there is no check)."""

    idx: List[int] = field(default_factory=list)  # into the sorted ids
    labels: List[int] = field(default_factory=list)  # into classnames
    classnames: Optional[List[str]] = None
    images: Optional[torch.Tensor] = None  # uint8 (N, 3, S, S), set once the images are loaded


def _held_out_split(data_dir: Path, ids: Sequence[str], eval_labels: Optional[str], eval_fraction: float,
                    rng: np.random.RandomState) -> _HeldOut:
    label_file = data_dir / "label"
    if eval_labels == "auto" and not label_file.is_file():
        logger.info(f"zero-shot check skipped: {label_file} not found (--eval_labels auto takes the classes "
                    "from it; the check is optional)")
        eval_labels = None
    if not eval_labels:
        return _HeldOut()
    if not label_file.is_file():
        raise FileNotFoundError(f"--eval_labels needs {label_file} (lines 'uttid class')")
    labels = read_scp(label_file)
    classnames = parse_eval_labels(eval_labels, list(labels.values()))
    cls_index = {c: i for i, c in enumerate(classnames)}
    cand = [i for i, k in enumerate(ids) if labels.get(k) in cls_index]
    n_eval = min(len(cand) - 1, max(len(classnames), int(round(eval_fraction * len(ids)))))
    if n_eval < 1:
        raise ValueError(f"{label_file}: no image has a label among {classnames}")
    idx = sorted(rng.choice(cand, size=n_eval, replace=False).tolist())
    logger.info(f"zero-shot check: {len(classnames)} classes, {len(idx)} held-out images")
    return _HeldOut(idx, [cls_index[labels[ids[i]]] for i in idx], classnames)


@dataclass
class _TrainingData:
    pixels: torch.Tensor  # uint8 (N, 3, load_size, load_size), every image
    tokens: torch.Tensor  # (N, context) caption tokens
    train_idx: List[int]  # the images not held out


def _load_training_data(data_dir: Path, paths: Sequence[str], captions: Sequence[str], clip: _Clip,
                        held_out: _HeldOut, load_size: Optional[int], num_workers: int) -> _TrainingData:
    """Decode every image once (at ``load_size``, default 1.25 x the model's size) and tokenize the
    captions; sets ``held_out.images``."""
    held = set(held_out.idx)
    train_idx = [i for i in range(len(paths)) if i not in held]
    if len(train_idx) < 2:
        raise ValueError(f"{data_dir}: fewer than 2 training images after the held-out split")
    load_size = int(load_size or round(clip.image_size * 1.25))
    t0 = time.time()
    pixels = preload_images(paths, load_size, num_workers)
    tokens = clip.tokenizer(captions)
    logger.info(f"loaded {len(paths)} images at {load_size} px in {time.time() - t0:.1f} s "
                f"({len(train_idx)} train, {len(held_out.idx)} held out)")
    held_out.images = pixels[held_out.idx] if held_out.idx else None
    return _TrainingData(pixels, tokens, train_idx)


@dataclass
class TrainBudget:
    """How long to train: whole epochs of ``batch_size`` (the last partial batch dropped), capped by
    ``total_steps`` and ``max_seconds``; linear warm-up then cosine decay over the budget used."""

    batch_size: int
    steps_per_epoch: int
    epochs: int
    total_steps: int
    warmup: int
    max_seconds: Optional[float] = None

    @classmethod
    def make(cls, n_train: int, batch_size: int, epochs: int, max_steps: Optional[int] = None,
             max_minutes: Optional[float] = None, warmup_steps: int = 50) -> "TrainBudget":
        bs = min(batch_size, n_train)
        steps_per_epoch = max(1, n_train // bs)
        total_steps = steps_per_epoch * epochs
        if max_steps is not None:
            total_steps = min(total_steps, int(max_steps))
        max_seconds = None if not max_minutes else float(max_minutes) * 60.0
        warmup = min(warmup_steps, max(1, total_steps // 10))
        return cls(bs, steps_per_epoch, epochs, total_steps, warmup, max_seconds)

    def spent(self, step: int, elapsed: float) -> bool:
        return step >= self.total_steps or (self.max_seconds is not None and elapsed >= self.max_seconds)

    def lr(self, base_lr: float, step: int, elapsed: float) -> float:
        """Warm-up over ``warmup`` steps, then cosine on the fraction used (steps or time, the larger)."""
        if step < self.warmup:
            return base_lr * (step + 1) / self.warmup
        progress = step / self.total_steps
        if self.max_seconds is not None:
            progress = max(progress, elapsed / self.max_seconds)
        return base_lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@dataclass
class _Run:
    """Where the training loop stands."""

    step: int = 0
    epoch: int = 0
    last_loss: float = float("nan")
    last_acc: float = float("nan")
    zs_acc: Optional[float] = None
    seconds: float = 0.0


def _fit(clip: _Clip, data: _TrainingData, held_out: _HeldOut, budget: TrainBudget, gen: torch.Generator, *,
         lr: float, weight_decay: float, min_crop_scale: float, hflip_prob: float, eval_templates: Sequence[str],
         eval_interval: int, log_interval: int) -> _Run:
    """The contrastive training loop (AdamW, open_clip's ClipLoss); the model ends in eval mode."""
    import open_clip

    model = clip.model
    optimizer = torch.optim.AdamW(_param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.98), eps=1e-6)
    loss_fn = open_clip.ClipLoss()
    model.train()
    run, t_loop = _Run(), time.time()
    train_idx = torch.tensor(data.train_idx)
    bs = budget.batch_size
    pbar = tqdm(total=budget.total_steps, desc="train_clip", mininterval=5)
    stop = False
    while not stop and run.epoch < budget.epochs:
        perm = train_idx[torch.randperm(len(train_idx), generator=gen)]
        for b in range(budget.steps_per_epoch):
            elapsed = time.time() - t_loop
            if budget.spent(run.step, elapsed):
                stop = True
                break
            cur_lr = budget.lr(lr, run.step, elapsed)
            for g in optimizer.param_groups:
                g["lr"] = cur_lr
            idx = perm[b * bs : (b + 1) * bs]
            x = augment_batch(data.pixels[idx], clip.image_size, gen, min_crop_scale, hflip_prob)
            scale = _contrastive_step(clip, optimizer, loss_fn, _normalize(x, clip.mean, clip.std),
                                      data.tokens[idx], run)
            pbar.update(1)
            pbar.set_postfix(loss=f"{run.last_loss:.3f}", acc=f"{run.last_acc:.2f}", refresh=False)
            if run.step % log_interval == 0 or run.step == 1:
                logger.info(f"step {run.step} epoch {run.epoch + 1} loss {run.last_loss:.4f} "
                            f"batch_acc {run.last_acc:.3f} lr {cur_lr:.2e} logit_scale {scale:.1f} "
                            f"{(time.time() - t_loop) / run.step:.2f} s/step")
        run.epoch += 1
        if held_out.images is not None and not stop and eval_interval > 0 and run.epoch % eval_interval == 0:
            run.zs_acc = zero_shot_accuracy(model, clip.tokenizer, held_out.images, held_out.labels,
                                            held_out.classnames, eval_templates)
            logger.info(f"epoch {run.epoch} step {run.step}: zero-shot accuracy {run.zs_acc:.3f}")
    pbar.close()
    model.eval()
    run.seconds = time.time() - t_loop
    return run


def _contrastive_step(clip: _Clip, optimizer, loss_fn, images: torch.Tensor, tokens: torch.Tensor,
                      run: _Run) -> float:
    """One update on a batch of normalised images and their caption tokens; updates ``run``'s
    step, loss and in-batch retrieval accuracy; returns the logit scale used."""
    model = clip.model
    img = model.encode_image(images, normalize=True)
    txt = model.encode_text(tokens, normalize=True)
    scale = model.logit_scale.exp()
    loss = loss_fn(img, txt, scale)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        model.logit_scale.clamp_(0, math.log(100))
        run.last_loss = float(loss)
        run.last_acc = float(((img @ txt.T).argmax(-1) == torch.arange(len(tokens))).float().mean())
    run.step += 1
    return float(scale.detach())
