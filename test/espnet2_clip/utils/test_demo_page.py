"""The demo page (espnet2_clip/utils/demo_page.py) and the inputs of ``espnet2-clip demo``
(espnet2_clip/utils/demo_inputs.py): what the site holds, that it is written all or nothing, that text
is escaped, and that it works in a real headless browser."""

import os

import numpy as np
import pytest
import soundfile as sf
from demo_page_helpers import check_site_in_browser, parse_page

from espnet2_clip.utils.demo_inputs import check_queries, read_prompts, read_separation_inputs
from espnet2_clip.utils.demo_page import (GENERATOR, DemoClip, DemoExample, DemoImage, DemoPage, DemoRow,
                                          DemoSection, check_site_dir, write_site)

SR = 16000
NASTY = 'a <b>"violin"</b> & <script>alert(1)</script>'


def tone(freq, seconds=1.0, channels=1):
    t = np.arange(int(SR * seconds)) / SR
    x = (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return x if channels == 1 else np.stack([x] * channels, 1)


@pytest.fixture
def page(tmp_path):
    """Two examples: a mixture with a reference file and two queries; a generation with a query image."""
    from PIL import Image

    sf.write(tmp_path / "ref.flac", tone(440), SR)
    Image.new("RGB", (40, 30), (10, 200, 10)).save(tmp_path / "query.png")
    sep = DemoExample("mix <1>", clips=[DemoClip("mixture", tone(440) + tone(880), SR)], rows=[
        DemoRow(NASTY, [DemoClip("estimate", tone(440), SR), DemoClip("reference", tmp_path / "ref.flac")]),
        DemoRow("a piano", [DemoClip("estimate", tone(880, channels=2), SR)]),
    ])
    gen = DemoExample("Prompt 1", query="a dog barking", images=[DemoImage("image query", tmp_path / "query.png")],
                      rows=[DemoRow("PD, w = 3", [DemoClip(f"seed {s}", tone(300 + s), SR) for s in range(2)])])
    return DemoPage("Demo & <test>", [DemoSection("Separation", [sep]), DemoSection("Generation", [gen])], ["n"])


def test_site_layout_media_and_escaping(page, tmp_path):
    index = write_site(page, tmp_path / "site")
    site = tmp_path / "site"
    assert index == site / "index.html"
    parsed = parse_page(site)
    assert parsed.examples == [{"audio": 4, "img": 4}, {"audio": 2, "img": 3}]
    assert parsed.scripts == 0 and parsed.external == []  # offline: nothing from elsewhere
    assert parsed.headings == [NASTY, "a piano", "PD, w = 3"]
    assert sorted(p.name for p in (site / "audio").iterdir()) == sorted(s.split("/")[1] for s in parsed.audio)
    assert all((site / src).is_file() for src in parsed.audio + parsed.images)
    text = index.read_text(encoding="utf-8")
    assert "<script>" not in text and "<b>" not in text
    assert "a &lt;b&gt;&quot;violin&quot;&lt;/b&gt; &amp; &lt;script&gt;" in text
    assert "<title>Demo &amp; &lt;test&gt;</title>" in text and f'content="{GENERATOR}"' in text
    # the audio is what was given: 16-bit PCM of the samples (the reference read from its file), channels kept
    est, fs = sf.read(site / parsed.audio[1])
    assert fs == SR and sf.info(str(site / parsed.audio[1])).subtype == "PCM_16"
    np.testing.assert_allclose(est, tone(440), atol=1 / 32768 + 1e-6)
    ref, _ = sf.read(site / parsed.audio[2])
    np.testing.assert_allclose(ref, tone(440), atol=1 / 2**15)
    assert sf.read(site / parsed.audio[3])[0].shape == (SR, 2)
    assert (site / parsed.images[0]).read_bytes()[:4] == b"\x89PNG"
    assert (site / parsed.images[4]).read_bytes() == (tmp_path / "query.png").read_bytes()  # the query image


def test_a_clip_above_full_scale_is_scaled_down_not_clipped(tmp_path):
    loud = 5 * tone(440)  # peaks at 2.0, as a strongly guided generation can
    page = DemoPage("loud", [DemoSection("Generation", [DemoExample("Prompt", rows=[DemoRow("w = 5", [
        DemoClip("loud", loud, SR), DemoClip("fine", tone(440), SR)])])])], [])
    site = tmp_path / "site"
    text = write_site(page, site).read_text(encoding="utf-8")
    parsed = parse_page(site)
    written, _ = sf.read(site / parsed.audio[0])
    assert np.abs(written).max() == pytest.approx(0.99, abs=1 / 2**15)
    np.testing.assert_allclose(written, loud * 0.99 / 2.0, atol=1 / 2**15)  # the waveform's shape is kept
    np.testing.assert_allclose(sf.read(site / parsed.audio[1])[0], tone(440), atol=1 / 2**15)  # within range: as given
    assert text.count("scaled by") == 1 and "(scaled by -6.1 dB: it peaked above full scale)" in text


def test_max_seconds_cuts_every_clip(page, tmp_path):
    write_site(page, tmp_path / "site", max_seconds=0.25)
    for src in parse_page(tmp_path / "site").audio:
        assert sf.info(str(tmp_path / "site" / src)).frames == SR // 4


def test_rerun_replaces_the_site_and_other_dirs_are_refused(page, tmp_path):
    site = tmp_path / "site"
    write_site(page, site)
    (site / "audio" / "stale.wav").write_bytes(b"old")
    page.sections = page.sections[:1]
    write_site(page, site)
    assert not (site / "audio" / "stale.wav").exists() and len(parse_page(site).examples) == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no build dirs left
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"-o '.*mine': a non-empty directory that is not a demo site"):
        write_site(page, other)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="exists and is not a directory"):
        check_site_dir(tmp_path / "file")
    with pytest.raises(ValueError, match=r"directory '.*nope' does not exist"):
        check_site_dir(tmp_path / "nope" / "site")


def test_a_failure_leaves_no_partial_site_and_keeps_the_old_one(page, tmp_path):
    site = tmp_path / "site"
    bad = DemoExample("bad", clips=[DemoClip("mixture", np.full(SR, np.nan, np.float32), SR)])
    with pytest.raises(ValueError, match="demo clip 'mixture': NaN or Inf"):
        write_site(DemoPage("x", [DemoSection("s", [bad])]), site)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["query.png", "ref.flac"]
    write_site(page, site)
    before = (site / "index.html").read_text()
    missing = DemoExample("m", clips=[DemoClip("reference", tmp_path / "gone.wav")])
    with pytest.raises(ValueError, match=r"demo clip 'reference' '.*gone.wav': no such file"):
        write_site(DemoPage("x", [DemoSection("s", [missing])]), site)
    assert (site / "index.html").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["query.png", "ref.flac", "site"]
    with pytest.raises(ValueError, match="no examples"):
        write_site(DemoPage("x", [DemoSection("s", [])]), tmp_path / "empty")


def test_output_dir_not_writable(page, tmp_path):
    if os.geteuid() == 0:
        target = "/sys/fs/site"  # root writes through permission bits: a directory no one can write to
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        target = str(ro / "site")
    with pytest.raises(ValueError, match=r"-o '.*site': directory '.*' is not writable"):
        write_site(page, target)


def test_the_page_plays_in_a_headless_browser(page, tmp_path):
    write_site(page, tmp_path / "site")
    result = check_site_in_browser(tmp_path / "site", tmp_path / "profile")
    assert len(result["audio"]) == 6 and len(result["images"]) == 7
    assert all(a["readyState"] >= 3 and abs(a["duration"] - 1.0) < 0.01 for a in result["audio"])
    assert NASTY in result["text"] and "a dog barking" in result["text"]  # shown as text, not markup


def test_the_browser_check_catches_broken_media_and_console_errors(page, tmp_path):
    """The browser check is not vacuous: an undecodable audio file or a console error fails it."""
    site = tmp_path / "site"
    write_site(page, site)
    broken = sorted((site / "audio").iterdir())[0]
    broken.write_bytes(b"RIFF" + b"\0" * 60)
    with pytest.raises(AssertionError):
        check_site_in_browser(site, tmp_path / "profile1")
    write_site(page, site)
    index = site / "index.html"
    index.write_text(index.read_text().replace("</body>", '<img src="img/missing.png"></body>'))
    with pytest.raises(AssertionError, match="SEVERE"):
        check_site_in_browser(site, tmp_path / "profile2")


# ------------------------------------------------------------------------------------------ inputs
def test_separation_inputs(tmp_path):
    sf.write(tmp_path / "b.wav", tone(440), SR)
    sf.write(tmp_path / "a.flac", tone(440), SR)
    (tmp_path / "refs").mkdir()
    sf.write(tmp_path / "refs" / "a_violin.wav", tone(440), SR)
    sf.write(tmp_path / "ref_b.wav", tone(440), SR)  # a reference in DIR itself is not an example
    (tmp_path / ".hidden").write_text("x")
    (tmp_path / "queries.tsv").write_text(
        "# file\tquery\treference\n\na.flac\ta violin\trefs/a_violin.wav\na.flac\t a piano \nb.wav\tdrums\tref_b.wav\n")
    items = read_separation_inputs(str(tmp_path), ["everything"])
    assert [i.path.name for i in items] == ["a.flac", "b.wav"]
    assert items[0].queries == [("everything", None), ("a violin", tmp_path / "refs" / "a_violin.wav"),
                                ("a piano", None)]
    assert items[1].queries == [("everything", None), ("drums", tmp_path / "ref_b.wav")]
    check_queries(items, True, "m")
    with pytest.raises(ValueError, match=r"non-queried \(PIT\) model takes no queries"):
        check_queries(items, False, "m")


@pytest.mark.parametrize("files,tsv,queries,error", [
    ({}, None, ["x"], r"--inputs '.*': no audio or video files; expected audio \(wav"),
    ({"a.wav": 1, "notes.doc": 0}, None, ["x"], r"--inputs '.*notes.doc': unknown file type '.doc'"),
    ({"a.wav": 1, "README": 0}, None, ["x"], r"unknown file type 'README'"),
    ({"a.wav": 1}, "a.wav a violin\n", [], r"queries.tsv:1: expected 'FILE<TAB>QUERY'"),
    ({"a.wav": 1}, "b.wav\tx\n", [], r"queries.tsv:1: 'b.wav' is not an audio or video file"),
    ({"a.wav": 1}, "a.wav\t  \n", [], r"queries.tsv:1: empty or whitespace-only query"),
    ({"a.wav": 1}, "a.wav\tx\tnope.wav\n", [], r"queries.tsv:1: reference '.*nope.wav': no such file"),
    ({"a.wav": 1}, None, [" "], r"-q: empty or whitespace-only"),
])
def test_bad_separation_inputs(tmp_path, files, tsv, queries, error):
    for name, is_audio in files.items():
        if is_audio:
            sf.write(tmp_path / name, tone(440), SR)
        else:
            (tmp_path / name).write_text("text")
    if tsv is not None:
        (tmp_path / "queries.tsv").write_text(tsv)
    with pytest.raises(ValueError, match=error) as info:
        read_separation_inputs(str(tmp_path), queries)
    assert "\n" not in str(info.value)


def test_missing_query_and_missing_dir(tmp_path):
    sf.write(tmp_path / "a.wav", tone(440), SR)
    items = read_separation_inputs(str(tmp_path))
    with pytest.raises(ValueError, match=r"a.wav': no query; give -q TEXT or a line 'a.wav<TAB>QUERY'"):
        check_queries(items, True, "m")
    with pytest.raises(ValueError, match=r"--inputs '.*nope': no such directory"):
        read_separation_inputs(str(tmp_path / "nope"), ["x"])
    with pytest.raises(ValueError, match=r"--inputs: required for a CLIPSep model"):
        read_separation_inputs(None, ["x"])


def test_prompts(tmp_path):
    assert read_prompts(None, ["a dog"]) == ["a dog"]
    (tmp_path / "prompts.txt").write_text("# prompts\nrain on a roof\n\n  a cat meowing \n")
    assert read_prompts(str(tmp_path), ["a dog"]) == ["a dog", "rain on a roof", "a cat meowing"]
    with pytest.raises(ValueError, match="no prompt: give -q TEXT"):
        read_prompts(None, [])
    sf.write(tmp_path / "a.wav", tone(440), SR)
    with pytest.raises(ValueError, match=r"a.wav': a CLIPSonic model takes text prompts"):
        read_prompts(str(tmp_path), [])


def test_browser_tests_skip_without_a_browser_unless_required(monkeypatch):
    import demo_page_helpers

    monkeypatch.setattr(demo_page_helpers, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.delenv(demo_page_helpers.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs /nonexistent/chromium"):
        demo_page_helpers.require_browser()
    monkeypatch.setenv(demo_page_helpers.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="ESPNET2_CLIP_REQUIRE_BROWSER=1 but"):
        demo_page_helpers.require_browser()
