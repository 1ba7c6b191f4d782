#!/usr/bin/env python3
"""ESPnet's target-speaker-extraction training with our classes registered.

``python -m espnet2_clip.bin.tse_train`` is ``python -m espnet2.bin.enh_tse_train`` after
:mod:`espnet2_clip.register`, so configs may name ``extractor: clipsep`` and the
``clipsep_bce`` / ``clipsep_mask`` criterion and wrapper.
"""

from espnet2.tasks.enh_tse import TargetSpeakerExtractionTask

from espnet2_clip import register  # noqa: F401  (registers our classes into ESPnet)
from espnet2_clip.utils.cpu import flush_denormals


def get_parser():
    """Return the argument parser of ESPnet's TSE task (with our choices)."""
    return TargetSpeakerExtractionTask.get_parser()


def main(cmd=None):
    """Run TSE training.

    Example:
        python -m espnet2_clip.bin.tse_train --config conf/tse_clipsep.yaml \\
            --train_data_path_and_name_and_type dump/train/wav.scp,speech_mix,sound \\
            --train_data_path_and_name_and_type dump/train/spk1.scp,speech_ref1,sound \\
            --train_data_path_and_name_and_type dump/train/enroll_spk1.scp,enroll_ref1,text ...
    """
    flush_denormals()
    TargetSpeakerExtractionTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
