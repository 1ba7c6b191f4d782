#!/usr/bin/env python3
"""Train the CLIPSonic mel diffusion model with ESPnet's trainer (``CLIPSonicTask``)."""

from espnet2_clip import register  # noqa: F401  (registers our classes into ESPnet)
from espnet2_clip.tasks.clipsonic import CLIPSonicTask
from espnet2_clip.utils.cpu import flush_denormals


def get_parser():
    """Return the argument parser of the CLIPSonic task."""
    return CLIPSonicTask.get_parser()


def main(cmd=None):
    """Run CLIPSonic training.

    Example:
        python -m espnet2_clip.bin.clipsonic_train --config conf/train_clipsonic.yaml \\
            --train_data_path_and_name_and_type dump/train/wav.scp,speech,sound \\
            --train_data_path_and_name_and_type dump/train/query.scp,query,npy ...
    """
    flush_denormals()
    CLIPSonicTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
