#!/usr/bin/env python3
"""A stand-in for yt-dlp that serves a rehearsal corpus (espnet2_clip.data.rehearsal) offline.

Takes yt-dlp's command line as ``download_youtube`` writes it (``-o TEMPLATE``, ``--download-sections
"*a-b"``, ``--remux-video mp4``, ``-- URL``) and cuts the section out of the corpus's stored video
with ffmpeg (stream copy, as yt-dlp does without ``--force-keyframes-at-cuts``), or plays the video's
fault (``manifest.json``; see ``FAULTS``). Calls per id are counted in ``CORPUS/state/`` (faults that
pass after a few calls); each call appends a JSON line to ``CORPUS/state/calls.jsonl``.

    python -m espnet2_clip.bin.rehearsal_ytdlp --corpus DIR [yt-dlp options] -- URL
"""

import json
import os
import signal
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

#: yt-dlp options that take a value (the rest are flags)
_WITH_VALUE = {"-o", "-f", "--download-sections", "--cookies", "--cookies-from-browser", "--limit-rate",
               "--retries", "--socket-timeout", "--ffmpeg-location", "--merge-output-format", "--remux-video",
               "--sleep-interval", "--corpus"}
THROTTLED_CALLS = 2


def parse(argv: List[str]) -> Tuple[Dict[str, str], Optional[str]]:
    opts: Dict[str, str] = {}
    url = None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            url = argv[i + 1] if i + 1 < len(argv) else None
            break
        if a in _WITH_VALUE and i + 1 < len(argv):
            opts[a] = argv[i + 1]
            i += 2
            continue
        if not a.startswith("-"):
            url = a
        i += 1
    return opts, url


def count_call(state: Path, ytid: str) -> int:
    """This id's call number (1 for the first call)."""
    state.mkdir(parents=True, exist_ok=True)
    counter = state / f"{ytid}.calls"
    n = int(counter.read_text()) + 1 if counter.is_file() else 1
    counter.write_text(str(n))
    return n


def fail(ytid: str, message: str) -> int:
    print(f"[youtube] {ytid}: Downloading webpage")
    print(f"ERROR: [youtube] {ytid}: {message}", file=sys.stderr)
    return 1


def cut(src: Path, out: Path, section: Optional[str], container: str, ffmpeg: Optional[str]) -> None:
    """The section ``*a-b`` of ``src`` (whole when None) into ``out``, streams copied."""
    if ffmpeg:
        os.environ["ESPNET2_CLIP_FFMPEG"] = ffmpeg
    from espnet2_clip.data.video import _run_ffmpeg

    args: List = []
    if section:
        a, b = (float(x) for x in section.lstrip("*").split("-"))
        args += ["-ss", a, "-t", b - a]
    fmt = {"mkv": "matroska"}.get(container, container)
    _run_ffmpeg([*args, "-i", src, "-map", "0", "-c", "copy", "-f", fmt, out], src, "cut the section")


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--version" in argv:
        print("rehearsal")
        return 0
    opts, url = parse(argv)
    corpus = Path(opts.get("--corpus", os.environ.get("REHEARSAL_CORPUS", "")))
    if not (corpus / "manifest.json").is_file():
        print(f"rehearsal yt-dlp: {corpus}/manifest.json not found (--corpus DIR)", file=sys.stderr)
        return 2
    if not url or "-o" not in opts:
        print("Usage: yt-dlp [OPTIONS] URL [URL...]\n\nyt-dlp: error: missing URL or -o", file=sys.stderr)
        return 2
    ytid = url.split("v=", 1)[-1]
    state = corpus / "state"
    call = count_call(state, ytid)
    with open(state / "calls.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"id": ytid, "call": call, "argv": argv}) + "\n")
    videos = {v["ytid"]: v for v in json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))["videos"]}
    video = videos.get(ytid)
    fault = video["fault"] if video else "unavailable"
    if fault == "unavailable":
        return fail(ytid, "Video unavailable. This video is not available")
    if fault == "private":
        return fail(ytid, "Private video. Sign in if you've been granted access to this video")
    if fault == "removed":
        return fail(ytid, "Video unavailable. This video has been removed for violating YouTube's Terms of Service")
    if fault == "throttled" and call <= THROTTLED_CALLS:
        return fail(ytid, "Unable to download webpage: HTTP Error 429: Too Many Requests (caused by <HTTPError 429>)")
    container = opts.get("--remux-video") or opts.get("--merge-output-format") or video["container"]
    out = Path(opts["-o"].replace("%(id)s", ytid).replace("%(ext)s", container))
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"[youtube] {ytid}: Downloading webpage")
    print(f"[download] Destination: {out}")
    if fault == "zero_byte":
        out.write_bytes(b"")
        return 0
    if fault == "corrupt":
        out.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4096))
        return 0
    section = None if video["split"] == "music_test" else opts.get("--download-sections")
    cut(corpus / "store" / f"{ytid}.{video['container']}", out, section, container, opts.get("--ffmpeg-location"))
    if fault == "killed" and call == 1:
        data = out.read_bytes()
        out.write_bytes(data[: len(data) // 2])
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
