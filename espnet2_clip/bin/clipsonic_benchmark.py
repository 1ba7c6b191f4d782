#!/usr/bin/env python3
"""Time the generation of one clip with a trained CLIPSonic model; prints JSON, asserts nothing.

    python -m espnet2_clip.bin.clipsonic_benchmark --train_config exp/clipsonic_iq/config.yaml \\
        --model_file exp/clipsonic_iq/valid.loss.best.pth --query "circle" \\
        [--num_samples 65535] [--num_steps 25] [--guidance_scale 3] [--threads 2] [--repeats 3]

Measures the whole call (text -> CLIP [-> prior] -> DDIM with guidance -> vocoder) and its parts
(CLIP text embedding; with a prior, text to condition through it; mel sampling, which includes the
condition; vocoder), after one warm-up call; the median of ``--repeats``.
"""

import argparse
import json
import statistics
import sys
import time
from typing import Dict, List, Optional, Sequence

import torch

from espnet2_clip.utils.cpu import flush_denormals


def _median_seconds(fn, repeats: int) -> float:
    times: List[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def benchmark(t2a, query: str, num_steps: int, guidance_scale: float, repeats: int) -> Dict:
    """Median seconds of one generation and of its parts, and the real-time factor."""
    t2a(query, guidance_scale=guidance_scale, num_steps=num_steps, seed=0)  # warm-up (builds CLIP)
    total = _median_seconds(lambda: t2a(query, guidance_scale=guidance_scale, num_steps=num_steps, seed=0), repeats)
    mel = t2a.generate_mel(query, guidance_scale, num_steps, seed=0)
    sampling = _median_seconds(lambda: t2a.generate_mel(query, guidance_scale, num_steps, seed=0), repeats)
    vocoder = _median_seconds(lambda: t2a.mel_to_wave(mel), repeats)
    clip_text = _median_seconds(lambda: t2a.embedder("text", query), repeats)
    query_parts = {"seconds_clip_text": round(clip_text, 3)}
    if t2a.prior is not None:  # the condition of PD: CLIP text (+ token encodings) then the prior
        prior = _median_seconds(lambda: t2a.embed_query(query, torch.Generator().manual_seed(0), "text"), repeats)
        query_parts.update(prior=type(t2a.prior).__name__, seconds_text_to_condition=round(prior, 3))
    seconds_of_audio = t2a.clip_samples / t2a.sample_rate
    return {
        "query": query,
        "variant": t2a.variant,
        "vocoder": "HiFi-GAN" if t2a.vocoder is not None else "Griffin-Lim",
        "audio_seconds": round(seconds_of_audio, 3),
        "num_steps": num_steps,
        "guidance_scale": guidance_scale,
        "threads": torch.get_num_threads(),
        "hardware": (f"{torch.get_num_threads()} CPU threads" if t2a.device == "cpu"
                     else torch.cuda.get_device_name(torch.device(t2a.device))),
        "seconds_total": round(total, 3),
        "seconds_mel_sampling": round(sampling, 3),
        "seconds_vocoder": round(vocoder, 3),
        **query_parts,
        "rtf": round(total / seconds_of_audio, 4),
    }


def get_parser() -> argparse.ArgumentParser:
    """Argument parser of the CLI."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_config", required=True)
    parser.add_argument("--model_file", required=True)
    parser.add_argument("--query", default="a dog barking", help="text query")
    parser.add_argument("--num_samples", type=int, default=65535, help="clip length (65535: 4.1 s at 16 kHz)")
    parser.add_argument("--num_steps", type=int, default=25)
    parser.add_argument("--guidance_scale", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no_prior", action="store_true", help="ZS even if the config records a prior")
    parser.add_argument("--prior_config", default=None,
                        help="time PD with this prior: a trained prior's config.yaml, 'laion', a directory or a "
                             "prior_config.json (default: the one the config records)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", default=None, help="also write the JSON here")
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> int:
    parser = get_parser()
    args = parser.parse_args(cmd)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    torch.set_num_threads(args.threads)
    flush_denormals()
    from espnet2_clip.bin.clipsonic_inference import TextToAudio

    t2a = TextToAudio(args.train_config, args.model_file, device=args.device, num_samples=args.num_samples,
                      use_prior=False if args.no_prior else None, prior_config=args.prior_config)
    result = benchmark(t2a, args.query, args.num_steps, args.guidance_scale, args.repeats)
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        from espnet2_clip.utils.fileio import write_text_atomic

        write_text_atomic(args.output, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
