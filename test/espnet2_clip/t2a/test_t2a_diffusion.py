"""U-Net shapes, condition dropout, CFG formula, sampler determinism, bad sampler input."""

import pytest
import torch

from espnet2_clip.t2a.diffusion import cfg_combine, check_sampling_args, l2_normalize, sampling_scheduler
from espnet2_clip.t2a.espnet_model import ESPnetCLIPSonicModel
from espnet2_clip.t2a.mel import MelFrontend
from espnet2_clip.t2a.unet import DiffusionUNet


def tiny_model(drop=0.1, **kwargs):
    torch.manual_seed(0)
    mel = MelFrontend(n_fft=256, hop_length=64, n_mels=16)
    unet = DiffusionUNet(cond_dim=32, channels=(8, 16), attention_levels=(1,), num_heads=2, emb_dim=32, groups=4)
    return ESPnetCLIPSonicModel(mel, unet, cond_drop_prob=drop, **kwargs)


def test_unet_shapes_with_padding():
    unet = DiffusionUNet(cond_dim=8, channels=(4, 8, 8), attention_levels=(2,), num_heads=2, emb_dim=16, groups=2)
    x = torch.randn(2, 1, 13, 30)
    out = unet(x, torch.tensor([0, 999]), torch.randn(2, 8))
    assert out.shape == x.shape
    with pytest.raises(ValueError, match="condition has size 7"):
        unet(x, torch.tensor([0, 1]), torch.randn(2, 7))


def test_paper_size_config_counts():
    unet = DiffusionUNet(cond_dim=768, channels=(128, 256, 256, 512), num_res_blocks=2, attention_levels=(2, 3),
                         num_heads=8, emb_dim=512, groups=32, dropout=0.1)
    assert 40e6 < sum(p.numel() for p in unet.parameters()) < 120e6


def test_training_loss_and_backward():
    model = tiny_model()
    loss, stats, weight = model(torch.randn(3, 4095) * 0.1, None, torch.randn(3, 32))
    loss.backward()
    assert loss.item() > 0 and int(weight) == 3 and model.null_embedding.grad is not None
    model.eval()
    a = model(torch.randn(3, 4095) * 0.1, None, torch.randn(3, 32))[0]
    torch.manual_seed(123)
    with pytest.raises(ValueError, match="needs a 'query'"):
        model(torch.randn(3, 4095))
    assert torch.isfinite(a)


def _seeded_loss(model, clips, query):
    torch.manual_seed(1)  # the same noise, steps and condition drops for every model
    return model.train()(clips, None, query)[0]


def test_bf16_training_keeps_float32_weights_loss_and_sampling():
    clips, query = torch.randn(4, 4095) * 0.1, torch.randn(4, 32)
    reference, fast = tiny_model(), tiny_model(train_precision="bf16")
    for model in (reference, fast):  # zero-initialised output layers would hide the U-Net's precision
        torch.manual_seed(2)
        for p in model.unet.parameters():
            if not p.detach().any():
                torch.nn.init.normal_(p.data, std=0.1)
    loss_ref, loss = _seeded_loss(reference, clips, query), _seeded_loss(fast, clips, query)
    assert loss.dtype == torch.float32 and loss.item() != loss_ref.item()  # the U-Net really ran in bfloat16
    assert loss.item() == pytest.approx(loss_ref.item(), rel=0.05)
    loss.backward()
    loss_ref.backward()
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32
               for p in fast.parameters() if p.grad is not None)
    grad, grad_ref = fast.unet.input_conv.weight.grad.flatten(), reference.unet.input_conv.weight.grad.flatten()
    assert torch.nn.functional.cosine_similarity(grad, grad_ref, dim=0) > 0.95
    # validation and sampling run in float32: the same numbers as the float32 model's
    torch.testing.assert_close(fast.eval()(clips, None, query)[0], reference.eval()(clips, None, query)[0])
    mels = [m.sample(query[:2], num_frames=16, num_steps=3, generator=torch.Generator().manual_seed(0))
            for m in (fast, reference)]
    torch.testing.assert_close(*mels)
    with pytest.raises(ValueError, match="model_conf.train_precision.*'fp16'"):
        tiny_model(train_precision="fp16")


def test_condition_dropout_rate_and_null():
    model = tiny_model(drop=0.1)
    cond = l2_normalize(torch.randn(20000, 32))
    out, drop = model.drop_condition(cond, torch.Generator().manual_seed(0))
    assert abs(drop.float().mean().item() - 0.1) < 0.01
    assert torch.equal(out[drop], model.null_embedding.detach().expand(int(drop.sum()), 32))
    assert torch.equal(out[~drop], cond[~drop])


def test_embeddings_are_l2_normalised_in_one_place():
    model = tiny_model()
    q = torch.randn(4, 32) * 7
    torch.testing.assert_close(model.condition(q).norm(dim=-1), torch.ones(4))
    with pytest.raises(ValueError, match=r"must be \(B, 32\)"):
        model.condition(torch.randn(4, 16))


def test_cfg_equals_manual_combination():
    model = tiny_model().eval()
    x, t = torch.randn(2, 1, 16, 8), torch.tensor([10, 500])
    cond = model.condition(torch.randn(2, 32))
    null = model.null_embedding.expand_as(cond)
    with torch.no_grad():
        eps_c, eps_u = model.unet(x, t, cond), model.unet(x, t, null)
        for w in (0.0, 1.0, 2.5):
            got = model.guided_prediction(x, t, cond, w)
            torch.testing.assert_close(got, eps_u + w * (eps_c - eps_u), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cfg_combine(torch.zeros(1), torch.ones(1), 3.0), torch.tensor([3.0]))


def test_sampler_determinism_by_seed_and_shape():
    model = tiny_model().eval()
    q = torch.randn(1, 32)
    a = model.sample(q, 10, 3.0, 4, torch.Generator().manual_seed(5))
    b = model.sample(q, 10, 3.0, 4, torch.Generator().manual_seed(5))
    c = model.sample(q, 10, 3.0, 4, torch.Generator().manual_seed(6))
    assert a.shape == (1, 16, 10) and torch.equal(a, b) and not torch.equal(a, c)


def test_scheduler_settings_and_bad_args():
    sched = sampling_scheduler({"num_train_timesteps": 1000, "beta_schedule": "linear"}, 25)
    assert len(sched.timesteps) == 25 and int(sched.timesteps[0]) == 999
    for bad, msg in (((-0.1, 25), "guidance_scale must be >= 0"), ((1.0, 0), "num_steps must be an integer >= 1"),
                     ((float("nan"), 5), "guidance_scale"), ((1.0, 2000), "exceeds the training steps")):
        with pytest.raises(ValueError, match=msg):
            check_sampling_args(*bad)
    with pytest.raises(ValueError, match="cond_drop_prob"):
        tiny_model(drop=1.0)


def test_ddim_with_the_exact_eps_recovers_the_data():
    """For data that is a single point c, eps*(x_t, t) = (x_t - sqrt(ab_t) c) / sqrt(1 - ab_t) is exact;
    the configured sampler must then land on c (checks schedule/sampler wiring)."""
    from espnet2_clip.t2a.diffusion import ddim_sample, default_schedule_conf, training_scheduler

    conf = default_schedule_conf()
    alphas = training_scheduler(conf).alphas_cumprod
    c = torch.linspace(-1, 1, 12).reshape(1, 1, 3, 4)

    def exact_eps(x, t):
        ab = alphas[t].reshape(-1, 1, 1, 1)
        return (x - ab.sqrt() * c) / (1 - ab).sqrt()

    for steps in (1, 5, 25):
        out = ddim_sample(exact_eps, (2, 1, 3, 4), conf, steps, torch.Generator().manual_seed(0))
        torch.testing.assert_close(out, c.expand(2, 1, 3, 4), atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_training_targets_and_min_snr_weights(prediction_type):
    model = tiny_model(prediction_type=prediction_type, snr_gamma=5.0)
    alphas = model._train_sched.alphas_cumprod
    x0, noise = torch.randn(3, 1, 16, 8), torch.randn(3, 1, 16, 8)
    t = torch.tensor([0, 200, 999])
    a, s = alphas[t].sqrt().reshape(-1, 1, 1, 1), (1 - alphas[t]).sqrt().reshape(-1, 1, 1, 1)
    expected = {"epsilon": noise, "v_prediction": a * noise - s * x0, "sample": x0}[prediction_type]
    torch.testing.assert_close(model.training_target(x0, noise, t), expected)
    snr = (alphas[t] / (1 - alphas[t])).double()
    clipped = snr.clamp(max=5.0)
    weight = {"epsilon": clipped / snr, "v_prediction": clipped / (snr + 1), "sample": clipped}[prediction_type]
    torch.testing.assert_close(model.loss_weight(t), weight.float())
    if prediction_type == "epsilon":  # low-noise steps are down-weighted, the noisiest keep weight 1
        assert model.loss_weight(t)[0] < 0.01 and model.loss_weight(t)[2].item() == pytest.approx(1.0)
    assert torch.equal(tiny_model(prediction_type=prediction_type).loss_weight(t), torch.ones(3))
    loss = model(torch.randn(2, 4095) * 0.1, None, torch.randn(2, 32))[0]
    loss.backward()
    assert torch.isfinite(loss)


def test_bad_prediction_settings():
    with pytest.raises(ValueError, match="prediction_type must be one of"):
        tiny_model(prediction_type="x0")
    with pytest.raises(ValueError, match="snr_gamma must be > 0"):
        tiny_model(snr_gamma=0.0)


def test_ddim_with_the_exact_velocity_recovers_the_data():
    """Same as the ε test for a v-predicting model: v* = sqrt(ab) eps* - sqrt(1 - ab) c."""
    from espnet2_clip.t2a.diffusion import ddim_sample, default_schedule_conf, training_scheduler

    conf = default_schedule_conf()
    alphas = training_scheduler(conf).alphas_cumprod
    c = torch.linspace(-1, 1, 12).reshape(1, 1, 3, 4)

    def exact_v(x, t):
        ab = alphas[t].reshape(-1, 1, 1, 1)
        eps = (x - ab.sqrt() * c) / (1 - ab).sqrt()
        return ab.sqrt() * eps - (1 - ab).sqrt() * c

    for steps in (1, 5, 25):
        out = ddim_sample(exact_v, (2, 1, 3, 4), conf, steps, torch.Generator().manual_seed(0),
                          prediction_type="v_prediction")
        torch.testing.assert_close(out, c.expand(2, 1, 3, 4), atol=1e-3, rtol=1e-3)


def test_timestep_embedding_is_the_cos_sin_sinusoid():
    import math

    from espnet2_clip.t2a.unet import timestep_embedding

    t = torch.tensor([0, 1, 17, 999])
    half = 16
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    torch.testing.assert_close(timestep_embedding(t, 32), torch.cat([torch.cos(args), torch.sin(args)], -1),
                               rtol=0, atol=0)
    odd = timestep_embedding(t, 33)
    assert odd.shape == (4, 33) and bool((odd[:, -1] == 0).all())


def test_unet_loads_checkpoints_from_before_diffusers_timestep_embedding():
    """The timestep MLP became diffusers' TimestepEmbedding (linear_1 / linear_2); state dicts that
    name it as a Sequential (time_mlp.0 / time_mlp.2) load into the same function."""
    torch.manual_seed(0)
    net = DiffusionUNet(cond_dim=8, channels=(8, 16), attention_levels=(1,), emb_dim=16, num_heads=2).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    old = {k.replace("time_mlp.linear_1.", "time_mlp.0.").replace("time_mlp.linear_2.", "time_mlp.2."): v
           for k, v in net.state_dict().items()}
    assert "time_mlp.0.weight" in old and "time_mlp.linear_1.weight" not in old
    fresh = DiffusionUNet(cond_dim=8, channels=(8, 16), attention_levels=(1,), emb_dim=16, num_heads=2).eval()
    fresh.load_state_dict(old)  # strict
    x, t, c = torch.randn(2, 1, 16, 8), torch.tensor([3, 900]), torch.randn(2, 8)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x, t, c), net(x, t, c), rtol=0, atol=0)
    # nested, as ESPnet's model holds it
    wrapper = torch.nn.ModuleDict({"unet": fresh})
    wrapper.load_state_dict({f"unet.{k}": v for k, v in old.items()})


def test_mini_recipe_configs_train_in_auto_precision():
    """The mini recipe's default IQ / SD configs build models whose U-Net trains in bf16 where the CPU has
    bfloat16 units and that keep a weight average (the options reach the model through ``model_conf``)."""
    from pathlib import Path

    from espnet2_clip.tasks.clipsonic import CLIPSonicTask

    conf = Path(__file__).parents[3] / "egs2" / "mini_bridge" / "clipsonic1" / "conf"
    for name in ("train_clipsonic_iq.yaml", "train_clipsonic_sd.yaml"):
        args = CLIPSonicTask.get_parser().parse_args(["--config", str(conf / name)])
        model = CLIPSonicTask.build_model(args)
        assert model.unet_runner.precision == "auto", name
        assert model.ema is not None and model.ema.decay == 0.999, name  # sampled with averaged weights


def test_weight_average_is_what_validation_and_sampling_use():
    """With ``ema_decay`` every training step moves an average of the U-Net and null embedding; outside
    training the model is exactly a model holding the averaged weights, and checkpoints carry them."""
    clips, query = torch.randn(2, 4095) * 0.1, torch.randn(2, 32)
    model = tiny_model(ema_decay=0.5)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(4):
        loss = model.train()(clips, None, query)[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert int(model.ema.num_updates) == 4  # one update per training forward, none in validation
    model.eval()(clips, None, query)
    assert int(model.ema.num_updates) == 4
    average = model.ema.average
    moved = [(a - w).abs().max() for a, w in zip(average.unet.parameters(), model.unet.parameters())]
    assert max(moved) > 1e-3  # the average lags the trained weights
    # the same model without an average, given the averaged weights: identical validation loss and samples
    plain = tiny_model()
    plain.unet.load_state_dict(average.unet.state_dict())
    plain.null_embedding.data.copy_(average.null_embedding)
    plain.eval()
    torch.testing.assert_close(model(clips, None, query)[0], plain(clips, None, query)[0])
    torch.testing.assert_close(model.sample(query, 8, num_steps=3, generator=torch.Generator().manual_seed(0)),
                               plain.sample(query, 8, num_steps=3, generator=torch.Generator().manual_seed(0)))
    # and a reloaded checkpoint samples the same; without ema_decay the checkpoint keys are as before
    reloaded = tiny_model(ema_decay=0.5)
    reloaded.load_state_dict(model.state_dict())
    torch.testing.assert_close(reloaded.eval().sample(query, 8, num_steps=3, generator=torch.Generator().manual_seed(0)),
                               plain.sample(query, 8, num_steps=3, generator=torch.Generator().manual_seed(0)))
    assert not any(key.startswith("ema.") for key in plain.state_dict())
    assert set(model.state_dict()) - set(plain.state_dict()) == {f"ema.average.{k}" for k in average.state_dict()} | {
        "ema.num_updates"}
