"""Separator backbones: the registry, the ESPnet separator adapter, old U-Net configs and checkpoints."""

import argparse

import pytest
import torch
import yaml
from espnet2.enh.separator.abs_separator import AbsSeparator
from espnet2.tasks.enh import separator_choices

from espnet2_clip.sep.abs_backbone import AbsSeparatorBackbone
from espnet2_clip.sep.backbone_config import backbone_name_and_conf, describe_backbone
from espnet2_clip.sep.espnet_separator_backbone import ESPnetSeparatorBackbone
from espnet2_clip.sep.unet import AudioUNet
from espnet2_clip.tasks.clipsep import CLIPSepTask, backbone_choices, build_backbone

F = 64  # warped bins of the tiny front end
FRONTEND = "{n_fft: 256, hop_length: 64, num_warped_bins: 64}"
TINY = {
    "dprnn": {"separator": "dprnn", "separator_conf": {"layer": 1, "unit": 8, "segment_size": 8, "nonlinear": "tanh"}},
    "tcn": {"separator": "tcn", "separator_conf": {"layer": 2, "stack": 1, "bottleneck_dim": 8, "hidden_dim": 16,
                                                  "nonlinear": "linear"}},
    "rnn": {"separator": "rnn", "separator_conf": {"layer": 1, "unit": 8, "nonlinear": "tanh"}},
    "tfgridnetv3": {"separator": "tfgridnetv3", "input_type": "complex",
                    "separator_conf": {"n_layers": 1, "lstm_hidden_units": 4, "emb_dim": 4, "attn_n_head": 1}},
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parse(*argv):
    """A fresh parser each time: ESPnet's NestedDictAction updates its default dict in place."""
    return CLIPSepTask.get_parser().parse_args(
        ["--frontend_conf", FRONTEND, "--query_conf", "{input_dim: 8}", *argv])


def dprnn_args(k=4, **extra):
    conf = {"out_channels": k, **TINY["dprnn"], **extra}
    return parse("--backbone", "espnet_separator", "--backbone_conf", yaml.safe_dump(conf, default_flow_style=True))


def test_registry_lookup_and_default():
    assert backbone_choices.default == "unet"
    assert backbone_choices.get_class("unet") is AudioUNet
    assert backbone_choices.get_class("espnet_separator") is ESPnetSeparatorBackbone
    assert issubclass(AudioUNet, AbsSeparatorBackbone)
    args = parse()
    assert args.backbone == "unet" and args.backbone_conf == {}
    with pytest.raises(SystemExit):  # argparse names the valid choices
        parse("--backbone", "nosuch")


@pytest.mark.parametrize("name", list(TINY))
def test_espnet_separator_gives_k_maps_on_the_warped_grid(name):
    torch.manual_seed(0)
    backbone = ESPnetSeparatorBackbone(input_dim=F, out_channels=4, **TINY[name])
    for frames in (17, 40):  # any frame count (no padding constraint as with the U-Net)
        x = torch.randn(3, 1, F, frames, requires_grad=True)
        maps = backbone(x)
        assert maps.shape == (3, 4, F, frames) and maps.dtype == torch.float32
        assert torch.isfinite(maps).all()
        maps.pow(2).sum().backward()
        assert x.grad.abs().sum() > 0
        assert all(p.grad is not None for p in backbone.separator.parameters() if p.requires_grad)
    # the k maps differ (not one output copied k times)
    assert not torch.allclose(maps[:, 0], maps[:, 1])


def test_maps_are_the_separator_masks_or_outputs():
    torch.manual_seed(0)
    tanh = ESPnetSeparatorBackbone(input_dim=F, out_channels=3, **TINY["dprnn"])
    maps = tanh(torch.randn(2, 1, F, 20))
    assert maps.abs().max() < 1  # the DPRNN masks after its tanh
    linear = ESPnetSeparatorBackbone(input_dim=F, out_channels=3, **TINY["tcn"]).eval()
    x = torch.randn(2, 1, F, 20) * 5
    feats = linear.input_norm(x)[:, 0].transpose(1, 2)
    masks = linear.separator(feats, torch.full((2,), 20))[2]
    torch.testing.assert_close(linear(x)[:, 1], masks["mask_spk2"].transpose(1, 2))
    outputs = ESPnetSeparatorBackbone(input_dim=F, out_channels=3, features="outputs", **TINY["tcn"]).eval()
    outputs.load_state_dict(linear.state_dict())
    masked = outputs.separator(feats, torch.full((2,), 20))[0]
    torch.testing.assert_close(outputs(x)[:, 2], masked[2].transpose(1, 2))  # input * mask


def test_tiny_dprnn_learns_a_fixed_batch():
    """A few Adam steps on one batch lower CLIPSep's loss through the adapter."""
    torch.manual_seed(0)
    model = CLIPSepTask.build_model(dprnn_args())
    clips, query = torch.randn(4, 4095) * 0.1, torch.randn(4, 8)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        torch.manual_seed(1)  # the same pairs and gains every step
        loss = model(clips, query=query)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]


@pytest.mark.parametrize("conf, match", [
    ({"separator": "nosuch"}, r"backbone_conf\.separator: unknown ESPnet separator 'nosuch'.*dprnn"),
    ({"separator": "tfgridnetv2"}, r"backbone_conf: ESPnet separator 'tfgridnetv2' does not run on CLIPSep's features"),
    ({"separator": "tfgridnetv3", "separator_conf": {"n_layers": 1, "emb_dim": 4, "attn_n_head": 1}},
     r"does not run on CLIPSep's features.*try backbone_conf\.input_type: complex"),
    ({"separator": "dprnn", "separator_conf": {"num_spk": 3}},
     r"backbone_conf\.separator_conf\.num_spk=3 conflicts.*out_channels"),
    ({"separator": "dprnn", "separator_conf": {"input_dim": 32}}, r"separator_conf\.input_dim=32 conflicts"),
    ({"separator": "dprnn", "separator_conf": {"nonlinear": "linear"}},
     r"backbone_conf\.separator_conf: cannot build ESPnet separator 'dprnn'.*nonlinear=linear"),
    ({"separator": "dprnn", "separator_conf": {"bogus": 1}}, r"backbone_conf\.separator_conf: .*'bogus'"),
    ({"separator": "dprnn", "input_type": "stereo"}, r"backbone_conf\.input_type"),
    ({"separator": "tfgridnetv3", "input_type": "complex", "features": "masks",
      "separator_conf": {"n_layers": 1, "emb_dim": 4, "attn_n_head": 1}}, r"features: masks.*returns no mask_spk"),
    ({"separator": "dprnn", "typo": 1}, r"backbone_conf: cannot build backbone 'espnet_separator'.*typo"),
    ({"separator": "dprnn", "out_channels": "four"}, r"backbone_conf: cannot build backbone 'espnet_separator'"),
])
def test_bad_backbone_conf_is_a_clear_error(conf, match):
    args = parse("--backbone", "espnet_separator", "--backbone_conf", yaml.safe_dump(conf, default_flow_style=True))
    with pytest.raises(ValueError, match=match):
        CLIPSepTask.build_model(args)


def test_bad_unet_conf_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unet_conf / backbone_conf: cannot build backbone 'unet'.*num_level"):
        CLIPSepTask.build_model(parse("--unet_conf", "{num_levels: 5}"))


OLD_CONFIG = {  # config.yaml keys of a model trained before backbones were swappable
    "frontend_conf": {"n_fft": 256, "hop_length": 64, "num_warped_bins": 64},
    "unet_conf": {"num_downs": 5, "base_channels": 4, "out_channels": 4},
    "unet_init": "pytorch",
    "head": "query", "head_conf": {}, "query": "embedding", "query_conf": {"input_dim": 8}, "model_conf": {},
}


def test_old_config_with_unet_conf_builds_the_same_unet():
    model = CLIPSepTask.build_model(argparse.Namespace(**OLD_CONFIG))
    reference = AudioUNet(**OLD_CONFIG["unet_conf"])
    assert type(model.backbone) is AudioUNet and model.unet is model.backbone
    assert count(model.backbone) == count(reference) == 49038
    assert [tuple(p.shape) for p in model.backbone.parameters()] == [tuple(p.shape) for p in reference.parameters()]
    assert model.head.query.num_channels == 4
    # the same through the command line, and the new spelling
    new = CLIPSepTask.build_model(parse("--unet_conf", "{num_downs: 5, base_channels: 4, out_channels: 4}"))
    spelled = CLIPSepTask.build_model(parse("--backbone", "unet", "--backbone_conf",
                                            "{num_downs: 5, base_channels: 4, out_channels: 4}"))
    assert count(new) == count(spelled) == count(model)


def test_backbone_conf_overrides_unet_conf_key_by_key():
    args = parse("--unet_conf", "{num_downs: 5, base_channels: 4, out_channels: 4}", "--backbone_conf",
                 "{out_channels: 6}")
    assert backbone_name_and_conf(args) == ("unet", {"in_channels": 1, "num_downs": 5, "base_channels": 4,
                                                      "out_channels": 6})
    backbone = build_backbone(args, F)
    assert backbone.out_channels == 6 and backbone.num_downs == 5
    # another backbone ignores unet_conf
    assert backbone_name_and_conf({"backbone": "espnet_separator", "unet_conf": {"num_downs": 5},
                                   "backbone_conf": {"separator": "tcn"}}) == ("espnet_separator", {"separator": "tcn"})


def test_describe_backbone():
    assert describe_backbone(OLD_CONFIG) == "U-Net 5 levels, 4 ch, k=4"
    conf = {"backbone": "espnet_separator", "backbone_conf": {"out_channels": 16, **TINY["rnn"]}}
    assert describe_backbone(conf) == "ESPnet rnn (layer=1, unit=8, nonlinear=tanh), k=16"


def test_old_checkpoint_with_unet_keys_loads(tmp_path):
    """Checkpoints and packed models made before the rename hold ``unet.*`` keys; they still load
    (ESPnet loads non-strictly, so a silent miss would leave a random U-Net)."""
    torch.manual_seed(0)
    trained = CLIPSepTask.build_model(argparse.Namespace(**OLD_CONFIG))
    for p in trained.parameters():
        p.data.normal_()
    old_state = {("unet." + k[len("backbone."):] if k.startswith("backbone.") else k): v
                 for k, v in trained.state_dict().items()}
    assert any(k.startswith("unet.levels.") for k in old_state) and not any(k.startswith("backbone.") for k in old_state)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(OLD_CONFIG))
    torch.save(old_state, tmp_path / "model.pth")
    loaded, _ = CLIPSepTask.build_model_from_file(tmp_path / "config.yaml", tmp_path / "model.pth")
    for (name, a), b in zip(trained.state_dict().items(), loaded.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    # strict loading finds every key too
    fresh = CLIPSepTask.build_model(argparse.Namespace(**OLD_CONFIG))
    assert fresh.load_state_dict(old_state, strict=True).missing_keys == []


def test_mini_recipe_dprnn_config_matches_the_unet_config():
    """The mini recipe's DPRNN row: same k, data and training as CLIPSep's U-Net, a similar size."""
    from pathlib import Path

    recipe = Path(__file__).resolve().parents[3] / "egs2" / "mini_bridge" / "clipsep1"
    models = {}
    for name in ("train_clipsep.yaml", "train_clipsep_dprnn.yaml"):
        args = CLIPSepTask.get_parser().parse_args(["--config", str(recipe / "conf" / name)])
        models[name] = (args, CLIPSepTask.build_model(args))
    (unet_args, unet), (dprnn_args_, dprnn) = models.values()
    assert type(unet.backbone) is AudioUNet and dprnn.backbone.separator_name == "dprnn"
    assert dprnn.backbone.out_channels == unet.backbone.out_channels == 16
    for key in ("batch_size", "num_iters_per_epoch", "max_epoch", "clip_samples", "optim_conf", "query_conf", "head"):
        assert getattr(dprnn_args_, key) == getattr(unet_args, key), key
    assert 0.8 < count(dprnn) / count(unet) < 1.25
    assert "conf/train_clipsep_dprnn.yaml" in (recipe / "run.sh").read_text()


class _OwnSeparator(AbsSeparator):
    """A user's own ESPnet separator (what one new file would hold): a linear map per frame."""

    def __init__(self, input_dim: int, num_spk: int = 2):
        super().__init__()
        self._num_spk = num_spk
        self.proj = torch.nn.Linear(input_dim, input_dim * num_spk)

    @property
    def num_spk(self):
        return self._num_spk

    def forward(self, input, ilens, additional=None):
        out = self.proj(input).unflatten(-1, (input.shape[-1], self.num_spk))
        return list(out.unbind(-1)), ilens, {}


class _TinyBackbone(AbsSeparatorBackbone):
    """A user's own backbone: a 3x3 convolution to k maps."""

    def __init__(self, out_channels: int = 3):
        super().__init__()
        self.out_channels = out_channels
        self.conv = torch.nn.Conv2d(1, out_channels, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


def test_own_separator_or_backbone_is_one_registry_line(monkeypatch):
    monkeypatch.setitem(separator_choices.classes, "own", _OwnSeparator)
    model = CLIPSepTask.build_model(parse("--backbone", "espnet_separator", "--backbone_conf",
                                          "{out_channels: 5, separator: own}"))
    assert isinstance(model.backbone.separator, _OwnSeparator) and model.head.query.num_channels == 5
    assert model.features(torch.rand(2, F, 30)).shape == (2, 5, F, 30)

    monkeypatch.setitem(backbone_choices.classes, "tiny", _TinyBackbone)
    model = CLIPSepTask.build_model(parse("--backbone", "tiny", "--backbone_conf", "{out_channels: 2}"))
    assert isinstance(model.backbone, _TinyBackbone) and model.head.query.num_channels == 2
    loss = model(torch.randn(4, 4095) * 0.1, query=torch.randn(4, 8))[0]
    loss.backward()
    assert model.backbone.conv.weight.grad.abs().sum() > 0
