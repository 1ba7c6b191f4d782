"""The CLIPSonic mini recipe end to end in its CI setting: generated audio must be relevant (a real check)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "egs2" / "mini_bridge"


def _recipe_copy(root: Path) -> Path:
    (root / "TEMPLATE").symlink_to(REPO / "egs2" / "TEMPLATE")
    ignore = shutil.ignore_patterns("world_*", "data_*", "dump_*", "exp_*", "RESULTS.md", "images")
    # clipsonic1 shares clipsep1's local/ (a symlink), so both are copied
    for name in ("clipsep1", "clipsonic1"):
        shutil.copytree(RECIPES / name, root / "mini_bridge" / name, symlinks=True, ignore=ignore)
    return root / "mini_bridge" / "clipsonic1"


def _env() -> dict:
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")


def test_default_model_and_the_baselines_option(tmp_path):
    """The default trains the IQ model alone (on every core); ``--baselines true`` adds the supervised
    reference SD beside it, a thread each; a bad value is refused before anything runs."""
    recipe = _recipe_copy(tmp_path)

    def run(*args):
        return subprocess.run(["./run.sh", *args, "--stage", "100"], cwd=recipe, env=_env(), capture_output=True,
                              text=True)

    assert "models: clipsonic_iq (stage 6: 1 at once)" in run().stdout
    assert "models: clipsonic_iq clipsonic_sd (stage 6: 2 at once)" in run("--baselines", "true").stdout
    assert "models: clipsonic_iq clipsonic_sd (stage 6: 2 at once)" in run("--setting", "ci", "--baselines",
                                                                            "true").stdout
    bad = run("--baselines", "yes")
    assert bad.returncode == 1 and "--baselines must be true or false, got 'yes'" in bad.stderr
    assert not (recipe / "world_default").exists()


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    """Run ./run.sh --setting ci --baselines true (IQ and SD) in a copy of the recipe dir (outputs stay out of
    the repo)."""
    recipe = _recipe_copy(tmp_path_factory.mktemp("egs2"))
    root = recipe.parents[1]
    proc = subprocess.run(["./run.sh", "--setting", "ci", "--baselines", "true"], cwd=recipe, env=_env(),
                          capture_output=True, text=True)
    (root / "run.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return recipe


def result(recipe, variant, w):
    model = "clipsonic_sd" if variant == "sd" else "clipsonic_iq"
    return json.loads((recipe / "exp_ci" / model / f"gen_{variant}_w{w}" / "scoring" / "result.json").read_text())


@pytest.mark.slow
def test_image_queried_generation_is_relevant(recipe_run):
    """IQ at w = 3: the evaluation classifier recognises the queried class well above chance (1/6)."""
    iq = result(recipe_run, "iq", 3)
    rel = iq["relevance"]
    assert iq["count"] == 18 and rel["chance"] == pytest.approx(1 / 6)
    assert rel["accuracy"] >= 2 * rel["chance"], rel
    real = json.loads((recipe_run / "exp_ci" / "classifier" / "real" / "result.json").read_text())
    assert real["relevance"]["accuracy"] >= 0.9  # the classifier itself works on real held-out audio
    assert iq["fd"] > real["fd"]  # generated clips are farther from the real test audio than real clips


@pytest.mark.slow
def test_every_variant_and_guidance_scale_is_scored(recipe_run):
    for variant in ("iq", "zs", "pd", "sd"):  # SD: trained on the labels' text embeddings (stage 1 makes them)
        for w in (1, 3):
            r = result(recipe_run, variant, w)
            assert r["count"] == 18  # 3 queries per class, 6 classes
            assert 0.0 <= r["relevance"]["accuracy"] <= 1.0 and r["fd"] >= 0.0


@pytest.mark.slow
def test_results_table_plot_and_packed_model(recipe_run):
    results = (recipe_run / "RESULTS.md").read_text()
    for row in ("| CLIPSonic-IQ | image |", "| CLIPSonic-ZS | text (direct) |", "| CLIPSonic-PD | text → prior |",
                "| SD (supervised reference) | text (supervised) |",
                "| Real audio (held out) |", "| Variant | w = 1 | w = 3 |"):
        assert row in results
    assert (recipe_run / "images" / "guidance_sweep.png").stat().st_size > 5000
    bench = json.loads((recipe_run / "exp_ci" / "clipsonic_iq" / "benchmark.json").read_text())
    assert bench["audio_seconds"] == pytest.approx(65535 / 16000, abs=1e-3) and bench["seconds_total"] > 0
    assert "generation speed (clipsonic_iq): one 4.096 s clip" in results
    from espnet2_clip.bin.clipsonic_inference import TextToAudio

    t2a = TextToAudio.from_pretrained(str(recipe_run / "exp_ci" / "clipsonic_iq" / "packed_model.zip"),
                                      cachedir=str(recipe_run / "unpacked"))
    assert t2a.variant == "PD"  # the packed model carries its prior
    wave = t2a("circle", guidance_scale=3.0, num_steps=2, seed=0)
    assert wave.shape == (16383,)  # the CI config uses 1-s clips
    import numpy as np

    assert np.isfinite(wave).all()
    # its model card: the variants it runs (its prior is packed) and their rows of RESULTS.md
    import zipfile

    from shared_helpers import markdown_table

    from espnet2_clip.utils.model_card import parse_card

    with zipfile.ZipFile(recipe_run / "exp_ci" / "clipsonic_iq" / "packed_model.zip") as z:
        card = parse_card(z.read("exp_ci/clipsonic_iq/README.md").decode())
    facts = card.facts
    assert (facts["system"], facts["variants"], facts["scored"]) == ("CLIPSonic", ["IQ", "ZS", "PD"], True)
    _, ours = markdown_table(card.section("Scores"))
    _, rows = markdown_table(results)
    assert ours == {r: rows[r] for r in ("CLIPSonic-IQ", "CLIPSonic-ZS", "CLIPSonic-PD", "Real audio (held out)")}


@pytest.mark.slow
def test_demo_page_of_the_generations(recipe_run, tmp_path):
    """The last stage: exp_ci/demo, 4 classes with the IQ / PD / ZS / SD clips at w = 3."""
    from demo_page_helpers import check_site_in_browser, parse_page

    site = recipe_run / "exp_ci" / "demo"
    page = parse_page(site)
    assert len(page.examples) == 4
    assert page.headings[:4] == ["IQ (clipsonic_iq, w = 3)", "PD (clipsonic_iq, w = 3)", "ZS (clipsonic_iq, w = 3)",
                                 "SD (clipsonic_sd, w = 3)"]
    check_site_in_browser(site, tmp_path / "profile")


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_a_users_world_is_never_overwritten(recipe_run, tmp_path):
    """``--world_dir DIR`` is the user's own world: stage 1's generator refuses it (clear error, nothing
    written); ``--data_stage 2`` skips the generator and makes the generation queries from it, the test
    images' classes from their text when the test set has no label file."""
    mine = tmp_path / "my_world"
    shutil.copytree(recipe_run / "world_ci" / "data", mine / "data")
    (mine / "data" / "test_mix" / "label").unlink()  # the image queries' classes then come from their text
    before = _snapshot(mine)
    dirs = ["--data_dir", "data_mine", "--dump_dir", "dump_mine", "--exp_dir", "exp_mine",  # the CI run's CLIP
            "--train_clip", "false", "--clip_model", str(recipe_run / "exp_ci" / "clip" / "open_clip_config.json"),
            "--clip_pretrained", str(recipe_run / "exp_ci" / "clip" / "open_clip_model.safetensors")]
    refused = subprocess.run(["./run.sh", "--setting", "ci", "--baselines", "true", "--world_dir", str(mine), "--stop_stage", "1", *dirs],
                             cwd=recipe_run, capture_output=True, text=True)
    assert refused.returncode != 0
    assert "holds data the bridge world generator did not write (data)" in refused.stderr
    assert "--data_stage 2" in refused.stderr
    assert _snapshot(mine) == before
    proc = subprocess.run(["./run.sh", "--setting", "ci", "--baselines", "true", "--world_dir", str(mine),
                           "--data_stage", "2",
                           "--stop_stage", "2", *dirs], cwd=recipe_run, capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    assert _snapshot(mine) == before
    gen = recipe_run / "dump_mine" / "gen"
    assert len((gen / "text" / "text").read_text().splitlines()) == 18  # 6 classes x 3
    from espnet2_clip.utils.fileio import read_scp

    image_classes = read_scp(gen / "image" / "label")
    assert image_classes == read_scp(recipe_run / "dump_ci" / "gen" / "image" / "label")  # as with the labels
    assert len(image_classes) == 18 and set(read_scp(gen / "image" / "query_image.scp")) == set(image_classes)
    assert (recipe_run / "dump_mine" / "train" / "query_text_clipsonic_sd.scp").stat().st_size > 0
