#!/usr/bin/env python3
"""Benchmark streamed separation of long recordings; prints numbers, asserts nothing.

Separates 1 min and 10 min (``--minutes``) of 44.1 kHz stereo noise with the paper-size CLIPSep
(random weights, an embedding query) through ``TextQueriedSeparation.separate_file``, each in a
fresh process, for every precision and hop ratio given (side by side, in one run), and prints the
real-time factor (processing time / audio duration) and the peak resident memory: memory should
not grow with the length.

    python -m espnet2_clip.bin.separate_benchmark [--threads 2] [--minutes 1 10] \
        [--precision fp32 bf16] [--hop_ratio 0.5 1.0]
"""

import argparse
import itertools
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import soundfile as sf
import torch

from espnet2_clip.utils.precision import PRECISIONS

FS = 44100


def write_noise(path: Path, minutes: float, block_seconds: int = 30) -> None:
    """``minutes`` of 44.1 kHz stereo noise, written block by block (PCM16)."""
    rng = np.random.default_rng(0)
    total = int(minutes * 60 * FS)
    with sf.SoundFile(str(path), "w", FS, 2, "PCM_16") as f:
        for start in range(0, total, block_seconds * FS):
            n = min(block_seconds * FS, total - start)
            f.write((0.1 * rng.standard_normal((n, 2))).astype(np.float32))


def paper_separator(hop_ratio: float, precision: str = "fp32"):
    """A ``TextQueriedSeparation`` around the paper-size model (random weights, no CLIP needed)."""
    from espnet2_clip.bin.clipsep_benchmark import CLIP_SAMPLES, SAMPLE_RATE, build
    from espnet2_clip.bin.clipsep_inference import TextQueriedSeparation
    from espnet2_clip.query.embedder import QueryEmbedder
    from espnet2_clip.utils.precision import set_backbone_precision

    sep = TextQueriedSeparation.__new__(TextQueriedSeparation)
    sep.model = set_backbone_precision(build(nit=True).eval(), precision)
    sep.device, sep.sample_rate, sep.clip_samples = "cpu", SAMPLE_RATE, CLIP_SAMPLES
    sep.hop = max(1, int(CLIP_SAMPLES * hop_ratio))
    sep.embedder = QueryEmbedder(None, None)
    return sep


def child(path: str, hop_ratio: float, threads: int, precision: str) -> dict:
    """Separate ``path`` once; time and peak memory of this process."""
    from espnet2_clip.utils.cpu import flush_denormals

    torch.set_num_threads(threads)
    flush_denormals()
    sep = paper_separator(hop_ratio, precision)
    query = np.random.default_rng(1).standard_normal(512).astype(np.float32)
    duration = sf.info(path).duration
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        sep.separate_file(path, [Path(out) / "est.wav"], [query], query_kind="embedding", progress=False)
        elapsed = time.perf_counter() - start
    return {"audio_s": round(duration, 1), "elapsed_s": round(elapsed, 1), "rtf": round(elapsed / duration, 4),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Run the benchmark (one subprocess per length)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10])
    parser.add_argument("--hop_ratio", type=float, nargs="+", default=[0.5, 1.0],
                        help="window hops as fractions of a clip (1.0: windows do not overlap)")
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=PRECISIONS)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.hop_ratio[0], args.threads, args.precision[0])))
        return
    with tempfile.TemporaryDirectory(prefix="espnet2_clip_bench_") as work:
        for minutes in args.minutes:
            path = Path(work) / f"noise_{minutes:g}min.wav"
            write_noise(path, minutes)
            for precision, hop_ratio in itertools.product(args.precision, args.hop_ratio):
                cmd = [sys.executable, "-m", "espnet2_clip.bin.separate_benchmark", "--child", str(path),
                       "--threads", str(args.threads), "--hop_ratio", str(hop_ratio), "--precision", precision]
                result = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True
                                                   ).stdout.strip().splitlines()[-1])
                print(json.dumps({"minutes": minutes, "fs": FS, "channels": 2, "threads": args.threads,
                                  "precision": precision, "hop_ratio": hop_ratio, **result}), flush=True)
            path.unlink()


if __name__ == "__main__":
    main(sys.argv[1:])
