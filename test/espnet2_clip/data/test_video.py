import os

import numpy as np
import pytest
from PIL import Image

from espnet2_clip.data.video import (
    NoAudioStreamError,
    VideoDecodeError,
    extract_audio,
    extract_frames,
    read_wav,
    write_video,
)

FS = 16000


def _clip(seconds=3.0, fps=4, h=72, w=96):
    t = np.arange(int(seconds * FS)) / FS
    audio = 0.3 * np.sin(2 * np.pi * 440 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t))
    audio += 0.1 * np.sin(2 * np.pi * 1250 * t)
    n = int(seconds * fps)
    frames = np.zeros((n, h, w, 3), np.uint8)
    for i in range(n):
        frames[i, ..., 0] = 20 + 15 * i  # brightness ramp tells frames apart
        frames[i, ..., 2] = 200
    return frames, audio.astype(np.float32)


def _leftovers(d):
    return [p for p in os.listdir(d) if p.startswith(".") or p.endswith(".tmp")]


@pytest.mark.parametrize("vcodec", ["libx264", "mpeg4"])
def test_round_trip(tmp_path, vcodec):
    frames, audio = _clip()
    video = write_video(tmp_path / "v.mp4", frames, 4, audio, FS, vcodec=vcodec)
    wav = extract_audio(video, tmp_path / "a.wav")
    x, fs = read_wav(wav)
    assert fs == FS
    assert abs(len(x) - len(audio)) < 0.05 * FS
    n = min(len(x), len(audio))
    assert np.corrcoef(x[:n], audio[:n])[0, 1] > 0.9

    paths = extract_frames(video, tmp_path / "frames", fps=1, size=64)
    assert [p.name for p in paths] == [f"{i:06d}.jpg" for i in range(1, 4)]  # 3 s x 1 fps
    img = np.asarray(Image.open(paths[0]))
    assert img.shape == (64, 64, 3)
    # frame i covers [i-1, i) s: brightness increases from frame to frame
    reds = [np.asarray(Image.open(p))[..., 0].mean() for p in paths]
    assert reds[0] < reds[1] < reds[2]
    assert len(extract_frames(video, tmp_path / "f2", fps=2, size=32)) == 6
    assert _leftovers(tmp_path) == []


def test_default_size_and_non_square(tmp_path):
    frames, audio = _clip(seconds=2.0, h=50, w=81)  # odd width is padded for yuv420p
    video = write_video(tmp_path / "v.mp4", frames, 4, audio, FS)
    paths = extract_frames(video, tmp_path / "frames")
    assert len(paths) == 2
    assert np.asarray(Image.open(paths[0])).shape == (224, 224, 3)


def test_rerun_skips_finished(tmp_path):
    frames, audio = _clip(seconds=2.0)
    video = write_video(tmp_path / "v.mp4", frames, 4, audio, FS)
    wav = extract_audio(video, tmp_path / "a.wav")
    fdir = tmp_path / "frames"
    extract_frames(video, fdir, size=32)
    mtime = wav.stat().st_mtime_ns
    ftime = (fdir / "000001.jpg").stat().st_mtime_ns
    video.unlink()  # a rerun must not even need the video
    extract_audio(video, wav)
    extract_frames(video, fdir, size=32)
    assert wav.stat().st_mtime_ns == mtime
    assert (fdir / "000001.jpg").stat().st_mtime_ns == ftime


def test_no_audio_track(tmp_path):
    frames, _ = _clip(seconds=2.0)
    video = write_video(tmp_path / "silent.mp4", frames, 4)
    with pytest.raises(NoAudioStreamError) as e:
        extract_audio(video, tmp_path / "out" / "a.wav")
    assert "silent.mp4" in str(e.value) and "no audio track" in str(e.value)
    assert not (tmp_path / "out" / "a.wav").exists()
    assert _leftovers(tmp_path / "out") == []
    # frames still work for such a video
    assert len(extract_frames(video, tmp_path / "frames", size=32)) == 2


def test_corrupt_file(tmp_path):
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(3000))
    with pytest.raises(VideoDecodeError) as e:
        extract_audio(bad, tmp_path / "out" / "a.wav")
    assert "corrupt.mp4" in str(e.value) and "ffmpeg" in str(e.value)
    with pytest.raises(VideoDecodeError):
        extract_frames(bad, tmp_path / "out" / "frames")
    assert sorted(os.listdir(tmp_path / "out")) == []  # no temp file / dir left behind
    with pytest.raises(VideoDecodeError, match="no such file"):
        extract_audio(tmp_path / "missing.mp4", tmp_path / "out" / "b.wav")


def test_truncated_video(tmp_path):
    frames, audio = _clip(seconds=2.0)
    video = write_video(tmp_path / "v.mp4", frames, 4, audio, FS)
    data = video.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(VideoDecodeError):
        extract_audio(cut, tmp_path / "out" / "a.wav")
    assert os.listdir(tmp_path / "out") == []


def test_write_video_rejects_bad_frames(tmp_path):
    with pytest.raises(ValueError):
        write_video(tmp_path / "x.mp4", np.zeros((2, 8, 8), np.uint8), 4)
    assert not (tmp_path / "x.mp4").exists()
