"""The bridge world with recorded sounds: GM instruments of a SoundFont rendered by FluidSynth.

Needs FluidSynth, its binding and Debian's TimGM6mb SoundFont; without them these tests skip, saying what is
missing, unless ``ESPNET2_CLIP_REQUIRE_FLUIDSYNTH=1`` (CI, which installs them): then they fail.
"""

import json
import os

import numpy as np
import pytest

from espnet2_clip.bin import make_bridge_world
from espnet2_clip.data import bridge_recorded
from espnet2_clip.data.bridge_world import CLASSES, RECORDED_CLASSES, WorldConfig, generate_world, video_item
from espnet2_clip.utils.fileio import read_scp

FS = 16000
TINY = dict(num_classes=3, videos_per_class=2, valid_per_class=0, video_seconds=3.0, clip_images_per_class=2,
            test_mix_per_class=1, interference_per_class=1)


@pytest.fixture(scope="module", autouse=True)
def fluidsynth_available():
    try:
        bridge_recorded.check_soundfont(bridge_recorded.DEFAULT_SOUNDFONT)
    except RuntimeError as exc:
        if os.environ.get("ESPNET2_CLIP_REQUIRE_FLUIDSYNTH") == "1":
            pytest.fail(f"ESPNET2_CLIP_REQUIRE_FLUIDSYNTH=1 but {exc}")
        pytest.skip(str(exc))


def _frames_db(x: np.ndarray) -> np.ndarray:
    frames = x[: len(x) // 800 * 800].reshape(-1, 800).astype(np.float64)
    return 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)


def _centroid(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x))
    return float(np.sum(spec * np.fft.rfftfreq(len(x), 1 / FS)) / np.sum(spec))


@pytest.mark.parametrize("kind", sorted(bridge_recorded.INSTRUMENTS))
def test_every_instrument_plays_a_deterministic_audible_phrase(kind):
    x = bridge_recorded.render(kind, np.random.default_rng(7), 3 * FS, FS)
    again = bridge_recorded.render(kind, np.random.default_rng(7), 3 * FS, FS)
    other = bridge_recorded.render(kind, np.random.default_rng(8), 3 * FS, FS)
    assert x.dtype == np.float32 and x.shape == (3 * FS,)
    np.testing.assert_array_equal(x, again)  # a pure function of the generator
    assert not np.allclose(x, other)
    assert np.max(np.abs(x)) == pytest.approx(1.0)
    db = _frames_db(x)
    assert np.mean(db > db.max() - 30) >= 0.25, kind  # sounding most of the time, not one blip
    assert db.max() - np.percentile(db, 5) > 15, kind  # notes and rests: a phrase, not a steady noise


def test_instruments_keep_their_families_registers():
    """The recorded stand-ins sit where their synthesised classes do: high flute above trombone above
    contrabass, the kit's kick/toms low, shakers high."""
    centroid = {kind: np.mean([_centroid(bridge_recorded.render(kind, np.random.default_rng(s), 2 * FS, FS))
                               for s in range(3)]) for kind in ("flute", "brass", "rumble", "drum", "shaker")}
    assert centroid["shaker"] > centroid["flute"] > centroid["brass"] > centroid["rumble"]
    assert centroid["shaker"] > 2 * centroid["drum"]


@pytest.mark.timeout(300)  # a forked worker would hang on FluidSynth: fail instead of blocking the suite
def test_recorded_world_shows_and_names_its_instruments(tmp_path):
    synth = WorldConfig(seed=2, **TINY)
    recorded = WorldConfig(seed=2, sounds="soundfont", **TINY)
    frames_s, audio_s, _ = video_item(synth, "train", 1, 0)
    frames_r, audio_r, _ = video_item(recorded, "train", 1, 0)
    assert audio_r.shape == audio_s.shape and not np.allclose(audio_r, audio_s)
    # the same background and pose, another object: the class-1 trombone instead of the triangle
    assert frames_r.shape == frames_s.shape
    np.testing.assert_array_equal(frames_r[:, :, :4], frames_s[:, :, :4])  # a border column: background only
    assert np.abs(frames_r.astype(int) - frames_s.astype(int)).max() > 100
    assert [c[0] for c in RECORDED_CLASSES[:3]] == ["flute", "trombone", "shaker"]
    assert [c[1:] for c in RECORDED_CLASSES] == [c[1:] for c in CLASSES]  # colours, textures, sound kinds kept
    # generated with 2 workers (forked: the parent must not hold a synthesiser), one file per item
    info = generate_world(tmp_path / "world", WorldConfig(seed=2, sounds="soundfont", offscreen_noise_prob=1.0,
                                                          offscreen_kinds=("class",), **TINY), nj=2)
    assert [c["sound_description"] for c in info["classes"]] == [
        f"{bridge_recorded.INSTRUMENTS[c[3]].description} (TimGM6mb.sf2)" for c in CLASSES[:3]]
    assert [c["name"] for c in info["classes"]] == ["flute", "trombone", "shaker"]
    saved = json.loads((tmp_path / "world" / "world.json").read_text())["config"]
    assert saved["sounds"] == "soundfont" and saved["soundfont"] == bridge_recorded.DEFAULT_SOUNDFONT
    assert saved["classes"][:3] == ["flute", "trombone", "shaker"]
    data = tmp_path / "world" / "data"
    assert len(read_scp(data / "train" / "video.scp")) == 6
    assert sorted(set(read_scp(data / "train" / "label").values())) == ["flute", "shaker", "trombone"]
    captions = read_scp(data / "clip_train" / "caption")
    labels = read_scp(data / "clip_train" / "label")
    assert all(labels[k] in captions[k] for k in captions)  # "a photo of a red flute", ...
    assert all(v.startswith("class:") for v in read_scp(tmp_path / "world" / "data" / "train" / "offscreen").values())


def test_bad_sound_bank_or_soundfont_is_one_clear_error(tmp_path, capsys):
    with pytest.raises(ValueError, match="sounds must be one of synth, soundfont, got 'sampled'"):
        WorldConfig(sounds="sampled").validate()
    missing = tmp_path / "none.sf2"
    with pytest.raises(ValueError, match=f"SoundFont '{missing}' not found: apt-get install"):
        WorldConfig(sounds="soundfont", soundfont=str(missing)).validate()
    fake = tmp_path / "fake.sf2"
    fake.write_bytes(b"RIFF\x04\x00\x00\x00WAVE")
    code = make_bridge_world.main(["--output_dir", str(tmp_path / "w"), "--sounds", "soundfont",
                                   "--soundfont", str(fake)])
    assert code == 2
    assert f"'{fake}' is not a SoundFont" in capsys.readouterr().err
    assert not (tmp_path / "w" / "videos").exists()  # refused before any work
    WorldConfig(sounds="synth", soundfont=str(missing)).validate()  # a synthesised world ignores it


def test_a_soundfont_without_the_instrument_is_an_error_not_noise(monkeypatch):
    """A phrase the SoundFont leaves silent must not be peak-normalised into amplified noise."""
    silent = bridge_recorded.Instrument("GM 78 Whistle above its sampled range", (80, 95), program=78)
    monkeypatch.setitem(bridge_recorded.INSTRUMENTS, "whistle", silent)
    with pytest.raises(RuntimeError, match="plays nothing for sound kind 'whistle'"):
        bridge_recorded.render("whistle", np.random.default_rng(0), FS, FS)
