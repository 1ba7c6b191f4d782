"""egs2/music/clipsep1 and egs2/vggsound/clipsep1, stages 1-3, with a fake yt-dlp (no network).

Tiny lists in the official formats (written here) are given with --lists_dir; the fake yt-dlp
writes small generated videos and fails for ids containing dead / priv (and cuts trunc mid-file).
Also: stage re-entry after a kill, the Hugging Face upload with the Hub faked, BERT label
embeddings with a tiny local BERT, and the paper configs.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from espnet2_clip.utils.fileio import read_scp

REPO = Path(__file__).resolve().parents[2]
FAKE = REPO / "test" / "fixtures" / "fake_ytdlp" / "yt-dlp"

MUSIC_LISTS = {
    "music_test.csv": (
        "data/MUSIC/solo/audio/cello/mcelloAAAA1.wav,data/MUSIC/solo/preprocessed/cello/mcelloAAAA1,8,cello\n"
        "data/MUSIC/solo/audio/acoustic_guitar/mguitarBBB2.wav,"
        "data/MUSIC/solo/preprocessed/acoustic_guitar/mguitarBBB2,8,acoustic_guitar\n"),
    "music_val.csv": (  # the shipped val.csv contains the test clips
        "data/MUSIC/solo/audio/cello/mcelloAAAA1.wav,data/MUSIC/solo/preprocessed/cello/mcelloAAAA1,8,cello\n"
        "data/MUSIC/solo/audio/violin/mviolinCCC3.wav,data/MUSIC/solo/preprocessed/violin/mviolinCCC3,8,violin\n"),
    "music_train.csv": (  # absolute paths, 3 columns, overlapping val
        "/data2/x/data/MUSIC/solo/audio/violin/mviolinCCC3.wav,/data2/x/data/MUSIC/solo/frames/violin/mviolinCCC3,8\n"
        "/data2/x/data/MUSIC/solo/audio/tuba/mtubaDDDDD4.wav,/data2/x/data/MUSIC/solo/frames/tuba/mtubaDDDDD4,8\n"
        "/data2/x/data/MUSIC/solo/audio/erhu/mdeadEEEEE5.wav,/data2/x/data/MUSIC/solo/frames/erhu/mdeadEEEEE5,8\n"),
    "test-good-no-music.csv": (
        "data/vggsound/audio/v/r/vrainGGGGG7.wav,data/vggsound/preprocessed/v/r/vrainGGGGG7,12,rain\n"
        "data/vggsound/audio/v/p/vprivHHHHH8.wav,data/vggsound/preprocessed/v/p/vprivHHHHH8,12,dog barking\n"
        "data/vggsound/audio/v/c/vcarIIIIII9.wav,data/vggsound/preprocessed/v/c/vcarIIIIII9,12,"
        "\"vehicle horn, car horn, honking\"\n"),
    "vggsound.csv": (
        "vrainGGGGG7,30,rain,test\nvprivHHHHH8,20,dog barking,test\n"
        "vcarIIIIII9,0,\"vehicle horn, car horn, honking\",test\n"),
}
VGG_LISTS = {
    "vggsound.csv": (
        "vtrainAAAA1,30,dog barking,train\n"
        "vtrainBBBB2,0,\"vehicle horn, car horn, honking\",train\n"
        "vdeadCCCCC3,10,cat meowing,train\n"
        "vvalidDDDD4,30,cat meowing,test\n"
        "vgoodEEEEE5,30,playing violin,test\n"
        "vtruncFFFF6,30,dog barking,test\n"
        "vnoisHHHHH8,10,engine accelerating,test\n"
        "vwindIIIII9,0,wind noise,test\n"),
    "val.csv": "data/vggsound/audio/v/v/vvalidDDDD4.wav,data/vggsound/preprocessed/v/v/vvalidDDDD4,12,cat meowing\n",
    "test-good.csv": (
        "data/vggsound/audio/v/g/vgoodEEEEE5.wav,data/vggsound/preprocessed/v/g/vgoodEEEEE5,12,playing violin\n"
        "data/vggsound/audio/v/t/vtruncFFFF6.wav,data/vggsound/preprocessed/v/t/vtruncFFFF6,12,dog barking\n"),
    "test-no-music.csv": (
        "data/vggsound/audio/v/n/vnoisHHHHH8.wav,data/vggsound/preprocessed/v/n/vnoisHHHHH8,12,engine accelerating\n"
        "data/vggsound/audio/v/w/vwindIIIII9.wav,data/vggsound/preprocessed/v/w/vwindIIIII9,12,wind noise\n"
        "data/vggsound/audio/v/t/vtruncFFFF6.wav,data/vggsound/preprocessed/v/t/vtruncFFFF6,12,dog barking\n"),
}


@pytest.fixture(scope="module")
def env_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("egs2")
    (root / "egs2" / "TEMPLATE").parent.mkdir(parents=True)
    (root / "egs2" / "TEMPLATE").symlink_to(REPO / "egs2" / "TEMPLATE")
    for corpus in ("music", "vggsound"):
        shutil.copytree(REPO / "egs2" / corpus / "clipsep1", root / "egs2" / corpus / "clipsep1", symlinks=True,
                        ignore=shutil.ignore_patterns("world", "data", "dump", "exp", "RESULTS.md", "images"))
    for name, lists in (("music", MUSIC_LISTS), ("vggsound", VGG_LISTS)):
        d = root / "lists" / name
        d.mkdir(parents=True)
        for fname, text in lists.items():
            (d / fname).write_text(text)
    # whole videos from the fake are 3 s: make them 8 s (a MUSIC video is longer than a test clip)
    bindir = root / "bin"
    bindir.mkdir()
    (bindir / "yt-dlp").write_text(
        "#!/bin/sh\n"
        f'case " $* " in *" --download-sections "*) exec "{FAKE}" "$@" ;; esac\n'
        f'exec "{FAKE}" --download-sections "*0-8" "$@"\n')
    (bindir / "yt-dlp").chmod(0o755)
    (root / "cookies.txt").write_text("# Netscape HTTP Cookie File\n")
    # path.sh puts the venv (with the real yt-dlp) first on PATH: name the fake explicitly
    env = dict(os.environ, PATH=f"{bindir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
               FAKE_YTDLP_LOG=str(root / "ytdlp.log"), ESPNET2_CLIP_YTDLP=str(bindir / "yt-dlp"))
    return root, env


def _cmd(root, corpus, stop_stage):
    return ["./run.sh", "--stage", "1", "--stop_stage", str(stop_stage), "--lists_dir", str(root / "lists" / corpus),
            "--cookies", str(root / "cookies.txt"), "--download_nj", "2", "--nj", "1", "--frame_size", "32",
            "--data_args", "--frame_size 32 --extract_nj 1"]


def _run(root, env, corpus, stop_stage=3):
    recipe = root / "egs2" / corpus / "clipsep1"
    proc = subprocess.run(_cmd(root, corpus, stop_stage), cwd=recipe, env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return recipe, proc.stdout + proc.stderr


def _calls(root):
    log = root / "ytdlp.log"
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


def _leftovers(world: Path):
    return sorted(str(p.relative_to(world)) for p in world.rglob("*") if p.name.endswith(".tmp") or ".tmp." in p.name)


@pytest.fixture(scope="module")
def vggsound_run(env_root):
    """Stage 1 killed once mid-download, then stages 1-3."""
    root, env = env_root
    recipe = root / "egs2" / "vggsound" / "clipsep1"
    proc = subprocess.Popen(_cmd(root, "vggsound", 1), cwd=recipe, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if any((recipe / "world" / "download").glob("*/videos/*.mp4")):
            break
        time.sleep(0.05)
    killed = proc.poll() is None
    if killed:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    recipe, out = _run(root, env, "vggsound")
    return recipe, out, killed


@pytest.fixture(scope="module")
def music_run(env_root):
    root, env = env_root
    return _run(root, env, "music")


def test_vggsound_stages_1_to_3(vggsound_run, env_root):
    root, _ = env_root
    recipe, out, killed = vggsound_run
    world = recipe / "world"
    assert killed, "the first run finished before it could be killed"
    # downloads: 10-s windows by sections, cookies passed through, failures counted
    calls = [c for c in _calls(root) if "--version" not in c["argv"]]
    assert "2026.10.26-fake" in out  # never the real yt-dlp
    argv = next(c["argv"] for c in calls if c["id"] == "vtrainAAAA1")
    assert argv[argv.index("--download-sections") + 1] == "*30-40"
    assert argv[argv.index("--cookies") + 1] == str(root / "cookies.txt")
    train = world / "download" / "train"
    assert read_scp(train / "missing") == {"vdeadCCCCC3_000010": "unavailable"}
    assert set(read_scp(train / "video.scp")) == {"vtrainAAAA1_000030", "vtrainBBBB2_000000"}
    report = json.loads((train / "download_report.json").read_text())
    assert report["requested"] == 3 and report["obtained"] == 2
    assert read_scp(world / "download" / "test" / "missing") == {"vtruncFFFF6": "broken"}
    # world layout: labels as CLIPSep spells them (", " -> " ") for the obtained clips only
    assert read_scp(world / "data" / "train" / "label") == {
        "vtrainAAAA1_000030": "dog barking", "vtrainBBBB2_000000": "vehicle horn car horn honking"}
    assert set(read_scp(world / "data" / "valid" / "video.scp")) == {"vvalidDDDD4"}
    # VGGSound-Clean+: pair 0 = vgoodEEEEE5 + pool[1] (vwindIIIII9); pair 1's target is broken
    build = json.loads((world / "data" / "test_mix" / "build_report.json").read_text())
    assert build["built"] == 1 and build["skipped_by_reason"] == {"not_obtained": 1}
    assert read_scp(world / "data" / "test_mix" / "text") == {"0000_vgoodEEEEE5_vwindIIIII9": "playing violin"}
    assert "built 1/2 test mixtures" in out and "obtained 2/3 videos" in out
    # stages 2-3
    assert set(read_scp(recipe / "data" / "test_mix" / "wav.scp")) == {"0000_vgoodEEEEE5_vwindIIIII9"}
    for s, ids in (("train", {"vtrainAAAA1_000030", "vtrainBBBB2_000000"}), ("valid", {"vvalidDDDD4"})):
        assert set(read_scp(recipe / "dump" / s / "wav.scp")) == ids
        frames = read_scp(recipe / "dump" / s / "frames.scp")
        assert set(frames) == ids and all(len(list(Path(d).glob("*.jpg"))) >= 9 for d in frames.values())
    # re-entry after the kill: nothing half-written or duplicated
    assert _leftovers(world) == []
    for scp in world.rglob("*.scp"):
        read_scp(scp)  # raises on duplicated ids / broken lines


def test_music_stages_1_to_3_and_rerun(music_run, env_root):
    root, env = env_root
    recipe, out = music_run
    world = recipe / "world"
    # split by video id, test kept: mviolinCCC3 stays in valid, train loses it; mdeadEEEEE5 fails
    assert set(read_scp(world / "download" / "valid" / "label")) == {"mviolinCCC3"}
    assert read_scp(world / "download" / "train" / "label") == {"mtubaDDDDD4": "tuba", "mdeadEEEEE5": "erhu"}
    assert read_scp(world / "data" / "train" / "label") == {"mtubaDDDDD4": "tuba"}
    assert read_scp(world / "download" / "train" / "missing") == {"mdeadEEEEE5": "unavailable"}
    lists_report = json.loads((world / "lists_report.json").read_text())
    assert lists_report["overlap_removed"] == {"test": 0, "valid": 1, "train": 1}
    # MUSIC+: whole MUSIC videos, VGGSound interference windows; pair 0's partner is private
    calls = {c["id"]: c["argv"] for c in _calls(root) if "--version" not in c["argv"]}
    assert calls["vrainGGGGG7"][calls["vrainGGGGG7"].index("--download-sections") + 1] == "*30-40"
    assert read_scp(world / "download" / "test" / "missing") == {"vprivHHHHH8": "private"}
    text = read_scp(world / "data" / "test_mix" / "text")
    assert text == {"0001_mguitarBBB2_vrainGGGGG7": "acoustic_guitar"}  # underscores kept
    assert read_scp(world / "data" / "test_mix" / "query_image.scp")["0001_mguitarBBB2_vrainGGGGG7"].endswith(
        "mguitarBBB2/000004.jpg")
    assert set(read_scp(recipe / "dump" / "train" / "wav.scp")) == {"mtubaDDDDD4"}
    assert set(read_scp(recipe / "dump" / "valid" / "frames.scp")) == {"mviolinCCC3"}

    # stage 1 again: same outputs, no new downloads (dead/private ids are not asked again)
    snapshot = {p: p.read_bytes() for p in world.rglob("*") if p.is_file() and p.suffix in (".scp", ".csv", "")}
    n_calls = len(_calls(root))
    _run(root, env, "music", stop_stage=1)
    new = [c for c in _calls(root)[n_calls:] if "--version" not in c["argv"]]
    assert new == []
    for p, data in snapshot.items():
        assert p.read_bytes() == data, p
    assert _leftovers(world) == []


def test_paper_configs():
    for corpus in ("music", "vggsound"):
        confs = {p.stem: yaml.safe_load(p.read_text()) for p in (REPO / "egs2" / corpus / "clipsep1" / "conf").glob("train_*.yaml")}
        expected = {"train_clipsep", "train_clipsep_nit", "train_clipsep_text", "train_bertsep", "train_pit"}
        assert expected <= set(confs) and (("train_labelsep" in confs) == (corpus == "vggsound"))
        for name, c in confs.items():
            assert c["unet_conf"] == {"num_downs": 7, "base_channels": 64, "out_channels": 32}, name
            assert c["batch_size"] == 64 and c["grad_clip"] == 1.0 and c["optim_conf"]["lr"] == 0.001
            assert c["num_iters_per_epoch"] * c["max_epoch"] == 200000
            assert c["scheduler"] == "piecewiselinearwarmuplr"
        assert confs["train_clipsep"]["query_conf"]["input_dim"] == 512
        assert confs["train_bertsep"]["query_encoder"] == "bert"


def test_paper_schedule():
    import numpy as np
    import torch
    from espnet2.schedulers.piecewise_linear_warmup_lr import PiecewiseLinearWarmupLR

    conf = yaml.safe_load((REPO / "egs2" / "vggsound" / "clipsep1" / "conf" / "train_clipsep.yaml").read_text())
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = PiecewiseLinearWarmupLR(opt, **conf["scheduler_conf"])
    lrs = {1: opt.param_groups[0]["lr"]}  # the lr of the first step
    for step in (2500, 5000, 52500, 100000, 150000, 200000):  # the lr of step n (last_epoch n - 1)
        sched.last_epoch = step - 1
        lrs[step] = sched.get_lr()[0]
    np.testing.assert_allclose([lrs[s] for s in sorted(lrs)],
                               [1e-3 / 5000, 5e-4, 1e-3, 5.5e-4, 1e-4, 1e-4, 1e-4], rtol=1e-3)


def _packed_model(tmp_path):
    zpath = tmp_path / "exp" / "clipsep_nit" / "packed_model.zip"
    zpath.parent.mkdir(parents=True)
    config = {"train_query": "image", "head": "nit", "query": "embedding", "query_conf": {"input_dim": 512},
              "unet_conf": {"num_downs": 7, "base_channels": 64, "out_channels": 32}, "batch_size": 64,
              "query_encoder": "clip", "query_encoder_conf": {"model_name": "ViT-B-32", "pretrained": "openai"}}
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("meta.yaml", yaml.safe_dump({"files": {"model_file": "exp/clipsep_nit/valid.loss.best.pth"},
                                                "yaml_files": {"train_config": "exp/clipsep_nit/config.yaml"}}))
        z.writestr("exp/clipsep_nit/config.yaml", yaml.safe_dump(config))
        z.writestr("exp/clipsep_nit/valid.loss.best.pth", b"weights")
    return zpath


def test_upload_hf_writes_card_and_uploads(tmp_path, monkeypatch):
    import huggingface_hub

    from espnet2_clip.bin import upload_hf

    calls = []

    class FakeApi:
        def create_repo(self, **kw):
            calls.append(("create_repo", kw))

        def upload_folder(self, **kw):
            calls.append(("upload_folder", kw, sorted(p.name for p in Path(kw["folder_path"]).rglob("*"))))
            return "https://huggingface.co/user/x/commit/abc"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    zpath = _packed_model(tmp_path)
    results = tmp_path / "RESULTS.md"
    results.write_text("# r\n\n- downloads (test): obtained 1/2 videos (1 missing: 1 private); missing ids: x\n\n"
                       "| System | SDR |\n|---|---|\n| CLIPSep-NIT (text-queried) | 5.1 ± 0.7 |\n\nrest\n")
    world = tmp_path / "world"
    for s, obtained, requested in (("test", 1, 2), ("train", 10, 12)):
        (world / "download" / s).mkdir(parents=True)
        (world / "download" / s / "download_report.json").write_text(json.dumps(
            {"requested": requested, "obtained": obtained, "missing": requested - obtained,
             "missing_by_reason": {"unavailable": requested - obtained}}))
    assert upload_hf.main(["--packed_model", str(zpath), "--hf_repo", "user/clipsep_nit_vggsound", "--results",
                           str(results), "--world_dir", str(world), "--corpus", "VGGSound"]) == 0
    assert [c[0] for c in calls] == ["create_repo", "upload_folder"]
    assert calls[1][1]["repo_id"] == "user/clipsep_nit_vggsound"
    assert {"meta.yaml", "README.md", "config.yaml", "valid.loss.best.pth"} <= set(calls[1][2])
    card = (Path(calls[1][1]["folder_path"]) / "README.md").read_text()
    assert "CLIPSep-NIT (VGGSound)" in card and "library_name: espnet" in card
    assert "test: obtained 1/2 videos (1 missing: 1 unavailable)" in card
    assert "train: obtained 10/12 videos (2 missing: 2 unavailable)" in card
    assert "| CLIPSep-NIT (text-queried) | 5.1 ± 0.7 |" in card
    assert 'from_pretrained("user/clipsep_nit_vggsound")' in card
    # a bad repo name or a dry run never reaches the Hub
    calls.clear()
    assert upload_hf.main(["--packed_model", str(zpath), "--hf_repo", "not a repo"]) == 1
    assert upload_hf.main(["--packed_model", str(zpath), "--hf_repo", "user/x", "--dry_run"]) == 0
    assert calls == []


def test_bert_label_embeddings(tmp_path):
    from transformers import BertConfig, BertModel, BertTokenizer

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "dog", "barking", "rain"]) + "\n")
    bert = tmp_path / "bert"
    BertTokenizer(str(vocab)).save_pretrained(bert)
    BertModel(BertConfig(vocab_size=8, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=16, max_position_embeddings=16)).save_pretrained(bert)
    label = tmp_path / "label"
    label.write_text("a dog barking\nb rain\nc dog barking\n")
    cmd = [sys.executable, "-m", "espnet2_clip.bin.extract_bert_embeddings", "--model", str(bert), "--input", str(label), "--output_dir",
           str(tmp_path / "out"), "--output_scp", str(tmp_path / "q.scp")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    import numpy as np

    scp = read_scp(tmp_path / "q.scp")
    assert scp["a"] == scp["c"] != scp["b"]
    assert np.load(scp["a"]).shape == (8,)
