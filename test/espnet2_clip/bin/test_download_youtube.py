"""End-to-end tests of ``python -m espnet2_clip.bin.download_youtube`` with a fake yt-dlp."""

import json
import os
import sys
from pathlib import Path

import pytest

from espnet2_clip.bin.download_youtube import main
from espnet2_clip.data.download import missing_report_line
from espnet2_clip.data.video import extract_audio
from espnet2_clip.utils.fileio import read_scp

FAKE_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "fake_ytdlp"

IDS = (
    "good1 goodAAAAAAA 30 10\n"
    "good2 goodBBBBBBB\n"
    "good3 goodCCCCCCC 1.5 2\n"
    "dead1 deadDDDDDDD 0 10\n"
    "priv1 privEEEEEEE\n"
    "bot1 botFFFFFFFF 5 10\n"
)


@pytest.fixture
def fake_ytdlp(tmp_path, monkeypatch):
    log = tmp_path / "ytdlp.log"
    monkeypatch.setenv("PATH", os.pathsep.join([str(FAKE_DIR), os.path.dirname(sys.executable),
                                                os.environ.get("PATH", "")]))
    monkeypatch.setenv("FAKE_YTDLP_LOG", str(log))
    monkeypatch.delenv("ESPNET2_CLIP_YTDLP", raising=False)
    return log


def _calls(log: Path):
    return [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []


def _downloads(log: Path):
    return [c for c in _calls(log) if "--version" not in c["argv"]]


def _argv_of(log: Path, ytid: str):
    return next(c["argv"] for c in _downloads(log) if c["id"] == ytid)


def _opt(argv, name):
    return argv[argv.index(name) + 1]


def test_download_list_rerun_and_report(tmp_path, fake_ytdlp, capsys):
    ids = tmp_path / "ids"
    ids.write_text(IDS)
    out = tmp_path / "out"
    # a leftover from a killed run: partial temp download of good2
    stale = out / "videos" / ".good2.tmp"
    stale.mkdir(parents=True)
    (stale / "good2.mp4").write_bytes(b"\x00" * 100)

    assert main(["--ids", str(ids), "--output_dir", str(out), "--nj", "3", "--no_progress"]) == 0
    err = capsys.readouterr().err
    assert "hint:" in err and "--cookies" in err  # bot check -> cookies hint

    scp = read_scp(out / "video.scp")
    assert sorted(scp) == ["good1", "good2", "good3"]
    for cid, path in scp.items():
        assert Path(path) == out / "videos" / f"{cid}.mp4"
        extract_audio(path, tmp_path / "wav" / f"{cid}.wav", fs=8000)
    assert read_scp(out / "missing") == {"dead1": "unavailable", "priv1": "private", "bot1": "bot-check"}
    assert sorted(os.listdir(out / "videos")) == ["good1.mp4", "good2.mp4", "good3.mp4"]  # stale temp gone

    rep = json.loads((out / "download_report.json").read_text())
    assert rep["requested"] == 6 and rep["obtained"] == 3 and rep["missing"] == 3
    assert rep["missing_by_reason"] == {"unavailable": 1, "private": 1, "bot-check": 1}
    assert "Private video" in rep["errors"]["priv1"]
    assert missing_report_line(out / "download_report.json") == \
        "obtained 3/6 videos (3 missing: 1 unavailable, 1 private, 1 bot-check)"

    # sections: VGGSound-style rows get their window, whole-video rows none
    assert _opt(_argv_of(fake_ytdlp, "goodAAAAAAA"), "--download-sections") == "*30-40"
    assert _opt(_argv_of(fake_ytdlp, "goodCCCCCCC"), "--download-sections") == "*1.5-3.5"
    assert "--download-sections" not in _argv_of(fake_ytdlp, "goodBBBBBBB")
    assert "--cookies" not in _argv_of(fake_ytdlp, "goodBBBBBBB")
    assert len(_downloads(fake_ytdlp)) == 6

    # rerun: nothing new is downloaded; dead/private are not asked again, the bot check is
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "videos").iterdir()}
    assert main(["--ids", str(ids), "--output_dir", str(out), "--no_progress"]) == 0
    again = _downloads(fake_ytdlp)[6:]
    assert [c["id"] for c in again] == ["botFFFFFFFF"]
    assert {p: p.stat().st_mtime_ns for p in (out / "videos").iterdir()} == mtimes
    assert read_scp(out / "missing") == {"dead1": "unavailable", "priv1": "private", "bot1": "bot-check"}
    rep2 = json.loads((out / "download_report.json").read_text())
    assert rep2["obtained"] == 3 and rep2["already_present"] == 3 and rep2["downloaded"] == 0
    assert rep2["errors"]["dead1"] == rep["errors"]["dead1"]

    # --retry_missing asks again for every missing clip
    assert main(["--ids", str(ids), "--output_dir", str(out), "--no_progress", "--retry_missing"]) == 0
    assert sorted(c["id"] for c in _downloads(fake_ytdlp)[7:]) == ["botFFFFFFFF", "deadDDDDDDD", "privEEEEEEE"]
    # --strict turns missing clips into exit 1
    assert main(["--ids", str(ids), "--output_dir", str(out), "--no_progress", "--strict"]) == 1


def test_truncated_download_is_retried_then_counted(tmp_path, fake_ytdlp):
    ids = tmp_path / "ids"
    ids.write_text("ok goodAAAAAAA 0 2\ncut truncAAAAAA 0 2\n")
    out = tmp_path / "out"
    assert main(["--ids", str(ids), "--output_dir", str(out), "--no_progress"]) == 0
    assert read_scp(out / "missing") == {"cut": "broken"}
    assert [c["id"] for c in _downloads(fake_ytdlp)].count("truncAAAAAA") == 2  # one retry
    assert sorted(os.listdir(out / "videos")) == ["ok.mp4"]
    assert "mid-file" in json.loads((out / "download_report.json").read_text())["errors"]["cut"]
    # broken is transient: the rerun tries again (no retry this time)
    assert main(["--ids", str(ids), "--output_dir", str(out), "--no_progress", "--retry_broken", "0"]) == 0
    assert [c["id"] for c in _downloads(fake_ytdlp)].count("truncAAAAAA") == 3


def test_passthrough_options(tmp_path, fake_ytdlp):
    ids = tmp_path / "ids"
    ids.write_text("a goodAAAAAAA 10 2\n")
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n")
    out = tmp_path / "out"
    assert main(["--ids", str(ids), "--output_dir", str(out), "--no_progress", "--cookies", str(cookies),
                 "--cookies_from_browser", "firefox", "--limit_rate", "1M", "--retries", "4",
                 "--force_keyframes_at_cuts", "--ytdlp_args", "--sleep-requests 1"]) == 0
    argv = _argv_of(fake_ytdlp, "goodAAAAAAA")
    assert argv[argv.index("--cookies") + 1] == str(cookies)
    assert argv[argv.index("--cookies-from-browser") + 1] == "firefox"
    assert argv[argv.index("--limit-rate") + 1] == "1M"
    assert argv[argv.index("--retries") + 1] == "4"
    assert "--force-keyframes-at-cuts" in argv and "--sleep-requests" in argv
    assert os.path.isfile(argv[argv.index("--ffmpeg-location") + 1])
    # --no_sections: the whole video
    ids.write_text("b goodBBBBBBB 10 2\n")
    assert main(["--ids", str(ids), "--output_dir", str(out), "--no_progress", "--no_sections"]) == 0
    assert "--download-sections" not in _argv_of(fake_ytdlp, "goodBBBBBBB")
    # a missing cookies file is a clear error
    assert main(["--ids", str(ids), "--output_dir", str(out), "--cookies", str(tmp_path / "nope.txt")]) == 1


def test_ytdlp_override(tmp_path, fake_ytdlp, monkeypatch, capsys):
    ids = tmp_path / "ids"
    ids.write_text("a goodAAAAAAA 0 1\n")
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable))  # fake not on PATH
    monkeypatch.setenv("ESPNET2_CLIP_YTDLP", str(FAKE_DIR / "yt-dlp"))
    assert main(["--ids", str(ids), "--output_dir", str(tmp_path / "o1"), "--no_progress"]) == 0
    monkeypatch.delenv("ESPNET2_CLIP_YTDLP")
    assert main(["--ids", str(ids), "--output_dir", str(tmp_path / "o2"), "--no_progress",
                 "--ytdlp", str(FAKE_DIR / "yt-dlp")]) == 0
    assert main(["--ids", str(ids), "--output_dir", str(tmp_path / "o3"),
                 "--ytdlp", str(tmp_path / "none")]) == 1
    assert "not found" in capsys.readouterr().err


def test_all_failed_and_stop_after_bot_checks(tmp_path, fake_ytdlp):
    ids = tmp_path / "ids"
    ids.write_text("".join(f"b{i} botAAAAAAA{i}\n" for i in range(4)))
    out = tmp_path / "out"
    assert main(["--ids", str(ids), "--output_dir", str(out), "--no_progress", "--nj", "1",
                 "--stop_after_bot_checks", "2"]) == 1  # nothing obtained
    missing = read_scp(out / "missing")
    assert sorted(missing.values()) == ["bot-check", "bot-check", "not-attempted", "not-attempted"]
    assert len(_downloads(fake_ytdlp)) == 2
    assert read_scp(out / "video.scp") == {}
    rep = json.loads((out / "download_report.json").read_text())
    assert rep["missing_by_reason"] == {"bot-check": 2, "not-attempted": 2}
    # not-attempted and bot-check clips are asked for again on the next run
    main(["--ids", str(ids), "--output_dir", str(out), "--no_progress", "--nj", "1"])
    assert len(_downloads(fake_ytdlp)) == 6


def test_malformed_id_list(tmp_path, fake_ytdlp, capsys):
    ids = tmp_path / "ids"
    ids.write_text("good1 goodAAAAAAA 30 10\nbad1 badAAAAAAAA 30\n")
    assert main(["--ids", str(ids), "--output_dir", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"{ids}:2:" in err and "clip_id ytid" in err
    assert _downloads(fake_ytdlp) == []
    assert main(["--ids", str(tmp_path / "nope"), "--output_dir", str(tmp_path / "out")]) == 1


def test_converters(tmp_path, fake_ytdlp):
    csv = tmp_path / "vggsound.csv"
    csv.write_text('goodAAAAAAA,30,"dog barking",test\n'
                   'goodBBBBBBB,0,"vehicle horn, car horn, honking",train\n'
                   'deadCCCCCCC,12,"playing cello",test\n')
    out = tmp_path / "vgg"
    assert main(["--from_vggsound_csv", str(csv), "--split", "test", "--output_dir", str(out),
                 "--no_progress", "--clip_duration", "2"]) == 0
    assert (out / "ids").read_text() == "goodAAAAAAA_000030 goodAAAAAAA 30 2\ndeadCCCCCCC_000012 deadCCCCCCC 12 2\n"
    assert read_scp(out / "label") == {"goodAAAAAAA_000030": "dog barking", "deadCCCCCCC_000012": "playing cello"}
    assert list(read_scp(out / "video.scp")) == ["goodAAAAAAA_000030"]
    assert read_scp(out / "missing") == {"deadCCCCCCC_000012": "unavailable"}
    argv = _argv_of(fake_ytdlp, "goodAAAAAAA")
    assert argv[argv.index("--download-sections") + 1] == "*30-32"

    js = tmp_path / "MUSIC_solo_videos.json"
    js.write_text(json.dumps({"videos": {"accordion": ["goodDDDDDDD"], "tuba": ["privEEEEEEE", "goodFFFFFFF"]}}))
    out = tmp_path / "music"
    n = len(_downloads(fake_ytdlp))
    assert main(["--from_music_json", str(js), "--output_dir", str(out), "--ids", str(tmp_path / "m.ids"),
                 "--convert_only"]) == 0
    assert len(_downloads(fake_ytdlp)) == n and not (out / "video.scp").exists()
    assert (tmp_path / "m.ids").read_text() == "goodDDDDDDD goodDDDDDDD\nprivEEEEEEE privEEEEEEE\ngoodFFFFFFF goodFFFFFFF\n"
    assert read_scp(out / "label") == {"goodDDDDDDD": "accordion", "privEEEEEEE": "tuba", "goodFFFFFFF": "tuba"}
    assert main(["--ids", str(tmp_path / "m.ids"), "--output_dir", str(out), "--no_progress"]) == 0
    assert missing_report_line(out) == "obtained 2/3 videos (1 missing: 1 private)"

    bad = tmp_path / "bad.csv"
    bad.write_text('goodAAAAAAA,30,"dog barking",test\nbroken-row\n')
    assert main(["--from_vggsound_csv", str(bad), "--output_dir", str(tmp_path / "b")]) == 1


def test_cli_subprocess(tmp_path, fake_ytdlp):
    """``python -m`` works and writes a progress bar to stderr."""
    import subprocess

    ids = tmp_path / "ids"
    ids.write_text("a goodAAAAAAA 0 1\nb deadBBBBBBB 0 1\n")
    proc = subprocess.run([sys.executable, "-m", "espnet2_clip.bin.download_youtube", "--ids", str(ids),
                           "--output_dir", str(tmp_path / "out"), "--nj", "2"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[3])
    assert proc.returncode == 0, proc.stderr
    assert "obtained 1/2 videos (1 missing: 1 unavailable)" in proc.stderr


def test_a_full_disk_stops_the_run(tmp_path, fake_ytdlp, capsys):
    """yt-dlp's "No space left on device": the clip is disk-full, the rest not attempted, exit 1 with
    one clear line; a rerun asks for both again."""
    ids = tmp_path / "ids"
    ids.write_text("a goodAAAAAAA\nb nospaceAAAA\nc goodBBBBBBB\n")
    out = tmp_path / "out"
    assert main(["--ids", str(ids), "--output_dir", str(out), "--no_progress", "--nj", "1"]) == 1
    assert "no space left on device under" in capsys.readouterr().err
    assert read_scp(out / "missing") == {"b": "disk-full", "c": "not-attempted"}
    assert list(read_scp(out / "video.scp")) == ["a"]
    assert len(_downloads(fake_ytdlp)) == 2  # c was never asked for
