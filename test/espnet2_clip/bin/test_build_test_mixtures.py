"""``python -m espnet2_clip.bin.build_test_mixtures`` on generated wavs and frames (no network)."""

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from espnet2_clip.bin.build_test_mixtures import centre_sample, main, report_line
from espnet2_clip.utils.fileio import read_scp, write_scp

FS = 16000
L = 65535
HEADER = "idx,target_id,target_label,target_center_frame,interf_id,interf_label,interf_center_frame\n"


def _clip(root: Path, clip_id: str, seconds: float, n_frames: int, freq: float, skip_frames=()):
    t = np.arange(int(seconds * FS)) / FS
    wav = root / "wav" / f"{clip_id}.wav"
    wav.parent.mkdir(parents=True, exist_ok=True)
    sf.write(wav, (0.5 * np.sin(2 * np.pi * freq * t) * (1 + t / seconds)).astype(np.float32), FS, subtype="FLOAT")
    fdir = root / "frames" / clip_id
    fdir.mkdir(parents=True, exist_ok=True)
    for i in range(1, n_frames + 1):
        if i not in skip_frames:
            (fdir / f"{i:06d}.jpg").write_bytes(b"jpg")
    return str(wav), str(fdir)


def test_mixtures_exact_and_skips_counted(tmp_path):
    clips = {
        "tgtAAAAAAAA": _clip(tmp_path, "tgtAAAAAAAA", 10, 10, 440),
        "intBBBBBBBB": _clip(tmp_path, "intBBBBBBBB", 10, 10, 660),
        "shortCCCCCC": _clip(tmp_path, "shortCCCCCC", 3, 3, 550),           # shorter than a clip
        "noframeDDDD": _clip(tmp_path, "noframeDDDD", 10, 10, 330, skip_frames=(5,)),  # centre frame gone
        "acoustic_gu": _clip(tmp_path, "acoustic_gu", 6, 6, 220),           # window passes the start
    }
    write_scp(tmp_path / "wav.scp", {k: v[0] for k, v in clips.items()})
    write_scp(tmp_path / "frames.scp", {k: v[1] for k, v in clips.items()})
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        HEADER
        + "0,tgtAAAAAAAA,dog barking,5,intBBBBBBBB,\"vehicle horn, car horn, honking\",6\n"
        + "1,shortCCCCCC,cello,1,intBBBBBBBB,rain,5\n"
        + "2,noframeDDDD,violin,5,intBBBBBBBB,rain,5\n"
        + "3,goneEEEEEEE,tuba,5,intBBBBBBBB,rain,5\n"
        + "4,acoustic_gu,acoustic_guitar,2,intBBBBBBBB,rain,5\n"
    )
    out = tmp_path / "test_mix"
    assert main(["--pairs", str(pairs), "--wav_scp", str(tmp_path / "wav.scp"), "--frames_scp",
                 str(tmp_path / "frames.scp"), "--output_dir", str(out)]) == 0
    report = json.loads((out / "build_report.json").read_text())
    assert report["built"] == 2 and report["skipped"] == 3
    assert report["skipped_by_reason"] == {"no_centre_frame": 1, "not_obtained": 1, "too_short": 1}
    assert report["zero_padded_segments"] == 1
    assert "built 2/5 test mixtures (3 skipped" in report_line(report)

    wavs = read_scp(out / "wav.scp")
    assert sorted(wavs) == ["0000_tgtAAAAAAAA_intBBBBBBBB", "0004_acoustic_gu_intBBBBBBBB"]
    key = "0000_tgtAAAAAAAA_intBBBBBBBB"
    mix, fs = sf.read(wavs[key], dtype="float32")
    s1, _ = sf.read(read_scp(out / "spk1.scp")[key], dtype="float32")
    s2, _ = sf.read(read_scp(out / "spk2.scp")[key], dtype="float32")
    assert fs == FS and mix.shape == s1.shape == s2.shape == (L,)
    np.testing.assert_array_equal(mix, s1 + s2)
    # s1 = target / 2, cut around (c - 0.5) s: samples [C - L//2, C - L//2 + L)
    raw, _ = sf.read(clips["tgtAAAAAAAA"][0], dtype="float32")
    c = centre_sample(5, 1.0, FS)
    assert c == int(4.5 * FS)
    np.testing.assert_allclose(s1, raw[c - L // 2: c - L // 2 + L] / 2, atol=1e-7)
    raw2, _ = sf.read(clips["intBBBBBBBB"][0], dtype="float32")
    c2 = centre_sample(6, 1.0, FS)
    np.testing.assert_allclose(s2, raw2[c2 - L // 2: c2 - L // 2 + L] / 2, atol=1e-7)
    # labels as they are (MUSIC underscores kept); the image query is the target's frames c-1, c, c+1
    assert read_scp(out / "text") == {key: "dog barking", "0004_acoustic_gu_intBBBBBBBB": "acoustic_guitar"}
    assert read_scp(out / "interference_label")[key] == "vehicle horn, car horn, honking"
    frames = read_scp(out / "query_image.scp")[key].split()
    assert [f[-len("tgtAAAAAAAA/000004.jpg"):] for f in frames] == [
        f"tgtAAAAAAAA/{i:06d}.jpg" for i in (4, 5, 6)]
    # at the start of a video only the frames that exist (centre 2: frames 1, 2, 3; centre 1: 1, 2)
    assert len(read_scp(out / "query_image.scp")["0004_acoustic_gu_intBBBBBBBB"].split()) == 3
    # zero-padded at the start where the window passes the beginning of the file (official loader)
    pad, _ = sf.read(read_scp(out / "spk1.scp")["0004_acoustic_gu_intBBBBBBBB"], dtype="float32")
    assert pad.shape == (L,) and np.all(pad[: L // 2 - centre_sample(2, 1.0, FS)] == 0)


def test_nothing_built_is_an_error(tmp_path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(HEADER + "0,aaaaaaaaaaa,x,5,bbbbbbbbbbb,y,5\n")
    write_scp(tmp_path / "wav.scp", {})
    assert main(["--pairs", str(pairs), "--wav_scp", str(tmp_path / "wav.scp"), "--frames_scp",
                 str(tmp_path / "frames.scp"), "--output_dir", str(tmp_path / "out")]) == 1
    assert json.loads((tmp_path / "out" / "build_report.json").read_text())["skipped_by_reason"] == {
        "not_obtained": 1}
