"""A recipe's demo page from its decodes (espnet2_clip/bin/demo_page.py) and the templates' demo
stages (clipsep.sh stage 13, clipsonic.sh stage 11) on a recipe layout written here."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from demo_page_helpers import check_site_in_browser, parse_page

from espnet2_clip.bin import demo_page

REPO = Path(__file__).resolve().parents[3]
SR = 16000
QUERY = 'a <i>cat</i> & "dog"'


def _wav(path: Path, freq: float, seconds: float = 0.5) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(SR * seconds)) / SR
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR)
    return str(path)


def _scp(path: Path, table: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k} {v}\n" for k, v in sorted(table.items())))


@pytest.fixture
def sep_recipe(tmp_path):
    """dump/test_mix (6 mixtures, text, references, 2-frame image queries) and the decodes of
    clipsep (text and image queries; the image decode lacks m2) and pit (two outputs, oracle selection)."""
    from PIL import Image

    root = tmp_path / "recipe"
    test = root / "dump" / "test_mix"
    ids = [f"m{i}" for i in range(6)]
    frames = {}
    for i, u in enumerate(ids):
        paths = []
        for j in range(2):
            path = test / "frames" / f"{u} frame{j}.png"  # a space: the value lists shell-quoted paths
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (24, 24), (40 * i, 100 * j, 50)).save(path)
            paths.append(f"'{path}'")
        frames[u] = " ".join(paths)
    _scp(test / "wav.scp", {u: _wav(test / "wav" / f"{u}.wav", 200 + 50 * i) for i, u in enumerate(ids)})
    _scp(test / "spk1.scp", {u: _wav(test / "ref" / f"{u}.wav", 300 + 50 * i) for i, u in enumerate(ids)})
    _scp(test / "text", {u: QUERY if u == "m0" else f"class {u}" for u in ids})
    _scp(test / "query_image.scp", frames)
    exp = root / "exp"
    for tag, kind, keep in (("clipsep", "text", ids), ("clipsep", "image", [u for u in ids if u != "m2"]),
                            ("pit", "none", ids)):
        decode = exp / tag / f"decode_{kind}" / "test_mix"
        for k in range(2 if kind == "none" else 1):
            _scp(decode / f"spk{k + 1}.scp", {u: _wav(decode / "wav" / f"{u}_spk{k + 1}.wav", 500 + 10 * k) for u in keep})
        _scp(decode / "scoring" / "SDR_spk1", {u: f"{7.25 + i:.6f}" for i, u in enumerate(keep)})
        if kind == "none":
            _scp(decode / "scoring" / "selected", {u: "spk2" for u in keep})
    (root / "conf").mkdir(exist_ok=True)
    for tag in ("clipsep", "pit"):
        (root / "conf" / f"train_{tag}.yaml").write_text("{}\n")
    return root


@pytest.fixture
def gen_recipe(tmp_path):
    """dump/gen (3 classes x 3 text queries, 2 image queries) and clipsonic_iq's IQ / ZS / PD clips at
    w = 3 (ZS also at w = 1) and clipsonic_sd's SD clips."""
    from PIL import Image

    root = tmp_path / "recipe"
    gen = root / "dump" / "gen"
    classes = ["circle", "square", "triangle"]
    text = {f"{c:03d}_{i:02d}": name for c, name in enumerate(classes) for i in range(3)}
    _scp(gen / "text" / "text", text)
    _scp(gen / "text" / "label", text)
    (gen / "classes").write_text("".join(f"{c}\n" for c in classes))
    images = {"t0": "circle", "t1": "square"}
    _scp(gen / "image" / "label", images)
    for key in images:
        Image.new("RGB", (24, 24), (200, 10, 10)).save(gen / "image" / f"{key}.png")
    _scp(gen / "image" / "query_image.scp", {k: str(gen / "image" / f"{k}.png") for k in images})
    exp = root / "exp"
    for tag, variant, w, table in (("clipsonic_iq", "iq", "3", images), ("clipsonic_iq", "zs", "3", text),
                                   ("clipsonic_iq", "pd", "3", text), ("clipsonic_iq", "zs", "1", text),
                                   ("clipsonic_sd", "sd", "3", text)):
        out = exp / tag / f"gen_{variant}_w{w}"
        _scp(out / "wav.scp", {k: _wav(out / "wav" / f"{k}.wav", 300 + 7 * n) for n, k in enumerate(sorted(table))})
    (root / "conf").mkdir(exist_ok=True)
    for tag in ("clipsonic_iq", "clipsonic_sd"):
        (root / "conf" / f"train_{tag}.yaml").write_text("{}\n")
    return root


def _captions(site: Path) -> str:
    return (site / "index.html").read_text(encoding="utf-8")


def test_separation_page_from_decodes(sep_recipe, capsys):
    site = sep_recipe / "exp" / "demo"
    code = demo_page.main(["separation", "--exp_dir", str(sep_recipe / "exp"), "--dump_dir", str(sep_recipe / "dump"),
                           "--tags", "clipsep pit", "--test_sets", "test_mix:Clean+ test_other", "--num_examples", "3",
                           "--output_dir", str(site)])
    assert code == 0, capsys.readouterr().err
    page = parse_page(site)
    # m0, m2, m4 (spread over 6): mixture + reference, clipsep text, clipsep image (+ its query image;
    # none for m2), PIT's two outputs
    assert page.examples == [{"audio": 6, "img": 7}, {"audio": 5, "img": 5}, {"audio": 6, "img": 7}]
    assert page.headings == ["CLIPSep (text-queried)", "CLIPSep (image-queried)", "PIT (non-queried, oracle selection)"] \
        + ["CLIPSep (text-queried)", "PIT (non-queried, oracle selection)"] \
        + ["CLIPSep (text-queried)", "CLIPSep (image-queried)", "PIT (non-queried, oracle selection)"]
    text = _captions(site)
    assert "<h3>m0</h3>" in text and "<h3>m2</h3>" in text and "<h3>m4</h3>" in text and "<h3>m1</h3>" not in text
    assert "Query: <q>a &lt;i&gt;cat&lt;/i&gt; &amp; &quot;dog&quot;</q>" in text
    assert "Test set: Clean+" in text and "test_other" not in text  # no decodes: left out
    assert "estimate (SDR 7.2 dB)" in text and "output 2 (SDR 7.2 dB)" in text and "output 1 (SDR" not in text
    # the media are the files of the lists: mixture, reference, estimate of m0, and its middle frame
    mix, ref, est = (sf.read(site / page.audio[i])[0] for i in range(3))
    np.testing.assert_allclose(mix, sf.read(sep_recipe / "dump/test_mix/wav/m0.wav")[0], atol=1e-4)
    np.testing.assert_allclose(ref, sf.read(sep_recipe / "dump/test_mix/ref/m0.wav")[0], atol=1e-4)
    np.testing.assert_allclose(est, sf.read(sep_recipe / "exp/clipsep/decode_text/test_mix/wav/m0_spk1.wav")[0],
                               atol=1e-4)
    query_images = [p for p in page.images if p.endswith("_image_query.png")]
    assert (site / query_images[0]).read_bytes() == (sep_recipe / "dump/test_mix/frames/m0 frame1.png").read_bytes()
    result = check_site_in_browser(site, sep_recipe / "profile")
    assert QUERY in result["text"] and len(result["audio"]) == 17


def test_generation_page_from_generations(gen_recipe, capsys):
    site = gen_recipe / "exp" / "demo"
    code = demo_page.main(["generation", "--exp_dir", str(gen_recipe / "exp"), "--gen_dir", str(gen_recipe / "dump/gen"),
                           "--tags", "clipsonic_iq clipsonic_sd", "--guidance", "3", "--num_examples", "2",
                           "--output_dir", str(site)])
    assert code == 0, capsys.readouterr().err
    page = parse_page(site)
    # circle, square: IQ (1 image query: clip + image), PD / SD / ZS (2 clips each, w = 3 only)
    assert page.examples == [{"audio": 7, "img": 8}, {"audio": 7, "img": 8}]
    assert page.headings[:4] == ["IQ (clipsonic_iq, w = 3)", "PD (clipsonic_iq, w = 3)", "ZS (clipsonic_iq, w = 3)",
                                 "SD (clipsonic_sd, w = 3)"]
    text = _captions(site)
    assert "Query: <q>circle</q>" in text and "Query: <q>square</q>" in text and "triangle" not in text
    assert "clip 000_00" in text and "clip 000_01" in text and "clip 000_02" not in text and "w = 1" not in text
    check_site_in_browser(site, gen_recipe / "profile")


def test_no_decodes_is_one_line_and_no_site(sep_recipe, gen_recipe, capsys):
    site = sep_recipe / "exp" / "demo"
    code = demo_page.main(["separation", "--exp_dir", str(sep_recipe / "exp"), "--dump_dir", str(sep_recipe / "dump"),
                           "--tags", "nope", "--test_sets", "test_mix", "--output_dir", str(site)])
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert code == 1 and len(err) == 1 and "no decodes of --test_sets 'test_mix' for --tags 'nope'" in err[0]
    assert not site.exists()
    code = demo_page.main(["generation", "--exp_dir", str(gen_recipe / "exp"), "--gen_dir", str(gen_recipe / "dump/gen"),
                           "--tags", "clipsonic_iq", "--guidance", "2", "--output_dir", str(site)])
    assert code == 1 and "no generations of --tags 'clipsonic_iq' at --guidance 2" in capsys.readouterr().err
    before = sorted(p.name for p in (sep_recipe / "conf").iterdir())
    code = demo_page.main(["separation", "--exp_dir", str(sep_recipe / "exp"), "--dump_dir", str(sep_recipe / "dump"),
                           "--tags", "clipsep", "--test_sets", "test_mix", "--output_dir", str(sep_recipe / "conf")])
    assert code == 1 and "a non-empty directory that is not a demo site" in capsys.readouterr().err
    assert sorted(p.name for p in (sep_recipe / "conf").iterdir()) == before


def _template(recipe: Path, template: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.run(["bash", str(REPO / "egs2" / "TEMPLATE" / template), "--python", sys.executable, *args],
                          cwd=recipe, capture_output=True, text=True, env=env, timeout=600)


def test_clipsep_template_stage_13_writes_exp_demo(sep_recipe):
    proc = _template(sep_recipe, "clipsep1/clipsep.sh", "--stage", "13", "--stop_stage", "13", "--train_configs",
                     "conf/train_clipsep.yaml conf/train_pit.yaml", "--test_sets", "test_mix:Clean+",
                     "--demo_examples", "2", "--results_title", "My <CLIPSep>")
    assert proc.returncode == 0, proc.stderr[-3000:]
    site = sep_recipe / "exp" / "demo"
    assert len(parse_page(site).examples) == 2 and "<title>My &lt;CLIPSep&gt;: demo</title>" in _captions(site)
    assert "Stage 13: demo page" in proc.stdout + proc.stderr
    proc = _template(sep_recipe, "clipsep1/clipsep.sh", "--stage", "13", "--stop_stage", "13", "--train_configs",
                     "conf/train_clipsep.yaml", "--demo_examples", "1")  # a rerun replaces the site
    assert proc.returncode == 0 and len(parse_page(site).examples) == 1


def test_clipsonic_template_stage_11_writes_exp_demo(gen_recipe):
    proc = _template(gen_recipe, "clipsonic1/clipsonic.sh", "--stage", "11", "--stop_stage", "11",
                     "--image_config", "conf/train_clipsonic_iq.yaml", "--text_config", "conf/train_clipsonic_sd.yaml",
                     "--main_guidance", "3", "--demo_examples", "3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = parse_page(gen_recipe / "exp" / "demo")
    assert len(page.examples) == 3 and "SD (clipsonic_sd, w = 3)" in page.headings
