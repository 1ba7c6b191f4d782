#!/usr/bin/env python3
"""ESPnet's target-speaker-extraction inference with our classes registered.

``python -m espnet2_clip.bin.tse_inference`` is ``python -m espnet2.bin.enh_tse_inference``
after :mod:`espnet2_clip.register` (a model trained with ``extractor: clipsep`` is rebuilt
through ESPnet's registries). Output: ``<output_dir>/spk1.scp`` and ``wavs/1/<uttid>.wav``.
"""

from espnet2.bin import enh_tse_inference

from espnet2_clip import register  # noqa: F401  (registers our classes into ESPnet)
from espnet2_clip.utils.cpu import flush_denormals


def get_parser():
    """Return the argument parser of ESPnet's TSE inference."""
    return enh_tse_inference.get_parser()


def main(cmd=None):
    """Run TSE inference.

    Example:
        python -m espnet2_clip.bin.tse_inference --train_config exp/tse/config.yaml \\
            --model_file exp/tse/valid.loss.best.pth --fs 16000 --output_dir exp/tse/decode \\
            --data_path_and_name_and_type dump/test/wav.scp,speech_mix,sound \\
            --data_path_and_name_and_type dump/test/enroll_spk1.scp,enroll_ref1,text
    """
    flush_denormals()
    enh_tse_inference.main(cmd)


if __name__ == "__main__":
    main()
