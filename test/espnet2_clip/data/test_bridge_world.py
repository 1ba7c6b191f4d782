import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet2_clip.data import bridge_sound
from espnet2_clip.data.bridge_world import (
    CLASSES,
    WorldConfig,
    clip_image_item,
    generate_world,
    interference_item,
    mix,
    mixture_plan,
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
    assert set(read_scp(out / "data/train/offscreen").values()) <= {"none", "wind", "hum"}
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
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_test_mixtures(world):
    out, cfg, _ = world
    tm = out / "data/test_mix"
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
    assert k0 == "none" and k1 in ("wind", "hum")
    assert np.array_equal(f0, f1)  # same pictures
    assert not np.allclose(a0, a1)
    # valid videos stay clean
    assert video_item(noisy, "valid", 0, 0)[2] == "none"


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
