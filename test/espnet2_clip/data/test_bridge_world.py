import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet2_clip.data import bridge_sound
from espnet2_clip.data.bridge_world import (
    CLASSES,
    OFFSCREEN_NOISES,
    RECORDED_CLASSES,
    WorldConfig,
    clip_image_item,
    generate_world,
    interference_item,
    mix,
    mixture_plan,
    offscreen_test_item,
    target_item,
    video_item,
)
from espnet2_clip.utils.fileio import read_scp

TINY = dict(num_classes=6, videos_per_class=2, valid_per_class=1, video_seconds=4.5,
            clip_images_per_class=3, test_mix_per_class=2, interference_per_class=2)
SMALL = dict(TINY, videos_per_class=1, valid_per_class=0, test_mix_per_class=1, interference_per_class=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    cfg = WorldConfig(seed=3, offscreen_noise_prob=0.5, **TINY)
    info = generate_world(out, cfg, nj=2)
    return out, cfg, info


def test_layout_and_counts(world):
    out, cfg, info = world
    k = cfg.num_classes
    assert json.loads((out / "world.json").read_text())["counts"] == info["counts"]
    assert [c["name"] for c in info["classes"]] == [c[0] for c in CLASSES[:k]]
    train = read_scp(out / "data/train/video.scp")
    assert len(train) == k * cfg.videos_per_class
    assert all(Path(p).is_file() and p.endswith(".mp4") for p in train.values())
    assert read_scp(out / "data/train/label").keys() == train.keys()
    offscreen = read_scp(out / "data/train/offscreen")
    names = [n for v in offscreen.values() for n in v.split("+")]
    assert set(names) <= {"none", *OFFSCREEN_NOISES, *(f"class:{c[0]}" for c in CLASSES[:k])}
    assert info["counts"]["train_videos_with_offscreen_noise"] == sum(v != "none" for v in offscreen.values()) > 0
    assert len(read_scp(out / "data/valid/video.scp")) == k * cfg.valid_per_class
    images = read_scp(out / "data/clip_train/image.scp")
    captions = read_scp(out / "data/clip_train/caption")
    labels = read_scp(out / "data/clip_train/label")
    assert images.keys() == captions.keys() == labels.keys()
    assert len(images) == k * cfg.clip_images_per_class
    assert all(labels[u] in captions[u] for u in images)
    tm = out / "data/test_mix"
    ids = read_scp(tm / "wav.scp").keys()
    assert len(ids) == k * cfg.test_mix_per_class
    for name in ("spk1.scp", "spk2.scp", "text", "query_image.scp", "label", "interference_label"):
        assert read_scp(tm / name).keys() == ids, name
    text, interf = read_scp(tm / "text"), read_scp(tm / "interference_label")
    assert all(text[u] != interf[u] for u in ids)
    # the interference pool is disjoint from the test targets
    assert not set(read_scp(tm / "spk1.scp").values()) & set(read_scp(tm / "spk2.scp").values())
    off = out / "data/test_offscreen"  # the NIT condition: the same targets, an off-screen noise instead
    assert info["counts"]["test_offscreen_mixtures"] == k * cfg.test_mix_per_class
    for name in ("spk1.scp", "spk2.scp", "text", "query_image.scp", "label", "interference_label"):
        assert read_scp(off / name).keys() == read_scp(off / "wav.scp").keys(), name
    assert set(read_scp(off / "interference_label").values()) <= set(OFFSCREEN_NOISES)
    by_target = {(t, q) for t, q in zip(read_scp(tm / "text").values(), read_scp(tm / "query_image.scp").values())}
    assert {(t, q) for t, q in zip(read_scp(off / "text").values(), read_scp(off / "query_image.scp").values())} \
        == by_target
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


@pytest.mark.parametrize("test_set", ["test_mix", "test_offscreen"])
def test_test_mixtures(world, test_set):
    out, cfg, _ = world
    tm = out / "data" / test_set
    wavs, s1s, s2s = (read_scp(tm / n) for n in ("wav.scp", "spk1.scp", "spk2.scp"))
    for u in wavs:
        m, fs = soundfile.read(wavs[u], dtype="float64")
        s1, _ = soundfile.read(s1s[u], dtype="float64")
        s2, _ = soundfile.read(s2s[u], dtype="float64")
        assert fs == 16000 and m.ndim == 1
        assert len(m) == len(s1) == len(s2) == 65535
        np.testing.assert_allclose(m, s1 + s2, atol=1e-9)  # references as they are in the mixture
        assert np.std(s1) > 1e-3 and np.std(s2) > 1e-3
    q = read_scp(tm / "query_image.scp")
    from PIL import Image

    from espnet2_clip.utils.fileio import split_paths

    # the image query: 3 consecutive frames of the target object (mean embedding of c-1, c, c+1)
    frames = [np.asarray(Image.open(p)) for p in split_paths(next(iter(q.values())))]
    assert len(frames) == 3 and all(f.shape == (cfg.frame_size, cfg.frame_size, 3) for f in frames)
    assert not np.array_equal(frames[0], frames[1]) and not np.array_equal(frames[1], frames[2])


def test_determinism_by_seed(tmp_path):
    cfg = WorldConfig(seed=7, **SMALL)
    a = generate_world(tmp_path / "a", cfg, nj=1)
    b = generate_world(tmp_path / "b", WorldConfig(seed=7, **SMALL), nj=2)
    c = generate_world(tmp_path / "c", WorldConfig(seed=8, **SMALL), nj=1)
    assert a["counts"] == b["counts"]
    for rel in ("wav/test_mix", "wav/interference", "images/clip_train", "videos/train"):
        names = sorted(p.name for p in (tmp_path / "a" / rel).iterdir())
        assert names == sorted(p.name for p in (tmp_path / "b" / rel).iterdir())
        for n in names:
            assert (tmp_path / "a" / rel / n).read_bytes() == (tmp_path / "b" / rel / n).read_bytes()
        other = {p.read_bytes() for p in (tmp_path / "c" / rel).iterdir()}
        assert not {(tmp_path / "a" / rel / n).read_bytes() for n in names} & other
    assert (tmp_path / "a/data/clip_train/caption").read_text() == \
        (tmp_path / "b/data/clip_train/caption").read_text()
    f1, a1, _ = video_item(cfg, "train", 2, 1)
    f2, a2, _ = video_item(WorldConfig(seed=7, **TINY), "train", 2, 1)
    f3, a3, _ = video_item(WorldConfig(seed=8, **TINY), "train", 2, 1)
    assert np.array_equal(f1, f2) and np.array_equal(a1, a2)
    assert not np.array_equal(f1, f3) and not np.array_equal(a1, a3)


def test_rerun_and_config_change(tmp_path):
    cfg = WorldConfig(seed=1, **SMALL)
    generate_world(tmp_path, cfg)
    stamp = (tmp_path / "world.json").stat().st_mtime_ns
    generate_world(tmp_path, WorldConfig(seed=1, **SMALL))  # same settings: nothing to do
    assert (tmp_path / "world.json").stat().st_mtime_ns == stamp
    # an interrupted run (world.json missing, some files gone) is completed
    (tmp_path / "world.json").unlink()
    victim = sorted((tmp_path / "videos/train").iterdir())[0]
    victim.unlink()
    generate_world(tmp_path, WorldConfig(seed=1, **SMALL))
    assert victim.is_file() and (tmp_path / "world.json").is_file()
    with pytest.raises(ValueError, match="other settings"):
        generate_world(tmp_path, WorldConfig(seed=2, **SMALL))
    generate_world(tmp_path, WorldConfig(seed=2, **SMALL), force=True)
    assert json.loads((tmp_path / "world.json").read_text())["seed"] == 2


def test_offscreen_noise_only_adds_noise():
    clean = WorldConfig(seed=5, **TINY)
    noisy = WorldConfig(seed=5, offscreen_noise_prob=1.0, **TINY)
    f0, a0, k0 = video_item(clean, "train", 0, 0)
    f1, a1, k1 = video_item(noisy, "train", 0, 0)
    assert k0 == "none" and k1 != "none"
    assert np.array_equal(f0, f1)  # same pictures
    assert not np.allclose(a0, a1)
    # valid videos stay clean
    assert video_item(noisy, "valid", 0, 0)[2] == "none"


def _snr_db(clean, noisy):
    """The on-screen sound's level over what was added (noisy = g (clean + added), g <= 1 the peak guard)."""
    clean, noisy = clean.astype(np.float64), noisy.astype(np.float64)
    g = np.dot(noisy, clean) / np.dot(clean, clean)
    return 10 * np.log10(np.sum(clean ** 2) / np.sum((noisy / g - clean) ** 2))


def test_offscreen_sources_kinds_counts_and_levels():
    """1 or 2 sources per noisy video, of every kind (another class's sound, never the video's own),
    each 0..10 dB below the on-screen sound."""
    clean = WorldConfig(seed=9, **TINY)
    noisy = WorldConfig(seed=9, offscreen_noise_prob=1.0, **TINY)
    counts, kinds = set(), set()
    for cls in range(3):
        for idx in range(8):
            _, a0, _ = video_item(clean, "train", cls, idx)
            _, a1, names = video_item(noisy, "train", cls, idx)
            parts = names.split("+")
            counts.add(len(parts))
            kinds |= {p.split(":")[0] for p in parts}
            assert f"class:{CLASSES[cls][0]}" not in parts
            # one source: 0..10 dB below; two: their sum 3 dB louder at most
            assert (0.0 if len(parts) == 1 else -3.1) - 0.2 <= _snr_db(a0, a1) <= 10.2, (names, _snr_db(a0, a1))
    assert counts == {1, 2} and kinds == {"class", *OFFSCREEN_NOISES}
    # one kind, one source, a fixed level: exactly that
    only = WorldConfig(seed=9, offscreen_noise_prob=1.0, offscreen_kinds=("babble",), offscreen_max_sources=1,
                       offscreen_snr_db=(6.0, 6.0), **TINY)
    _, a2, names = video_item(only, "train", 1, 0)
    assert names == "babble" and abs(_snr_db(video_item(clean, "train", 1, 0)[1], a2) - 6.0) < 0.1


def test_offscreen_test_set_noises_and_levels():
    """test_offscreen: the noises the training videos carried (not another class), at the class sounds'
    levels; a world with no off-screen sounds, or only other classes' sounds, has no such test set."""
    cfg = WorldConfig(seed=2, offscreen_noise_prob=0.5)
    plan = [p for p in mixture_plan(cfg) if p["test_set"] == "test_offscreen"]
    assert len(plan) == cfg.num_classes * cfg.test_mix_per_class
    assert {p["interf_label"] for p in plan} == set(OFFSCREEN_NOISES)
    for cls, idx in ((0, 0), (3, 5), (7, 9)):
        x, kind = offscreen_test_item(cfg, cls, idx)
        level = 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
        assert kind in OFFSCREEN_NOISES and cfg.level_db[0] - 0.5 <= level <= cfg.level_db[1] + 0.5
    assert not [p for p in mixture_plan(WorldConfig(seed=2)) if p["test_set"] != "test_mix"]
    only_class = WorldConfig(seed=2, offscreen_noise_prob=0.5, offscreen_kinds=("class",))
    assert not [p for p in mixture_plan(only_class) if p["test_set"] != "test_mix"]


def test_babble_is_speech_like():
    """Babble: energy where voices are (centroid 0.3-2 kHz) and a syllabic envelope (2-10 Hz)."""
    fs = 16000
    x = bridge_sound.synth("babble", np.random.default_rng(1), 6 * fs, fs).astype(np.float64)
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / fs)
    assert 300 < np.sum(f * spec) / np.sum(spec) < 2000
    env = np.sqrt(np.convolve(x ** 2, np.ones(160) / 160, "same"))[::160]  # 100 Hz envelope
    mod = np.abs(np.fft.rfft(env - env.mean())) ** 2
    fm = np.fft.rfftfreq(len(env), 1 / 100)
    hum = bridge_sound.synth("hum", np.random.default_rng(1), 6 * fs, fs).astype(np.float64)
    hum_env = np.sqrt(np.convolve(hum ** 2, np.ones(160) / 160, "same"))[::160]
    assert np.sum(mod[(fm > 2) & (fm < 10)]) / np.sum(mod[fm > 0]) > 0.3
    assert np.std(env) / np.mean(env) > 1.5 * np.std(hum_env) / np.mean(hum_env)  # it comes and goes


def _mean_spectrum(x, n_fft=512):
    frames = x[: len(x) // n_fft * n_fft].reshape(-1, n_fft) * np.hanning(n_fft)
    return np.abs(np.fft.rfft(frames, axis=1)).mean(0)


def test_class_sounds_are_distinguishable():
    cfg = WorldConfig(seed=0)
    spectra = []
    for cls in range(cfg.num_classes):
        specs = [_mean_spectrum(target_item(cfg, cls, j)[0]) for j in range(4)]
        spectra.append(np.mean(specs, 0))
    s = np.array(spectra)
    s /= np.linalg.norm(s, axis=1, keepdims=True)
    cos = s @ s.T
    off = cos[~np.eye(len(s), dtype=bool)]
    assert off.max() < 0.8, np.round(cos, 2)
    assert off.mean() < 0.35
    # independent instances (interference stream) are mostly nearest their own class mean,
    # even with this crude feature
    hits = 0
    for cls in range(cfg.num_classes):
        for j in range(4):
            x = _mean_spectrum(interference_item(cfg, cls, j))
            hits += int(np.argmax(s @ (x / np.linalg.norm(x))) == cls)
    assert hits / (4 * cfg.num_classes) >= 0.8


def test_sounds_have_random_levels_and_no_clipping():
    cfg = WorldConfig(seed=0)
    levels = [np.sqrt(np.mean(target_item(cfg, 0, j)[0] ** 2)) for j in range(5)]
    assert max(levels) / min(levels) > 1.2
    for kind in list(bridge_sound.SOUNDS) + list(bridge_sound.NOISES):
        x = bridge_sound.synth(kind, np.random.default_rng(0), 16000, 16000)
        assert np.isfinite(x).all() and np.abs(x).max() <= 1.0 + 1e-6 and np.std(x) > 0


def test_images_differ_between_classes_and_captions_vary():
    cfg = WorldConfig(seed=0)
    caps = {clip_image_item(cfg, 0, i)[1] for i in range(30)}
    assert len(caps) >= 4 and all("circle" in c for c in caps)
    img0, _ = clip_image_item(cfg, 0, 0)
    img1, _ = clip_image_item(cfg, 0, 1)
    assert img0.shape == (96, 96, 3) and not np.array_equal(img0, img1)


def test_mixture_plan_and_mix():
    cfg = WorldConfig(seed=0, test_mix_per_class=3, interference_per_class=2)
    plan = mixture_plan(cfg)
    assert len(plan) == cfg.num_classes * 3
    assert all(p["target_cls"] != p["interf_cls"] for p in plan)
    assert len({p["mix_id"] for p in plan}) == len(plan)
    s1 = np.full(10, 0.5, np.float32)
    s2 = np.full(10, -0.25, np.float32)
    assert np.allclose(mix(s1, s2), 0.125)


def test_bad_config():
    with pytest.raises(ValueError):
        WorldConfig(num_classes=99).validate()
    with pytest.raises(ValueError):
        WorldConfig(offscreen_noise_prob=1.5).validate()
    with pytest.raises(ValueError, match="offscreen_kinds must be some of class, babble, wind, hum, got rain"):
        WorldConfig(offscreen_kinds=("rain",)).validate()
    with pytest.raises(ValueError, match="offscreen_max_sources"):
        WorldConfig(offscreen_max_sources=0).validate()


def test_a_finished_job_reports_what_generating_it_reported(tmp_path):
    """A rerun skips written files; the records it returns (noise kind, caption, query frames) must be
    those of the first run, since the data lists are rebuilt from them."""
    import dataclasses

    from espnet2_clip.data.bridge_world import VideoFile, plan_jobs, run_job

    cfg = WorldConfig(seed=4, offscreen_noise_prob=1.0, **SMALL)
    jobs = [j for j in plan_jobs(cfg, tmp_path, mixture_plan(cfg)) if j.cls == 1]
    assert {j.kind for j in jobs} == {"video", "clip", "target", "interf"}
    first = [run_job(j) for j in jobs]
    again = [run_job(j) for j in jobs]
    assert first == again
    video = next(r for r in first if isinstance(r, VideoFile))
    assert video.noise_kind == video_item(cfg, "train", 1, 0)[2] != "none"
    assert video.uttid == "train_triangle_0000"
    with pytest.raises(ValueError, match="unknown job kind"):
        run_job(dataclasses.replace(jobs[0], kind="nope"))


@pytest.mark.parametrize("force", [False, True])
def test_refuses_a_directory_holding_data_it_did_not_write(tmp_path, force):
    """A user's own world given as the output dir is never written over, even with force."""
    mine = tmp_path / "my_world"
    (mine / "data" / "train").mkdir(parents=True)
    (mine / "data" / "train" / "video.scp").write_text("v1 /videos/v1.mp4\n")
    with pytest.raises(ValueError, match=r"did not write \(data\).*--data_stage 2"):
        generate_world(mine, WorldConfig(seed=1, **SMALL), force=force)
    assert sorted(p.name for p in mine.rglob("*")) == ["data", "train", "video.scp"]
    assert (mine / "data" / "train" / "video.scp").read_text() == "v1 /videos/v1.mp4\n"


def test_writes_into_an_empty_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    world = generate_world(tmp_path / "empty", WorldConfig(seed=1, **SMALL))
    assert world["counts"]["train_videos"] > 0 and (tmp_path / "empty" / "world.json").is_file()


def test_instrument_pictograms_fill_the_pose_and_differ():
    """Each instrument of the recorded world is a solid object inside its pose's disk, at every angle it
    may take, and no two look alike (intersection over union of their upright masks at one pose below 0.7;
    the synthesised world's circle and hexagon overlap by 0.83)."""
    from espnet2_clip.data import bridge_visual

    size, cx, cy, r = 64, 32.0, 32.0, 18.0
    y, x = np.mgrid[0:size, 0:size] + 0.5
    outside = (x - cx) ** 2 + (y - cy) ** 2 > (r + 1.5) ** 2
    masks = {}
    for name in bridge_visual.PICTOGRAMS:
        for angle in (-bridge_visual._MAX_ROT[name], 0.0, bridge_visual._MAX_ROT[name]):
            mask = bridge_visual.shape_mask(name, size, cx, cy, r, angle)
            assert mask[outside].max() < 0.05, (name, angle)
            assert 0.04 < mask.mean() < 0.5, (name, angle, mask.mean())
        masks[name] = bridge_visual.shape_mask(name, size, cx, cy, r, 0.0) > 0.5
    names = sorted(masks)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            iou = (masks[a] & masks[b]).sum() / (masks[a] | masks[b]).sum()
            assert iou < 0.7, (a, b, iou)
    assert {c[0] for c in RECORDED_CLASSES} == set(bridge_visual.PICTOGRAMS)
