import os
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from espnet2_clip.bin.extract_av import main
from espnet2_clip.data.bridge_world import WorldConfig, generate_world
from espnet2_clip.data.video import write_video
from espnet2_clip.utils.fileio import read_scp, write_scp


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("av")
    cfg = WorldConfig(seed=0, num_classes=6, videos_per_class=1, valid_per_class=0,
                      video_seconds=4.5, clip_images_per_class=0, test_mix_per_class=0)
    generate_world(root / "world", cfg)
    d = root / "data"
    videos = read_scp(root / "world/data/train/video.scp")
    labels = read_scp(root / "world/data/train/label")
    corrupt = root / "corrupt.mp4"
    corrupt.write_bytes(b"not a video at all" * 50)
    silent = write_video(root / "silent.mp4", np.zeros((8, 32, 32, 3), np.uint8), 4)
    videos.update(zz_corrupt=str(corrupt), zz_silent=str(silent))
    labels.update(zz_corrupt="circle", zz_silent="circle")
    write_scp(d / "video.scp", videos)
    write_scp(d / "label", labels)
    return d


def test_extract_skips_bad_items(data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main([str(data_dir), "--output_dir", str(out), "--size", "64", "--nj", "2", "--no_progress"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "6/8 videos extracted, 2 skipped" in err
    assert "corrupt.mp4" in err and "no audio track" in err
    wavs = read_scp(out / "wav.scp")
    frames = read_scp(out / "frames.scp")
    nf = read_scp(out / "utt2num_frames")
    assert len(wavs) == 6 and wavs.keys() == frames.keys() == nf.keys()
    assert set(read_scp(out / "bad_videos")) == {"zz_corrupt", "zz_silent"}
    assert read_scp(out / "label").keys() == wavs.keys()  # copied and filtered
    for u in wavs:
        x, fs = soundfile.read(wavs[u])
        assert fs == 16000 and x.ndim == 1 and abs(len(x) - 4.5 * 16000) < 0.05 * 16000
        assert int(nf[u]) == 4  # 4.5 s at 1 fps: frames for [0,1) ... [3,4)
        files = sorted(os.listdir(frames[u]))
        assert files == [f"{i:06d}.jpg" for i in range(1, 5)]
        assert np.asarray(Image.open(Path(frames[u]) / files[0])).shape == (64, 64, 3)
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]

    # idempotent: a rerun reuses the outputs and writes the same lists
    stamp = (Path(frames["train_circle_0000"]) / "000001.jpg").stat().st_mtime_ns
    before = (out / "wav.scp").read_text()
    assert main([str(data_dir), "--output_dir", str(out), "--size", "64", "--no_progress"]) == 0
    assert (out / "wav.scp").read_text() == before
    assert (Path(frames["train_circle_0000"]) / "000001.jpg").stat().st_mtime_ns == stamp
    # --strict turns any failure into exit 1
    assert main([str(data_dir), "--output_dir", str(out), "--size", "64", "--strict", "--no_progress"]) == 1


def test_all_failed_is_an_error(tmp_path):
    d = tmp_path / "d"
    (tmp_path / "bad.mp4").write_bytes(b"garbage")
    write_scp(d / "video.scp", {"a": str(tmp_path / "bad.mp4"), "b": str(tmp_path / "missing.mp4")})
    assert main(["--data_dir", str(d), "--no_progress"]) == 1
    assert set(read_scp(d / "bad_videos")) == {"a", "b"}


def test_missing_video_scp(tmp_path, capsys):
    assert main([str(tmp_path), "--no_progress"]) == 1
    assert "video.scp" in capsys.readouterr().err


def test_disk_full_stops_the_stage_without_listing_bad_videos(data_dir, tmp_path):
    """ffmpeg's "No space left on device" (a stand-in ffmpeg at the process boundary) is the disk's
    fault: exit 1 with a clear message, and neither wav.scp nor bad_videos is written."""
    import subprocess
    import sys

    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\necho 'av_interleaved_write_frame(): No space left on device' >&2\nexit 1\n")
    fake.chmod(0o755)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "espnet2_clip.bin.extract_av", str(data_dir), "--output_dir", str(out),
                           "--nj", "1", "--no_progress", "--size", "32"],
                          env=dict(os.environ, ESPNET2_CLIP_FFMPEG=str(fake)), capture_output=True, text=True)
    assert proc.returncode == 1
    assert "extract_av: error: no space left on device" in proc.stderr and "free some space and rerun" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (out / "wav.scp").exists() and not (out / "bad_videos").exists()
