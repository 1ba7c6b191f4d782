"""Building a trained model from config.yaml + .pth without ESPnet's task machinery."""

import argparse
import logging
import subprocess
import sys

import pytest
import torch
import yaml

from espnet2_clip.utils.model_files import load_trained_model


def _build(args: argparse.Namespace) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(args.n, 3), torch.nn.BatchNorm1d(3))


@pytest.fixture
def trained(tmp_path):
    torch.manual_seed(0)
    model = _build(argparse.Namespace(n=4))
    with torch.no_grad():
        model[1].running_mean.fill_(0.5)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"n": 4, "other": [1, 2]}))
    torch.save(model.state_dict(), tmp_path / "model.pth")
    return tmp_path, model


def test_loads_parameters_and_buffers_with_the_config_beside_the_model(trained):
    root, model = trained
    loaded, args = load_trained_model(_build, None, root / "model.pth")
    assert args.n == 4 and args.other == [1, 2]
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    assert loaded[1].running_mean.tolist() == [0.5] * 3
    untrained, _ = load_trained_model(_build, root / "config.yaml")  # no parameter file: built only
    assert untrained[1].running_mean.tolist() == [0.0] * 3


def test_clear_errors(trained, tmp_path_factory, caplog):
    root, model = trained
    with pytest.raises(FileNotFoundError, match="training config not found: .*nope.yaml"):
        load_trained_model(_build, root / "nope.yaml", root / "model.pth")
    with pytest.raises(FileNotFoundError, match="model file not found"):
        load_trained_model(_build, root / "config.yaml", root / "nope.pth")
    (root / "bad.yaml").write_text("n: [1\n")
    with pytest.raises(ValueError, match="bad.yaml is not valid YAML"):
        load_trained_model(_build, root / "bad.yaml")
    (root / "list.yaml").write_text("- 1\n")
    with pytest.raises(ValueError, match="expected a mapping of training options, got list"):
        load_trained_model(_build, root / "list.yaml")
    state = model.state_dict()
    torch.save({k: v for k, v in state.items() if not k.startswith("1.")}, root / "partial.pth")
    with pytest.raises(ValueError, match=r"partial.pth lacks 4 of the model's parameters, e.g. \['1.weight'"):
        load_trained_model(_build, root / "config.yaml", root / "partial.pth")
    (root / "other.yaml").write_text(yaml.safe_dump({"n": 5}))
    with pytest.raises(ValueError, match="(?s)does not fit the model of its config: .*size mismatch"):
        load_trained_model(_build, root / "other.yaml", root / "model.pth")
    (root / "junk.pth").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="cannot read the model file .*junk.pth"):
        load_trained_model(_build, root / "config.yaml", root / "junk.pth")
    torch.save(dict(state, extra=torch.zeros(1)), root / "extra.pth")
    with caplog.at_level(logging.WARNING):
        load_trained_model(_build, root / "config.yaml", root / "extra.pth")
    assert "1 entries the model does not have are ignored, e.g. ['extra']" in caplog.text


def test_inference_front_ends_do_not_import_espnets_task_machinery():
    """What makes them start in seconds: neither ESPnet's AbsTask nor its enh task is imported."""
    code = ("import sys, espnet2_clip.bin.clipsep_inference, espnet2_clip.bin.clipsonic_inference; "
            "print(sorted(m for m in ('espnet2.tasks.abs_task', 'espnet2.tasks.enh', 'espnet2_clip.register') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
