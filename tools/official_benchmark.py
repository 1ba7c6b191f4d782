#!/usr/bin/env python3
"""CLIPSep side by side with the official code (sony/CLIPSep): training step and one-clip inference.

Fetches the official repository into a scratch directory at a pinned commit (never committed here,
never imported by the espnet2_clip package), builds its ``CLIPSep`` model class and ours at the same
configuration (the U-Net of our training config; CLIP ViT-B/32 towers randomly initialised: the
cost of the pretrained ones), takes their steps in turn so that the machine's load hits both alike,
and prints min / median / max of each figure and the ratios pair by pair.

Figures (mixtures per second; one step = forward + backward + gradient clip + Adam):
* ``official, whole step``: as the official train.py: CLIP image encoding of every frame (3 per
  source) inside the step, then the separator;
* ``official, separator only``: the same step with precomputed embeddings;
* ``ours (<options>)``: our step (embeddings precomputed by the recipe's stage 5), once per set of
  ``model_conf`` speed options in ``--ours``. Our step also computes the STFTs, which the official
  code leaves to its data loader's workers.
* inference: one clip with a text query (CLIP text tower + STFT + separator + inverse STFT).

    python tools/official_benchmark.py [--threads 2] [--batch_size 8] [--rounds 5] [--device cpu]
        [--ours "fp32" --ours "train_precision=bf16,channels_last=true"] [--scratch_dir DIR]

Needs the network once (``git clone``), or ``--official_url`` pointing at a local copy. The official
code imports OpenCV only for visualisation; when cv2 is missing a stub module stands in for it.
"""

import argparse
import importlib
import json
import statistics
import subprocess
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

OFFICIAL_URL = "https://github.com/sony/CLIPSep"
OFFICIAL_COMMIT = "22b6f911c2b7548766f1da5f5a2bb03ba1940959"  # main, 2023-02-21
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "egs2/vggsound/clipsep1/conf/train_clipsep.yaml"
SAMPLE_RATE = 16000
PROMPT = "a photo of violin"


# ------------------------------------------------------------------------------- official code
def fetch_official(url: str, commit: str, scratch_dir: Path) -> Path:
    """Clone ``url`` into ``scratch_dir`` (once) and check out ``commit``; returns its ``clipsep/`` dir."""
    if not (scratch_dir / ".git").is_dir():
        if scratch_dir.exists() and any(scratch_dir.iterdir()):
            sys.exit(f"--scratch_dir {scratch_dir}: exists, is not empty and is not a git clone")
        run_git(["clone", "--quiet", "--no-checkout", url, str(scratch_dir)], f"cannot clone the official code from {url}")
        # only the model code: the repository also holds data lists and demo audio the benchmark does not read
        run_git(["-C", str(scratch_dir), "sparse-checkout", "set", "--no-cone", "/clipsep/*.py"],
                f"cannot set a sparse checkout in {scratch_dir}")
    run_git(["-C", str(scratch_dir), "checkout", "--quiet", "--detach", commit],
            f"commit {commit} is not in {scratch_dir} (cloned from {url})")
    code_dir = scratch_dir / "clipsep"
    if not (code_dir / "clipsep.py").is_file():
        sys.exit(f"{code_dir}/clipsep.py: missing; is {url} the CLIPSep repository?")
    return code_dir


def run_git(args: List[str], failure: str) -> str:
    proc = subprocess.run(["git", *args], capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{failure}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip()


def import_official(code_dir: Path) -> types.ModuleType:
    """Import the official ``clipsep`` module from ``code_dir`` (a stub ``cv2`` if OpenCV is absent)."""
    try:
        importlib.import_module("cv2")
    except ImportError:
        sys.modules["cv2"] = types.ModuleType("cv2")  # used by its video helpers only
    sys.path.insert(0, str(code_dir))
    try:
        return importlib.import_module("clipsep")
    finally:
        sys.path.remove(str(code_dir))


# ------------------------------------------------------------------------------- contenders
@dataclass
class Contender:
    """One timed function (a training step or one inference) and its times in seconds."""

    name: str
    run: Callable[[], None]
    items: int  # mixtures per call
    times: List[float] = field(default_factory=list)

    def rates(self) -> List[float]:
        return [self.items / t for t in self.times]


@dataclass
class Setup:
    """What both sides share: configuration, data and the CLIP towers."""

    device: torch.device
    batch: int  # mixtures per training step
    clip_samples: int
    layers: int
    channels: int
    frames: int  # frames per source (official whole step)
    clips: torch.Tensor  # (2 * batch, clip_samples)
    queries: torch.Tensor  # (2 * batch, 512) precomputed embeddings
    clip_model: torch.nn.Module
    tokenizer: Callable


def official_training(official: types.ModuleType, setup: Setup, encode_frames: bool) -> Callable[[], None]:
    """The official train.py step (CLIP image encoding inside the step when ``encode_frames``)."""
    torch.manual_seed(0)
    model = official.CLIPSep(2, setup.layers, setup.channels).to(setup.device).train()
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    b = setup.batch
    first, second = setup.clips[:b], setup.clips[b:]
    mags = [magnitude(first), magnitude(second)]
    mag_mix = magnitude((first + second) / 2)
    frames = torch.randn(2, b * setup.frames, 3, 224, 224, device=setup.device)
    clip_model = setup.clip_model.half() if setup.device.type == "cuda" else setup.clip_model  # clip.load on GPU

    def step() -> None:
        with torch.no_grad():
            if encode_frames:
                emb = [clip_model.encode_image(frames[n].to(next(clip_model.parameters()).dtype)).float()
                       .view(b, setup.frames, -1).mean(1) for n in range(2)]
            else:
                emb = [setup.queries[:b], setup.queries[b:]]
        optimizer.zero_grad()
        loss, _ = model({"mag_mix": mag_mix, "mags": list(mags)}, emb)
        loss.mean().backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return step


def magnitude(wave: torch.Tensor) -> torch.Tensor:
    """(B, N) -> (B, 1, 513, T) STFT magnitudes (1024 / 256), as the official data loader gives them."""
    from espnet2_clip.sep.frontend import LogFreqSTFT

    return LogFreqSTFT().to(wave.device).stft(wave).abs().unsqueeze(1)


def our_model(config: Path, model_conf: Dict, device: torch.device) -> torch.nn.Module:
    from espnet2_clip.tasks.clipsep import CLIPSepTask

    args = CLIPSepTask.get_parser().parse_args(["--config", str(config)])
    args.model_conf = {**args.model_conf, **model_conf}
    torch.manual_seed(0)
    return CLIPSepTask.build_model(args).to(device)


def our_training(config: Path, model_conf: Dict, setup: Setup) -> Callable[[], None]:
    """Our training step (forward with STFTs, backward, gradient clip, Adam) with ``model_conf`` options."""
    model = our_model(config, model_conf, setup.device).train()
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)

    def step() -> None:
        optimizer.zero_grad()
        loss = model(setup.clips, query=setup.queries)[0]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return step


def official_inference(official: types.ModuleType, setup: Setup) -> Callable[[], None]:
    """The official infer.py path for one clip: text embedding, librosa STFT, ``infer``, unwarp,
    binary mask, librosa inverse STFT (utils.istft_reconstruction's two calls; it uses ``np.complex``,
    which NumPy >= 1.24 no longer has)."""
    import librosa
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = official.CLIPSep(2, setup.layers, setup.channels).to(setup.device).eval()
    audio = setup.clips[0].cpu().numpy()
    tokens = setup.tokenizer([PROMPT]).to(setup.device)

    def separate() -> None:
        with torch.no_grad():
            emb = setup.clip_model.encode_text(tokens).float()
            spec = librosa.stft(audio, n_fft=1024, hop_length=256, win_length=1024)
            mag = torch.tensor(np.abs(spec), device=setup.device)[None, None]
            mask = model.infer(mag, [emb])[0]
            grid = torch.from_numpy(official.utils.warpgrid(1, 513, mask.shape[3], warp=False)).to(setup.device)
            linear = (F.grid_sample(mask, grid, align_corners=True) > 0.5).float().cpu().numpy()
            est = np.abs(spec) * linear[0, 0] * np.exp(1j * np.angle(spec))
            np.clip(librosa.istft(est, hop_length=256, win_length=1024), -1.0, 1.0)

    return separate


def our_inference(config: Path, precision: str, setup: Setup) -> Callable[[], None]:
    from espnet2_clip.utils.precision import set_backbone_precision

    model = set_backbone_precision(our_model(config, {}, setup.device).eval(), precision)
    mixture = setup.clips[:1]
    tokens = setup.tokenizer([PROMPT]).to(setup.device)

    def separate() -> None:
        with torch.no_grad():
            model.separate(mixture, setup.clip_model.encode_text(tokens).float())

    return separate


# ------------------------------------------------------------------------------- timing
def alternate(contenders: Sequence[Contender], rounds: int, device: torch.device) -> None:
    """One warm-up call each, then ``rounds`` rounds calling each contender once in turn."""
    from espnet2_clip.bin.clipsep_benchmark import sync

    for i in range(rounds + 1):
        for contender in contenders:
            sync(device.type)
            start = time.perf_counter()
            contender.run()
            sync(device.type)
            if i:
                contender.times.append(time.perf_counter() - start)


def summary(contender: Contender) -> Dict:
    rates = contender.rates()
    return {"name": contender.name, "min": min(rates), "median": statistics.median(rates), "max": max(rates),
            "ms_median": 1e3 * statistics.median(contender.times)}


def print_table(title: str, unit: str, rows: List[Dict], baselines: Sequence[str]) -> None:
    print(f"\n{title}")
    head = " | ".join(f"x {b}" for b in baselines)
    print(f"| | {unit} min | median | max | ms (median) | {head} |")
    print("|---|---:|---:|---:|---:|" + "---:|" * len(baselines))
    by_name = {row["name"]: row for row in rows}
    for row in rows:
        ratios = " | ".join(f"{row['median'] / by_name[b]['median']:.2f}" for b in baselines)
        print(f"| {row['name']} | {row['min']:.3g} | {row['median']:.3g} | {row['max']:.3g} "
              f"| {row['ms_median']:.0f} | {ratios} |")


def parse_options(text: str) -> Dict:
    """``"fp32"`` -> {}; ``"train_precision=bf16,channels_last=true"`` -> a model_conf dict."""
    if text in ("", "fp32", "default"):
        return {}
    options = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            sys.exit(f"--ours {text!r}: expected key=value items separated by commas")
        options[key.strip()] = {"true": True, "false": False}.get(value.strip().lower(), value.strip())
    return options


def build_setup(args: argparse.Namespace, device: torch.device, batch: int) -> Setup:
    import open_clip
    from espnet2_clip.tasks.clipsep import CLIPSepTask

    config = CLIPSepTask.get_parser().parse_args(["--config", str(args.config)])
    unet = {**config.unet_conf, **config.backbone_conf}
    if config.backbone not in (None, "unet") or unet.get("base_channels", 64) != 64:
        sys.exit(f"--config {args.config}: the official CLIPSep class builds the U-Net with 64 base channels; "
                 f"this config has backbone {config.backbone} {unet}")
    generator = torch.Generator().manual_seed(0)
    clips = 0.1 * torch.randn(2 * batch, config.clip_samples, generator=generator)
    queries = torch.randn(2 * batch, 512, generator=generator)
    clip_model = open_clip.create_model(args.clip_arch, pretrained=None).to(device).eval()
    return Setup(device=device, batch=batch, clip_samples=config.clip_samples, layers=unet.get("num_downs", 7),
                 channels=unet.get("out_channels", 32), frames=args.frames, clips=clips.to(device),
                 queries=queries.to(device), clip_model=clip_model, tokenizer=open_clip.get_tokenizer(args.clip_arch))


def benchmark_device(args: argparse.Namespace, official: types.ModuleType, device: torch.device, batch: int) -> Dict:
    setup = build_setup(args, device, batch)
    train = [Contender("official, whole step", official_training(official, setup, True), batch),
             Contender("official, separator only", official_training(official, setup, False), batch)]
    train += [Contender(f"ours ({text})", our_training(args.config, parse_options(text), setup), batch)
              for text in args.ours]
    alternate(train, args.rounds, device)
    infer = [Contender("official", official_inference(official, setup), 1)]
    infer += [Contender(f"ours ({precision})", our_inference(args.config, precision, setup), 1)
              for precision in args.precisions]
    alternate(infer, args.rounds, device)
    train_rows, infer_rows = [summary(c) for c in train], [summary(c) for c in infer]
    seconds = setup.clip_samples / SAMPLE_RATE
    for row in infer_rows:
        row["rtf_median"] = row["ms_median"] / 1e3 / seconds
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print_table(f"Training on {name}: batch {batch} mixtures of {setup.clip_samples} samples, "
                f"{args.rounds} rounds", "mixtures/s", train_rows, [train[0].name, train[1].name])
    print_table(f"Inference on {name}: one {seconds:.1f}-s clip with a text query", "clips/s", infer_rows, ["official"])
    for row in infer_rows:
        print(f"  {row['name']}: RTF {row['rtf_median']:.3f}")
    return {"device": name, "batch": batch, "train": train_rows, "inference": infer_rows}


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help="our CLIPSep training config (U-Net size, clip length); default: the paper's")
    parser.add_argument("--ours", action="append", default=None,
                        help="model_conf speed options of one of our contenders, e.g. "
                             "'train_precision=bf16,channels_last=true' (repeatable; default: fp32 and bf16+CL)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], help="our inference precisions")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=8, help="mixtures per training step on CPU")
    parser.add_argument("--gpu_batch_size", type=int, default=32, help="mixtures per training step on a GPU")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=3, help="frames per source CLIP encodes (official step)")
    parser.add_argument("--clip_arch", default="ViT-B-32", help="open_clip architecture of the CLIP towers")
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all",
                        help="'all': the CPU, then the GPU when one is present")
    parser.add_argument("--official_url", default=OFFICIAL_URL)
    parser.add_argument("--official_commit", default=OFFICIAL_COMMIT)
    parser.add_argument("--scratch_dir", type=Path, default=Path.home() / ".cache/espnet2_clip/official_clipsep")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> None:
    args = get_parser().parse_args(cmd)
    args.ours = args.ours or ["fp32", "train_precision=bf16,channels_last=true"]
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is visible")
    torch.set_num_threads(args.threads)
    official = import_official(fetch_official(args.official_url, args.official_commit, args.scratch_dir))
    print(f"official code: {args.official_url} @ {args.official_commit[:7]} in {args.scratch_dir}")
    results = []
    if args.device in ("cpu", "all"):
        results.append(benchmark_device(args, official, torch.device("cpu"), args.batch_size))
    if args.device == "cuda" or (args.device == "all" and torch.cuda.is_available()):
        results.append(benchmark_device(args, official, torch.device("cuda"), args.gpu_batch_size))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
