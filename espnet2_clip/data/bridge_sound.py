"""Sound signatures of the bridge world: one clearly different timbre per class (numpy only).

Every synthesiser has the signature ``fn(rng, n, fs) -> float32 (n,)`` and draws its own random
melody / rhythm from ``rng``; the result is peak-normalised to 1 (the caller sets the level).
"""

from typing import Callable, Dict

import numpy as np

Synth = Callable[[np.random.Generator, int, int], np.ndarray]


def note_times(rng, n, fs, dur=(0.2, 0.5), rest=0.15, first_rest=0.3):
    """Random note onsets/lengths (samples) covering ``n`` samples, with occasional rests."""
    pos = int(rng.uniform(0, first_rest) * fs)
    notes = []
    while pos < n:
        length = int(rng.uniform(*dur) * fs)
        if rng.random() >= rest:
            notes.append((pos, min(length, n - pos)))
        pos += length
    if not notes:  # never silent
        notes.append((0, n))
    return notes


def _env(length, fs, attack=0.01, release=0.05, decay=None):
    t = np.arange(length) / fs
    e = np.minimum(1.0, t / max(attack, 1e-4))
    e *= np.minimum(1.0, (length / fs - t) / max(release, 1e-4)).clip(0, 1)
    if decay is not None:
        e *= np.exp(-t / decay)
    return e


def _scale_f0(rng, lo, hi, count):
    """Melody on a pentatonic scale between lo and hi Hz (random walk)."""
    steps = np.array([0, 2, 4, 7, 9])
    base = lo * 2 ** (rng.uniform(0, 1) / 12)
    grid = []
    for octave in range(6):
        for s in steps:
            f = base * 2 ** (octave + s / 12)
            if f <= hi:
                grid.append(f)
    grid = np.array(grid)
    idx = rng.integers(len(grid))
    out = []
    for _ in range(count):
        out.append(grid[idx])
        idx = int(np.clip(idx + rng.integers(-2, 3), 0, len(grid) - 1))
    return out


def _harmonic(rng, n, fs, f0_range, amps, dur, attack, release, vibrato=0.0, decay=None, rest=0.15):
    out = np.zeros(n)
    notes = note_times(rng, n, fs, dur, rest)
    f0s = _scale_f0(rng, *f0_range, len(notes))
    for (start, length), f0 in zip(notes, f0s):
        t = np.arange(length) / fs
        inst = f0 * (1 + vibrato * np.sin(2 * np.pi * rng.uniform(4.5, 6.5) * t))
        phase = 2 * np.pi * np.cumsum(inst) / fs
        seg = np.zeros(length)
        for k, a in amps:
            if k * f0 * (1 + vibrato) < 0.45 * fs:
                seg += a * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
        out[start:start + length] += seg * _env(length, fs, attack, release, decay)
    return out


def _band_noise(rng, n, fs, lo, hi, order_db=0.0):
    """White noise band-passed to [lo, hi] Hz by FFT masking (smooth edges)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / fs)
    width = max(hi - lo, 1.0) * 0.15
    mask = 1 / (1 + np.exp(-(f - lo) / width)) / (1 + np.exp((f - hi) / width))
    if order_db:
        mask = mask * (np.maximum(f, 20) / 1000.0) ** (order_db / 6.02)
    return np.fft.irfft(spec * mask, n)


def flute(rng, n, fs):
    """Few partials (pure, high), soft attack, vibrato."""
    return _harmonic(rng, n, fs, (1200, 2400), [(1, 1.0), (2, 0.25), (3, 0.08)],
                     dur=(0.25, 0.6), attack=0.05, release=0.08, vibrato=0.006)


def brass(rng, n, fs):
    """Many partials (saw-like, bright), low register, sharp attack."""
    return _harmonic(rng, n, fs, (90, 220), [(k, 1.0 / k) for k in range(1, 31)],
                     dur=(0.15, 0.4), attack=0.01, release=0.03)


def shaker(rng, n, fs):
    """Band of noise (~2.5-4.5 kHz) in rhythmic bursts."""
    lo = rng.uniform(2300, 2900)
    noise = _band_noise(rng, n, fs, lo, lo + rng.uniform(1000, 1600))
    period = rng.uniform(0.18, 0.35)
    t = np.arange(n) / fs
    phase = (t / period + rng.uniform()) % 1.0
    env = np.exp(-phase * rng.uniform(4, 8)) * (0.6 + 0.4 * (np.floor(t / period) % 2))
    return noise * env


def drum(rng, n, fs):
    """Percussive hits: pitch-dropping low sine + short click, on a random rhythm."""
    out = np.zeros(n)
    beat = rng.uniform(0.2, 0.35)
    pattern = rng.random(8) < 0.65
    pattern[0] = True
    t_hit = np.arange(int(0.35 * fs)) / fs
    for i, start in enumerate(range(int(rng.uniform(0, 0.2) * fs), n, int(beat * fs))):
        if not pattern[i % 8]:
            continue
        f_hi, f_lo = rng.uniform(140, 200), rng.uniform(45, 65)
        inst = f_lo + (f_hi - f_lo) * np.exp(-t_hit / 0.03)
        hit = np.sin(2 * np.pi * np.cumsum(inst) / fs) * np.exp(-t_hit / rng.uniform(0.08, 0.14))
        click = rng.standard_normal(len(t_hit)) * np.exp(-t_hit / 0.004) * 0.5
        seg = (hit + click)[: n - start] * rng.uniform(0.6, 1.0)
        out[start:start + len(seg)] += seg
    return out


def chirp(rng, n, fs):
    """Exponential sweeps (upward, ~1 kHz -> 4 kHz) with gaps."""
    out = np.zeros(n)
    for start, length in note_times(rng, n, fs, dur=(0.2, 0.45), rest=0.3):
        t = np.arange(length) / fs
        f_a, f_b = rng.uniform(800, 1100), rng.uniform(3500, 4500)
        inst = f_a * (f_b / f_a) ** (t / max(t[-1], 1e-3))
        out[start:start + length] += np.sin(2 * np.pi * np.cumsum(inst) / fs) * _env(length, fs, 0.01, 0.03)
    return out


def bell(rng, n, fs):
    """FM bell: inharmonic (ratio 1.4), decaying modulation index, long decay, 600-1100 Hz."""
    out = np.zeros(n)
    notes = note_times(rng, n, fs, dur=(0.35, 0.8), rest=0.1)
    for (start, length), fc in zip(notes, _scale_f0(rng, 600, 1100, len(notes))):
        t = np.arange(length) / fs
        index = 2.5 * np.exp(-t / 0.2)
        mod = index * np.sin(2 * np.pi * 1.4 * fc * t)
        out[start:start + length] += np.sin(2 * np.pi * fc * t + mod) * _env(length, fs, 0.002, 0.03, 0.3)
    return out


def ticks(rng, n, fs):
    """Pulse train of very short high-passed clicks (> 5 kHz) at a fast, accented rate."""
    out = np.zeros(n)
    period = int(rng.uniform(0.08, 0.14) * fs)
    klen = int(0.012 * fs)
    tk = np.arange(klen) / fs
    for i, start in enumerate(range(int(rng.uniform(0, 0.1) * fs), n - klen, period)):
        out[start:start + klen] += rng.standard_normal(klen) * np.exp(-tk / 0.003) * (1.0 if i % 4 == 0 else 0.5)
    return _hp(out, fs, 5000)


def _hp(x, fs, cutoff):
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / fs)
    return np.fft.irfft(spec / (1 + np.exp(-(f - cutoff) / 300.0)), len(x))


def clarinet(rng, n, fs):
    """Odd harmonics only (hollow), mid register, strong tremolo."""
    x = _harmonic(rng, n, fs, (230, 460), [(k, 1.0 / k) for k in (1, 3, 5, 7, 9)],
                  dur=(0.3, 0.7), attack=0.03, release=0.06, rest=0.1)
    t = np.arange(n) / fs
    return x * (1 - 0.5 * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(5, 8) * t)))


def whistle(rng, n, fs):
    """Pure tone 2.6-3.6 kHz with slow glides."""
    out = np.zeros(n)
    for start, length in note_times(rng, n, fs, dur=(0.4, 0.9), rest=0.2):
        t = np.arange(length) / fs
        f_a, f_b = rng.uniform(2600, 3600, size=2)
        inst = f_a + (f_b - f_a) * t / max(t[-1], 1e-3)
        out[start:start + length] += np.sin(2 * np.pi * np.cumsum(inst) / fs) * _env(length, fs, 0.04, 0.08)
    return out


def rumble(rng, n, fs):
    """Low noise band (120-450 Hz) with slow swells, like distant thunder / a motor."""
    x = _band_noise(rng, n, fs, 120, 450)
    t = np.arange(n) / fs
    return x * (0.35 + 0.65 * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.7, 1.5) * t + rng.uniform(0, 6.3))))


# --- off-screen noises (never visible, never targets) ---------------------------------------

def wind(rng, n, fs):
    """Pinkish low-passed noise (< 1 kHz) with slow gusts."""
    x = _band_noise(rng, n, fs, 30, rng.uniform(700, 1200), order_db=-3.0)
    t = np.arange(n) / fs
    gust = 0.3 + 0.7 * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.15, 0.5) * t + rng.uniform(0, 6.3)))
    return x * gust


def hum(rng, n, fs):
    """Mains-like hum: 50/60 Hz with odd/even harmonics plus a little buzz noise."""
    f0 = 50.0 if rng.random() < 0.5 else 60.0
    t = np.arange(n) / fs
    x = sum((1.0 / k) * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6.3)) for k in range(1, 12))
    return x + 0.1 * _band_noise(rng, n, fs, 100, 1500)


# vowel formants (Hz) of an adult talker: /a/ /i/ /e/ /o/ /u/ /ae/
_VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (530, 1840, 2480), (570, 840, 2410), (300, 870, 2240),
           (660, 1720, 2410))


def _syllable(rng, length, fs, f0):
    """One voiced syllable: harmonics of a gliding ``f0`` weighted by a random vowel's formants."""
    t = np.arange(length) / fs
    inst = f0 * (1 + rng.uniform(-0.15, 0.15) * t / max(t[-1], 1e-3))
    phase = 2 * np.pi * np.cumsum(inst) / fs
    k = np.arange(1, int(3800 // (f0 * 1.15)) + 1)
    formants = np.array(_VOWELS[int(rng.integers(len(_VOWELS)))], dtype=np.float64)
    f = k[:, None] * f0
    amps = (0.7 ** np.arange(3) / (1 + ((f - formants) / (0.1 * formants + 60)) ** 2)).sum(1)
    return (amps[:, None] * np.sin(k[:, None] * phase[None, :])).sum(0)


def _talker(rng, n, fs):
    """One voice: syllables at ~4-6 per second, a few unvoiced bursts, pauses between phrases."""
    out = np.zeros(n)
    f0 = rng.uniform(90, 240)
    pos = int(rng.uniform(0, 0.3) * fs)
    while pos < n:
        length = min(int(rng.uniform(0.1, 0.25) * fs), n - pos)
        voiced = rng.random() < 0.8
        if voiced:
            seg = _syllable(rng, length, fs, f0 * rng.uniform(0.9, 1.1))
        else:  # fricative, softer than a vowel
            seg = _band_noise(rng, length, fs, 3000, 6000)
        gain = 1.0 if voiced else 0.2
        out[pos:pos + length] += gain * seg / (np.max(np.abs(seg)) + 1e-9) * _env(length, fs, 0.015, 0.03)
        pos += length + int(rng.exponential(0.04) * fs) + (int(0.4 * fs) if rng.random() < 0.08 else 0)
    return out


def babble(rng, n, fs):
    """Speech-like babble: 3-5 talkers (f0 90-240 Hz), formant-shaped syllables, unvoiced bursts."""
    return sum(rng.uniform(0.5, 1.0) * _talker(rng, n, fs) for _ in range(int(rng.integers(3, 6))))


SOUNDS: Dict[str, Synth] = {
    "flute": flute, "brass": brass, "shaker": shaker, "drum": drum, "chirp": chirp,
    "bell": bell, "ticks": ticks, "clarinet": clarinet, "whistle": whistle, "rumble": rumble,
}
NOISES: Dict[str, Synth] = {"babble": babble, "wind": wind, "hum": hum}


def synth(kind: str, rng: np.random.Generator, n: int, fs: int) -> np.ndarray:
    """Render ``n`` samples of sound ``kind`` (a key of SOUNDS or NOISES), peak-normalised to 1."""
    fn = SOUNDS.get(kind) or NOISES.get(kind)
    if fn is None:
        raise KeyError(f"unknown sound kind {kind!r}; known: {sorted(SOUNDS) + sorted(NOISES)}")
    x = np.asarray(fn(rng, n, fs), dtype=np.float64)
    peak = np.max(np.abs(x))
    if peak > 0:
        x = x / peak
    return x.astype(np.float32)
