"""egs2/music/clipsep1 and egs2/vggsound/clipsep1, stages 1-3, with a fake yt-dlp (no network).

Tiny lists in the official formats (written here) are given with --lists_dir; the fake yt-dlp
writes small generated videos and fails for ids containing dead / priv (and cuts trunc mid-file).
Also: stage re-entry after a kill, the Hugging Face upload (packed model card) with the Hub faked, BERT label
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

import numpy as np
import pytest
import yaml
from shared_helpers import markdown_table

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
        "vtrainKKKK1,20,playing violin,train\n"
        "vvalidDDDD4,30,playing violin,test\n"
        "vvalidLLLL2,0,dog barking,test\n"
        "vgoodEEEEE5,30,playing violin,test\n"
        "vtruncFFFF6,30,dog barking,test\n"
        "vbarkJJJJJ0,30,dog barking,test\n"
        "vnoisHHHHH8,10,engine accelerating,test\n"
        "vwindIIIII9,0,wind noise,test\n"),
    "val.csv": (
        "data/vggsound/audio/v/v/vvalidDDDD4.wav,data/vggsound/preprocessed/v/v/vvalidDDDD4,12,playing violin\n"
        "data/vggsound/audio/v/v/vvalidLLLL2.wav,data/vggsound/preprocessed/v/v/vvalidLLLL2,12,dog barking\n"),
    "test-good.csv": (
        "data/vggsound/audio/v/g/vgoodEEEEE5.wav,data/vggsound/preprocessed/v/g/vgoodEEEEE5,12,playing violin\n"
        "data/vggsound/audio/v/t/vtruncFFFF6.wav,data/vggsound/preprocessed/v/t/vtruncFFFF6,12,dog barking\n"
        "data/vggsound/audio/v/b/vbarkJJJJJ0.wav,data/vggsound/preprocessed/v/b/vbarkJJJJJ0,12,dog barking\n"),
    # MUSIC+ is scored with the VGGSound-trained models too: the 46 MUSIC test clips (2 here) and the
    # test-good clips that are not music
    "music_test.csv": MUSIC_LISTS["music_test.csv"],
    "test-good-no-music.csv": (
        "data/vggsound/audio/v/t/vtruncFFFF6.wav,data/vggsound/preprocessed/v/t/vtruncFFFF6,12,dog barking\n"
        "data/vggsound/audio/v/b/vbarkJJJJJ0.wav,data/vggsound/preprocessed/v/b/vbarkJJJJJ0,12,dog barking\n"),
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
        for task in ("clipsep1", "clipsonic1"):
            shutil.copytree(REPO / "egs2" / corpus / task, root / "egs2" / corpus / task, symlinks=True,
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
    train_ids = {"vtrainAAAA1_000030", "vtrainBBBB2_000000", "vtrainKKKK1_000020"}
    assert set(read_scp(train / "video.scp")) == train_ids
    report = json.loads((train / "download_report.json").read_text())
    assert report["requested"] == 4 and report["obtained"] == 3
    assert read_scp(world / "download" / "test" / "missing") == {"vtruncFFFF6": "broken"}
    # world layout: labels as CLIPSep spells them (", " -> " ") for the obtained clips only
    assert read_scp(world / "data" / "train" / "label") == {
        "vtrainAAAA1_000030": "dog barking", "vtrainBBBB2_000000": "vehicle horn car horn honking",
        "vtrainKKKK1_000020": "playing violin"}
    assert set(read_scp(world / "data" / "valid" / "video.scp")) == {"vvalidDDDD4", "vvalidLLLL2"}
    # VGGSound-Clean+: pair 0 = vgoodEEEEE5 + pool[1] (vwindIIIII9); pair 1's target is broken;
    # pair 2 = vbarkJJJJJ0 + pool[0]
    build = json.loads((world / "data" / "test_mix" / "build_report.json").read_text())
    assert build["built"] == 2 and build["skipped_by_reason"] == {"not_obtained": 1}
    assert read_scp(world / "data" / "test_mix" / "text") == {
        "0000_vgoodEEEEE5_vwindIIIII9": "playing violin", "0002_vbarkJJJJJ0_vnoisHHHHH8": "dog barking"}
    # MUSIC+ from the same download: pair 0 = cello + test-good-no-music[1]; pair 1's partner is broken
    music = json.loads((world / "data" / "test_music_plus" / "build_report.json").read_text())
    assert music["built"] == 1 and music["skipped_by_reason"] == {"not_obtained": 1}
    assert read_scp(world / "data" / "test_music_plus" / "text") == {"0000_mcelloAAAA1_vbarkJJJJJ0": "cello"}
    assert "built 2/3 test mixtures" in out and "built 1/2 test mixtures" in out and "obtained 3/4 videos" in out
    # stages 2-3
    assert set(read_scp(recipe / "data" / "test_mix" / "wav.scp")) == {
        "0000_vgoodEEEEE5_vwindIIIII9", "0002_vbarkJJJJJ0_vnoisHHHHH8"}
    assert set(read_scp(recipe / "data" / "test_music_plus" / "wav.scp")) == {"0000_mcelloAAAA1_vbarkJJJJJ0"}
    for s, ids in (("train", train_ids), ("valid", {"vvalidDDDD4", "vvalidLLLL2"})):
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
    # the image query: frames c-1, c, c+1 around the centre frame 8 // 2 = 4
    frames = read_scp(world / "data" / "test_mix" / "query_image.scp")["0001_mguitarBBB2_vrainGGGGG7"].split()
    assert [f.split("/")[-2:] for f in frames] == [["mguitarBBB2", f"{i:06d}.jpg"] for i in (3, 4, 5)]
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


def _packed_model(tmp_path, card=None):
    zpath = tmp_path / "exp" / "clipsep_nit" / "packed_model.zip"
    zpath.parent.mkdir(parents=True, exist_ok=True)
    config = {"train_query": "image", "head": "nit", "query": "embedding", "query_conf": {"input_dim": 512},
              "unet_conf": {"num_downs": 7, "base_channels": 64, "out_channels": 32}, "batch_size": 64,
              "query_encoder": "clip", "query_encoder_conf": {"model_name": "ViT-B-32", "pretrained": "openai"}}
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("meta.yaml", yaml.safe_dump({"files": {"model_file": "exp/clipsep_nit/valid.loss.best.pth"},
                                                "yaml_files": {"train_config": "exp/clipsep_nit/config.yaml"}}))
        z.writestr("exp/clipsep_nit/config.yaml", yaml.safe_dump(config))
        z.writestr("exp/clipsep_nit/valid.loss.best.pth", b"weights")
        if card is not None:
            z.writestr("exp/clipsep_nit/README.md", card)
    return zpath, config


def test_upload_hf_publishes_the_packed_card_or_writes_one(tmp_path, monkeypatch):
    """A zip with a card (the pack stage's): that card, its run lines pointed at the Hub id. A zip
    without one: a card written then by the same writer, from RESULTS.md and the download reports."""
    import huggingface_hub

    from espnet2_clip.bin import upload_hf
    from espnet2_clip.utils.model_card import CardInputs, make_card

    calls = []

    class FakeApi:
        def create_repo(self, **kw):
            calls.append(("create_repo", kw))

        def upload_folder(self, **kw):
            folder = Path(kw["folder_path"])
            calls.append(("upload_folder", kw, sorted(p.name for p in folder.rglob("*")),
                          (folder / "README.md").read_text()))
            return "https://huggingface.co/user/x/commit/abc"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    results = tmp_path / "RESULTS.md"
    results.write_text("# r\n\n- downloads (test): obtained 1/2 videos (1 missing: 1 private); missing ids: x\n\n"
                       "| System | SDR |\n|---|---|\n| Mixture | 0.1 |\n| CLIPSep (text-queried) | 4.0 |\n"
                       "| CLIPSep-NIT (text-queried) | 5.1 ± 0.7 |\n\nrest\n")
    world = tmp_path / "world"
    for s, obtained, requested in (("test", 1, 2), ("train", 10, 12)):
        (world / "download" / s).mkdir(parents=True)
        (world / "download" / s / "download_report.json").write_text(json.dumps(
            {"requested": requested, "obtained": obtained, "missing": requested - obtained,
             "missing_by_reason": {"unavailable": requested - obtained}}))

    # 1. packed without a card: written now (same writer), RESULTS.md copied beside it
    zpath, config = _packed_model(tmp_path / "nocard")
    assert upload_hf.main(["--packed_model", str(zpath), "--hf_repo", "user/clipsep_nit_vggsound", "--results",
                           str(results), "--world_dir", str(world), "--corpus", "VGGSound"]) == 0
    assert [c[0] for c in calls] == ["create_repo", "upload_folder"]
    assert calls[1][1]["repo_id"] == "user/clipsep_nit_vggsound"
    assert calls[1][1]["commit_message"] == "Upload CLIPSep-NIT (VGGSound)"
    assert {"meta.yaml", "README.md", "RESULTS.md", "config.yaml", "valid.loss.best.pth"} <= set(calls[1][2])
    card = calls[1][3]
    assert card == make_card(CardInputs(config=config, tag="clipsep_nit", corpus="VGGSound", results=results,
                                        world_dir=world, model_ref="user/clipsep_nit_vggsound"))
    assert "# CLIPSep-NIT (VGGSound)" in card and "library_name: espnet" in card
    assert "test: obtained 1/2 videos (1 missing: 1 unavailable)" in card
    assert "train: obtained 10/12 videos (2 missing: 2 unavailable)" in card
    assert "| CLIPSep-NIT (text-queried) | 5.1 ± 0.7 |" in card and "| CLIPSep (text-queried)" not in card
    assert 'from_pretrained("user/clipsep_nit_vggsound")' in card

    # 2. packed with its card: that card (not RESULTS.md / --corpus given now), run lines on the Hub id
    packed = make_card(CardInputs(config=config, tag="clipsep_nit", corpus="music", results=None,
                                  model_ref="exp/clipsep_nit/packed_model.zip"))
    zpath, _ = _packed_model(tmp_path / "card", card=packed)
    calls.clear()
    assert upload_hf.main(["--packed_model", str(zpath), "--hf_repo", "user/clipsep_nit_music", "--results",
                           str(results), "--corpus", "VGGSound"]) == 0
    card = calls[1][3]
    assert card == packed.replace("exp/clipsep_nit/packed_model.zip", "user/clipsep_nit_music")
    assert "Not scored: no RESULTS.md was given" in card and "# CLIPSep-NIT (MUSIC)" in card
    assert calls[1][1]["commit_message"] == "Upload CLIPSep-NIT (MUSIC)"
    assert "RESULTS.md" not in calls[1][2]  # only what was packed
    # a bad repo name, a dry run or an unreadable packed card never reach the Hub
    calls.clear()
    assert upload_hf.main(["--packed_model", str(zpath), "--hf_repo", "not a repo"]) == 1
    assert upload_hf.main(["--packed_model", str(zpath), "--hf_repo", "user/x", "--dry_run"]) == 0
    assert 'from_pretrained("user/x")' in (zpath.parent / "hf_upload" / "README.md").read_text()
    zpath, _ = _packed_model(tmp_path / "badcard", card="# hand-written, no front matter\n")
    assert upload_hf.main(["--packed_model", str(zpath), "--hf_repo", "user/x"]) == 1
    assert calls == []


def _tiny_bert(root: Path) -> Path:
    """A randomly initialised 8-d BERT saved like a Hugging Face model dir."""
    from transformers import BertConfig, BertModel, BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "dog", "barking", "rain", "playing", "violin", "cello"]
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(words) + "\n")
    bert = root / "bert"
    BertTokenizer(str(vocab)).save_pretrained(bert)
    BertModel(BertConfig(vocab_size=len(words), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=16, max_position_embeddings=16)).save_pretrained(bert)
    return bert


def test_bert_label_embeddings(tmp_path):
    bert = _tiny_bert(tmp_path)
    label = tmp_path / "label"
    label.write_text("a dog barking\nb rain\nc dog barking\n")
    cmd = [sys.executable, "-m", "espnet2_clip.bin.query_embed", "--mode", "text", "--query_encoder", "bert",
           "--query_encoder_conf", f"model_name_or_path={bert}", "--text_prompt", "none", "--input_scp", str(label),
           "--output_dir",
           str(tmp_path / "out"), "--output_scp", str(tmp_path / "q.scp")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    import numpy as np

    scp = read_scp(tmp_path / "q.scp")
    assert scp["a"] == scp["c"] != scp["b"]
    assert np.load(scp["a"]).shape == (8,)


def test_bertsep_uses_one_embedding_per_label_at_training_and_test(tmp_path, monkeypatch):
    """The training query of a label (stage 5, extract_bert_embeddings) is the very embedding the shipped
    BERTSep config's inference makes of the same label as a text query (no prompt template at either)."""
    import numpy as np

    from espnet2_clip.bin.clipsep_inference import TextQueriedSeparation
    from espnet2_clip.tasks.clipsep import CLIPSepTask

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    bert = _tiny_bert(tmp_path)
    (tmp_path / "label").write_text("a dog barking\nb playing violin\n")
    # the deprecated entry point (kept for one release) runs query_embed with the same result
    cmd = [sys.executable, "-m", "espnet2_clip.bin.extract_bert_embeddings", "--model", str(bert), "--input",
           str(tmp_path / "label"), "--output_dir", str(tmp_path / "out"), "--output_scp", str(tmp_path / "q.scp")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    train = {k: np.load(v) for k, v in read_scp(tmp_path / "q.scp").items()}
    for corpus in ("music", "vggsound"):
        conf = REPO / "egs2" / corpus / "clipsep1" / "conf" / "train_bertsep.yaml"
        args = CLIPSepTask.get_parser().parse_args([
            "--config", str(conf), "--query_encoder_conf", f"model_name_or_path={bert}",
            "--query_conf", "input_dim=8", "--unet_conf", "num_downs=5", "--unet_conf", "base_channels=2",
            "--unet_conf", "out_channels=2"])
        config = tmp_path / f"{corpus}.yaml"
        config.write_text(yaml.safe_dump(vars(args)))
        sep = TextQueriedSeparation(config)  # the recipe's stage 8 passes no prompt to non-CLIP encoders
        for key, label in (("a", "dog barking"), ("b", "playing violin")):
            np.testing.assert_allclose(sep.embed_query(label)[0].numpy(), train[key], atol=1e-6)
        assert not np.allclose(train["a"], train["b"])


TINY_MODEL = {
    "frontend_conf": {"n_fft": 256, "hop_length": 64, "num_warped_bins": 64},
    "unet_conf": {"num_downs": 5, "base_channels": 4, "out_channels": 4},
    "clip_samples": 4095, "sample_rate": 16000, "frame_rate": 1.0,
    "batch_size": 4, "max_epoch": 1, "num_workers": 0, "seed": 0, "optim": "adam", "optim_conf": {"lr": 0.001},
}
TINY_MODELS = {  # the recipe's models at a CPU test size: what differs between them is kept
    "clipsep": {"train_query": "image", "head": "query", "query": "embedding", "query_conf": {"input_dim": 32}},
    "bertsep": {"train_query": "text", "query_encoder": "bert", "text_prompt": "none", "head": "query",
                "query": "embedding", "query_conf": {"input_dim": 8}},
    "pit": {"train_query": "none", "head": "pit"},
    "labelsep": {"train_query": "label", "head": "query", "query": "label", "query_conf": {"embed_dim": 8}},
}


INFERENCE_MODULES = ("espnet2_clip.bin.query_embed", "espnet2_clip.bin.clipsep_inference",
                     "espnet2_clip.bin.clipsonic_inference", "espnet2_clip.bin.clipsonic_eval",
                     "espnet2_clip.bin.clipsonic_benchmark")


def _gpu_python(root: Path) -> Path:
    """A ``--python`` for ``--gpu_inference true`` runs on this CPU machine: it records each call's
    arguments (root/python_calls), then runs the real Python with ``cuda`` replaced by ``cpu``."""
    wrapper = root / "gpu_python"
    if not wrapper.exists():
        wrapper.write_text(
            "#!/bin/bash\n"
            f'printf "%s\\n" "$*" >> "{root / "python_calls"}"\n'
            'args=(); for a in "$@"; do [ "$a" = cuda ] && a=cpu; args+=("$a"); done\n'
            f'exec "{sys.executable}" "${{args[@]}}"\n')
        wrapper.chmod(0o755)
    return wrapper


def _inference_calls(root: Path) -> dict:
    """module -> the argument lines of its recorded calls (not clipsonic_eval report, which reads JSON)."""
    calls = {}
    for line in (root / "python_calls").read_text().splitlines():
        words = line.split()
        if len(words) > 1 and words[0] == "-m" and words[1] in INFERENCE_MODULES and "report" not in words[2:3]:
            calls.setdefault(words[1], []).append(line)
    return calls


@pytest.fixture(scope="module")
def vggsound_results(vggsound_run, env_root, tiny_clip_dir, tmp_path_factory):
    """Stages 4-10 of the VGGSound recipe on the fake downloads, with tiny models, CLIP and BERT."""
    root, env = env_root
    recipe = vggsound_run[0]
    bert = _tiny_bert(tmp_path_factory.mktemp("bert"))
    for tag, conf in TINY_MODELS.items():
        conf = dict(TINY_MODEL, **conf)
        if tag == "bertsep":
            conf["query_encoder_conf"] = {"model_name_or_path": str(bert)}
        (recipe / "conf" / f"train_{tag}.yaml").write_text(yaml.safe_dump(conf))
    cmd = ["./run.sh", "--stage", "4", "--stop_stage", "11", "--models", " ".join(TINY_MODELS), "--nj", "1",
           "--gpu_inference", "true", "--python", str(_gpu_python(root)),
           "--clip_model", str(tiny_clip_dir / "open_clip_config.json"),
           "--clip_pretrained", str(tiny_clip_dir / "open_clip_model.safetensors")]
    proc = subprocess.run(cmd, cwd=recipe, env=dict(env, HF_HUB_OFFLINE="1"), capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return recipe, proc.stdout + proc.stderr


@pytest.mark.slow
def test_vggsound_results_are_table1_on_both_test_sets(vggsound_results):
    """VGGSound-trained models scored on VGGSound-Clean+ and MUSIC+, in the paper's Table 1 layout with
    every paper cell beside ours; LabelSep has no MUSIC+ cell (its labels are VGGSound's)."""
    recipe, out = vggsound_results
    text = (recipe / "RESULTS.md").read_text()
    header, rows = markdown_table(text)
    assert header == ["System", "VGGSound-Clean+ mean SDR ± s.e.", "paper", "VGGSound-Clean+ median SDR", "paper",
                      "MUSIC+ mean SDR ± s.e.", "paper", "MUSIC+ median SDR", "paper"]
    assert list(rows)[:7] == ["Mixture", "CLIPSep (text-queried)", "CLIPSep (image-queried)", "BERTSep (text-queried)",
                              "PIT (non-queried, oracle selection)", "LabelSep (label-queried)",
                              "CLIPSep-NIT (text-queried)"]
    paper = yaml.safe_load((recipe / "conf" / "paper_results.yaml").read_text())["rows"]
    for row, sets in paper.items():  # every paper cell, beside ours
        cells = rows[row]
        assert [cells[1], cells[3], cells[5], cells[7]] == [
            sets["VGGSound-Clean+"]["mean"], sets["VGGSound-Clean+"]["median"],
            sets["MUSIC+"]["mean"], sets["MUSIC+"]["median"]], row

    def number(cell):
        return float(cell.split(" ± ")[0])

    for row in ("Mixture", "CLIPSep (text-queried)", "CLIPSep (image-queried)", "BERTSep (text-queried)",
                "PIT (non-queried, oracle selection)"):
        for i in (0, 2, 4, 6):  # ours, on both test sets
            assert np.isfinite(number(rows[row][i])), (row, rows[row])
    assert np.isfinite(number(rows["LabelSep (label-queried)"][0])) and rows["LabelSep (label-queried)"][4] == "–"
    assert "LabelSep is not evaluated on test_music_plus" in out
    # the scored estimates are the length-free iSTFT of the 65,535-sample test clips
    exp = recipe / "exp"
    for tset, n in (("test_mix", 2), ("test_music_plus", 1)):
        est = read_scp(exp / "clipsep" / "decode_image" / tset / "spk1.scp")
        assert len(est) == n
        import soundfile as sf

        assert all(sf.info(p).frames == 64 * (65535 // 64) for p in est.values())
        result = json.loads((exp / "clipsep" / "decode_text" / tset / "scoring" / "result.json").read_text())
        assert result["count"] == n and "clipped to [-1, 1]" in result["protocol"]
    # image queries: 3 frames each, BERTSep has none (no image encoder)
    assert all(len(v.split()) == 3 for v in read_scp(recipe / "dump" / "test_mix" / "query_image.scp").values())
    assert not (exp / "bertsep" / "decode_image").exists()
    assert "test mixtures (test_music_plus): built 1/2" in text


@pytest.mark.slow
def test_packed_labelsep_takes_label_text(vggsound_results, tmp_path):
    """The packed LabelSep records its label table as its query encoder (the vocabulary travels in the
    zip): it separates with a label given as text, and names the labels it knows otherwise. Its packed
    model card has the training data, the missing videos and its own RESULTS.md row."""
    from espnet2_clip.bin.clipsep_inference import TextQueriedSeparation
    from espnet2_clip.utils.model_card import parse_card

    recipe, _ = vggsound_results
    with zipfile.ZipFile(recipe / "exp" / "labelsep" / "packed_model.zip") as z:
        card = parse_card(z.read("exp/labelsep/README.md").decode())
    facts = card.facts
    assert (facts["system"], facts["corpus"], facts["training_queries"], facts["training_clips"], facts["scored"]) == (
        "LabelSep", "VGGSound", "label", 3, True)
    assert facts["videos"]["train"] == {"requested": 4, "obtained": 3, "missing": 1}
    assert facts["query_encoder"].startswith("label (")
    _, ours = markdown_table(card.section("Scores"))
    _, all_rows = markdown_table((recipe / "RESULTS.md").read_text())
    assert ours == {row: all_rows[row] for row in ("Mixture", "LabelSep (label-queried)")}
    sep = TextQueriedSeparation.from_pretrained(str(recipe / "exp" / "labelsep" / "packed_model.zip"),
                                                cachedir=str(tmp_path / "cache"))
    assert sep.embed_query("dog barking").tolist() == [[0]]
    est = sep(np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1, 16000, "playing violin")
    assert est.shape == (8000,) and np.isfinite(est).all()
    with pytest.raises(ValueError, match="'cello' is not a label of"):
        sep(np.zeros(8000, dtype=np.float32), 16000, "cello")


def _tiny_clipsonic() -> dict:
    """The mini CI CLIPSonic config at a CPU test size, conditioned on the tiny CLIP (32-d)."""
    conf = yaml.safe_load((REPO / "egs2" / "mini_bridge" / "clipsonic1" / "conf" / "ci" / "train_clipsonic_iq.yaml")
                          .read_text())
    conf["unet_conf"].update(cond_dim=32, channels=[8, 16], attention_levels=[1], emb_dim=16, groups=4)
    conf.update(batch_size=2, num_iters_per_epoch=2, max_epoch=1, num_workers=0)
    return conf


@pytest.fixture(scope="module")
def vggsound_clipsonic(vggsound_run, env_root, tiny_clip_dir, tmp_path_factory):
    """egs2/vggsound/clipsonic1 on the clipsep1 run's downloads (world -> ../clipsep1/world, --data_stage 2),
    stages 1-10 with tiny models and, for PD, a tiny stand-in of the LAION prior in its published layout; FAD and
    CLAP (the recipe's vggish / laion/clap-htsat-unfused) with local stand-ins of the same layouts."""
    from shared_helpers import save_tiny_clap

    from espnet2_clip.metrics.vggish import save_stand_in
    from espnet2_clip.t2a.laion_prior import LaionPrior, save_published_format

    root, env = env_root
    recipe = root / "egs2" / "vggsound" / "clipsonic1"
    for name in ("iq", "sd"):  # the recipe's configs are links into TEMPLATE (the repo's): replace, never write through
        conf = recipe / "conf" / f"train_clipsonic_{name}.yaml"
        conf.unlink()
        conf.write_text(yaml.safe_dump(_tiny_clipsonic()))
    import torch

    torch.manual_seed(0)
    prior_conf = dict(prior=dict(net=dict(dim=32, depth=1, dim_head=8, heads=2, num_timesteps=100, max_text_len=77),
                                 image_embed_dim=32, timesteps=100, sample_timesteps=4, cond_drop_prob=0.1))
    laion = tmp_path_factory.mktemp("laion_prior")
    save_published_format(LaionPrior.from_config(prior_conf), prior_conf, laion / "prior")
    metric_models = tmp_path_factory.mktemp("metric_models")  # 0.3 MB VGGish-shaped .pth, 0.1 MB CLAP directory
    vggish, clap = save_stand_in(metric_models / "vggish.pth"), save_tiny_clap(metric_models / "clap")
    # the clipsep1 run's world (its scp paths are relative to a recipe dir: world/download/...)
    (recipe / "world").symlink_to("../clipsep1/world")
    cmd = ["./run.sh", "--stage", "1", "--stop_stage", "10", "--data_stage", "2",
           "--nj", "1", "--frame_size", "32", "--gpu_inference", "true", "--python", str(_gpu_python(root)),
           "--clip_model", str(tiny_clip_dir / "open_clip_config.json"),
           "--clip_pretrained", str(tiny_clip_dir / "open_clip_model.safetensors"),
           "--pretrained_prior", str(laion), "--vocoder_config", "", "--gen_vocoder", "griffin_lim",
           "--gen_per_class", "1", "--guidance_scales", "3", "--main_guidance", "3", "--gen_steps", "2",
           "--benchmark_samples", "4095", "--demo_examples", "0", "--fad_model", str(vggish), "--clap_model", str(clap)]
    proc = subprocess.run(cmd, cwd=recipe, env=dict(env, HF_HUB_OFFLINE="1"), capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return recipe, laion, proc.stdout + proc.stderr


@pytest.mark.slow
def test_vggsound_clipsonic_pd_with_the_published_prior(vggsound_clipsonic, tmp_path):
    """The corpus recipe's PD goes through the LAION prior (here its tiny stand-in, read from a local
    directory): recorded in the IQ model's config, generated and scored beside IQ / ZS / SD, packed with
    the model, and run again by TextToAudio.from_pretrained."""
    from espnet2_clip.bin.clipsonic_inference import TextToAudio
    from espnet2_clip.t2a.laion_prior import LaionPrior
    from espnet2_clip.utils.model_card import parse_card

    recipe, laion, out = vggsound_clipsonic
    exp = recipe / "exp"
    config = yaml.safe_load((exp / "clipsonic_iq" / "config.yaml").read_text())
    assert config["prior_config"] == "exp/pretrained_prior/prior_config.json" and config["prior_file"] is None
    assert (exp / "pretrained_prior" / "best.pth").read_bytes() == (laion / "prior" / "best.pth").read_bytes()
    assert "PD uses the published prior" in out
    classes = (recipe / "dump" / "gen" / "classes").read_text().splitlines()
    pd, zs = (read_scp(exp / "clipsonic_iq" / f"gen_{v}_w3" / "wav.scp") for v in ("pd", "zs"))
    assert len(pd) == len(zs) == len(classes) >= 2
    import soundfile as sf

    key = sorted(pd)[0]
    assert np.abs(sf.read(pd[key])[0] - sf.read(zs[key])[0]).max() > 1e-4  # the prior changed the condition
    results = (recipe / "RESULTS.md").read_text()
    header, rows = markdown_table(results)
    assert {"CLIPSonic-IQ", "CLIPSonic-ZS", "CLIPSonic-PD", "SD (supervised reference)"} <= set(rows)
    for name in ("CLIPSonic-IQ", "CLIPSonic-ZS", "CLIPSonic-PD", "SD (supervised reference)"):  # FAD, CLAP scored
        assert float(rows[name][header.index("FAD ↓") - 1]) >= 0, rows[name]
        assert -1 <= float(rows[name][header.index("CLAP ↑") - 1]) <= 1, rows[name]
    assert "## Guidance-scale sweep (FAD ↓)" in results and "## Guidance-scale sweep (CLAP ↑)" in results
    iq = json.loads((exp / "clipsonic_iq" / "gen_iq_w3" / "scoring" / "result.json").read_text())
    assert iq["clap"]["model"].endswith("clap")  # IQ against its test items' label text
    zip_path = exp / "clipsonic_iq" / "packed_model.zip"
    with zipfile.ZipFile(zip_path) as z:
        names = z.namelist()
        card = parse_card(z.read("exp/clipsonic_iq/README.md").decode())
    assert {"exp/pretrained_prior/prior_config.json", "exp/pretrained_prior/best.pth"} <= set(names)
    assert card.facts["variants"] == ["IQ", "ZS", "PD"]
    assert "the published LAION DALL-E 2 prior, packed" in card.section("Model")
    t2a = TextToAudio.from_pretrained(str(zip_path), cachedir=str(tmp_path / "cache"))
    assert t2a.variant == "PD" and isinstance(t2a.prior, LaionPrior)
    assert str(tmp_path / "cache") in str(t2a.train_args.prior_config)
    wave = t2a(classes[0], num_steps=2, seed=0)
    assert np.isfinite(wave).all() and np.abs(wave).max() > 0


@pytest.mark.slow
def test_gpu_inference_reaches_every_inference_stage(vggsound_results, vggsound_clipsonic, env_root):
    """``--gpu_inference true``: every stage that runs a network at inference (CLIP embeddings of frames and
    labels, separation, generation with its prior and vocoder, evaluation, benchmark) gets ``--device cuda``."""
    root, _ = env_root
    calls = _inference_calls(root)
    assert set(calls) == set(INFERENCE_MODULES)
    for module, lines in calls.items():
        for line in lines:
            assert "--device cuda" in line, (module, line)
