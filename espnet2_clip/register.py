"""The ONLY place that adds espnet2_clip classes to ESPnet's registries (no ESPnet patching).

Importing this module registers, idempotently:
  * ``clipsep`` into ``espnet2.tasks.enh_tse.extractor_choices`` (use CLIPSep as a TSE
    extractor with precomputed query embeddings as ``enroll_ref1``).

Every ``python -m espnet2_clip.bin.*`` entry point imports it; Python users who drive ESPnet's
own classes (e.g. ``espnet2.bin.enh_tse_inference.SeparateSpeech``) import it first.
"""

import espnet2.tasks.enh_tse as _enh_tse

from espnet2_clip.sep.tse_extractor import CLIPSepExtractor

_REGISTRY = {
    _enh_tse.extractor_choices: {"clipsep": CLIPSepExtractor},
}


def register() -> None:
    """Add our classes to ESPnet's ClassChoices (safe to call more than once)."""
    for choices, classes in _REGISTRY.items():
        for name, cls in classes.items():
            choices.classes.setdefault(name, cls)


register()
