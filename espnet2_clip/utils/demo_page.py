"""A static demo page like the papers' ones: examples with audio players and spectrograms.

:func:`write_site` turns a :class:`DemoPage` into ``<site>/index.html``, ``<site>/audio/*.wav``
(16-bit PCM, which every browser plays; a clip that peaks above full scale, as strongly guided
generations can, is scaled down to fit, not clipped, and its caption says by how much) and ``<site>/img/*.png`` (spectrograms and copied query
images). Links are relative; the page has no script and loads no stylesheet, font or image from
elsewhere, so it works offline, from any web server or from the file system. Every text is
escaped with :func:`html.escape`.

The site is built in a temporary directory next to ``<site>`` and moved into place at the end: a
failure leaves the previous site (or nothing), and a rerun replaces the whole site. An existing
directory is only replaced when it is empty or holds a site written here (its ``index.html`` names
:data:`GENERATOR`), so a mistyped output directory never deletes other files.
"""

import html
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import soundfile as sf

from espnet2_clip.utils.fileio import slug

PathLike = Union[str, os.PathLike]
GENERATOR = "espnet2-clip demo"
AUDIO_SUBTYPE = "PCM_16"
FULL_SCALE_PEAK = 0.99  # a clip above full scale is scaled to peak here (not clipped)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
SPEC_RANGE_DB = (-100.0, 0.0)  # colour range of every spectrogram (dB re. a full-scale sine's peak)

_STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 72em; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
ul.notes { color: #555; font-size: .9em; }
article.example { border: 1px solid #ddd; border-radius: 6px; margin: 1.2em 0; padding: .6em 1em; }
article.example h3 { margin: .2em 0 .4em; }
p.query { font-size: 1.05em; margin: .2em 0 .6em; } p.note { color: #555; font-size: .9em; }
div.row { display: flex; flex-wrap: wrap; align-items: flex-start; gap: .8em; margin: .5em 0;
          border-top: 1px dashed #eee; padding-top: .5em; }
div.heading { width: 12em; font-weight: bold; padding-top: 1.4em; overflow-wrap: anywhere; }
figure { margin: 0; width: 320px; } figcaption { font-size: .85em; margin-bottom: .2em; }
figcaption span.gain { color: #555; font-size: .9em; }
figure audio { width: 320px; display: block; } figure img { display: block; margin-top: .2em; }
figure.query-image { width: auto; } figure.query-image img { width: 128px; height: auto; }
"""


@dataclass
class DemoClip:
    """One audio player with its spectrogram.

    Attributes:
        label: Caption, e.g. "mixture", "reference", "estimate", "seed 0".
        audio: (N,) or (N, C) samples, or the path of an audio (or video) file.
        sample_rate: Rate of ``audio`` samples (read from the file for a path).
    """

    label: str
    audio: Union[np.ndarray, PathLike]
    sample_rate: Optional[int] = None


@dataclass
class DemoImage:
    """A query image shown as it is (copied into the site)."""

    label: str
    path: PathLike


@dataclass
class DemoRow:
    """A line of an example: a heading (a query, a system) and its clips."""

    heading: str
    clips: List[DemoClip] = field(default_factory=list)
    images: List[DemoImage] = field(default_factory=list)


@dataclass
class DemoExample:
    """One example: a title, its query (if one for the whole example), shared clips (the mixture,
    the reference) and one row per query or system."""

    title: str
    query: Optional[str] = None
    clips: List[DemoClip] = field(default_factory=list)
    images: List[DemoImage] = field(default_factory=list)
    rows: List[DemoRow] = field(default_factory=list)
    note: Optional[str] = None


@dataclass
class DemoSection:
    """A group of examples (a test set, a task) under a heading."""

    title: str
    examples: List[DemoExample] = field(default_factory=list)
    description: Optional[str] = None


@dataclass
class DemoPage:
    """The whole page: a title, notes (model, settings) and its sections."""

    title: str
    sections: List[DemoSection] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def num_examples(self) -> int:
        """Examples over all sections."""
        return sum(len(s.examples) for s in self.sections)


# ------------------------------------------------------------------------------ output directory
def _is_our_site(path: Path) -> bool:
    index = path / "index.html"
    try:
        head = index.read_text(encoding="utf-8", errors="replace")[:2000]
    except OSError:
        return False
    return f'<meta name="generator" content="{GENERATOR}">' in head


def check_site_dir(path: PathLike, field_name: str = "-o") -> Path:
    """``path`` if a site can be written there: its parent exists and is writable, and it is new,
    an empty directory or a site written here before.

    Raises:
        ValueError: one line naming ``field_name`` and the path.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"{field_name} '{path}': directory '{parent}' does not exist")
    try:  # a real probe: permission bits do not tell root about read-only mounts
        probe = tempfile.mkdtemp(prefix=".espnet2_clip_probe.", dir=parent)
        os.rmdir(probe)
    except OSError as exc:
        raise ValueError(f"{field_name} '{path}': directory '{parent}' is not writable ({exc.strerror})") from exc
    if path.exists() or path.is_symlink():
        if not path.is_dir() or path.is_symlink():
            raise ValueError(f"{field_name} '{path}': exists and is not a directory; expected a new or empty "
                             "directory (or a demo site to replace)")
        if any(path.iterdir()) and not _is_our_site(path):
            raise ValueError(f"{field_name} '{path}': a non-empty directory that is not a demo site (no index.html "
                             f"written by {GENERATOR}); give a new or empty directory")
    return path


def _replace_dir(new: Path, target: Path) -> None:
    """Move the finished ``new`` to ``target``, replacing a previous site."""
    if not target.exists():
        os.replace(new, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    os.replace(target, old / "site")
    try:
        os.replace(new, target)
    except OSError:
        os.replace(old / "site", target)  # put the previous site back
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------------------------ media files
def _load(clip: DemoClip, max_seconds: Optional[float]) -> Tuple[np.ndarray, int]:
    """(N, C) float32 samples of ``clip`` (at most ``max_seconds``) and their rate."""
    if isinstance(clip.audio, np.ndarray):
        if clip.sample_rate is None or clip.sample_rate <= 0:
            raise ValueError(f"demo clip '{clip.label}': samples without a sample rate")
        wave = np.asarray(clip.audio, dtype=np.float32)
        wave = wave[:, None] if wave.ndim == 1 else wave
        fs = int(clip.sample_rate)
        if wave.ndim != 2 or wave.shape[0] == 0:
            raise ValueError(f"demo clip '{clip.label}': expected (N,) or (N, C) samples, got shape {wave.shape}")
        if max_seconds is not None:
            wave = wave[: max(1, int(max_seconds * fs))]
        if not np.isfinite(wave).all():
            raise ValueError(f"demo clip '{clip.label}': NaN or Inf samples")
        return wave, fs
    from espnet2_clip.utils.audio_io import AudioReader

    with AudioReader(clip.audio, what=f"demo clip '{clip.label}'") as reader:
        frames = reader.frames if max_seconds is None else min(reader.frames, max(1, int(max_seconds * reader.samplerate)))
        return reader.read(0, frames).T, reader.samplerate


def fit_full_scale(wave: np.ndarray) -> Tuple[np.ndarray, float]:
    """``wave`` scaled down to peak at ``FULL_SCALE_PEAK`` if it peaks above full scale (16-bit PCM would clip
    it: audible distortion), else unchanged; returns it and the gain in dB (0 when unchanged)."""
    peak = float(np.max(np.abs(wave), initial=0.0))
    if peak <= 1.0:
        return wave, 0.0
    return wave * (FULL_SCALE_PEAK / peak), 20 * np.log10(FULL_SCALE_PEAK / peak)


def _write_wav(path: Path, wave: np.ndarray, fs: int) -> None:
    sf.write(str(path), wave, fs, subtype=AUDIO_SUBTYPE, format="WAV")


def _write_spectrogram(path: Path, wave: np.ndarray, fs: int) -> Tuple[int, int]:
    """A log-magnitude spectrogram of the channels' mean as a PNG; returns (width, height) in pixels."""
    from matplotlib.figure import Figure
    from scipy.signal import stft

    mono = wave.mean(1).astype(np.float64)
    seconds = len(mono) / fs
    n_fft = int(2 ** round(np.log2(max(fs * 0.064, 64))))  # 1024 at 16 kHz, 2048 at 44.1 kHz
    n_fft = min(n_fft, 2 ** int(np.log2(max(len(mono), 16))))
    mono = np.pad(mono, (0, max(0, n_fft - len(mono))))
    _, _, spec = stft(mono, fs, nperseg=n_fft, noverlap=3 * n_fft // 4, boundary=None, padded=False)
    db = 20 * np.log10(np.maximum(np.abs(spec), 1e-10))  # scipy scales a full-scale sine's peak to 0.5
    width, height, dpi = 320, 128, 80
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    ax = fig.add_axes((0.13, 0.22, 0.85, 0.74))
    ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=SPEC_RANGE_DB[0], vmax=SPEC_RANGE_DB[1],
              extent=(0, seconds, 0, fs / 2000))
    ax.set_xlabel("time (s)", fontsize=7, labelpad=1)
    ax.set_ylabel("kHz", fontsize=7, labelpad=1)
    ax.tick_params(labelsize=6, length=2, pad=1)
    fig.savefig(str(path), format="png", dpi=dpi)
    return width, height


class _SiteWriter:
    """Writes the media of a page into a build directory and returns their HTML."""

    def __init__(self, root: Path, max_seconds: Optional[float]):
        self.root = root
        self.max_seconds = max_seconds
        self.count = 0
        (root / "audio").mkdir()
        (root / "img").mkdir()

    def _name(self, label: str) -> str:
        self.count += 1
        return f"{self.count:04d}_{slug(label, fallback='clip', limit=32)}"

    def clip(self, clip: DemoClip) -> str:
        wave, fs = _load(clip, self.max_seconds)
        wave, gain_db = fit_full_scale(wave)
        name = self._name(clip.label)
        _write_wav(self.root / "audio" / f"{name}.wav", wave, fs)
        width, height = _write_spectrogram(self.root / "img" / f"{name}.png", wave, fs)
        label = html.escape(clip.label)
        caption = label + (f' <span class="gain">(scaled by {gain_db:.1f} dB: it peaked above full scale)</span>'
                           if gain_db else "")
        return (f'<figure class="clip"><figcaption>{caption}</figcaption>'
                f'<audio controls preload="auto" src="audio/{name}.wav"></audio>'
                f'<img src="img/{name}.png" width="{width}" height="{height}" alt="spectrogram: {label}">'
                "</figure>")

    def image(self, image: DemoImage) -> str:
        source = Path(image.path)
        suffix = source.suffix.lower()
        if suffix not in IMAGE_SUFFIXES:
            raise ValueError(f"demo image '{source}': unsupported type '{suffix}'; expected one of "
                             f"{', '.join(IMAGE_SUFFIXES)}")
        if not source.is_file():
            raise ValueError(f"demo image '{source}': no such file")
        name = self._name(image.label) + suffix
        shutil.copyfile(source, self.root / "img" / name)
        label = html.escape(image.label)
        return (f'<figure class="query-image"><figcaption>{label}</figcaption>'
                f'<img src="img/{name}" alt="{label}"></figure>')

    def media(self, clips: Sequence[DemoClip], images: Sequence[DemoImage]) -> str:
        return "".join([self.image(i) for i in images] + [self.clip(c) for c in clips])


# ----------------------------------------------------------------------------------------- page
def _render(page: DemoPage, writer: _SiteWriter) -> str:
    esc = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f'<meta name="generator" content="{GENERATOR}">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           '<link rel="icon" href="data:,">',  # no favicon request (a 404 would be a console error)
           f"<title>{esc(page.title)}</title>", f"<style>{_STYLE}</style>", "</head>", "<body>",
           f"<h1>{esc(page.title)}</h1>"]
    if page.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in page.notes) + "</ul>")
    number = 0
    for section in page.sections:
        out.append(f'<section><h2>{esc(section.title)}</h2>')
        if section.description:
            out.append(f'<p class="note">{esc(section.description)}</p>')
        for example in section.examples:
            number += 1
            out.append(f'<article class="example" id="example-{number}"><h3>{esc(example.title)}</h3>')
            if example.query is not None:
                out.append(f'<p class="query">Query: <q>{esc(example.query)}</q></p>')
            if example.note:
                out.append(f'<p class="note">{esc(example.note)}</p>')
            if example.clips or example.images:
                out.append(f'<div class="row shared">{writer.media(example.clips, example.images)}</div>')
            for row in example.rows:
                out.append(f'<div class="row"><div class="heading">{esc(row.heading)}</div>'
                           f"{writer.media(row.clips, row.images)}</div>")
            out.append("</article>")
        out.append("</section>")
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


def write_site(page: DemoPage, out_dir: PathLike, max_seconds: Optional[float] = None,
               field_name: str = "-o") -> Path:
    """Write ``page`` as a static site in ``out_dir`` (replacing a previous site), atomically.

    Args:
        page: The examples.
        out_dir: The site directory (``index.html``, ``audio/``, ``img/``).
        max_seconds: Cut every clip to its first ``max_seconds`` (None: whole clips).
        field_name: The option named in errors about ``out_dir``.

    Returns:
        The path of ``index.html``.

    Raises:
        ValueError: one line naming the output directory, a clip or an image; nothing is written then.
    """
    out_dir = check_site_dir(out_dir, field_name)
    if page.num_examples == 0:
        raise ValueError(f"{field_name} '{out_dir}': no examples to put on the page")
    build = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.build.", dir=out_dir.parent))
    try:
        text = _render(page, _SiteWriter(build, max_seconds))
        (build / "index.html").write_text(text, encoding="utf-8")
        for path in [build, *build.rglob("*")]:  # mkdtemp makes owner-only directories
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        _replace_dir(build, out_dir)
    finally:
        if build.exists():
            shutil.rmtree(build, ignore_errors=True)
    return out_dir / "index.html"
