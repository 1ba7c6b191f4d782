"""The mini recipe end to end in its CI setting: text queries must separate (a real check)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "egs2" / "mini_bridge" / "clipsep1"


def _recipe_copy(root: Path) -> Path:
    (root / "TEMPLATE").symlink_to(REPO / "egs2" / "TEMPLATE")
    recipe = root / "mini_bridge" / "clipsep1"
    shutil.copytree(RECIPE, recipe, symlinks=True,
                    ignore=shutil.ignore_patterns("world_*", "data_*", "dump_*", "exp_*", "RESULTS.md", "images"))
    return recipe


def test_default_models_and_the_baselines_option(tmp_path):
    """The default trains CLIPSep and CLIPSep-NIT; ``--baselines true`` adds the supervised references;
    a bad value or a setting without baselines is refused before anything runs."""
    recipe = _recipe_copy(tmp_path)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")

    def run(*args):
        return subprocess.run(["./run.sh", *args, "--stage", "100"], cwd=recipe, env=env, capture_output=True, text=True)

    assert "models: clipsep clipsep_nit (stage 7: 2 at once)" in run().stdout
    assert "models: clipsep clipsep_nit clipsep_text labelsep (stage 7: 2 at once)" in run("--baselines", "true").stdout
    bad = run("--baselines", "yes")
    assert bad.returncode == 1 and "--baselines must be true or false, got 'yes'" in bad.stderr
    ci = run("--setting", "ci", "--baselines", "true")
    assert ci.returncode == 1 and "the ci setting has no baseline configs" in ci.stderr
    assert not (recipe / "world_default").exists()


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    """Run ./run.sh --setting ci in a copy of the recipe dir (outputs stay out of the repo)."""
    root = tmp_path_factory.mktemp("egs2")
    recipe = _recipe_copy(root)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    proc = subprocess.run(["./run.sh", "--setting", "ci"], cwd=recipe, env=env, capture_output=True, text=True)
    (root / "run.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return recipe


@pytest.mark.slow
def test_text_queried_separation_is_learned_without_text_audio_pairs(recipe_run):
    result = json.loads((recipe_run / "exp_ci" / "clipsep" / "decode_text" / "test_mix" / "scoring" / "result.json").read_text())
    assert result["count"] == 18
    assert result["SDRi"]["mean"] >= 3.0, result["SDRi"]
    image = json.loads((recipe_run / "exp_ci" / "clipsep" / "decode_image" / "test_mix" / "scoring" / "result.json").read_text())
    assert abs(image["SDRi"]["mean"] - result["SDRi"]["mean"]) < 2.0


@pytest.mark.slow
def test_noisy_world_has_the_off_screen_test_condition(recipe_run):
    """The default world is noisy: both models are also scored with an off-screen noise as the interference."""
    offscreen = (recipe_run / "world_ci" / "data" / "train" / "offscreen").read_text().split()[1::2]
    assert 0 < sum(v != "none" for v in offscreen) < len(offscreen)
    for tag in ("clipsep", "clipsep_nit"):
        result = json.loads((recipe_run / "exp_ci" / tag / "decode_text" / "test_offscreen" / "scoring"
                             / "result.json").read_text())
        assert result["count"] == 18 and result["SDRi"]["mean"] > 0.0, (tag, result["SDRi"])
    results = (recipe_run / "RESULTS.md").read_text()
    assert "Bridge-Clean+ mean SDR" in results and "Off-screen mean SDR" in results


@pytest.mark.slow
def test_results_table_and_packed_models(recipe_run):
    results = (recipe_run / "RESULTS.md").read_text()
    for row in ("| Mixture |", "| CLIPSep (text-queried) |", "| CLIPSep (image-queried) |",
                "| CLIPSep-NIT (text-queried) |", "| CLIPSep-NIT (image-queried) |"):
        assert row in results
    assert (recipe_run / "images" / "example.png").stat().st_size > 10000
    from espnet2_clip.bin.clipsep_inference import TextQueriedSeparation

    sep = TextQueriedSeparation.from_pretrained(str(recipe_run / "exp_ci" / "clipsep" / "packed_model.zip"),
                                                cachedir=str(recipe_run / "unpacked"))
    import numpy as np

    est = sep(np.zeros(20000, dtype=np.float32) + 0.01, 16000, "circle")
    assert est.shape == (20000,) and np.isfinite(est).all()
    # its model card: the bridge world, the small CLIP trained here, its own rows of RESULTS.md
    import zipfile

    from shared_helpers import markdown_table

    from espnet2_clip.utils.model_card import parse_card

    with zipfile.ZipFile(recipe_run / "exp_ci" / "clipsep" / "packed_model.zip") as z:
        card = parse_card(z.read("exp_ci/clipsep/README.md").decode())
    assert (card.facts["system"], card.facts["corpus"], card.facts["scored"]) == ("CLIPSep", "bridge world", True)
    assert card.facts["query_encoder"] == "clip (open_clip open_clip_config.json, weights open_clip_model.safetensors)"
    assert card.facts["training_clips"] == len((recipe_run / "dump_ci" / "train" / "wav.scp").read_text().splitlines())
    _, ours = markdown_table(card.section("Scores"))
    _, rows = markdown_table(results)
    assert ours == {r: rows[r] for r in ("Mixture", "CLIPSep (text-queried)", "CLIPSep (image-queried)")}


@pytest.mark.slow
def test_rerunning_a_finished_stage_is_harmless(recipe_run):
    before = (recipe_run / "dump_ci" / "train" / "wav.scp").read_text()
    proc = subprocess.run(["./run.sh", "--setting", "ci", "--stage", "2", "--stop_stage", "3"], cwd=recipe_run,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (recipe_run / "dump_ci" / "train" / "wav.scp").read_text() == before


@pytest.mark.slow
def test_readme_layout_without_labels(recipe_run, tmp_path):
    """``./run.sh --world_dir DIR --stage 2`` with exactly the README's layout and no label file: the
    small CLIP trains without its zero-shot check, and the image-query data is made."""
    world = recipe_run / "world_ci" / "data"
    readme = {"clip_train": ("image.scp", "caption"), "train": ("video.scp",), "valid": ("video.scp",),
              "test_mix": ("wav.scp", "spk1.scp", "spk2.scp", "text")}
    mine = tmp_path / "my_world"
    for subset, names in readme.items():
        (mine / "data" / subset).mkdir(parents=True)
        for name in names:
            shutil.copy(world / subset / name, mine / "data" / subset / name)
    proc = subprocess.run(
        ["./run.sh", "--setting", "ci", "--world_dir", str(mine), "--stage", "2", "--stop_stage", "5",
         "--data_dir", "data_readme", "--dump_dir", "dump_readme", "--exp_dir", "exp_readme",
         "--clip_train_args", "--max_steps 5 --eval_labels auto --seed 0"],  # a few steps show it trains
        cwd=recipe_run, capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    log = (recipe_run / "exp_readme" / "clip" / "train.log").read_text()
    assert "zero-shot check skipped" in log
    assert (recipe_run / "exp_readme" / "clip" / "open_clip_model.safetensors").is_file()
    assert (recipe_run / "dump_readme" / "train" / "query_image.scp").stat().st_size > 0
    assert not (recipe_run / "dump_readme" / "label_ids").exists()  # no labels: no LabelSep data


@pytest.mark.slow
def test_demo_page_of_the_decodes(recipe_run, tmp_path):
    """The last stage: exp_ci/demo from the decodes, 4 mixtures per test set with both models' estimates."""
    from demo_page_helpers import check_site_in_browser, parse_page

    site = recipe_run / "exp_ci" / "demo"
    page = parse_page(site)
    assert len(page.examples) == 8  # 4 per test set (Bridge-Clean+, Off-screen)
    assert page.headings[:4] == ["CLIPSep (text-queried)", "CLIPSep (image-queried)", "CLIPSep-NIT (text-queried)",
                                 "CLIPSep-NIT (image-queried)"]
    assert check_site_in_browser(site, tmp_path / "profile")["text"].count("Query: ") == 8
