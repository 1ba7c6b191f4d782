"""Recorded sound signatures of the bridge world: each class plays a General MIDI instrument of a
SoundFont (recorded instrument samples), rendered offline with FluidSynth.

The world of these sounds shows and names the instruments (``bridge_world.RECORDED_CLASSES``: a flute, a
trombone, maracas ("shaker"), a drum, a bird, a bell, a woodblock, a clarinet, a whistle, a contrabass, drawn
by :mod:`bridge_visual` in the colours and textures of the synthesised world's classes), so a recipe's
default settings meet other sounds, other pictures and other class names than on the synthesised world.
Each class kind maps to an instrument of the same family as its synthesiser (``flute`` -> GM Flute,
``drum`` -> the GM kit's kick and toms, ``chirp`` -> Bird Tweet...). A sound is a random phrase drawn from
``rng`` (a pentatonic melody in the instrument's register, or a percussion pattern), rendered by a fresh
synthesiser, so it depends only on ``rng``.

Needs FluidSynth and a General MIDI SoundFont (Debian/Ubuntu: ``apt-get install libfluidsynth3
timgm6mb-soundfont``) and the Python binding (``pip install espnet2_clip[recorded]``).
"""

import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from espnet2_clip.data.bridge_sound import note_times

DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"  # Debian's timgm6mb-soundfont
_PERCUSSION_CHANNEL = 9  # GM: channel 10 plays the drum kit (bank 128)
_INSTALL = ("apt-get install libfluidsynth3 timgm6mb-soundfont (Debian/Ubuntu; or any General MIDI .sf2 "
            "given as --soundfont) and pip install 'espnet2_clip[recorded]'")


@dataclass(frozen=True)
class Instrument:
    """A GM melodic program (``program`` >= 0, notes in ``keys``) or drum-kit ``keys`` (``program`` None)."""

    description: str
    keys: Tuple[int, ...]
    program: Optional[int] = None
    dur: Tuple[float, float] = (0.2, 0.5)  # melodic note lengths (s)
    rest: float = 0.15  # chance of a rest instead of a note
    beat: Tuple[float, float] = (0.15, 0.3)  # percussion: seconds between hits


# class kind (bridge_sound.SOUNDS) -> instrument of the same family; GM programs are 0-based
INSTRUMENTS: Dict[str, Instrument] = {
    "flute": Instrument("GM 73 Flute, C5-G6", (72, 91), program=73, dur=(0.25, 0.6)),
    "brass": Instrument("GM 57 Trombone, E2-C4", (40, 60), program=57, dur=(0.15, 0.4)),
    "shaker": Instrument("GM kit: maracas, shaker, cabasa", (70, 82, 69), beat=(0.12, 0.25)),
    "drum": Instrument("GM kit: kick drum and low toms", (36, 41, 43, 45), beat=(0.2, 0.35)),
    "chirp": Instrument("GM 123 Bird Tweet, C5-C7", (72, 96), program=123, dur=(0.08, 0.18), rest=0.25),
    "bell": Instrument("GM 14 Tubular Bells, C4-G5", (60, 79), program=14, dur=(0.35, 0.8), rest=0.1),
    "ticks": Instrument("GM kit: claves and wood blocks", (75, 76, 77), beat=(0.08, 0.14)),
    "clarinet": Instrument("GM 71 Clarinet, D3-D5", (50, 74), program=71, dur=(0.2, 0.5)),
    "whistle": Instrument("GM 78 Whistle, E4-F#5", (64, 78), program=78, dur=(0.2, 0.5)),
    "rumble": Instrument("GM 43 Contrabass, E1-G2", (28, 43), program=43, dur=(0.4, 0.9), rest=0.05),
}
_PENTATONIC = (0, 2, 4, 7, 9)
_SILENT = 1e-3  # peak (full scale 1) below which a rendered phrase counts as silence


def _fluidsynth():
    try:
        import fluidsynth
    except ImportError as exc:  # the binding, or the library it loads, is missing
        raise RuntimeError(f"recorded sounds need FluidSynth ({exc}): {_INSTALL}") from None
    return fluidsynth


def check_soundfont(path: str) -> str:
    """``path`` if it is a SoundFont and FluidSynth's binding loads, else a RuntimeError saying what to
    install. (No synthesiser is started here: a process that forks workers must not have one.)"""
    if not os.path.isfile(path):
        raise RuntimeError(f"SoundFont '{path}' not found: {_INSTALL}")
    with open(path, "rb") as f:
        head = f.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise RuntimeError(f"'{path}' is not a SoundFont (.sf2: a RIFF file of form 'sfbk')")
    _fluidsynth()
    return path


def _melody(rng: np.random.Generator, inst: Instrument, n: int, fs: int) -> List[Tuple[int, int, int, int]]:
    """(onset, length, key, velocity) of a pentatonic random walk within ``inst.keys``."""
    lo, hi = inst.keys
    root = lo + int(rng.integers(12))
    grid = [k for k in range(root - 12, hi + 1) if (k - root) % 12 in _PENTATONIC and lo <= k <= hi]
    idx = int(rng.integers(len(grid)))
    notes = []
    for start, length in note_times(rng, n, fs, inst.dur, inst.rest):
        notes.append((start, length, grid[idx], int(rng.integers(70, 121))))
        idx = int(np.clip(idx + rng.integers(-2, 3), 0, len(grid) - 1))
    return notes


def _pattern(rng: np.random.Generator, inst: Instrument, n: int, fs: int) -> List[Tuple[int, int, int, int]]:
    """(onset, length, key, velocity) of a repeating 8-step pattern of the kit's ``inst.keys``."""
    beat = int(rng.uniform(*inst.beat) * fs)
    hits = rng.random(8) < 0.7
    hits[0] = True
    keys = rng.choice(inst.keys, size=8)
    notes = []
    for i, start in enumerate(range(int(rng.uniform(0, 0.2) * fs), n, beat)):
        if hits[i % 8]:
            accent = 1.0 if i % 4 == 0 else 0.75
            notes.append((start, beat, int(keys[i % 8]), int(rng.integers(90, 121) * accent)))
    return notes


def render(kind: str, rng: np.random.Generator, n: int, fs: int, soundfont: str = DEFAULT_SOUNDFONT) -> np.ndarray:
    """``n`` samples of class sound ``kind`` played on its instrument (mono float32, peak-normalised to 1)."""
    inst = INSTRUMENTS.get(kind)
    if inst is None:
        raise KeyError(f"no recorded instrument for sound kind {kind!r}; known: {sorted(INSTRUMENTS)}")
    notes = (_pattern if inst.program is None else _melody)(rng, inst, n, fs)
    channel = _PERCUSSION_CHANNEL if inst.program is None else 0
    events = sorted([(start, 1, key, vel) for start, _, key, vel in notes]
                    + [(min(start + length, n), 0, key, 0) for start, length, key, _ in notes])
    synth = _fluidsynth().Synth(samplerate=float(fs), gain=0.5)
    try:
        sfid = synth.sfload(soundfont)  # checked once by WorldConfig.validate (check_soundfont)
        if sfid < 0:
            raise RuntimeError(f"FluidSynth cannot load the SoundFont '{soundfont}': {_INSTALL}")
        synth.program_select(channel, sfid, 128 if inst.program is None else 0, inst.program or 0)
        pieces, now = [], 0
        for time, on, key, vel in events:  # note-offs sort before note-ons at the same time
            if time > now:
                pieces.append(synth.get_samples(time - now))
                now = time
            if on:
                synth.noteon(channel, key, vel)
            else:
                synth.noteoff(channel, key)
        if now < n:
            pieces.append(synth.get_samples(n - now))
    finally:
        synth.delete()
    stereo = np.concatenate(pieces).reshape(-1, 2).astype(np.float64) / 32768.0
    x = stereo.mean(axis=1)[:n]
    peak = np.max(np.abs(x))
    if peak < _SILENT:  # normalising would turn the synthesiser's noise floor into the class sound
        raise RuntimeError(f"the SoundFont '{soundfont}' plays nothing for sound kind {kind!r} "
                           f"({inst.description}): use a General MIDI SoundFont that has this instrument")
    return (x / peak).astype(np.float32)
