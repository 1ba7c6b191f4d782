#!/usr/bin/env python3
"""Write a recipe's RESULTS.md: configuration, the paper-style table, training time, a figure.

    python -m espnet2_clip.bin.make_results --exp_dir exp --tags "clipsep clipsep_nit" \\
        --test_dir dump/test_mix --output RESULTS.md [--world_dir world] [--title CLIPSep]

Rows: the mixture, then every scored ``exp/<tag>/decode_<query>/scoring/result.json``.
"""

import argparse
import json
import platform
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml

from espnet2_clip.metrics.stats import format_results_table, mixture_row
from espnet2_clip.utils.fileio import read_scp, write_text_atomic

DISPLAY_NAMES = {
    "clipsep": "CLIPSep",
    "clipsep_nit": "CLIPSep-NIT",
    "clipsep_text": "CLIPSep-Text",
    "bertsep": "BERTSep",
    "labelsep": "LabelSep",
    "pit": "PIT",
}
QUERY_NAMES = {
    "text": "text-queried", "image": "image-queried", "label": "label-queried",
    "none": "non-queried, oracle selection",
}
QUERY_ORDER = ("text", "image", "label", "none")


def display_name(tag: str) -> str:
    return DISPLAY_NAMES.get(tag, tag)


def training_seconds(log: Path) -> Optional[int]:
    """Elapsed seconds recorded by scripts/run_local.sh at the end of a training log."""
    if not log.is_file():
        return None
    found = re.findall(r"# accounting: time=(\d+)", log.read_text(errors="replace"))
    return int(found[-1]) if found else None


def collect_rows(exp_dir: Path, tags: Sequence[str]) -> List[Tuple[str, dict, str]]:
    """``(row name, result, tag)`` of every scored decode dir, in tag then query order."""
    rows = []
    for tag in tags:
        for query in QUERY_ORDER:
            path = exp_dir / tag / f"decode_{query}" / "scoring" / "result.json"
            if path.is_file():
                rows.append((f"{display_name(tag)} ({QUERY_NAMES[query]})", json.loads(path.read_text()), tag))
    return rows


def config_summary(exp_dir: Path, tag: str) -> str:
    config = yaml.safe_load((exp_dir / tag / "config.yaml").read_text())
    unet = config.get("unet_conf", {})
    steps = config.get("num_iters_per_epoch")
    steps = f"{steps} x {config.get('max_epoch')} epochs" if steps else f"{config.get('max_epoch')} epochs"
    return (
        f"| {display_name(tag)} | {config.get('head')} | {config.get('train_query')} | "
        f"{unet.get('num_downs')} levels, {unet.get('base_channels')} ch, k={unet.get('out_channels')} | "
        f"{config.get('batch_size')} | {steps} | {config.get('optim_conf', {}).get('lr')} |"
    )


def environment() -> str:
    import torch

    try:
        import espnet

        espnet_version = espnet.__version__
    except Exception:  # pragma: no cover - espnet always installed with us
        espnet_version = "?"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return (
        f"- date: `{datetime.now().strftime('%Y-%m-%d %H:%M')}`\n"
        f"- python `{platform.python_version()}`, torch `{torch.__version__}`, espnet `{espnet_version}`\n"
        f"- espnet2_clip commit `{commit}`, CPU threads `{torch.get_num_threads()}`\n"
    )


def plot_example(exp_dir: Path, tag: str, test_dir: Path, out_png: Path, model_file: str) -> str:
    """Spectrograms of one mixture, its reference, the text-queried estimate, and the mask."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import soundfile as sf
    import torch

    from espnet2_clip.bin.clipsep_inference import TextQueriedSeparation

    sep = TextQueriedSeparation(exp_dir / tag / "config.yaml", exp_dir / tag / model_file)
    key = sorted(read_scp(test_dir / "wav.scp"))[0]
    mixture, fs = sf.read(read_scp(test_dir / "wav.scp")[key], dtype="float32")
    reference, _ = sf.read(read_scp(test_dir / "spk1.scp")[key], dtype="float32")
    query = read_scp(test_dir / "text")[key]
    clip = torch.from_numpy(mixture[: sep.clip_samples]).unsqueeze(0)
    estimate, masks = sep.model.separate(clip, sep.embed_query(query))
    frontend = sep.model.frontend
    panels = [
        ("mixture", frontend.stft(clip)[0].abs()),
        ("reference", frontend.stft(torch.from_numpy(reference[: sep.clip_samples]).unsqueeze(0))[0].abs()),
        (f"estimate ('{query}')", frontend.stft(estimate[:, 0])[0].abs()),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax, (title, mag) in zip(axes, panels):
        ax.imshow(20 * np.log10(mag.numpy() + 1e-6), origin="lower", aspect="auto", vmin=-80, vmax=20,
                  extent=[0, sep.clip_samples / fs, 0, fs / 2000])
        ax.set_title(title)
        ax.set_xlabel("time [s]")
    axes[0].set_ylabel("frequency [kHz]")
    axes[3].imshow(masks[0, 0].numpy(), origin="lower", aspect="auto", vmin=0, vmax=1)
    axes[3].set_title("mask (log-frequency rows)")
    fig.suptitle(f"{display_name(tag)}, text query '{query}', mixture {key}")
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=80)
    plt.close(fig)
    return key


def load_paper_results(path: Path) -> Tuple[str, Dict[str, str], str]:
    """Read the paper's numbers to print beside ours.

    The YAML file has ``column`` (the column title), ``source`` (where the numbers come from)
    and ``rows``: ``{row name as in our table: cell text}``, e.g.
    ``"CLIPSep-Text (text-queried)": "7.91"``.

    Returns:
        (column title, {row name: cell}, source)
    """
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read the paper results {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("rows"), dict):
        raise ValueError(f"{path}: expected a mapping with 'rows: {{row name: value}}' (and 'column', 'source')")
    rows = {str(name): str(value) for name, value in data["rows"].items()}
    return str(data.get("column", "Paper")), rows, str(data.get("source", path))


def make_results(exp_dir: Path, tags: Sequence[str], test_dir: Path, output: Path, title: str,
                 world_dir: Optional[Path] = None, notes: Sequence[str] = (),
                 model_file: str = "valid.loss.best.pth", paper_results: Optional[Path] = None) -> str:
    paper = load_paper_results(paper_results) if paper_results else None
    rows = collect_rows(exp_dir, tags)
    if not rows:
        raise ValueError(f"no scored results under {exp_dir}/<tag>/decode_*/scoring for tags {list(tags)}")
    table_rows = [mixture_row(rows[0][1])] + [(name, result) for name, result, _ in rows]
    text = [f"# {title} results\n", "## Environment\n", environment()]
    if world_dir is not None and (world_dir / "world.json").is_file():
        world = json.loads((world_dir / "world.json").read_text())
        text.append(f"- world: `{world_dir}` (seed {world.get('seed')}, {len(world.get('classes', []))} classes, "
                    f"counts {json.dumps(world.get('counts', {}))})\n")
    text += [f"- {note}\n" for note in notes]
    text.append(
        "\n## Test set: text-queried separation\n\n"
        f"Test mixtures: `{test_dir}` ({rows[0][1].get('count')} scored). SDR/SIR/SAR: BSS-eval v4 "
        "(museval `bss_eval`, whole clip, references [target, interference], estimates "
        "[estimate, mixture - estimate], target kept), mean ± standard error (ddof 1) and median, dB. "
        "SDRi = SDR(estimate) - SDR(mixture).\n\n"
    )
    text.append(format_results_table(table_rows, reference=paper[:2] if paper else None))
    if paper:
        unmatched = sorted(set(paper[1]) - {name for name, _ in table_rows})
        text.append(f"\n{paper[0]}: {paper[2]}" + (f" (not run here: {', '.join(unmatched)})" if unmatched else "")
                    + "\n")
    text.append("\n## Models\n\n| model | head | training queries | U-Net | batch (clips) | steps | lr | train time |\n"
                "|---|---|---|---|---:|---|---:|---:|\n")
    for tag in dict.fromkeys(tag for _, _, tag in rows):
        seconds = training_seconds(exp_dir / tag / "train.log")
        text.append(config_summary(exp_dir, tag) + (f" {seconds / 60:.1f} min |\n" if seconds else " – |\n"))
    figure = output.parent / "images" / "example.png"
    try:
        key = plot_example(exp_dir, rows[0][2], test_dir, figure, model_file)
        text.append(f"\n## Example\n\n![{key}](images/example.png)\n")
    except Exception as exc:  # a figure is a nicety; never lose the table over it
        text.append(f"\n(figure not made: {type(exc).__name__}: {exc})\n")
    result = "".join(text)
    write_text_atomic(output, result)
    return result


def main(cmd: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp_dir", required=True, type=Path)
    parser.add_argument("--tags", required=True, help="space-separated model tags (exp/<tag>)")
    parser.add_argument("--test_dir", required=True, type=Path)
    parser.add_argument("--output", default=Path("RESULTS.md"), type=Path)
    parser.add_argument("--title", default="CLIPSep")
    parser.add_argument("--world_dir", default=None, type=Path)
    parser.add_argument("--note", action="append", default=[], help="extra configuration lines")
    parser.add_argument("--model_file", default="valid.loss.best.pth", help="checkpoint name for the figure")
    parser.add_argument("--paper_results", default=None, type=Path,
                        help="YAML of the paper's numbers, printed as a last column (see load_paper_results)")
    args = parser.parse_args(cmd)
    print(make_results(args.exp_dir, args.tags.split(), args.test_dir, args.output, args.title,
                       args.world_dir, args.note, args.model_file, args.paper_results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
