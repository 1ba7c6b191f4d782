#!/usr/bin/env python3
"""Train the evaluation audio classifier (small CNN on log-mels) on labelled real audio.

In the bridge-world recipe: the training videos' audio (``dump/train/wav.scp``) with their
labels, validated on the held-out videos. It never sees generated audio::

    python -m espnet2_clip.bin.classifier_train --train_scp dump/train/wav.scp \\
        --train_label dump/train/label --valid_scp dump/valid/wav.scp \\
        --valid_label dump/valid/label --output_dir exp/classifier

Writes ``config.yaml``, ``model.pth`` (see :mod:`espnet2_clip.metrics.audio_classifier`) and
``train_info.json`` (validation accuracy, time). A plain loop (Adam, random crops of
``--clip_samples`` with random gain): a few-hundred-k-parameter model trained in seconds.
"""

import argparse
import json
import logging
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf
import torch

from espnet2_clip.metrics.audio_classifier import AudioClassifier, random_crops, save_classifier
from espnet2_clip.utils.cpu import flush_denormals
from espnet2_clip.utils.fileio import read_scp


def load_labelled(wav_scp: str, label_file: str, fs: int) -> Tuple[List[str], List[np.ndarray], List[str]]:
    """(ids, mono waves, labels) of the ids in both lists (sorted)."""
    wavs, labels = read_scp(wav_scp), read_scp(label_file)
    keys = sorted(set(wavs) & set(labels))
    if not keys:
        raise ValueError(f"{wav_scp} and {label_file} share no ids")
    waves = []
    for k in keys:
        x, sr = sf.read(wavs[k], dtype="float32", always_2d=True)
        if sr != fs:
            raise ValueError(f"{wavs[k]}: {sr} Hz, expected {fs} Hz")
        waves.append(x.mean(1))
    return keys, waves, [labels[k] for k in keys]


def train_classifier(waves: Sequence[np.ndarray], labels: Sequence[str], valid: Optional[Tuple] = None,
                     clip_samples: int = 65535, steps: int = 300, batch_size: int = 16, lr: float = 2e-3,
                     gain_db: float = 10.0, seed: int = 0, classifier_conf: Optional[Dict] = None,
                     class_names: Optional[Sequence[str]] = None) -> Tuple[AudioClassifier, Dict]:
    """Fit an :class:`AudioClassifier`; ``valid`` = (waves, labels) scored on centre crops."""
    names = list(class_names) if class_names else sorted(set(labels))
    unknown = sorted(set(labels) - set(names))
    if unknown:
        raise ValueError(f"labels not among the class names: {unknown}")
    index = {n: i for i, n in enumerate(names)}
    y = np.array([index[lab] for lab in labels])
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = AudioClassifier(names, **(classifier_conf or {}))
    optim = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(optim, max_lr=lr, total_steps=steps, pct_start=0.1)
    start = time.time()
    model.train()
    for step in range(1, steps + 1):
        idx = rng.choice(len(waves), size=min(batch_size, len(waves)), replace=len(waves) < batch_size)
        x = torch.from_numpy(random_crops([waves[i] for i in idx], clip_samples, rng, gain_db))
        loss = torch.nn.functional.cross_entropy(model(x), torch.from_numpy(y[idx]))
        optim.zero_grad()
        loss.backward()
        optim.step()
        sched.step()
        if step == 1 or step % max(1, steps // 10) == 0:
            logging.info(f"step {step}/{steps}: loss {loss.item():.4f} ({time.time() - start:.0f} s)")
    model.eval()
    info = {"steps": steps, "train_seconds": round(time.time() - start, 1), "final_loss": float(loss.item()),
            "n_train": len(waves), "class_names": names,
            "n_params": int(sum(p.numel() for p in model.parameters()))}
    if valid is not None:
        v_waves, v_labels = valid
        crops = [_centre_crop(w, clip_samples) for w in v_waves]
        pred, _ = model.predict(crops)
        info["valid_accuracy"] = float(np.mean([names[p] == lab for p, lab in zip(pred, v_labels)]))
        info["n_valid"] = len(v_waves)
    return model, info


def _centre_crop(w: np.ndarray, n: int) -> np.ndarray:
    if len(w) <= n:
        return w
    s = (len(w) - n) // 2
    return w[s : s + n]


def get_parser() -> argparse.ArgumentParser:
    """Argument parser of the classifier trainer."""
    from espnet2.utils.nested_dict_action import NestedDictAction

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_scp", required=True, help="'uttid wav' list of real audio")
    parser.add_argument("--train_label", required=True, help="'uttid class' list")
    parser.add_argument("--valid_scp", default=None)
    parser.add_argument("--valid_label", default=None)
    parser.add_argument("--class_names", default=None,
                        help="File with one class name per line (default: the sorted training labels)")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--clip_samples", type=int, default=65535, help="Training crop length")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--gain_db", type=float, default=10.0, help="Random gain range (±dB) of the crops")
    parser.add_argument("--classifier_conf", action=NestedDictAction, default=dict(),
                        help="AudioClassifier options (n_mels, channels, embed_dim, ...)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log_level", default="INFO")
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> None:
    """CLI entry point."""
    parser = get_parser()
    args = parser.parse_args(cmd)
    flush_denormals()
    logging.basicConfig(level=args.log_level, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    if bool(args.valid_scp) != bool(args.valid_label):
        parser.error("--valid_scp and --valid_label go together")
    if args.steps < 1 or args.batch_size < 1 or args.clip_samples < 1:
        parser.error("--steps, --batch_size and --clip_samples must be >= 1")
    fs = int(args.classifier_conf.get("fs", 16000))
    _, waves, labels = load_labelled(args.train_scp, args.train_label, fs)
    valid = None
    if args.valid_scp:
        _, v_waves, v_labels = load_labelled(args.valid_scp, args.valid_label, fs)
        valid = (v_waves, v_labels)
    names = None
    if args.class_names:
        names = [line.strip() for line in open(args.class_names) if line.strip()]
    model, info = train_classifier(waves, labels, valid, args.clip_samples, args.steps, args.batch_size, args.lr,
                                   args.gain_db, args.seed, args.classifier_conf, names)
    paths = save_classifier(model, args.output_dir, {"clip_samples": args.clip_samples})
    with open(paths["config"].parent / "train_info.json", "w") as f:
        json.dump(info, f, indent=2)
    logging.info(f"classifier: valid accuracy {info.get('valid_accuracy', 'n/a')}; wrote {paths['config'].parent}")


if __name__ == "__main__":
    main(sys.argv[1:])
