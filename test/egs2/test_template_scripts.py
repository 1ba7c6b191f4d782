"""The recipe templates' shell helpers (egs2/TEMPLATE/scripts/template_common.sh)."""

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "egs2" / "TEMPLATE" / "scripts"


def test_launch_training_is_espnets_launcher_around_the_module(tmp_path):
    """One helper, used by every training stage: ESPnet's launcher with the recipe's job runner,
    GPUs and nodes, running ``python -m MODULE --output_dir DIR ARGS...`` (spaces in ARGS kept)."""
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
        str(stub), "-m", "espnet2_clip.bin.clipsep_train", "--output_dir", str(out),
        "--config", "c d.yaml", "--query_conf", "num_labels=4",
    ]


def test_no_template_calls_the_launcher_itself():
    for template in ("clipsep1/clipsep.sh", "clipsonic1/clipsonic.sh"):
        text = (REPO / "egs2" / "TEMPLATE" / template).read_text()
        assert "-m espnet2.bin.launch" not in text and "launch_training" in text, template
