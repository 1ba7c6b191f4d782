"""Training CLIPSep on an ESPnet separator takes a config and no code: CLI training, reload, separation."""

import numpy as np
import pytest
import torch
import yaml
from shared_helpers import tiny_clipsep_config, train_clipsep, write_clips

SR = 16000
CLIP = 4095  # 64 STFT frames with hop 64
BACKBONES = {
    "dprnn": {"out_channels": 4, "separator": "dprnn",
              "separator_conf": {"layer": 1, "unit": 8, "segment_size": 8, "nonlinear": "tanh"}},
    "tcn": {"out_channels": 4, "separator": "tcn",
            "separator_conf": {"layer": 2, "stack": 1, "bottleneck_dim": 8, "hidden_dim": 16, "nonlinear": "linear"}},
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    write_clips(root)
    return root


def train(root, data, tiny_clip_dir, backbone_conf, max_epoch=2):
    config = tiny_clipsep_config(tiny_clip_dir, CLIP, backbone="espnet_separator", backbone_conf=backbone_conf,
                                 head="query", max_epoch=max_epoch, optim_conf={"lr": 0.003})
    del config["unet_conf"]
    return train_clipsep(root, data, config)


@pytest.mark.parametrize("name", list(BACKBONES))
def test_train_on_an_espnet_separator_and_separate(name, data, tmp_path, tiny_clip_dir):
    from espnet2_clip.bin.clipsep_inference import TextQueriedSeparation
    from espnet2_clip.sep.espnet_separator_backbone import ESPnetSeparatorBackbone

    exp = train(tmp_path, data, tiny_clip_dir, BACKBONES[name])
    config = yaml.safe_load((exp / "config.yaml").read_text())
    assert config["backbone"] == "espnet_separator" and config["backbone_conf"]["separator"] == name
    for checkpoint in ("1epoch.pth", "2epoch.pth", "valid.loss.best.pth", "latest.pth"):
        assert (exp / checkpoint).exists(), checkpoint
    state = torch.load(exp / "valid.loss.best.pth", map_location="cpu")
    assert any(key.startswith("backbone.separator.") for key in state)
    # ESPnet's per-epoch stats: finite losses, both epochs trained
    stats = torch.load(exp / "checkpoint.pth", map_location="cpu", weights_only=False)["reporter"]["stats"]
    losses = [stats[epoch]["train"]["loss"] for epoch in (1, 2)]
    assert all(np.isfinite(loss) for loss in losses)

    sep = TextQueriedSeparation(exp / "config.yaml", exp / "valid.loss.best.pth")
    assert isinstance(sep.model.backbone, ESPnetSeparatorBackbone) and sep.model.backbone.separator_name == name
    for key, value in state.items():  # the checkpoint's weights, not a fresh initialisation
        torch.testing.assert_close(sep.model.state_dict()[key], value, msg=key)
    mixture = np.random.default_rng(2).standard_normal(CLIP * 2 + 100).astype(np.float32) * 0.1
    estimate = sep(mixture, SR, "a pure tone")
    assert estimate.shape == mixture.shape and np.all(np.isfinite(estimate))
    assert 0 < np.abs(estimate).max() <= np.abs(mixture).max() * 1.01
