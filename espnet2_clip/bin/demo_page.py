#!/usr/bin/env python3
"""A recipe's demo page from its decodes, without running a model again (the templates' last stage).

Separation (``egs2/TEMPLATE/clipsep1/clipsep.sh``)::

    python -m espnet2_clip.bin.demo_page separation --exp_dir exp --dump_dir dump \\
        --tags "clipsep clipsep_nit" --test_sets "test_mix:VGGSound-Clean+" --num_examples 4 --output_dir exp/demo

reads, per test set, the mixtures, queries and references of ``dump/<test set>/{wav.scp,text,spk1.scp}``
(and the image queries of ``query_image.scp``) and every model's estimates of
``exp/<tag>/decode_<query>/<test set>/spk*.scp`` (with the SDR of ``scoring/SDR_spk1``).

Generation (``egs2/TEMPLATE/clipsonic1/clipsonic.sh``)::

    python -m espnet2_clip.bin.demo_page generation --exp_dir exp --gen_dir dump/gen \\
        --tags clipsonic_iq --guidance 3 --num_examples 4 --output_dir exp/demo

reads the prompts of ``dump/gen/text/text`` (and the image queries of ``dump/gen/image``) and the clips
of every variant of ``exp/<tag>/gen_<variant>_w<w>/wav.scp``: one example per class, one row per
variant. Examples are spread evenly over the sorted ids. The site is written as
:func:`espnet2_clip.utils.demo_page.write_site` writes it (atomically; a rerun replaces it).
"""

import argparse
import logging
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, TypeVar

from espnet2_clip.bin.make_results import QUERY_ORDER, display_name, parse_test_sets, row_name
from espnet2_clip.utils.audio_io import one_line
from espnet2_clip.utils.demo_page import (DemoClip, DemoExample, DemoImage, DemoPage, DemoRow, DemoSection,
                                          check_site_dir, write_site)
from espnet2_clip.utils.fileio import read_scp, split_paths

T = TypeVar("T")
PROG = "demo_page"
logger = logging.getLogger(__name__)


def spread(items: Sequence[T], num: int) -> List[T]:
    """``num`` items evenly spread over ``items`` (all of them if fewer), in order."""
    if num >= len(items):
        return list(items)
    return [items[i * len(items) // num] for i in range(num)]


def _optional_scp(path: Path) -> Dict[str, str]:
    return read_scp(path) if path.is_file() else {}


def _sdr_label(sdrs: Dict[str, str], uttid: str) -> str:
    value = sdrs.get(uttid)
    return f" (SDR {float(value):.1f} dB)" if value is not None else ""


def _image_query(value: Optional[str]) -> List[DemoImage]:
    """The middle frame of an image query (the value lists one or several frames)."""
    if not value:
        return []
    frames = split_paths(value)
    return [DemoImage("image query", frames[len(frames) // 2])]


def separation_page(exp_dir: Path, dump_dir: Path, tags: Sequence[str], test_sets: str, num_examples: int,
                    title: str = "CLIPSep") -> DemoPage:
    """Per test set, ``num_examples`` mixtures with their query, reference and every decode's estimates."""
    sections = []
    for tset, set_title in parse_test_sets(test_sets):
        decodes = [(tag, kind, exp_dir / tag / f"decode_{kind}" / tset) for tag in tags for kind in QUERY_ORDER
                   if (exp_dir / tag / f"decode_{kind}" / tset / "spk1.scp").is_file()]
        if not decodes:
            logger.warning(f"{tset}: no decodes (exp/<tag>/decode_<query>/{tset}/spk1.scp) of {' '.join(tags)}; "
                           "left out of the demo page")
            continue
        test = dump_dir / tset
        mixtures = read_scp(test / "wav.scp")
        texts, refs = _optional_scp(test / "text"), _optional_scp(test / "spk1.scp")
        images = _optional_scp(test / "query_image.scp")
        estimates = {d: [read_scp(p) for p in sorted(d.glob("spk*.scp"))] for _, _, d in decodes}
        sdrs = {d: _optional_scp(d / "scoring" / "SDR_spk1") for _, _, d in decodes}
        selections = {d: _optional_scp(d / "scoring" / "selected") for _, _, d in decodes}
        examples = []
        for uttid in spread(sorted(mixtures), num_examples):
            clips = [DemoClip("mixture", mixtures[uttid])]
            if uttid in refs:
                clips.append(DemoClip("reference", refs[uttid]))
            rows = []
            for tag, kind, decode in decodes:
                scps = [scp for scp in estimates[decode] if uttid in scp]
                if not scps:
                    continue
                sdr = _sdr_label(sdrs[decode], uttid)
                if kind == "none":  # every output; the one oracle selection scored carries the SDR
                    selected = selections[decode].get(uttid, "spk1")
                    row_clips = [DemoClip(f"output {i + 1}{sdr if selected == f'spk{i + 1}' else ''}", scp[uttid])
                                 for i, scp in enumerate(scps)]
                else:
                    row_clips = [DemoClip(f"estimate{sdr}", scps[0][uttid])]
                rows.append(DemoRow(row_name(tag, kind), row_clips,
                                    _image_query(images.get(uttid)) if kind == "image" else []))
            examples.append(DemoExample(uttid, query=texts.get(uttid), clips=clips, rows=rows))
        sections.append(DemoSection(f"Test set: {set_title}", examples,
                                    f"{len(examples)} of the {len(mixtures)} mixtures of {test}"))
    if not sections:
        raise ValueError(f"--exp_dir '{exp_dir}': no decodes of --test_sets '{test_sets}' for --tags "
                         f"'{' '.join(tags)}' (exp/<tag>/decode_<query>/<test set>/spk1.scp); run the separation "
                         "stage first")
    notes = [f"estimates: {', '.join(display_name(t) for t in tags)}; SDR: BSS-eval v4 of the estimate "
             "against the reference", f"mixtures and references: {dump_dir}"]
    return DemoPage(f"{title}: demo", sections, notes)


_GEN_DIR = re.compile(r"gen_([a-z]+)_w(.+)")


def _labels_of(path: Path, label: str, limit: int) -> List[str]:
    """The first ``limit`` ids (sorted) whose label in ``path`` is ``label``."""
    return [k for k, v in sorted(_optional_scp(path).items()) if v == label][:limit]


def generation_page(exp_dir: Path, gen_dir: Path, tags: Sequence[str], num_examples: int,
                    guidance: Optional[float] = None, clips_per_prompt: int = 2,
                    title: str = "CLIPSonic") -> DemoPage:
    """Per class (``num_examples`` of ``gen_dir/classes``), one row per model variant and guidance scale."""
    classes = sorted(set(read_scp(gen_dir / "text" / "text").values()))
    runs = []  # (tag, VARIANT, w, dir)
    for tag in tags:
        for path in sorted((exp_dir / tag).glob("gen_*_w*")):
            match = _GEN_DIR.fullmatch(path.name)
            if match is None or not (path / "wav.scp").is_file():
                continue
            try:
                w = float(match.group(2))
            except ValueError:
                continue
            if guidance is None or abs(w - guidance) < 1e-9:
                runs.append((tag, match.group(1).upper(), w, path))
    if not runs:
        raise ValueError(f"--exp_dir '{exp_dir}': no generations of --tags '{' '.join(tags)}'"
                         f"{'' if guidance is None else f' at --guidance {guidance:g}'} (exp/<tag>/gen_<variant>_w<w>/"
                         "wav.scp); run the generation stage first")
    image_queries = _optional_scp(gen_dir / "image" / "query_image.scp")
    examples = []
    for label in spread(classes, num_examples):
        rows = []
        for tag, variant, w, path in runs:
            clips_scp = read_scp(path / "wav.scp")
            label_file = gen_dir / ("image" if variant == "IQ" else "text") / "label"
            ids = [i for i in _labels_of(label_file, label, clips_per_prompt) if i in clips_scp]
            if not ids:
                continue
            images = [img for i in ids for img in _image_query(image_queries.get(i))] if variant == "IQ" else []
            rows.append(DemoRow(f"{variant} ({display_name(tag)}, w = {w:g})",
                                [DemoClip(f"{'image query' if variant == 'IQ' else 'clip'} {i}", clips_scp[i])
                                 for i in ids], images))
        examples.append(DemoExample(label, query=label, rows=rows))
    notes = ["IQ: image-queried (the test set's images); ZS: text fed to the image-trained model directly; "
             "PD: text through the diffusion prior; SD: trained on text", f"prompts: {gen_dir / 'text' / 'text'}"]
    return DemoPage(f"{title}: demo", [DemoSection("Text-to-audio", examples,
                                                    f"{len(examples)} of {len(classes)} prompts")], notes)


def get_parser() -> argparse.ArgumentParser:
    """Argument parser of the recipe demo-page CLI."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="task", required=True)
    for name, help_text in (("separation", "CLIPSep decodes"), ("generation", "CLIPSonic generations")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--exp_dir", required=True, type=Path)
        p.add_argument("--tags", required=True, help="Models (exp/<tag>), space-separated")
        p.add_argument("--output_dir", required=True, type=Path, help="Site directory (replaced if it is a site)")
        p.add_argument("--num_examples", type=int, default=4, help="Examples per test set / prompts")
        p.add_argument("--title", default=None)
        p.add_argument("--max_seconds", type=float, default=None, help="Cut every clip to its first seconds")
        if name == "separation":
            p.add_argument("--dump_dir", required=True, type=Path)
            p.add_argument("--test_sets", required=True, help="'DIR[:TITLE] ...' as the recipe's --test_sets")
        else:
            p.add_argument("--gen_dir", required=True, type=Path, help="The generation queries (dump/gen)")
            p.add_argument("--guidance", type=float, default=None, help="Only this guidance scale (default: all)")
            p.add_argument("--clips_per_prompt", type=int, default=2)
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> int:
    """Entry point: 0, or 1 with one ``demo_page: error: ...`` line."""
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    tags = args.tags.split()
    try:
        if args.num_examples < 1:
            raise ValueError(f"--num_examples: expected at least 1, got {args.num_examples}")
        if not tags:
            raise ValueError("--tags: no model given")
        check_site_dir(args.output_dir, "--output_dir")
        if args.task == "separation":
            page = separation_page(args.exp_dir, args.dump_dir, tags, args.test_sets, args.num_examples,
                                   args.title or "CLIPSep")
        else:
            if args.clips_per_prompt < 1:
                raise ValueError(f"--clips_per_prompt: expected at least 1, got {args.clips_per_prompt}")
            page = generation_page(args.exp_dir, args.gen_dir, tags, args.num_examples, args.guidance,
                                   args.clips_per_prompt, args.title or "CLIPSonic")
        index = write_site(page, args.output_dir, args.max_seconds, "--output_dir")
    except (ValueError, OSError) as exc:
        print(f"{PROG}: error: {one_line(exc, 500)}", file=sys.stderr)
        return 1
    logger.info(f"wrote {index} ({page.num_examples} examples)")
    print(index)
    return 0


if __name__ == "__main__":
    sys.exit(main())
