"""The bridge world: a generated audio-visual world where text-queried separation can be learned
without any text-audio pair (see "The bridge world" in DESIGN.md).

Each class couples a **visual signature** (shape + colour + texture, :mod:`bridge_visual`) with a
**sound signature** (timbre, :mod:`bridge_sound`). Everything is deterministic by ``seed``: every
item draws from its own generator ``default_rng([seed, stream, class, index])``, so an item does
not depend on the counts of other items, on ``nj`` or on the generation order.

Layout written by :func:`generate_world` under ``out``::

    world.json                          classes, config, counts, protocol notes
    videos/{train,valid}/<uttid>.mp4    h264 + AAC (16 kHz mono) videos, one object + its sound
    images/clip_train/<id>.png          captioned stills, rendered independently of the videos
    images/query/<target>_f{1,2,3}.png   3 consecutive frames of each test target (image query)
    wav/test_target/<id>.wav            clean held-out target sounds (PCM16, 16 kHz)
    wav/interference/<id>.wav           the interference pool (PCM16, 16 kHz)
    wav/test_mix/<mixid>.wav            mixtures (s1 + s2) / 2; <mixid>_spk{1,2}.wav = s1/2, s2/2
    data/train/{video.scp,label,offscreen}
    data/valid/{video.scp,label}
    data/clip_train/{image.scp,caption,label}
    data/interference/{wav.scp,label}
    data/test_mix/{wav.scp,spk1.scp,spk2.scp,text,query_image.scp,label,interference_label}

Interference pool: held-out instances of the *other* target classes, drawn from their own random
stream (never used for train / valid videos nor as test targets); each test mixture is one clean
held-out target of class ``c`` plus one pool item of a class ``!= c``, both exactly
``mix_samples`` long, mixture = (s1 + s2) / 2 (MUSIC+ protocol); ``text`` is the class name.

Off-screen noise (``offscreen_noise_prob``): that fraction of the *training* videos gets a noise
with no visual (``wind`` or ``hum``) added at -6..0 dB relative to the on-screen sound; valid
videos and test material stay clean. The pictures and the class sound of a video do not depend on
this option (the noise has its own random stream), so worlds with and without noise differ only
by the noise.
"""

import copy
import dataclasses
import json
import shlex
import multiprocessing as mp
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from espnet2_clip.data import bridge_sound, bridge_visual
from espnet2_clip.utils.fileio import atomic_path, write_scp, write_text_atomic

# name (= shape, used as text query), colour, texture, sound kind
CLASSES: List[Tuple[str, str, str, str]] = [
    ("circle", "red", "striped", "flute"),
    ("triangle", "blue", "plain", "brass"),
    ("star", "yellow", "dotted", "shaker"),
    ("square", "green", "checkered", "drum"),
    ("ring", "orange", "plain", "chirp"),
    ("cross", "purple", "plain", "bell"),
    ("diamond", "cyan", "striped", "ticks"),
    ("heart", "pink", "plain", "clarinet"),
    ("hexagon", "white", "checkered", "whistle"),
    ("moon", "brown", "plain", "rumble"),
]
OFFSCREEN_NOISES = ("wind", "hum")
CAPTION_TEMPLATES = (
    "a photo of a {colour} {shape}",
    "a photo of a {shape}",
    "a {shape}",
    "a drawing of a {shape}",
    "a {colour} {shape}",
    "a {texture} {shape}",
    "a picture of a {texture} {colour} {shape}",
    "a {shape} on a background",
)
_TEXTURE_WORD = {"plain": "plain", "striped": "striped", "dotted": "dotted", "checkered": "checkered"}

# random streams (second entry of every item's seed sequence)
_TRAIN, _VALID, _CLIP, _TARGET, _INTERF, _NOISE, _MIX = 1, 2, 3, 4, 5, 6, 7
VERSION = 2  # 2: three query frames per test target (was one)
QUERY_FRAMES = 3


@dataclass
class WorldConfig:
    seed: int = 0
    num_classes: int = 8
    videos_per_class: int = 32
    valid_per_class: int = 4
    video_seconds: float = 6.0
    video_fps: float = 4.0
    frame_size: int = 96
    fs: int = 16000
    clip_images_per_class: int = 200
    test_mix_per_class: int = 10
    interference_per_class: int = 10
    mix_samples: int = 65535
    offscreen_noise_prob: float = 0.0
    level_db: Tuple[float, float] = (-26.0, -16.0)
    offscreen_snr_db: Tuple[float, float] = (0.0, 6.0)

    def validate(self) -> None:
        if not 2 <= self.num_classes <= len(CLASSES):
            raise ValueError(f"num_classes must be in [2, {len(CLASSES)}], got {self.num_classes}")
        if not 0.0 <= self.offscreen_noise_prob <= 1.0:
            raise ValueError(f"offscreen_noise_prob must be in [0, 1], got {self.offscreen_noise_prob}")
        for name in ("videos_per_class", "valid_per_class", "clip_images_per_class",
                     "test_mix_per_class", "interference_per_class"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.test_mix_per_class > 0 and self.interference_per_class < 1:
            raise ValueError("interference_per_class must be >= 1 when test mixtures are made")
        if self.video_seconds * self.video_fps < 1:
            raise ValueError("video_seconds * video_fps must give at least one frame")


PRESETS: Dict[str, Dict] = {
    "default": {},
    "ci": dict(num_classes=6, videos_per_class=10, valid_per_class=2, video_seconds=5.0,
               clip_images_per_class=40, test_mix_per_class=3, interference_per_class=3),
}


def class_table(num_classes: int) -> List[Dict[str, str]]:
    out = []
    for i, (shape, colour, texture, sound) in enumerate(CLASSES[:num_classes]):
        fn = bridge_sound.SOUNDS[sound]
        out.append(dict(index=i, name=shape, shape=shape, colour=colour, texture=texture,
                        sound=sound, sound_description=(fn.__doc__ or "").strip()))
    return out


def _rng(cfg: WorldConfig, stream: int, cls: int, idx: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, stream, cls, idx])


def _set_level(x: np.ndarray, rng, level_db) -> np.ndarray:
    """Scale to a random RMS level (dBFS) and keep the peak below 0.95."""
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) + 1e-12
    x = x * (10 ** (rng.uniform(*level_db) / 20) / rms)
    peak = float(np.max(np.abs(x)))
    if peak > 0.95:
        x = x * (0.95 / peak)
    return x.astype(np.float32)


def _class_sound(cfg: WorldConfig, rng, cls: int, n: int) -> np.ndarray:
    return _set_level(bridge_sound.synth(CLASSES[cls][3], rng, n, cfg.fs), rng, cfg.level_db)


def _render(cfg: WorldConfig, rng, cls: int, num_frames: int) -> np.ndarray:
    shape, colour, texture, _ = CLASSES[cls]
    return bridge_visual.render_clip(rng, shape, colour, texture, cfg.frame_size, num_frames)


def _write_wav(path: Path, x: np.ndarray, fs: int) -> None:
    import soundfile

    with atomic_path(path) as tmp:
        soundfile.write(str(tmp), x, fs, subtype="PCM_16", format="WAV")


def _write_png(path: Path, img: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(img).save(tmp, format="PNG")


def _quantize(x: np.ndarray) -> np.ndarray:
    """Round to the PCM16 grid (as float32), so written wavs hold exactly these values."""
    return (np.clip(np.round(x * 32768.0), -32768, 32767) / 32768.0).astype(np.float32)


# --- items (each a pure function of (cfg, index); also usable in memory by tests) ---------------

def video_item(cfg: WorldConfig, split: str, cls: int, idx: int):
    """Frames ``(T, S, S, 3)`` uint8, audio ``(N,)`` float32 and the off-screen noise kind."""
    stream = _TRAIN if split == "train" else _VALID
    rng = _rng(cfg, stream, cls, idx)
    n = int(round(cfg.video_seconds * cfg.fs))
    frames = _render(cfg, rng, cls, int(round(cfg.video_seconds * cfg.video_fps)))
    audio = _class_sound(cfg, rng, cls, n)
    noise_kind = "none"
    if split == "train" and cfg.offscreen_noise_prob > 0:
        nrng = _rng(cfg, _NOISE, cls, idx)
        if nrng.random() < cfg.offscreen_noise_prob:
            noise_kind = OFFSCREEN_NOISES[int(nrng.integers(len(OFFSCREEN_NOISES)))]
            noise = bridge_sound.synth(noise_kind, nrng, n, cfg.fs).astype(np.float64)
            rel = 10 ** (-nrng.uniform(*cfg.offscreen_snr_db) / 20)
            noise *= rel * np.sqrt(np.mean(audio.astype(np.float64) ** 2)) / (np.sqrt(np.mean(noise ** 2)) + 1e-12)
            audio = audio + noise
            peak = float(np.max(np.abs(audio)))
            if peak > 0.95:
                audio = audio * (0.95 / peak)
            audio = audio.astype(np.float32)
    return frames, audio, noise_kind


def clip_image_item(cfg: WorldConfig, cls: int, idx: int):
    """A captioned still: image ``(S, S, 3)`` uint8 and its caption."""
    rng = _rng(cfg, _CLIP, cls, idx)
    shape, colour, texture, _ = CLASSES[cls]
    img = bridge_visual.render_image(rng, shape, colour, texture, cfg.frame_size)
    template = CAPTION_TEMPLATES[int(rng.integers(len(CAPTION_TEMPLATES)))]
    caption = template.format(shape=shape, colour=colour, texture=_TEXTURE_WORD[texture])
    return img, caption


def target_item(cfg: WorldConfig, cls: int, idx: int):
    """Held-out test target: clean sound of ``mix_samples`` samples + ``QUERY_FRAMES`` consecutive
    frames of its object (the image query: the mean embedding of frames c-1, c, c+1)."""
    rng = _rng(cfg, _TARGET, cls, idx)
    frames = _render(cfg, copy.deepcopy(rng), cls, QUERY_FRAMES)
    _render(cfg, rng, cls, 1)  # the sound draws after one frame, as in version 1 worlds
    return _quantize(_class_sound(cfg, rng, cls, cfg.mix_samples)), frames


def interference_item(cfg: WorldConfig, cls: int, idx: int) -> np.ndarray:
    rng = _rng(cfg, _INTERF, cls, idx)
    return _quantize(_class_sound(cfg, rng, cls, cfg.mix_samples))


def mixture_plan(cfg: WorldConfig) -> List[Dict]:
    """Which target / interference each test mixture uses (deterministic by seed)."""
    plan = []
    k = cfg.num_classes
    for cls in range(k):
        for j in range(cfg.test_mix_per_class):
            rng = _rng(cfg, _MIX, cls, j)
            other = int(rng.integers(k - 1))
            other = other + 1 if other >= cls else other
            pool_idx = int(rng.integers(cfg.interference_per_class))
            name, oname = CLASSES[cls][0], CLASSES[other][0]
            plan.append(dict(
                mix_id=f"mix_{name}_{j:04d}_{oname}",
                target_id=f"target_{name}_{j:04d}", target_cls=cls, target_idx=j,
                interf_id=f"interf_{oname}_{pool_idx:04d}", interf_cls=other, interf_idx=pool_idx,
            ))
    return plan


def mix(s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """MUSIC+-style mixture (s1 + s2) / 2: the sum of the PCM16-rounded halves (error <= 1 LSB)."""
    return _quantize(s1.astype(np.float64) / 2) + _quantize(s2.astype(np.float64) / 2)


# --- parallel job runner ---------------------------------------------------------------------

def _job(args):
    kind, cfg_dict, out, a, b, c = args
    cfg = WorldConfig(**cfg_dict)
    out = Path(out)
    if kind == "video":
        split, cls, idx = a, b, c
        path = out / "videos" / split / f"{split}_{CLASSES[cls][0]}_{idx:04d}.mp4"
        if path.is_file():  # finished earlier (written atomically); the noise draw is cheap
            return kind, (split, cls, idx, str(path), _noise_kind(cfg, split, cls, idx))
        from espnet2_clip.data.video import write_video

        frames, audio, nk = video_item(cfg, split, cls, idx)
        write_video(path, frames, cfg.video_fps, audio, cfg.fs)
        return kind, (split, cls, idx, str(path), nk)
    if kind == "clip":
        cls, idx = a, b
        path = out / "images" / "clip_train" / f"clip_{CLASSES[cls][0]}_{idx:05d}.png"
        img, caption = clip_image_item(cfg, cls, idx)
        if not path.is_file():
            _write_png(path, img)
        return kind, (cls, idx, str(path), caption)
    if kind == "target":
        cls, idx = a, b
        name = CLASSES[cls][0]
        wav = out / "wav" / "test_target" / f"target_{name}_{idx:04d}.wav"
        pngs = [out / "images" / "query" / f"target_{name}_{idx:04d}_f{i + 1}.png" for i in range(QUERY_FRAMES)]
        if not (wav.is_file() and all(p.is_file() for p in pngs)):
            x, frames = target_item(cfg, cls, idx)
            _write_wav(wav, x, cfg.fs)
            for png, img in zip(pngs, frames):
                _write_png(png, img)
        return kind, (cls, idx, str(wav), " ".join(shlex.quote(str(p)) for p in pngs))
    if kind == "interf":
        cls, idx = a, b
        wav = out / "wav" / "interference" / f"interf_{CLASSES[cls][0]}_{idx:04d}.wav"
        if not wav.is_file():
            _write_wav(wav, interference_item(cfg, cls, idx), cfg.fs)
        return kind, (cls, idx, str(wav))
    if kind == "mix":
        p = a
        base = out / "wav" / "test_mix" / p["mix_id"]
        wavs = [base.with_name(base.name + suffix + ".wav") for suffix in ("", "_spk1", "_spk2")]
        if not all(w.is_file() for w in wavs):
            s1 = target_item(cfg, p["target_cls"], p["target_idx"])[0]
            s2 = interference_item(cfg, p["interf_cls"], p["interf_idx"])
            halves = [_quantize(s.astype(np.float64) / 2) for s in (s1, s2)]
            # references as they appear in the mixture (ESPnet convention: mix = spk1 + spk2)
            for path, x in zip(wavs, [mix(s1, s2), *halves]):
                _write_wav(path, x, cfg.fs)
        return kind, (p, *[str(w) for w in wavs])
    raise ValueError(kind)


def _noise_kind(cfg: WorldConfig, split: str, cls: int, idx: int) -> str:
    if split != "train" or cfg.offscreen_noise_prob <= 0:
        return "none"
    nrng = _rng(cfg, _NOISE, cls, idx)
    if nrng.random() < cfg.offscreen_noise_prob:
        return OFFSCREEN_NOISES[int(nrng.integers(len(OFFSCREEN_NOISES)))]
    return "none"


def _config_json(cfg: WorldConfig) -> Dict:
    d = dataclasses.asdict(cfg)
    d["level_db"] = list(cfg.level_db)
    d["offscreen_snr_db"] = list(cfg.offscreen_snr_db)
    d["version"] = VERSION
    return d


_OWNED = ("videos", "images", "wav", "data", "world.json", ".world_config.json")


def generate_world(out, cfg: WorldConfig, nj: int = 1, force: bool = False,
                   progress: bool = False, log=None) -> Dict:
    """Generate (or complete) the world under ``out``; returns the world.json content.

    Reruns with the same config skip finished files (and everything if world.json exists); a
    directory holding a world of a *different* config is an error unless ``force`` (which
    deletes the generated parts first).
    """
    cfg.validate()
    out = Path(out).resolve()
    log = log or (lambda msg: print(msg, file=sys.stderr))
    conf = _config_json(cfg)
    marker = out / ".world_config.json"
    if marker.is_file():
        old = json.loads(marker.read_text())
        if old != conf:
            if not force:
                diff = sorted(k for k in set(old) | set(conf) if old.get(k) != conf.get(k))
                raise ValueError(
                    f"{out} already holds a bridge world with other settings ({', '.join(diff)}); "
                    "use another --output_dir or --force to regenerate"
                )
            for name in _OWNED:
                p = out / name
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
        elif (out / "world.json").is_file():
            log(f"{out}: world already complete (same settings); nothing to do")
            return json.loads((out / "world.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(marker, json.dumps(conf, indent=1, sort_keys=True) + "\n")

    t0 = time.time()
    cd = dataclasses.asdict(cfg)
    k = cfg.num_classes
    plan = mixture_plan(cfg)
    jobs = []
    for split, per in (("train", cfg.videos_per_class), ("valid", cfg.valid_per_class)):
        jobs += [("video", cd, str(out), split, c, i) for c in range(k) for i in range(per)]
    jobs += [("clip", cd, str(out), c, i, None) for c in range(k) for i in range(cfg.clip_images_per_class)]
    if plan:
        jobs += [("target", cd, str(out), c, i, None) for c in range(k) for i in range(cfg.test_mix_per_class)]
        jobs += [("interf", cd, str(out), c, i, None) for c in range(k) for i in range(cfg.interference_per_class)]
        jobs += [("mix", cd, str(out), p, None, None) for p in plan]

    results: Dict[str, list] = {key: [] for key in ("video", "clip", "target", "interf", "mix")}
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(jobs), desc="bridge world", unit="item", file=sys.stderr,
                       mininterval=0.5 if sys.stderr.isatty() else 5.0)
        except ImportError:  # pragma: no cover
            bar = None
    if nj > 1:
        ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        with ctx.Pool(nj) as pool:
            for kind, res in pool.imap_unordered(_job, jobs, chunksize=4):
                results[kind].append(res)
                if bar is not None:
                    bar.update()
    else:
        for job in jobs:
            kind, res = _job(job)
            results[kind].append(res)
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()

    data = out / "data"
    for split in ("train", "valid"):
        items = [r for r in results["video"] if r[0] == split]
        write_scp(data / split / "video.scp", {Path(r[3]).stem: r[3] for r in items})
        write_scp(data / split / "label", {Path(r[3]).stem: CLASSES[r[1]][0] for r in items})
        if split == "train":
            write_scp(data / split / "offscreen", {Path(r[3]).stem: r[4] for r in items})
    write_scp(data / "clip_train" / "image.scp", {Path(r[2]).stem: r[2] for r in results["clip"]})
    write_scp(data / "clip_train" / "caption", {Path(r[2]).stem: r[3] for r in results["clip"]})
    write_scp(data / "clip_train" / "label", {Path(r[2]).stem: CLASSES[r[0]][0] for r in results["clip"]})
    if plan:
        write_scp(data / "interference" / "wav.scp", {Path(r[2]).stem: r[2] for r in results["interf"]})
        write_scp(data / "interference" / "label", {Path(r[2]).stem: CLASSES[r[0]][0] for r in results["interf"]})
        tgt = {(r[0], r[1]): r for r in results["target"]}
        mixes = {p["mix_id"]: (p, w) for p, *w in results["mix"]}
        columns = {
            "wav.scp": lambda p, w: w[0],
            "spk1.scp": lambda p, w: w[1],
            "spk2.scp": lambda p, w: w[2],
            "query_image.scp": lambda p, w: tgt[(p["target_cls"], p["target_idx"])][3],
            "text": lambda p, w: CLASSES[p["target_cls"]][0],
            "label": lambda p, w: CLASSES[p["target_cls"]][0],
            "interference_label": lambda p, w: CLASSES[p["interf_cls"]][0],
        }
        for name, fn in columns.items():
            write_scp(data / "test_mix" / name, {m: fn(p, w) for m, (p, w) in mixes.items()})

    n_noisy = sum(1 for r in results["video"] if r[0] == "train" and r[4] != "none")
    world = dict(
        version=VERSION,
        seed=cfg.seed,
        config=conf,
        classes=class_table(k),
        offscreen_noises=[dict(name=n, description=(bridge_sound.NOISES[n].__doc__ or "").strip())
                          for n in OFFSCREEN_NOISES],
        caption_templates=list(CAPTION_TEMPLATES),
        counts=dict(
            train_videos=len([r for r in results["video"] if r[0] == "train"]),
            valid_videos=len([r for r in results["video"] if r[0] == "valid"]),
            train_videos_with_offscreen_noise=n_noisy,
            clip_images=len(results["clip"]),
            test_targets=len(results["target"]),
            interference_pool=len(results["interf"]),
            test_mixtures=len(results["mix"]),
        ),
        protocol=dict(
            test_mixture="mixture = (s1 + s2) / 2 on the PCM16 grid; s1 = held-out clean target, "
                         "s2 = interference-pool item of another class; "
                         f"{cfg.mix_samples} samples at {cfg.fs} Hz; text = class name",
            interference_pool="held-out instances of the other target classes from their own "
                              "random stream; never in train/valid videos nor test targets",
            offscreen_noise="training videos only, with probability offscreen_noise_prob: "
                            "wind or hum (no visual) at "
                            f"{cfg.offscreen_snr_db[0]}..{cfg.offscreen_snr_db[1]} dB below the on-screen sound",
            videos=f"{cfg.frame_size}x{cfg.frame_size} px, {cfg.video_fps} fps, h264/yuv420p + AAC "
                   f"{cfg.fs} Hz mono, {cfg.video_seconds} s",
        ),
        generation_seconds=round(time.time() - t0, 2),
    )
    write_text_atomic(out / "world.json", json.dumps(world, indent=1) + "\n")
    log(f"{out}: bridge world with {k} classes generated in {world['generation_seconds']} s: "
        + ", ".join(f"{key}={v}" for key, v in world["counts"].items()))
    return world
