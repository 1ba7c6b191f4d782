"""CLIP query encoder over open_clip.

* :mod:`espnet2_clip.query.clip_encoder` - ``CLIPQueryEncoder`` (text / image / frame queries,
  raw unnormalised embeddings, ``PROMPT_ENSEMBLE`` / ``SINGLE_PROMPT``).
* :mod:`espnet2_clip.query.configs` - ``espnet2clip-tiny`` (tests) and ``espnet2clip-small``
  (bridge world) open_clip configs.
* :mod:`espnet2_clip.query.clip_training` - train a CLIP on captioned images only.
"""
