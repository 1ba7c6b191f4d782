"""CLIPSonic end to end on CPU: 1-epoch CLI training, generation CLI, errors, pack + reload."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from shared_helpers import write_clips

SR = 16000
CLIP = 4095  # 64 mel frames with hop 64
MEL = {"fs": SR, "n_fft": 256, "hop_length": 64, "n_mels": 16, "fmin": 0, "fmax": 8000}
UNET = {"cond_dim": 32, "channels": [8, 16], "attention_levels": [1], "num_heads": 2, "emb_dim": 32, "groups": 4}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_clip_dir):
    from espnet2_clip.bin import clipsonic_train

    root = tmp_path_factory.mktemp("clipsonic")
    data = root / "data"
    data.mkdir()
    write_clips(data, num=6, bursts=False)
    config = {
        "mel_conf": MEL,
        "unet_conf": UNET,
        "model_conf": {"cond_drop_prob": 0.1},
        "query_encoder": "clip",
        "query_encoder_conf": {
            "model_name": str(tiny_clip_dir / "open_clip_config.json"),
            "pretrained": str(tiny_clip_dir / "open_clip_model.safetensors"),
        },
        "clip_samples": CLIP,
        "batch_size": 3,
        "max_epoch": 1,
        "use_matplotlib": False,
        "use_tensorboard": False,
        "num_workers": 0,
        "seed": 0,
        "optim": "adam",
        "optim_conf": {"lr": 0.001},
    }
    (root / "train.yaml").write_text(yaml.safe_dump(config))
    exp = root / "exp"
    data_args = []
    for mode in ("train", "valid"):
        data_args += [
            f"--{mode}_data_path_and_name_and_type", f"{data}/wav.scp,speech,sound",
            f"--{mode}_data_path_and_name_and_type", f"{data}/query.scp,query,npy",
            f"--{mode}_shape_file", f"{data}/wav.scp",
        ]
    clipsonic_train.main(["--config", str(root / "train.yaml"), "--output_dir", str(exp), "--ngpu", "0"] + data_args)
    return root, exp


def test_training_writes_checkpoint_and_config(trained):
    _, exp = trained
    config = yaml.safe_load((exp / "config.yaml").read_text())
    assert config["mel_conf"]["n_mels"] == 16 and config["clip_samples"] == CLIP
    state = torch.load(exp / "valid.loss.best.pth", map_location="cpu")
    assert "null_embedding" in state and state["null_embedding"].shape == (32,)


def test_generation_cli_text_and_embedding(trained):
    from espnet2_clip.bin import clipsonic_inference

    root, exp = trained
    (root / "text").write_text("q0 a pure tone\nq1 white noise\n")
    out = root / "gen_text"
    common = ["--train_config", str(exp / "config.yaml"), "--model_file", str(exp / "valid.loss.best.pth"),
              "--num_steps", "3", "--guidance_scale", "2.0"]
    clipsonic_inference.main(common + ["--query_text", str(root / "text"), "--output_dir", str(out),
                                       "--batch_size", "2"])
    lines = (out / "wav.scp").read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["q0", "q1"]
    for line in lines:
        wave, fs = sf.read(line.split(maxsplit=1)[1])
        assert fs == SR and wave.shape == (CLIP,) and np.all(np.isfinite(wave))
    assert not list((out / "wav").glob("*.tmp*"))  # atomic writes leave no temporaries
    (root / "emb.scp").write_text(f"e0 {root / 'data' / 'c1.npy'}\n")
    clipsonic_inference.main(common + ["--query_embedding", str(root / "emb.scp"),
                                       "--output_dir", str(root / "gen_emb")])
    wave, fs = sf.read((root / "gen_emb" / "wav" / "e0.wav"))
    assert fs == SR and wave.shape == (CLIP,)
    from PIL import Image

    frames = []
    for k in range(2):  # an image query may list several frames (their CLIP embeddings are averaged)
        Image.fromarray(np.full((40, 40, 3), 60 * k, dtype=np.uint8)).save(root / f"f{k}.png")
        frames.append(str(root / f"f{k}.png"))
    (root / "image.scp").write_text(f"i0 {' '.join(frames)}\n")
    clipsonic_inference.main(common + ["--query_image", str(root / "image.scp"), "--output_dir", str(root / "gen_img")])
    wave, fs = sf.read((root / "gen_img" / "wav" / "i0.wav"))
    assert fs == SR and wave.shape == (CLIP,)


def test_clips_above_full_scale_are_kept_whole_and_reported(trained, monkeypatch, caplog):
    from espnet2_clip.bin import clipsonic_inference

    root, exp = trained
    (root / "loud_text").write_text("q0 a pure tone\nq1 white noise\n")
    mel_to_wave = clipsonic_inference.TextToAudio.mel_to_wave
    peaks = iter([0.5, 0.5, 2.5, 0.5])  # w = 1 then w = 3, per query: only q0 at w = 3 goes above full scale

    def at_peak(self, mel):  # the tiny model's own level means nothing: set each clip's peak
        wave = mel_to_wave(self, mel)
        return wave * (next(peaks) / np.abs(wave).max())

    monkeypatch.setattr(clipsonic_inference.TextToAudio, "mel_to_wave", at_peak)
    out = root / "gen_loud_{w}"
    with caplog.at_level("WARNING"):
        clipsonic_inference.main(["--train_config", str(exp / "config.yaml"), "--model_file",
                                  str(exp / "valid.loss.best.pth"), "--num_steps", "2", "--batch_size", "2",
                                  "--guidance_scale", "1", "3", "--query_text", str(root / "loud_text"),
                                  "--output_dir", str(out)])
    loud, _ = sf.read(root / "gen_loud_3" / "wav" / "q0.wav")
    assert np.abs(loud).max() == pytest.approx(2.5)  # float WAV: nothing clipped
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "full scale" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("w = 3: 1 of 2 clips")
    assert "(highest 2.50;" in warnings[0]


def test_api_seed_determinism_and_bad_input(trained):
    from espnet2_clip.bin.clipsonic_inference import TextToAudio

    _, exp = trained
    t2a = TextToAudio(exp / "config.yaml", exp / "valid.loss.best.pth")
    assert t2a.variant == "ZS" and t2a.vocoder is None and t2a.sample_rate == SR
    a = t2a("a dog", guidance_scale=3.0, num_steps=2, seed=1)
    b = t2a("a dog", guidance_scale=3.0, num_steps=2, seed=1)
    c = t2a("a dog", guidance_scale=3.0, num_steps=2, seed=2)
    assert a.shape == (CLIP,) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # an item does not depend on its batch (up to float rounding of batched convolutions)
    batched = t2a.generate_mels(["a cat", "a dog"], guidance_scale=3.0, num_steps=2, seeds=[2, 1])
    single = t2a.generate_mel("a dog", guidance_scale=3.0, num_steps=2, seed=1)
    torch.testing.assert_close(batched[1], single, atol=1e-4, rtol=1e-4)
    assert len(t2a.generate(["a cat", "a dog"], num_steps=2, seeds=[2, 1])) == 2
    with pytest.raises(ValueError, match="empty text query"):
        t2a("   ")
    with pytest.raises(ValueError, match="empty query"):
        t2a(None)
    with pytest.raises(ValueError, match="empty query embedding"):
        t2a(np.zeros(0, dtype=np.float32))
    with pytest.raises(ValueError, match="guidance_scale must be >= 0"):
        t2a("a dog", guidance_scale=-0.5)
    with pytest.raises(ValueError, match="num_steps must be an integer >= 1"):
        t2a("a dog", num_steps=0)
    with pytest.raises(ValueError, match=r"query embedding must be \(32,\)"):
        t2a(np.ones(16, dtype=np.float32))
    # the convolutional U-Net generates other lengths than it was trained on
    longer = TextToAudio(exp / "config.yaml", exp / "valid.loss.best.pth", num_samples=3 * CLIP)
    wave = longer("a dog", guidance_scale=3.0, num_steps=2, seed=1)
    assert wave.shape == (3 * CLIP,) and np.isfinite(wave).all() and np.abs(wave).max() > 0
    with pytest.raises(ValueError, match="num_samples must be >= n_fft"):
        TextToAudio(exp / "config.yaml", exp / "valid.loss.best.pth", num_samples=10)


def test_prior_of_another_size_is_refused(trained, tmp_path):
    from espnet2_clip.bin.clipsonic_inference import TextToAudio
    from espnet2_clip.t2a.prior import DiffusionPrior, save_prior

    _, exp = trained
    paths = save_prior(DiffusionPrior(embed_dim=16, hidden_dim=16, num_layers=1, time_dim=8), tmp_path / "prior")
    with pytest.raises(ValueError, match="prior works on 16-dim CLIP embeddings but the model is conditioned on 32"):
        TextToAudio(exp / "config.yaml", exp / "valid.loss.best.pth", prior_config=paths["prior_config"])


def test_pd_with_prior(trained, tmp_path):
    from espnet2_clip.bin.clipsonic_inference import TextToAudio
    from espnet2_clip.t2a.prior import DiffusionPrior, save_prior

    _, exp = trained
    torch.manual_seed(0)
    paths = save_prior(DiffusionPrior(embed_dim=32, hidden_dim=32, num_layers=1, time_dim=8), tmp_path / "prior")
    t2a = TextToAudio(exp / "config.yaml", exp / "valid.loss.best.pth", prior_config=paths["prior_config"])
    assert t2a.variant == "PD"
    wave = t2a("a dog", num_steps=2, seed=0)
    assert wave.shape == (CLIP,) and np.all(np.isfinite(wave))
    np.testing.assert_array_equal(wave, t2a("a dog", num_steps=2, seed=0))


def tiny_laion_prior(dim, out):
    from espnet2_clip.t2a.laion_prior import LaionPrior, save_published_format

    torch.manual_seed(0)
    conf = dict(prior=dict(net=dict(dim=dim, depth=1, dim_head=8, heads=2, num_timesteps=100, max_text_len=77),
                           image_embed_dim=dim, timesteps=100, sample_timesteps=4, cond_drop_prob=0.1))
    save_published_format(LaionPrior.from_config(conf), conf, out)
    return out


def test_pd_with_the_laion_prior(trained, tmp_path, monkeypatch):
    """prior_config = a directory in the published LAION layout: text goes through the prior with its
    CLIP token encodings (one prompt: the model's first template)."""
    from espnet2_clip.bin.clipsonic_inference import TextToAudio
    from espnet2_clip.t2a.laion_prior import LaionPrior

    _, exp = trained
    t2a = TextToAudio(exp / "config.yaml", exp / "valid.loss.best.pth", prior_config=str(tiny_laion_prior(32, tmp_path / "laion")))
    assert t2a.variant == "PD" and isinstance(t2a.prior, LaionPrior)
    seen = []
    sample = t2a.prior.sample
    monkeypatch.setattr(t2a.prior, "sample", lambda *a, **k: seen.append(k["text_encodings"]) or sample(*a, **k))
    wave = t2a("a dog", num_steps=2, seed=0)
    assert wave.shape == (CLIP,) and np.all(np.isfinite(wave))
    np.testing.assert_array_equal(wave, t2a("a dog", num_steps=2, seed=0))
    enc = seen[0]
    assert enc.shape == (1, 77, 32)
    from espnet2_clip.query.clip_encoder import get_templates

    tokens = t2a.query_encoder.tokenizer([get_templates(t2a.embedder.text_prompt)[0].format("a dog")])
    assert int((enc[0] != 0).any(-1).sum()) == int(tokens.argmax(-1)) + 1  # start, words, end
    zs = TextToAudio(exp / "config.yaml", exp / "valid.loss.best.pth", use_prior=False)
    assert np.abs(zs("a dog", num_steps=2, seed=0) - wave).max() > 1e-4


def test_laion_prior_for_another_clip_is_refused(trained, tmp_path):
    from espnet2_clip.bin.clipsonic_inference import TextToAudio

    _, exp = trained
    with pytest.raises(ValueError, match=r"prior works on 16-dim CLIP embeddings but the model is conditioned on "
                                         r"32-dim ones of CLIP '.*tiny_clip.*'.*OpenAI ViT-L/14"):
        TextToAudio(exp / "config.yaml", exp / "valid.loss.best.pth", prior_config=str(tiny_laion_prior(16, tmp_path)))


def test_pack_unpack_offline_and_reload_identical(trained, monkeypatch, tiny_clip_dir):
    from espnet2.bin import pack

    from espnet2_clip.bin.clipsonic_inference import TextToAudio
    from espnet2_clip.t2a.prior import DiffusionPrior, save_prior

    root, exp = trained
    monkeypatch.chdir(root)
    torch.manual_seed(0)
    save_prior(DiffusionPrior(embed_dim=32, hidden_dim=32, num_layers=1, time_dim=8), exp / "prior")
    local = root / "exp" / "clip"
    local.mkdir(exist_ok=True)
    for name in ("open_clip_config.json", "open_clip_model.safetensors"):
        (local / name).write_bytes((tiny_clip_dir / name).read_bytes())
    config = yaml.safe_load((exp / "config.yaml").read_text())
    config["query_encoder_conf"] = {
        "model_name": "exp/clip/open_clip_config.json", "pretrained": "exp/clip/open_clip_model.safetensors",
    }
    config.update(prior_config="exp/prior/config.yaml", prior_file="exp/prior/prior.pth")  # packed: PD
    (exp / "config_pack.yaml").write_text(yaml.safe_dump(config))
    pack.main([
        "tts", "--train_config", "exp/config_pack.yaml", "--model_file", "exp/valid.loss.best.pth",
        "--option", "exp/clip/open_clip_config.json", "--option", "exp/clip/open_clip_model.safetensors",
        "--option", "exp/prior/config.yaml", "--option", "exp/prior/prior.pth", "--outpath", "packed/model.zip",
    ])
    expected = TextToAudio("exp/config_pack.yaml", "exp/valid.loss.best.pth")("a pure tone", num_steps=2, seed=3)
    (root / "elsewhere").mkdir()
    monkeypatch.chdir(root / "elsewhere")
    loaded = TextToAudio.from_pretrained(str(root / "packed" / "model.zip"), cachedir=str(root / "cache"))
    assert str(root / "cache") in str(loaded.embedder.encoder_conf["pretrained"])
    assert loaded.variant == "PD" and str(root / "cache") in str(loaded.train_args.prior_file)
    np.testing.assert_allclose(loaded("a pure tone", num_steps=2, seed=3), expected, atol=1e-6)
    # another prior given at load time replaces the packed one (its recorded prior.pth is not used)
    from espnet2_clip.t2a.laion_prior import LaionPrior

    laion = TextToAudio.from_pretrained(str(root / "packed" / "model.zip"), cachedir=str(root / "cache"),
                                        prior_config=str(tiny_laion_prior(32, root / "laion")))
    assert laion.variant == "PD" and isinstance(laion.prior, LaionPrior)


def test_generation_benchmark_prints_timings(trained, tmp_path, capsys):
    from espnet2_clip.bin import clipsonic_benchmark

    _, exp = trained
    out = tmp_path / "bench.json"
    assert clipsonic_benchmark.main([
        "--train_config", str(exp / "config.yaml"), "--model_file", str(exp / "valid.loss.best.pth"),
        "--query", "a dog", "--num_samples", str(2 * CLIP), "--num_steps", "2", "--repeats", "1",
        "--threads", "1", "--output", str(out),
    ]) == 0
    result = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == result
    assert result["audio_seconds"] == pytest.approx(2 * CLIP / SR, abs=1e-3) and result["num_steps"] == 2
    assert 0 < result["seconds_mel_sampling"] <= result["seconds_total"] * 1.5 and result["seconds_vocoder"] > 0
    assert result["rtf"] == pytest.approx(result["seconds_total"] / result["audio_seconds"], rel=0.01)
    assert result["vocoder"] == "Griffin-Lim" and result["variant"] == "ZS" and result["seconds_clip_text"] > 0
    assert "prior" not in result
    assert clipsonic_benchmark.main([  # PD: the prior's part is timed on its own
        "--train_config", str(exp / "config.yaml"), "--model_file", str(exp / "valid.loss.best.pth"),
        "--query", "a dog", "--num_steps", "2", "--repeats", "1", "--threads", "1", "--output", str(out),
        "--prior_config", str(tiny_laion_prior(32, tmp_path / "laion")),
    ]) == 0
    result = json.loads(out.read_text())
    assert result["variant"] == "PD" and result["prior"] == "LaionPrior"
    assert result["seconds_clip_text"] > 0 and result["seconds_text_to_condition"] > 0
