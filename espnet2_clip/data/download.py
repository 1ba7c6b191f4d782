"""Download YouTube videos with the ``yt-dlp`` executable: resumable, parallel, skip-and-count.

ID list (``--ids``), one clip per line, ``#`` starts a comment::

    clip_id ytid [start_seconds duration_seconds]

e.g. ``kLyY8uCoYUQ_000030 kLyY8uCoYUQ 30 10`` (a VGGSound 10-s window) or
``ZeQPNWdFs_4 ZeQPNWdFs_4`` (a full MUSIC video). Malformed lines raise
:class:`~espnet2_clip.data.lists.ListFormatError` naming ``file:line``.

Outputs in ``out_dir``:

* ``videos/<clip_id>.mp4``   the downloads; each is fetched into ``videos/.<clip_id>.tmp/`` and
                             moved into place only after a decode check, so an existing
                             ``<clip_id>.mp4`` is always complete (reruns skip it).
* ``video.scp``              ``clip_id path.mp4`` for every clip obtained (now or earlier).
* ``missing``                ``clip_id reason`` for every clip not obtained; reasons are
                             :data:`REASONS`.
* ``download_report.json``   counts (requested / obtained / missing by reason), the ids, the
                             last error message of each missing clip, the yt-dlp version.

Failures never stop the run: yt-dlp's stderr is classified (:func:`classify_error`), the clip
is listed in ``missing``. Rate limits (HTTP 429, ``throttled``), network errors and a yt-dlp killed
by a signal (``interrupted``) are retried in the same run, ``retry_transient`` times after waits
of ``retry_wait``, 2 ``retry_wait``, ... seconds. A file that yt-dlp reports as complete but that
ffmpeg cannot decode to the end (a download cut mid-file) is deleted and retried
(``retry_broken`` times), then counted as ``broken``; a file without an audio or a video stream
is ``no-audio`` / ``no-video``, and a section that holds (almost) no audio, because it starts
past the end of the video, is ``past-end``. On a rerun, clips listed as ``unavailable`` or
``private`` by the previous run are not asked for again (unless ``retry_missing``); all other
failures are retried.
"""

import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from espnet2_clip.data.lists import ListFormatError, read_vggsound_csv
from espnet2_clip.data.video import (DiskFullError, NoAudioStreamError, NoVideoStreamError, VideoDecodeError, _run_ffmpeg,
                                     ffmpeg_exe)
from espnet2_clip.utils.fileio import read_scp, write_scp, write_text_atomic

PathLike = Union[str, os.PathLike]

YTDLP_ENV = "ESPNET2_CLIP_YTDLP"
REPORT_NAME = "download_report.json"

#: missing-clip reasons, in report order
REASONS = ("unavailable", "private", "bot-check", "throttled", "network", "interrupted", "broken", "no-audio",
           "no-video", "past-end", "disk-full", "not-attempted", "other")
#: reasons that a rerun does not retry (the video is gone for good)
PERMANENT_REASONS = ("unavailable", "private")
#: reasons retried within a run (after a wait)
TRANSIENT_REASONS = ("throttled", "network", "interrupted")
#: a section that decodes to less audio than this (s) is counted as past the video's end
MIN_SECTION_SECONDS = 0.5

#: format selection: mp4 video + m4a audio merged, else any single file with both, else anything
DEFAULT_FORMAT = "bv*[ext=mp4]+ba[ext=m4a]/b[ext=mp4][acodec!=none]/bv*+ba/b"

BOT_CHECK_HINT = (
    "YouTube asks for a sign-in ('confirm you're not a bot'): pass your browser's cookies with "
    "--cookies cookies.txt (Netscape format) or --cookies_from_browser firefox, use fewer jobs "
    "(--nj 1) and a --sleep_interval, then rerun; finished clips are kept."
)

_ID_RE = re.compile(r"^[A-Za-z0-9_\-]+$")


# --------------------------------------------------------------------------- id lists


@dataclass(frozen=True)
class DownloadItem:
    """One clip to fetch: the whole video, or ``duration`` seconds from ``start``."""

    clip_id: str
    ytid: str
    start: Optional[float] = None
    duration: Optional[float] = None
    source: str = ""  # "file:line"

    @property
    def url(self) -> str:
        return youtube_url(self.ytid)

    @property
    def section(self) -> Optional[Tuple[float, float]]:
        if self.start is None or self.duration is None:
            return None
        return (self.start, self.start + self.duration)

    def to_line(self) -> str:
        fields = [self.clip_id, self.ytid]
        if self.section is not None:
            fields += [_fmt_seconds(self.start), _fmt_seconds(self.duration)]
        return " ".join(fields)


def youtube_url(ytid: str) -> str:
    return f"https://www.youtube.com/watch?v={ytid}"


def _fmt_seconds(x: float) -> str:
    x = float(x)
    return str(int(x)) if x.is_integer() else f"{x:.3f}".rstrip("0").rstrip(".")


def read_id_list(path: PathLike) -> List[DownloadItem]:
    """Parse an id list (see the module doc).

    Raises:
        FileNotFoundError: no such file.
        ListFormatError: ``file:line: ...`` for a line with 1 or 3 or more than 4 fields, a bad
            number, a negative start, a non-positive duration, a bad id or a duplicated clip id.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such id list (lines 'clip_id ytid [start duration]')")
    items: List[DownloadItem] = []
    seen: Dict[str, str] = {}
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            where = f"{path}:{lineno}"
            text = line.split("#", 1)[0].strip()  # ids never contain '#'
            if not text:
                continue
            parts = text.split()
            if len(parts) not in (2, 4):
                raise ListFormatError(
                    f"{where}: expected 'clip_id ytid [start_seconds duration_seconds]', "
                    f"got {len(parts)} field(s): {text!r}"
                )
            clip_id, ytid = parts[0], parts[1]
            for name, value in (("clip_id", clip_id), ("ytid", ytid)):
                if not _ID_RE.match(value):
                    raise ListFormatError(f"{where}: invalid {name} {value!r} (letters, digits, _ and - only)")
            start = duration = None
            if len(parts) == 4:
                try:
                    start, duration = float(parts[2]), float(parts[3])
                except ValueError:
                    raise ListFormatError(
                        f"{where}: start and duration must be numbers of seconds, got {parts[2]!r} {parts[3]!r}"
                    ) from None
                if not (start >= 0) or not (duration > 0) or start == float("inf") or duration == float("inf"):
                    raise ListFormatError(
                        f"{where}: need start >= 0 and duration > 0, got {parts[2]} {parts[3]}"
                    )
            if clip_id in seen:
                raise ListFormatError(f"{where}: duplicated clip_id {clip_id!r} (first at {seen[clip_id]})")
            seen[clip_id] = where
            items.append(DownloadItem(clip_id, ytid, start, duration, where))
    return items


def write_id_list(path: PathLike, items: Iterable[DownloadItem]) -> None:
    write_text_atomic(path, "".join(it.to_line() + "\n" for it in items))


def items_from_vggsound_csv(
    csv_path: PathLike, split: Optional[str] = "test", duration: float = 10.0
) -> Tuple[List[DownloadItem], Dict[str, str]]:
    """Items (``ytid_{start:06d}``, ``duration``-s window) and labels of one split of ``vggsound.csv``.

    ``split=None`` or ``"all"`` keeps every row. Labels are spelled as CLIPSep's index files do
    (", " -> " "). A clip listed twice is kept once.
    """
    rows = read_vggsound_csv(csv_path)
    items: List[DownloadItem] = []
    labels: Dict[str, str] = {}
    for row in rows:
        if split not in (None, "all") and row.split != split:
            continue
        if row.clip_id in labels:
            continue
        items.append(DownloadItem(row.clip_id, row.ytid, float(row.start), float(duration), row.source))
        labels[row.clip_id] = row.clipsep_label
    return items, labels


def items_from_music_json(json_path: PathLike) -> Tuple[List[DownloadItem], Dict[str, str]]:
    """Items (whole videos, clip id = ytid) and labels of a Sound-of-Pixels MUSIC json.

    Format: ``{"videos": {"accordion": ["ytid", ...], ...}}``. A video listed under two
    instruments keeps the first (in file order).
    """
    json_path = Path(json_path)
    if not json_path.is_file():
        raise FileNotFoundError(f"{json_path}: no such MUSIC json")
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ListFormatError(f"{json_path}:{e.lineno}: invalid json: {e.msg}") from None
    videos = data.get("videos") if isinstance(data, dict) else None
    if not isinstance(videos, dict):
        raise ListFormatError(f"{json_path}: expected {{\"videos\": {{label: [ytid, ...]}}}}")
    items: List[DownloadItem] = []
    labels: Dict[str, str] = {}
    for label, ids in videos.items():
        if not isinstance(ids, list):
            raise ListFormatError(f"{json_path}: videos[{label!r}] is not a list of ids")
        for ytid in ids:
            if not isinstance(ytid, str) or not _ID_RE.match(ytid):
                raise ListFormatError(f"{json_path}: videos[{label!r}]: invalid id {ytid!r}")
            if ytid in labels:
                continue
            items.append(DownloadItem(ytid, ytid, source=f"{json_path}:{label}"))
            labels[ytid] = label
    return items, labels


# --------------------------------------------------------------------------- yt-dlp


class YtDlpNotFoundError(RuntimeError):
    """No yt-dlp executable."""


def find_ytdlp(explicit: Optional[str] = None) -> str:
    """``explicit``, else ``$ESPNET2_CLIP_YTDLP``, else ``yt-dlp`` on PATH, else the one next to
    this Python (a venv's ``bin/``)."""
    cand = explicit or os.environ.get(YTDLP_ENV)
    if cand:
        found = shutil.which(cand) if os.sep not in cand else (cand if os.access(cand, os.X_OK) else None)
        if not found:
            raise YtDlpNotFoundError(f"yt-dlp not found or not executable: {cand}")
        return found
    found = shutil.which("yt-dlp")
    if not found:
        local = Path(sys.executable).parent / "yt-dlp"
        if local.is_file() and os.access(local, os.X_OK):
            found = str(local)
    if not found:
        raise YtDlpNotFoundError(
            "yt-dlp not found: `pip install yt-dlp` (or pass --ytdlp PATH / set $ESPNET2_CLIP_YTDLP)"
        )
    return found


def ytdlp_version(exe: str) -> str:
    try:
        proc = subprocess.run([exe, "--version"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise YtDlpNotFoundError(f"{exe}: cannot run: {e}") from e
    if proc.returncode != 0:
        raise YtDlpNotFoundError(f"{exe} --version failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout.strip()


@dataclass
class DownloadOptions:
    """What is passed to yt-dlp, and how the run behaves."""

    ytdlp: str = "yt-dlp"
    format: str = DEFAULT_FORMAT
    sections: bool = True  # cut [start, start+duration] when the item has one
    force_keyframes_at_cuts: bool = False
    cookies: Optional[str] = None
    cookies_from_browser: Optional[str] = None
    limit_rate: Optional[str] = None  # e.g. "2M"
    retries: Optional[int] = None  # yt-dlp --retries
    socket_timeout: Optional[float] = 30.0
    ffmpeg_location: Optional[str] = None  # default: video.ffmpeg_exe()
    extra_args: Sequence[str] = ()
    sleep_interval: float = 0.0  # per-worker pause between two yt-dlp calls ...
    max_sleep_interval: Optional[float] = None  # ... drawn uniformly up to this when given
    timeout: Optional[float] = 3600.0  # seconds for one yt-dlp call
    retry_broken: int = 1  # re-downloads of a file that fails the decode check
    retry_transient: int = 2  # in-run retries of a throttled / network / interrupted call ...
    retry_wait: float = 10.0  # ... after waiting this many seconds (doubled at each retry)
    validate: bool = True
    retry_missing: bool = False
    stop_after_bot_checks: int = 0  # >0: stop asking after this many bot checks in a row


def build_ytdlp_command(item: DownloadItem, out_template: str, opts: DownloadOptions) -> List[str]:
    """The yt-dlp command line for ``item`` writing to ``out_template`` (``...%(ext)s``)."""
    cmd = [
        opts.ytdlp,
        "--ignore-config", "--no-playlist", "--no-progress", "--no-part", "--no-mtime",
        "--no-overwrites", "--no-cache-dir",
        "-f", opts.format,
        "--merge-output-format", "mp4", "--remux-video", "mp4",
        "-o", out_template,
    ]
    ffmpeg = opts.ffmpeg_location
    if ffmpeg is None:
        try:
            ffmpeg = ffmpeg_exe()
        except Exception:  # pragma: no cover - yt-dlp then looks on PATH itself
            ffmpeg = None
    if ffmpeg:
        cmd += ["--ffmpeg-location", str(ffmpeg)]
    if opts.sections and item.section is not None:
        a, b = item.section
        cmd += ["--download-sections", f"*{_fmt_seconds(a)}-{_fmt_seconds(b)}"]
        if opts.force_keyframes_at_cuts:
            cmd.append("--force-keyframes-at-cuts")
    if opts.cookies:
        cmd += ["--cookies", str(opts.cookies)]
    if opts.cookies_from_browser:
        cmd += ["--cookies-from-browser", opts.cookies_from_browser]
    if opts.limit_rate:
        cmd += ["--limit-rate", str(opts.limit_rate)]
    if opts.retries is not None:
        cmd += ["--retries", str(opts.retries)]
    if opts.socket_timeout:
        cmd += ["--socket-timeout", _fmt_seconds(opts.socket_timeout)]
    cmd += list(opts.extra_args)
    cmd += ["--", item.url]
    return cmd


_PATTERNS = (
    ("disk-full", ("no space left on device",)),
    ("bot-check", ("confirm you're not a bot", "confirm you’re not a bot", "confirm your age",
                   "sign in to confirm", "this content isn't available, try again later", "po token")),
    ("throttled", ("http error 429", "too many requests")),
    ("private", ("private video", "this video is private", "members-only", "join this channel",
                 "available to this channel's members")),
    ("unavailable", ("video unavailable", "this video is unavailable", "has been removed",
                     "account associated with this video has been terminated", "is not available",
                     "no longer available", "copyright claim", "blocked it in your country",
                     "not made this video available in your country", "http error 404",
                     "http error 410", "incomplete youtube id", "video does not exist",
                     "requested format is not available")),
    ("network", ("unable to download webpage", "urlopen error", "timed out", "timeout",
                 "connection reset", "connection refused", "temporary failure in name resolution",
                 "name or service not known", "network is unreachable", "remote end closed",
                 "incompleteread", "http error 5", "ssl", "unable to download video data",
                 "giving up after")),
)


def classify_error(stderr: str) -> str:
    """Reason of a failed yt-dlp call from its stderr: one of :data:`REASONS`.

    ``ERROR:`` lines are looked at first (warnings often mention cookies or retries).
    """
    text = stderr or ""
    errors = "\n".join(l for l in text.splitlines() if "ERROR" in l) or text
    for scope in (errors.lower(), text.lower()):
        for reason, needles in _PATTERNS:
            if any(n in scope for n in needles):
                return reason
    return "other"


def error_summary(stderr: str, limit: int = 300) -> str:
    """The last ``ERROR:`` line of a yt-dlp stderr (else its last line), on one line."""
    lines = [l.strip() for l in (stderr or "").splitlines() if l.strip()]
    err = [l for l in lines if l.startswith("ERROR")]
    msg = (err or lines or ["(no message)"])[-1]
    msg = " ".join(msg.split())
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


#: rate of the audio that :func:`validate_video` decodes to count its length
_COUNT_RATE = 1000


def validate_video(path: PathLike) -> float:
    """Check that ``path`` has a video track and an audio track that decodes to the end; return
    the audio's length in seconds.

    The audio is decoded (to a 1-kHz count) and the video packets are read (not decoded) by ffmpeg;
    a truncated file (cut mid-download) fails.

    Raises:
        VideoDecodeError (or NoAudioStreamError / NoVideoStreamError): naming the file.
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise VideoDecodeError(f"{path}: missing or empty file")
    proc = _run_ffmpeg(["-i", path, "-map", "0:v:0", "-c:v", "copy", "-f", "null", "-",
                        "-map", "0:a:0", "-ac", 1, "-ar", _COUNT_RATE, "-f", "u8", "pipe:1"],
                       path, "decode the download")
    return len(proc.stdout) / _COUNT_RATE


# --------------------------------------------------------------------------- one clip


@dataclass
class ClipResult:
    clip_id: str
    path: Optional[str] = None
    reason: Optional[str] = None  # None when obtained
    message: str = ""
    calls: int = 0  # yt-dlp invocations
    existed: bool = False


class Throttle:
    """Per-thread pause between consecutive calls (``wait()`` before each call)."""

    def __init__(self, interval: float = 0.0, max_interval: Optional[float] = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 rng: Optional[random.Random] = None):
        self.interval = max(0.0, float(interval or 0.0))
        self.max_interval = max_interval
        self.clock, self.sleep = clock, sleep
        self.rng = rng or random.Random()
        self._local = threading.local()

    def _gap(self) -> float:
        if self.max_interval is not None and self.max_interval > self.interval:
            return self.rng.uniform(self.interval, self.max_interval)
        return self.interval

    def wait(self) -> float:
        """Sleep until the gap since this thread's last call has passed; returns the sleep."""
        last = getattr(self._local, "last", None)
        slept = 0.0
        if last is not None:
            slept = max(0.0, self._gap() - (self.clock() - last))
            if slept > 0:
                self.sleep(slept)
        self._local.last = self.clock()
        return slept


def _tmp_dir(videos_dir: Path, clip_id: str) -> Path:
    return videos_dir / f".{clip_id}.tmp"


def download_one(item: DownloadItem, videos_dir: PathLike, opts: DownloadOptions,
                 throttle: Optional[Throttle] = None) -> ClipResult:
    """Fetch one clip into ``videos_dir/<clip_id>.mp4`` (skipped when it exists); never raises
    for a failed download -- the result carries the reason."""
    videos_dir = Path(videos_dir)
    final = videos_dir / f"{item.clip_id}.mp4"
    res = ClipResult(item.clip_id)
    if final.is_file():
        res.path, res.existed = str(final), True
        return res
    tmp = _tmp_dir(videos_dir, item.clip_id)
    broken_left = max(0, int(opts.retry_broken))
    transient_left = max(0, int(opts.retry_transient))
    wait = float(opts.retry_wait)
    try:
        while True:
            _fetch_once(item, tmp, opts, throttle, res)
            if res.reason is None:
                out = tmp / f"{item.clip_id}.mp4"
                out.chmod(0o644)
                os.replace(out, final)
                res.path = str(final)
                return res
            if res.reason == "broken" and broken_left:
                broken_left -= 1
            elif res.reason in TRANSIENT_REASONS and transient_left:
                transient_left -= 1
                time.sleep(wait)
                wait *= 2
            else:
                return res
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _fetch_once(item: DownloadItem, tmp: Path, opts: DownloadOptions, throttle: Optional[Throttle],
                res: ClipResult) -> None:
    """One yt-dlp call into the empty dir ``tmp`` and the check of its file; sets ``res.reason``
    (None: ``tmp/<clip_id>.mp4`` is good) and ``res.message``."""
    if tmp.exists():
        shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cmd = build_ytdlp_command(item, str(tmp / f"{item.clip_id}.%(ext)s"), opts)
    if throttle is not None:
        throttle.wait()
    res.calls += 1
    res.reason, res.message = None, ""
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              text=True, errors="replace", timeout=opts.timeout)
    except subprocess.TimeoutExpired:
        res.reason, res.message = "network", f"yt-dlp timed out after {opts.timeout} s"
        return
    except OSError as e:
        res.reason, res.message = "other", f"cannot run yt-dlp: {e}"
        return
    if proc.returncode < 0:
        res.reason = "interrupted"
        res.message = f"yt-dlp was killed by signal {-proc.returncode} (its partial file deleted)"
        return
    if proc.returncode != 0:
        res.reason = classify_error(proc.stderr)
        res.message = f"yt-dlp exit {proc.returncode}: {error_summary(proc.stderr or proc.stdout)}"
        return
    out = tmp / f"{item.clip_id}.mp4"
    if not out.is_file():
        made = sorted(p.name for p in tmp.iterdir())
        res.reason, res.message = "other", f"yt-dlp exited 0 but wrote no {out.name} (found: {made})"
        return
    if not opts.validate:
        return
    try:
        seconds = validate_video(out)
    except DiskFullError as e:
        res.reason, res.message = "disk-full", _one_line(e)
    except NoAudioStreamError as e:
        res.reason, res.message = "no-audio", f"the video has no audio stream: {_one_line(e)}"
    except NoVideoStreamError as e:
        res.reason, res.message = "no-video", f"the file has no video stream: {_one_line(e)}"
    except VideoDecodeError as e:
        res.reason, res.message = "broken", f"download failed mid-file (undecodable, deleted): {_one_line(e)}"
    else:
        if item.section is not None and seconds < MIN_SECTION_SECONDS:
            res.reason = "past-end"
            res.message = (f"the {_fmt_seconds(item.duration)}-s section from {_fmt_seconds(item.start)} s holds "
                           f"{seconds:.2f} s of audio: it starts past the end of the video")


def _one_line(e: Exception, limit: int = 300) -> str:
    return " ".join(str(e).split())[:limit]


# --------------------------------------------------------------------------- a whole list


@dataclass
class DownloadReport:
    requested: int = 0
    obtained: int = 0
    already_present: int = 0
    downloaded: int = 0
    missing: int = 0
    missing_by_reason: Dict[str, int] = field(default_factory=dict)
    ytdlp_calls: int = 0
    ytdlp_version: str = ""
    missing_ids: Dict[str, str] = field(default_factory=dict)  # clip_id -> reason
    errors: Dict[str, str] = field(default_factory=dict)  # clip_id -> last message

    def line(self) -> str:
        return format_missing_line(self.obtained, self.requested, self.missing_by_reason)


def format_missing_line(obtained: int, requested: int, by_reason: Mapping[str, int]) -> str:
    missing = requested - obtained
    parts = [f"{n} {r}" for r, n in sorted(by_reason.items(), key=lambda kv: _reason_order(kv[0])) if n]
    detail = f": {', '.join(parts)}" if parts and missing else ""
    return f"obtained {obtained}/{requested} videos ({missing} missing{detail})"


def _reason_order(r: str) -> int:
    return REASONS.index(r) if r in REASONS else len(REASONS)


def missing_report_line(report_path: PathLike) -> str:
    """One line for RESULTS.md from a ``download_report.json`` (or the dir holding it), e.g.
    ``obtained 41/46 videos (5 missing: 4 unavailable, 1 private)``."""
    report_path = Path(report_path)
    if report_path.is_dir():
        report_path = report_path / REPORT_NAME
    data = json.loads(report_path.read_text(encoding="utf-8"))
    return format_missing_line(int(data["obtained"]), int(data["requested"]), data.get("missing_by_reason", {}))


@dataclass
class _PreviousRun:
    """What an earlier run left in ``out_dir``: each missing clip's reason and last error message."""

    missing: Dict[str, str] = field(default_factory=dict)  # clip_id -> "reason ..."
    errors: Dict[str, str] = field(default_factory=dict)  # clip_id -> message

    @classmethod
    def read(cls, out_dir: Path, retry_missing: bool, log: Callable[[str], None]) -> "_PreviousRun":
        prev = cls()
        if (out_dir / "missing").is_file() and not retry_missing:
            try:
                prev.missing = read_scp(out_dir / "missing")
            except ValueError as e:
                log(f"download_youtube: warning: ignoring unreadable {out_dir / 'missing'}: {e}")
        if (out_dir / REPORT_NAME).is_file():
            try:
                prev.errors = json.loads((out_dir / REPORT_NAME).read_text(encoding="utf-8")).get("errors", {})
            except (ValueError, OSError):
                prev.errors = {}
        return prev

    def permanent_reason(self, clip_id: str) -> Optional[str]:
        """``unavailable`` / ``private`` when the earlier run found the clip gone for good."""
        reason = self.missing.get(clip_id, "").split(" ")[0]
        return reason if reason in PERMANENT_REASONS else None


def _triage(items: Sequence[DownloadItem], videos_dir: Path,
            previous: _PreviousRun) -> Tuple[Dict[str, ClipResult], List[DownloadItem]]:
    """Results of the clips settled before any download (already here, or gone for good) and the
    clips still to fetch; removes temporary dirs left by a killed run."""
    settled: Dict[str, ClipResult] = {}
    todo: List[DownloadItem] = []
    for it in items:
        final = videos_dir / f"{it.clip_id}.mp4"
        tmp = _tmp_dir(videos_dir, it.clip_id)
        if tmp.exists():  # left by a killed run
            shutil.rmtree(tmp, ignore_errors=True)
        reason = previous.permanent_reason(it.clip_id)
        if final.is_file():
            settled[it.clip_id] = ClipResult(it.clip_id, str(final), existed=True)
        elif reason is not None:
            settled[it.clip_id] = ClipResult(
                it.clip_id, reason=reason,
                message=previous.errors.get(it.clip_id, f"{reason} in an earlier run (--retry_missing to ask again)"))
        else:
            todo.append(it)
    return settled, todo


class _BotCheckGuard:
    """Counts bot checks in a row across worker threads: prints the cookies hint once and, with
    ``stop_after`` > 0, stops further requests after that many. A full disk stops them at once."""

    def __init__(self, stop_after: int, log: Callable[[str], None]):
        self.stop_after = stop_after
        self.log = log
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._in_a_row = 0
        self._hinted = False
        self._disk_full = False

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def not_attempted(self, clip_id: str) -> ClipResult:
        why = "the disk is full" if self._disk_full else f"{self.stop_after} bot checks in a row"
        return ClipResult(clip_id, reason="not-attempted", message=f"not attempted: stopped after {why}")

    def record(self, r: ClipResult) -> None:
        with self._lock:
            if r.reason == "disk-full":
                self._disk_full = True
                self._stopped.set()
            elif r.reason == "bot-check":
                self._in_a_row += 1
                if not self._hinted:
                    self._hinted = True
                    self.log(f"download_youtube: {r.clip_id}: {r.message}\ndownload_youtube: hint: {BOT_CHECK_HINT}")
                if self.stop_after and self._in_a_row >= self.stop_after:
                    self._stopped.set()
            elif r.reason is None:
                self._in_a_row = 0


def _download_in_parallel(todo: Sequence[DownloadItem], videos_dir: Path, opts: DownloadOptions, nj: int,
                          bar, results: Dict[str, ClipResult], log: Callable[[str], None]) -> None:
    """Fetch ``todo`` with ``nj`` threads into ``results``; a failing clip never stops the others."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    throttle = Throttle(opts.sleep_interval, opts.max_sleep_interval)
    guard = _BotCheckGuard(opts.stop_after_bot_checks, log)

    def work(it: DownloadItem) -> ClipResult:
        if guard.stopped:
            return guard.not_attempted(it.clip_id)
        try:
            r = download_one(it, videos_dir, opts, throttle)
        except Exception as e:  # never let one clip kill the run
            r = ClipResult(it.clip_id, reason="other", message=f"{type(e).__name__}: {e}")
        guard.record(r)
        return r

    workers = max(1, min(int(nj), len(todo))) if todo else 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(work, it) for it in todo]
        for fut in as_completed(futures):
            r = fut.result()
            results[r.clip_id] = r
            if bar is not None:
                bar.update()
                if r.reason:
                    bar.set_postfix_str(f"missing {sum(1 for x in results.values() if x.reason)}")


def _progress_bar(total: int, out_dir: Path, enabled: bool):
    if not (enabled and total):
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, desc=f"download {out_dir}", unit="video", file=sys.stderr,
                mininterval=0.5 if sys.stderr.isatty() else 10.0)


def _report(results: Mapping[str, ClipResult], requested: int, version: str) -> DownloadReport:
    missing = {c: r.reason for c, r in results.items() if r.reason is not None}
    by_reason: Dict[str, int] = {}
    for reason in missing.values():
        by_reason[reason] = by_reason.get(reason, 0) + 1
    obtained = len(results) - len(missing)
    already = sum(1 for r in results.values() if r.existed)
    return DownloadReport(
        requested=requested, obtained=obtained, already_present=already, downloaded=obtained - already,
        missing=len(missing),
        missing_by_reason=dict(sorted(by_reason.items(), key=lambda kv: _reason_order(kv[0]))),
        ytdlp_calls=sum(r.calls for r in results.values()), ytdlp_version=version,
        missing_ids=dict(sorted(missing.items())),
        errors={c: results[c].message for c in sorted(missing)},
    )


def download_all(
    items: Sequence[DownloadItem],
    out_dir: PathLike,
    opts: DownloadOptions,
    nj: int = 1,
    progress: bool = True,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
) -> DownloadReport:
    """Download ``items`` into ``out_dir`` and write ``video.scp``, ``missing`` and the report."""
    out_dir = Path(out_dir)
    videos_dir = out_dir / "videos"
    videos_dir.mkdir(parents=True, exist_ok=True)
    version = ytdlp_version(opts.ytdlp)
    results, todo = _triage(items, videos_dir, _PreviousRun.read(out_dir, opts.retry_missing, log))
    bar = _progress_bar(len(todo), out_dir, progress)
    _download_in_parallel(todo, videos_dir, opts, nj, bar, results, log)
    if bar is not None:
        bar.close()

    write_scp(out_dir / "video.scp", {c: r.path for c, r in results.items() if r.reason is None})
    write_scp(out_dir / "missing", {c: r.reason for c, r in results.items() if r.reason is not None})
    report = _report(results, len(items), version)
    write_text_atomic(out_dir / REPORT_NAME, json.dumps(asdict(report), indent=2, ensure_ascii=False) + "\n")
    return report
