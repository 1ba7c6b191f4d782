"""egs2/vggsound/clipsep1 stages 1-3 on a rehearsal corpus: YouTube's formats and faults, offline.

Every fault gets its expected outcome (missing with its reason, retried and obtained, or skipped by
the extraction), the counts add up per split, every usable clip is a 10-s 16-kHz soundtrack with its
frames whatever its container, codec, frame rate or size, and a run killed (SIGKILL) in stage 1 and
again in stage 3, then rerun, ends with the same files as a run that was never interrupted.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from espnet2_clip.data.rehearsal import FAULTS, make_rehearsal_corpus
from espnet2_clip.utils.fileio import read_scp

REPO = Path(__file__).resolve().parents[2]


def _recipe(root: Path) -> Path:
    (root / "egs2").mkdir(parents=True)
    (root / "egs2" / "TEMPLATE").symlink_to(REPO / "egs2" / "TEMPLATE")
    shutil.copytree(REPO / "egs2" / "vggsound" / "clipsep1", root / "egs2" / "vggsound" / "clipsep1", symlinks=True,
                    ignore=shutil.ignore_patterns("world", "data", "dump", "exp", "RESULTS.md", "images"))
    return root / "egs2" / "vggsound" / "clipsep1"


def _cmd(corpus: Path):
    return ["./run.sh", "--stage", "1", "--stop_stage", "3", "--lists_dir", str(corpus / "lists"),
            "--download_nj", "2", "--nj", "1", "--frame_size", "32",
            "--data_args", "--frame_size 32 --extract_nj 1 --download_args --retry_wait=0.2"]


def _env(corpus: Path):
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                ESPNET2_CLIP_YTDLP=str(corpus / "bin" / "yt-dlp"))


def _run(recipe: Path, corpus: Path) -> str:
    proc = subprocess.run(_cmd(corpus), cwd=recipe, env=_env(corpus), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return proc.stdout + proc.stderr


def _kill_when(recipe: Path, corpus: Path, ready) -> bool:
    """Start stages 1-3 and SIGKILL the whole process group once ``ready()``; True if it was killed."""
    proc = subprocess.Popen(_cmd(corpus), cwd=recipe, env=_env(corpus), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.02)
    killed = proc.poll() is None
    if killed:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return killed


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("rehearsal")
    corpus = root / "corpus"
    manifest = make_rehearsal_corpus(corpus, num_videos=30, seed=0, progress=False)
    clean = _recipe(root / "clean")
    log = _run(clean, corpus)
    calls = [json.loads(x) for x in (corpus / "state" / "calls.jsonl").read_text().splitlines()]
    # the same from scratch (the stand-in's faults afresh), killed in stage 1 and in stage 3, then rerun
    shutil.rmtree(corpus / "state")
    killed = _recipe(root / "killed")
    kills = [_kill_when(killed, corpus, lambda: any((killed / "world" / "download" / "train" / "videos").glob("*.mp4"))),
             _kill_when(killed, corpus, lambda: any((killed / "dump" / "train" / "wav").glob("*.wav")))]
    _run(killed, corpus)
    return manifest, clean, killed, log, calls, kills


def _clip_id(video: dict) -> str:
    return f"{video['ytid']}_{video['start']:06d}"  # VGGSound clips: ytid_start


@pytest.mark.slow
def test_every_fault_has_its_outcome(runs):
    manifest, recipe, _, _, calls, _ = runs
    world = recipe / "world"
    missing = read_scp(world / "download" / "train" / "missing")
    usable = read_scp(recipe / "dump" / "train" / "wav.scp")
    bad = read_scp(recipe / "dump" / "train" / "bad_videos")
    calls_per_id = {}
    for c in calls:
        calls_per_id[c["id"]] = calls_per_id.get(c["id"], 0) + 1
    faulty = [v for v in manifest["videos"] if v["fault"]]
    assert sorted(v["fault"] for v in faulty) == sorted(FAULTS)
    for v in faulty:
        expected, clip = FAULTS[v["fault"]], _clip_id(v)
        if expected["outcome"] == "missing":
            assert missing.get(clip) == expected["reason"], (v["fault"], missing.get(clip))
        elif expected["outcome"] == "retried":
            assert clip in usable and calls_per_id[v["ytid"]] > 1, v["fault"]
        else:
            assert clip not in usable and expected["reason"] in bad[clip], (v["fault"], bad.get(clip))
    report = json.loads((world / "download" / "train" / "download_report.json").read_text())
    assert report["errors"][_clip_id(next(v for v in faulty if v["fault"] == "past_end"))].endswith(
        "it starts past the end of the video")


@pytest.mark.slow
def test_counts_add_up_per_split(runs):
    _, recipe, _, log, _, _ = runs
    report = json.loads((recipe / "dump" / "corpus_report.json").read_text())
    assert set(report) == {"train", "valid", "test"}
    for split, r in report.items():
        assert r["unaccounted"] == [] and r["listed"] == r["usable"] + r["missing"] + r["failed"], split
        assert sum(r["missing_by_reason"].values()) == r["missing"]
        assert f"{split}: listed {r['listed']} = usable {r['usable']} + missing {r['missing']}" in log
    assert report["train"]["failed_by_reason"] == {"silent": 1}
    skipped = json.loads((recipe / "world" / "lists_report.json").read_text())["skipped_lines"]
    assert len(skipped["vggsound.csv"]) == 1 and "start must be a number of seconds, got '1:30'" in skipped["vggsound.csv"][0]
    assert "vggsound.csv: 1 malformed line(s) skipped" in log
    # a label with a comma ("circle, playing flute") is one label in every split (CLIPSep's spelling)
    labels = {s: set(read_scp(recipe / "data" / s / "label").values()) for s in ("train", "valid")}
    assert labels["valid"] <= labels["train"] and "circle playing flute" in labels["train"]
    assert report["train"]["missing"] == sum(1 for f in FAULTS.values() if f["outcome"] == "missing")


@pytest.mark.slow
def test_every_format_gives_a_10_s_16_khz_clip_and_its_frames(runs):
    manifest, recipe, _, _, _, _ = runs
    videos = manifest["videos"]
    assert {v["container"] for v in videos} == {"mp4", "webm", "mkv"}
    assert {"vfr", 60.0, 29.97} <= {v["fps"] for v in videos}
    assert any(v["height"] > v["width"] for v in videos) and any(v["height"] == 1080 for v in videos)
    by_clip = {**{_clip_id(v): v for v in videos}, **{v["ytid"]: v for v in videos}}  # valid: named by ytid
    seen = set()
    for split in ("train", "valid"):
        dump = recipe / "dump" / split
        frames = read_scp(dump / "frames.scp")
        for key, wav in read_scp(dump / "wav.scp").items():
            audio, rate = sf.read(wav, dtype="float32")
            assert rate == 16000 and audio.ndim == 1 and abs(len(audio) / rate - 10.0) < 0.05, key
            assert np.abs(audio).max() > 1e-3, key
            assert len(list(Path(frames[key]).glob("*.jpg"))) in (9, 10), key
            v = by_clip[key]
            seen.add((v["container"], v["fps"]))
    assert {c for c, _ in seen} == {"mp4", "webm", "mkv"} and "vfr" in {f for _, f in seen}


@pytest.mark.slow
def test_killed_twice_then_rerun_gives_the_files_of_an_uninterrupted_run(runs):
    _, clean, killed, _, _, kills = runs
    assert kills == [True, True]

    def files(recipe: Path) -> dict:
        out = {}
        for top in ("world/data", "world/download", "data", "dump"):
            for p in sorted((recipe / top).rglob("*")):
                if p.is_file() and p.name != "download_report.json":
                    out[str(p.relative_to(recipe))] = p.read_bytes().replace(str(recipe).encode(), b"RECIPE")
        return out

    a, b = files(clean), files(killed)
    assert sorted(a) == sorted(b)  # no leftover temporary file, nothing missing
    assert [k for k in a if a[k] != b[k]] == []
    assert not [p for p in (killed / "world").rglob("*") if p.name.endswith(".tmp") or ".tmp." in p.name]


def test_generator_refuses_bad_requests(tmp_path, capsys):
    from espnet2_clip.bin.make_rehearsal_corpus import main

    assert main(["--output_dir", str(tmp_path / "small"), "--num_videos", "5"]) == 1
    assert "needs at least 24 videos" in capsys.readouterr().err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my data")
    assert main(["--output_dir", str(tmp_path / "mine"), "--num_videos", "24"]) == 1
    assert "not empty and not a rehearsal corpus" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "my data"


def test_stand_in_ytdlp_plays_each_fault(tmp_path):
    """The stand-in alone: yt-dlp's messages and exit codes, the killed call, the throttled calls."""
    from espnet2_clip.data.download import classify_error
    from espnet2_clip.data.rehearsal import SourceVideo, write_ytdlp

    corpus = tmp_path / "c"
    videos = [SourceVideo(f"rfault{i:05d}", 0, "circle", "train", 0, 11.0, "mp4", "libx264", "aac", 44100, 2, 25.0,
                          64, 64, 0, fault) for i, fault in enumerate(("private", "removed", "throttled"))]
    (corpus / "state").mkdir(parents=True)
    import dataclasses

    (corpus / "manifest.json").write_text(json.dumps({"videos": [dataclasses.asdict(v) for v in videos]}))
    exe = write_ytdlp(corpus)

    def call(ytid):
        return subprocess.run([str(exe), "-o", str(tmp_path / "out.%(ext)s"), "--", f"https://x/watch?v={ytid}"],
                              capture_output=True, text=True)

    reasons = [classify_error(call(v.ytid).stderr) for v in videos]
    assert reasons == ["private", "unavailable", "throttled"]
    assert classify_error(call("rfault00002").stderr) == "throttled"  # its second call too
    unknown = call("nosuchvideo")
    assert unknown.returncode == 1 and classify_error(unknown.stderr) == "unavailable"
