"""The recipe templates' shell helpers (egs2/TEMPLATE/scripts/template_common.sh) and their pack stages
(the model card written and packed)."""

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "egs2" / "TEMPLATE" / "scripts"


def test_launch_training_is_espnets_launcher_around_the_module(tmp_path):
    """One helper, used by every training stage: ESPnet's launcher with the recipe's job runner,
    GPUs and nodes, running ``python -m MODULE --output_dir DIR --resume true ARGS...`` (spaces in
    ARGS kept; a rerun of a killed stage resumes, as in ESPnet's recipes)."""
    argv = tmp_path / "argv"
    stub = tmp_path / "python"  # stands in for ${python}: records its arguments
    stub.write_text(f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > "{argv}"\n')
    stub.chmod(0o755)
    out = tmp_path / "exp" / "model a"
    script = f"""
set -euo pipefail
python={stub} ngpu=2 num_nodes=3 train_cmd="" train_clip=false exp_dir={tmp_path}/exp
. {SCRIPTS}/template_common.sh
extra=(--query_conf "num_labels=4")
launch_training "{out}/train.log" "{out}" espnet2_clip.bin.clipsep_train --config "c d.yaml" "${{extra[@]}}"
"""
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.is_dir()
    assert argv.read_text().splitlines() == [
        "-m", "espnet2.bin.launch", "--cmd", str(SCRIPTS / "run_local.sh"), "--log", f"{out}/train.log",
        "--ngpu", "2", "--num_nodes", "3", "--init_file_prefix", f"{out}/.dist_init_",
        "--multiprocessing_distributed", "true", "--",
        str(stub), "-m", "espnet2_clip.bin.clipsep_train", "--output_dir", str(out), "--resume", "true",
        "--config", "c d.yaml", "--query_conf", "num_labels=4",
    ]


def test_no_template_calls_the_launcher_itself():
    for template in ("clipsep1/clipsep.sh", "clipsonic1/clipsonic.sh"):
        text = (REPO / "egs2" / "TEMPLATE" / template).read_text()
        assert "-m espnet2.bin.launch" not in text and "launch_training" in text, template


def _recipe(root: Path, corpus: str, system: str) -> Path:
    """``root/egs2/<corpus>/<system>`` with the template linked in, like a corpus recipe."""
    (root / "egs2").mkdir(exist_ok=True)
    if not (root / "egs2" / "TEMPLATE").exists():
        (root / "egs2" / "TEMPLATE").symlink_to(REPO / "egs2" / "TEMPLATE")
    recipe = root / "egs2" / corpus / system
    (recipe / "conf").mkdir(parents=True)
    script = "clipsep.sh" if system == "clipsep1" else "clipsonic.sh"
    (recipe / script).symlink_to(f"../../TEMPLATE/{system}/{script}")
    return recipe


def _trained(exp: Path, config: dict) -> None:
    """A trained-model dir: config.yaml and a (tiny, real) checkpoint."""
    import torch
    import yaml

    exp.mkdir(parents=True)
    (exp / "config.yaml").write_text(yaml.safe_dump(config))
    torch.save({"w": torch.zeros(3, 2)}, exp / "valid.loss.best.pth")


def _run_stage(recipe: Path, script: str, *args: str) -> str:
    import os
    import sys

    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    proc = subprocess.run([f"./{script}", "--python", sys.executable, *args], cwd=recipe, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout + proc.stderr


def _packed_card(zpath: Path, member: str) -> str:
    import zipfile

    with zipfile.ZipFile(zpath) as z:
        return z.read(member).decode()


def test_pack_stages_write_the_model_card_and_pack_it(tmp_path, capsys, monkeypatch):
    """CLIPSep stage 11 and CLIPSonic stage 10: each model's card, written into exp/<tag>/README.md
    from the recipe's RESULTS.md, download reports and training list, is packed in its zip; `espnet2-clip
    info` prints it; the upload's dry run publishes it with its run lines on the Hub id."""
    import json

    import yaml
    from shared_helpers import markdown_table

    from espnet2_clip.bin import cli, upload_hf
    from espnet2_clip.bin.clipsonic_eval import make_report
    from espnet2_clip.utils.model_card import parse_card, retarget

    monkeypatch.setenv("ESPNET2_CLIP_CACHE", str(tmp_path / "cache"))  # where `info` unpacks zips
    # CLIPSep on "VGGSound": scored, 2 of 14 videos missing, 3 training clips
    recipe = _recipe(tmp_path, "vggsound", "clipsep1")
    sep = {"train_query": "image", "head": "nit", "query": "embedding", "query_conf": {"input_dim": 32},
           "unet_conf": {"num_downs": 5, "base_channels": 4, "out_channels": 4},
           "query_encoder": "clip", "query_encoder_conf": {"model_name": "ViT-B-32", "pretrained": "openai"}}
    (recipe / "conf" / "train_clipsep_nit.yaml").write_text(yaml.safe_dump(sep))
    _trained(recipe / "exp" / "clipsep_nit", sep)
    (recipe / "dump" / "train").mkdir(parents=True)
    (recipe / "dump" / "train" / "wav.scp").write_text("a /a.wav\nb /b.wav\nc /c.wav\n")
    for name, obtained, requested in (("train", 11, 12), ("test", 1, 2)):
        (recipe / "world" / "download" / name).mkdir(parents=True)
        (recipe / "world" / "download" / name / "download_report.json").write_text(json.dumps(
            {"requested": requested, "obtained": obtained, "missing": requested - obtained,
             "missing_by_reason": {"private": requested - obtained}}))
    (recipe / "RESULTS.md").write_text(
        "# r\n\n## SDR (the paper's Table 1 layout)\n\n| System | mean SDR ± s.e. | median SDR |\n|---|---:|---:|\n"
        "| Mixture | 0.10 ± 0.20 | 0.05 |\n| CLIPSep-NIT (text-queried) | 7.50 ± 0.30 | 7.40 |\n"
        "| CLIPSep (text-queried) | 6.00 ± 0.30 | 5.90 |\n")
    _run_stage(recipe, "clipsep.sh", "--stage", "11", "--stop_stage", "12",
               "--train_configs", "conf/train_clipsep_nit.yaml")
    zpath = recipe / "exp" / "clipsep_nit" / "packed_model.zip"
    card = _packed_card(zpath, "exp/clipsep_nit/README.md")
    assert card == (recipe / "exp" / "clipsep_nit" / "README.md").read_text()
    assert _packed_card(zpath, "RESULTS.md") == (recipe / "RESULTS.md").read_text()
    facts = parse_card(card).facts
    assert {k: facts[k] for k in ("task", "system", "corpus", "training_clips", "scored", "model", "videos")} == {
        "task": "separate", "system": "CLIPSep-NIT", "corpus": "VGGSound", "training_clips": 3, "scored": True,
        "model": "exp/clipsep_nit/packed_model.zip",
        "videos": {"test": {"requested": 2, "obtained": 1, "missing": 1},
                   "train": {"requested": 12, "obtained": 11, "missing": 1}}}
    _, rows = markdown_table(parse_card(card).section("Scores"))
    assert rows == {"Mixture": ["0.10 ± 0.20", "0.05"], "CLIPSep-NIT (text-queried)": ["7.50 ± 0.30", "7.40"]}
    assert cli.main(["info", str(zpath)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"model card: {zpath}:exp/clipsep_nit/README.md" in out
    assert "training data: VGGSound, 3 clips, queries: image; videos missing: test 1 of 2, train 1 of 12" in out
    assert "  | CLIPSep-NIT (text-queried) | 7.50 ± 0.30 | 7.40 |" in out
    assert upload_hf.main(["--packed_model", str(zpath), "--hf_repo", "user/clipsep_nit", "--dry_run",
                           "--work_dir", str(tmp_path / "hf")]) == 0
    assert (tmp_path / "hf" / "README.md").read_text() == retarget(card, "user/clipsep_nit")

    # CLIPSonic on the bridge world, packed before any scoring: "not scored"; the text-trained model
    # is SD (the recipe says so: its tag does not)
    recipe = _recipe(tmp_path, "mini_bridge", "clipsonic1")
    sonic = {"mel_conf": {"fs": 16000, "n_fft": 256, "hop_length": 64, "n_mels": 16},
             "unet_conf": {"cond_dim": 32, "channels": [8, 16]}, "query_encoder": "clip",
             "query_encoder_conf": {"model_name": "ViT-B-32", "pretrained": "openai"},
             "vocoder_config": None, "vocoder_file": None, "prior_config": None, "prior_file": None}
    for tag in ("sonic_image", "sonic_text"):
        (recipe / "conf" / f"train_{tag}.yaml").write_text(yaml.safe_dump(sonic))
        _trained(recipe / "exp" / tag, sonic)
    _run_stage(recipe, "clipsonic.sh", "--stage", "10", "--stop_stage", "10", "--image_config",
               "conf/train_sonic_image.yaml", "--text_config", "conf/train_sonic_text.yaml")
    cards = {tag: parse_card(_packed_card(recipe / "exp" / tag / "packed_model.zip", f"exp/{tag}/README.md"))
             for tag in ("sonic_image", "sonic_text")}
    assert [(c.facts["system"], c.facts["variants"], c.facts["corpus"], c.facts["scored"])
            for c in cards.values()] == [("CLIPSonic", ["IQ", "ZS"], "bridge world", False),
                                         ("CLIPSonic-SD", ["SD"], "bridge world", False)]
    assert cards["sonic_image"].section("Scores").strip() == (
        "Not scored: `RESULTS.md` does not exist (the recipe's scoring stages have not run).")
    # scored later: the next pack stage's card has the variant rows
    results = [{"meta": {"variant": v, "guidance_scale": 3.0}, "count": 6,
                "relevance": {"accuracy": acc, "chance": 0.25}, "fd": 1.5} for v, acc in (("IQ", 0.5), ("SD", 1.0))]
    (recipe / "RESULTS.md").write_text(make_report(results, 3.0, "CLIPSonic", [], None, None))
    _run_stage(recipe, "clipsonic.sh", "--stage", "10", "--stop_stage", "10", "--image_config",
               "conf/train_sonic_image.yaml")
    card = parse_card(_packed_card(recipe / "exp" / "sonic_image" / "packed_model.zip", "exp/sonic_image/README.md"))
    _, rows = markdown_table(card.section("Scores"))
    assert card.facts["scored"] is True and rows == {"CLIPSonic-IQ": ["image", "50.0", "1.50", "6"]}


def test_run_local_job_array(tmp_path):
    """``run_local.sh JOB=1:N LOG CMD``: N copies at once, JOB replaced in the log name and the arguments,
    nproc / N threads each; one failing copy fails the whole, naming its log."""
    runner = str(SCRIPTS / "run_local.sh")
    env = {"PATH": "/usr/bin:/bin"}
    ok = subprocess.run([runner, "--gpu", "1", "JOB=1:3", f"{tmp_path}/log.JOB", "sh", "-c",
                         f'echo "JOB $OMP_NUM_THREADS" > {tmp_path}/out.JOB'], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    nproc = int(subprocess.run(["nproc"], capture_output=True, text=True).stdout)
    for job in (1, 2, 3):
        assert (tmp_path / f"out.{job}").read_text() == f"{job} {max(1, nproc // 3)}\n"
        log = (tmp_path / f"log.{job}").read_text()
        assert log.startswith(f"# sh -c echo \"{job} $OMP_NUM_THREADS\"") and "# ended (code 0)" in log
    bad = subprocess.run([runner, "JOB=1:2", f"{tmp_path}/bad.JOB", "sh", "-c", "test JOB = 1"],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 1
    assert f"see {tmp_path}/bad.2" in bad.stderr and "1 of 2 jobs failed" in bad.stderr
    assert "# ended (code 0)" in (tmp_path / "bad.1").read_text()
    empty = subprocess.run([runner, "JOB=2:1", f"{tmp_path}/x", "true"], capture_output=True, text=True)
    assert empty.returncode == 2 and "empty job range" in empty.stderr


def test_split_list_and_merge_scps(tmp_path):
    """The inference stages' split (contiguous parts in id order, never an empty part) and merge (sorted)."""
    (tmp_path / "list").write_text("".join(f"u{i} v{i}\n" for i in (4, 0, 3, 1, 2)) + "\n")
    script = f"""
set -euo pipefail
python=python3 train_cmd="" train_clip=false exp_dir={tmp_path}/exp
. {SCRIPTS}/template_common.sh
echo "$(split_list {tmp_path}/list 2 {tmp_path}/split) $(split_list {tmp_path}/list 9 {tmp_path}/split9)"
merge_scps {tmp_path}/merged {tmp_path}/split/keys.2 {tmp_path}/split/keys.1
inference_nj=0
. {SCRIPTS}/template_common.sh
"""
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert proc.stdout == "2 5\n"
    assert (tmp_path / "split" / "keys.1").read_text() == "u0 v0\nu1 v1\nu2 v2\n"
    assert (tmp_path / "split" / "keys.2").read_text() == "u3 v3\nu4 v4\n"
    assert sorted(p.name for p in (tmp_path / "split9").iterdir()) == [f"keys.{i}" for i in range(1, 6)]
    assert (tmp_path / "merged").read_text() == "".join(f"u{i} v{i}\n" for i in range(5))
    assert proc.returncode == 1 and "--inference_nj must be an integer >= 1, got '0'" in proc.stderr


def _run_at_once(tmp_path: Path, n: str, args: str, env_threads: str = "") -> subprocess.CompletedProcess:
    """``run_at_once N job ARGS`` with a job that records how many jobs run beside it and its threads;
    job ``bad`` fails."""
    script = f"""
set -euo pipefail
python=python3 train_cmd="" train_clip=false exp_dir={tmp_path}/exp train_nj={n}
. {SCRIPTS}/template_common.sh
job() {{
    touch {tmp_path}/running.$1
    echo "$1 $(ls {tmp_path} | grep -c '^running\\.') ${{OMP_NUM_THREADS:-unset}}" >> {tmp_path}/seen
    sleep 1  # long enough to overlap on a loaded machine
    rm {tmp_path}/running.$1
    [ "$1" != bad ]
}}
run_at_once "${{train_nj}}" job {args}
"""
    env = {"PATH": "/usr/bin:/bin"}
    if env_threads:
        env["OMP_NUM_THREADS"] = env_threads
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env)
    return proc


def _seen(tmp_path: Path) -> list:
    lines = [line.split() for line in (tmp_path / "seen").read_text().splitlines()]
    (tmp_path / "seen").unlink()
    return lines


def test_run_at_once_runs_n_jobs_at_a_time_with_their_share_of_threads(tmp_path):
    """Stage 7's ``--train_nj``: every job runs, never more than N at once, each with nproc / N threads
    (unless OMP_NUM_THREADS is set); a failing job fails the whole after the others have run; N = 1 runs
    them one after another and stops at the first failure, as before; a bad N is one error line."""
    nproc = int(subprocess.run(["nproc"], capture_output=True, text=True).stdout)
    proc = _run_at_once(tmp_path, "2", "a b c d e")
    assert proc.returncode == 0, proc.stderr
    seen = _seen(tmp_path)
    assert sorted(name for name, _, _ in seen) == ["a", "b", "c", "d", "e"]
    assert max(int(at_once) for _, at_once, _ in seen) == 2
    assert {threads for _, _, threads in seen} == {str(max(1, nproc // 2))}

    assert _run_at_once(tmp_path, "3", "a b", env_threads="5").returncode == 0
    assert {threads for _, _, threads in _seen(tmp_path)} == {"5"}

    proc = _run_at_once(tmp_path, "2", "a bad c d")
    assert proc.returncode == 1
    assert "error: 1 of 4 runs of job failed" in proc.stderr
    assert sorted(name for name, _, _ in _seen(tmp_path)) == ["a", "bad", "c", "d"]

    proc = _run_at_once(tmp_path, "1", "a b bad c")
    assert proc.returncode == 1
    assert [(name, at_once, threads) for name, at_once, threads in _seen(tmp_path)] == [
        ("a", "1", "unset"), ("b", "1", "unset"), ("bad", "1", "unset")]

    proc = _run_at_once(tmp_path, "two", "a")
    assert proc.returncode == 1 and "--train_nj must be an integer >= 1, got 'two'" in proc.stderr


def _read_only_command(directory: Path, argv: list) -> list:
    """``argv`` run with ``directory`` read-only: for root (whom permission bits do not stop) under a
    private read-only bind mount, otherwise with the directory's write bits cleared."""
    import os
    import shutil

    import pytest

    if os.geteuid() != 0:
        directory.chmod(0o555)
        return argv
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if shutil.which("unshare") is None or probe.returncode != 0:
        pytest.skip("root without a mount namespace (unshare -m): no way to make a read-only directory")
    mount = f'mount --bind "{directory}" "{directory}" && mount -o remount,bind,ro "{directory}" && exec "$@"'
    return ["unshare", "-m", "sh", "-c", mount, "sh", *argv]


def test_stage_1_refuses_a_read_only_world_dir_before_any_work(tmp_path):
    """A corpus recipe's stage 1 (lists, downloads) and the mini recipes' (world generator) stop with one
    line naming --world_dir before doing anything, instead of failing deep inside a download or a write."""
    import os
    import shutil
    import sys

    root = tmp_path / "recipes"
    (root / "egs2").mkdir(parents=True)
    (root / "egs2" / "TEMPLATE").symlink_to(REPO / "egs2" / "TEMPLATE")
    for recipe in ("vggsound/clipsep1", "mini_bridge/clipsep1", "mini_bridge/clipsonic1"):
        shutil.copytree(REPO / "egs2" / recipe, root / "egs2" / recipe, symlinks=True)
    locked = tmp_path / "locked"
    (locked / "world").mkdir(parents=True)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    for recipe, world in (("vggsound/clipsep1", locked / "world"), ("mini_bridge/clipsep1", locked / "new" / "w"),
                          ("mini_bridge/clipsonic1", locked / "world")):
        argv = ["./run.sh", "--stage", "1", "--stop_stage", "1", "--world_dir", str(world)]
        if recipe.startswith("vggsound"):
            argv += ["--lists_dir", str(tmp_path / "no_lists")]  # never the network, whatever happens
        proc = subprocess.run(_read_only_command(locked, argv), cwd=root / "egs2" / recipe, env=env,
                              capture_output=True, text=True)
        assert proc.returncode == 1, (recipe, proc.stdout + proc.stderr)
        errors = [line for line in proc.stderr.splitlines() if "error" in line]
        assert len(errors) == 1 and f"--world_dir '{world}' is not writable" in errors[0], (recipe, proc.stderr)
        assert "Read-only file system" in errors[0] or "Permission denied" in errors[0], errors[0]
        assert "Traceback" not in proc.stderr
    assert [p.name for p in locked.rglob("*")] == ["world"]  # nothing written


RECIPE_SCRIPTS = sorted([REPO / "egs2" / "TEMPLATE" / "clipsep1" / "clipsep.sh",
                         REPO / "egs2" / "TEMPLATE" / "clipsonic1" / "clipsonic.sh",
                         *(REPO / "egs2").glob("*/*/run.sh"), *(REPO / "egs2").glob("*/*/local/data.sh")])


def test_every_long_running_recipe_script_is_read_whole_before_it_runs():
    """Bash reads a script as it runs it: an edit made while a stage runs would run (or garble) the rest of
    that run. Each recipe script's body is one ``{ ... exit }`` block, which bash reads whole first."""
    names = {p.relative_to(REPO).as_posix() for p in RECIPE_SCRIPTS}
    assert {"egs2/TEMPLATE/clipsep1/clipsep.sh", "egs2/TEMPLATE/clipsonic1/clipsonic.sh",
            "egs2/vggsound/clipsep1/run.sh", "egs2/vggsound/clipsep1/local/data.sh"} <= names
    for path in RECIPE_SCRIPTS:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        body = [line for line in lines[1:] if not line.startswith("#")]
        assert body[0].startswith("{ ") and body[-2:] == ["exit", "}"], path


def test_editing_the_template_while_it_runs_does_not_change_the_run(tmp_path):
    """Stage 1's local/data.sh overwrites the running clipsep.sh with blank lines and a failing command,
    as an editor's save would, at the same size; the run goes on with what it read and finishes."""
    import shutil

    (tmp_path / "scripts").symlink_to(SCRIPTS)  # the template finds its helpers at ../scripts
    recipe = tmp_path / "recipe"
    (recipe / "local").mkdir(parents=True)
    script = recipe / "clipsep.sh"
    shutil.copy(REPO / "egs2" / "TEMPLATE" / "clipsep1" / "clipsep.sh", script)
    data = recipe / "local" / "data.sh"
    data.write_text("#!/usr/bin/env python3\nimport os\n"
                    f"path, tail = {str(script)!r}, 'echo INJECTED; exit 7\\n'\n"
                    "size = os.path.getsize(path)\n"
                    "open(path, 'w').write('\\n' * (size - len(tail)) + tail)\n")
    data.chmod(0o755)
    proc = subprocess.run(["bash", str(script), "--stage", "1", "--stop_stage", "1", "--test_sets", "t:T"],
                          cwd=recipe, capture_output=True, text=True)
    assert script.read_text().endswith("echo INJECTED; exit 7\n")  # the edit happened mid-run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "INJECTED" not in proc.stdout + proc.stderr
    assert "Successfully finished." in proc.stdout + proc.stderr
