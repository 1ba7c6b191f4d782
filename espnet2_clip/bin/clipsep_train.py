#!/usr/bin/env python3
"""Train CLIPSep / CLIPSep-NIT / baselines with ESPnet's trainer (``CLIPSepTask``)."""

from espnet2_clip import register  # noqa: F401  (registers our classes into ESPnet)
from espnet2_clip.tasks.clipsep import CLIPSepTask
from espnet2_clip.utils.cpu import flush_denormals


def get_parser():
    """Return the argument parser of the CLIPSep task."""
    return CLIPSepTask.get_parser()


def main(cmd=None):
    """Run CLIPSep training.

    Example:
        python -m espnet2_clip.bin.clipsep_train --config conf/train_clipsep.yaml \\
            --train_data_path_and_name_and_type dump/train/wav.scp,speech_ref1,text \\
            --train_data_path_and_name_and_type dump/train/query.scp,query,npy ...

    ``wav.scp`` may be given as ``sound`` (each file read whole) or as ``text`` (the preprocessor
    gets the path and reads only the training crop: the same samples, less I/O).
    """
    flush_denormals()
    CLIPSepTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
