#!/usr/bin/env python3
"""Seconds per training step of several training setups, side by side; prints numbers, asserts nothing.

Each ``--train_args`` is one setup: arguments of the task's trainer (shlex-split; usually a config and
overrides). The setups' models are built by the task (``clipsep``: CLIPSep and its baselines;
``clipsonic``: the diffusion model) with random weights, fed random clips and queries of the config's
batch size and clip length, and take their steps in turn (forward, backward, optimiser step), so that the
machine's load affects them alike; the first step warms up. Prints the median and minimum seconds per step
of each and, for two or more setups, each one's speed relative to the first.

    python -m espnet2_clip.bin.train_step_benchmark --task clipsonic --steps 10 \\
        --train_args "--config conf/train_clipsonic_iq.yaml --model_conf train_precision=fp32" \\
        --train_args "--config conf/train_clipsonic_iq.yaml --model_conf train_precision=bf16"
"""

import argparse
import json
import shlex
import statistics
import time
from typing import Dict, List, Optional, Sequence

import torch

from espnet2_clip.utils.cli import parse_args
from espnet2_clip.utils.cpu import flush_denormals


def _task(name: str):
    if name == "clipsep":
        from espnet2_clip.tasks.clipsep import CLIPSepTask

        return CLIPSepTask
    from espnet2_clip.tasks.clipsonic import CLIPSonicTask

    return CLIPSonicTask


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def random_query(model: torch.nn.Module, clips: int, device: str) -> Optional[torch.Tensor]:
    """Random training queries of the model's kind: CLIPSep's (labels, embeddings or none for PIT) or a
    CLIPSonic model's CLIP embeddings."""
    head = getattr(model, "head", None)
    if head is None:  # CLIPSonic
        return torch.randn(clips, model.cond_dim, device=device)
    if not head.needs_query:
        return None
    from espnet2_clip.sep.query import LabelQuery

    if isinstance(head.query, LabelQuery):
        return torch.randint(0, head.query.num_labels, (clips, 1), device=device)
    return torch.randn(clips, head.query.input_dim, device=device)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def compare_train_steps(task: str, setups: Sequence[Sequence[str]], steps: int, device: str) -> List[Dict]:
    """Parameters and median / minimum seconds per training step of each setup (trainer arguments),
    steps taken in turn."""
    task_class = _task(task)
    runs = []
    for setup in setups:
        args = task_class.get_parser().parse_args(list(setup))
        torch.manual_seed(0)
        model = task_class.build_model(args).train().to(device)
        runs.append({
            "setup": " ".join(setup), "model": model, "times": [],
            "optimizer": torch.optim.Adam(model.parameters(), lr=1e-4),
            "clips": torch.randn(args.batch_size, args.clip_samples, device=device) * 0.1,
            "query": random_query(model, args.batch_size, device),
            "params": count(model), "batch_clips": args.batch_size, "clip_samples": args.clip_samples,
        })
    for step in range(steps + 1):  # the first step warms up
        for run in runs:
            sync(device)
            start = time.perf_counter()
            loss = run["model"](run["clips"], query=run["query"])[0]
            run["optimizer"].zero_grad()
            loss.backward()
            run["optimizer"].step()
            sync(device)
            if step:
                run["times"].append(time.perf_counter() - start)
    keys = ("setup", "params", "batch_clips", "clip_samples")
    results = [{**{key: run[key] for key in keys}, "s_per_step": statistics.median(run["times"]),
                "s_per_step_min": min(run["times"])} for run in runs]
    for result in results:
        result["speed_vs_first"] = results[0]["s_per_step"] / result["s_per_step"]
    return results


def print_table(results: Sequence[Dict]) -> None:
    print("| setup | params | batch (clips) | clip samples | s / step (median, min) | speed vs the first |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['setup']} | {r['params'] / 1e6:.2f} M | {r['batch_clips']} | {r['clip_samples']} "
              f"| {r['s_per_step']:.3f} ({r['s_per_step_min']:.3f}) | {r['speed_vs_first']:.2f}x |")
    print(json.dumps(results))


def get_parser() -> argparse.ArgumentParser:
    """Argument parser of the CLI."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=("clipsep", "clipsonic"), required=True)
    parser.add_argument("--train_args", action="append", required=True,
                        help="one setup: trainer arguments, e.g. '--config conf/train.yaml --model_conf "
                             "train_precision=fp32' (repeatable)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per setup (after one warm-up step)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> None:
    parser = get_parser()
    args = parse_args(parser, cmd)
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    torch.set_num_threads(args.threads)
    flush_denormals()
    print_table(compare_train_steps(args.task, [shlex.split(s) for s in args.train_args], args.steps, args.device))


if __name__ == "__main__":
    main()
