#!/usr/bin/env python3
"""Benchmark CLIPSep at the paper configuration; prints numbers, asserts nothing.

Measures: backbone / model parameter counts, training throughput (mixtures and clips per second,
forward + backward + Adam step), inference real-time factor of a 4.1 s mixture with a text
query (CLIP ViT-B/32 text tower, randomly initialised: same cost as the pretrained one), and
peak resident memory. ``--backbone`` / ``--backbone_conf`` swap the paper's U-Net for another
backbone (as in training configs).

``--train_config`` (repeatable) instead compares training configs side by side: parameters and
seconds per training step at each config's batch size and clip length, the configs' steps taken
in turn so that the machine's load affects them alike (median over ``--steps``; the same as
``train_step_benchmark --task clipsep --train_args "--config PATH"``).

    python -m espnet2_clip.bin.clipsep_benchmark [--threads 2] [--batch_size 8] [--steps 3] [--device cpu]
        [--backbone espnet_separator --backbone_conf "{out_channels: 32, separator: dprnn}"]
    python -m espnet2_clip.bin.clipsep_benchmark --train_config conf/train_clipsep.yaml \
        --train_config conf/train_clipsep_dprnn.yaml --steps 10
"""

import argparse
import json
import resource
import time
from typing import Dict, Optional, Sequence

import torch
from espnet2.utils.nested_dict_action import NestedDictAction

from espnet2_clip.sep.espnet_model import ESPnetCLIPSepModel
from espnet2_clip.sep.frontend import LogFreqSTFT
from espnet2_clip.sep.heads import NoiseInvariantHead, QueryMaskHead
from espnet2_clip.bin.train_step_benchmark import compare_train_steps, count, print_table, sync
from espnet2_clip.sep.query import EmbeddingQuery
from espnet2_clip.tasks.clipsep import build_backbone
from espnet2_clip.utils.cli import parse_args
from espnet2_clip.utils.cpu import flush_denormals

CLIP_SAMPLES = 65535
SAMPLE_RATE = 16000


def build(nit: bool, backbone: str = "unet", backbone_conf: Optional[Dict] = None) -> ESPnetCLIPSepModel:
    """The paper's CLIPSep (-NIT) with the given backbone (default: the paper's U-Net)."""
    frontend = LogFreqSTFT()
    args = argparse.Namespace(backbone=backbone, backbone_conf=backbone_conf or {}, unet_conf={})
    net = build_backbone(args, frontend.num_warped_bins)
    query = EmbeddingQuery(num_channels=net.out_channels, input_dim=512)
    head = NoiseInvariantHead(query) if nit else QueryMaskHead(query)
    return ESPnetCLIPSepModel(frontend, net, head)


def train_throughput(model, batch: int, steps: int, device: str) -> float:
    """Mixtures per second (``batch`` mixtures = 2 * batch clips per step)."""
    model.train().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    clips = torch.randn(2 * batch, CLIP_SAMPLES, device=device) * 0.1
    query = torch.randn(2 * batch, 512, device=device)
    for step in range(steps + 1):  # the first step warms up
        if step == 1:
            sync(device)
            start = time.perf_counter()
        loss = model(clips, query=query)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    sync(device)
    return batch * steps / (time.perf_counter() - start)


def inference_rtf(model, device: str, repeats: int) -> dict:
    import open_clip

    clip = open_clip.create_model("ViT-B-32", pretrained=None).to(device).eval()
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    model.eval().to(device)
    mixture = torch.randn(1, CLIP_SAMPLES, device=device) * 0.1
    times = {"text": [], "separate": []}
    with torch.no_grad():
        for i in range(repeats + 1):
            sync(device)
            t0 = time.perf_counter()
            emb = clip.encode_text(tokenizer(["a photo of violin"]).to(device))
            sync(device)
            t1 = time.perf_counter()
            model.separate(mixture, emb.float())
            sync(device)
            t2 = time.perf_counter()
            if i:
                times["text"].append(t1 - t0)
                times["separate"].append(t2 - t1)
    duration = CLIP_SAMPLES / SAMPLE_RATE
    text, sep = (sum(v) / len(v) for v in times.values())
    return {"text_query_s": text, "separate_s": sep, "rtf": (text + sep) / duration}


def get_parser() -> argparse.ArgumentParser:
    """Argument parser of the CLI."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=8, help="mixtures per training step")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backbone", default="unet", help="backbone name (as --backbone of clipsep_train)")
    parser.add_argument("--backbone_conf", action=NestedDictAction, default={},
                        help="backbone options (default: the paper's U-Net)")
    parser.add_argument("--train_config", action="append", default=[],
                        help="compare these training configs side by side instead (repeatable)")
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> None:
    args = parse_args(get_parser(), cmd, {"--batch": "--batch_size"})
    torch.set_num_threads(args.threads)
    flush_denormals()
    if args.train_config:
        print_table(compare_train_steps("clipsep", [["--config", path] for path in args.train_config], args.steps,
                                        args.device))
        return
    torch.manual_seed(0)
    clipsep = build(nit=False, backbone=args.backbone, backbone_conf=args.backbone_conf)
    nit = build(nit=True, backbone=args.backbone, backbone_conf=args.backbone_conf)
    result = {
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "threads": args.threads,
        "backbone": type(clipsep.backbone).__name__,
        "backbone_params": count(clipsep.backbone),
        "clipsep_params": count(clipsep),
        "nit_extra_params": count(nit) - count(clipsep),
    }
    mix_per_s = train_throughput(clipsep, args.batch_size, args.steps, args.device)
    result.update(train_batch_mixtures=args.batch_size, train_mixtures_per_s=mix_per_s, train_clips_per_s=2 * mix_per_s)
    result["nit_train_mixtures_per_s"] = train_throughput(nit, args.batch_size, args.steps, args.device)
    result.update(inference_rtf(clipsep, args.device, args.repeats))
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.device.startswith("cuda"):
        result["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    for key, value in result.items():
        print(f"{key:>26}: {value:.4g}" if isinstance(value, float) else f"{key:>26}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
