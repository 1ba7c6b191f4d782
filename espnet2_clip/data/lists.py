"""Parsers for the MUSIC / VGGSound clip lists used by CLIPSep, and split hygiene.

Formats
-------
* CLIPSep index CSV (no header): ``audio_path,frame_dir,n_frames,label``, e.g.
  ``data/vggsound/audio/k/L/kLyY8uCoYUQ.wav,data/vggsound/preprocessed/k/L/kLyY8uCoYUQ,12,golf driving``.
  Quirks of the shipped files that are accepted:

  - absolute paths (``/data2/.../data/MUSIC/solo/audio/tuba/VA1EolcDwZI.wav``);
  - only 3 columns (MUSIC ``train.csv`` has no label): the label is then taken from the
    audio file's parent directory (``tuba``) unless ``label_from_dir=False``;
  - labels containing commas, quoted or not (extra columns are joined back);
  - an optional header row (``audio_path,frame_dir,n_frames,label``).

* ``vggsound.csv`` (the official VGGSound list, no header): ``ytid,start,label,split``;
  labels with commas are quoted (``"vehicle horn, car horn, honking"``).

Malformed rows raise :class:`ListFormatError` naming ``file:line``; with
``on_error="skip"`` they are skipped and counted in a :class:`ParseReport`.
"""

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

PathLike = Union[str, os.PathLike]

INDEX_HEADER = ("audio_path", "frame_dir", "n_frames", "label")
VGGSOUND_HEADER = ("ytid", "start", "label", "split")
YOUTUBE_ID_LEN = 11
MUSIC_PREFIX = "playing "


class ListFormatError(ValueError):
    """A malformed row; the message starts with ``file:line``."""


@dataclass
class ParseReport:
    """Counts of one or more parsed files; ``errors`` holds ``file:line: message``."""

    n_rows: int = 0
    n_ok: int = 0
    errors: List[str] = field(default_factory=list)

    @property
    def n_skipped(self) -> int:
        return len(self.errors)


@dataclass(frozen=True)
class ClipRecord:
    """One row of a CLIPSep index CSV."""

    audio_path: str
    frame_dir: str
    n_frames: int
    label: Optional[str]
    source: str = ""  # "file:line" for messages

    @property
    def clip_id(self) -> str:
        """File stem of the audio path (``kLyY8uCoYUQ``, ``ZeQPNWdFs_4``)."""
        return PurePosixPath(self.audio_path.replace("\\", "/")).stem

    @property
    def video_id(self) -> str:
        return video_id_of(self.clip_id)

    @property
    def center_frame(self) -> int:
        """Centre frame used by the official evaluation (``n_frames // 2``)."""
        return self.n_frames // 2

    def to_row(self) -> List[str]:
        row = [self.audio_path, self.frame_dir, str(self.n_frames)]
        if self.label is not None:
            row.append(self.label)
        return row


@dataclass(frozen=True)
class VGGSoundRow:
    """One row of the official ``vggsound.csv``."""

    ytid: str
    start: int  # seconds
    label: str
    split: str
    source: str = ""

    @property
    def clip_id(self) -> str:
        """``{ytid}_{start:06d}``, the usual name of the 10-s clip."""
        return f"{self.ytid}_{self.start:06d}"

    @property
    def clipsep_label(self) -> str:
        """Label as CLIPSep's index files spell it (", " replaced by " ")."""
        return clipsep_label(self.label)


def clipsep_label(label: str) -> str:
    return label.replace(", ", " ")


def video_id_of(clip_id: str) -> str:
    """YouTube id of a clip id: ``abcdefghijk_000030`` -> ``abcdefghijk``; else unchanged.

    The shipped MUSIC and VGGSound index files name clips by the bare 11-character id
    (which may itself contain ``_``), so only a suffix after the 11th character is cut.
    """
    if len(clip_id) > YOUTUBE_ID_LEN and clip_id[YOUTUBE_ID_LEN] == "_":
        return clip_id[:YOUTUBE_ID_LEN]
    return clip_id


def relative_data_path(path: str, anchor: str = "data") -> str:
    """Cut an absolute path back to the part starting at the last ``anchor`` component.

    ``/data2/hao-wen/data/MUSIC/solo/audio/x.wav`` -> ``data/MUSIC/solo/audio/x.wav``.
    Paths without that component are returned unchanged.
    """
    parts = PurePosixPath(path.replace("\\", "/")).parts
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == anchor:
            return str(PurePosixPath(*parts[i:]))
    return path


def _rows(path: Path) -> Iterator[Tuple[int, List[str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        for row in reader:
            yield reader.line_num, row


def _handle(msg: str, on_error: str, report: ParseReport) -> None:
    if on_error == "raise":
        raise ListFormatError(msg)
    report.errors.append(msg)


def _check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")


def read_index_csv(
    path: PathLike,
    *,
    on_error: str = "raise",
    report: Optional[ParseReport] = None,
    label_from_dir: bool = True,
    relative_paths: bool = False,
) -> List[ClipRecord]:
    """Read a CLIPSep index CSV (``audio_path,frame_dir,n_frames[,label]``).

    Args:
        on_error: ``"raise"`` (default) or ``"skip"`` malformed rows, counted in ``report``.
        report: optional :class:`ParseReport` updated in place.
        label_from_dir: for 3-column rows, use the audio file's parent directory name as
            the label (MUSIC layout ``audio/<instrument>/<id>.wav``); else ``None``.
        relative_paths: rewrite absolute paths with :func:`relative_data_path`.
    """
    _check_on_error(on_error)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such list file")
    report = report if report is not None else ParseReport()
    records: List[ClipRecord] = []
    for lineno, row in _rows(path):
        where = f"{path}:{lineno}"
        if not row or all(not c.strip() for c in row):
            continue
        report.n_rows += 1
        raw_label_cells = row[3:]
        row = [c.strip() for c in row]
        if lineno == 1 and tuple(c.lower() for c in row[:3]) == INDEX_HEADER[:3]:
            report.n_rows -= 1
            continue
        if len(row) < 3:
            _handle(
                f"{where}: expected 3 or 4 columns (audio_path,frame_dir,n_frames[,label]), "
                f"got {len(row)}: {','.join(row)!r}",
                on_error, report,
            )
            continue
        audio, frames, n_str = row[:3]
        # a label with unquoted commas spans several cells: join them back
        label: Optional[str] = ",".join(raw_label_cells).strip() if len(row) > 3 else None
        try:
            n_frames = int(n_str)
        except ValueError:
            _handle(f"{where}: n_frames must be an integer, got {n_str!r}", on_error, report)
            continue
        if n_frames < 0:
            _handle(f"{where}: n_frames must be >= 0, got {n_frames}", on_error, report)
            continue
        if not audio or not frames:
            _handle(f"{where}: empty audio_path or frame_dir", on_error, report)
            continue
        if label == "":
            _handle(f"{where}: empty label", on_error, report)
            continue
        if label is None and label_from_dir:
            parent = PurePosixPath(audio.replace("\\", "/")).parent.name
            label = parent or None
        if relative_paths:
            audio, frames = relative_data_path(audio), relative_data_path(frames)
        records.append(ClipRecord(audio, frames, n_frames, label, where))
        report.n_ok += 1
    return records


def write_index_csv(path: PathLike, records: Iterable[ClipRecord]) -> None:
    """Write records in the index format (atomically); labels with commas are quoted."""
    import io

    from espnet2_clip.utils.fileio import write_text_atomic

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for rec in records:
        writer.writerow(rec.to_row())
    write_text_atomic(path, buf.getvalue())


def read_vggsound_csv(
    path: PathLike, *, on_error: str = "raise", report: Optional[ParseReport] = None
) -> List[VGGSoundRow]:
    """Read the official ``vggsound.csv`` (``ytid,start,label,split``)."""
    _check_on_error(on_error)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such list file")
    report = report if report is not None else ParseReport()
    out: List[VGGSoundRow] = []
    for lineno, row in _rows(path):
        where = f"{path}:{lineno}"
        if not row or all(not c.strip() for c in row):
            continue
        report.n_rows += 1
        if lineno == 1 and row[0].strip().lower() in ("ytid", "# youtube id", "youtube_id"):
            report.n_rows -= 1
            continue
        if len(row) < 4:
            _handle(f"{where}: expected 4 columns (ytid,start,label,split), got {len(row)}",
                    on_error, report)
            continue
        ytid, start_s, split = row[0].strip(), row[1].strip(), row[-1].strip()
        label = ",".join(row[2:-1]).strip()  # unquoted commas inside the label
        try:
            start = int(float(start_s))
        except ValueError:
            _handle(f"{where}: start must be a number of seconds, got {start_s!r}", on_error, report)
            continue
        if not ytid or not label or not split:
            _handle(f"{where}: empty ytid, label or split", on_error, report)
            continue
        out.append(VGGSoundRow(ytid, start, label, split, where))
        report.n_ok += 1
    return out


# --------------------------------------------------------------------------- pools


def is_music_label(label: Optional[str]) -> bool:
    """The rule of CLIPSep's no-music lists: labels starting with "playing "."""
    return bool(label) and label.startswith(MUSIC_PREFIX)


def derive_no_music(records: Sequence[ClipRecord]) -> List[ClipRecord]:
    """Drop clips whose label starts with "playing " (test.csv -> test-no-music.csv).

    Note the rule also drops sports ("playing tennis") and keeps "orchestra" or
    "tapping guitar", exactly as the shipped lists do.
    """
    return [r for r in records if not is_music_label(r.label)]


# --------------------------------------------------------------------------- split hygiene


@dataclass
class OverlapReport:
    """Video ids shared between splits and what was removed."""

    overlaps: Dict[Tuple[str, str], List[str]] = field(default_factory=dict)
    removed: Dict[str, int] = field(default_factory=dict)
    duplicates: Dict[str, int] = field(default_factory=dict)
    sizes_before: Dict[str, int] = field(default_factory=dict)
    sizes_after: Dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        lines = []
        for (a, b), ids in sorted(self.overlaps.items()):
            lines.append(f"{a} ∩ {b}: {len(ids)} video(s)")
        for name in self.sizes_before:
            lines.append(
                f"{name}: {self.sizes_before[name]} -> {self.sizes_after.get(name, self.sizes_before[name])} "
                f"(removed {self.removed.get(name, 0)} overlapping, "
                f"{self.duplicates.get(name, 0)} duplicate)"
            )
        return "\n".join(lines)


def find_split_overlap(splits: Mapping[str, Sequence[ClipRecord]]) -> Dict[Tuple[str, str], List[str]]:
    """Video ids present in more than one split, per pair of split names."""
    vids = {name: {r.video_id for r in recs} for name, recs in splits.items()}
    names = list(splits)
    out: Dict[Tuple[str, str], List[str]] = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            common = sorted(vids[a] & vids[b])
            if common:
                out[(a, b)] = common
    return out


def remove_split_overlap(
    splits: Mapping[str, Sequence[ClipRecord]],
    priority: Sequence[str] = ("test", "val", "train"),
    dedup: bool = True,
) -> Tuple[Dict[str, List[ClipRecord]], OverlapReport]:
    """Make splits disjoint by video id.

    A video keeps its place in the split that comes first in ``priority`` (splits not
    named there come after, in their given order) and is removed from the others, so
    the test set is never reduced in favour of training data.  With ``dedup`` repeated
    clips inside one split are dropped too.
    """
    order = [n for n in priority if n in splits] + [n for n in splits if n not in priority]
    report = OverlapReport(overlaps=find_split_overlap(splits))
    taken: set = set()
    cleaned: Dict[str, List[ClipRecord]] = {}
    for name in order:
        kept: List[ClipRecord] = []
        seen_clips: set = set()
        removed = dup = 0
        for r in splits[name]:
            if r.video_id in taken:
                removed += 1
                continue
            if dedup and r.clip_id in seen_clips:
                dup += 1
                continue
            seen_clips.add(r.clip_id)
            kept.append(r)
        taken |= {r.video_id for r in kept}
        cleaned[name] = kept
        report.removed[name] = removed
        report.duplicates[name] = dup
    for name in splits:
        report.sizes_before[name] = len(splits[name])
        report.sizes_after[name] = len(cleaned[name])
    return {name: cleaned[name] for name in splits}, report
