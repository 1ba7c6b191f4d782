import math

import numpy as np
import pytest
from scipy import stats

from espnet2_clip.metrics.stats import (
    TABLE_COLUMNS,
    format_results_table,
    mixture_row,
    result_markdown,
    summarize,
    summarize_scores,
)


def test_summarize_matches_scipy():
    x = [1.0, 2.5, -3.0, 7.25, 0.5]
    s = summarize(x)
    assert s["mean"] == pytest.approx(np.mean(x))
    assert s["sem"] == pytest.approx(stats.sem(x, ddof=1))
    assert s["sem"] == pytest.approx(np.std(x, ddof=1) / math.sqrt(len(x)))
    assert s["median"] == pytest.approx(1.0)
    assert s["count"] == 5


def test_summarize_edge_cases():
    assert summarize([])["mean"] is None and summarize([])["count"] == 0
    one = summarize([3.0])
    assert one["mean"] == 3.0 and one["sem"] is None
    s = summarize([1.0, float("inf"), 3.0])
    assert s["count"] == 2 and s["n_nonfinite"] == 1 and s["mean"] == 2.0


def _result():
    est = {"a": (5.0, 10.0, 8.0), "b": (7.0, 12.0, 9.0), "c": (3.0, 6.0, 7.0)}
    mix = {"a": (1.0, 1.0, 30.0), "b": (2.0, 2.0, 30.0), "c": (-1.0, -1.0, 30.0)}
    res = summarize_scores(est, mix)
    res.update(name="sys", count=3, skipped=1, total=4)
    return res


def test_summarize_scores_sdri():
    res = _result()
    assert res["SDRi"]["mean"] == pytest.approx(np.mean([4.0, 5.0, 4.0]))
    assert res["estimate"]["SDR"]["median"] == 5.0
    assert res["mixture"]["SAR"]["mean"] == 30.0


def test_format_results_table():
    res = _result()
    table = format_results_table([("CLIPSep", res), mixture_row(res)])
    lines = table.strip().splitlines()
    assert lines[0] == "| " + " | ".join(TABLE_COLUMNS) + " |"
    assert len(lines) == 4
    sem = stats.sem([5.0, 7.0, 3.0])
    assert f"5.00 ± {sem:.2f}" in lines[2]
    assert lines[2].rstrip().endswith("| 3 |")
    assert lines[3].startswith("| Mixture | 0.67 ± ")
    for col in ("Mean SDR ± s.e.", "Median SDR", "SDRi", "SIR", "SAR", "N"):
        assert col in lines[0]
    md = result_markdown(res)
    assert "sys" in md and "Mixture" in md and "skipped: 1" in md
