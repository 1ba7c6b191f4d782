#!/usr/bin/env python3
"""Upload a packed model to the Hugging Face Hub with its model card (CLIPSep recipe stage 12).

    python -m espnet2_clip.bin.upload_hf --packed_model exp/clipsep_nit/packed_model.zip \\
        --hf_repo user/clipsep_nit_vggsound

Unzips the model (``espnet2.bin.pack`` layout: ``meta.yaml`` at the root, ``exp/...``) into
``--work_dir``, puts its model card at the root as ``README.md`` and pushes the folder with
``huggingface_hub.HfApi().upload_folder``. The card is the one the pack stage wrote and packed
(``exp/<tag>/README.md``, see ``espnet2_clip.bin.model_card``), its run lines pointed at
``--hf_repo``; a zip packed without one gets one written now by the same function
(``espnet2_clip.utils.model_card``) from ``--corpus``, ``--results`` and ``--world_dir``. Log in first
(``huggingface-cli login`` or ``HF_TOKEN``). ``--dry_run`` stops before any network access.
``TextQueriedSeparation.from_pretrained("user/name")`` (``TextToAudio`` for a CLIPSonic model) loads
the result back.
"""

import argparse
import logging
import re
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Optional, Sequence, Tuple

import yaml

from espnet2_clip.utils.fileio import write_text_atomic
from espnet2_clip.utils.model_card import CardInputs, make_card, parse_card, retarget


def unpack(zip_path: Path, work_dir: Path) -> None:
    """Extract ``zip_path`` into a fresh ``work_dir`` (refusing member paths outside it)."""
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


def card_text(work_dir: Path, config_rel: Optional[str], repo: str, tag: str, corpus: str, results: Optional[Path],
              world_dir: Optional[Path], title: str) -> Tuple[str, bool]:
    """(the card for the Hub, whether it came packed): the packed ``exp/<tag>/README.md`` pointed at
    ``repo``, else one written now from the packed config (for zips packed without a card)."""
    packed = work_dir / Path(config_rel).parent / "README.md" if config_rel else None
    if packed is not None and packed.is_file():
        return retarget(packed.read_text(encoding="utf-8"), repo, source=str(packed)), True
    config = yaml.safe_load((work_dir / config_rel).read_text()) if config_rel else {}
    inputs = CardInputs(config=config or {}, tag=tag, corpus=corpus, results=results, world_dir=world_dir,
                        model_ref=repo, title=title)
    return make_card(inputs), False


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
    p.add_argument("--work_dir", default=None, type=Path, help="unpack dir (default: next to the zip)")
    p.add_argument("--private", action="store_true")
    p.add_argument("--dry_run", action="store_true", help="write the folder and card, do not upload")
    g = p.add_argument_group("card of a zip packed without one (the packed card is used otherwise)")
    g.add_argument("--corpus", default="", help="corpus name for the card (vggsound, music, ...)")
    g.add_argument("--title", default="", help="title after the system name (default: the task)")
    g.add_argument("--results", default=None, type=Path, help="RESULTS.md of the recipe")
    g.add_argument("--world_dir", default=None, type=Path, help="recipe world dir (download reports)")
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
        card, packed = card_text(work_dir, config_rel, args.hf_repo, tag, args.corpus, args.results,
                                 args.world_dir, args.title)
    except (OSError, ValueError, zipfile.BadZipFile, yaml.YAMLError) as exc:  # CardError is a ValueError
        logging.error(f"{args.packed_model}: {exc}")
        return 1
    write_text_atomic(work_dir / "README.md", card)
    if not packed and args.results is not None and args.results.is_file():
        shutil.copy(args.results, work_dir / "RESULTS.md")
    facts = parse_card(card).facts
    logging.info(f"model folder with {'the packed' if packed else 'a new'} card: {work_dir}")
    if args.dry_run:
        return 0
    try:
        url = upload(work_dir, args.hf_repo, args.private,
                     f"Upload {facts.get('system', tag)} ({facts.get('corpus', args.corpus)})")
    except Exception as exc:  # network / auth errors from huggingface_hub
        logging.error(f"upload to {args.hf_repo} failed: {type(exc).__name__}: {exc}")
        return 1
    logging.info(f"uploaded {work_dir} to https://huggingface.co/{args.hf_repo} ({url})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
