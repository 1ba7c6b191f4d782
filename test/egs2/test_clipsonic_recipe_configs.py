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


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        assert not repeated, f"keys given twice at line {node.start_mark.line + 1}: {repeated}"
        return super().construct_mapping(node, deep=deep)


@pytest.mark.parametrize("conf", CONF_DIRS, ids=lambda p: p.parent.parent.name)
def test_model_conf_reaches_the_model_and_trained_configs_average_weights(conf):
    """Every diffusion config's ``model_conf`` is accepted by the model, no key is given twice, and the
    configs that train for real (not the CI ones) sample with a moving average of the weights."""
    from espnet2_clip.t2a.espnet_model import ESPnetCLIPSonicModel
    from espnet2_clip.t2a.mel import MelFrontend
    from espnet2_clip.t2a.unet import DiffusionUNet

    for path in _diffusion_configs(conf):
        config = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
        unet = DiffusionUNet(cond_dim=config["unet_conf"]["cond_dim"], channels=(8,), attention_levels=(),
                             emb_dim=16, groups=4)  # a tiny U-Net: the configs' own sizes are tested above
        model = ESPnetCLIPSonicModel(MelFrontend(**config["mel_conf"]), unet, **config["model_conf"])
        if "ci" in path.relative_to(conf).parts:
            continue
        assert model.ema is not None and 0.99 <= model.ema.decay < 1.0, path
