#!/usr/bin/env python3
"""Train CLIPSonic's HiFi-GAN vocoder with ESPnet's GANTrainer (``HiFiGANVocoderTask``)."""

from espnet2_clip import register  # noqa: F401  (registers our classes into ESPnet)
from espnet2_clip.tasks.vocoder import HiFiGANVocoderTask
from espnet2_clip.utils.cpu import flush_denormals


def get_parser():
    """Return the argument parser of the vocoder task."""
    return HiFiGANVocoderTask.get_parser()


def main(cmd=None):
    """Run vocoder training.

    Example:
        python -m espnet2_clip.bin.vocoder_train --config conf/train_vocoder_hifigan.yaml \\
            --train_data_path_and_name_and_type dump/train/wav.scp,speech,sound \\
            --train_shape_file dump/train/wav.scp --valid_data_path_and_name_and_type ... \\
            --output_dir exp/vocoder
    """
    flush_denormals()
    HiFiGANVocoderTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
