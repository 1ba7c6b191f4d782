"""Tests of espnet2_clip.data.download (a fake yt-dlp; no network)."""

import dataclasses
import json
import os
import sys
from pathlib import Path

import pytest

from espnet2_clip.data.download import (
    DownloadItem,
    DownloadOptions,
    Throttle,
    YtDlpNotFoundError,
    build_ytdlp_command,
    classify_error,
    download_one,
    error_summary,
    find_ytdlp,
    format_missing_line,
    items_from_music_json,
    items_from_vggsound_csv,
    missing_report_line,
    read_id_list,
    validate_video,
    write_id_list,
)
from espnet2_clip.data.lists import ListFormatError
from espnet2_clip.data.video import VideoDecodeError

FAKE_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "fake_ytdlp"


@pytest.fixture
def fake_ytdlp(tmp_path, monkeypatch):
    """Put the fake yt-dlp first on PATH; returns the log file it appends to."""
    log = tmp_path / "ytdlp.log"
    monkeypatch.setenv("PATH", os.pathsep.join([str(FAKE_DIR), os.path.dirname(sys.executable),
                                                os.environ.get("PATH", "")]))
    monkeypatch.setenv("FAKE_YTDLP_LOG", str(log))
    monkeypatch.delenv("ESPNET2_CLIP_YTDLP", raising=False)
    return log


def _calls(log: Path):
    if not log.exists():
        return []
    return [json.loads(l) for l in log.read_text().splitlines()]


# ------------------------------------------------------------------ id lists


def test_read_id_list(tmp_path):
    p = tmp_path / "ids"
    p.write_text("# comment\nabc_000030 abcdefghijk 30 10\n\nmusic1 ZeQPNWdFs_4   # trailing\nx y 1.5 2.25\n")
    items = read_id_list(p)
    assert [i.clip_id for i in items] == ["abc_000030", "music1", "x"]
    assert items[0].section == (30.0, 40.0) and items[1].section is None
    assert items[2].section == (1.5, 3.75)
    assert items[0].url == "https://www.youtube.com/watch?v=abcdefghijk"
    write_id_list(tmp_path / "ids2", items)
    assert (tmp_path / "ids2").read_text() == "abc_000030 abcdefghijk 30 10\nmusic1 ZeQPNWdFs_4\nx y 1.5 2.25\n"
    assert read_id_list(tmp_path / "ids2") == [
        DownloadItem(i.clip_id, i.ytid, i.start, i.duration, f"{tmp_path / 'ids2'}:{n}")
        for n, i in enumerate(items, 1)
    ]


@pytest.mark.parametrize("line,msg", [
    ("onlyone", "got 1 field"),
    ("a b 30", "got 3 field"),
    ("a b 30 10 extra", "got 5 field"),
    ("a b x 10", "must be numbers"),
    ("a b -1 10", "start >= 0"),
    ("a b 0 0", "duration > 0"),
    ("a b/c", "invalid ytid"),
    ("ok1 abc\nok1 def", "duplicated clip_id"),
])
def test_read_id_list_errors_name_file_and_line(tmp_path, line, msg):
    p = tmp_path / "ids"
    p.write_text("good abcdefghijk\n" + line + "\n")
    with pytest.raises(ListFormatError, match=msg) as e:
        read_id_list(p)
    assert f"{p}:{2 if 'ok1' not in line else 3}:" in str(e.value)
    with pytest.raises(FileNotFoundError):
        read_id_list(tmp_path / "nope")


def test_items_from_vggsound_csv(tmp_path):
    csv = tmp_path / "vggsound.csv"
    csv.write_text(
        '---g-f_I2yQ,1,"people marching",test\n'
        '--0PQM4-hqg,30,"waterfall burbling",train\n'
        'kLyY8uCoYUQ,20,"vehicle horn, car horn, honking",test\n'
        'kLyY8uCoYUQ,20,"vehicle horn, car horn, honking",test\n'
    )
    items, labels = items_from_vggsound_csv(csv, split="test")
    assert [i.to_line() for i in items] == ["---g-f_I2yQ_000001 ---g-f_I2yQ 1 10",
                                            "kLyY8uCoYUQ_000020 kLyY8uCoYUQ 20 10"]
    assert labels == {"---g-f_I2yQ_000001": "people marching",
                      "kLyY8uCoYUQ_000020": "vehicle horn car horn honking"}
    items, _ = items_from_vggsound_csv(csv, split="all", duration=5)
    assert len(items) == 3 and items[1].section == (30.0, 35.0)


def test_items_from_music_json(tmp_path):
    js = tmp_path / "MUSIC_solo_videos.json"
    js.write_text(json.dumps({"videos": {"accordion": ["AAAAAAAAAAA", "BBBBBBBBBBB"],
                                         "acoustic_guitar": ["CCCCCCCCCCC", "AAAAAAAAAAA"]}}))
    items, labels = items_from_music_json(js)
    assert [i.to_line() for i in items] == ["AAAAAAAAAAA AAAAAAAAAAA", "BBBBBBBBBBB BBBBBBBBBBB",
                                            "CCCCCCCCCCC CCCCCCCCCCC"]
    assert labels == {"AAAAAAAAAAA": "accordion", "BBBBBBBBBBB": "accordion",
                      "CCCCCCCCCCC": "acoustic_guitar"}
    bad = tmp_path / "bad.json"
    bad.write_text('{"videos": ["x"]}')
    with pytest.raises(ListFormatError, match="bad.json"):
        items_from_music_json(bad)
    bad.write_text('{"videos": {')
    with pytest.raises(ListFormatError, match="invalid json"):
        items_from_music_json(bad)


# ------------------------------------------------------------------ yt-dlp command / errors


def test_build_command_is_valid_ytdlp(tmp_path):
    yt_dlp = pytest.importorskip("yt_dlp")
    item = DownloadItem("abc_000030", "abcdefghijk", 30, 10)
    opts = DownloadOptions(cookies="c.txt", cookies_from_browser="firefox", limit_rate="2M",
                           retries=3, force_keyframes_at_cuts=True, ffmpeg_location="/x/ffmpeg")
    cmd = build_ytdlp_command(item, str(tmp_path / "abc.%(ext)s"), opts)
    parsed = yt_dlp.parse_options(cmd[1:])  # the real option parser: no network
    o = parsed.ydl_opts
    assert parsed.urls == ["https://www.youtube.com/watch?v=abcdefghijk"]
    assert cmd[cmd.index("--download-sections") + 1] == "*30-40"
    assert o["force_keyframes_at_cuts"] and o["cookiefile"] == "c.txt"
    assert o["cookiesfrombrowser"][0] == "firefox" and o["ratelimit"] == 2 * 1024 ** 2
    assert o["retries"] == 3 and o["ffmpeg_location"] == "/x/ffmpeg"
    assert o["merge_output_format"] == "mp4" and "ba" in o["format"]
    # whole video: no sections; sections off: none either
    assert "--download-sections" not in build_ytdlp_command(DownloadItem("m", "m"), "o", opts)
    opts.sections = False
    assert "--download-sections" not in build_ytdlp_command(item, "o", opts)
    # default ffmpeg is ours
    from espnet2_clip.data.video import ffmpeg_exe
    cmd = build_ytdlp_command(item, "o", DownloadOptions())
    assert cmd[cmd.index("--ffmpeg-location") + 1] == ffmpeg_exe()
    assert "--cookies" not in cmd and "--force-keyframes-at-cuts" not in cmd


@pytest.mark.parametrize("stderr,reason", [
    ("ERROR: [youtube] x: Video unavailable. This video is no longer available", "unavailable"),
    ("ERROR: [youtube] x: Video unavailable. This video has been removed by the uploader", "unavailable"),
    ("ERROR: [youtube] x: Private video. Sign in if you've been granted access to this video", "private"),
    ("WARNING: x\nERROR: [youtube] x: Sign in to confirm you’re not a bot. Use --cookies", "bot-check"),
    ("ERROR: [youtube] x: Sign in to confirm you're not a bot.", "bot-check"),
    ("ERROR: unable to download video data: HTTP Error 429: Too Many Requests", "throttled"),
    ("ERROR: [youtube] x: Unable to download webpage: <urlopen error [Errno -3] Temporary failure>", "network"),
    ("ERROR: [youtube] x: This video is only available to Music Premium members", "other"),
    ("", "other"),
])
def test_classify_error(stderr, reason):
    assert classify_error(stderr) == reason


def test_error_summary():
    assert error_summary("a\nWARNING: w\nERROR:  boom   x\nlast") == "ERROR: boom x"
    assert error_summary("one\ntwo") == "two"
    assert error_summary("") == "(no message)"


def test_find_ytdlp(fake_ytdlp, monkeypatch, tmp_path):
    assert find_ytdlp() == str(FAKE_DIR / "yt-dlp")
    monkeypatch.setenv("ESPNET2_CLIP_YTDLP", str(FAKE_DIR / "yt-dlp"))
    assert find_ytdlp() == str(FAKE_DIR / "yt-dlp")
    with pytest.raises(YtDlpNotFoundError, match="nope"):
        find_ytdlp(str(tmp_path / "nope"))


# ------------------------------------------------------------------ reports, throttle


def test_missing_lines(tmp_path):
    assert format_missing_line(41, 46, {"private": 1, "unavailable": 4}) == \
        "obtained 41/46 videos (5 missing: 4 unavailable, 1 private)"
    assert format_missing_line(3, 3, {}) == "obtained 3/3 videos (0 missing)"
    (tmp_path / "download_report.json").write_text(json.dumps(
        {"requested": 6, "obtained": 4, "missing_by_reason": {"bot-check": 1, "unavailable": 1}}))
    line = "obtained 4/6 videos (2 missing: 1 unavailable, 1 bot-check)"
    assert missing_report_line(tmp_path / "download_report.json") == line
    assert missing_report_line(tmp_path) == line


def test_throttle_spaces_calls_per_thread():
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    th = Throttle(2.0, clock=lambda: now[0], sleep=sleep)
    assert th.wait() == 0.0  # first call: no wait
    now[0] += 0.5
    assert th.wait() == pytest.approx(1.5)
    now[0] += 5.0
    assert th.wait() == 0.0
    th = Throttle(1.0, max_interval=3.0, clock=lambda: now[0], sleep=sleep)
    th.wait()
    assert 1.0 <= th.wait() <= 3.0


# ------------------------------------------------------------------ one clip with the fake


def test_validate_video(tmp_path):
    import numpy as np

    from espnet2_clip.data.video import write_video

    frames = np.zeros((4, 16, 16, 3), np.uint8)
    audio = 0.1 * np.sin(np.arange(16000) / 5.0)
    good = write_video(tmp_path / "g.mp4", frames, 2, audio, 8000)
    validate_video(good)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(VideoDecodeError, match="cut.mp4"):
        validate_video(cut)
    silent = write_video(tmp_path / "s.mp4", frames, 2)
    with pytest.raises(VideoDecodeError, match="s.mp4"):
        validate_video(silent)
    with pytest.raises(VideoDecodeError):
        validate_video(tmp_path / "missing.mp4")


def test_download_one(tmp_path, fake_ytdlp):
    opts = DownloadOptions(ytdlp=find_ytdlp())
    vdir = tmp_path / "videos"
    r = download_one(DownloadItem("c1", "goodaaaaaaa", 4, 2), vdir, opts)
    assert r.reason is None and r.calls == 1 and Path(r.path) == vdir / "c1.mp4"
    assert sorted(os.listdir(vdir)) == ["c1.mp4"]  # no temp left
    argv = _calls(fake_ytdlp)[0]["argv"]
    assert argv[argv.index("--download-sections") + 1] == "*4-6"
    r = download_one(DownloadItem("c1", "goodaaaaaaa", 4, 2), vdir, opts)
    assert r.existed and r.calls == 0
    r = download_one(DownloadItem("t", "truncaaaaaa"), vdir, opts)
    assert r.reason == "broken" and r.calls == 2 and "mid-file" in r.message
    r = download_one(DownloadItem("n", "nofileaaaaa"), vdir, opts)
    assert r.reason == "other" and "wrote no" in r.message
    r = download_one(DownloadItem("d", "netaaaaaaaa"), vdir, dataclasses.replace(opts, retry_wait=0.01))
    assert r.reason == "network" and r.calls == 3  # retried twice in the run (retry_transient)
    r = download_one(DownloadItem("d", "netaaaaaaaa"), vdir, dataclasses.replace(opts, retry_transient=0))
    assert r.reason == "network" and r.calls == 1
    assert sorted(os.listdir(vdir)) == ["c1.mp4"]
