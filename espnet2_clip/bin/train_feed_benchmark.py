#!/usr/bin/env python3
"""Is training fed? CLIPSep's ESPnet trainer on clips read from the disk; prints numbers, asserts nothing.

Runs ``espnet2_clip.bin.clipsep_train`` as the recipes' stage 7 does (``wav.scp`` as ESPnet's ``text``
type: each worker reads only the frame-centred crop; per-frame query embeddings as ``npy``) for
``--steps`` updates, once per ``--num_workers`` value, with the files' pages dropped from the OS cache
before each run (reads come from the disk, as in an epoch over a corpus larger than memory). From the
trainer's log (``--log_interval 1``) it takes ESPnet's per-step ``iter_time`` (the step waited for its
batch) and ``train_time`` (the whole step, from the end of the previous one) and prints, per worker
count, the steps after ``--warmup_steps``:

* ``mixtures / s``: mixtures per step over the summed ``train_time``;
* ``data wait``: summed ``iter_time`` over summed ``train_time``, the share of the step in which the
  model waited for data (1 - data wait is the share the device could be busy);
* ``GPU busy`` (CUDA only): NVML's ``utilization.gpu`` sampled by ``nvidia-smi`` every 100 ms while the
  timed steps ran (the share of each sample period in which a kernel ran), median and mean.

The corpus is generated (noise clips of ``--seconds`` at the config's sample rate, PCM16, random query
embeddings of the config's ``query_conf.input_dim``; every file read once) or ``--data_dir`` (a recipe's
``dump/train`` with ``wav.scp`` and ``query_image.scp``). The model is the config's (default: the
VGGSound recipe's paper configuration, batch 32 mixtures, bf16 autocast and channels-last where the
device computes bf16 natively).

    python -m espnet2_clip.bin.train_feed_benchmark --device cuda --num_workers 4 8 16 [--steps 40]
    python -m espnet2_clip.bin.train_feed_benchmark --config conf/train_clipsep.yaml --num_workers 0 2
"""

import argparse
import datetime
import json
import logging
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import yaml

from espnet2_clip.bin.loader_benchmark import drop_page_cache, make_corpus
from espnet2_clip.utils.fileio import read_scp

logger = logging.getLogger("espnet2_clip.train_feed_benchmark")
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "egs2/vggsound/clipsep1/conf/train_clipsep.yaml"
# "[host] 2026-12-02 10:56:23,081 (trainer:811) INFO: 1epoch:train:1-1batch: iter_time=0.004, ..., train_time=0.260"
STEP_LINE = re.compile(r"^\[[^\]]*\] (?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*?"
                       r"\d+epoch:train:(?P<first>\d+)-(?P<last>\d+)batch: (?P<stats>.*)$")
# ESPnet's reporter sometimes drops the ", " between two stats at --log_interval 1: "iter_time=0.011forward_time=0.163"
STAT = re.compile(r"(?P<name>[a-z][a-z_0-9]*)=(?P<value>-?(?:\d+\.\d+(?:e[-+]\d+)?|\d+|nan|inf))")


def trainer_steps(log_text: str) -> List[Dict]:
    """The training steps logged by ESPnet's trainer (``--log_interval 1``): per step its wall-clock time
    at the end, ``iter_time`` and ``train_time`` in seconds."""
    steps = []
    for line in log_text.splitlines():
        match = STEP_LINE.match(line)
        if match is None:
            continue
        if match["first"] != match["last"]:
            raise ValueError(f"trainer log: one line per step expected (--log_interval 1), got {line!r}")
        stats = {m["name"]: m["value"] for m in STAT.finditer(match["stats"])}
        if "iter_time" not in stats or "train_time" not in stats:
            raise ValueError(f"trainer log: no iter_time / train_time in {line!r}")
        steps.append({"end": datetime.datetime.strptime(match["time"], "%Y-%m-%d %H:%M:%S,%f"),
                      "iter_time": float(stats["iter_time"]), "train_time": float(stats["train_time"])})
    return steps


class GpuSampler:
    """``nvidia-smi`` sampling the utilisation of the trainer's GPU (the first of ``CUDA_VISIBLE_DEVICES``) every
    ``interval_ms`` into a file while the context is open; :meth:`samples` reads ``(time, percent)`` pairs.
    Samples nothing when not ``enabled`` or where ``nvidia-smi`` is missing (with a warning)."""

    def __init__(self, path: Path, enabled: bool, interval_ms: int = 100):
        self.path = path
        gpu = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip() or "0"
        self.command = ["nvidia-smi", "--query-gpu=timestamp,utilization.gpu", "--format=csv,noheader,nounits",
                        f"--id={gpu}", f"--loop-ms={interval_ms}"]
        self.enabled = enabled
        self.process: Optional[subprocess.Popen] = None

    def __enter__(self) -> "GpuSampler":
        if self.enabled and shutil.which("nvidia-smi") is None:
            logger.warning("nvidia-smi is not on PATH: the GPU's utilisation is not sampled")
        elif self.enabled:
            with open(self.path, "w") as out:
                self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def samples(self) -> List[Tuple[datetime.datetime, float]]:
        """``(time, utilisation %)`` of every complete sample line (malformed lines are skipped)."""
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            stamp, _, value = line.rpartition(",")
            try:
                out.append((datetime.datetime.strptime(stamp.strip(), "%Y/%m/%d %H:%M:%S.%f"), float(value)))
            except ValueError:
                continue
        return out


def summarise(steps: List[Dict], warmup_steps: int, batch_mixtures: int,
              gpu_samples: Sequence[Tuple[datetime.datetime, float]] = ()) -> Dict:
    """Mixtures / s, data wait and GPU busy over the steps after ``warmup_steps``."""
    timed = steps[warmup_steps:]
    if not timed:
        raise ValueError(f"the trainer logged {len(steps)} step(s), none after {warmup_steps} warm-up step(s)")
    train_time = sum(s["train_time"] for s in timed)
    result = {"timed_steps": len(timed), "mixtures_per_s": batch_mixtures * len(timed) / train_time,
              "s_per_step": train_time / len(timed), "data_wait": sum(s["iter_time"] for s in timed) / train_time}
    start = timed[0]["end"] - datetime.timedelta(seconds=timed[0]["train_time"])
    busy = [value for stamp, value in gpu_samples if start <= stamp <= timed[-1]["end"]]
    if busy:
        result.update(gpu_busy_median=statistics.median(busy) / 100, gpu_busy_mean=statistics.mean(busy) / 100,
                      gpu_samples=len(busy))
    return result


def write_lists(data_dir: Path, out_dir: Path, files: int, valid_files: int, query_scp: Optional[str]) -> Path:
    """``train/`` with the first ``files`` keys of ``data_dir``'s lists and ``valid/`` with ``valid_files`` of
    them, under ``out_dir``."""
    names = ["wav.scp"] + ([query_scp] if query_scp else [])
    tables = {name: read_scp(data_dir / name) for name in names}
    keys = list(tables["wav.scp"])
    if len(keys) < files:
        raise ValueError(f"{data_dir}/wav.scp: {len(keys)} clips, the run needs {files} (--steps x batch size)")
    for name, table in tables.items():
        missing = [k for k in keys[:files] if k not in table]
        if missing:
            raise ValueError(f"{data_dir}/{name}: no entry for {missing[0]!r} (and {len(missing) - 1} more)")
    for mode, count in (("train", files), ("valid", valid_files)):
        (out_dir / mode).mkdir(parents=True, exist_ok=True)
        for name, table in tables.items():
            (out_dir / mode / name).write_text("".join(f"{k} {table[k]}\n" for k in keys[:count]))
    return out_dir


def trainer_command(config: Path, lists: Path, query_scp: Optional[str], workers: int, steps: int,
                    device: str, output_dir: Path, extra: Sequence[str]) -> List[str]:
    """``clipsep_train`` for ``steps`` updates in one epoch, every step logged."""
    command = [sys.executable, "-m", "espnet2_clip.bin.clipsep_train", "--config", str(config),
               "--output_dir", str(output_dir), "--ngpu", "1" if device.startswith("cuda") else "0",
               "--num_workers", str(workers), "--num_iters_per_epoch", str(steps), "--max_epoch", "1",
               "--log_interval", "1", "--use_tensorboard", "false", "--resume", "false"]
    for mode in ("train", "valid"):
        command += [f"--{mode}_data_path_and_name_and_type", f"{lists / mode / 'wav.scp'},speech_ref1,text",
                    f"--{mode}_shape_file", str(lists / mode / "wav.scp")]
        if query_scp:
            command += [f"--{mode}_data_path_and_name_and_type", f"{lists / mode / query_scp},query,npy"]
    return command + list(extra)


def one_run(args: argparse.Namespace, lists: Path, query_scp: Optional[str], workers: int, batch_clips: int,
            work_dir: Path) -> Dict:
    """Train for ``args.steps`` updates with ``workers`` loader processes, the files' pages dropped first."""
    run_dir = work_dir / f"workers{workers}"
    shutil.rmtree(run_dir, ignore_errors=True)  # a rerun in the same --work_dir starts afresh
    run_dir.mkdir(parents=True)
    drop_page_cache(list(read_scp(lists / "train" / "wav.scp").values()))
    extra = ["--batch_size", str(batch_clips)] + shlex.split(args.train_args)
    command = trainer_command(args.config, lists, query_scp, workers, args.steps, args.device, run_dir / "exp",
                              extra)
    log_path = run_dir / "train.log"
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    with GpuSampler(run_dir / "gpu.csv", enabled=args.device == "cuda") as sampler, open(log_path, "w") as log:
        status = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    log_text = log_path.read_text()
    if status != 0:
        raise RuntimeError(f"clipsep_train exited with {status} ({log_path}); its last lines:\n"
                           + "\n".join(log_text.splitlines()[-15:]))
    return {"num_workers": workers, **summarise(trainer_steps(log_text), args.warmup_steps, batch_clips // 2,
                                                sampler.samples())}


def print_table(rows: Sequence[Dict]) -> None:
    print("| workers | mixtures / s | s / step | data wait | GPU busy (median, mean) |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        busy = f"{r['gpu_busy_median']:.0%}, {r['gpu_busy_mean']:.0%}" if "gpu_busy_median" in r else "-"
        print(f"| {r['num_workers']} | {r['mixtures_per_s']:.2f} | {r['s_per_step']:.3f} | {r['data_wait']:.1%} "
              f"| {busy} |")


def get_parser() -> argparse.ArgumentParser:
    """Argument parser of the CLI."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="a CLIPSep training config")
    parser.add_argument("--data_dir", type=Path, default=None,
                        help="a dir with wav.scp and query_image.scp; default: a generated corpus")
    parser.add_argument("--num_workers", type=int, nargs="+", default=[2, 4, 8], help="loader processes to try")
    parser.add_argument("--steps", type=int, default=40, help="updates per run (one file read per clip)")
    parser.add_argument("--warmup_steps", type=int, default=5, help="first updates left out of the figures")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each generated clip")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of the trainer")
    parser.add_argument("--batch_size", type=int, default=None,
                        help="clips per step (2 per mixture); default: the config's")
    parser.add_argument("--train_args", default="", help="more clipsep_train options, e.g. '--model_conf "
                                                         "train_precision=fp32'")
    parser.add_argument("--work_dir", type=Path, default=None,
                        help="keep the corpus, logs and GPU samples here (default: a temporary dir)")
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> None:
    parser = get_parser()
    args = parser.parse_args(cmd)
    if args.steps <= args.warmup_steps:
        parser.error(f"--steps ({args.steps}) must be above --warmup_steps ({args.warmup_steps})")
    if not args.config.is_file():
        parser.error(f"--config {args.config}: no such file")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: PyTorch sees no CUDA device here")
    config = yaml.safe_load(args.config.read_text()) or {}
    batch_clips = args.batch_size or int(config.get("batch_size", 64))
    if batch_clips < 2 or batch_clips % 2:
        parser.error(f"batch size {batch_clips} (clips): an even number >= 2 expected (2 clips per mixture)")
    clip_seconds = int(config.get("clip_samples", 65535)) / int(config.get("sample_rate", 16000))
    if args.data_dir is None and args.seconds < clip_seconds:
        parser.error(f"--seconds {args.seconds}: shorter than the config's training clips ({clip_seconds:.2f} s)")
    train_query = config.get("train_query", "image")
    if train_query not in ("image", "text", "none"):
        parser.error(f"--config {args.config}: train_query {train_query!r}; this benchmark feeds image, text "
                     "or no queries")
    query_scp = None if train_query == "none" else "query_image.scp"  # text-trained models read embeddings too
    with tempfile.TemporaryDirectory(prefix="train_feed_benchmark_") as tmp:
        work_dir = args.work_dir or Path(tmp)
        work_dir.mkdir(parents=True, exist_ok=True)
        data_dir = args.data_dir
        if data_dir is None:
            data_dir = work_dir / "corpus"
            data_dir.mkdir(exist_ok=True)
            make_corpus(data_dir, args.steps * batch_clips, args.seconds, int(config.get("sample_rate", 16000)),
                        float(config.get("frame_rate", 1.0)),
                        query_dim=int(config.get("query_conf", {}).get("input_dim", 512)))
        lists = write_lists(data_dir, work_dir / "lists", args.steps * batch_clips, batch_clips, query_scp)
        rows = [one_run(args, lists, query_scp, workers, batch_clips, work_dir) for workers in args.num_workers]
    print_table(rows)
    print(json.dumps({"config": str(args.config), "device": args.device, "batch_mixtures": batch_clips // 2,
                      "steps": args.steps, "warmup_steps": args.warmup_steps, "cores": len(os.sched_getaffinity(0)),
                      "rows": rows}, default=str))


if __name__ == "__main__":
    main()
