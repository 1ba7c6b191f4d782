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
* optional, for real data: ``--fad_model`` (FAD with VGGish embeddings: ``vggish`` downloads the
  published weights through torch.hub's cache, a local ``.pth`` works offline) and ``--clap_model``
  + ``--query_text`` (CLAP score: a Hugging Face id such as ``laion/clap-htsat-unfused``, a local
  ``save_pretrained`` directory, or a LAION-CLAP ``.pt`` with the optional ``laion-clap`` package).

``report``: collect every ``*/scoring/result.json`` under ``--exp_dir`` into RESULTS.md: a
table per variant at ``--main_guidance`` and a guidance-scale sweep table + PNG plot.
"""

import argparse
import hashlib
import json
import logging
import sys
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import soundfile as sf

from espnet2_clip.utils.fileio import atomic_path, read_scp, write_text_atomic


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


def fingerprint(paths: Sequence[Union[str, Path]]) -> str:
    """sha1 of the files' paths, sizes and modification times (a directory: the files directly in it)."""
    digest = hashlib.sha1()
    for path in map(Path, paths):
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        for f in files:
            st = f.stat()
            digest.update(f"{f.resolve()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


#: reference clips read and embedded at a time (memory stays bounded on a 15k-clip test set)
REFERENCE_CHUNK = 256


class ReferenceEmbeddings:
    """The reference clips of ``--ref_scp`` embedded by each model that needs them, read and embedded
    ``REFERENCE_CHUNK`` clips at a time and, with a cache directory, embedded once for every scoring
    against the same reference list (a recipe scores each variant x guidance scale against one test set)."""

    def __init__(self, ref_scp: str, cache_dir: Optional[str] = None):
        self.ref_scp = ref_scp
        self.cache_dir = Path(cache_dir) if cache_dir else None

    def _embed(self, embed: Callable[[List[np.ndarray], int], np.ndarray]) -> np.ndarray:
        keys = sorted(read_scp(self.ref_scp))
        parts, rate = [], None
        for start in range(0, len(keys), REFERENCE_CHUNK):
            _, waves, sr = read_waves(self.ref_scp, keys[start:start + REFERENCE_CHUNK])
            if rate is not None and sr != rate:
                raise ValueError(f"{self.ref_scp}: mixed sample rates ({rate} and {sr} Hz)")
            rate = sr
            parts.append(np.asarray(embed(waves, sr)))
        return np.concatenate(parts)

    def embeddings(self, name: str, model_files: Sequence[Union[str, Path]],
                   embed: Callable[[List[np.ndarray], int], np.ndarray]) -> np.ndarray:
        """``embed(waves, sample_rate)`` of the references, from the cache when the model (``name`` +
        its files) and the reference list (the scp and its files) are unchanged."""
        if self.cache_dir is None:
            return self._embed(embed)
        refs = [self.ref_scp] + list(read_scp(self.ref_scp).values())
        key = hashlib.sha1(f"{name}\n{fingerprint(model_files)}\n{fingerprint(refs)}".encode()).hexdigest()[:16]
        path = self.cache_dir / f"{name}_{key}.npy"
        if path.is_file():
            logging.info(f"reference embeddings ({name}) from {path}")
            return np.load(path)
        emb = self._embed(embed)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, emb)
        return emb


def score(args: argparse.Namespace) -> Dict:
    """Score one set of generated clips; write ``result.json`` in ``args.output_dir``."""
    from espnet2_clip.metrics.audio_classifier import load_classifier
    from espnet2_clip.metrics.generation import (
        ClassifierEmbedding,
        clap_score,
        classifier_relevance,
        frechet_distance,
        load_clap,
        load_vggish_embedding,
    )

    labels = read_scp(args.gen_label)
    gen = read_scp(args.gen_scp)
    missing = sorted(set(gen) - set(labels))
    if missing:
        raise ValueError(f"{len(missing)} generated clips have no label in {args.gen_label}: {missing[:5]}")
    keys, waves, sr = read_waves(args.gen_scp)
    refs = ReferenceEmbeddings(args.ref_scp, args.ref_cache_dir) if args.ref_scp else None
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
        if refs:
            ref_emb = refs.embeddings("classifier", [args.classifier_dir], embedder.embed_audio)
            result["fd"] = frechet_distance(ref_emb, gen_emb)
            result["num_reference"] = len(read_scp(args.ref_scp))
    if args.fad_model:
        if not refs:
            raise ValueError("--fad_model needs --ref_scp (the real reference clips)")
        model = load_vggish_embedding(args.fad_model, device=args.device)
        ref_emb = refs.embeddings("vggish", [args.fad_model] if Path(args.fad_model).exists() else [],
                                  lambda ref, ref_sr: model.embed_audio(_resampled(ref, ref_sr, sr), sr))
        result["fad_vggish"] = frechet_distance(ref_emb, model.embed_audio(waves, sr))
        result["fad_model"] = str(args.fad_model)
    if args.clap_model:
        if not args.query_text:
            raise ValueError("--clap_model needs --query_text (the text each clip was generated for)")
        texts = read_scp(args.query_text)
        missing = [k for k in keys if k not in texts]
        if missing:
            raise ValueError(f"{len(missing)} generated clips have no text in {args.query_text}: {missing[:5]}")
        model = load_clap(args.clap_model, device=args.device)
        result["clap"] = clap_score(model, waves, [texts[k] for k in keys], sr)
        result["clap"]["model"] = str(args.clap_model)
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
    if what == "fad":
        return f"{r['fad_vggish']:.2f}" if "fad_vggish" in r else "–"
    if what == "clap":
        return f"{r['clap']['mean']:.3f}" if "clap" in r else "–"
    return f"{r['fd']:.2f}" if "fd" in r else "–"


def _models(results: Sequence[Dict], key: str) -> List[str]:
    """The FAD / CLAP models named in ``results`` (``fad_model`` / ``clap.model``), in order of appearance."""
    names = [r.get("fad_model") if key == "fad" else r.get("clap", {}).get("model") for r in results]
    return list(dict.fromkeys(n for n in names if n))


def make_report(results: List[Dict], main_guidance: float, title: str, notes: Sequence[str],
                real: Optional[Dict], plot: Optional[str]) -> str:
    """RESULTS.md text (and the sweep plot); FAD / CLAP columns and sweep tables when any result has them."""
    if not results:
        raise ValueError("no scored generations found (run the evaluation stage first)")
    table = defaultdict(dict)  # (variant, system) -> w -> result
    for r in results:
        table[(r["meta"]["variant"], r["meta"].get("system", ""))][float(r["meta"]["guidance_scale"])] = r
    rows = sorted(table, key=lambda k: _row_key({"meta": {"variant": k[0], "system": k[1]}}))
    scales = sorted({w for per in table.values() for w in per})
    chance = next((r["relevance"]["chance"] for r in results if "relevance" in r), None)
    everything = results + ([real] if real is not None else [])
    extra = [m for m, key in (("fad", "fad_vggish"), ("clap", "clap")) if any(key in r for r in everything)]
    lines = [f"# {title}", ""]
    lines += [f"Relevance: accuracy (%) of the evaluation audio classifier on clips generated for each class's "
              f"query (chance {100 * chance:.1f} %)." if chance else "",
              "FD: Fréchet distance to real clips in the classifier's embedding space (lower is better)."]
    if "fad" in extra:
        lines.append(f"FAD: Fréchet audio distance to the real clips with VGGish embeddings (one per 0.96 s, no PCA, "
                     f"no final ReLU; lower is better; model: {', '.join(_models(everything, 'fad'))}).")
    if "clap" in extra:
        lines.append(f"CLAP: mean cosine similarity of the CLAP audio embedding of each clip and the text embedding "
                     f"of its query (higher is better; model: {', '.join(_models(everything, 'clap'))}); "
                     f"CLIPSonic-IQ and real audio against their label text.")
    lines.append("")
    heads = {"fad": "FAD ↓", "clap": "CLAP ↑"}
    lines += [f"## Variants at guidance scale w = {main_guidance:g}", "",
              "| System | Query | Relevance (%) ↑ | FD ↓ | " + "".join(f"{heads[m]} | " for m in extra) + "Clips |",
              "|---|---|---|---|" + "---|" * len(extra) + "---|"]
    query_kind = {"IQ": "image", "ZS": "text (direct)", "PD": "text → prior", "SD": "text (supervised)"}

    def cells(r):
        return f"{_fmt(r, 'rel')} | {_fmt(r, 'fd')} | " + "".join(f"{_fmt(r, m)} | " for m in extra)

    for key in rows:
        r = table[key].get(main_guidance)
        if r is None and table[key]:
            r = table[key][min(table[key], key=lambda w: abs(w - main_guidance))]
        name = variant_row_name(key[0])
        lines.append(f"| {name} | {query_kind.get(key[0], key[0])} | {cells(r)}{r['count'] if r else '–'} |")
    if real is not None:
        lines.append(f"| {REAL_AUDIO_ROW} | – | {cells(real)}{real['count']} |")
    sweep_head = ["| Variant | " + " | ".join(f"w = {w:g}" for w in scales) + " |", "|---|" + "---|" * len(scales)]
    lines += ["", "## Guidance-scale sweep (relevance % / FD)", ""] + sweep_head
    for key in rows:
        sweep = [f"{_fmt(table[key].get(w), 'rel')} / {_fmt(table[key].get(w), 'fd')}" for w in scales]
        lines.append(f"| {key[0]} | " + " | ".join(sweep) + " |")
    for m in extra:
        lines += ["", f"## Guidance-scale sweep ({heads[m]})", ""] + sweep_head
        for key in rows:
            lines.append(f"| {key[0]} | " + " | ".join(_fmt(table[key].get(w), m) for w in scales) + " |")
    lines.append("")
    if plot:
        _plot(table, rows, scales, chance, plot, extra)
        lines += [f"![guidance sweep]({plot})", ""]
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def _plot(table, rows, scales, chance, path, extra=()):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("relevance (%)", lambda r: 100 * r["relevance"]["accuracy"] if "relevance" in r else np.nan),
              ("FD (classifier embedding)", lambda r: r.get("fd", np.nan))]
    if "fad" in extra:
        panels.append(("FAD (VGGish)", lambda r: r.get("fad_vggish", np.nan)))
    if "clap" in extra:
        panels.append(("CLAP score", lambda r: r["clap"]["mean"] if "clap" in r else np.nan))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.5))
    for ax, (label, value) in zip(axes, panels):
        for key in rows:
            ws = [w for w in scales if w in table[key]]
            ax.plot(ws, [value(table[key][w]) for w in ws], marker="o", label=key[0])
        ax.set_xlabel("guidance scale w")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    if chance:
        axes[0].axhline(100 * chance, color="grey", linestyle="--", label="chance")
    axes[0].set_ylim(0, 105)
    axes[0].legend(fontsize=8)
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
    s.add_argument("--ref_cache_dir", default=None,
                   help="Keep the reference clips' embeddings here (per model and reference list), so that "
                        "scoring many generations against one test set embeds it once")
    s.add_argument("--fad_model", default=None, help="FAD with VGGish embeddings: 'vggish' (published weights, "
                   "downloaded into torch.hub's cache) or a local .pth state dict (offline)")
    s.add_argument("--clap_model", default=None, help="CLAP score: a Hugging Face id (e.g. laion/clap-htsat-unfused; "
                   "Hugging Face cache), a local save_pretrained directory, or a LAION-CLAP .pt (laion-clap package)")
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
