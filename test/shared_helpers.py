"""Small data writers and readers shared by several test files (importable from any test: pytest puts
this directory on sys.path for test/conftest.py)."""

from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import soundfile as sf


def write_clips(root: Path, num: int = 8, seconds: float = 3.0, bursts: bool = True, sr: int = 16000) -> None:
    """Single-source training clips for tiny CLIPSep / CLIPSonic runs: odd items are tones, even items
    noise (in 0.25-s bursts with ``bursts``), each with per-frame (3, 32) query embeddings that tell
    the two kinds apart. Writes ``c<i>.wav``, ``c<i>.npy``, ``wav.scp`` and ``query.scp`` in ``root``."""
    rng = np.random.default_rng(0)
    wav, query = [], []
    for i in range(num):
        t = np.arange(int(seconds * sr)) / sr
        if i % 2:
            x = 0.3 * np.sin(2 * np.pi * (300 + 40 * i) * t)
        else:
            x = 0.3 * rng.standard_normal(len(t))
            if bursts:
                x = x * (np.sin(2 * np.pi * 2 * t) > 0)
        sf.write(root / f"c{i}.wav", x.astype(np.float32), sr)
        np.save(root / f"c{i}.npy", (rng.standard_normal((3, 32)) + (i % 2) * 3).astype(np.float32))
        wav.append(f"c{i} {root / f'c{i}.wav'}\n")
        query.append(f"c{i} {root / f'c{i}.npy'}\n")
    (root / "wav.scp").write_text("".join(wav))
    (root / "query.scp").write_text("".join(query))


def tiny_clipsep_config(tiny_clip_dir: Path, clip_samples: int, **overrides) -> dict:
    """A CLIPSep of a few thousand weights (5-level U-Net, 4 channels) queried by the tiny CLIP's 32-d
    embeddings, trained one epoch of batch 4; ``overrides`` replace or add top-level keys."""
    config = {
        "frontend_conf": {"n_fft": 256, "hop_length": 64, "num_warped_bins": 64},
        "unet_conf": {"num_downs": 5, "base_channels": 4, "out_channels": 4},
        "query": "embedding", "query_conf": {"input_dim": 32}, "query_encoder": "clip",
        "query_encoder_conf": {"model_name": str(tiny_clip_dir / "open_clip_config.json"),
                               "pretrained": str(tiny_clip_dir / "open_clip_model.safetensors")},
        "clip_samples": clip_samples, "batch_size": 4, "max_epoch": 1, "num_workers": 0, "seed": 0,
        "optim": "adam", "optim_conf": {"lr": 0.001},
    }
    config.update(overrides)
    return config


def train_clipsep(root: Path, data: Path, config: dict, queries: bool = True) -> Path:
    """Train ``config`` with ``clipsep_train`` on the clips of :func:`write_clips` in ``data`` (train and
    valid alike; ``queries``: with their ``query.scp``); returns the experiment dir ``root/exp``."""
    import yaml

    from espnet2_clip.bin import clipsep_train

    (root / "train.yaml").write_text(yaml.safe_dump(config))
    data_args = []
    for mode in ("train", "valid"):
        data_args += [f"--{mode}_data_path_and_name_and_type", f"{data}/wav.scp,speech_ref1,sound",
                      f"--{mode}_shape_file", f"{data}/wav.scp"]
        if queries:
            data_args += [f"--{mode}_data_path_and_name_and_type", f"{data}/query.scp,query,npy"]
    clipsep_train.main(["--config", str(root / "train.yaml"), "--output_dir", str(root / "exp"), "--ngpu", "0"]
                       + data_args)
    return root / "exp"


def markdown_table(text: str, header_start: str = "| System") -> Tuple[List[str], Dict[str, List[str]]]:
    """The first markdown table of ``text`` whose header line starts with ``header_start``:
    ``(header cells, {first cell of a row: its other cells})``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return header, rows


def save_tiny_clap(directory: Path) -> Path:
    """A tiny random transformers CLAP (model, RoBERTa tokenizer of 56 tokens, ClapFeatureExtractor with
    the unfused checkpoint's ``rand_trunc``) written with ``save_pretrained``: the layout of
    laion/clap-htsat-unfused, 0.1 MB. Its CLAP scores mean nothing."""
    import json

    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, RobertaTokenizer

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = ClapConfig(
        text_config=dict(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=40, type_vocab_size=1, projection_dim=8),
        audio_config=dict(spec_size=64, num_mel_bins=16, patch_size=4, patch_stride=(4, 4), window_size=4,
                          depths=[1, 1], num_attention_heads=[2, 2], hidden_size=32, patch_embeds_hidden_size=16,
                          projection_dim=8, enable_fusion=False),
        projection_dim=8)
    ClapModel(config).eval().save_pretrained(directory)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, **{c: 4 + i for i, c in enumerate(letters)},
             **{"\u0120" + c: 30 + i for i, c in enumerate(letters)}}  # Ġ: a word's first letter
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    RobertaTokenizer(vocab_file=str(directory / "vocab.json"), merges_file=str(directory / "merges.txt"),
                     model_max_length=40).save_pretrained(directory)
    ClapFeatureExtractor(feature_size=16, sampling_rate=48000, max_length_s=1, hop_length=480,
                         fft_window_size=1024, truncation="rand_trunc").save_pretrained(directory)
    return directory
