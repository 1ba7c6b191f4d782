"""End to end on CPU: CLI training (1 epoch), text-queried inference, scoring, pack + reload."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from shared_helpers import tiny_clipsep_config, train_clipsep, write_clips

SR = 16000
CLIP = 4095  # 64 STFT frames with hop 64


def write_test_mixtures(root, num=3):
    rng = np.random.default_rng(1)
    scp = {"wav": [], "spk1": [], "spk2": [], "text": []}
    for i in range(num):
        t = np.arange(CLIP * 2) / SR
        s1 = 0.3 * np.sin(2 * np.pi * 500 * t)
        s2 = 0.3 * rng.standard_normal(len(t))
        for key, x in (("spk1", s1 / 2), ("spk2", s2 / 2), ("wav", (s1 + s2) / 2)):
            sf.write(root / f"m{i}_{key}.wav", x.astype(np.float32), SR)
            scp[key].append(f"m{i} {root / f'm{i}_{key}.wav'}\n")
        scp["text"].append(f"m{i} a pure tone\n")
    for key, lines in scp.items():
        (root / ("text" if key == "text" else f"{key}.scp")).write_text("".join(lines))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_clip_dir):
    root = tmp_path_factory.mktemp("clipsep")
    data = root / "data"
    data.mkdir()
    write_clips(data)
    return root, train_clipsep(root, data, tiny_clipsep_config(tiny_clip_dir, CLIP, head="nit"))


def test_training_writes_checkpoints_and_config(trained):
    _, exp = trained
    config = yaml.safe_load((exp / "config.yaml").read_text())
    assert config["head"] == "nit" and config["clip_samples"] == CLIP
    assert (exp / "valid.loss.best.pth").exists()
    state = torch.load(exp / "valid.loss.best.pth", map_location="cpu")
    assert "head.noise_proj.0.weight" in state


def test_inference_and_scoring_cli(trained):
    from espnet2_clip.bin import clipsep_inference, clipsep_scoring

    root, exp = trained
    test = root / "test"
    test.mkdir(exist_ok=True)
    write_test_mixtures(test)
    out = root / "decode"
    clipsep_inference.main([
        "--train_config", str(exp / "config.yaml"), "--model_file", str(exp / "valid.loss.best.pth"),
        "--mix_scp", str(test / "wav.scp"), "--query_text", str(test / "text"), "--output_dir", str(out),
    ])
    lines = (out / "spk1.scp").read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["m0", "m1", "m2"]
    est, fs = sf.read(lines[0].split(maxsplit=1)[1])
    mix, _ = sf.read(test / "m0_wav.wav")
    assert fs == SR and est.shape == mix.shape
    assert np.all(np.isfinite(est)) and 0 < np.abs(est).max() <= np.abs(mix).max() * 1.01 + 1e-3
    clipsep_scoring.main([
        "--ref_scp", str(test / "spk1.scp"), "--interf_scp", str(test / "spk2.scp"),
        "--mix_scp", str(test / "wav.scp"), "--est_scp", str(out / "spk1.scp"),
        "--output_dir", str(out / "scoring"), "--backend", "fast",
    ])
    result = json.loads((out / "scoring" / "result.json").read_text())
    assert result["count"] == 3 and result["estimate"]["SDR"]["count"] == 3
    assert np.isfinite(result["estimate"]["SDR"]["mean"]) and np.isfinite(result["SDRi"]["mean"])
    assert (out / "scoring" / "SDR_spk1").read_text().count("\n") == 3


def test_missing_query_is_a_clear_error(trained):
    from espnet2_clip.bin import clipsep_inference

    root, exp = trained
    test = root / "test"
    test.mkdir(exist_ok=True)
    write_test_mixtures(test)
    (test / "text_short").write_text("m0 a tone\n")
    with pytest.raises(ValueError, match="no query for 2 mixtures"):
        clipsep_inference.main([
            "--train_config", str(exp / "config.yaml"), "--model_file", str(exp / "valid.loss.best.pth"),
            "--mix_scp", str(test / "wav.scp"), "--query_text", str(test / "text_short"),
            "--output_dir", str(root / "decode_bad"),
        ])
    assert not (root / "decode_bad" / "spk1.scp").exists()


def test_decode_sets_in_one_call_equal_separate_calls(trained):
    """--decode_sets: several sets (here: one with text queries, a subset with embedding queries) with one
    model load give exactly the estimates of one call per set; a bad line is named before any work."""
    from espnet2_clip.bin import clipsep_inference

    root, exp = trained
    test = root / "test"
    test.mkdir(exist_ok=True)
    write_test_mixtures(test)
    (test / "wav_sub.scp").write_text("".join(line + "\n" for line in (test / "wav.scp").read_text().split("\n")[1:3]))
    for key in ("m1", "m2"):
        np.save(test / f"{key}_emb.npy", np.random.default_rng(int(key[1])).standard_normal(32).astype(np.float32))
    (test / "emb.scp").write_text("".join(f"{k} {test / (k + '_emb.npy')}\n" for k in ("m1", "m2")))
    model = ["--train_config", str(exp / "config.yaml"), "--model_file", str(exp / "valid.loss.best.pth")]
    sets = [["--mix_scp", str(test / "wav.scp"), "--query_text", str(test / "text")],
            ["--mix_scp", str(test / "wav_sub.scp"), "--query_embedding", str(test / "emb.scp")]]
    for i, options in enumerate(sets):
        clipsep_inference.main(model + options + ["--output_dir", str(root / f"one_{i}")])
    (root / "sets").write_text("".join(" ".join(o + ["--output_dir", f"'{root / f'all {i}'}'"]) + "\n"
                                       for i, o in enumerate(sets)))
    clipsep_inference.main(model + ["--decode_sets", str(root / "sets")])
    for i, keys in enumerate((["m0", "m1", "m2"], ["m1", "m2"])):
        one = dict(line.split(maxsplit=1) for line in (root / f"one_{i}" / "spk1.scp").read_text().splitlines())
        both = dict(line.split(maxsplit=1) for line in (root / f"all {i}" / "spk1.scp").read_text().splitlines())
        assert sorted(one) == sorted(both) == keys
        for key in keys:
            np.testing.assert_array_equal(sf.read(one[key])[0], sf.read(both[key])[0])
    (root / "bad_sets").write_text(" ".join(sets[0] + ["--output_dir", str(root / "bad_0")]) + "\n"
                                   + " ".join(sets[1]) + "\n")
    with pytest.raises(ValueError, match=r"bad_sets, line 2: .*--output_dir"):
        clipsep_inference.main(model + ["--decode_sets", str(root / "bad_sets")])
    assert not (root / "bad_0").exists()  # checked before the first set is separated
    with pytest.raises(ValueError, match="not on the command line"):
        clipsep_inference.main(model + ["--decode_sets", str(root / "sets"), "--query_text", str(test / "text")])


def test_pack_unpack_offline_and_reload_identical(trained, monkeypatch, tiny_clip_dir):
    from espnet2.bin import pack

    from espnet2_clip.bin.clipsep_inference import TextQueriedSeparation

    root, exp = trained
    monkeypatch.chdir(root)
    clip_files = [tiny_clip_dir / "open_clip_config.json", tiny_clip_dir / "open_clip_model.safetensors"]
    # pack stores files relative to the working directory: copy the CLIP files under it
    local = root / "exp" / "clip"
    local.mkdir(exist_ok=True)
    for f in clip_files:
        (local / f.name).write_bytes(f.read_bytes())
    config = yaml.safe_load((exp / "config.yaml").read_text())
    config["query_encoder_conf"] = {
        "model_name": "exp/clip/open_clip_config.json", "pretrained": "exp/clip/open_clip_model.safetensors",
    }
    (exp / "config.yaml").write_text(yaml.safe_dump(config))
    pack.main([
        "enh", "--train_config", "exp/config.yaml", "--model_file", "exp/valid.loss.best.pth",
        "--option", "exp/clip/open_clip_config.json", "--option", "exp/clip/open_clip_model.safetensors",
        "--outpath", "packed/model.zip",
    ])
    mixture = np.random.default_rng(2).standard_normal(CLIP * 3).astype(np.float32) * 0.1
    original = TextQueriedSeparation("exp/config.yaml", "exp/valid.loss.best.pth")
    expected = original(mixture, SR, "a pure tone")
    (root / "elsewhere").mkdir()
    monkeypatch.chdir(root / "elsewhere")  # the unpacked model must not depend on the old paths
    loaded = TextQueriedSeparation.from_pretrained(str(root / "packed" / "model.zip"), cachedir=str(root / "cache"))
    assert str(root / "cache") in str(loaded.embedder.encoder_conf["pretrained"])
    np.testing.assert_allclose(loaded(mixture, SR, "a pure tone"), expected, atol=1e-6)


def test_pit_without_query_separates_into_complements_and_is_oracle_scored(tmp_path):
    """PIT: trained without queries; inference writes head 0 and its complement; oracle scoring."""
    from espnet2_clip.bin import clipsep_inference, clipsep_scoring

    data = tmp_path / "data"
    data.mkdir()
    write_clips(data, num=4)
    config = {"frontend_conf": {"n_fft": 256, "hop_length": 64, "num_warped_bins": 64},
              "unet_conf": {"num_downs": 5, "base_channels": 4, "out_channels": 4},
              "head": "pit", "train_query": "none", "clip_samples": CLIP, "batch_size": 4, "max_epoch": 1,
              "num_workers": 0, "seed": 0}
    exp = train_clipsep(tmp_path, data, config, queries=False)
    test = tmp_path / "test"
    test.mkdir()
    write_test_mixtures(test, num=2)
    out = tmp_path / "decode_none"
    clipsep_inference.main(["--train_config", str(exp / "config.yaml"), "--model_file", str(exp / "latest.pth"),
                            "--mix_scp", str(test / "wav.scp"), "--output_dir", str(out)])
    first = dict(line.split() for line in (out / "spk1.scp").read_text().splitlines())
    second = dict(line.split() for line in (out / "spk2.scp").read_text().splitlines())
    mix, _ = sf.read(test / "m0_wav.wav")
    est1, est2 = sf.read(first["m0"])[0], sf.read(second["m0"])[0]
    # complementary masks with the mixture phase: the two outputs add back up to the mixture
    assert np.abs(est1 + est2 - mix).max() < 1e-3 * np.abs(mix).max()
    assert np.abs(est1).max() > 0 and np.abs(est2).max() > 0
    result = clipsep_scoring.run_scoring(str(test / "spk1.scp"), str(test / "spk2.scp"), str(test / "wav.scp"),
                                         [str(out / "spk1.scp"), str(out / "spk2.scp")], str(out / "scoring"), "fast")
    assert result["count"] == 2 and result["selection"].startswith("oracle")
    assert (out / "scoring" / "selected").read_text().count("\n") == 2


def _separator(exp, tiny_clip_dir):
    """The trained model with absolute CLIP paths (the pack test rewrites config.yaml relative to its cwd)."""
    from espnet2_clip.bin.clipsep_inference import TextQueriedSeparation

    clip = {"model_name": str(tiny_clip_dir / "open_clip_config.json"),
            "pretrained": str(tiny_clip_dir / "open_clip_model.safetensors")}
    return TextQueriedSeparation(exp / "config.yaml", exp / "valid.loss.best.pth", query_encoder_conf=clip)


def test_official_length_is_the_length_free_istft(trained, tiny_clip_dir):
    """``output_length="istft"`` keeps what the official evaluation scores: the inverse STFT without a
    length of the soft-masked mixture (hop * (N // hop) samples: 65,280 of 65,535 at the paper's hop)."""
    _, exp = trained
    sep = _separator(exp, tiny_clip_dir)
    mixture = np.random.default_rng(3).standard_normal(CLIP).astype(np.float32) * 0.1
    official = sep(mixture, SR, "a pure tone", output_length="istft")
    full = sep(mixture, SR, "a pure tone")
    hop = sep.model.frontend.hop_length
    assert official.shape == (hop * (CLIP // hop),) == (4032,) and full.shape == (CLIP,)
    # by hand: soft mask (un-warped) times the mixture STFT, iSTFT with no length
    model, x = sep.model, torch.from_numpy(mixture)[None]
    with torch.no_grad():
        spec = model.frontend.stft(x)
        masks = model.head.masks(model.features(model.frontend.warp(spec.abs())), sep.embed_query("a pure tone"))
        est = model.frontend.istft(spec * model.frontend.unwarp(masks[:, 0]))
    np.testing.assert_allclose(official, est[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(full[: len(official)], official, atol=1e-6)
    with pytest.raises(ValueError, match="output_length"):
        sep(mixture, SR, "a pure tone", output_length="half")


def test_image_query_is_the_mean_embedding_of_three_frames(trained, tmp_path, tiny_clip_dir):
    """The test image query (frames c-1, c, c+1, as build_test_mixtures lists them) is the mean CLIP
    embedding of the three frames, not the centre frame's."""
    import shlex

    from PIL import Image

    from espnet2_clip.query.inference_io import QueryLists, add_query_arguments

    _, exp = trained
    sep = _separator(exp, tiny_clip_dir)
    folder = tmp_path / "frames of a video"
    folder.mkdir()
    paths = []
    for i, colour in enumerate(((250, 10, 10), (10, 250, 10), (10, 10, 250))):
        paths.append(folder / f"{i + 4:06d}.jpg")
        Image.new("RGB", (40, 40), colour).save(paths[-1])
    (tmp_path / "query_image.scp").write_text("m0 " + " ".join(shlex.quote(str(p)) for p in paths) + "\n")
    import argparse

    parser = argparse.ArgumentParser()
    add_query_arguments(parser, required=False)
    kind, frames = QueryLists(parser.parse_args(["--query_image", str(tmp_path / "query_image.scp")]))["m0"]
    assert kind == "frames"
    assert len(frames) == 3
    query = sep.embed_query(frames)
    each = sep.query_encoder.encode_images(frames)
    assert each.shape[0] == 3 and not torch.allclose(each[0], each[1], atol=1e-4)
    torch.testing.assert_close(query[0], each.mean(0))
    assert not torch.allclose(query[0], each[1], atol=1e-4)  # not the centre frame alone
