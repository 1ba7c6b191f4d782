#!/usr/bin/env python3
"""Write a recipe's RESULTS.md: configuration, the paper's Table 1 layout, details per test set,
training time, a figure.

    python -m espnet2_clip.bin.make_results --exp_dir exp --tags "clipsep clipsep_nit" \\
        --dump_dir dump --test_sets "test_mix:VGGSound-Clean+ test_music_plus:MUSIC+" \\
        --output RESULTS.md [--world_dir world] [--title CLIPSep] [--paper_results conf/paper_results.yaml]

Scores are read from ``exp/<tag>/decode_<query>/<test set>/scoring/result.json``. The first table
has the paper's Table 1 layout: one row per system (the mixture first), per test set the mean SDR
± standard error and the median, each with the paper's value beside it when ``--paper_results``
gives one. A table per test set follows with SDRi, SIR, SAR and the number of mixtures.
"""

import argparse
import json
import platform
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import yaml

from espnet2_clip.metrics.stats import fmt_value, format_results_table, mean_pm, mixture_row
from espnet2_clip.sep.backbone_config import describe_backbone
from espnet2_clip.utils.fileio import read_scp, write_text_atomic

DISPLAY_NAMES = {
    "clipsep": "CLIPSep",
    "clipsep_nit": "CLIPSep-NIT",
    "clipsep_text": "CLIPSep-Text",
    "bertsep": "BERTSep",
    "labelsep": "LabelSep",
    "pit": "PIT",
    "clipsep_dprnn": "CLIPSep (ESPnet DPRNN backbone)",
}
QUERY_NAMES = {
    "text": "text-queried", "image": "image-queried", "label": "label-queried",
    "none": "non-queried, oracle selection",
}
QUERY_ORDER = ("text", "image", "label", "none")
MIXTURE = "Mixture"


def display_name(tag: str) -> str:
    return DISPLAY_NAMES.get(tag, tag)


def training_seconds(log: Path) -> Optional[int]:
    """Elapsed seconds recorded by scripts/run_local.sh at the end of a training log."""
    if not log.is_file():
        return None
    found = re.findall(r"# accounting: time=(\d+)", log.read_text(errors="replace"))
    return int(found[-1]) if found else None


def row_name(tag: str, query: str) -> str:
    return f"{display_name(tag)} ({QUERY_NAMES[query]})"


def parse_test_sets(spec: str) -> List[Tuple[str, str]]:
    """``"test_mix:VGGSound-Clean+ test_music_plus:MUSIC+"`` -> ``[(dir, title), ...]`` (title
    defaults to the dir name)."""
    sets = []
    for entry in spec.split():
        name, _, title = entry.partition(":")
        if not name:
            raise ValueError(f"--test_sets: empty test set name in '{entry}' (expected DIR or DIR:TITLE)")
        sets.append((name, title or name))
    if not sets:
        raise ValueError("--test_sets: no test set given")
    return sets


def collect_rows(exp_dir: Path, tags: Sequence[str], test_set: str) -> List[Tuple[str, dict, str]]:
    """``(row name, result, tag)`` of every scored decode of ``test_set``, in tag then query order."""
    rows = []
    for tag in tags:
        for query in QUERY_ORDER:
            path = exp_dir / tag / f"decode_{query}" / test_set / "scoring" / "result.json"
            if path.is_file():
                rows.append((row_name(tag, query), json.loads(path.read_text()), tag))
    return rows


def parameter_counts(config: dict) -> str:
    """``"1.84 M (backbone 1.83 M)"``: trainable parameters of the model a config.yaml builds
    ("–" if it cannot be built, e.g. a partial config)."""
    try:
        from espnet2_clip.sep.build import build_clipsep_model

        model = build_clipsep_model(argparse.Namespace(**config))
    except Exception:  # a table cell; never lose the table over it
        return "–"

    def count(module) -> float:
        return sum(p.numel() for p in module.parameters() if p.requires_grad) / 1e6

    return f"{count(model):.2f} M (backbone {count(model.backbone):.2f} M)"


def config_summary(exp_dir: Path, tag: str) -> str:
    config = yaml.safe_load((exp_dir / tag / "config.yaml").read_text())
    steps = config.get("num_iters_per_epoch")
    steps = f"{steps} x {config.get('max_epoch')} epochs" if steps else f"{config.get('max_epoch')} epochs"
    return (
        f"| {display_name(tag)} | {config.get('head')} | {config.get('train_query')} | "
        f"{describe_backbone(config)} | {parameter_counts(config)} | "
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


@dataclass
class PaperResults:
    """The paper's numbers: ``cells[row name][test set title] = {"mean": "9.71 ± 1.21", "median": "8.73"}``."""

    source: str
    cells: Dict[str, Dict[str, Dict[str, str]]]

    def cell(self, row: str, test_set: str, stat: str) -> str:
        return self.cells.get(row, {}).get(test_set, {}).get(stat, "–")


def load_paper_results(path: Path) -> PaperResults:
    """Read the paper's numbers to print beside ours.

    The YAML file has ``source`` (where the numbers come from) and ``rows``: ``{row name as in our
    table: {test set title: {mean: "9.71 ± 1.21", median: "8.73"}}}`` ("–" or no entry: the paper
    has no such cell).
    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read the paper results {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("rows"), dict):
        raise ValueError(f"{path}: expected a mapping with 'source' and 'rows: {{row name: {{test set: "
                         "{mean: ..., median: ...}}}}'")
    cells: Dict[str, Dict[str, Dict[str, str]]] = {}
    for row, sets in data["rows"].items():
        if not isinstance(sets, dict):
            raise ValueError(f"{path}: row '{row}': expected {{test set: {{mean: ..., median: ...}}}}, got {sets!r}")
        cells[str(row)] = {}
        for test_set, stats in sets.items():
            if not isinstance(stats, dict) or set(stats) - {"mean", "median"}:
                raise ValueError(f"{path}: row '{row}', test set '{test_set}': expected {{mean: ..., median: ...}}, "
                                 f"got {stats!r}")
            cells[str(row)][str(test_set)] = {k: str(v) for k, v in stats.items()}
    return PaperResults(str(data.get("source", path)), cells)


def table1(test_sets: Sequence[Tuple[str, str]], results: Mapping[str, Mapping[str, dict]],
           row_order: Sequence[str], paper: Optional[PaperResults]) -> str:
    """The paper's Table 1 layout: per test set, mean SDR ± s.e. and median (paper value beside each).

    Args:
        test_sets: ``(dir, title)`` pairs, in column order.
        results: ``{test set dir: {row name: result.json dict}}`` (the mixture row included).
        row_order: Row names in table order.
        paper: The paper's numbers, or None.
    """
    header, align = ["System"], ["---"]
    for _, title in test_sets:
        for stat in ("mean SDR ± s.e.", "median SDR"):
            header.append(f"{title} {stat}")
            align.append("---:")
            if paper:
                header.append("paper")
                align.append("---:")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for row in row_order:
        cells = [row.replace("|", "\\|")]
        for name, title in test_sets:
            sdr = results.get(name, {}).get(row, {}).get("estimate", {}).get("SDR")
            for stat, ours in (("mean", mean_pm(sdr)), ("median", fmt_value((sdr or {}).get("median")))):
                cells.append(ours)
                if paper:
                    cells.append(paper.cell(row, title, stat))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def make_results(exp_dir: Path, tags: Sequence[str], dump_dir: Path, test_sets: Sequence[Tuple[str, str]],
                 output: Path, title: str, world_dir: Optional[Path] = None, notes: Sequence[str] = (),
                 model_file: str = "valid.loss.best.pth", paper_results: Optional[Path] = None) -> str:
    paper = load_paper_results(paper_results) if paper_results else None
    rows = {name: collect_rows(exp_dir, tags, name) for name, _ in test_sets}
    if not any(rows.values()):
        raise ValueError(f"no scored results under {exp_dir}/<tag>/decode_*/<test set>/scoring for tags "
                         f"{list(tags)} and test sets {[n for n, _ in test_sets]}")
    results = {name: dict([mixture_row(found[0][1])] if found else []) for name, found in rows.items()}
    for name, found in rows.items():
        results[name].update((row, result) for row, result, _ in found)
    row_order = [MIXTURE] + list(dict.fromkeys(row for found in rows.values() for row, _, _ in found))
    if paper:
        row_order += [row for row in paper.cells if row not in row_order]
    text = [f"# {title} results\n", "## Environment\n", environment()]
    if world_dir is not None and (world_dir / "world.json").is_file():
        world = json.loads((world_dir / "world.json").read_text())
        text.append(f"- world: `{world_dir}` (seed {world.get('seed')}, {len(world.get('classes', []))} classes, "
                    f"counts {json.dumps(world.get('counts', {}))})\n")
    text += [f"- {note}\n" for note in notes]
    text.append(
        "\n## SDR (the paper's Table 1 layout)\n\n"
        "SDR: BSS-eval v4 (museval `bss_eval`, whole clip, references [target, interference], estimates "
        "[estimate, mixture - estimate], target kept; estimate clipped to [-1, 1], references truncated to "
        "the length-free iSTFT of the estimate), mean ± standard error (ddof 1) and median, dB.\n\n"
    )
    text.append(table1(test_sets, results, row_order, paper))
    if paper:
        not_run = [row for row in paper.cells if not any(row in results[name] for name, _ in test_sets)]
        text.append(f"\npaper: {paper.source}" + (f" (not run here: {', '.join(not_run)})" if not_run else "")
                    + "\n")
    for name, set_title in test_sets:
        if not rows[name]:
            continue
        text.append(f"\n## {set_title}: SDR, SDRi, SIR, SAR\n\nTest mixtures: `{dump_dir / name}` "
                    f"({rows[name][0][1].get('count')} scored). SDRi = SDR(estimate) - SDR(mixture).\n\n")
        text.append(format_results_table(list(results[name].items())))
    text.append("\n## Models\n\n| model | head | training queries | backbone | parameters | batch (clips) | steps | lr "
                "| train time |\n|---|---|---|---|---:|---:|---|---:|---:|\n")
    scored_tags = [tag for tag in tags if any(tag == t for found in rows.values() for _, _, t in found)]
    for tag in scored_tags:
        seconds = training_seconds(exp_dir / tag / "train.log")
        text.append(config_summary(exp_dir, tag) + (f" {seconds / 60:.1f} min |\n" if seconds else " – |\n"))
    figure = output.parent / "images" / "example.png"
    first_set = next(name for name, _ in test_sets if rows[name])
    try:
        key = plot_example(exp_dir, rows[first_set][0][2], dump_dir / first_set, figure, model_file)
        text.append(f"\n## Example\n\n![{key}](images/example.png)\n")
    except Exception as exc:  # a figure is a nicety; never lose the table over it
        text.append(f"\n(figure not made: {type(exc).__name__}: {exc})\n")
    result = "".join(text)
    write_text_atomic(output, result)
    return result


def get_parser() -> argparse.ArgumentParser:
    """Argument parser of the CLI."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp_dir", required=True, type=Path)
    parser.add_argument("--tags", required=True, help="space-separated model tags (exp/<tag>)")
    parser.add_argument("--dump_dir", required=True, type=Path, help="holds the test set dirs")
    parser.add_argument("--test_sets", default="test_mix",
                        help="space-separated test set dirs of --dump_dir, each DIR or DIR:TITLE (column title)")
    parser.add_argument("--output", default=Path("RESULTS.md"), type=Path)
    parser.add_argument("--title", default="CLIPSep")
    parser.add_argument("--world_dir", default=None, type=Path)
    parser.add_argument("--note", action="append", default=[], help="extra configuration lines")
    parser.add_argument("--model_file", default="valid.loss.best.pth", help="checkpoint name for the figure")
    parser.add_argument("--paper_results", default=None, type=Path,
                        help="YAML of the paper's numbers, printed beside ours (see load_paper_results)")
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> int:
    parser = get_parser()
    args = parser.parse_args(cmd)
    try:
        text = make_results(args.exp_dir, args.tags.split(), args.dump_dir, parse_test_sets(args.test_sets),
                            args.output, args.title, args.world_dir, args.note, args.model_file, args.paper_results)
    except ValueError as exc:
        print(f"make_results: error: {exc}", file=sys.stderr)
        return 1
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
