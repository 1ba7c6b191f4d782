"""Registration works in a fresh interpreter, and importing the package stays cheap."""

import subprocess
import sys

import torch


def run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_import_is_cheap_and_offline():
    out = run(
        "import sys, socket\n"
        "def refuse(*a, **k): raise RuntimeError('network used at import')\n"
        "socket.socket.connect = refuse\n"
        "import espnet2_clip\n"
        "print('espnet2' in sys.modules, 'torch' in sys.modules)"
    )
    assert out.split() == ["False", "False"]


def test_register_adds_clipsep_extractor_and_loss_to_espnet_tse():
    out = run(
        "from espnet2.tasks.enh import criterion_choices, loss_wrapper_choices\n"
        "from espnet2.tasks.enh_tse import extractor_choices\n"
        "print('clipsep' in extractor_choices.classes, 'clipsep_bce' in criterion_choices.classes)\n"
        "import espnet2_clip.register\n"
        "print(extractor_choices.get_class('clipsep').__name__)\n"
        "print(criterion_choices.get_class('clipsep_bce').__name__)\n"
        "print(loss_wrapper_choices.get_class('clipsep_mask').__name__)\n"
        "espnet2_clip.register.register()\n"
        "print(len([k for k in extractor_choices.classes if k == 'clipsep']))"
    )
    assert out.split()[-6:] == ["False", "False", "CLIPSepExtractor", "CLIPSepMaskBCELoss", "ExtractorMaskSolver", "1"]


def test_tse_extractor_masks_the_stft_encoder_output():
    import espnet2_clip.register  # noqa: F401
    from espnet2.enh.encoder.stft_encoder import STFTEncoder
    from espnet2.tasks.enh_tse import extractor_choices

    encoder = STFTEncoder(n_fft=1024, hop_length=256)
    extractor = extractor_choices.get_class("clipsep")(
        encoder.output_dim, query_dim=16, unet_conf=dict(num_downs=5, base_channels=4, out_channels=4)
    )
    wave = torch.randn(2, 16000)
    spec, flens = encoder(wave, torch.tensor([16000, 16000]))
    masked, lens, others = extractor(spec, flens, torch.randn(2, 1, 16), torch.tensor([1, 1]), suffix_tag="_spk1")
    assert masked.shape == spec.shape and torch.equal(lens, flens)
    mask = others["mask_spk1"]
    assert mask.shape == spec.shape and mask.min() >= 0 and mask.max() <= 1
    assert others["warped_mask_spk1"].shape == (2, spec.shape[1], 256)
    assert torch.allclose(masked, spec * mask)
