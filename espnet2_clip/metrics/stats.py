"""Summary statistics of per-mixture scores, and RESULTS.md tables.

The paper reports mean ± standard error (``scipy.stats.sem``, ddof=1) and the median.
"""

import math
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy import stats

METRICS = ("SDR", "SIR", "SAR")


def summarize(values: Iterable[float]) -> Dict[str, Optional[float]]:
    """Mean, standard error of the mean (ddof=1), median and count of ``values``.

    Non-finite values (an infinite ratio from a perfect estimate) are excluded and
    counted in ``n_nonfinite``.  Empty input gives ``None`` statistics and count 0.
    """
    arr = np.asarray(list(values), dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    out: Dict[str, Optional[float]] = {
        "mean": None,
        "sem": None,
        "median": None,
        "count": int(finite.size),
        "n_nonfinite": int(arr.size - finite.size),
    }
    if finite.size:
        out["mean"] = float(np.mean(finite))
        out["median"] = float(np.median(finite))
        out["sem"] = float(stats.sem(finite, ddof=1)) if finite.size > 1 else None
    return out


def summarize_scores(
    est_scores: Mapping[str, Sequence[float]],
    mix_scores: Mapping[str, Sequence[float]],
) -> Dict[str, Any]:
    """Statistics for the estimates, the mixture baseline and SDRi.

    Args:
        est_scores: ``uttid -> (sdr, sir, sar)`` of the separated estimates.
        mix_scores: ``uttid -> (sdr, sir, sar)`` with the mixture as the estimate.
            SDRi is computed on the ids present in both.
    """
    ids = sorted(est_scores)
    result: Dict[str, Any] = {"estimate": {}, "mixture": {}}
    for k, name in enumerate(METRICS):
        result["estimate"][name] = summarize(est_scores[i][k] for i in ids)
        result["mixture"][name] = summarize(mix_scores[i][k] for i in sorted(mix_scores))
    common = [i for i in ids if i in mix_scores]
    result["SDRi"] = summarize(est_scores[i][0] - mix_scores[i][0] for i in common)
    return result


def fmt_value(x: Optional[float], digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}f}"


def mean_pm(stat: Optional[Mapping[str, Any]], digits: int = 2) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    if stat.get("sem") is None:
        return fmt_value(stat["mean"], digits)
    return f"{fmt_value(stat['mean'], digits)} ± {fmt_value(stat['sem'], digits)}"


TABLE_COLUMNS = ("System", "Mean SDR ± s.e.", "Median SDR", "SDRi", "SIR", "SAR", "N")


def format_results_table(
    rows: List[Tuple[str, Mapping[str, Any]]],
    digits: int = 2,
    reference: Optional[Tuple[str, Mapping[str, str]]] = None,
) -> str:
    """Markdown table with one row per system, from ``result.json`` dictionaries.

    ``rows`` holds ``(name, result)`` pairs, ``result`` as written by
    ``clipsep_scoring`` (keys ``estimate``, ``mixture``, ``SDRi``, ``count``).
    A result dict may also be a mixture-only summary (``{"estimate": result["mixture"]}``),
    see :func:`mixture_row`.  SDRi, SIR and SAR are given as mean ± s.e.
    ``reference`` = ``(column title, {row name: cell})`` adds a last column of numbers
    quoted from elsewhere (the paper), "–" where a row has none.
    """
    columns = TABLE_COLUMNS + ((reference[0],) if reference else ())
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(columns) - 1)) + "|",
    ]
    for name, res in rows:
        est = res.get("estimate", {})
        sdr = est.get("SDR", {})
        count = res.get("count", sdr.get("count"))
        cells = [
            str(name).replace("|", "\\|"),
            mean_pm(sdr, digits),
            fmt_value(sdr.get("median"), digits),
            mean_pm(res.get("SDRi"), digits),
            mean_pm(est.get("SIR"), digits),
            mean_pm(est.get("SAR"), digits),
            "–" if count is None else str(count),
        ]
        if reference:
            cells.append(str(reference[1].get(name, "–")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def mixture_row(result: Mapping[str, Any], name: str = "Mixture") -> Tuple[str, Dict[str, Any]]:
    """A table row for the unprocessed mixture of a scored result (SDRi is 0 by definition)."""
    mix = result["mixture"]
    zero = {"mean": 0.0, "sem": None, "median": 0.0, "count": mix["SDR"]["count"]}
    return name, {"estimate": mix, "SDRi": zero, "count": result.get("count")}


def result_markdown(result: Mapping[str, Any]) -> str:
    """The ``result.md`` text of one scored system: estimate and mixture rows."""
    name = result.get("name") or "estimate"
    head = [f"# Scores: {name}", ""]
    for key in ("backend", "protocol", "selection", "count", "skipped", "total"):
        if key in result:
            head.append(f"- {key}: {result[key]}")
    head.append("")
    head.append("Mean ± standard error (scipy.stats.sem, ddof=1), dB.")
    head.append("")
    table = format_results_table([(name, result), mixture_row(result)])
    detail = ["", "| | " + " | ".join(f"{m} mean ± s.e. | {m} median" for m in METRICS) + " |"]
    detail.append("|---|" + "---:|---:|" * len(METRICS))
    for label, key in ((name, "estimate"), ("Mixture", "mixture")):
        cells = []
        for m in METRICS:
            st = result[key][m]
            cells += [mean_pm(st), fmt_value(st.get("median"))]
        detail.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(head) + "\n" + table + "\n".join(detail) + "\n"
