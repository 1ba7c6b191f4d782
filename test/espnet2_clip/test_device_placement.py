"""Every tensor of a training step, of CLIPSonic's sampling and of separation stays on the model's device.

There is no GPU here or in CI, so the models run on PyTorch's ``meta`` device (shapes, no data): an op that
mixes a meta tensor with one made on the CPU fails there as it would on a GPU. That catches, on CPU-only
machines, the commonest GPU bug: a tensor made without ``device=`` inside a forward. ``torch.autocast`` has
no meta backend, so it is a no-op for meta tensors here (the bf16 paths still run their casts).

A meta tensor has no data, so these tests also fail on any read of a value from the device inside the step
(``.item()``, ``int(t)``, ``if t > 0``, ``t.cpu()``): on a GPU each such read makes the host wait for the device.

Not run on meta, for reasons of PyTorch's meta support or on purpose: ``torch.istft`` (it checks its window's
values; replaced by a meta-shaped stand-in below), so Griffin-Lim too; LabelSep's query check, which reads the
ids (a clear error for an out-of-range label rather than a device-side assert); CLIPSep-NIT with a warm-up
(``warmup_steps > 0``, the mini recipe's CPU config), which reads its update count to know when the warm-up is
over (the paper's configs have none); CLIPSonic's weight average (``ema_decay``), which reads its update count
for the decay's warm-up: ESPnet's trainer has synchronised just before (its batch copy to the device), so the
read costs little, while a weight kept on the device would split the fused update into a kernel per parameter; ESPnet's code (the ``espnet_separator`` backbones, whose DPRNN pads with
``.type(input.type())``, and ESPnet's TSE model), which is not ours to change.
"""

import contextlib

import pytest
import torch

from espnet2_clip.bin.train_step_benchmark import _task, random_query

CLIPSEP = ("query: embedding\nquery_conf: {input_dim: 8}\nclip_samples: 4095\nbatch_size: 4\n"
           "frontend_conf: {n_fft: 256, hop_length: 64, num_warped_bins: 64}\n"
           "unet_conf: {num_downs: 5, base_channels: 4, out_channels: 4}\n")
CLIPSONIC = ("mel_conf: {n_fft: 256, hop_length: 64, n_mels: 16}\nclip_samples: 4095\nbatch_size: 4\n"
             "unet_conf: {cond_dim: 8, channels: [4, 8], attention_levels: [1], num_heads: 2, emb_dim: 8, groups: 2}\n")
BF16 = "model_conf: {train_precision: bf16, channels_last: true}\n"
CASES = {
    "clipsep": ("clipsep", CLIPSEP + "head: query\n"),
    "clipsep-nit": ("clipsep", CLIPSEP + "head: nit\n"),
    "pit": ("clipsep", CLIPSEP.replace("query: embedding\nquery_conf: {input_dim: 8}\n", "") + "head: pit\n"),
    "clipsep-bf16-channels-last": ("clipsep", CLIPSEP + "head: query\n" + BF16),
    "clipsonic": ("clipsonic", CLIPSONIC),
    "clipsonic-as-the-mini-recipe": ("clipsonic", CLIPSONIC + "model_conf: {prediction_type: v_prediction, snr_gamma: 5.0, "
                                                              "train_precision: bf16}\n"),  # no weight average: below
}


@pytest.fixture(autouse=True)
def autocast_off_for_meta(monkeypatch):
    real = torch.autocast

    def autocast(device_type, *args, **kwargs):
        return contextlib.nullcontext() if device_type == "meta" else real(device_type, *args, **kwargs)

    monkeypatch.setattr(torch, "autocast", autocast)


def meta_model(tmp_path, name):
    task, config = CASES[name]
    path = tmp_path / "train.yaml"
    path.write_text(config)
    task_class = _task(task)
    args = task_class.get_parser().parse_args(["--config", str(path)])
    return task_class.build_model(args).to("meta"), args


def test_a_cpu_tensor_inside_a_meta_forward_fails():
    """The premise: mixing devices fails on meta as on a GPU (else the tests below could not fail)."""

    class Careless(torch.nn.Module):
        def forward(self, x):
            return x + torch.ones(x.shape[-1])  # made on the CPU

    with pytest.raises(RuntimeError, match="device"):
        Careless()(torch.zeros(2, 3, device="meta"))


@pytest.mark.parametrize("name", list(CASES))
def test_a_training_step_stays_on_the_device(tmp_path, name):
    model, args = meta_model(tmp_path, name)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    clips = torch.randn(args.batch_size, args.clip_samples, device="meta")
    loss, stats, weight = model(clips, query=random_query(model, args.batch_size, "meta"))
    loss.backward()
    optimizer.step()
    assert loss.device.type == "meta" and loss.shape == ()
    trained = [p for p in model.parameters() if p.requires_grad]
    assert trained and all(p.grad is not None and p.grad.device.type == "meta" and p.grad.shape == p.shape
                           for p in trained)
    assert all(v.device.type == "meta" for v in stats.values() if isinstance(v, torch.Tensor))


@pytest.mark.parametrize("name", ["clipsonic", "clipsonic-as-the-mini-recipe"])
def test_clipsonic_sampling_stays_on_the_device(tmp_path, name):
    model, _ = meta_model(tmp_path, name)
    with torch.no_grad():
        mels = model.eval().sample(torch.randn(2, 8, device="meta"), num_frames=64, guidance_scale=[1.0, 3.0],
                                   num_steps=3, generator=torch.Generator().manual_seed(0))
    assert mels.device.type == "meta" and mels.shape == (2, 16, 64)


def test_the_diffusion_prior_samples_on_the_device():
    from espnet2_clip.t2a.prior import DiffusionPrior

    prior = DiffusionPrior(embed_dim=8, hidden_dim=16, num_layers=1, time_dim=8).to("meta").eval()
    with torch.no_grad():
        image = prior.sample(torch.randn(3, 8, device="meta"), num_steps=3, guidance_scale=2.0,
                             generator=torch.Generator().manual_seed(0))
    assert image.device.type == "meta" and image.shape == (3, 8)


@pytest.mark.parametrize("name", ["clipsep", "clipsep-nit", "pit"])
def test_separation_stays_on_the_device(tmp_path, name):
    model, _ = meta_model(tmp_path, name)

    def istft(spec, length):  # torch.istft has no meta kernel: a stand-in of its output's shape and device
        return torch.zeros(spec.shape[0], length, device=spec.device)

    model.frontend.istft = istft
    query = None if name == "pit" else torch.randn(2, 8, device="meta")
    with torch.no_grad():
        waves, masks = model.eval().separate(torch.randn(2, 8000, device="meta"), query)
    outputs = 2 if name == "pit" else 1
    assert waves.device.type == masks.device.type == "meta"
    assert waves.shape == (2, outputs, 8000) and masks.shape[:3] == (2, outputs, 64)


def test_host_tensors_reach_the_device_unchanged():
    from espnet2_clip.utils.device import to_device_async

    host = torch.arange(6.0).reshape(2, 3)
    assert torch.equal(to_device_async(host, torch.device("cpu")), host)
    moved = to_device_async(host, torch.device("meta"))
    assert moved.device.type == "meta" and moved.shape == (2, 3) and moved.dtype == host.dtype
