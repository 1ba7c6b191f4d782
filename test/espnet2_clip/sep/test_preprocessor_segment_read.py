"""Training clips read as a window of the file (``wav.scp`` with ESPnet's ``text`` type) equal the
crops of the whole waveform (``sound`` type), and only the window is read."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from espnet2_clip.sep.preprocessor import CLIPSepPreprocessor
from espnet2_clip.tasks.clipsonic import CLIPSonicPreprocessor

SR = 100


def write(path: Path, wave: np.ndarray, rate: int = SR) -> str:
    sf.write(path, wave, rate, subtype="FLOAT")
    return str(path)


def both_ways(pre, path: str, query, seed: int):
    """The preprocessor's output for the path and for the whole waveform, under the same draw."""
    whole = sf.read(path, dtype="float32")[0]
    outs = []
    for wave in (path, whole):
        torch.manual_seed(seed)
        data = {"speech_ref1": wave} if query is None else {"speech_ref1": wave, "query": query}
        outs.append(pre("utt", data))
    return outs


@pytest.mark.parametrize("samples, channels", [(1000, 1), (1000, 2), (301, 1), (120, 1), (250, 2)])
@pytest.mark.parametrize("per_frame_query", [True, False])
def test_window_read_equals_crop_of_the_whole_file(tmp_path, samples, channels, per_frame_query):
    rng = np.random.default_rng(samples + channels)
    wave = rng.standard_normal((samples, channels) if channels > 1 else samples).astype(np.float32)
    path = write(tmp_path / "a.wav", wave)
    frames = max(1, samples // SR)
    query = np.arange(frames * 2, dtype=np.float32).reshape(frames, 2) if per_frame_query else None
    for train in (True, False):
        pre = CLIPSepPreprocessor(train=train, sample_rate=SR, clip_samples=301, frame_rate=1.0, margin=1)
        for seed in range(8):
            from_path, from_wave = both_ways(pre, path, query, seed)
            assert from_path["speech_ref1"].dtype == np.float32 and from_path["speech_ref1"].shape == (301,)
            np.testing.assert_array_equal(from_path["speech_ref1"], from_wave["speech_ref1"])
            if per_frame_query:
                np.testing.assert_array_equal(from_path["query"], from_wave["query"])
    assert np.abs(from_path["speech_ref1"]).sum() > 0


def test_only_the_window_is_read(tmp_path, monkeypatch):
    path = write(tmp_path / "long.wav", np.linspace(-1, 1, 1000, dtype=np.float32))
    requested = []
    read = sf.SoundFile.read
    monkeypatch.setattr(sf.SoundFile, "read", lambda self, frames=-1, **kw: requested.append(frames) or read(self, frames, **kw))
    pre = CLIPSepPreprocessor(train=False, sample_rate=SR, clip_samples=301, frame_rate=1.0)
    out = pre("utt", {"speech_ref1": path})
    assert requested == [301]  # of 1000 samples
    # middle frame 5 of 10: centred on sample 450, so the crop is samples 300..600 of the ramp
    np.testing.assert_allclose(out["speech_ref1"], np.linspace(-1, 1, 1000, dtype=np.float32)[300:601])


def test_clipsonic_reads_the_window_too(tmp_path):
    path = write(tmp_path / "a.wav", np.arange(1000, dtype=np.float32) / 1000)
    pre = CLIPSonicPreprocessor(train=False, sample_rate=SR, clip_samples=101, frame_rate=1.0)
    out = pre("utt", {"speech": path, "query": np.ones((10, 4), np.float32)})
    assert set(out) == {"speech", "query"} and out["speech"].shape == (101,)
    assert out["speech"][50] == pytest.approx(0.45)  # centre of frame 5 = sample 450


def test_bad_files_are_named(tmp_path):
    pre = CLIPSepPreprocessor(train=True, sample_rate=SR, clip_samples=101)
    wrong_rate = write(tmp_path / "fast.wav", np.zeros(1000, np.float32), rate=200)
    with pytest.raises(ValueError, match=r"utt7: cannot read a training clip from .*fast\.wav: is 200 Hz, expected 100 Hz"):
        pre("utt7", {"speech_ref1": wrong_rate})
    with pytest.raises(ValueError, match=r"utt8: cannot read a training clip from .*missing\.wav"):
        pre("utt8", {"speech_ref1": str(tmp_path / "missing.wav")})
    (tmp_path / "junk.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(ValueError, match=r"utt9: cannot read a training clip from .*junk\.wav"):
        pre("utt9", {"speech_ref1": str(tmp_path / "junk.wav")})


def test_espnet_dataset_with_text_type_gives_the_sound_type_batch(tmp_path):
    """Through ESPnet's own dataset: the same wav.scp as ``text`` (paths) or ``sound`` (waves)."""
    from espnet2.train.dataset import ESPnetDataset

    rng = np.random.default_rng(0)
    lines = []
    for i in range(4):
        write(tmp_path / f"k{i}.wav", rng.standard_normal(1000 + 37 * i).astype(np.float32))
        lines.append(f"k{i} {tmp_path / f'k{i}.wav'}\n")
    (tmp_path / "wav.scp").write_text("".join(lines))
    pre = CLIPSepPreprocessor(train=True, sample_rate=SR, clip_samples=301, frame_rate=1.0, margin=1)
    items = {}
    for kind in ("text", "sound"):
        dataset = ESPnetDataset([(str(tmp_path / "wav.scp"), "speech_ref1", kind)], preprocess=pre)
        torch.manual_seed(3)
        items[kind] = [dataset[f"k{i}"][1]["speech_ref1"] for i in range(4)]
    for a, b in zip(items["text"], items["sound"]):
        assert a.shape == (301,)
        np.testing.assert_array_equal(a, b)
