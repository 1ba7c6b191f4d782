#!/usr/bin/env python3
"""Deprecated name of ``espnet2_clip.bin.clip_train`` (small-CLIP training on captioned images); kept for one release."""

from espnet2_clip.bin.clip_train import *  # noqa: F401,F403  (old imports keep working)
from espnet2_clip.bin.clip_train import main  # noqa: F401

if __name__ == "__main__":
    from espnet2_clip.utils.cli import run_renamed

    run_renamed("train_clip", "clip_train")
