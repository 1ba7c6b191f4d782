#!/usr/bin/env python3
"""Evaluate CLIPSonic generations and write the RESULTS.md of a recipe.

``score``: one directory of generated clips (``wav.scp`` from ``clipsonic_inference``)::

    python -m espnet2_clip.bin.clipsonic_eval score --gen_scp exp/iq/gen_zs_w3/wav.scp \\
        --gen_label dump/gen/text_label --classifier_dir exp/classifier \\
        --ref_scp dump/test_mix/spk1.scp --output_dir exp/iq/gen_zs_w3/scoring \\
        --meta system=clipsonic variant=ZS guidance_scale=3

* relevance: accuracy of the evaluation classifier on the clips (each clip's label is the class
  its query named; chance 1/K), with per-class accuracy and the confusion matrix;
* ``fd``: Fréchet distance between generated and reference (real) clips in the classifier's
  embedding space (fidelity proxy);
* optional, for real data, with LOCAL checkpoints: ``--fad_ckpt_dir`` (VGGish FAD via
  ``frechet-audio-distance``) and ``--clap_ckpt`` + ``--query_text`` (LAION-CLAP score).

``report``: collect every ``*/scoring/result.json`` under ``--exp_dir`` into RESULTS.md: a
table per variant at ``--main_guidance`` and a guidance-scale sweep table + PNG plot.
"""

import argparse
import json
import logging
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import soundfile as sf

from espnet2_clip.utils.fileio import read_scp, write_text_atomic


def read_waves(scp: str, keys: Optional[Sequence[str]] = None):
    """(keys, waves, sample_rate) of a wav.scp (mono; one sample rate)."""
    table = read_scp(scp)
    if not table:
        raise ValueError(f"{scp} lists no clips")
    keys = sorted(table) if keys is None else list(keys)
    waves, rate = [], None
    for k in keys:
        x, sr = sf.read(table[k], dtype="float32", always_2d=True)
        if rate is not None and sr != rate:
            raise ValueError(f"{scp}: mixed sample rates ({rate} and {sr} Hz)")
        rate = sr
        waves.append(x.mean(1))
    return keys, waves, rate


def score(args: argparse.Namespace) -> Dict:
    """Score one set of generated clips; write ``result.json`` in ``args.output_dir``."""
    from espnet2_clip.metrics.audio_classifier import load_classifier
    from espnet2_clip.metrics.generation import (
        ClassifierEmbedding,
        build_embedding_model,
        clap_score,
        classifier_relevance,
        frechet_audio_distance,
        frechet_distance,
    )

    labels = read_scp(args.gen_label)
    gen = read_scp(args.gen_scp)
    missing = sorted(set(gen) - set(labels))
    if missing:
        raise ValueError(f"{len(missing)} generated clips have no label in {args.gen_label}: {missing[:5]}")
    keys, waves, sr = read_waves(args.gen_scp)
    result: Dict = {"name": args.name or str(Path(args.gen_scp).parent), "count": len(keys),
                    "meta": dict(_parse_meta(args.meta))}
    if args.classifier_dir:
        clf = load_classifier(args.classifier_dir, args.device)
        embedder = ClassifierEmbedding(clf)
        unknown = sorted({labels[k] for k in keys} - set(clf.class_names))
        if unknown:
            raise ValueError(f"query classes unknown to the classifier: {unknown} (it knows {clf.class_names})")
        pred, gen_emb = clf.predict(_resampled(waves, sr, clf.sample_rate))
        target = [clf.class_names.index(labels[k]) for k in keys]
        rel = classifier_relevance(pred, target, len(clf.class_names))
        rel["per_class"] = {clf.class_names[i]: v for i, v in rel["per_class"].items()}
        rel["class_names"] = clf.class_names
        result["relevance"] = rel
        result["predicted"] = {k: clf.class_names[p] for k, p in zip(keys, pred)}
        if args.ref_scp:
            _, ref_waves, ref_sr = read_waves(args.ref_scp)
            ref_emb = embedder.embed_audio(ref_waves, ref_sr)
            result["fd"] = frechet_distance(ref_emb, gen_emb)
            result["num_reference"] = len(ref_waves)
    if args.fad_ckpt_dir:
        if not args.ref_scp:
            raise ValueError("--fad_ckpt_dir needs --ref_scp (the real reference clips)")
        _, ref_waves, ref_sr = read_waves(args.ref_scp)
        model = build_embedding_model("vggish", args.fad_ckpt_dir)
        result["fad_vggish"] = frechet_audio_distance(model, waves, _resampled(ref_waves, ref_sr, sr), sr)
    if args.clap_ckpt:
        if not args.query_text:
            raise ValueError("--clap_ckpt needs --query_text (the text each clip was generated for)")
        texts = read_scp(args.query_text)
        model = build_embedding_model("laion_clap", args.clap_ckpt, device=args.device)
        result["clap"] = clap_score(model, waves, [texts[k] for k in keys], sr)
        result["clap"]["checkpoint"] = str(args.clap_ckpt)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "result.json", json.dumps(result, indent=2))
    logging.info(summary_line(result))
    return result


def _resampled(waves, sr, target):
    from espnet2_clip.metrics.generation import _resample

    return _resample(waves, sr, target)


def _parse_meta(items: Optional[Sequence[str]]):
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--meta items are key=value, got {item!r}")
        key, value = item.split("=", 1)
        try:
            value = float(value) if key == "guidance_scale" else value
        except ValueError as e:
            raise ValueError(f"guidance_scale must be a number, got {value!r}") from e
        yield key, value


def summary_line(result: Dict) -> str:
    parts = [result["name"], f"n={result['count']}"]
    if "relevance" in result:
        parts.append(f"relevance {100 * result['relevance']['accuracy']:.1f} % "
                     f"(chance {100 * result['relevance']['chance']:.1f} %)")
    if "fd" in result:
        parts.append(f"FD {result['fd']:.2f}")
    if "fad_vggish" in result:
        parts.append(f"FAD {result['fad_vggish']:.3f}")
    if "clap" in result:
        parts.append(f"CLAP {result['clap']['mean']:.3f}")
    return "; ".join(parts)


# ------------------------------------------------------------------------------ report
VARIANT_ORDER = ["IQ", "ZS", "PD", "SD"]
REAL_AUDIO_ROW = "Real audio (held out)"


def variant_row_name(variant: str) -> str:
    """The row of a variant in RESULTS.md's variant table: ``CLIPSonic-IQ``, ..., ``SD (supervised reference)``."""
    return f"CLIPSonic-{variant}" if variant != "SD" else "SD (supervised reference)"


def collect(exp_dir: str) -> List[Dict]:
    """Every ``scoring/result.json`` under ``exp_dir`` with a variant and guidance scale."""
    out = []
    for path in sorted(Path(exp_dir).glob("**/scoring/result.json")):
        r = json.loads(path.read_text())
        meta = r.get("meta", {})
        if "variant" in meta and "guidance_scale" in meta:
            r["path"] = str(path)
            out.append(r)
    return out


def _row_key(r: Dict):
    v = r["meta"]["variant"]
    return (VARIANT_ORDER.index(v) if v in VARIANT_ORDER else len(VARIANT_ORDER), v, r["meta"].get("system", ""))


def _fmt(r: Optional[Dict], what: str) -> str:
    if r is None:
        return "–"
    if what == "rel":
        return f"{100 * r['relevance']['accuracy']:.1f}" if "relevance" in r else "–"
    return f"{r['fd']:.2f}" if "fd" in r else "–"


def make_report(results: List[Dict], main_guidance: float, title: str, notes: Sequence[str],
                real: Optional[Dict], plot: Optional[str]) -> str:
    """RESULTS.md text (and the sweep plot)."""
    if not results:
        raise ValueError("no scored generations found (run the evaluation stage first)")
    table = defaultdict(dict)  # (variant, system) -> w -> result
    for r in results:
        table[(r["meta"]["variant"], r["meta"].get("system", ""))][float(r["meta"]["guidance_scale"])] = r
    rows = sorted(table, key=lambda k: _row_key({"meta": {"variant": k[0], "system": k[1]}}))
    scales = sorted({w for per in table.values() for w in per})
    chance = next((r["relevance"]["chance"] for r in results if "relevance" in r), None)
    lines = [f"# {title}", ""]
    lines += [f"Relevance: accuracy (%) of the evaluation audio classifier on clips generated for each class's "
              f"query (chance {100 * chance:.1f} %)." if chance else "",
              "FD: Fréchet distance to real clips in the classifier's embedding space (lower is better).", ""]
    lines += [f"## Variants at guidance scale w = {main_guidance:g}", "",
              "| System | Query | Relevance (%) ↑ | FD ↓ | Clips |", "|---|---|---|---|---|"]
    query_kind = {"IQ": "image", "ZS": "text (direct)", "PD": "text → prior", "SD": "text (supervised)"}
    for key in rows:
        r = table[key].get(main_guidance)
        if r is None and table[key]:
            r = table[key][min(table[key], key=lambda w: abs(w - main_guidance))]
        name = variant_row_name(key[0])
        lines.append(f"| {name} | {query_kind.get(key[0], key[0])} | {_fmt(r, 'rel')} | {_fmt(r, 'fd')} | "
                     f"{r['count'] if r else '–'} |")
    if real is not None:
        lines.append(f"| {REAL_AUDIO_ROW} | – | {_fmt(real, 'rel')} | {_fmt(real, 'fd')} | {real['count']} |")
    lines += ["", "## Guidance-scale sweep (relevance % / FD)", "",
              "| Variant | " + " | ".join(f"w = {w:g}" for w in scales) + " |",
              "|---|" + "---|" * len(scales)]
    for key in rows:
        cells = [f"{_fmt(table[key].get(w), 'rel')} / {_fmt(table[key].get(w), 'fd')}" for w in scales]
        lines.append(f"| {key[0]} | " + " | ".join(cells) + " |")
    lines.append("")
    if plot:
        _plot(table, rows, scales, chance, plot)
        lines += [f"![guidance sweep]({plot})", ""]
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def _plot(table, rows, scales, chance, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key in rows:
        ws = [w for w in scales if w in table[key]]
        ax1.plot(ws, [100 * table[key][w]["relevance"]["accuracy"] if "relevance" in table[key][w] else np.nan
                      for w in ws], marker="o", label=key[0])
        ax2.plot(ws, [table[key][w].get("fd", np.nan) for w in ws], marker="o", label=key[0])
    if chance:
        ax1.axhline(100 * chance, color="grey", linestyle="--", label="chance")
    ax1.set_xlabel("guidance scale w")
    ax1.set_ylabel("relevance (%)")
    ax1.set_ylim(0, 105)
    ax2.set_xlabel("guidance scale w")
    ax2.set_ylabel("FD (classifier embedding)")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(args: argparse.Namespace) -> str:
    results = collect(args.exp_dir)
    real = json.loads(Path(args.real_result).read_text()) if args.real_result else None
    text = make_report(results, args.main_guidance, args.title, args.note or [], real, args.plot)
    write_text_atomic(args.output, text)
    return text


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log_level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("score", help="score one directory of generated clips")
    s.add_argument("--gen_scp", required=True, help="wav.scp of the generated clips")
    s.add_argument("--gen_label", required=True, help="'uttid class' of the class each clip was generated for")
    s.add_argument("--classifier_dir", default=None, help="Evaluation classifier (classifier_train)")
    s.add_argument("--ref_scp", default=None, help="wav.scp of real reference clips (FD / FAD)")
    s.add_argument("--fad_ckpt_dir", default=None, help="Local torch.hub dir with VGGish (FAD)")
    s.add_argument("--clap_ckpt", default=None, help="Local LAION-CLAP checkpoint (.pt) for the CLAP score")
    s.add_argument("--query_text", default=None, help="'uttid text' queries (CLAP score)")
    s.add_argument("--device", default="cpu", help="where the classifier and CLAP run (cpu, cuda)")
    s.add_argument("--output_dir", required=True)
    s.add_argument("--name", default=None)
    s.add_argument("--meta", nargs="*", default=[], help="key=value pairs stored in result.json "
                   "(system, variant, guidance_scale are used by 'report')")
    r = sub.add_parser("report", help="RESULTS.md from every */scoring/result.json under --exp_dir")
    r.add_argument("--exp_dir", required=True)
    r.add_argument("--output", default="RESULTS.md")
    r.add_argument("--plot", default=None, help="PNG of the guidance sweep (path relative to RESULTS.md)")
    r.add_argument("--main_guidance", type=float, default=3.0)
    r.add_argument("--title", default="CLIPSonic")
    r.add_argument("--real_result", default=None, help="result.json of real held-out clips (reference row)")
    r.add_argument("--note", action="append", default=[])
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> None:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level=args.log_level, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    if args.command == "score":
        from espnet2_clip.utils.cpu import flush_denormals

        flush_denormals()
        score(args)
    else:
        print(report(args))


if __name__ == "__main__":
    main(sys.argv[1:])
