import json

import pytest
import yaml

from espnet2_clip.bin.make_results import load_paper_results, main
from espnet2_clip.metrics.stats import summarize_scores


def _scored(exp, tag, query, sdrs, head="query", train_query="image"):
    est = {f"u{i}": (s, s + 10.0, s + 5.0) for i, s in enumerate(sdrs)}
    mix = {f"u{i}": (0.0, 0.0, 30.0) for i in range(len(sdrs))}
    result = {"name": tag, "count": len(sdrs)}
    result.update(summarize_scores(est, mix))
    out = exp / tag / f"decode_{query}" / "scoring"
    out.mkdir(parents=True)
    (out / "result.json").write_text(json.dumps(result))
    config = {"head": head, "train_query": train_query, "unet_conf": {"num_downs": 6}, "batch_size": 8,
              "max_epoch": 2, "optim_conf": {"lr": 0.001}}
    (exp / tag / "config.yaml").write_text(yaml.safe_dump(config))


def test_results_table_with_paper_column_and_pit_row(tmp_path):
    exp = tmp_path / "exp"
    _scored(exp, "clipsep_text", "text", [4.0, 6.0])
    _scored(exp, "pit", "none", [7.0, 9.0], head="pit", train_query="none")
    paper = tmp_path / "paper.yaml"
    paper.write_text(yaml.safe_dump({"column": "Paper mean SDR", "source": "Table 1 (quoted)",
                                     "rows": {"CLIPSep-Text (text-queried)": 5.49, "LabelSep (label-queried)": 5.0}}))
    out = tmp_path / "RESULTS.md"
    assert main(["--exp_dir", str(exp), "--tags", "clipsep_text pit", "--test_dir", str(tmp_path / "none"),
                 "--output", str(out), "--paper_results", str(paper)]) == 0
    text = out.read_text()
    header = next(l for l in text.splitlines() if l.startswith("| System"))
    assert header.rstrip().endswith("| Paper mean SDR |")
    rows = {l.split("|")[1].strip(): l for l in text.splitlines() if l.startswith("| ") and "System" not in l}
    assert rows["CLIPSep-Text (text-queried)"].rstrip().endswith("| 5.49 |")
    assert "| 5.00 ± 1.00 |" in rows["CLIPSep-Text (text-queried)"]
    # PIT is scored with oracle selection: the row says so, and has no paper number here
    assert rows["PIT (non-queried, oracle selection)"].rstrip().endswith("| – |")
    assert "| 8.00 ± 1.00 |" in rows["PIT (non-queried, oracle selection)"]
    assert "Table 1 (quoted) (not run here: LabelSep (label-queried))" in text


def test_paper_results_file_must_have_rows(tmp_path):
    bad = tmp_path / "paper.yaml"
    bad.write_text("- 5.49\n")
    with pytest.raises(ValueError, match=r"paper\.yaml: expected a mapping with 'rows"):
        load_paper_results(bad)
    with pytest.raises(ValueError, match="cannot read the paper results"):
        load_paper_results(tmp_path / "missing.yaml")


@pytest.mark.parametrize("corpus", ["music", "vggsound"])
def test_shipped_paper_results_name_our_rows(corpus):
    from pathlib import Path

    from espnet2_clip.bin.make_results import DISPLAY_NAMES, QUERY_NAMES

    path = Path(__file__).parents[3] / "egs2" / corpus / "clipsep1" / "conf" / "paper_results.yaml"
    _, rows, source = load_paper_results(path)
    names = {f"{m} ({q})" for m in DISPLAY_NAMES.values() for q in QUERY_NAMES.values()}
    assert rows and set(rows) <= names and "Table 1" in source
