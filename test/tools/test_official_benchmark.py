"""tools/official_benchmark.py against a stand-in for the official repository (a local git repo with
the same module layout and model contract), so no network is needed."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools/official_benchmark.py"

FAKE_UTILS = '''
import cv2  # the real utils.py imports OpenCV too
import numpy as np


def warpgrid(bs, HO, WO, warp=True):
    x, y = np.meshgrid(np.linspace(-1, 1, WO), np.linspace(-1, 1, HO))
    grid_y = (np.power(21, (y + 1) / 2) - 11) / 10 if warp else np.log(y * 10 + 11) / np.log(21) * 2 - 1
    return np.broadcast_to(np.stack([x, grid_y], -1), (bs, HO, WO, 2)).astype(np.float32).copy()
'''

FAKE_MODEL = '''
import torch
import torch.nn.functional as F

import utils


class CLIPSep(torch.nn.Module):
    """Same constructor and forward/infer contract as the official class; a tiny network."""

    def __init__(self, n_mix, layers=7, channels=32):
        super().__init__()
        self.n_mix = n_mix
        self.sound_net = torch.nn.Conv2d(1, channels, 3, padding=1)
        self.frame_net = torch.nn.Linear(512, channels)

    def _masks(self, mag_mix, img_emb, n):
        grid = torch.from_numpy(utils.warpgrid(mag_mix.size(0), 256, mag_mix.size(3))).to(mag_mix.device)
        warped = F.grid_sample(mag_mix + 1e-10, grid, align_corners=True)
        feat = self.sound_net(torch.log(warped))
        return warped, grid, [torch.sigmoid(torch.einsum("bchw,bc->bhw", feat, torch.sigmoid(self.frame_net(img_emb[i])))
                              ).unsqueeze(1) for i in range(n)]

    def forward(self, batch, img_emb):
        warped, grid, masks = self._masks(batch["mag_mix"], img_emb, self.n_mix)
        mags = [F.grid_sample(m, grid, align_corners=True) for m in batch["mags"]]
        loss = sum(F.binary_cross_entropy(p, (m > 0.5 * warped).float()) for p, m in zip(masks, mags))
        return loss, {"pred_masks": masks}

    def infer(self, mag_mix, img_emb, n_mix=1):
        return self._masks(mag_mix, img_emb, n_mix)[2]
'''


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def official_repo(tmp_path):
    repo = tmp_path / "official"
    (repo / "clipsep").mkdir(parents=True)
    (repo / "clipsep/utils.py").write_text(FAKE_UTILS)
    (repo / "clipsep/clipsep.py").write_text(FAKE_MODEL)
    git("init", "-q", cwd=repo)
    git("add", ".", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "pinned", cwd=repo)
    pinned = git("rev-parse", "HEAD", cwd=repo)
    (repo / "clipsep/clipsep.py").write_text("raise ImportError('a later commit')\n")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "later", cwd=repo)
    return repo, pinned


@pytest.fixture
def small_config(tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text(textwrap.dedent("""\
        head: query
        query: embedding
        query_conf: {input_dim: 512}
        unet_conf: {num_downs: 5, base_channels: 64, out_channels: 8}
        clip_samples: 4095
    """))
    return config


def run(args, tmp_path):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600)


@pytest.mark.slow
def test_side_by_side_at_the_pinned_commit(official_repo, small_config, tmp_path):
    repo, pinned = official_repo
    scratch, out = tmp_path / "scratch", tmp_path / "bench.json"
    args = ["--official_url", repo, "--official_commit", pinned, "--scratch_dir", scratch, "--config", small_config,
            "--device", "cpu", "--threads", "1", "--batch_size", "2", "--rounds", "2", "--frames", "1",
            "--ours", "fp32", "--ours", "train_precision=bf16,channels_last=true", "--json", out]
    proc = run(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert git("rev-parse", "HEAD", cwd=scratch) == pinned  # not the later commit
    results = json.loads(out.read_text())
    train = {row["name"]: row for row in results[0]["train"]}
    assert list(train) == ["official, whole step", "official, separator only", "ours (fp32)",
                           "ours (train_precision=bf16,channels_last=true)"]
    for row in train.values():
        assert 0 < row["min"] <= row["median"] <= row["max"]
    # CLIP image encoding inside the official step costs time: the whole step is the slower one
    assert train["official, whole step"]["median"] < train["official, separator only"]["median"]
    infer = {row["name"]: row for row in results[0]["inference"]}
    assert list(infer) == ["official", "ours (fp32)", "ours (bf16)"]
    assert all(row["rtf_median"] > 0 for row in infer.values())
    ratio = train["ours (fp32)"]["median"] / train["official, whole step"]["median"]
    assert f"| ours (fp32) |" in proc.stdout and f"{ratio:.2f}" in proc.stdout

    # the clone is reused: the run works with the source gone (offline)
    subprocess.run(["rm", "-rf", str(repo)], check=True)
    again = run(args[:-2] + ["--rounds", "1"], tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "official code:" in again.stdout


def test_clear_errors(official_repo, small_config, tmp_path):
    repo, _ = official_repo
    proc = run(["--official_url", repo, "--official_commit", "0" * 40, "--scratch_dir", tmp_path / "s",
                "--config", small_config, "--device", "cpu"], tmp_path)
    assert proc.returncode != 0 and f"commit {'0' * 40} is not in" in proc.stderr
    (tmp_path / "full").mkdir()
    (tmp_path / "full/file").write_text("x")
    proc = run(["--official_url", repo, "--scratch_dir", tmp_path / "full", "--device", "cpu"], tmp_path)
    assert proc.returncode != 0 and "is not empty and is not a git clone" in proc.stderr
    proc = run(["--official_url", tmp_path / "missing", "--scratch_dir", tmp_path / "s2", "--device", "cpu"], tmp_path)
    assert proc.returncode != 0 and "cannot clone the official code" in proc.stderr
