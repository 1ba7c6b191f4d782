"""Shared pytest fixtures (no network)."""

import pytest


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    """A randomly initialised tiny open_clip CLIP saved like ``train_clip`` output.

    Load it with ``CLIPQueryEncoder(model_name=str(tiny_clip_dir), pretrained=None)``
    (embed_dim 32, 32 px images).
    """
    import open_clip
    import torch

    from espnet2_clip.query.clip_training import save_open_clip_dir
    from espnet2_clip.query.configs import TINY_CLIP_CONFIG, register_builtin_configs

    register_builtin_configs()
    torch.manual_seed(0)
    model = open_clip.create_model("espnet2clip-tiny", pretrained=None)
    out = tmp_path_factory.mktemp("tiny_clip")
    save_open_clip_dir(model.eval(), TINY_CLIP_CONFIG, out)
    return out
