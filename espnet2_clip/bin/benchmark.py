#!/usr/bin/env python3
"""Deprecated name of ``espnet2_clip.bin.clipsep_benchmark`` (CLIPSep training throughput / inference speed); kept for one release."""

from espnet2_clip.bin.clipsep_benchmark import *  # noqa: F401,F403  (old imports keep working)
from espnet2_clip.bin.clipsep_benchmark import main  # noqa: F401

if __name__ == "__main__":
    from espnet2_clip.utils.cli import run_renamed

    run_renamed("benchmark", "clipsep_benchmark")
