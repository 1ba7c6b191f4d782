"""Download the YouTube videos of a clip list with yt-dlp (resumable, parallel, skip-and-count).

Usage::

    python -m espnet2_clip.bin.download_youtube --ids IDS --output_dir DIR [options]
    python -m espnet2_clip.bin.download_youtube --from_vggsound_csv vggsound.csv --split test --output_dir DIR
    python -m espnet2_clip.bin.download_youtube --from_music_json MUSIC_solo_videos.json --output_dir DIR

``IDS`` lines are ``clip_id ytid [start_seconds duration_seconds]``. The converters write that list
(to ``--ids``, default ``DIR/ids``) and ``DIR/label`` (``clip_id label``, every requested clip), then
download (``--convert_only`` stops after writing them).

Outputs in ``DIR``: ``videos/<clip_id>.mp4``, ``video.scp``, ``missing`` (``clip_id reason``) and
``download_report.json``; see :mod:`espnet2_clip.data.download`. A dead, private or bot-checked
video is skipped and counted; a throttled (HTTP 429) or interrupted call is retried after a wait. Exit status: 0; 1 on a bad list / missing yt-dlp, or when nothing
at all was obtained from a non-empty list; 1 too with ``--strict`` when anything is missing.
"""

import argparse
import errno
import os
import sys
from pathlib import Path
from typing import List, Optional

from espnet2_clip.data.download import (
    BOT_CHECK_HINT,
    DEFAULT_FORMAT,
    DownloadOptions,
    YtDlpNotFoundError,
    download_all,
    find_ytdlp,
    items_from_music_json,
    items_from_vggsound_csv,
    read_id_list,
    write_id_list,
)
from espnet2_clip.data.lists import ListFormatError
from espnet2_clip.utils.cli import OUTPUT_DIR_ALIASES, parse_args
from espnet2_clip.utils.fileio import write_scp

PROG = "download_youtube"


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"python -m espnet2_clip.bin.{PROG}",
        description="Download YouTube videos for a clip list with yt-dlp",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("input")
    g.add_argument("--ids", default=None,
                   help="id list 'clip_id ytid [start duration]' (written there by the converters; "
                        "default DIR/ids for them)")
    g.add_argument("--from_vggsound_csv", default=None, help="make the id list from vggsound.csv")
    g.add_argument("--split", default="test", help="vggsound.csv split to take ('all' for every row)")
    g.add_argument("--clip_duration", type=float, default=10.0, help="VGGSound window length (s)")
    g.add_argument("--from_music_json", default=None,
                   help="make the id list from a MUSIC json ({'videos': {label: [ytid, ...]}})")
    g.add_argument("--convert_only", action="store_true", help="write ids + label and stop")
    g.add_argument("--output_dir", required=True, help="output dir (videos/, video.scp, missing, report)")

    g = p.add_argument_group("yt-dlp")
    g.add_argument("--ytdlp", default=None,
                   help="yt-dlp executable (default: $ESPNET2_CLIP_YTDLP, else yt-dlp on PATH)")
    g.add_argument("--format", default=DEFAULT_FORMAT, help="yt-dlp -f format selection (needs audio)")
    sec = g.add_mutually_exclusive_group()
    sec.add_argument("--sections", dest="sections", action="store_true", default=True,
                     help="download only [start, start+duration] of rows that give them "
                          "(yt-dlp --download-sections)")
    sec.add_argument("--no_sections", dest="sections", action="store_false",
                     help="download whole videos even when the list gives a window")
    g.add_argument("--force_keyframes_at_cuts", action="store_true",
                   help="re-encode at the cuts for frame-exact windows (slower)")
    g.add_argument("--cookies", default=None, help="Netscape cookies.txt passed to yt-dlp --cookies")
    g.add_argument("--cookies_from_browser", default=None,
                   help="passed to yt-dlp --cookies-from-browser (e.g. firefox, chrome:Profile 1)")
    g.add_argument("--limit_rate", default=None, help="yt-dlp --limit-rate, e.g. 2M")
    g.add_argument("--retries", type=int, default=None, help="yt-dlp --retries")
    g.add_argument("--socket_timeout", type=float, default=30.0, help="yt-dlp --socket-timeout (s)")
    g.add_argument("--ffmpeg_location", default=None,
                   help="yt-dlp --ffmpeg-location (default: the ffmpeg espnet2_clip uses)")
    g.add_argument("--ytdlp_args", default="",
                   help="extra yt-dlp arguments, one string (split like a shell would)")
    g.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per yt-dlp call")

    g = p.add_argument_group("run")
    g.add_argument("--nj", type=int, default=1, help="parallel downloads (YouTube throttles; keep small)")
    g.add_argument("--sleep_interval", type=float, default=0.0,
                   help="per-worker pause (s) between two yt-dlp calls")
    g.add_argument("--max_sleep_interval", type=float, default=None,
                   help="if given, the pause is drawn uniformly from [sleep_interval, this]")
    g.add_argument("--retry_broken", type=int, default=1,
                   help="re-downloads of a file that fails the decode check (cut mid-file)")
    g.add_argument("--retry_transient", type=int, default=2,
                   help="in-run retries of a call that was throttled (HTTP 429), hit a network error or was killed")
    g.add_argument("--retry_wait", type=float, default=10.0,
                   help="seconds before the first such retry (doubled at each next one)")
    g.add_argument("--no_validate", action="store_true", help="skip the ffmpeg decode check")
    g.add_argument("--retry_missing", action="store_true",
                   help="ask again for clips an earlier run found unavailable / private")
    g.add_argument("--stop_after_bot_checks", type=int, default=0,
                   help="stop asking after this many bot checks in a row (0: never); the rest is "
                        "listed as not-attempted and tried on the next run")
    g.add_argument("--strict", action="store_true", help="exit 1 if any clip is missing")
    g.add_argument("--no_progress", action="store_true", help="no progress bar")
    return p


def _err(msg: str) -> int:
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    return 1


def main(argv: Optional[List[str]] = None) -> int:
    import shlex

    parser = get_parser()
    args = parse_args(parser, argv, OUTPUT_DIR_ALIASES)
    out_dir = Path(args.output_dir)
    if args.from_vggsound_csv and args.from_music_json:
        parser.error("give at most one of --from_vggsound_csv / --from_music_json")
    try:
        if args.from_vggsound_csv or args.from_music_json:
            if args.from_vggsound_csv:
                items, labels = items_from_vggsound_csv(
                    args.from_vggsound_csv, split=args.split, duration=args.clip_duration)
                src = f"{args.from_vggsound_csv} (split {args.split})"
            else:
                items, labels = items_from_music_json(args.from_music_json)
                src = args.from_music_json
            ids_path = Path(args.ids) if args.ids else out_dir / "ids"
            write_id_list(ids_path, items)
            write_scp(out_dir / "label", labels)
            print(f"{PROG}: {src}: {len(items)} clips -> {ids_path}, {out_dir / 'label'}", file=sys.stderr)
            if args.convert_only:
                return 0
        elif args.ids:
            items = read_id_list(args.ids)
        else:
            parser.error("give --ids, --from_vggsound_csv or --from_music_json")
    except (FileNotFoundError, ListFormatError) as e:
        return _err(str(e))

    try:
        exe = find_ytdlp(args.ytdlp)
    except YtDlpNotFoundError as e:
        return _err(str(e))
    for name in ("cookies",):
        value = getattr(args, name)
        if value and not os.path.isfile(value):
            return _err(f"--{name} {value}: no such file")
    opts = DownloadOptions(
        ytdlp=exe, format=args.format, sections=args.sections,
        force_keyframes_at_cuts=args.force_keyframes_at_cuts, cookies=args.cookies,
        cookies_from_browser=args.cookies_from_browser, limit_rate=args.limit_rate,
        retries=args.retries, socket_timeout=args.socket_timeout,
        ffmpeg_location=args.ffmpeg_location, extra_args=shlex.split(args.ytdlp_args),
        sleep_interval=args.sleep_interval, max_sleep_interval=args.max_sleep_interval,
        timeout=args.timeout, retry_broken=args.retry_broken, retry_transient=args.retry_transient,
        retry_wait=args.retry_wait, validate=not args.no_validate,
        retry_missing=args.retry_missing, stop_after_bot_checks=args.stop_after_bot_checks,
    )
    try:
        report = download_all(items, out_dir, opts, nj=args.nj, progress=not args.no_progress)
    except YtDlpNotFoundError as e:
        return _err(str(e))
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        return _err(f"no space left on device under {out_dir} ({e}); free some space and rerun (finished clips are kept)")

    for clip_id, reason in report.missing_ids.items():
        print(f"{PROG}: missing {clip_id} ({reason}): {report.errors.get(clip_id, '')}", file=sys.stderr)
    if report.missing_by_reason.get("disk-full"):
        return _err(f"no space left on device under {out_dir}: the run stopped there; free some space and rerun "
                    "(finished clips are kept, the rest is asked for again)")
    if report.missing_by_reason.get("not-attempted"):
        print(f"{PROG}: hint: {BOT_CHECK_HINT}", file=sys.stderr)
    print(f"{PROG}: {out_dir}: {report.line()}; {report.downloaded} downloaded now, "
          f"{report.already_present} already there; yt-dlp {report.ytdlp_version}, "
          f"{report.ytdlp_calls} call(s) -> {out_dir / 'video.scp'}, {out_dir / 'missing'}",
          file=sys.stderr)
    if items and not report.obtained:
        return _err("no video obtained")
    if args.strict and report.missing:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
