#!/usr/bin/env python3
"""Train CLIPSonic-PD's diffusion prior (CLIP text embedding -> CLIP image embedding).

From captioned images, embedded with a frozen CLIP (the one the audio model's queries came from)::

    python -m espnet2_clip.bin.prior_train --image_scp data/images/image.scp \\
        --caption data/images/caption --query_encoder_conf "{model_name: exp/clip, pretrained: none}" --output_dir exp/prior

or from precomputed embedding pairs (``uttid emb.npy`` lists, (D,) or (n, D) arrays)::

    python -m espnet2_clip.bin.prior_train --text_emb_scp t.scp --image_emb_scp i.scp \\
        --output_dir exp/prior

Writes ``output_dir/config.yaml`` (``prior_conf`` + the CLIP it was trained for) and
``output_dir/prior.pth``; pass them as ``--prior_config``/``--prior_file`` to
``espnet2_clip.bin.clipsonic_inference``. A small standalone loop (Adam, fixed epochs): the
prior is a few-MB MLP trained in seconds to minutes, it needs none of ESPnet's data machinery.
"""

import argparse
import logging
import sys
import time
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import yaml

from espnet2_clip.t2a.prior import DiffusionPrior, save_prior
from espnet2_clip.utils.cli import CLIP_ENCODER_ALIASES, rewrite_deprecated
from espnet2_clip.utils.cpu import flush_denormals
from espnet2_clip.utils.fileio import read_scp


def _load_pairs_from_npy(text_scp: str, image_scp: str) -> Tuple[torch.Tensor, torch.Tensor]:
    texts, images = read_scp(text_scp), read_scp(image_scp)
    keys = sorted(set(texts) & set(images))
    if not keys:
        raise ValueError(f"{text_scp} and {image_scp} share no ids")
    t, i = [], []
    for k in keys:
        te, ie = np.load(texts[k]), np.load(images[k])
        t.append(te.reshape(-1, te.shape[-1]).mean(0))
        i.append(ie.reshape(-1, ie.shape[-1]).mean(0))
    return torch.as_tensor(np.stack(t)).float(), torch.as_tensor(np.stack(i)).float()


def _load_pairs_from_images(args) -> Tuple[torch.Tensor, torch.Tensor]:
    from espnet2_clip.query.choices import build_query_encoder

    images, captions = read_scp(args.image_scp), read_scp(args.caption)
    keys = sorted(set(images) & set(captions))
    if not keys:
        raise ValueError(f"{args.image_scp} and {args.caption} share no ids")
    enc = build_query_encoder(args.query_encoder, args.query_encoder_conf, args.device)
    text = enc.encode("text", [captions[k] for k in keys], templates="none")
    image = enc.encode("image", [images[k] for k in keys])
    return text.cpu(), image.cpu()


def train_prior(text: torch.Tensor, image: torch.Tensor, prior_conf: Optional[dict] = None, epochs: int = 100,
                batch_size: int = 64, lr: float = 1e-3, seed: int = 0, device: str = "cpu") -> DiffusionPrior:
    """Fit a :class:`DiffusionPrior` on (N, D) text / image embedding pairs."""
    if text.shape != image.shape or text.dim() != 2:
        raise ValueError(f"need matching (N, D) text / image embeddings, got {tuple(text.shape)}, {tuple(image.shape)}")
    conf = dict(prior_conf or {})
    conf.setdefault("embed_dim", int(text.shape[1]))
    if conf["embed_dim"] != text.shape[1]:
        raise ValueError(f"prior_conf.embed_dim {conf['embed_dim']} != embedding size {text.shape[1]}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    prior = DiffusionPrior(**conf).to(device)
    optim = torch.optim.AdamW(prior.parameters(), lr=lr, weight_decay=1e-4)
    n = text.shape[0]
    steps = epochs * max(1, int(np.ceil(n / batch_size)))
    sched = torch.optim.lr_scheduler.OneCycleLR(optim, max_lr=lr, total_steps=steps, pct_start=0.1)
    prior.train()
    start = time.time()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for s in range(0, n, batch_size):
            idx = order[s : s + batch_size]
            loss = prior(text[idx].to(device), image[idx].to(device), generator=gen)
            optim.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(prior.parameters(), 1.0)
            optim.step()
            sched.step()
            total += loss.item() * len(idx)
        if epoch == 1 or epoch == epochs or epoch % max(1, epochs // 10) == 0:
            logging.info(f"epoch {epoch}/{epochs}: loss {total / n:.4f} ({time.time() - start:.0f} s)")
    return prior.eval()


def get_parser() -> argparse.ArgumentParser:
    """Argument parser of the prior trainer."""
    from espnet2.utils.nested_dict_action import NestedDictAction

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="YAML file whose keys set defaults of the options below")
    parser.add_argument("--image_scp", help="'uttid image path' list of captioned images")
    parser.add_argument("--caption", help="'uttid caption text' list")
    parser.add_argument("--query_encoder", default="clip",
                        help="The frozen encoder of the captions and images (a registry name; CLIP)")
    parser.add_argument("--query_encoder_conf", action=NestedDictAction,
                        default=dict(model_name="ViT-B-32", pretrained="openai"),
                        help="Its options, e.g. {model_name: exp/clip, pretrained: none}")
    parser.add_argument("--text_emb_scp", help="'uttid text_emb.npy' list (instead of images + captions)")
    parser.add_argument("--image_emb_scp", help="'uttid image_emb.npy' list")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--prior_conf", action=NestedDictAction, default=dict(), help="DiffusionPrior options")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--log_level", default="INFO")
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> None:
    """CLI entry point."""
    parser = get_parser()
    cmd = rewrite_deprecated(sys.argv[1:] if cmd is None else cmd, CLIP_ENCODER_ALIASES)
    args, _ = parser.parse_known_args(cmd)
    if args.config:
        parser.set_defaults(**yaml.safe_load(open(args.config)) or {})
    args = parser.parse_args(cmd)
    flush_denormals()
    logging.basicConfig(level=args.log_level, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    use_npy = bool(args.text_emb_scp or args.image_emb_scp)
    use_images = bool(args.image_scp or args.caption)
    if use_npy == use_images:
        parser.error("give either --image_scp + --caption or --text_emb_scp + --image_emb_scp")
    if use_npy and not (args.text_emb_scp and args.image_emb_scp):
        parser.error("--text_emb_scp and --image_emb_scp go together")
    if use_images and not (args.image_scp and args.caption):
        parser.error("--image_scp and --caption go together")
    text, image = (_load_pairs_from_npy(args.text_emb_scp, args.image_emb_scp) if use_npy
                   else _load_pairs_from_images(args))
    logging.info(f"training a prior on {text.shape[0]} pairs of {text.shape[1]}-dim embeddings")
    prior = train_prior(text, image, args.prior_conf, args.epochs, args.batch_size, args.lr, args.seed, args.device)
    extra = {"num_pairs": int(text.shape[0])}
    if use_images:
        extra["query_encoder"] = {"name": args.query_encoder, "conf": dict(args.query_encoder_conf)}
    paths = save_prior(prior.cpu(), args.output_dir, extra)
    logging.info(f"wrote {paths['prior_config']} and {paths['prior_file']}")


if __name__ == "__main__":
    main(sys.argv[1:])
