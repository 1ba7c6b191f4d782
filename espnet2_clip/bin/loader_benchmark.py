#!/usr/bin/env python3
"""Training-loader throughput at the paper configuration; prints numbers, asserts nothing.

The loader CLIPSep / CLIPSonic training runs: ESPnet's dataset over ``wav.scp`` and a per-frame
query ``npy`` scp, the frame-centred crop of ``CLIPSepPreprocessor``, ESPnet's collate function and
a torch DataLoader with ``--num_workers`` processes. Two ways to give it ``wav.scp``:

* ``sound``: ESPnet reads each file whole; the preprocessor crops it;
* ``text``:  the preprocessor gets the path and reads only the crop (what the recipes use).

Each pass reads every file once (an epoch) in batches of ``--batch_clips`` clips (paper: 32
mixtures = 64 clips of 65,535 samples from 10-s, 16-kHz PCM16 files, as the recipes' stage 3
writes them). Before each pass the files' pages are dropped from the OS cache
(``posix_fadvise(DONTNEED)``), so reads come from the disk, as in an epoch over a corpus larger
than memory; ``--warm`` keeps the cache. Passes alternate between the two ways so that the
machine's drift affects both alike. Clips / s is counted from the first batch to the last (worker
start-up excluded, as it is once per epoch).

    python -m espnet2_clip.bin.loader_benchmark [--num_files 1024] [--num_workers 0 2 4 8]
    python -m espnet2_clip.bin.loader_benchmark --data_dir dump/train  # your own wav.scp (+ query_image.scp)
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from espnet2_clip.sep.preprocessor import CLIPSepPreprocessor
from espnet2_clip.utils.fileio import read_scp

WAYS = ("sound", "text")


def make_corpus(root: Path, num_files: int, seconds: float, sample_rate: int, frame_rate: float,
                query_dim: int) -> Path:
    """``num_files`` noise clips (PCM16 wav) with per-frame queries, listed in ``wav.scp`` /
    ``query_image.scp`` under ``root``."""
    rng = np.random.default_rng(0)
    frames = max(1, int(seconds * frame_rate))
    wav_lines, query_lines = [], []
    for i in tqdm(range(num_files), desc="writing the benchmark corpus", unit="file"):
        key = f"clip{i:06d}"
        sf.write(root / f"{key}.wav", 0.1 * rng.standard_normal(int(seconds * sample_rate)), sample_rate,
                 subtype="PCM_16")
        np.save(root / f"{key}.npy", rng.standard_normal((frames, query_dim)).astype(np.float32))
        wav_lines.append(f"{key} {root / f'{key}.wav'}\n")
        query_lines.append(f"{key} {root / f'{key}.npy'}\n")
    (root / "wav.scp").write_text("".join(wav_lines))
    (root / "query_image.scp").write_text("".join(query_lines))
    return root


def drop_page_cache(paths: Sequence[str]) -> None:
    """Ask the OS to forget the files' cached pages (the next read goes to the disk)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def one_pass(data_dir: Path, way: str, num_workers: int, batch_clips: int, clip_samples: int,
             sample_rate: int, frame_rate: float, seed: int) -> Dict[str, float]:
    """Read every clip of ``data_dir`` once through ESPnet's dataset and a DataLoader."""
    from espnet2.train.collate_fn import CommonCollateFn
    from espnet2.train.dataset import ESPnetDataset

    data = [(str(data_dir / "wav.scp"), "speech_ref1", way)]
    if (data_dir / "query_image.scp").exists():
        data.append((str(data_dir / "query_image.scp"), "query", "npy"))
    pre = CLIPSepPreprocessor(train=True, sample_rate=sample_rate, clip_samples=clip_samples,
                              frame_rate=frame_rate)
    dataset = ESPnetDataset(data, preprocess=pre)
    keys = list(read_scp(data_dir / "wav.scp"))
    order = np.random.default_rng(seed).permutation(len(keys))
    batches = [[keys[i] for i in order[b : b + batch_clips]] for b in range(0, len(keys) - batch_clips + 1, batch_clips)]
    if len(batches) < 2:
        raise ValueError(f"{data_dir}/wav.scp: {len(keys)} clips make fewer than 2 batches of {batch_clips}")
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=num_workers,
                                         collate_fn=CommonCollateFn(float_pad_value=0.0, int_pad_value=0))
    start = time.perf_counter()
    first = None
    for n, (_, batch) in enumerate(loader):
        if n == 0:
            first = time.perf_counter()
            assert batch["speech_ref1"].shape == (batch_clips, clip_samples)
    end = time.perf_counter()
    timed_clips = (len(batches) - 1) * batch_clips
    return {"clips_per_s": timed_clips / (end - first), "startup_s": first - start}


def get_parser() -> argparse.ArgumentParser:
    """Argument parser of the CLI."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", type=Path, default=None,
                        help="a dir with wav.scp (and query_image.scp); default: a generated corpus")
    parser.add_argument("--num_files", type=int, default=1024, help="clips of the generated corpus")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each generated clip")
    parser.add_argument("--sample_rate", type=int, default=16000)
    parser.add_argument("--frame_rate", type=float, default=1.0)
    parser.add_argument("--clip_samples", type=int, default=65535)
    parser.add_argument("--batch_clips", type=int, default=64, help="clips per batch (2 per mixture)")
    parser.add_argument("--num_workers", type=int, nargs="+", default=[0, 2, 4, 8])
    parser.add_argument("--rounds", type=int, default=2, help="passes per way and worker count")
    parser.add_argument("--warm", action="store_true", help="keep the OS page cache between passes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the main process")
    return parser


def run(args: argparse.Namespace, data_dir: Path) -> List[Dict]:
    paths = list(read_scp(data_dir / "wav.scp").values())
    rows = []
    for workers in args.num_workers:
        passes = {way: [] for way in WAYS}
        for r in range(args.rounds):
            for way in WAYS if r % 2 == 0 else WAYS[::-1]:
                if not args.warm:
                    drop_page_cache(paths)
                passes[way].append(one_pass(data_dir, way, workers, args.batch_clips, args.clip_samples,
                                            args.sample_rate, args.frame_rate, seed=r))
        for way in WAYS:
            rates = [p["clips_per_s"] for p in passes[way]]
            rows.append({"way": way, "num_workers": workers, "clips_per_s_median": statistics.median(rates),
                         "clips_per_s_min": min(rates), "clips_per_s_max": max(rates),
                         "startup_s": statistics.median(p["startup_s"] for p in passes[way])})
    return rows


def print_table(rows: List[Dict], cores: int) -> None:
    print("| wav.scp as | workers | clips / s (median; min-max) | per worker | start-up s |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        per = r["clips_per_s_median"] / max(r["num_workers"], 1)
        print(f"| {r['way']} | {r['num_workers']} | {r['clips_per_s_median']:.0f} "
              f"({r['clips_per_s_min']:.0f}-{r['clips_per_s_max']:.0f}) | {per:.0f} | {r['startup_s']:.2f} |")
    for way in WAYS:
        mine = [r for r in rows if r["way"] == way and 0 < r["num_workers"] <= cores]
        if mine:
            best = max(mine, key=lambda r: r["clips_per_s_median"] / r["num_workers"])
            per_core = best["clips_per_s_median"] / best["num_workers"]
            print(f"{way}: {per_core:.0f} clips/s per worker with {best['num_workers']} worker(s) on {cores} core(s); "
                  f"if it scales with cores (CPU-bound, disk not saturated): about {8 * per_core:.0f} clips/s "
                  "with 8 workers on 8 cores")


def main(cmd: Optional[Sequence[str]] = None) -> None:
    args = get_parser().parse_args(cmd)
    torch.set_num_threads(args.threads)
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="loader_benchmark_") as tmp:
        data_dir = args.data_dir or make_corpus(Path(tmp), args.num_files, args.seconds, args.sample_rate,
                                                args.frame_rate, query_dim=512)
        rows = run(args, data_dir)
    print_table(rows, cores)
    print(json.dumps({"cores": cores, "warm": args.warm, "batch_clips": args.batch_clips,
                      "clip_samples": args.clip_samples, "rows": rows}))


if __name__ == "__main__":
    main()
