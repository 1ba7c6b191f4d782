"""``espnet2-clip``: every bad input is one clear stderr line, a non-zero exit and no partial output;
the inputs that work (all-zero, 8 / 192 kHz, 6 channels, video soundtracks, ...) give correct outputs."""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import yaml
from demo_page_helpers import check_site_in_browser, parse_page
from shared_helpers import write_clips

SR = 16000
CLIP = 4095
RESULTS = ("# RESULTS\n\n- text prompt at inference: single\n\n## SDR (the paper's Table 1 layout)\n\n"
           "| System | mean SDR ± s.e. | median SDR |\n|---|---:|---:|\n| Mixture | 0.10 ± 0.20 | 0.05 |\n"
           "| CLIPSep (text-queried) | 6.00 ± 0.30 | 5.90 |\n| CLIPSep-NIT (text-queried) | 7.50 ± 0.30 | 7.40 |\n")
BAD = "bad"  # expected exit != 0


def _clip_conf(tiny_clip_dir):
    return {"model_name": str(tiny_clip_dir / "open_clip_config.json"),
            "pretrained": str(tiny_clip_dir / "open_clip_model.safetensors")}


def _train_data(root, key):
    write_clips(root, num=4, seconds=2.0, bursts=False)
    args = []
    for mode in ("train", "valid"):
        args += [f"--{mode}_data_path_and_name_and_type", f"{root}/wav.scp,{key},sound",
                 f"--{mode}_data_path_and_name_and_type", f"{root}/query.scp,query,npy",
                 f"--{mode}_shape_file", f"{root}/wav.scp"]
    return args


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_clip_dir):
    """Tiny CLIPSep and CLIPSonic exp dirs (1 epoch), their zips, and broken variants."""
    from espnet2.main_funcs.pack_funcs import pack

    from espnet2_clip.bin import clipsep_train, clipsonic_train, model_card

    root = tmp_path_factory.mktemp("cli_models")
    common = {"query_encoder": "clip", "query_encoder_conf": _clip_conf(tiny_clip_dir), "clip_samples": CLIP,
              "max_epoch": 1, "num_workers": 0, "seed": 0, "optim": "adam", "optim_conf": {"lr": 0.001}}
    sep = dict(common, frontend_conf={"n_fft": 256, "hop_length": 64, "num_warped_bins": 64},
               unet_conf={"num_downs": 5, "base_channels": 4, "out_channels": 4}, head="nit", query="embedding",
               query_conf={"input_dim": 32}, batch_size=4)
    sonic = dict(common, mel_conf={"fs": SR, "n_fft": 256, "hop_length": 64, "n_mels": 16, "fmin": 0, "fmax": 8000},
                 unet_conf={"cond_dim": 32, "channels": [8, 16], "attention_levels": [1], "num_heads": 2,
                            "emb_dim": 32, "groups": 4}, batch_size=2, use_matplotlib=False, use_tensorboard=False,
                 model_conf={"ema_decay": 0.9})  # generated with averaged weights, as the recipes' models
    for name, config, train, key in (("sep", sep, clipsep_train, "speech_ref1"),
                                     ("sonic", sonic, clipsonic_train, "speech")):
        data = root / f"data_{name}"
        data.mkdir()
        (root / f"{name}.yaml").write_text(yaml.safe_dump(config))
        train.main(["--config", str(root / f"{name}.yaml"), "--output_dir", str(root / name), "--ngpu", "0"]
                   + _train_data(data, key))
    (root / "RESULTS.md").write_text(RESULTS)
    # the pack stage's model cards: the separator scored, the generator not (no RESULTS.md yet)
    assert model_card.main(["--exp_dir", str(root / "sep"), "--tag", "clipsep_nit", "--corpus", "vggsound",
                            "--results", str(root / "RESULTS.md"), "--train_scp", str(root / "data_sep" / "wav.scp"),
                            "--model_ref", "sep.zip"]) == 0
    assert model_card.main(["--exp_dir", str(root / "sonic"), "--tag", "clipsonic_iq", "--corpus", "mini_bridge",
                            "--results", str(root / "none" / "RESULTS.md"), "--train_query", "image"]) == 0
    cwd = os.getcwd()
    os.chdir(root)
    try:
        pack(files={"train_config": "sep/config.yaml", "model_file": "sep/valid.loss.best.pth"}, yaml_files={},
             outpath="sep.zip", option=["RESULTS.md", "sep/README.md"])
        pack(files={"train_config": "sonic/config.yaml", "model_file": "sonic/valid.loss.best.pth"}, yaml_files={},
             outpath="sonic.zip", option=["sonic/README.md"])
        pack(files={"train_config": "sep/config.yaml", "model_file": "sep/valid.loss.best.pth"}, yaml_files={},
             outpath="sep_nocard.zip", option=["RESULTS.md"])  # packed before model cards existed
    finally:
        os.chdir(cwd)
    for name, content in (("corrupt", b"this is not a checkpoint"), ("nockpt", None)):
        exp = root / name
        exp.mkdir()
        (exp / "config.yaml").write_text((root / "sep" / "config.yaml").read_text())
        if content is not None:
            (exp / "valid.loss.best.pth").write_bytes(content)
    return root


def _ffmpeg(*args):
    from espnet2_clip.data.video import ffmpeg_exe

    subprocess.run([ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Good and bad input files."""
    from PIL import Image

    d = tmp_path_factory.mktemp("cli_inputs")
    rng = np.random.default_rng(0)

    def tone(fs, seconds=1.5, channels=1):
        t = np.arange(int(fs * seconds)) / fs
        x = 0.2 * np.sin(2 * np.pi * 440 * t)[:, None] + 0.05 * rng.standard_normal((len(t), channels))
        return (x if channels > 1 else x[:, 0]).astype(np.float32)

    sf.write(d / "mono.wav", tone(SR), SR)
    sf.write(d / "stereo44.flac", tone(44100, channels=2), 44100)
    sf.write(d / "rate8k.wav", tone(8000), 8000)
    sf.write(d / "rate192k.wav", tone(192000, 0.5), 192000)
    sf.write(d / "six.wav", tone(SR, channels=6), SR)
    sf.write(d / "mono.ogg", tone(SR), SR)
    try:
        sf.write(d / "mono.mp3", tone(SR), SR, format="MP3")
    except Exception:  # libsndfile without mp3: the ogg case covers compressed input
        pass
    sf.write(d / "silent.wav", np.zeros(SR, np.float32), SR)
    for name, value in (("nan", np.nan), ("inf", np.inf)):
        x = tone(SR)
        x[SR // 2] = value
        sf.write(d / f"{name}.wav", x, SR, subtype="FLOAT")
    (d / "zero.wav").write_bytes(b"")
    (d / "text.wav").write_text("this is not audio\n" * 20)
    long = (d / "long.wav")
    sf.write(long, tone(SR, 3), SR, subtype="FLOAT")
    (d / "truncated.wav").write_bytes(long.read_bytes()[: 44 + 4 * SR // 2])
    Image.new("RGB", (48, 40), (200, 30, 30)).save(d / "red.png")
    (d / "notimage.png").write_text("not an image")
    _ffmpeg("-f", "lavfi", "-i", "color=c=red:s=64x64:d=2", "-c:v", "mpeg4", str(d / "noaudio.mp4"))
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "aac", str(d / "novideo.mp4"))
    _ffmpeg("-f", "lavfi", "-i", "color=c=blue:s=64x64:d=2", "-f", "lavfi", "-i",
            "sine=frequency=440:duration=2:sample_rate=22050", "-ac", "2", "-c:v", "mpeg4", "-c:a", "aac",
            "-shortest", str(d / "av.mp4"))
    return d


DEMO_QUERY = '<b>a violin</b> & "its bow"'


@pytest.fixture(scope="module")
def demo_dirs(tmp_path_factory, inputs):
    """Inputs dirs of ``espnet2-clip demo``: a good one (mono 16 kHz wav with a reference in refs/ and
    an HTML-like query in queries.tsv, stereo 44.1 kHz flac, a video's soundtrack), an empty one, one
    with an unreadable recording."""
    import shutil

    root = tmp_path_factory.mktemp("demo_inputs")
    good, empty, corrupt = root / "good", root / "empty", root / "corrupt"
    for d in (good, empty, corrupt, good / "refs"):
        d.mkdir()
    shutil.copy(inputs / "mono.wav", good / "mix1.wav")
    sf.write(good / "mix2.flac", np.random.default_rng(1).uniform(-0.3, 0.3, (2 * 44100, 2)), 44100)
    shutil.copy(inputs / "av.mp4", good / "clip.mp4")
    shutil.copy(inputs / "mono.wav", good / "refs" / "violin.wav")
    (good / "queries.tsv").write_text(f"mix1.wav\t{DEMO_QUERY}\trefs/violin.wav\n")
    shutil.copy(inputs / "mono.wav", corrupt / "a.wav")
    shutil.copy(inputs / "text.wav", corrupt / "b.wav")
    badref = root / "badref"
    (badref / "refs").mkdir(parents=True)
    shutil.copy(inputs / "mono.wav", badref / "a.wav")
    shutil.copy(inputs / "truncated.wav", badref / "refs" / "a.wav")
    (badref / "queries.tsv").write_text("a.wav\ta dog\trefs/a.wav\n")
    return root


def _readonly_dir(tmp_path):
    if os.geteuid() == 0:  # root writes through permission bits: use a directory no one can write to
        return "/sys/fs"
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    return str(ro)


# (id, argv template, expected: "ok" or a regex of the error line). {M}: models dir, {I}: inputs,
# {O}: a fresh output dir, {RO}: a read-only dir.
SEP = ["-m", "{M}/sep"]
GEN = ["-m", "{M}/sonic", "--steps", "2"]
CASES = [
    # separate
    ("sep-missing", ["separate", "{I}/nope.wav", "-q", "a dog", "-o", "{O}/o.wav"] + SEP, r"input '.*nope.wav': no such file"),
    ("sep-zero-byte", ["separate", "{I}/zero.wav", "-q", "a dog", "-o", "{O}/o.wav"] + SEP, r"zero.wav': empty \(0 bytes\)"),
    ("sep-truncated", ["separate", "{I}/truncated.wav", "-q", "a dog", "-o", "{O}/o.wav"] + SEP, r"truncated.wav'.*truncated"),
    ("sep-not-audio", ["separate", "{I}/text.wav", "-q", "a dog", "-o", "{O}/o.wav"] + SEP, r"text.wav': not readable audio"),
    ("sep-nan", ["separate", "{I}/nan.wav", "-q", "a dog", "-o", "{O}/o.wav"] + SEP, r"nan.wav': NaN or Inf sample at 0.500 s"),
    ("sep-inf", ["separate", "{I}/inf.wav", "-q", "a dog", "-o", "{O}/o.wav"] + SEP, r"inf.wav': NaN or Inf sample"),
    ("sep-silent", ["separate", "{I}/silent.wav", "-q", "a dog", "-o", "{O}/o.wav"] + SEP, "ok"),
    ("sep-8k", ["separate", "{I}/rate8k.wav", "-q", "a dog", "-o", "{O}/o.wav"] + SEP, "ok"),
    ("sep-192k", ["separate", "{I}/rate192k.wav", "-q", "a dog", "-o", "{O}/o.wav"] + SEP, "ok"),
    ("sep-6ch", ["separate", "{I}/six.wav", "-q", "a dog", "-o", "{O}/o.flac"] + SEP, "ok"),
    ("sep-stereo-44k", ["separate", "{I}/stereo44.flac", "-q", "a dog", "-o", "{O}/o.wav"] + SEP, "ok"),
    ("sep-ogg", ["separate", "{I}/mono.ogg", "-q", "a dog", "-o", "{O}/o.ogg"] + SEP, "ok"),
    ("sep-mp3", ["separate", "{I}/mono.mp3", "-q", "a dog", "-o", "{O}/o.wav"] + SEP, "ok"),
    ("sep-video-soundtrack", ["separate", "{I}/av.mp4", "-q", "a dog", "-o", "{O}/o.wav"] + SEP, "ok"),
    ("sep-video-no-audio", ["separate", "{I}/noaudio.mp4", "-q", "a dog", "-o", "{O}/o.wav"] + SEP, r"noaudio.mp4.*no audio track"),
    ("sep-image-not-image", ["separate", "{I}/mono.wav", "--image", "{I}/notimage.png", "-o", "{O}/o.wav"] + SEP, r"--image '.*notimage.png': not an image"),
    ("sep-image", ["separate", "{I}/mono.wav", "--image", "{I}/red.png", "-o", "{O}/o.wav"] + SEP, "ok"),
    ("sep-video-query-no-frames", ["separate", "{I}/mono.wav", "--video", "{I}/novideo.mp4", "-o", "{O}/o.wav"] + SEP, r"--video '.*novideo.mp4'.*no video"),
    ("sep-video-query", ["separate", "{I}/mono.wav", "--video", "{I}/av.mp4", "-q", "a dog", "-o", "{O}/o.wav"] + SEP, "ok"),
    ("sep-empty-query", ["separate", "{I}/mono.wav", "-q", "", "-o", "{O}/o.wav"] + SEP, r"-q: empty or whitespace-only"),
    ("sep-space-query", ["separate", "{I}/mono.wav", "-q", "   ", "-o", "{O}/o.wav"] + SEP, r"-q: empty or whitespace-only"),
    ("sep-long-query", ["separate", "{I}/mono.wav", "-q", "dog " * 250, "-o", "{O}/o.wav"] + SEP, "ok"),
    ("sep-negative", ["separate", "{I}/mono.wav", "-q", "a dog", "--negative", "a dog", "-o", "{O}/o.wav"] + SEP, "ok"),
    ("sep-no-query", ["separate", "{I}/mono.wav", "-o", "{O}/o.wav"] + SEP, r"no query"),
    ("sep-model-missing", ["separate", "{I}/mono.wav", "-q", "a dog", "-o", "{O}/o.wav", "-m", "{M}/nope.zip"], r"--model_tag '.*nope.zip': no such file"),
    ("sep-ckpt-corrupt", ["separate", "{I}/mono.wav", "-q", "a dog", "-o", "{O}/o.wav", "-m", "{M}/corrupt"], r"--model_tag '.*corrupt': cannot load the model"),
    ("sep-ckpt-missing", ["separate", "{I}/mono.wav", "-q", "a dog", "-o", "{O}/o.wav", "-m", "{M}/nockpt"], r"--model_tag '.*nockpt': no checkpoint"),
    ("sep-wrong-task", ["separate", "{I}/mono.wav", "-q", "a dog", "-o", "{O}/o.wav", "-m", "{M}/sonic.zip"], r"sonic.zip': a CLIPSonic .* needs a CLIPSep"),
    ("sep-model-not-zip", ["separate", "{I}/mono.wav", "-q", "a dog", "-o", "{O}/o.wav", "-m", "{I}/text.wav"], r"--model_tag '.*text.wav': not a zip"),
    ("sep-out-missing-dir", ["separate", "{I}/mono.wav", "-q", "a dog", "-o", "{O}/no/such/o.wav"] + SEP, r"directory '.*no/such' does not exist"),
    ("sep-out-readonly", ["separate", "{I}/mono.wav", "-q", "a dog", "-o", "{RO}/o.wav"] + SEP, r"is not writable"),
    ("sep-out-bad-ext", ["separate", "{I}/mono.wav", "-q", "a dog", "-o", "{O}/o.mp4"] + SEP, r"unsupported extension '.mp4'"),
    ("sep-plot", ["separate", "{I}/stereo44.flac", "-q", "a dog", "-q", "noise", "-o", "{O}/o.wav", "--plot", "{O}/p.png"] + SEP, "ok"),
    ("sep-device", ["separate", "{I}/mono.wav", "-q", "a dog", "-o", "{O}/o.wav", "--device", "tpu"] + SEP, r"--device 'tpu'"),
    ("sep-usage", ["separate", "{I}/mono.wav", "-q", "a dog"] + SEP, r"required: -o"),
    # generate
    ("gen-ok", ["generate", "a dog", "-n", "2", "-o", "{O}/g.wav"] + GEN, "ok"),
    ("gen-image", ["generate", "--image", "{I}/red.png", "-o", "{O}/g.flac"] + GEN, "ok"),
    ("gen-steps-0", ["generate", "a dog", "-o", "{O}/g.wav", "-m", "{M}/sonic", "--steps", "0"], r"--steps: expected at least 1"),
    ("gen-neg-guidance", ["generate", "a dog", "--guidance", "-1", "-o", "{O}/g.wav"] + GEN, r"--guidance: expected a scale >= 0"),
    ("gen-n-0", ["generate", "a dog", "-n", "0", "-o", "{O}/g.wav"] + GEN, r"-n: expected at least 1"),
    ("gen-empty", ["generate", "", "-o", "{O}/g.wav"] + GEN, r"TEXT: empty"),
    ("gen-image-not-image", ["generate", "--image", "{I}/notimage.png", "-o", "{O}/g.wav"] + GEN, r"not an image"),
    ("gen-wrong-task", ["generate", "a dog", "-o", "{O}/g.wav", "-m", "{M}/sep.zip"], r"a CLIPSep .* needs a CLIPSonic"),
    ("gen-out-missing-dir", ["generate", "a dog", "-o", "{O}/nodir/g.wav"] + GEN, r"does not exist"),
    ("gen-long-text", ["generate", "x" * 1000, "-o", "{O}/g.wav"] + GEN, "ok"),
    # embed
    ("emb-text", ["embed", "--text", "a dog", "-o", "{O}/e.npy", "-m", "{M}/sep.zip"], "ok"),
    ("emb-video", ["embed", "--video", "{I}/av.mp4", "-o", "{O}/e.npy", "-m", "{M}/sep"], "ok"),
    ("emb-unknown-clip", ["embed", "--text", "a dog", "-o", "{O}/e.npy", "--query_encoder", "clip", "--query_encoder_conf", "{model_name: no-such-clip-xyz}"], r"no-such-clip-xyz"),
    ("emb-image-not-image", ["embed", "--image", "{I}/notimage.png", "-o", "{O}/e.npy", "-m", "{M}/sep"], r"not an image"),
    ("emb-video-no-frames", ["embed", "--video", "{I}/novideo.mp4", "-o", "{O}/e.npy", "-m", "{M}/sep"], r"no video"),
    ("emb-space", ["embed", "--text", " \t ", "-o", "{O}/e.npy", "-m", "{M}/sep"], r"--text: empty or whitespace-only"),
    ("emb-bad-out", ["embed", "--text", "a dog", "-o", "{O}/e.txt", "-m", "{M}/sep"], r"expected a .npy path"),
    ("emb-missing-image", ["embed", "--image", "{I}/nope.png", "-o", "{O}/e.npy", "-m", "{M}/sep"], r"--image '.*nope.png': no such file"),
    # info
    ("info-zip", ["info", "{M}/sep.zip"], "ok"),
    ("info-exp", ["info", "{M}/sonic"], "ok"),
    ("info-zip-unscored", ["info", "{M}/sonic.zip"], "ok"),
    ("info-no-card", ["info", "{M}/sep_nocard.zip"], "ok"),
    ("info-missing", ["info", "{M}/none.zip"], r"no such file"),
    ("info-corrupt", ["info", "{M}/corrupt"], r"cannot read checkpoint"),
    ("info-not-zip", ["info", "{I}/red.png"], r"not a zip"),
    ("info-no-config", ["info", "{I}"], r"no config.yaml"),
    # demo
    ("demo-sep", ["demo", "--inputs", "{D}/good", "-q", "a dog", "-o", "{O}/site", "--max_seconds", "1"] + SEP, "ok"),
    ("demo-gen", ["demo", "-q", "a dog", "-q", DEMO_QUERY, "-n", "2", "-o", "{O}/site"] + GEN, "ok"),
    ("demo-empty-inputs", ["demo", "--inputs", "{D}/empty", "-q", "a dog", "-o", "{O}/site"] + SEP, r"--inputs '.*empty': no audio or video files"),
    ("demo-unknown-type", ["demo", "--inputs", "{I}", "-q", "a dog", "-o", "{O}/site"] + SEP, r"--inputs '.*notimage.png': unknown file type '.png'"),
    ("demo-missing-inputs", ["demo", "--inputs", "{D}/nope", "-q", "a dog", "-o", "{O}/site"] + SEP, r"--inputs '.*nope': no such directory"),
    ("demo-no-inputs", ["demo", "-q", "a dog", "-o", "{O}/site"] + SEP, r"--inputs: required for a CLIPSep model"),
    ("demo-unreadable-input", ["demo", "--inputs", "{D}/corrupt", "-q", "a dog", "-o", "{O}/site"] + SEP, r"--inputs '.*b.wav': not readable audio"),
    ("demo-bad-reference", ["demo", "--inputs", "{D}/badref", "-o", "{O}/site"] + SEP, r"reference '.*refs/a.wav': truncated WAV"),
    ("demo-no-query", ["demo", "--inputs", "{D}/good", "-o", "{O}/site"] + SEP, r"clip.mp4': no query; give -q TEXT"),
    ("demo-out-readonly", ["demo", "--inputs", "{D}/good", "-q", "a dog", "-o", "{RO}/site"] + SEP, r"-o '.*site': directory .* is not writable"),
    ("demo-out-missing-dir", ["demo", "--inputs", "{D}/good", "-q", "a dog", "-o", "{O}/no/site"] + SEP, r"directory '.*no' does not exist"),
    ("demo-out-not-a-site", ["demo", "--inputs", "{D}/good", "-q", "a dog", "-o", "{I}"] + SEP, r"a non-empty directory that is not a demo site"),
    ("demo-max-seconds", ["demo", "--inputs", "{D}/good", "-q", "a dog", "-o", "{O}/site", "--max_seconds", "0"] + SEP, r"--max_seconds: expected a length > 0"),
    ("demo-gen-audio-inputs", ["demo", "--inputs", "{D}/good", "-o", "{O}/site"] + GEN, r"a CLIPSonic model takes text prompts"),
    ("demo-gen-no-prompt", ["demo", "-o", "{O}/site"] + GEN, r"no prompt: give -q TEXT"),
    ("demo-gen-n-0", ["demo", "-q", "a dog", "-n", "0", "-o", "{O}/site"] + GEN, r"-n: expected at least 1"),
]


@pytest.mark.parametrize("name,argv,expected", CASES, ids=[c[0] for c in CASES])
def test_cli_input(name, argv, expected, models, inputs, demo_dirs, tmp_path, capsys, monkeypatch):
    from espnet2_clip.bin import cli

    if name == "sep-mp3" and not (inputs / "mono.mp3").exists():
        pytest.skip("libsndfile without mp3")
    monkeypatch.setenv("ESPNET2_CLIP_CACHE", str(models / "cache"))
    out = tmp_path / "out"
    out.mkdir()
    subs = {"{M}": str(models), "{I}": str(inputs), "{O}": str(out), "{RO}": _readonly_dir(tmp_path),
            "{D}": str(demo_dirs)}
    args = []
    for a in argv:
        for k, v in subs.items():
            a = a.replace(k, v)
        args.append(a)
    try:
        code = cli.main(args)
    except SystemExit as exc:  # usage errors
        code = exc.code
    captured = capsys.readouterr()
    err_lines = [line for line in captured.err.splitlines() if line.strip()]
    if expected == "ok":
        assert code == 0, captured.err
        assert not any("error" in line for line in err_lines), captured.err
        _check_output(name, out, inputs, models, captured)
    else:
        assert code not in (0, None), captured.err
        assert len(err_lines) == 1, captured.err
        assert "Traceback" not in captured.err
        import re

        assert re.search(r"error: ", err_lines[0]) and re.search(expected, err_lines[0]), err_lines[0]
        assert sorted(p.name for p in out.rglob("*")) == [], "partial output left behind"


def _check_output(name, out, inputs, models, captured):
    files = sorted(out.iterdir())
    if name.startswith("demo-"):
        _check_demo_site(name, out / "site", captured)
    elif name.startswith("sep-"):
        src = {"sep-silent": "silent.wav", "sep-8k": "rate8k.wav", "sep-192k": "rate192k.wav", "sep-6ch": "six.wav",
               "sep-stereo-44k": "stereo44.flac", "sep-ogg": "mono.ogg", "sep-mp3": "mono.mp3",
               "sep-plot": "stereo44.flac"}.get(name, "mono.wav")
        ref = sf.info(str(inputs / src)) if name != "sep-video-soundtrack" else None
        audio = [f for f in files if f.suffix != ".png"]
        for f in audio:
            est, fs = sf.read(f, always_2d=True)
            assert np.isfinite(est).all()
            if ref is not None:
                assert fs == ref.samplerate and est.shape == (ref.frames, ref.channels), (f, est.shape)
            else:
                assert fs == 22050 and est.shape[1] == 2 and abs(est.shape[0] - 2 * 22050) < 2048
        if name == "sep-silent":
            assert np.abs(sf.read(audio[0])[0]).max() == 0 and "all zeros" in captured.err
        if name == "sep-long-query":
            assert "truncated" in captured.err
        if name == "sep-negative":  # query + everything-except-query = the mixture
            pos, neg = (sf.read(out / f"o_{n}.wav")[0] for n in ("a_dog", "not_a_dog"))
            mix = sf.read(inputs / "mono.wav")[0]
            np.testing.assert_allclose(pos + neg, mix, atol=1e-4)
        if name == "sep-plot":
            assert [f.name for f in files] == ["o_a_dog.wav", "o_noise.wav", "p.png"]
            assert (out / "p.png").read_bytes()[:4] == b"\x89PNG"
        if name == "sep-video-query":
            assert [f.name for f in files] == ["o_a_dog.wav", "o_video_av.wav"]
    elif name.startswith("gen-"):
        want = ["g_0.wav", "g_1.wav"] if name == "gen-ok" else [f"g.{'flac' if name == 'gen-image' else 'wav'}"]
        assert [f.name for f in files] == want
        for f in files:
            wave, fs = sf.read(f)
            assert fs == SR and wave.shape == (CLIP,) and np.isfinite(wave).all()
        if name == "gen-long-text":
            assert "truncated" in captured.err
    elif name.startswith("emb-"):
        emb = np.load(out / "e.npy")
        assert emb.dtype == np.float32 and np.isfinite(emb).all()
        assert emb.shape == ((32,) if name == "emb-text" else (2, 32))
    elif name.startswith("info-"):
        _check_info(name, models, captured.out.splitlines())


def _check_info(name, models, lines):
    """``espnet2-clip info``: the model's facts, then its card's (or says it has none)."""
    task = "CLIPSonic (text-to-audio)" if name in ("info-exp", "info-zip-unscored") else "CLIPSep (text-queried"
    assert lines[1].startswith(f"task: {task}") and lines[4].startswith("parameters: ")
    # the weight average is a copy, not more parameters: the count is the U-Net's and the null embedding's
    averaged = name in ("info-exp", "info-zip-unscored")
    assert lines[4].endswith("MiB checkpoint, with their moving average)" if averaged else "MiB checkpoint)"), lines[4]
    if averaged:  # the count of the same model without an average
        from espnet2_clip.t2a.espnet_model import ESPnetCLIPSonicModel
        from espnet2_clip.t2a.mel import MelFrontend
        from espnet2_clip.t2a.unet import DiffusionUNet

        plain = ESPnetCLIPSonicModel(
            MelFrontend(fs=SR, n_fft=256, hop_length=64, n_mels=16, fmin=0, fmax=8000),
            DiffusionUNet(cond_dim=32, channels=(8, 16), attention_levels=(1,), num_heads=2, emb_dim=32, groups=4))
        expected = sum(v.numel() for v in plain.state_dict().values())
        assert lines[4].startswith(f"parameters: {expected:,} ("), lines[4]
    card = lines[lines.index("") + 1:]
    if name == "info-zip":
        assert card == [
            f"model card: {models}/sep.zip:sep/README.md",
            "system: CLIPSep-NIT (clipsep_nit), text-queried sound separation (CLIPSep)",
            "training data: VGGSound, 4 clips, queries: image; videos missing: no download report",
            "query encoder: clip (open_clip open_clip_config.json, weights open_clip_model.safetensors)",
            "licence: cc-by-4.0",
            "scores:",
            "  From the recipe's `RESULTS.md` (packed with the model): the rows of CLIPSep-NIT and the reference "
            "rows; BSS-eval v4 SDR / SIR / SAR (dB), mean ± standard error and median, on the recipe's test mixtures "
            "(only the test clips that could still be downloaded; see Training data).",
            "  ### SDR (the paper's Table 1 layout)",
            "  | System | mean SDR ± s.e. | median SDR |",
            "  |---|---:|---:|",
            "  | Mixture | 0.10 ± 0.20 | 0.05 |",
            "  | CLIPSep-NIT (text-queried) | 7.50 ± 0.30 | 7.40 |",
            "  - text prompt at inference: single"]
    elif name in ("info-exp", "info-zip-unscored"):
        where = f"{models}/sonic/README.md" if name == "info-exp" else f"{models}/sonic.zip:sonic/README.md"
        assert card[:2] == [f"model card: {where}",
                            "system: CLIPSonic (clipsonic_iq), text-to-audio generation (CLIPSonic)"]
        assert card[2].startswith("training data: bridge world, ")
        assert card[-2:] == ["variants: IQ, ZS", f"scores: Not scored: `{models}/none/RESULTS.md` does not exist "
                                                 "(the recipe's scoring stages have not run)."]
    else:  # packed without a card: says so, then the packed RESULTS.md
        assert card[0].startswith("model card: none (this model was packed without README.md")
        assert card[1:3] == ["RESULTS.md packed with the model:", ""] and card[3:] == RESULTS.strip().splitlines()


def _check_demo_site(name, site, captured):
    """The page of ``demo-sep`` / ``demo-gen``: its examples, players, spectrograms and references,
    the audio itself, and a headless browser that plays every player."""
    assert captured.out.strip() == str(site / "index.html")
    page = parse_page(site)
    if name == "demo-sep":
        # clip.mp4: "a dog"; mix1.wav: mixture, "a dog", DEMO_QUERY + its reference; mix2.flac: "a dog"
        assert page.examples == [{"audio": 2, "img": 2}, {"audio": 4, "img": 4}, {"audio": 2, "img": 2}]
        assert page.headings == ["a dog", "a dog", DEMO_QUERY, "a dog"]
        mix, est, ref = (sf.read(site / page.audio[i]) for i in (2, 3, 5))
        assert "reference" in page.audio[5] and "estimate" in page.audio[4]
        assert mix[1] == est[1] == SR and len(mix[0]) == len(est[0]) == SR  # the first --max_seconds 1
        assert not np.allclose(est[0], mix[0], atol=1e-3)  # the model's estimate, not the mixture again
        stereo, fs = sf.read(site / page.audio[6])
        assert fs == 44100 and stereo.shape == (44100, 2)
        assert sf.read(site / page.audio[0])[1] == 22050  # the video's soundtrack at its own rate
    else:
        assert page.examples == [{"audio": 2, "img": 2}, {"audio": 2, "img": 2}]
        clips = [sf.read(site / src) for src in page.audio]
        assert all(fs == SR and wave.shape == (CLIP,) for wave, fs in clips)
        assert not np.allclose(clips[0][0], clips[1][0])  # seeds 0 and 1 differ
    text = (site / "index.html").read_text(encoding="utf-8")
    assert "<b>a violin</b>" not in text and "&lt;b&gt;a violin&lt;/b&gt; &amp; &quot;its bow&quot;" in text
    shown = check_site_in_browser(site, site.parent.parent / "profile")["text"]
    assert DEMO_QUERY in shown and "a dog" in shown


def test_stereo_output_is_each_channel_masked_by_the_downmix_mask(models, tiny_clip_dir):
    """The API: a stereo input gives a stereo output whose channels are the channels masked with
    the mono downmix's mask (a list of queries is one batch; a path works as input)."""
    from espnet2_clip.bin.clipsep_inference import TextQueriedSeparation

    sep = TextQueriedSeparation(models / "sep" / "config.yaml", models / "sep" / "valid.loss.best.pth")
    rng = np.random.default_rng(5)
    left = rng.standard_normal(CLIP * 2).astype(np.float32) * 0.1
    stereo = np.stack([left, 0.5 * left], 1)  # right = left / 2: masks of the downmix are left's
    out = sep(stereo, SR, ["a dog", "noise"])
    assert out.shape == (2, CLIP * 2, 2)
    mono = sep(left, SR, "a dog")
    np.testing.assert_allclose(out[0, :, 0], mono, atol=1e-5)
    np.testing.assert_allclose(out[0, :, 1], 0.5 * mono, atol=1e-5)


def test_console_script_help_has_an_example_per_subcommand():
    """``python -m espnet2_clip.bin.cli <cmd> --help`` (what the console script runs)."""
    for cmd in ("separate", "generate", "embed", "info", "demo"):
        proc = subprocess.run([sys.executable, "-m", "espnet2_clip.bin.cli", cmd, "--help"],
                              capture_output=True, text=True, env=dict(os.environ), timeout=120)
        assert proc.returncode == 0 and "Example" in proc.stdout and f"espnet2-clip {cmd}" in proc.stdout


def _separate_peak_rss_mib(model, path, out, env):
    """Run ``espnet2-clip separate`` on ``path`` in a fresh process; its peak resident memory (MiB)."""
    code = ("import resource, sys; from espnet2_clip.bin import cli; rc = cli.main(sys.argv[1:]); "
            "print('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, "separate", str(path), "-q", "a dog", "-o", str(out),
                           "-m", str(model), "--hop_ratio", "1"],
                          capture_output=True, text=True, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return float(proc.stdout.split("peak")[-1])


@pytest.mark.slow
def test_two_hour_recording_streams_with_the_memory_of_a_one_minute_one(models, tmp_path):
    """A 2-hour 8 kHz recording is separated to a file as long as the input (streamed: no part of
    the program holds the whole recording), with the peak memory of a 1-minute one. The tiny model
    runs on 4.1-s windows (its U-Net is convolutional, so only the config's clip length changes) to
    keep the number of windows, not the length, small."""
    long_clip = tmp_path / "sep_long_clip"
    long_clip.mkdir()
    config = yaml.safe_load((models / "sep" / "config.yaml").read_text())
    (long_clip / "config.yaml").write_text(yaml.safe_dump(dict(config, clip_samples=65535)))
    (long_clip / "valid.loss.best.pth").symlink_to(models / "sep" / "valid.loss.best.pth")
    rng = np.random.default_rng(0)
    fs, block = 8000, 8000 * 600
    paths = {"1min": tmp_path / "one_minute.wav", "2h": tmp_path / "two_hours.wav"}
    sf.write(paths["1min"], 0.1 * rng.standard_normal(fs * 60).astype(np.float32), fs, subtype="PCM_16")
    with sf.SoundFile(str(paths["2h"]), "w", fs, 1, "PCM_16") as f:
        for _ in range(12):  # 12 x 10 min
            f.write(0.1 * rng.standard_normal(block).astype(np.float32))
    env = dict(os.environ, ESPNET2_CLIP_CACHE=str(models / "cache"))
    peaks = {name: _separate_peak_rss_mib(long_clip, path, tmp_path / f"est_{name}.wav", env)
             for name, path in paths.items()}
    info = sf.info(str(tmp_path / "est_2h.wav"))
    assert info.samplerate == fs and info.channels == 1 and info.frames == 2 * 3600 * fs
    tail, _ = sf.read(str(tmp_path / "est_2h.wav"), start=info.frames - fs, dtype="float32")
    assert np.isfinite(tail).all() and np.abs(tail).max() > 0  # the end is separated, not padding
    input_mib = 2 * 3600 * fs * 4 / 2**20  # holding the recording as float32 would add 220 MiB
    assert peaks["2h"] - peaks["1min"] < 0.5 * input_mib, peaks  # measured: +63 MiB (allocator)
