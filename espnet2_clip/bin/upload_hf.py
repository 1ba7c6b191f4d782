#!/usr/bin/env python3
"""Upload a packed CLIPSep model to the Hugging Face Hub with a model card (recipe stage 12).

    python -m espnet2_clip.bin.upload_hf --packed_model exp/clipsep_nit/packed_model.zip \\
        --hf_repo user/clipsep_nit_vggsound --results RESULTS.md --world_dir world --corpus VGGSound

Unzips the model (``espnet2.bin.pack`` layout: ``meta.yaml`` at the root, ``exp/...``) into
``--work_dir``, writes a ``README.md`` model card there (data, number of missing YouTube ids from
every ``WORLD/download/*/download_report.json``, the scores table of RESULTS.md, how to load it)
and pushes the folder with ``huggingface_hub.HfApi().upload_folder``. Log in first
(``huggingface-cli login`` or ``HF_TOKEN``). ``--dry_run`` stops before any network access.
``TextQueriedSeparation.from_pretrained("user/name")`` loads the result back.
"""

import argparse
import json
import logging
import re
import shutil
import sys
import zipfile
from pathlib import Path
from typing import List, Optional, Sequence

import yaml

from espnet2_clip.sep.backbone_config import describe_backbone
from espnet2_clip.utils.fileio import write_text_atomic

DISPLAY = {
    "clipsep": "CLIPSep", "clipsep_nit": "CLIPSep-NIT", "clipsep_text": "CLIPSep-Text",
    "bertsep": "BERTSep", "labelsep": "LabelSep", "pit": "PIT",
}


def unpack(zip_path: Path, work_dir: Path) -> None:
    if work_dir.exists():
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as z:
        for name in z.namelist():
            if name.startswith("/") or ".." in Path(name).parts:
                raise ValueError(f"{zip_path}: unsafe member path {name!r}")
        z.extractall(work_dir)
    if not (work_dir / "meta.yaml").is_file():
        raise ValueError(f"{zip_path}: no meta.yaml (not made by espnet2.bin.pack?)")


def results_table(results: Optional[Path]) -> str:
    """The scores table of RESULTS.md (from its '| System' header to the next blank line)."""
    if results is None or not results.is_file():
        return "_No RESULTS.md was given._\n"
    lines = results.read_text(encoding="utf-8").splitlines()
    out: List[str] = []
    for line in lines:
        if not out and line.startswith("| System"):
            out.append(line)
        elif out:
            if not line.strip():
                break
            out.append(line)
    return ("\n".join(out) + "\n") if out else "_RESULTS.md has no scores table._\n"


def results_notes(results: Optional[Path]) -> List[str]:
    """The '- ...' configuration lines of RESULTS.md (CLIP, prompts, downloads...)."""
    if results is None or not results.is_file():
        return []
    return [line for line in results.read_text(encoding="utf-8").splitlines()
            if re.match(r"^- (downloads|test mixtures|text prompt|query encoder)", line)]


def download_lines(world_dir: Optional[Path]) -> List[str]:
    """One line per downloaded set: ``test: obtained 41/46 videos (5 missing: ...)``."""
    if world_dir is None:
        return []
    from espnet2_clip.data.download import missing_report_line

    lines = []
    for report in sorted((world_dir / "download").glob("*/download_report.json")):
        try:
            data = json.loads(report.read_text(encoding="utf-8"))
            lines.append(f"{report.parent.name}: {missing_report_line(report)}; "
                         f"{int(data.get('missing', 0))} missing ids listed in `{report.parent / 'missing'}`")
        except (ValueError, KeyError, OSError) as exc:
            lines.append(f"{report.parent.name}: unreadable report {report} ({exc})")
    return lines


def model_card(repo: str, tag: str, corpus: str, config: dict, results: Optional[Path],
               world_dir: Optional[Path], title: str) -> str:
    name = DISPLAY.get(tag, tag)
    downloads = download_lines(world_dir)
    data = [
        f"- corpus: **{corpus}**, YouTube videos listed by the official CLIPSep lists (github.com/sony/CLIPSep), "
        "downloaded with yt-dlp; 16 kHz mono audio, 1 fps frames (224 px centre crop).",
        f"- training queries: `{config.get('train_query')}`; query encoder: `{config.get('query_encoder')}` "
        f"`{config.get('query_encoder_conf')}`.",
    ]
    if downloads:
        data.append("- videos obtained / missing (dead, private or blocked YouTube ids are counted, not replaced):")
        data += [f"  - {line}" for line in downloads]
    else:
        data.append("- download report: not available")
    front = [
        "---",
        "tags:", "- espnet", "- audio", "- audio-to-audio", "- sound-separation", "- text-queried-separation",
        "- clipsep",
        "library_name: espnet",
        "license: cc-by-4.0",
        "---",
        "",
        f"# {name} ({corpus}): {title}",
        "",
        f"`{repo}`: a {name} model trained with the espnet2_clip recipe `egs2/{corpus.lower()}/clipsep1` "
        "(re-implementation of *CLIPSep: Learning Text-queried Sound Separation with Noisy Unlabeled "
        "Videos*, Dong et al., ICLR 2023).",
        "",
        "## Data",
        "",
        *data,
        "",
        "## Model",
        "",
        f"- head `{config.get('head')}`, query `{config.get('query')}` {config.get('query_conf')}",
        f"- backbone: {describe_backbone(config)}",
        f"- batch {config.get('batch_size')} clips, {config.get('num_iters_per_epoch')} x {config.get('max_epoch')} "
        f"steps, {config.get('optim')} {config.get('optim_conf')}, scheduler {config.get('scheduler')}",
        "",
        "## Scores",
        "",
        "BSS-eval v4 SDR/SIR/SAR (dB), mean ± standard error and median, on the test mixtures of the recipe "
        "(only the test clips that could still be downloaded; see Data).",
        "",
        results_table(results),
        *results_notes(results),
        "",
        "## Use",
        "",
        "```python",
        "from espnet2_clip.bin.clipsep_inference import TextQueriedSeparation",
        "",
        f'sep = TextQueriedSeparation.from_pretrained("{repo}")',
        'estimate = sep(mixture, fs, "a dog barking")  # mono numpy array at fs',
        "```",
        "",
        "## Citation",
        "",
        "```bibtex",
        "@inproceedings{dong2023clipsep,",
        "  title={CLIPSep: Learning Text-queried Sound Separation with Noisy Unlabeled Videos},",
        "  author={Dong, Hao-Wen and Takahashi, Naoya and Mitsufuji, Yuki and McAuley, Julian and "
        "Berg-Kirkpatrick, Taylor},",
        "  booktitle={ICLR}, year={2023}}",
        "```",
        "",
    ]
    return "\n".join(front)


def upload(folder: Path, repo: str, private: bool, message: str) -> str:
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id=repo, repo_type="model", private=private, exist_ok=True)
    info = api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="model", commit_message=message)
    return str(getattr(info, "commit_url", info))


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--packed_model", required=True, type=Path, help="zip made by espnet2.bin.pack")
    p.add_argument("--hf_repo", required=True, help="user/name on the Hub")
    p.add_argument("--tag", default=None, help="model tag (default: the packed model's directory name)")
    p.add_argument("--corpus", default="VGGSound", help="corpus name for the card")
    p.add_argument("--title", default="text-queried sound separation")
    p.add_argument("--results", default=None, type=Path, help="RESULTS.md of the recipe")
    p.add_argument("--world_dir", default=None, type=Path, help="recipe world dir (download reports)")
    p.add_argument("--work_dir", default=None, type=Path, help="unpack dir (default: next to the zip)")
    p.add_argument("--private", action="store_true")
    p.add_argument("--dry_run", action="store_true", help="write the folder and card, do not upload")
    return p


def main(cmd: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level="INFO", format="%(levelname)s: %(message)s")
    if not re.match(r"^[\w.-]+/[\w.-]+$", args.hf_repo):
        logging.error(f"--hf_repo must be 'user/name', got {args.hf_repo!r}")
        return 1
    tag = args.tag or args.packed_model.resolve().parent.name
    work_dir = args.work_dir or args.packed_model.parent / "hf_upload"
    try:
        unpack(args.packed_model, work_dir)
        meta = yaml.safe_load((work_dir / "meta.yaml").read_text())
        config_rel = (meta.get("yaml_files") or {}).get("train_config")
        config = yaml.safe_load((work_dir / config_rel).read_text()) if config_rel else {}
    except (OSError, ValueError, zipfile.BadZipFile, yaml.YAMLError) as exc:
        logging.error(f"{args.packed_model}: {exc}")
        return 1
    card = model_card(args.hf_repo, tag, args.corpus, config or {}, args.results, args.world_dir, args.title)
    write_text_atomic(work_dir / "README.md", card)
    if args.results is not None and args.results.is_file():
        shutil.copy(args.results, work_dir / "RESULTS.md")
    logging.info(f"model folder with card: {work_dir}")
    if args.dry_run:
        return 0
    try:
        url = upload(work_dir, args.hf_repo, args.private, f"Upload {DISPLAY.get(tag, tag)} ({args.corpus})")
    except Exception as exc:  # network / auth errors from huggingface_hub
        logging.error(f"upload to {args.hf_repo} failed: {type(exc).__name__}: {exc}")
        return 1
    logging.info(f"uploaded {work_dir} to https://huggingface.co/{args.hf_repo} ({url})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
