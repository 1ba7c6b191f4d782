import json
import subprocess
import sys

import pytest
import torch

from espnet2_clip.bin.clip_train import main
from espnet2_clip.query.clip_encoder import CLIPQueryEncoder


def _make_data(root, n=16):
    from PIL import Image

    root.mkdir(parents=True)
    colours = {"red": (255, 0, 0), "blue": (0, 0, 255)}
    scp, cap, lab = [], [], []
    for i in range(n):
        name = list(colours)[i % 2]
        path = root / f"u{i:02d}.png"
        Image.new("RGB", (36, 36), colours[name]).save(path)
        scp.append(f"u{i:02d} {path}\n")
        cap.append(f"u{i:02d} a photo of a {name} thing\n")
        lab.append(f"u{i:02d} {name}\n")
    (root / "image.scp").write_text("".join(scp))
    (root / "caption").write_text("".join(cap))
    (root / "label").write_text("".join(lab))
    return root


def test_cli_trains_and_writes_loadable_dir(tmp_path):
    data = _make_data(tmp_path / "data")
    out = tmp_path / "exp"
    main([
        "--data_dir", str(data), "--output_dir", str(out), "--model_config", "espnet2clip-tiny",
        "--batch_size", "4", "--max_steps", "3", "--epochs", "5", "--num_workers", "1",
        "--eval_labels", "red,blue", "--eval_fraction", "0.25",
        "--eval_template", "a photo of a {} thing", "--eval_template", "a {}",
    ])
    info = json.loads((out / "train_info.json").read_text())
    assert info["steps"] == 3 and info["classnames"] == ["red", "blue"]
    assert info["options"]["eval_templates"] == ["a photo of a {} thing", "a {}"]
    enc = CLIPQueryEncoder(str(out), pretrained=None)
    assert enc.encode_text(["red"], templates="ensemble").shape == (1, 32)


def test_cli_max_minutes_stops(tmp_path):
    data = _make_data(tmp_path / "data", n=8)
    out = tmp_path / "exp"
    main(["--data_dir", str(data), "--output_dir", str(out), "--model_config", "espnet2clip-tiny",
          "--batch_size", "4", "--epochs", "1000", "--max_minutes", "0.001", "--num_workers", "1"])
    info = json.loads((out / "train_info.json").read_text())
    assert info["steps"] < 2000


def test_cli_help_runs_as_module():
    r = subprocess.run([sys.executable, "-m", "espnet2_clip.bin.clip_train", "--help"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--max_minutes" in r.stdout
