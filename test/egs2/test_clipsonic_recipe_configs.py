"""The CLIPSonic recipes' configs agree with each other (mel settings) and build."""

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CONF_DIRS = sorted(p for p in (REPO / "egs2").glob("*/clipsonic1/conf") if p.is_dir())


def _diffusion_configs(conf: Path):
    return [p for p in conf.rglob("train_clipsonic*.yaml")]


@pytest.mark.parametrize("conf", CONF_DIRS, ids=lambda p: p.parent.parent.name)
def test_vocoder_mel_matches_every_diffusion_config(conf):
    """A vocoder trained on other mels would be refused at generation time: catch it in the configs."""
    from espnet2_clip.t2a.mel import MelFrontend

    vocoder = yaml.safe_load((conf / "train_vocoder_hifigan.yaml").read_text())
    configs = _diffusion_configs(conf)
    assert configs
    for path in configs:
        diffusion = yaml.safe_load(path.read_text())
        assert MelFrontend(**diffusion["mel_conf"]).mel_conf() == MelFrontend(**vocoder["mel_conf"]).mel_conf(), path


def test_mini_configs_build_and_fit_the_cpu_budget():
    """The mini recipe's models build from their configs; parameter counts as documented."""
    from espnet2_clip.t2a.unet import DiffusionUNet

    conf = REPO / "egs2" / "mini_bridge" / "clipsonic1" / "conf"
    counts = {}
    for name in ("train_clipsonic_iq.yaml", "ci/train_clipsonic_iq.yaml"):
        config = yaml.safe_load((conf / name).read_text())
        unet = DiffusionUNet(**config["unet_conf"])
        counts[name] = sum(p.numel() for p in unet.parameters())
        assert config["model_conf"]["prediction_type"] == "v_prediction"
        assert config["clip_samples"] == 16383
    assert 2.5e6 < counts["train_clipsonic_iq.yaml"] < 3.5e6  # "2.9 M" in the config's comment
    assert 0.8e6 < counts["ci/train_clipsonic_iq.yaml"] < 1.4e6  # "1.1 M"
