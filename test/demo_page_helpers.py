"""Checks of a demo site shared by the demo-page tests: what its index.html holds (:func:`parse_page`)
and how it behaves in a real headless browser (:func:`check_site_in_browser`: Debian's Chromium driven
by selenium, the site served over http://127.0.0.1 by a threaded ``http.server``; a ``file://`` page
may not play media).

Without ``/usr/bin/chromium``, ``/usr/bin/chromedriver`` or selenium the tests skip, saying what is
missing, unless ``ESPNET2_CLIP_REQUIRE_BROWSER=1`` (CI): then they fail. Nothing touches the network:
the driver path is given (no selenium-manager download), and Chromium's background networking,
component updates and sync are off.
"""

import contextlib
import functools
import html.parser
import http.server
import importlib.util
import os
import threading
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REQUIRE_ENV = "ESPNET2_CLIP_REQUIRE_BROWSER"
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--autoplay-policy=no-user-gesture-required")

# Resolves with one record per <audio>: it must reach readyState >= 3 (HAVE_FUTURE_DATA, "canplay")
# without a media error, and its play() promise must resolve.
_PLAY_EVERY_AUDIO = """
const done = arguments[arguments.length - 1];
const audios = Array.from(document.querySelectorAll('audio'));
Promise.all(audios.map((a) => new Promise((resolve) => {
  let settled = false;
  const finish = (ok, why) => {
    if (settled) return;
    settled = true;
    resolve({src: a.getAttribute('src'), ok: ok, why: why, readyState: a.readyState,
             duration: a.duration, error: a.error ? a.error.code : null});
  };
  const play = () => {
    const ready = a.readyState;
    a.play().then(() => { a.pause(); finish(ready >= 3, 'played at readyState ' + ready); },
                  (e) => finish(false, 'play() rejected: ' + e.name + ': ' + e.message));
  };
  if (a.error) { finish(false, 'media error ' + a.error.code); return; }
  a.addEventListener('error', () => finish(false, 'media error ' + (a.error ? a.error.code : '?')));
  if (a.readyState >= 3) { play(); } else { a.addEventListener('canplay', play, {once: true}); }
}))).then(done);
"""


class PageParser(html.parser.HTMLParser):
    """What a demo page holds: per example (``<article>``) its audio players and images, every
    media ``src``, the row headings, scripts, and links that leave the site."""

    def __init__(self):
        super().__init__()
        self.examples: List[Dict[str, int]] = []
        self.audio: List[str] = []
        self.images: List[str] = []
        self.headings: List[str] = []
        self.scripts = 0
        self.external: List[str] = []
        self._in_heading = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "article":
            self.examples.append({"audio": 0, "img": 0})
        elif tag in ("audio", "img"):
            self.examples[-1][tag] += 1
            (self.audio if tag == "audio" else self.images).append(attrs["src"])
        elif tag == "script":
            self.scripts += 1
        elif tag == "div" and attrs.get("class") == "heading":
            self._in_heading = True
            self.headings.append("")
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            if value.startswith("/") or ("://" in value) or (value and ":" in value.split("/")[0]
                                                               and not value.startswith("data:")):
                self.external.append(value)

    def handle_endtag(self, tag):
        if tag == "div":
            self._in_heading = False

    def handle_data(self, data):
        if self._in_heading:
            self.headings[-1] += data


def parse_page(site: Path) -> PageParser:
    """The parsed ``site/index.html``."""
    parser = PageParser()
    parser.feed((site / "index.html").read_text(encoding="utf-8"))
    return parser


def require_browser() -> None:
    """Skip (or fail with ``ESPNET2_CLIP_REQUIRE_BROWSER=1``) when the browser or selenium is missing."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if importlib.util.find_spec("selenium") is None:
        missing.append("the selenium package (pip install selenium)")
    if not missing:
        return
    reason = (f"headless browser test needs {', '.join(missing)} "
              "(apt-get install -y chromium chromium-driver; pip install selenium)")
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {reason}")
    pytest.skip(reason)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """``http://127.0.0.1:<free port>/`` serving ``directory`` from a thread."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextlib.contextmanager
def chromium(profile_dir: Path):
    """A headless Chromium WebDriver with a fresh profile that keeps the browser console log."""
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_script_timeout(120)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def check_site_in_browser(site: Path, profile_dir: Path) -> Dict[str, object]:
    """Open ``site/index.html`` over HTTP; assert no SEVERE console entry, every <audio> plays and
    every <img> decoded. Returns the page's ``text`` and its ``audio`` / ``images`` records."""
    with serve(site) as url, chromium(profile_dir) as driver:
        driver.get(url + "index.html")
        audio: List[dict] = driver.execute_async_script(_PLAY_EVERY_AUDIO)
        images = driver.execute_script(
            "return Array.from(document.images).map(i => ({src: i.getAttribute('src'), complete: i.complete, "
            "width: i.naturalWidth}));")
        text = driver.execute_script("return document.body.innerText;")
        log = driver.get_log("browser")
    severe = [entry for entry in log if entry.get("level") == "SEVERE"]
    assert not severe, severe
    assert audio, "no <audio> element on the page"
    bad = [a for a in audio if not a["ok"] or a["error"] is not None]
    assert not bad, bad
    assert images and all(i["complete"] and i["width"] > 0 for i in images), images
    return {"text": text, "audio": audio, "images": images, "log": log}
