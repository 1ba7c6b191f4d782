"""WeightAverage: the moving-average arithmetic, its warm-up, bad settings, state_dict round trip."""

import pytest
import torch

from espnet2_clip.utils.weight_average import WeightAverage


def test_average_follows_the_formula_with_warm_up():
    torch.manual_seed(0)
    module = torch.nn.Linear(3, 2)
    ema = WeightAverage(module, decay=0.9)
    expected = module.weight.detach().clone()
    for n in range(30):
        with torch.no_grad():
            module.weight.add_(torch.randn_like(module.weight))
        decay = min(0.9, (1 + n) / (10 + n))
        assert ema.current_decay() == pytest.approx(decay)
        ema.update(module)
        expected = decay * expected + (1 - decay) * module.weight.detach()
    torch.testing.assert_close(ema.average.weight, expected)
    assert int(ema.num_updates) == 30
    assert not any(p.requires_grad for p in ema.average.parameters())
    # the average really lags: it is not the current weights
    assert (ema.average.weight - module.weight).abs().max() > 0.1


def test_buffers_are_copied_not_averaged():
    module = torch.nn.BatchNorm1d(4)
    ema = WeightAverage(module, decay=0.99)
    module.running_mean.fill_(3.0)
    ema.update(module)
    torch.testing.assert_close(ema.average.running_mean, torch.full((4,), 3.0))


def test_state_dict_round_trip_and_bad_settings():
    module = torch.nn.Linear(2, 2)
    ema = WeightAverage(module, decay=0.5)
    for _ in range(3):
        with torch.no_grad():
            module.weight.mul_(2.0)
        ema.update(module)
    fresh = WeightAverage(torch.nn.Linear(2, 2), decay=0.5)
    fresh.load_state_dict(ema.state_dict())
    torch.testing.assert_close(fresh.average.weight, ema.average.weight)
    assert fresh.current_decay() == ema.current_decay()
    for decay in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="decay must be in"):
            WeightAverage(module, decay=decay)
    with pytest.raises(ValueError, match="has 2 parameters, the update 4"):
        ema.update(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)))
