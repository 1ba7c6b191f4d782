"""Model cards (espnet2_clip.utils.model_card, python -m espnet2_clip.bin.model_card): one writer for
separation and generation models; the facts, the model's own rows of RESULTS.md (as make_results and
clipsonic_eval write it), "not scored" without them, reading back, pointing the run lines elsewhere."""

import json

import pytest
import yaml
from shared_helpers import markdown_table

from espnet2_clip.bin import model_card as model_card_cli
from espnet2_clip.metrics.stats import format_results_table, summarize_scores
from espnet2_clip.utils.model_card import (CardError, CardInputs, card_summary, make_card, parse_card, retarget,
                                           write_card)

SEP_CONFIG = {"train_query": "image", "head": "nit", "query": "embedding", "query_conf": {"input_dim": 512},
              "unet_conf": {"num_downs": 7, "base_channels": 64, "out_channels": 32}, "batch_size": 64,
              "max_epoch": 2, "optim": "adam", "optim_conf": {"lr": 0.001}, "clip_samples": 65535,
              "query_encoder": "clip", "query_encoder_conf": {"model_name": "ViT-B-32", "pretrained": "openai"}}
GEN_CONFIG = {"mel_conf": {"fs": 16000, "n_fft": 1024, "hop_length": 256, "n_mels": 80},
              "unet_conf": {"cond_dim": 768, "channels": [128, 256]}, "clip_samples": 65535,
              "query_encoder": "clip", "query_encoder_conf": {"model_name": "ViT-L-14", "pretrained": "openai"},
              "vocoder_config": "exp/vocoder/config.yaml", "vocoder_file": "exp/vocoder/v.pth",
              "prior_config": "exp/prior/config.yaml", "prior_file": "exp/prior/prior.pth", "batch_size": 32}


def _result(sdrs, mix_sdr=0.0):
    est = {f"u{i}": (s, s + 10.0, s + 5.0) for i, s in enumerate(sdrs)}
    mix = {f"u{i}": (mix_sdr, 0.0, 30.0) for i in range(len(sdrs))}
    return dict(summarize_scores(est, mix), count=len(sdrs))


def _sep_results(path):
    """A RESULTS.md laid out by make_results' own table functions: Table 1 (with a paper column), a
    per-test-set table, the models table; rows of four systems, two of whose names share a prefix."""
    from espnet2_clip.bin.make_results import PaperResults, table1
    from espnet2_clip.metrics.stats import mixture_row

    rows = {"CLIPSep (text-queried)": _result([4.0, 6.0]),
            "CLIPSep (ESPnet DPRNN backbone) (text-queried)": _result([1.0, 2.0]),
            "CLIPSep-NIT (text-queried)": _result([5.0, 7.0, 9.0]),
            "CLIPSep-NIT (image-queried)": _result([6.0, 8.0])}
    results = {"test_mix": dict([mixture_row(rows["CLIPSep (text-queried)"])], **rows)}
    paper = PaperResults("paper", {"CLIPSep-NIT (text-queried)": {"VGGSound-Clean+": {"mean": "5.49 ± 0.45",
                                                                                      "median": "4.74"}}})
    text = ("# CLIPSep results\n\n- text prompt at inference: ensemble; CLIP: ViT-B-32 (openai)\n"
            "- downloads (test): obtained 1/2 videos (1 missing: 1 private); missing ids: world/download/test/missing\n"
            "\n## SDR (the paper's Table 1 layout)\n\n"
            + table1([("test_mix", "VGGSound-Clean+")], results, ["Mixture", *rows], paper)
            + "\n## VGGSound-Clean+: SDR, SDRi, SIR, SAR\n\n" + format_results_table(list(results["test_mix"].items()))
            + "\n## Models\n\n| model | head | batch |\n|---|---|---:|\n| CLIPSep | query | 8 |\n"
              "| CLIPSep-NIT | nit | 64 |\n")
    path.write_text(text)
    return path


def _world(root):
    for name, obtained, requested, reasons in (("test", 1, 2, {"private": 1}), ("train", 10, 12, {"unavailable": 2})):
        (root / "download" / name).mkdir(parents=True)
        (root / "download" / name / "download_report.json").write_text(json.dumps(
            {"requested": requested, "obtained": obtained, "missing": requested - obtained,
             "missing_by_reason": reasons}))
    return root


def _front(text):
    assert text.startswith("---\n")
    return yaml.safe_load(text[4:text.index("\n---\n", 3)])


def _section(text, heading):
    card = parse_card(text)
    return card.section(heading)


def test_separation_card_states_task_data_encoder_own_scores_licence_and_use(tmp_path):
    results = _sep_results(tmp_path / "RESULTS.md")
    scp = tmp_path / "wav.scp"
    scp.write_text("".join(f"c{i} /x/c{i}.wav\n" for i in range(10)) + "\n")
    text = write_card(tmp_path / "exp" / "README.md", CardInputs(
        config=SEP_CONFIG, tag="clipsep_nit", corpus="VGGSound", results=results, world_dir=_world(tmp_path / "w"),
        train_scp=scp, model_ref="exp/clipsep_nit/packed_model.zip"))
    assert (tmp_path / "exp" / "README.md").read_text() == text
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == ["README.md"]  # no temporary left
    front = _front(text)
    assert front["license"] == "cc-by-4.0" and front["library_name"] == "espnet"
    assert front["pipeline_tag"] == "audio-to-audio"
    assert {"espnet", "audio-source-separation"} <= set(front["tags"])
    facts = front["espnet2_clip"]
    assert facts == {"task": "separate", "system": "CLIPSep-NIT", "tag": "clipsep_nit", "corpus": "VGGSound",
                     "training_queries": "image", "training_clips": 10,
                     "query_encoder": "clip (open_clip ViT-B-32, weights openai)", "scored": True,
                     "model": "exp/clipsep_nit/packed_model.zip",
                     "videos": {"test": {"requested": 2, "obtained": 1, "missing": 1},
                                "train": {"requested": 12, "obtained": 10, "missing": 2}}}
    assert text.splitlines()[text.splitlines().index("---", 1) + 2] == (
        "# CLIPSep-NIT (VGGSound): text-queried sound separation (CLIPSep)")
    data = _section(text, "Training data")
    assert "training clips: 10" in data
    assert "  - train: obtained 10/12 videos (2 missing: 2 unavailable); missing ids listed in" in data
    assert "  - test: obtained 1/2 videos (1 missing: 1 private)" in data
    assert "- query encoder (frozen): clip (open_clip ViT-B-32, weights openai)" in _section(text, "Model")
    assert "backbone: U-Net 7 levels, 64 ch, k=32" in _section(text, "Model")
    # scores: only this model's rows (+ the mixture), in every table that has them, values untouched
    scores = _section(text, "Scores")
    header, rows = markdown_table(scores)
    assert header == ["System", "VGGSound-Clean+ mean SDR ± s.e.", "paper", "VGGSound-Clean+ median SDR", "paper"]
    assert rows == {"Mixture": ["0.00 ± 0.00", "–", "0.00", "–"],
                    "CLIPSep-NIT (text-queried)": ["7.00 ± 1.15", "5.49 ± 0.45", "7.00", "4.74"],
                    "CLIPSep-NIT (image-queried)": ["7.00 ± 1.00", "–", "7.00", "–"]}
    _, rows = markdown_table(scores[scores.index("### VGGSound-Clean+: SDR, SDRi, SIR, SAR"):])
    assert list(rows) == ["Mixture", "CLIPSep-NIT (text-queried)", "CLIPSep-NIT (image-queried)"]
    assert rows["CLIPSep-NIT (text-queried)"][-1] == "3" and rows["CLIPSep-NIT (text-queried)"][2] == "7.00 ± 1.15"
    _, rows = markdown_table(scores, "| model")
    assert rows == {"CLIPSep-NIT": ["nit", "64"]}
    assert "- text prompt at inference: ensemble; CLIP: ViT-B-32 (openai)" in scores
    assert "- model weights: cc-by-4.0" in _section(text, "Licence")
    use = _section(text, "How to run it")
    assert ('espnet2-clip separate mixture.wav -q "dog barking" -o dog_barking.wav '
            "-m exp/clipsep_nit/packed_model.zip") in use
    assert 'TextQueriedSeparation.from_pretrained("exp/clipsep_nit/packed_model.zip")' in use
    assert "from espnet2_clip.bin.clipsep_inference import TextQueriedSeparation" in use
    assert "@inproceedings{dong2023clipsep" in _section(text, "Citation")


def _gen_results(path):
    from espnet2_clip.bin.clipsonic_eval import make_report

    results = []
    for variant, rel in (("IQ", 0.9), ("ZS", 0.5), ("PD", 0.7), ("SD", 0.95)):
        for w, shift in ((1.0, -0.1), (3.0, 0.0)):
            results.append({"meta": {"variant": variant, "guidance_scale": w, "system": "x"}, "count": 18,
                            "relevance": {"accuracy": rel + shift, "chance": 1 / 6}, "fd": 10 * (1 - rel)})
    real = {"relevance": {"accuracy": 1.0, "chance": 1 / 6}, "fd": 0.5, "count": 12}
    path.write_text(make_report(results, 3.0, "CLIPSonic", ["generation: 25 DDIM steps"], real, None))
    return path


def test_generation_card_has_its_variants_rows_and_the_text_to_audio_api(tmp_path):
    results = _gen_results(tmp_path / "RESULTS.md")
    world = tmp_path / "world"
    world.mkdir()
    (world / "world.json").write_text(json.dumps({"seed": 3, "classes": ["circle", "square"], "counts": {"train": 8}}))
    text = make_card(CardInputs(config=GEN_CONFIG, tag="clipsonic_iq", corpus="mini_bridge", results=results,
                                world_dir=world, train_query="image", model_ref="exp/clipsonic_iq/packed_model.zip"))
    front = _front(text)
    assert front["pipeline_tag"] == "text-to-audio" and "text-to-audio" in front["tags"]
    facts = front["espnet2_clip"]
    assert (facts["task"], facts["system"], facts["variants"], facts["scored"]) == (
        "generate", "CLIPSonic", ["IQ", "ZS", "PD"], True)
    assert facts["query_encoder"] == "clip (open_clip ViT-L-14, weights openai)"
    assert facts["training_clips"] is None and facts["videos"] == {}
    scores = _section(text, "Scores")
    _, rows = markdown_table(scores)
    assert rows == {"CLIPSonic-IQ": ["image", "90.0", "1.00", "18"],
                    "CLIPSonic-ZS": ["text (direct)", "50.0", "5.00", "18"],
                    "CLIPSonic-PD": ["text → prior", "70.0", "3.00", "18"],
                    "Real audio (held out)": ["–", "100.0", "0.50", "12"]}
    _, sweep = markdown_table(scores, "| Variant")
    assert sweep == {"IQ": ["80.0 / 1.00", "90.0 / 1.00"], "ZS": ["40.0 / 5.00", "50.0 / 5.00"],
                     "PD": ["60.0 / 3.00", "70.0 / 3.00"]}
    assert "- generation: 25 DDIM steps" in scores
    assert "HiFi-GAN (packed)" in _section(text, "Model") and "PD" in _section(text, "Model")
    assert "no download report" in _section(text, "Training data")
    assert f'- generated world `{world}`: seed 3, 2 classes, counts {{"train": 8}}' in _section(text, "Training data")
    use = _section(text, "How to run it")
    assert 'espnet2-clip generate "circle" -n 2' in use and "-m exp/clipsonic_iq/packed_model.zip" in use
    assert 'TextToAudio.from_pretrained("exp/clipsonic_iq/packed_model.zip")' in use and "# IQ" in use
    # the text-trained reference: SD, only its own row
    text = make_card(CardInputs(config=dict(GEN_CONFIG, prior_file=None), tag="clipsonic_sd", results=results))
    facts = _front(text)["espnet2_clip"]
    assert (facts["system"], facts["variants"], facts["training_queries"]) == ("CLIPSonic-SD", ["SD"], "text")
    _, rows = markdown_table(_section(text, "Scores"))
    assert list(rows) == ["SD (supervised reference)", "Real audio (held out)"]


@pytest.mark.parametrize("prior, says", [
    ("laion", "the published DALL-E 2 prior laion/DALLE2-PyTorch (downloaded on first use"),
    ("exp/laion/prior_config.json", "the published LAION DALL-E 2 prior, packed"),
    (None, "diffusion prior: none"),
])
def test_the_card_names_the_prior(prior, says):
    text = make_card(CardInputs(config=dict(GEN_CONFIG, prior_config=prior, prior_file=None), tag="clipsonic_iq"))
    assert says in _section(text, "Model")
    assert ("PD" in _front(text)["espnet2_clip"]["variants"]) == (prior is not None)


@pytest.mark.parametrize("case", ["none", "missing", "other_rows"])
def test_without_results_the_card_says_not_scored(tmp_path, case):
    results = {"none": None, "missing": tmp_path / "RESULTS.md", "other_rows": _gen_results(tmp_path / "R.md")}[case]
    text = make_card(CardInputs(config=SEP_CONFIG, tag="labelsep", corpus="music", results=results))
    assert _front(text)["espnet2_clip"]["scored"] is False
    scores = _section(text, "Scores").strip()
    assert scores == {"none": "Not scored: no RESULTS.md was given when this card was written.",
                      "missing": f"Not scored: `{tmp_path / 'RESULTS.md'}` does not exist (the recipe's scoring "
                                 "stages have not run).",
                      "other_rows": "Not scored: `R.md` has no row of LabelSep."}[case]
    summary = card_summary(text)
    assert summary[-1] == "scores: " + scores
    assert summary[1] == "system: LabelSep (labelsep), text-queried sound separation (CLIPSep)"


def test_parse_render_retarget_and_summary(tmp_path):
    text = make_card(CardInputs(config=SEP_CONFIG, tag="clipsep_nit", corpus="vggsound",
                                results=_sep_results(tmp_path / "RESULTS.md"), world_dir=_world(tmp_path / "w"),
                                model_ref="exp/clipsep_nit/packed_model.zip"))
    card = parse_card(text)
    assert card.render() == text
    assert [name for name, _ in card.sections] == ["Task", "Training data", "Model", "Scores", "Licence",
                                                   "How to run it", "Citation"]
    hub = retarget(text, "user/clipsep_nit_vggsound")
    assert 'from_pretrained("user/clipsep_nit_vggsound")' in hub and "-m user/clipsep_nit_vggsound" in hub
    assert "exp/clipsep_nit/packed_model.zip" not in hub
    assert _front(hub)["espnet2_clip"]["model"] == "user/clipsep_nit_vggsound"
    assert _section(hub, "Scores") == _section(text, "Scores")
    summary = card_summary(text, "x.zip:exp/clipsep_nit/README.md")
    assert summary[:5] == [
        "model card: x.zip:exp/clipsep_nit/README.md",
        "system: CLIPSep-NIT (clipsep_nit), text-queried sound separation (CLIPSep)",
        "training data: VGGSound, unknown number of clips, queries: image; videos missing: test 1 of 2, "
        "train 2 of 12",
        "query encoder: clip (open_clip ViT-B-32, weights openai)",
        "licence: cc-by-4.0"]
    assert summary[5] == "scores:"
    assert "  | CLIPSep-NIT (text-queried) | 7.00 ± 1.15 | 5.49 ± 0.45 | 7.00 | 4.74 |" in summary
    # a "## " line inside a code block is not a section
    fenced = text.replace("## Citation\n", "## Citation\n```\n## not a heading\n```\n")
    assert [n for n, _ in parse_card(fenced).sections][-1] == "Citation"
    for bad, msg in (("# no front matter\n", "no YAML front matter"), ("---\nlicense: x\n", "not closed"),
                     ("---\n- a list\n---\n", "not a YAML mapping"), ("---\nlicense: [\n---\n", "not YAML")):
        with pytest.raises(CardError, match=f"^card.md: .*{msg}"):
            parse_card(bad, "card.md")
    with pytest.raises(CardError, match="card.md: front matter has no 'espnet2_clip' facts"):
        card_summary("---\nlicense: mit\n---\n# someone else's card\n", "card.md")


def test_entry_point_writes_the_card_and_reports_bad_inputs_in_one_line(tmp_path, capsys):
    exp = tmp_path / "exp" / "clipsep_nit"
    exp.mkdir(parents=True)
    (exp / "config.yaml").write_text(yaml.safe_dump(SEP_CONFIG))
    scp = tmp_path / "wav.scp"
    scp.write_text("a /a.wav\nb /b.wav\n")
    assert model_card_cli.main(["--exp_dir", str(exp), "--corpus", "vggsound", "--train_scp", str(scp),
                                "--results", str(tmp_path / "RESULTS.md"), "--license", "cc-by-nc-4.0"]) == 0
    text = (exp / "README.md").read_text()
    front = _front(text)
    assert front["license"] == "cc-by-nc-4.0"
    assert (front["espnet2_clip"]["training_clips"], front["espnet2_clip"]["scored"]) == (2, False)
    assert front["espnet2_clip"]["model"] == str(exp / "packed_model.zip")
    capsys.readouterr()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.yaml").write_text("batch_size: 4\n")
    (tmp_path / "list").mkdir()
    (tmp_path / "list" / "config.yaml").write_text("- 1\n")
    for argv, msg in (
            (["--exp_dir", str(tmp_path / "none")], f"--exp_dir {tmp_path / 'none'}: no config.yaml"),
            (["--exp_dir", str(tmp_path / "bad")], f"{tmp_path / 'bad' / 'config.yaml'}: neither a CLIPSep"),
            (["--exp_dir", str(tmp_path / "list")], f"{tmp_path / 'list' / 'config.yaml'}: not a YAML mapping"),
            (["--exp_dir", str(exp), "--train_scp", str(tmp_path / "no.scp"), "--output", str(tmp_path / "o.md")],
             f"--train_scp {tmp_path / 'no.scp'}: cannot read the training list")):
        assert model_card_cli.main(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"model_card: error: {msg}"), err
    assert not (tmp_path / "o.md").exists()


@pytest.mark.parametrize("config,expected", [
    ({"query_encoder_conf": {"model_name": "hf-hub:laion/CLIP-ViT-B-32"}},
     "clip (open_clip hf-hub:laion/CLIP-ViT-B-32)"),
    ({"query_encoder": "bert", "query_encoder_conf": {"model_name_or_path": "org/bert"}},
     "bert (model_name_or_path=org/bert)"),
    ({"query_encoder_conf": {"model_name": "/x/exp/clip/open_clip_config.json",
                             "pretrained": "/x/exp/clip/open_clip_model.safetensors"}},
     "clip (open_clip open_clip_config.json, weights open_clip_model.safetensors)"),
])
def test_encoder_summary_names_hub_models_in_full_and_local_files_by_name(config, expected):
    from espnet2_clip.utils.model_card import encoder_summary

    assert encoder_summary(config) == expected
