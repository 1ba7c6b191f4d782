"""Evaluation CLIs (classifier training, scoring, RESULTS.md) and CLIPSonic bad input through the CLI."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

SR = 16000
CLASSES = {"low": 300.0, "high": 3000.0, "noise": None}


def make_clip(kind, rng, seconds=1.0):
    t = np.arange(int(seconds * SR)) / SR
    if CLASSES[kind] is None:
        x = 0.1 * rng.standard_normal(len(t))
    else:
        x = 0.3 * np.sin(2 * np.pi * CLASSES[kind] * (1 + 0.05 * rng.standard_normal()) * t)
    return x.astype(np.float32)


def write_set(root, name, per_class, seed, kinds=None):
    """wav.scp + label of clips of each class (or of ``kinds``, labelled as ``CLASSES`` order)."""
    rng = np.random.default_rng(seed)
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    wav, lab = [], []
    for k, cls in enumerate(CLASSES):
        for i in range(per_class):
            kind = kinds[k] if kinds else cls
            uid = f"{k:02d}_{i:02d}"
            sf.write(d / f"{uid}.wav", make_clip(kind, rng), SR)
            wav.append(f"{uid} {d / f'{uid}.wav'}\n")
            lab.append(f"{uid} {cls}\n")
    (d / "wav.scp").write_text("".join(wav))
    (d / "label").write_text("".join(lab))
    return d


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    from espnet2_clip.bin import train_audio_classifier

    root = tmp_path_factory.mktemp("clf")
    train = write_set(root, "train", 6, 0)
    valid = write_set(root, "valid", 2, 1)
    train_audio_classifier.main([
        "--train_scp", str(train / "wav.scp"), "--train_label", str(train / "label"),
        "--valid_scp", str(valid / "wav.scp"), "--valid_label", str(valid / "label"),
        "--output_dir", str(root / "exp"), "--clip_samples", "8000", "--steps", "40", "--batch_size", "8",
        "--classifier_conf", "{n_mels: 32, channels: [8, 16], embed_dim: 16}",
    ])
    return root


def test_classifier_training_learns(classifier):
    info = json.loads((classifier / "exp" / "train_info.json").read_text())
    assert info["valid_accuracy"] == 1.0 and info["class_names"] == sorted(CLASSES)
    config = yaml.safe_load((classifier / "exp" / "config.yaml").read_text())
    assert config["classifier_conf"]["n_mels"] == 32


def test_score_and_report(classifier, tmp_path):
    from espnet2_clip.bin import clipsonic_eval

    root = classifier
    ref = write_set(tmp_path, "ref", 3, 2)
    good = write_set(tmp_path, "good", 3, 3)
    # "generated" clips that ignore their query: every clip is noise
    bad = write_set(tmp_path, "bad", 3, 4, kinds=["noise", "noise", "noise"])
    results = {}
    for name, w in (("good", 3.0), ("bad", 1.0)):
        out = tmp_path / "exp" / "model" / f"gen_{name}" / "scoring"
        clipsonic_eval.main([
            "score", "--gen_scp", str(tmp_path / name / "wav.scp"), "--gen_label", str(tmp_path / name / "label"),
            "--classifier_dir", str(root / "exp"), "--ref_scp", str(ref / "wav.scp"), "--output_dir", str(out),
            "--meta", "system=model", "variant=IQ" if name == "good" else "variant=ZS", f"guidance_scale={w}",
        ])
        results[name] = json.loads((out / "result.json").read_text())
    assert results["good"]["relevance"]["accuracy"] == 1.0
    assert results["bad"]["relevance"]["accuracy"] == pytest.approx(1 / 3)
    assert results["bad"]["relevance"]["chance"] == pytest.approx(1 / 3)
    assert results["good"]["fd"] < results["bad"]["fd"]
    assert results["good"]["meta"] == {"system": "model", "variant": "IQ", "guidance_scale": 3.0}
    assert results["bad"]["relevance"]["per_class"]["noise"] == 1.0

    real = tmp_path / "real"
    clipsonic_eval.main(["score", "--gen_scp", str(good / "wav.scp"), "--gen_label", str(good / "label"),
                         "--classifier_dir", str(root / "exp"), "--ref_scp", str(ref / "wav.scp"),
                         "--output_dir", str(real)])
    clipsonic_eval.main(["report", "--exp_dir", str(tmp_path / "exp"), "--output", str(tmp_path / "RESULTS.md"),
                         "--plot", str(tmp_path / "sweep.png"), "--main_guidance", "3",
                         "--real_result", str(real / "result.json"), "--note", "a note"])
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| CLIPSonic-IQ | image | 100.0 |" in text
    assert "| CLIPSonic-ZS | text (direct) | 33.3 |" in text  # nearest scale when w=3 is missing
    assert "| Real audio (held out) | – | 100.0 |" in text
    assert "| Variant | w = 1 | w = 3 |" in text and "| ZS | 33.3 / " in text and "- a note" in text
    assert (tmp_path / "sweep.png").stat().st_size > 5000


def test_reference_embeddings_are_cached_per_model_and_reference_list(classifier, tmp_path, monkeypatch):
    """With --ref_cache_dir the reference clips are embedded once for many scorings (same FD as without
    the cache); a changed reference file or classifier gives a new embedding, never a stale one."""
    from espnet2_clip.bin import clipsonic_eval

    ref = write_set(tmp_path, "ref", 2, 2)
    gen = write_set(tmp_path, "gen", 2, 3)
    reads = []
    real_read = clipsonic_eval.read_waves
    monkeypatch.setattr(clipsonic_eval, "read_waves", lambda scp, *a: reads.append(scp) or real_read(scp, *a))

    def fd(*cache):
        out = tmp_path / f"out{len(reads)}"
        clipsonic_eval.main(["score", "--gen_scp", str(gen / "wav.scp"), "--gen_label", str(gen / "label"),
                             "--classifier_dir", str(classifier / "exp"), "--ref_scp", str(ref / "wav.scp"),
                             "--output_dir", str(out), *cache])
        return json.loads((out / "result.json").read_text())["fd"]

    cache = ["--ref_cache_dir", str(tmp_path / "cache")]
    plain = fd()
    first, second = fd(*cache), fd(*cache)
    assert first == pytest.approx(plain, rel=1e-6) and second == first
    assert [r.endswith("ref/wav.scp") for r in reads] == [False, True, False, True, False]  # 2nd cached run: gen only
    assert len(list((tmp_path / "cache").glob("classifier_*.npy"))) == 1
    sf.write(ref / "00_00.wav", make_clip("noise", np.random.default_rng(9)), SR)  # a reference changes
    changed = fd(*cache)
    assert reads[-1].endswith("ref/wav.scp") and changed != pytest.approx(first)
    assert len(list((tmp_path / "cache").glob("classifier_*.npy"))) == 2
    monkeypatch.setattr(clipsonic_eval, "REFERENCE_CHUNK", 4)  # 6 reference clips in chunks of 4 and 2
    chunked = fd()
    assert chunked == pytest.approx(changed, rel=1e-6) and reads[-2:] == [reads[-1]] * 2


def test_score_errors(classifier, tmp_path):
    from espnet2_clip.bin import clipsonic_eval

    gen = write_set(tmp_path, "gen", 1, 5)
    common = ["score", "--gen_scp", str(gen / "wav.scp"), "--output_dir", str(tmp_path / "out")]
    (tmp_path / "partial").write_text("00_00 low\n")
    with pytest.raises(ValueError, match="have no label"):
        clipsonic_eval.main(common + ["--gen_label", str(tmp_path / "partial")])
    (tmp_path / "unknown").write_text("".join(f"{u} violin\n" for u in ("00_00", "01_00", "02_00")))
    with pytest.raises(ValueError, match="unknown to the classifier"):
        clipsonic_eval.main(common + ["--gen_label", str(tmp_path / "unknown"),
                                      "--classifier_dir", str(classifier / "exp")])
    with pytest.raises(ValueError, match="needs --query_text"):
        clipsonic_eval.main(common + ["--gen_label", str(gen / "label"), "--clap_model", str(tmp_path / "x.pt")])
    with pytest.raises(ValueError, match="--fad_model needs --ref_scp"):
        clipsonic_eval.main(common + ["--gen_label", str(gen / "label"), "--fad_model", "vggish"])
    with pytest.raises(ValueError, match="no scored generations"):
        clipsonic_eval.main(["report", "--exp_dir", str(tmp_path / "empty"), "--output", str(tmp_path / "R.md")])


def test_fad_and_clap_through_the_cli(tmp_path):
    """``--fad_model`` (a local VGGish stand-in) and ``--clap_model`` (a local save_pretrained CLAP): scored
    for every variant, in RESULTS.md as FAD / CLAP columns of the variant table and sweep tables."""
    from shared_helpers import save_tiny_clap

    from espnet2_clip.bin import clipsonic_eval
    from espnet2_clip.metrics.vggish import save_stand_in

    vggish, clap = save_stand_in(tmp_path / "vggish.pth"), save_tiny_clap(tmp_path / "clap")
    ref = write_set(tmp_path, "ref", 1, 2)
    for variant, seed, w in (("IQ", 3, 3), ("ZS", 4, 3), ("ZS", 5, 1)):
        gen = write_set(tmp_path, f"gen_{variant}_{w}", 1, seed)
        clipsonic_eval.main([
            "score", "--gen_scp", str(gen / "wav.scp"), "--gen_label", str(gen / "label"), "--ref_scp",
            str(ref / "wav.scp"), "--fad_model", str(vggish), "--clap_model", str(clap), "--query_text",
            str(gen / "label"), "--output_dir", str(tmp_path / "exp" / gen.name / "scoring"),
            "--meta", "system=m", f"variant={variant}", f"guidance_scale={w}"])
    result = json.loads((tmp_path / "exp" / "gen_ZS_3" / "scoring" / "result.json").read_text())
    assert result["fad_vggish"] >= 0 and result["fad_model"] == str(vggish)
    assert result["clap"]["model"] == str(clap) and len(result["clap"]["per_clip"]) == 3
    text = clipsonic_eval.main(["report", "--exp_dir", str(tmp_path / "exp"), "--output", str(tmp_path / "R.md"),
                                "--plot", str(tmp_path / "sweep.png")]) or (tmp_path / "R.md").read_text()
    assert "| System | Query | Relevance (%) ↑ | FD ↓ | FAD ↓ | CLAP ↑ | Clips |" in text
    assert f"| CLIPSonic-ZS | text (direct) | – | – | {result['fad_vggish']:.2f} | {result['clap']['mean']:.3f} | 3 |" in text
    assert "## Guidance-scale sweep (FAD ↓)" in text and "## Guidance-scale sweep (CLAP ↑)" in text
    assert f"model: {vggish})" in text and f"model: {clap})" in text
    iq = json.loads((tmp_path / "exp" / "gen_IQ_3" / "scoring" / "result.json").read_text())
    assert f"| IQ | – | {iq['fad_vggish']:.2f} |" in text  # sweep rows: w = 1 missing for IQ


# ------------------------------------------------------------------ bad input through the generation CLI
MEL = {"fs": SR, "n_fft": 256, "hop_length": 64, "n_mels": 16, "fmin": 0, "fmax": 8000}
UNET = {"cond_dim": 32, "channels": [8], "attention_levels": [], "emb_dim": 16, "groups": 4}


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    """An (untrained) CLIPSonic model and a vocoder of ANOTHER mel configuration, saved like training does."""
    from espnet2_clip.tasks.clipsonic import CLIPSonicTask
    from espnet2_clip.tasks.vocoder import HiFiGANVocoderTask

    root = tmp_path_factory.mktemp("untrained")
    torch.manual_seed(0)
    args = CLIPSonicTask.get_parser().parse_args(["--mel_conf", str(MEL), "--unet_conf", str(UNET)])
    model = CLIPSonicTask.build_model(args)
    args.clip_samples = 4095
    args.query_encoder = None
    (root / "config.yaml").write_text(yaml.safe_dump(vars(args)))
    torch.save(model.state_dict(), root / "model.pth")
    gen = {"channels": 8, "upsample_scales": [8, 8], "upsample_kernel_sizes": [16, 16],
           "resblock_kernel_sizes": [3], "resblock_dilations": [[1]]}
    vargs = HiFiGANVocoderTask.get_parser().parse_args(
        ["--mel_conf", str(dict(MEL, n_mels=20)), "--generator_params", str(gen)])
    vocoder = HiFiGANVocoderTask.build_model(vargs)
    (root / "voc.yaml").write_text(yaml.safe_dump(vars(vargs)))
    torch.save(vocoder.state_dict(), root / "voc.pth")
    np.save(root / "e.npy", np.ones(32, dtype=np.float32))
    (root / "emb.scp").write_text(f"e0 {root / 'e.npy'}\n")
    return root


def _cli(root, *extra):
    from espnet2_clip.bin import clipsonic_inference

    clipsonic_inference.main(["--train_config", str(root / "config.yaml"), "--model_file", str(root / "model.pth"),
                              "--output_dir", str(root / "out"), "--num_steps", "2", *extra])


def test_cli_generates_from_an_embedding(untrained):
    _cli(untrained, "--query_embedding", str(untrained / "emb.scp"))
    wave, fs = sf.read(untrained / "out" / "wav" / "e0.wav")
    assert fs == SR and wave.shape == (4095,)


@pytest.mark.parametrize("extra, error, match", [
    (["--guidance_scale", "-1"], ValueError, "guidance_scale must be >= 0"),
    (["--num_steps", "0"], ValueError, "num_steps must be an integer >= 1"),
])
def test_cli_bad_sampling_options(untrained, extra, error, match):
    with pytest.raises(error, match=match):
        _cli(untrained, "--query_embedding", str(untrained / "emb.scp"), *extra)


def test_cli_empty_queries(untrained):
    (untrained / "empty_text").write_text("q0 \n")
    with pytest.raises(ValueError, match="'q0' has no value"):
        _cli(untrained, "--query_text", str(untrained / "empty_text"))
    (untrained / "none").write_text("")
    with pytest.raises(ValueError, match="query list is empty"):
        _cli(untrained, "--query_text", str(untrained / "none"))
    np.save(untrained / "z.npy", np.zeros(0, dtype=np.float32))
    (untrained / "z.scp").write_text(f"z0 {untrained / 'z.npy'}\n")
    with pytest.raises(ValueError, match="empty query embedding"):
        _cli(untrained, "--query_embedding", str(untrained / "z.scp"))


def test_cli_refuses_vocoder_of_another_mel_config(untrained):
    with pytest.raises(ValueError, match=r"another mel configuration .*n_mels: model 16 vs vocoder 20"):
        _cli(untrained, "--query_embedding", str(untrained / "emb.scp"),
             "--vocoder_config", str(untrained / "voc.yaml"), "--vocoder_file", str(untrained / "voc.pth"))


def test_cli_refuses_prior_of_another_embedding_size(untrained, tmp_path):
    from espnet2_clip.t2a.prior import DiffusionPrior, save_prior

    paths = save_prior(DiffusionPrior(embed_dim=16, hidden_dim=16, num_layers=1, time_dim=8), tmp_path / "prior")
    with pytest.raises(ValueError, match="prior works on 16-dim CLIP embeddings but the model is conditioned on 32"):
        _cli(untrained, "--query_embedding", str(untrained / "emb.scp"), "--prior_config", str(paths["prior_config"]),
             "--prior_file", str(paths["prior_file"]))


# ------------------------------------------------------------------ a guidance sweep in one pass, in parts
def _embeddings(root, n: int):
    rng = np.random.default_rng(3)
    lines = []
    for i in range(n):
        np.save(root / f"q{i}.npy", rng.standard_normal(32).astype(np.float32))
        lines.append(f"q{i} {root / f'q{i}.npy'}\n")
    (root / "queries.scp").write_text("".join(lines))
    return root / "queries.scp"


def _gen(root, out: str, *extra):
    from espnet2_clip.bin import clipsonic_inference

    clipsonic_inference.main(["--train_config", str(root / "config.yaml"), "--model_file", str(root / "model.pth"),
                              "--num_steps", "3", "--output_dir", out, *extra])
    return out


def _clips(scp):
    from espnet2_clip.utils.fileio import read_scp

    return {key: sf.read(path)[0] for key, path in read_scp(scp).items()}


def test_sweep_in_one_pass_and_parts_equal_separate_runs(untrained, tmp_path):
    """All guidance scales of a sweep in one pass, and the query list split over two jobs (--key_file),
    give the clips of one run per scale over the whole list: same seeds, same noise, same values."""
    queries = _embeddings(tmp_path, 3)
    state = torch.load(untrained / "model.pth")  # zero-initialised layers made random: the condition matters
    torch.manual_seed(1)
    state = {k: torch.randn_like(v) * 0.1 if v.is_floating_point() and not v.any() else v for k, v in state.items()}
    (tmp_path / "config.yaml").write_text((untrained / "config.yaml").read_text())
    torch.save(state, tmp_path / "model.pth")
    untrained = tmp_path
    alone = {w: _clips(Path(_gen(untrained, str(tmp_path / f"alone_{w}"), "--query_embedding", str(queries),
                                 "--guidance_scale", w)) / "wav.scp") for w in ("1", "2.5")}
    (tmp_path / "keys.1").write_text("q0\nq1\n")
    (tmp_path / "keys.2").write_text("q2\n")
    for job in (1, 2):
        _gen(untrained, str(tmp_path / "sweep_w{w}" / f"output.{job}"), "--query_embedding", str(queries),
             "--guidance_scale", "1", "2.5", "--key_file", str(tmp_path / f"keys.{job}"), "--batch_size", "2")
    for w in ("1", "2.5"):
        parts = {**_clips(tmp_path / f"sweep_w{w}" / "output.1" / "wav.scp"),
                 **_clips(tmp_path / f"sweep_w{w}" / "output.2" / "wav.scp")}
        assert sorted(parts) == ["q0", "q1", "q2"]
        for key, wave in alone[w].items():
            assert wave.shape == (4095,) and np.abs(wave).max() > 0
            # batch rounding, amplified by Griffin-Lim (it differs with the thread count: 1.2e-4 of the peak on one)
            np.testing.assert_allclose(parts[key], wave, rtol=0, atol=1e-3 * np.abs(wave).max())
        # ... far below what tells two queries apart
        assert np.abs(parts["q0"] - alone[w]["q1"]).max() > 0.1 * np.abs(alone[w]["q1"]).max()
    assert np.abs(alone["1"]["q0"] - alone["2.5"]["q0"]).max() > 1e-3  # the scale matters


@pytest.mark.parametrize("extra, match", [
    (["--guidance_scale", "1", "3"], r"must contain '\{w\}' when several guidance scales"),
    (["--guidance_scale", "x"], "'x' is not a number"),
    (["--key_file", "KEYS"], r"1 ids are not in --query_embedding, e.g. \['nope'\]"),
])
def test_sweep_bad_options(untrained, tmp_path, extra, match):
    (tmp_path / "keys").write_text("e0\nnope\n")
    extra = [str(tmp_path / "keys") if a == "KEYS" else a for a in extra]
    with pytest.raises(ValueError, match=match):
        _gen(untrained, str(tmp_path / "out"), "--query_embedding", str(untrained / "emb.scp"), *extra)
