"""The ONLY place that adds espnet2_clip classes to ESPnet's registries (no ESPnet patching).

Importing this module registers, idempotently:
  * ``clipsep`` into ``espnet2.tasks.enh_tse.extractor_choices`` (CLIPSep as a TSE extractor
    with precomputed query embeddings as ``enroll_ref1``);
  * ``clipsep_bce`` into ``espnet2.tasks.enh.criterion_choices`` (CLIPSep's weighted BCE on
    binary masks in the warped domain) and ``clipsep_mask`` into
    ``espnet2.tasks.enh.loss_wrapper_choices`` (scores the extractor's mask); the TSE task reads
    these two registries too.

The training and TSE entry points (``python -m espnet2_clip.bin.*_train``, ``tse_*``) import it;
Python users who drive ESPnet's own classes (e.g. ``espnet2.bin.enh_tse_inference.SeparateSpeech``)
import it first. The CLIPSep / CLIPSonic inference front ends do not need it (nor ESPnet's task
machinery: ``espnet2_clip.utils.model_files``), so they start in a few seconds.
"""

import espnet2.tasks.enh as _enh
import espnet2.tasks.enh_tse as _enh_tse

from espnet2_clip.sep.tse_extractor import CLIPSepExtractor
from espnet2_clip.sep.tse_loss import CLIPSepMaskBCELoss, ExtractorMaskSolver

_REGISTRY = {
    _enh_tse.extractor_choices: {"clipsep": CLIPSepExtractor},
    _enh.criterion_choices: {"clipsep_bce": CLIPSepMaskBCELoss},
    _enh.loss_wrapper_choices: {"clipsep_mask": ExtractorMaskSolver},
}


def register() -> None:
    """Add our classes to ESPnet's ClassChoices (safe to call more than once)."""
    for choices, classes in _REGISTRY.items():
        for name, cls in classes.items():
            choices.classes.setdefault(name, cls)


register()
