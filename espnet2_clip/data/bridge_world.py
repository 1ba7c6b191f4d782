"""The bridge world: a generated audio-visual world where text-queried separation can be learned
without any text-audio pair (see "The bridge world" in DESIGN.md).

Each class couples a **visual signature** (shape + colour + texture, :mod:`bridge_visual`) with a
**sound signature** (timbre: synthesised, :mod:`bridge_sound`; or with ``sounds="soundfont"`` a recorded
instrument of a General MIDI SoundFont, :mod:`bridge_recorded`, which the world then shows and names: a
flute, a trombone, a drum... drawn as pictograms with the same colours and textures, ``RECORDED_CLASSES``).
Everything is deterministic by ``seed``: every
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
    wav/test_offscreen/<mixid>.wav      the same targets mixed with an off-screen noise (noisy worlds only)
    data/train/{video.scp,label,offscreen}
    data/valid/{video.scp,label}
    data/clip_train/{image.scp,caption,label}
    data/interference/{wav.scp,label}
    data/test_mix/{wav.scp,spk1.scp,spk2.scp,text,query_image.scp,label,interference_label}
    data/test_offscreen/{...the same files}  (noisy worlds only)

Interference pool: held-out instances of the *other* target classes, drawn from their own random
stream (never used for train / valid videos nor as test targets); each test mixture is one clean
held-out target of class ``c`` plus one pool item of a class ``!= c``, both exactly
``mix_samples`` long, mixture = (s1 + s2) / 2 (MUSIC+ protocol); ``text`` is the class name.

Off-screen sounds (``offscreen_noise_prob``), as in videos from the wild: that fraction of the
*training* videos carries 1..``offscreen_max_sources`` sounds with no visual cue, each
``offscreen_snr_db`` (0..10 dB) below the on-screen sound, of the ``offscreen_kinds``: another
class's sound (``class``: its object is not in the picture), speech-like ``babble``, ``wind``,
``hum``. ``data/train/offscreen`` names
them per video (``none``, ``babble``, ``class:star+hum``...). Valid videos and test references stay
clean. The pictures and the class sound of a video do not depend on this option (the off-screen
sounds have their own random stream), so worlds with and without them differ only by them.

A noisy world has a second test set, ``test_offscreen`` (the NIT condition): each test target
mixed with an off-screen noise (one of the ``offscreen_kinds`` other than ``class``; a held-out
instance at the class sounds' levels) instead of another class, so a model that learned to pass off-screen sounds with
its query loses there.
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
from typing import Dict, List, Optional, Tuple

import numpy as np

from espnet2_clip.data import bridge_recorded, bridge_sound, bridge_visual
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
# the class sounds: synthesised signatures (bridge_sound) or recorded instruments of a SoundFont (bridge_recorded)
SOUND_BANKS = ("synth", "soundfont")
# A world of recorded instruments shows the instruments (bridge_visual.PICTOGRAMS) and names them: a class
# keeps its colour, texture and sound kind, its shape becomes the pictogram of the instrument it plays.
_INSTRUMENT_PICTURE = {
    "flute": "flute", "brass": "trombone", "shaker": "shaker", "drum": "drum", "chirp": "bird", "bell": "bell",
    "ticks": "woodblock", "clarinet": "clarinet", "whistle": "whistle", "rumble": "contrabass",
}
RECORDED_CLASSES: List[Tuple[str, str, str, str]] = [
    (_INSTRUMENT_PICTURE[sound], colour, texture, sound) for _, colour, texture, sound in CLASSES
]
OFFSCREEN_NOISES = ("babble", "wind", "hum")  # no class, no visual: the second test set's interference
OFFSCREEN_KINDS = ("class",) + OFFSCREEN_NOISES  # "class": another class's sound, its object off screen
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
_TRAIN, _VALID, _CLIP, _TARGET, _INTERF, _NOISE, _MIX, _OFFTEST = 1, 2, 3, 4, 5, 6, 7, 8
VERSION = 3  # 2: three query frames per test target (was one); 3: off-screen sources, test_offscreen
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
    offscreen_kinds: Tuple[str, ...] = OFFSCREEN_KINDS
    offscreen_max_sources: int = 2
    level_db: Tuple[float, float] = (-26.0, -16.0)
    offscreen_snr_db: Tuple[float, float] = (0.0, 10.0)
    sounds: str = "synth"
    soundfont: str = bridge_recorded.DEFAULT_SOUNDFONT

    def validate(self) -> None:
        if not 2 <= self.num_classes <= len(CLASSES):
            raise ValueError(f"num_classes must be in [2, {len(CLASSES)}], got {self.num_classes}")
        if self.sounds not in SOUND_BANKS:
            raise ValueError(f"sounds must be one of {', '.join(SOUND_BANKS)}, got '{self.sounds}'")
        if self.sounds == "soundfont":
            try:
                bridge_recorded.check_soundfont(self.soundfont)
            except RuntimeError as exc:
                raise ValueError(str(exc)) from None
        if not 0.0 <= self.offscreen_noise_prob <= 1.0:
            raise ValueError(f"offscreen_noise_prob must be in [0, 1], got {self.offscreen_noise_prob}")
        unknown = [k for k in self.offscreen_kinds if k not in OFFSCREEN_KINDS]
        if unknown or not self.offscreen_kinds:
            raise ValueError(f"offscreen_kinds must be some of {', '.join(OFFSCREEN_KINDS)}, "
                             f"got {', '.join(self.offscreen_kinds) or 'none'}")
        if self.offscreen_max_sources < 1:
            raise ValueError(f"offscreen_max_sources must be >= 1, got {self.offscreen_max_sources}")
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


def world_classes(cfg: WorldConfig) -> List[Tuple[str, str, str, str]]:
    """The (name = shape, colour, texture, sound kind) table of ``cfg``'s sound bank: the shapes of the
    synthesised world (``CLASSES``) or the instruments of the recorded one (``RECORDED_CLASSES``)."""
    return RECORDED_CLASSES if cfg.sounds == "soundfont" else CLASSES


def class_table(cfg: WorldConfig) -> List[Dict[str, str]]:
    out = []
    for i, (shape, colour, texture, sound) in enumerate(world_classes(cfg)[:cfg.num_classes]):
        if cfg.sounds == "soundfont":
            description = f"{bridge_recorded.INSTRUMENTS[sound].description} ({Path(cfg.soundfont).name})"
        else:
            description = (bridge_sound.SOUNDS[sound].__doc__ or "").strip()
        out.append(dict(index=i, name=shape, shape=shape, colour=colour, texture=texture,
                        sound=sound, sound_description=description))
    return out


def _rng(cfg: WorldConfig, stream: int, cls: int, idx: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, stream, cls, idx])


def _set_level(x: np.ndarray, rng, level_db) -> np.ndarray:
    """Scale to a random RMS level (dBFS) and keep the peak below 0.95."""
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) + 1e-12
    return _limit_peak(x * (10 ** (rng.uniform(*level_db) / 20) / rms))


def _limit_peak(x: np.ndarray, limit: float = 0.95) -> np.ndarray:
    """``x`` scaled down so that its peak is at most ``limit`` (float32)."""
    peak = float(np.max(np.abs(x)))
    return (x * (limit / peak) if peak > limit else x).astype(np.float32)


def _other_class(rng: np.random.Generator, num_classes: int, cls: int) -> int:
    """A class drawn uniformly among the ``num_classes`` - 1 others than ``cls``."""
    other = int(rng.integers(num_classes - 1))
    return other + (other >= cls)


def _signature(cfg: WorldConfig, kind: str, rng, n: int) -> np.ndarray:
    """``n`` samples of class sound ``kind`` from the world's sound bank (peak 1)."""
    if cfg.sounds == "soundfont":
        return bridge_recorded.render(kind, rng, n, cfg.fs, cfg.soundfont)
    return bridge_sound.synth(kind, rng, n, cfg.fs)


def _class_sound(cfg: WorldConfig, rng, cls: int, n: int) -> np.ndarray:
    return _set_level(_signature(cfg, world_classes(cfg)[cls][3], rng, n), rng, cfg.level_db)


def _render(cfg: WorldConfig, rng, cls: int, num_frames: int) -> np.ndarray:
    shape, colour, texture, _ = world_classes(cfg)[cls]
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

def _noise_draw(cfg: WorldConfig, split: str, cls: int, idx: int) -> Tuple[Optional[np.random.Generator], str]:
    """The off-screen sounds of a video: their names joined by ``+`` (``none`` for most; ``class:<name>``
    for another class's sound) and, when it has some, the generator their waveforms draw from next."""
    if split != "train" or cfg.offscreen_noise_prob <= 0:
        return None, "none"
    nrng = _rng(cfg, _NOISE, cls, idx)
    if nrng.random() >= cfg.offscreen_noise_prob:
        return None, "none"
    names = []
    for _ in range(int(nrng.integers(1, cfg.offscreen_max_sources + 1))):
        kind = cfg.offscreen_kinds[int(nrng.integers(len(cfg.offscreen_kinds)))]
        if kind == "class":
            kind = "class:" + world_classes(cfg)[_other_class(nrng, cfg.num_classes, cls)][0]
        names.append(kind)
    return nrng, "+".join(names)


def _offscreen_sound(cfg: WorldConfig, name: str, nrng, n: int) -> np.ndarray:
    """One off-screen source: a noise kind, or ``class:<name>``'s sound signature (peak 1)."""
    if name.startswith("class:"):
        kind = next(c[3] for c in world_classes(cfg) if c[0] == name[len("class:"):])
        return _signature(cfg, kind, nrng, n)
    return bridge_sound.synth(name, nrng, n, cfg.fs)


def _add_offscreen_noise(cfg: WorldConfig, audio: np.ndarray, n: int, names: str, nrng) -> np.ndarray:
    """``audio`` + each ``+``-joined off-screen source, ``offscreen_snr_db`` below it; peak kept below 0.95."""
    rms = np.sqrt(np.mean(audio.astype(np.float64) ** 2))
    audio = audio.astype(np.float64)
    for name in names.split("+"):
        noise = _offscreen_sound(cfg, name, nrng, n).astype(np.float64)
        rel = 10 ** (-nrng.uniform(*cfg.offscreen_snr_db) / 20)
        audio = audio + noise * (rel * rms / (np.sqrt(np.mean(noise ** 2)) + 1e-12))
    return _limit_peak(audio)


def video_item(cfg: WorldConfig, split: str, cls: int, idx: int):
    """Frames ``(T, S, S, 3)`` uint8, audio ``(N,)`` float32 and the off-screen noise kind."""
    stream = _TRAIN if split == "train" else _VALID
    rng = _rng(cfg, stream, cls, idx)
    n = int(round(cfg.video_seconds * cfg.fs))
    frames = _render(cfg, rng, cls, int(round(cfg.video_seconds * cfg.video_fps)))
    audio = _class_sound(cfg, rng, cls, n)
    nrng, noise_kind = _noise_draw(cfg, split, cls, idx)
    if nrng is not None:
        audio = _add_offscreen_noise(cfg, audio, n, noise_kind, nrng)
    return frames, audio, noise_kind


def clip_image_item(cfg: WorldConfig, cls: int, idx: int):
    """A captioned still: image ``(S, S, 3)`` uint8 and its caption."""
    rng = _rng(cfg, _CLIP, cls, idx)
    shape, colour, texture, _ = world_classes(cfg)[cls]
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


def offscreen_test_noises(cfg: WorldConfig) -> List[str]:
    """The noises of the ``test_offscreen`` mixtures: the off-screen kinds of a noisy world, less ``class``."""
    return [k for k in cfg.offscreen_kinds if k != "class"] if cfg.offscreen_noise_prob > 0 else []


def offscreen_test_item(cfg: WorldConfig, cls: int, idx: int) -> Tuple[np.ndarray, str]:
    """The off-screen noise of test target ``(cls, idx)``'s ``test_offscreen`` mixture: a held-out
    instance of a kind the noisy training videos carry, at the class sounds' levels; and its kind."""
    rng = _rng(cfg, _OFFTEST, cls, idx)
    noises = offscreen_test_noises(cfg)
    kind = noises[int(rng.integers(len(noises)))]
    return _quantize(_set_level(bridge_sound.synth(kind, rng, cfg.mix_samples, cfg.fs), rng, cfg.level_db)), kind


def mixture_plan(cfg: WorldConfig) -> List[Dict]:
    """Which target / interference each test mixture uses (deterministic by seed): ``test_mix``
    (another class's pool item) and, in a noisy world, ``test_offscreen`` (an off-screen noise)."""
    plan = []
    k = cfg.num_classes
    for cls in range(k):
        for j in range(cfg.test_mix_per_class):
            rng = _rng(cfg, _MIX, cls, j)
            other = _other_class(rng, k, cls)
            pool_idx = int(rng.integers(cfg.interference_per_class))
            name, oname = world_classes(cfg)[cls][0], world_classes(cfg)[other][0]
            target = dict(target_id=f"target_{name}_{j:04d}", target_cls=cls, target_idx=j)
            plan.append(dict(
                test_set="test_mix", mix_id=f"mix_{name}_{j:04d}_{oname}", **target,
                interf_id=f"interf_{oname}_{pool_idx:04d}", interf_cls=other, interf_idx=pool_idx,
                interf_label=oname,
            ))
            if offscreen_test_noises(cfg):
                kind = offscreen_test_item(cfg, cls, j)[1]
                plan.append(dict(test_set="test_offscreen", mix_id=f"offmix_{name}_{j:04d}_{kind}", **target,
                                 interf_label=kind))
    return plan


def mix(s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """MUSIC+-style mixture (s1 + s2) / 2: the sum of the PCM16-rounded halves (error <= 1 LSB)."""
    return _quantize(s1.astype(np.float64) / 2) + _quantize(s2.astype(np.float64) / 2)


# --- what the jobs make --------------------------------------------------------------------------

@dataclass(frozen=True)
class VideoFile:
    split: str
    cls: int
    idx: int
    path: str
    noise_kind: str  # off-screen sounds: none | their names joined by + (class:<name>, babble, wind, hum)

    @property
    def uttid(self) -> str:
        return Path(self.path).stem


@dataclass(frozen=True)
class ClipImageFile:
    cls: int
    idx: int
    path: str
    caption: str

    @property
    def uttid(self) -> str:
        return Path(self.path).stem


@dataclass(frozen=True)
class TargetFile:
    cls: int
    idx: int
    path: str
    query_frames: str  # the image query: its frames' paths, shell-quoted, space-separated

    @property
    def uttid(self) -> str:
        return Path(self.path).stem


@dataclass(frozen=True)
class InterferenceFile:
    cls: int
    idx: int
    path: str

    @property
    def uttid(self) -> str:
        return Path(self.path).stem


@dataclass(frozen=True)
class MixtureFiles:
    plan: Dict  # the entry of :func:`mixture_plan`
    mixture: str
    spk1: str  # the references as they are in the mixture (ESPnet convention: mix = spk1 + spk2)
    spk2: str


@dataclass
class WorldFiles:
    """Everything the jobs wrote (or found written), by kind; the order does not matter."""

    videos: List[VideoFile] = dataclasses.field(default_factory=list)
    clip_images: List[ClipImageFile] = dataclasses.field(default_factory=list)
    targets: List[TargetFile] = dataclasses.field(default_factory=list)
    interference: List[InterferenceFile] = dataclasses.field(default_factory=list)
    mixtures: List[MixtureFiles] = dataclasses.field(default_factory=list)

    def add(self, item) -> None:
        {VideoFile: self.videos, ClipImageFile: self.clip_images, TargetFile: self.targets,
         InterferenceFile: self.interference, MixtureFiles: self.mixtures}[type(item)].append(item)

    def videos_of(self, split: str) -> List[VideoFile]:
        return [v for v in self.videos if v.split == split]


# --- one job per file (a pure function of the config and the item; skips finished files) ------

@dataclass(frozen=True)
class Job:
    """One item to write: ``kind`` is video | clip | target | interf | mix."""

    kind: str
    cfg: Dict  # the WorldConfig as a dict (what worker processes receive)
    out: str
    cls: int = -1
    idx: int = -1
    split: str = ""  # videos
    plan: Optional[Dict] = None  # mixtures: the entry of mixture_plan


def _video_job(cfg: WorldConfig, out: Path, job: Job) -> VideoFile:
    split, cls, idx = job.split, job.cls, job.idx
    path = out / "videos" / split / f"{split}_{world_classes(cfg)[cls][0]}_{idx:04d}.mp4"
    if path.is_file():  # finished earlier (written atomically); the noise draw is cheap
        return VideoFile(split, cls, idx, str(path), _noise_draw(cfg, split, cls, idx)[1])
    from espnet2_clip.data.video import write_video

    frames, audio, noise_kind = video_item(cfg, split, cls, idx)
    write_video(path, frames, cfg.video_fps, audio, cfg.fs)
    return VideoFile(split, cls, idx, str(path), noise_kind)


def _clip_image_job(cfg: WorldConfig, out: Path, job: Job) -> ClipImageFile:
    path = out / "images" / "clip_train" / f"clip_{world_classes(cfg)[job.cls][0]}_{job.idx:05d}.png"
    img, caption = clip_image_item(cfg, job.cls, job.idx)
    if not path.is_file():
        _write_png(path, img)
    return ClipImageFile(job.cls, job.idx, str(path), caption)


def _target_job(cfg: WorldConfig, out: Path, job: Job) -> TargetFile:
    stem = f"target_{world_classes(cfg)[job.cls][0]}_{job.idx:04d}"
    wav = out / "wav" / "test_target" / f"{stem}.wav"
    pngs = [out / "images" / "query" / f"{stem}_f{i + 1}.png" for i in range(QUERY_FRAMES)]
    if not (wav.is_file() and all(p.is_file() for p in pngs)):
        x, frames = target_item(cfg, job.cls, job.idx)
        _write_wav(wav, x, cfg.fs)
        for png, img in zip(pngs, frames):
            _write_png(png, img)
    return TargetFile(job.cls, job.idx, str(wav), " ".join(shlex.quote(str(p)) for p in pngs))


def _interference_job(cfg: WorldConfig, out: Path, job: Job) -> InterferenceFile:
    wav = out / "wav" / "interference" / f"interf_{world_classes(cfg)[job.cls][0]}_{job.idx:04d}.wav"
    if not wav.is_file():
        _write_wav(wav, interference_item(cfg, job.cls, job.idx), cfg.fs)
    return InterferenceFile(job.cls, job.idx, str(wav))


def _mixture_job(cfg: WorldConfig, out: Path, job: Job) -> MixtureFiles:
    p = job.plan
    base = out / "wav" / p["test_set"] / p["mix_id"]
    wavs = [base.with_name(base.name + suffix + ".wav") for suffix in ("", "_spk1", "_spk2")]
    if not all(w.is_file() for w in wavs):
        s1 = target_item(cfg, p["target_cls"], p["target_idx"])[0]
        if p["test_set"] == "test_offscreen":
            s2 = offscreen_test_item(cfg, p["target_cls"], p["target_idx"])[0]
        else:
            s2 = interference_item(cfg, p["interf_cls"], p["interf_idx"])
        halves = [_quantize(s.astype(np.float64) / 2) for s in (s1, s2)]
        for path, x in zip(wavs, [mix(s1, s2), *halves]):
            _write_wav(path, x, cfg.fs)
    return MixtureFiles(p, *[str(w) for w in wavs])


_JOB_KINDS = {"video": _video_job, "clip": _clip_image_job, "target": _target_job,
              "interf": _interference_job, "mix": _mixture_job}


def run_job(job: Job):
    """Write (or find) one item; returns its ``*File(s)`` record."""
    if job.kind not in _JOB_KINDS:
        raise ValueError(f"unknown job kind {job.kind!r} ({' | '.join(_JOB_KINDS)})")
    return _JOB_KINDS[job.kind](WorldConfig(**job.cfg), Path(job.out), job)


def plan_jobs(cfg: WorldConfig, out: Path, plan: List[Dict]) -> List[Job]:
    """Every item of the world, in generation order: videos, captioned images, test material."""
    cd, o, k = dataclasses.asdict(cfg), str(out), cfg.num_classes
    jobs = [Job("video", cd, o, c, i, split=split)
            for split, per in (("train", cfg.videos_per_class), ("valid", cfg.valid_per_class))
            for c in range(k) for i in range(per)]
    jobs += [Job("clip", cd, o, c, i) for c in range(k) for i in range(cfg.clip_images_per_class)]
    if plan:
        jobs += [Job("target", cd, o, c, i) for c in range(k) for i in range(cfg.test_mix_per_class)]
        jobs += [Job("interf", cd, o, c, i) for c in range(k) for i in range(cfg.interference_per_class)]
        jobs += [Job("mix", cd, o, plan=p) for p in plan]
    return jobs


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, desc="bridge world", unit="item", file=sys.stderr,
                mininterval=0.5 if sys.stderr.isatty() else 5.0)


def run_jobs(jobs: List[Job], nj: int = 1, progress: bool = False) -> WorldFiles:
    """Run ``jobs`` (``nj`` > 1: in a process pool, in any order) and collect what they wrote."""
    files = WorldFiles()
    bar = _progress_bar(len(jobs), progress)
    if nj > 1:
        # FluidSynth (recorded sounds) does not survive a fork once it has run in the parent: spawn then
        recorded = any(job.cfg.get("sounds") == "soundfont" for job in jobs)
        ctx = mp.get_context("fork" if sys.platform.startswith("linux") and not recorded else "spawn")
        with ctx.Pool(nj) as pool:
            done = pool.imap_unordered(run_job, jobs, chunksize=4)
            for item in done:
                files.add(item)
                if bar is not None:
                    bar.update()
    else:
        for job in jobs:
            files.add(run_job(job))
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    return files


# --- the data dirs and world.json ------------------------------------------------------------

def write_lists(cfg: WorldConfig, data: Path, files: WorldFiles, with_test: bool) -> None:
    """``data/{train,valid,clip_train}`` and (``with_test``) ``data/{interference,test_mix}``."""
    def name(cls: int) -> str:  # a class's name is its label and its text query
        return world_classes(cfg)[cls][0]

    for split in ("train", "valid"):
        videos = files.videos_of(split)
        write_scp(data / split / "video.scp", {v.uttid: v.path for v in videos})
        write_scp(data / split / "label", {v.uttid: name(v.cls) for v in videos})
        if split == "train":
            write_scp(data / split / "offscreen", {v.uttid: v.noise_kind for v in videos})
    images = files.clip_images
    write_scp(data / "clip_train" / "image.scp", {c.uttid: c.path for c in images})
    write_scp(data / "clip_train" / "caption", {c.uttid: c.caption for c in images})
    write_scp(data / "clip_train" / "label", {c.uttid: name(c.cls) for c in images})
    if not with_test:
        return
    write_scp(data / "interference" / "wav.scp", {i.uttid: i.path for i in files.interference})
    write_scp(data / "interference" / "label", {i.uttid: name(i.cls) for i in files.interference})
    query = {(t.cls, t.idx): t.query_frames for t in files.targets}
    columns = {
        "wav.scp": lambda m: m.mixture,
        "spk1.scp": lambda m: m.spk1,
        "spk2.scp": lambda m: m.spk2,
        "query_image.scp": lambda m: query[(m.plan["target_cls"], m.plan["target_idx"])],
        "text": lambda m: name(m.plan["target_cls"]),
        "label": lambda m: name(m.plan["target_cls"]),
        "interference_label": lambda m: m.plan["interf_label"],
    }
    for test_set in sorted({m.plan["test_set"] for m in files.mixtures}):
        mixtures = [m for m in files.mixtures if m.plan["test_set"] == test_set]
        for fname, value in columns.items():
            write_scp(data / test_set / fname, {m.plan["mix_id"]: value(m) for m in mixtures})


def _config_json(cfg: WorldConfig) -> Dict:
    d = dataclasses.asdict(cfg)
    d["level_db"] = list(cfg.level_db)
    d["offscreen_snr_db"] = list(cfg.offscreen_snr_db)
    d["offscreen_kinds"] = list(cfg.offscreen_kinds)
    d["version"] = VERSION
    if cfg.sounds == "synth":  # worlds of synthesised sounds keep the settings they were written with
        del d["sounds"], d["soundfont"]
    else:  # recorded worlds name their pictured instruments (worlds of shapes with recorded sounds came first)
        d["classes"] = [c[0] for c in world_classes(cfg)]
    return d


def world_info(cfg: WorldConfig, files: WorldFiles, seconds: float) -> Dict:
    """The content of ``world.json``."""
    train = files.videos_of("train")
    return dict(
        version=VERSION,
        seed=cfg.seed,
        config=_config_json(cfg),
        classes=class_table(cfg),
        offscreen_noises=[dict(name=n, description=(bridge_sound.NOISES[n].__doc__ or "").strip())
                          for n in cfg.offscreen_kinds if n != "class"],
        caption_templates=list(CAPTION_TEMPLATES),
        counts=dict(
            train_videos=len(train),
            valid_videos=len(files.videos_of("valid")),
            train_videos_with_offscreen_noise=sum(1 for v in train if v.noise_kind != "none"),
            clip_images=len(files.clip_images),
            test_targets=len(files.targets),
            interference_pool=len(files.interference),
            test_mixtures=sum(1 for m in files.mixtures if m.plan["test_set"] == "test_mix"),
            test_offscreen_mixtures=sum(1 for m in files.mixtures if m.plan["test_set"] == "test_offscreen"),
        ),
        protocol=dict(
            test_mixture="mixture = (s1 + s2) / 2 on the PCM16 grid; s1 = held-out clean target, "
                         "s2 = interference-pool item of another class; "
                         f"{cfg.mix_samples} samples at {cfg.fs} Hz; text = class name",
            interference_pool="held-out instances of the other target classes from their own "
                              "random stream; never in train/valid videos nor test targets",
            offscreen_noise="training videos only, with probability offscreen_noise_prob: "
                            f"1..{cfg.offscreen_max_sources} sounds with no visual (of "
                            f"{', '.join(cfg.offscreen_kinds)}; class: another class's sound), each "
                            f"{cfg.offscreen_snr_db[0]}..{cfg.offscreen_snr_db[1]} dB below the on-screen sound",
            test_offscreen="noisy worlds only: each test target + a held-out off-screen noise "
                           f"({', '.join(offscreen_test_noises(cfg)) or 'none'}) at the class sounds' levels, "
                           "mixed like test_mix",
            videos=f"{cfg.frame_size}x{cfg.frame_size} px, {cfg.video_fps} fps, h264/yuv420p + AAC "
                   f"{cfg.fs} Hz mono, {cfg.video_seconds} s",
        ),
        generation_seconds=round(seconds, 2),
    )


_OWNED = ("videos", "images", "wav", "data", "world.json", ".world_config.json")


def _refuse_foreign_data(out: Path, marker: Path) -> None:
    """A directory without our marker must be empty (or absent): the generator never writes a world
    over data it did not make (a user's own world given as ``--world_dir``), with or without --force."""
    if marker.is_file() or not out.exists():
        return
    if not out.is_dir():
        raise ValueError(f"{out} is a file, not a directory: give the world generator a new or empty directory")
    found = sorted(p.name for p in out.iterdir())
    if found:
        shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
        raise ValueError(
            f"{out} holds data the bridge world generator did not write ({shown}); it only writes into a new "
            "or empty directory or one of its own worlds. To use your own world, skip the generator "
            "(clipsep1: ./run.sh --world_dir DIR --stage 2; clipsonic1: ./run.sh --world_dir DIR --data_stage 2)"
        )


def _claim_out_dir(out: Path, conf: Dict, force: bool, log) -> Optional[Dict]:
    """Make ``out`` ours for the world of config ``conf``: returns the finished world's world.json
    when one of the same settings is there (nothing to do), else None after writing the marker.
    Another world's settings are an error unless ``force`` (which deletes its generated parts)."""
    marker = out / ".world_config.json"
    _refuse_foreign_data(out, marker)
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
    return None


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
    finished = _claim_out_dir(out, _config_json(cfg), force, log)
    if finished is not None:
        return finished
    t0 = time.time()
    plan = mixture_plan(cfg)
    files = run_jobs(plan_jobs(cfg, out, plan), nj, progress)
    write_lists(cfg, out / "data", files, with_test=bool(plan))
    world = world_info(cfg, files, time.time() - t0)
    write_text_atomic(out / "world.json", json.dumps(world, indent=1) + "\n")
    log(f"{out}: bridge world with {cfg.num_classes} classes generated in {world['generation_seconds']} s: "
        + ", ".join(f"{key}={v}" for key, v in world["counts"].items()))
    return world
