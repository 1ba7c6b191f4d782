#!/usr/bin/env python3
"""Score separated targets with the CLIPSep protocol (BSS Eval v4, target only).

Example::

    python -m espnet2_clip.bin.clipsep_scoring \\
        --ref_scp dump/test/spk1.scp --interf_scp dump/test/spk2.scp \\
        --mix_scp dump/test/wav.scp --est_scp exp/.../inference/spk1.scp \\
        --output_dir exp/.../scoring --backend museval --nj 2 --name CLIPSep-NIT

Non-queried models (PIT) give several estimates per mixture and are scored with **oracle
selection**, as in the paper: pass every estimate list (``--est_scp spk1.scp spk2.scp``) and the
one with the best target SDR is kept per mixture (``selected`` records which).

Writes to ``output_dir`` (each file atomically):

* ``SDR_spk1``, ``SIR_spk1``, ``SAR_spk1``, ``SDRi_spk1``: ``uttid value`` per mixture
* ``SDR_mix``, ``SIR_mix``, ``SAR_mix``: the mixture itself scored as the estimate
* ``skipped``: ``uttid reason`` of mixtures left out (silent reference or estimate)
* ``selected``: ``uttid spkN`` of the estimate kept (only with several ``--est_scp``)
* ``result.json`` and ``result.md``: mean ± s.e. (ddof=1), median, SDRi, counts
"""

import argparse
import json
import logging
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import soundfile as sf
from tqdm import tqdm

from espnet2_clip.metrics.sdr import BACKENDS, BSSResult, target_scores
from espnet2_clip.metrics.stats import result_markdown, summarize_scores
from espnet2_clip.utils.fileio import OWN_OUTPUT_DIR_HELP, read_scp, remove_stale_temps, write_scp, write_text_atomic

PROTOCOL = (
    "estimate clipped to [-1, 1]; references and mixture truncated to the estimate length "
    "(the official length-free iSTFT: 65,280 of 65,535 samples); "
    "museval.metrics.bss_eval(refs=[target, interference], ests=[est, mix - est], "
    "window=inf, hop=inf, compute_permutation=False, filters_len=512); target row only; "
    "mixtures with a silent signal (sum|x| <= 1e-5) skipped"
)

REFERENCE_KINDS = ("ref", "interf", "mix")
ORACLE_SELECTION = "oracle: per mixture, the estimate with the best target SDR (not post-processing free)"


def read_wav_mono(path: str) -> Tuple[np.ndarray, int]:
    """Read a wav file as float64 mono (multi-channel input is averaged)."""
    try:
        data, rate = sf.read(path, dtype="float64", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError
        raise RuntimeError(f"cannot read audio file {path}: {e}") from e
    return data.mean(axis=1), int(rate)


def score_utterance(
    uttid: str, paths: Dict[str, str], est_paths: Sequence[str], backend: str
) -> Tuple[str, Optional[BSSResult], Optional[BSSResult], str, int]:
    """Score one mixture: ``(uttid, estimate scores, mixture scores, skip reason, kept estimate)``.

    With several estimates the one with the best target SDR is kept (oracle selection).
    """
    sigs = {}
    rates = {}  # label -> (path, rate)
    for kind in REFERENCE_KINDS:
        sigs[kind], rate = read_wav_mono(paths[kind])
        rates[kind] = (paths[kind], rate)
    ests = []
    for i, path in enumerate(est_paths):
        est, rate = read_wav_mono(path)
        ests.append(np.clip(est, -1.0, 1.0))  # as the official scorer (a 16-bit wav could not hold more)
        rates["est" if len(est_paths) == 1 else f"est{i + 1}"] = (path, rate)
    if len({rate for _, rate in rates.values()}) != 1:
        detail = ", ".join(f"{label}={path} ({rate} Hz)" for label, (path, rate) in rates.items())
        raise ValueError(f"{uttid}: sample rate mismatch between files: {detail}")
    n_ref = min(len(sigs[k]) for k in REFERENCE_KINDS)
    n = min([n_ref] + [len(e) for e in ests])
    for path, est in zip(est_paths, ests):
        if len(est) > n_ref:
            logging.warning(f"{uttid}: estimate {path} ({len(est)} samples) is longer than the references; "
                            f"truncating it to {n}")
    ref, interf, mix = (sigs[k][:n] for k in REFERENCE_KINDS)
    residual = np.linalg.norm(mix - ref - interf) / max(np.linalg.norm(mix), 1e-12)
    if residual > 0.01:
        raise ValueError(
            f"{uttid}: the references do not add up to the mixture (|mix - spk1 - spk2| / |mix| = "
            f"{residual:.3f}); give the sources as they appear in the mixture ({paths['ref']}, "
            f"{paths['interf']}, {paths['mix']})"
        )
    # the estimates and the mixture (for the improvement) against the same references, in one call
    *candidates, mix_res = target_scores(ref, interf, [(est[:n], mix - est[:n]) for est in ests] + [(mix, mix)],
                                         backend=backend)
    scored = [(res.sdr, i) for i, res in enumerate(candidates) if res is not None]
    if not scored:
        return uttid, None, None, "silent_reference_or_estimate", -1
    best = max(scored)[1]
    if mix_res is None:
        return uttid, None, None, "silent_mixture", -1
    return uttid, candidates[best], mix_res, "", best


def _limit_threads() -> None:
    """One BLAS thread per worker process: oversubscribed BLAS is several times slower."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(1)


def _score_star(args):
    return score_utterance(*args)


def check_ids(scps: Dict[str, Dict[str, str]], files: Dict[str, str]) -> List[str]:
    """Return the sorted common ids; raise listing the ids that some files lack."""
    all_ids = set().union(*[set(d) for d in scps.values()])
    problems = []
    for kind, d in scps.items():
        missing = sorted(all_ids - set(d))
        if missing:
            shown = " ".join(missing[:20]) + (" ..." if len(missing) > 20 else "")
            problems.append(f"{files[kind]} lacks {len(missing)} id(s): {shown}")
    if problems:
        raise ValueError("utterance ids do not match:\n  " + "\n  ".join(problems))
    if not all_ids:
        raise ValueError("no utterances to score: " + ", ".join(files.values()))
    return sorted(all_ids)


def run_scoring(
    ref_scp: str,
    interf_scp: str,
    mix_scp: str,
    est_scp: Union[str, Sequence[str]],
    output_dir: str,
    backend: str = "museval",
    nj: int = 1,
    name: Optional[str] = None,
) -> dict:
    """Score every mixture; ``est_scp`` may list several estimates (oracle selection)."""
    est_scps = [est_scp] if isinstance(est_scp, (str, Path)) else list(est_scp)
    if not est_scps:
        raise ValueError("no --est_scp given")
    files = {"ref": ref_scp, "interf": interf_scp, "mix": mix_scp}
    files.update({f"est{i + 1}": str(path) for i, path in enumerate(est_scps)})
    scps = {kind: read_scp(path) for kind, path in files.items()}
    ids = check_ids(scps, files)
    est_kinds = [f"est{i + 1}" for i in range(len(est_scps))]
    jobs = [(u, {k: scps[k][u] for k in REFERENCE_KINDS}, [scps[k][u] for k in est_kinds], backend) for u in ids]

    results = []
    if nj <= 1:
        for job in tqdm(jobs, desc="scoring", unit="utt"):
            results.append(_score_star(job))
    else:
        with ProcessPoolExecutor(max_workers=nj, initializer=_limit_threads) as ex:
            it = ex.map(_score_star, jobs, chunksize=max(1, min(8, len(jobs) // (4 * nj))))
            for r in tqdm(it, total=len(jobs), desc=f"scoring (nj={nj})", unit="utt"):
                results.append(r)

    est_scores: Dict[str, BSSResult] = {}
    mix_scores: Dict[str, BSSResult] = {}
    skipped: Dict[str, str] = {}
    selected: Dict[str, str] = {}
    for uttid, est_res, mix_res, reason, best in results:
        if est_res is None:
            skipped[uttid] = reason
            continue
        est_scores[uttid] = est_res
        mix_scores[uttid] = mix_res
        selected[uttid] = f"spk{best + 1}"

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)  # a killed run's

    def fmt(v: float) -> str:
        return f"{v:.6f}"

    for k, metric in enumerate(("SDR", "SIR", "SAR")):
        write_scp(out / f"{metric}_spk1", {u: fmt(r[k]) for u, r in est_scores.items()})
        write_scp(out / f"{metric}_mix", {u: fmt(r[k]) for u, r in mix_scores.items()})
    write_scp(
        out / "SDRi_spk1", {u: fmt(est_scores[u].sdr - mix_scores[u].sdr) for u in est_scores}
    )
    write_scp(out / "skipped", skipped)
    if len(est_scps) > 1:
        write_scp(out / "selected", selected)

    result = {
        "name": name or Path(est_scps[0]).parent.name,
        "backend": backend,
        "protocol": PROTOCOL,
        "selection": ORACLE_SELECTION if len(est_scps) > 1 else "none (the queried estimate)",
        "count": len(est_scores),
        "skipped": len(skipped),
        "total": len(ids),
        "files": files,
    }
    result.update(summarize_scores(est_scores, mix_scores))
    write_text_atomic(out / "result.json", json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(out / "result.md", result_markdown(result))
    return result


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--ref_scp", required=True, help="target references (spk1.scp)")
    p.add_argument("--interf_scp", required=True, help="interference references (spk2.scp)")
    p.add_argument("--mix_scp", required=True, help="mixtures (wav.scp)")
    p.add_argument("--est_scp", required=True, nargs="+",
                   help="separated targets (<inference_dir>/spk1.scp); several lists: oracle selection (PIT)")
    p.add_argument("--output_dir", required=True, help=OWN_OUTPUT_DIR_HELP)
    p.add_argument("--backend", choices=BACKENDS, default="museval",
                   help="museval: the paper's call; fast: same numbers, about 2-3x faster")
    p.add_argument("--nj", type=int, default=1, help="parallel worker processes")
    p.add_argument("--name", default=None, help="system label in result.json / result.md")
    p.add_argument("--log_level", default="INFO",
                   choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return p


def main(cmd: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level=args.log_level, format="%(asctime)s (%(module)s) %(levelname)s: %(message)s")
    try:
        result = run_scoring(
            args.ref_scp, args.interf_scp, args.mix_scp, args.est_scp, args.output_dir,
            backend=args.backend, nj=args.nj, name=args.name,
        )
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        logging.error(str(e))
        return 1
    sdr = result["estimate"]["SDR"]
    logging.info(
        f"{result['name']}: SDR mean {sdr['mean']} median {sdr['median']} "
        f"(n={result['count']}, skipped={result['skipped']}) -> {args.output_dir}/result.json"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
