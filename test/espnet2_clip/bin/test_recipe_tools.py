"""Stage helpers: data-dir validation, test-set formatting, label ids."""

import numpy as np
import pytest
import soundfile as sf

from espnet2_clip.bin import format_test_set, make_label_ids, prepare_data
from espnet2_clip.utils.fileio import read_scp


def write(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


def make_world(root, with_valid=True):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(10):
        (root / f"v{i}.mp4").write_bytes(b"x")
        (root / f"im{i}.png").write_bytes(b"x")
    write(root / "data/train/video.scp", [f"v{i} {root}/v{i}.mp4" for i in range(8)] + [f"v8 {root}/gone.mp4"])
    write(root / "data/train/label", [f"v{i} acoustic guitar" for i in range(9)])
    if with_valid:
        write(root / "data/valid/video.scp", [f"v9 {root}/v9.mp4"])
    write(root / "data/clip_train/image.scp", [f"im{i} {root}/im{i}.png" for i in range(3)])
    write(root / "data/clip_train/caption", ["im0 a photo of a guitar", "im1", "im2 a drum"])
    mixes = []
    for i in range(2):
        s1, s2 = np.full(100, 0.1 * (i + 1)), np.full(100, -0.05)
        for name, x in (("s1", s1), ("s2", s2), ("mix", s1 + s2)):
            sf.write(root / f"{name}{i}.wav", x, 16000, subtype="FLOAT")
        mixes.append(i)
    write(root / "data/test_mix/wav.scp", [f"m{i} {root}/mix{i}.wav" for i in mixes])
    write(root / "data/test_mix/spk1.scp", [f"m{i} {root}/s1{i}.wav" for i in mixes])
    write(root / "data/test_mix/spk2.scp", [f"m{i} {root}/s2{i}.wav" for i in mixes])
    write(root / "data/test_mix/text", [f"m{i} acoustic guitar" for i in mixes])


def test_prepare_skips_bad_training_items_and_keeps_values_with_spaces(tmp_path):
    make_world(tmp_path / "w")
    counts = prepare_data.prepare(tmp_path / "w", tmp_path / "data", 0.1, 0)
    assert counts == {"clip_train": 2, "train": 8, "valid": 1, "test_mix": 2, "skipped": 2}
    assert read_scp(tmp_path / "data/train/label")["v0"] == "acoustic guitar"
    assert "im1" not in read_scp(tmp_path / "data/clip_train/caption")  # empty caption skipped


def test_prepare_holds_out_valid_when_missing(tmp_path):
    make_world(tmp_path / "w", with_valid=False)
    prepare_data.prepare(tmp_path / "w", tmp_path / "data", 0.25, 0)
    train, valid = (read_scp(tmp_path / f"data/{s}/video.scp") for s in ("train", "valid"))
    assert len(valid) == 2 and len(train) == 6 and not set(train) & set(valid)


def test_prepare_stops_on_broken_test_set(tmp_path):
    make_world(tmp_path / "w")
    write(tmp_path / "w/data/test_mix/text", ["m0 guitar"])
    with pytest.raises(prepare_data.DataError, match="text: no line for 'm1'"):
        prepare_data.prepare(tmp_path / "w", tmp_path / "data", 0.1, 0)
    assert prepare_data.main(["--world_dir", str(tmp_path / "w"), "--output_dir", str(tmp_path / "d2")]) == 1


def test_format_test_set_resamples_and_checks_references(tmp_path):
    make_world(tmp_path / "w")
    test = tmp_path / "w/data/test_mix"
    sf.write(tmp_path / "w/stereo.wav", np.stack([np.full(80, 0.2), np.full(80, 0.4)], 1), 8000, subtype="FLOAT")
    write(test / "spk1.scp", [f"m0 {tmp_path}/w/stereo.wav", f"m1 {tmp_path}/w/s11.wav"])
    with pytest.raises(ValueError, match="m0: spk1 \\+ spk2 differs"):
        format_test_set.format_test_set(test, tmp_path / "out", 16000)
    make_world(tmp_path / "w")
    assert format_test_set.format_test_set(test, tmp_path / "out", 16000) == 2
    write(test / "wav.scp", [f"m0 {tmp_path}/w/mix0.wav"])
    with pytest.raises(ValueError, match="ids differ"):
        format_test_set.format_test_set(test, tmp_path / "out", 16000)


def test_label_ids(tmp_path, capsys):
    write(tmp_path / "train/label", ["a dog", "b acoustic guitar", "c dog"])
    write(tmp_path / "test/text", ["x dog", "y acoustic guitar"])
    make_label_ids.main(["--train_label", str(tmp_path / "train/label"), "--input", str(tmp_path / "test/text"),
                         "--vocab", str(tmp_path / "vocab"), "--output_dir", str(tmp_path / "ids")])
    assert (tmp_path / "vocab").read_text() == "acoustic guitar\ndog\n"
    ids = read_scp(tmp_path / "ids/test/label_id.scp")
    assert np.load(ids["x"]).tolist() == [1] and np.load(ids["y"]).dtype == np.int64
    write(tmp_path / "test2/text", ["x dog", "z cat"])
    assert make_label_ids.main(["--train_label", str(tmp_path / "train/label"), "--input", str(tmp_path / "test2/text"),
                                "--vocab", str(tmp_path / "vocab"), "--output_dir", str(tmp_path / "ids")]) == 1
    assert "make_label_ids: error: " in capsys.readouterr().err  # one line, no traceback
    with pytest.raises(ValueError, match="text:2: label 'cat'"):
        make_label_ids.write_ids(tmp_path / "test2/text", {"dog": 0}, tmp_path / "ids2")
