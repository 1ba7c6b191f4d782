import logging

import pytest
import torch

from espnet2_clip.utils.backbone_runner import BackboneRunner
from espnet2_clip.sep.espnet_model import ESPnetCLIPSepModel
from espnet2_clip.sep.frontend import LogFreqSTFT
from espnet2_clip.sep.heads import QueryMaskHead
from espnet2_clip.sep.query import EmbeddingQuery
from espnet2_clip.sep.unet import AudioUNet
from espnet2_clip.tasks.clipsep import CLIPSepTask


def model(**model_conf):
    torch.manual_seed(0)
    unet = AudioUNet(out_channels=4, num_downs=5, base_channels=8)
    head = QueryMaskHead(EmbeddingQuery(num_channels=4, input_dim=8))
    return ESPnetCLIPSepModel(LogFreqSTFT(n_fft=256, hop_length=64, num_warped_bins=64), unet, head, **model_conf)


def train_loss(net, clips, query):
    torch.manual_seed(1)  # same random pairs and gains for every model
    return net.train()(clips, query=query)[0]


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    return 0.1 * torch.randn(6, 4095, generator=generator), torch.randn(6, 8, generator=generator)


def test_bf16_training_keeps_float32_weights_and_loss(batch):
    reference, fast = model(), model(train_precision="bf16")
    loss_ref, loss = train_loss(reference, *batch), train_loss(fast, *batch)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(loss_ref.item(), rel=0.02)
    assert loss.item() != loss_ref.item()  # the backbone really ran in bfloat16
    loss.backward()
    assert all(p.dtype == torch.float32 for p in fast.parameters())
    assert all(p.grad.dtype == torch.float32 for p in fast.parameters() if p.grad is not None)
    grad = fast.backbone.levels.model[0].weight.grad
    train_loss(reference, *batch).backward()
    grad_ref = reference.backbone.levels.model[0].weight.grad
    assert torch.nn.functional.cosine_similarity(grad.flatten(), grad_ref.flatten(), dim=0) > 0.98


def test_bf16_applies_to_training_only(batch):
    clips, query = batch
    reference, fast = model().eval(), model(train_precision="bf16").eval()
    torch.testing.assert_close(fast.separate(clips[:2], query[:2])[0], reference.separate(clips[:2], query[:2])[0])


def test_channels_last_same_function_and_checkpoint(batch):
    clips, query = batch
    reference, fast = model(), model(channels_last=True)
    conv = next(m.weight for m in fast.backbone.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    torch.testing.assert_close(train_loss(fast, clips, query), train_loss(reference, clips, query), rtol=1e-5, atol=1e-6)
    plain = model()
    plain.load_state_dict(fast.state_dict())  # checkpoints do not depend on the option
    torch.testing.assert_close(plain.eval().separate(clips[:2], query[:2])[0],
                               fast.eval().separate(clips[:2], query[:2])[0], rtol=1e-4, atol=1e-6)


def test_compile_failure_falls_back_to_eager(batch, monkeypatch, caplog):
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise torch._dynamo.exc.TorchDynamoException("no C++ compiler")

    monkeypatch.setattr(torch, "compile", lambda module: Broken())
    fast, reference = model(compile_backbone=True), model()
    with caplog.at_level(logging.WARNING):
        loss = train_loss(fast, *batch)
    assert "torch.compile failed" in caplog.text and "no C++ compiler" in caplog.text
    assert loss.item() == train_loss(reference, *batch).item()
    assert fast.backbone_runner.compile is False


def test_model_errors_are_not_swallowed_by_the_compile_fallback(monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda module: module)
    net = model(compile_backbone=True).train()
    with pytest.raises(ValueError, match="not divisible"):
        net.backbone_runner(net.backbone, torch.randn(2, 1, 60, 32))


def test_loss_is_float32_under_whole_model_autocast(batch):
    """ESPnet's --use_amp wraps the whole forward in autocast: the BCE must stay in float32."""
    reference = train_loss(model(), *batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = train_loss(model(), *batch)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(reference.item(), rel=0.02)


@pytest.mark.parametrize("has_units, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_follows_the_device(batch, monkeypatch, has_units, expected):
    monkeypatch.setattr("espnet2_clip.utils.precision.cpu_has_bf16_units", lambda: has_units)
    net = model(train_precision="auto")
    loss = train_loss(net, *batch)
    assert net.backbone_runner.precision == expected
    reference = train_loss(model(train_precision=expected), *batch)
    assert loss.item() == reference.item()


def test_no_compile_with_bf16_on_cpu(batch, monkeypatch, caplog):
    monkeypatch.setattr(torch, "compile", lambda module: pytest.fail("compiled"))
    net = model(train_precision="bf16", compile_backbone=True)
    with caplog.at_level(logging.WARNING):
        train_loss(net, *batch)
    assert "not used with bf16 on the CPU" in caplog.text and net.backbone_runner.compile is False


def test_bad_precision_names_the_option():
    with pytest.raises(ValueError, match="model_conf.train_precision.*'fp16'"):
        BackboneRunner(precision="fp16")


def test_options_from_a_training_config(tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text("head: query\nquery: embedding\nquery_conf: {input_dim: 8}\n"
                      "unet_conf: {num_downs: 5, base_channels: 8, out_channels: 4}\n"
                      "model_conf: {train_precision: bf16, channels_last: true}\n")
    args = CLIPSepTask.get_parser().parse_args(["--config", str(config)])
    net = CLIPSepTask.build_model(args)
    assert repr(net.backbone_runner) == "BackboneRunner(precision='bf16', channels_last=True, compile=False)"


@pytest.mark.slow
def test_compiled_backbone_trains_like_eager(batch):
    """A real torch.compile (inductor, the machine's C++ compiler): same losses as eager."""
    eager, compiled = model(), model(compile_backbone=True)
    for net in (eager, compiled):
        net.optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(2):
        losses = []
        for net in (eager, compiled):
            loss = train_loss(net, *batch)
            net.optimizer.zero_grad()
            loss.backward()
            net.optimizer.step()
            losses.append(loss.item())
        assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    assert compiled.backbone_runner.compile and compiled.backbone_runner._compiled is not None
