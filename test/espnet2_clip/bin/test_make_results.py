import json
from pathlib import Path

import pytest
import yaml
from shared_helpers import markdown_table

from espnet2_clip.bin.make_results import load_paper_results, main, parse_test_sets
from espnet2_clip.metrics.stats import summarize_scores

REPO = Path(__file__).resolve().parents[3]


def _scored(exp, tag, query, sdrs, test_set="test_mix", head="query", train_query="image", mix_sdr=0.0):
    est = {f"u{i}": (s, s + 10.0, s + 5.0) for i, s in enumerate(sdrs)}
    mix = {f"u{i}": (mix_sdr, 0.0, 30.0) for i in range(len(sdrs))}
    result = {"name": tag, "count": len(sdrs)}
    result.update(summarize_scores(est, mix))
    out = exp / tag / f"decode_{query}" / test_set / "scoring"
    out.mkdir(parents=True)
    (out / "result.json").write_text(json.dumps(result))
    config = {"head": head, "train_query": train_query, "unet_conf": {"num_downs": 6}, "batch_size": 8,
              "max_epoch": 2, "optim_conf": {"lr": 0.001}}
    (exp / tag / "config.yaml").write_text(yaml.safe_dump(config))


def _rows(text, header_start="| System"):
    """{row name: {column: cell, "_cells": cells}} of the first table whose header starts with ``header_start``."""
    header, rows = markdown_table(text, header_start)
    return header, {name: dict(zip(header[1:], cells)) | {"_cells": cells} for name, cells in rows.items()}


def test_table1_layout_two_test_sets_with_the_paper_beside_each_cell(tmp_path):
    exp = tmp_path / "exp"
    _scored(exp, "clipsep", "text", [4.0, 6.0], "test_mix", mix_sdr=-1.0)
    _scored(exp, "clipsep", "text", [9.0, 11.0, 13.0], "test_music_plus", mix_sdr=4.0)
    _scored(exp, "labelsep", "label", [5.0, 7.0], "test_mix", train_query="label")  # no MUSIC+ (not its labels)
    _scored(exp, "pit", "none", [7.0, 9.0], "test_mix", head="pit", train_query="none")
    out = tmp_path / "RESULTS.md"
    paper = REPO / "egs2" / "vggsound" / "clipsep1" / "conf" / "paper_results.yaml"
    assert main(["--exp_dir", str(exp), "--tags", "clipsep pit labelsep", "--dump_dir", str(tmp_path / "dump"),
                 "--test_sets", "test_music_plus:MUSIC+ test_mix:VGGSound-Clean+", "--output", str(out),
                 "--paper_results", str(paper)]) == 0
    text = out.read_text()
    header, rows = _rows(text)
    assert header == ["System", "MUSIC+ mean SDR ± s.e.", "paper", "MUSIC+ median SDR", "paper",
                      "VGGSound-Clean+ mean SDR ± s.e.", "paper", "VGGSound-Clean+ median SDR", "paper"]
    # the paper's order and every paper row, run here or not
    assert list(rows) == ["Mixture", "CLIPSep (text-queried)", "PIT (non-queried, oracle selection)",
                          "LabelSep (label-queried)", "CLIPSep-NIT (text-queried)", "BERTSep (text-queried)",
                          "CLIPSep-Text (text-queried)"]
    assert rows["Mixture"]["_cells"] == ["4.00 ± 0.00", "4.49 ± 1.41", "4.00", "2.04", "-1.00 ± 0.00", "-0.77 ± 1.31", "-1.00",
                                         "-0.84"]
    assert rows["CLIPSep (text-queried)"]["_cells"] == ["11.00 ± 1.15", "9.71 ± 1.21", "11.00", "8.73",
                                                        "5.00 ± 1.00", "2.76 ± 1.00", "5.00", "3.95"]
    # LabelSep: no MUSIC+ cell, ours or the paper's
    assert rows["LabelSep (label-queried)"]["_cells"][:4] == ["–", "–", "–", "–"]
    assert rows["LabelSep (label-queried)"]["_cells"][4:] == ["6.00 ± 1.00", "5.55 ± 0.81", "6.00", "5.29"]
    assert rows["CLIPSep-NIT (text-queried)"]["_cells"] == ["–", "10.27 ± 1.04", "–", "10.02", "–", "3.05 ± 0.73",
                                                            "–", "3.26"]
    assert "not run here: CLIPSep-NIT (text-queried), BERTSep (text-queried), CLIPSep-Text (text-queried)" in text
    # details per test set: SDRi, SIR, SAR, N
    assert "## MUSIC+: SDR, SDRi, SIR, SAR" in text and "## VGGSound-Clean+: SDR, SDRi, SIR, SAR" in text
    _, music = _rows(text.split("## MUSIC+: SDR")[1])
    assert music["CLIPSep (text-queried)"]["SDRi"] == "7.00 ± 1.15" and music["CLIPSep (text-queried)"]["N"] == "3"


def test_one_test_set_without_paper(tmp_path):
    exp = tmp_path / "exp"
    _scored(exp, "clipsep", "text", [4.0, 6.0])
    _scored(exp, "clipsep", "image", [5.0, 7.0])
    out = tmp_path / "RESULTS.md"
    assert main(["--exp_dir", str(exp), "--tags", "clipsep", "--dump_dir", str(tmp_path), "--output", str(out)]) == 0
    header, rows = _rows(out.read_text())
    assert header == ["System", "test_mix mean SDR ± s.e.", "test_mix median SDR"]
    assert list(rows) == ["Mixture", "CLIPSep (text-queried)", "CLIPSep (image-queried)"]
    assert main(["--exp_dir", str(tmp_path / "none"), "--tags", "clipsep", "--dump_dir", str(tmp_path)]) == 1


def test_paper_results_file_must_have_rows(tmp_path):
    bad = tmp_path / "paper.yaml"
    bad.write_text("- 5.49\n")
    with pytest.raises(ValueError, match=r"paper\.yaml: expected a mapping with 'source' and 'rows"):
        load_paper_results(bad)
    bad.write_text("rows:\n  CLIPSep (text-queried):\n    MUSIC+: 9.71\n")
    with pytest.raises(ValueError, match=r"row 'CLIPSep \(text-queried\)', test set 'MUSIC\+': expected"):
        load_paper_results(bad)
    with pytest.raises(ValueError, match="cannot read the paper results"):
        load_paper_results(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="empty test set name"):
        parse_test_sets(":MUSIC+")


def _reference_table1():
    """The paper's Table 1 as reference/clipsep.md quotes it (the primary source), or None."""
    path = REPO.parent / "shared" / "reference" / "clipsep.md"
    if not path.is_file():
        return None
    table = path.read_text().split("## Appendix: published results")[1]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0] not in ("Model",) and not cells[0].startswith("---"):
            rows[cells[0]] = cells[2:]
    return rows


def test_shipped_paper_results_are_table1_cell_by_cell():
    """Every cell of the paper's Table 1 (reference/clipsep.md), none from a secondary source."""
    from espnet2_clip.bin.make_results import DISPLAY_NAMES, QUERY_NAMES

    reference = _reference_table1()
    if reference is None:
        pytest.skip("../shared/reference/clipsep.md not present")
    paper = load_paper_results(REPO / "egs2" / "vggsound" / "clipsep1" / "conf" / "paper_results.yaml")
    ours = {"Mixture": "Mixture", "CLIPSep (text-queried)": "CLIPSep (text-queried)",
            "CLIPSep-NIT (text-queried)": "CLIPSep-NIT (text-queried)", "BERTSep": "BERTSep (text-queried)",
            "CLIPSep-Text": "CLIPSep-Text (text-queried)", "PIT (non-queried)": "PIT (non-queried, oracle selection)",
            "LabelSep (non-queried)": "LabelSep (label-queried)"}
    assert set(reference) == set(ours) and set(paper.cells) == set(ours.values())
    names = {"Mixture"} | {f"{m} ({q})" for m in DISPLAY_NAMES.values() for q in QUERY_NAMES.values()}
    assert set(paper.cells) <= names
    for ref_row, row in ours.items():
        expected = [c.replace("−", "-") for c in reference[ref_row]]
        got = [paper.cell(row, s, stat) for s in ("MUSIC+", "VGGSound-Clean+") for stat in ("mean", "median")]
        assert got == expected, row
    assert "secondary" not in paper.source.lower() and "OmniSep" not in paper.source
    assert not (REPO / "egs2" / "music" / "clipsep1" / "conf" / "paper_results.yaml").exists()  # one copy


def test_models_table_names_the_backbone_and_its_parameters(tmp_path):
    """A DPRNN-backbone row beside the U-Net's: readable name, backbone, parameter counts (from the
    config.yaml the training wrote; "–" when a config cannot build a model)."""
    exp = tmp_path / "exp"
    _scored(exp, "clipsep", "text", [4.0, 6.0])  # partial config: no parameter count
    _scored(exp, "clipsep_dprnn", "text", [3.0, 5.0])
    config = {"head": "query", "head_conf": {}, "train_query": "image", "query": "embedding",
              "query_conf": {"input_dim": 8}, "model_conf": {}, "batch_size": 8, "max_epoch": 2,
              "optim_conf": {"lr": 0.001}, "frontend_conf": {"n_fft": 256, "hop_length": 64, "num_warped_bins": 64},
              "unet_conf": {"num_downs": 7}, "backbone": "espnet_separator",
              "backbone_conf": {"out_channels": 4, "separator": "dprnn",
                                "separator_conf": {"layer": 1, "unit": 8, "nonlinear": "tanh"}}}
    (exp / "clipsep_dprnn" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))  # as ESPnet writes
    out = tmp_path / "RESULTS.md"
    assert main(["--exp_dir", str(exp), "--tags", "clipsep clipsep_dprnn", "--dump_dir", str(tmp_path),
                 "--output", str(out)]) == 0
    text = out.read_text()
    _, rows = _rows(text)
    assert "CLIPSep (ESPnet DPRNN backbone) (text-queried)" in rows
    header, models = _rows(text.split("## Models")[1], "| model")
    assert header[3:5] == ["backbone", "parameters"]
    assert models["CLIPSep"]["backbone"] == "U-Net 6 levels, ? ch, k=?" and models["CLIPSep"]["parameters"] == "–"
    dprnn = models["CLIPSep (ESPnet DPRNN backbone)"]
    assert dprnn["backbone"] == "ESPnet dprnn (layer=1, unit=8, nonlinear=tanh), k=4"
    from espnet2_clip.tasks.clipsep import CLIPSepTask
    import argparse

    model = CLIPSepTask.build_model(argparse.Namespace(**config))
    total = sum(p.numel() for p in model.parameters()) / 1e6
    backbone = sum(p.numel() for p in model.backbone.parameters()) / 1e6
    assert dprnn["parameters"] == f"{total:.2f} M (backbone {backbone:.2f} M)"
