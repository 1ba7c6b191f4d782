"""HiFi-GAN vocoder: 1-epoch GANTrainer run (2 optimisers), loading, mel-config check."""

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

SR = 16000
MEL = {"fs": SR, "n_fft": 256, "hop_length": 64, "n_mels": 16, "fmin": 0, "fmax": 8000}
GEN = {"channels": 16, "upsample_scales": [8, 8], "upsample_kernel_sizes": [16, 16],
       "resblock_kernel_sizes": [3], "resblock_dilations": [[1, 3]]}
DISC = {
    "scales": 1,
    "scale_discriminator_params": {"channels": 8, "max_downsample_channels": 16, "max_groups": 4,
                                   "kernel_sizes": [15, 41, 5, 3], "downsample_scales": [2, 2, 1]},
    "periods": [2],
    "period_discriminator_params": {"channels": 4, "max_downsample_channels": 16,
                                    "downsample_scales": [3, 3, 1]},
}


@pytest.fixture(scope="module")
def vocoder(tmp_path_factory):
    from espnet2_clip.bin import vocoder_train

    root = tmp_path_factory.mktemp("vocoder")
    rng = np.random.default_rng(0)
    lines = []
    for i in range(4):
        t = np.arange(SR // 2) / SR
        x = 0.3 * np.sin(2 * np.pi * (200 + 100 * i) * t) + 0.01 * rng.standard_normal(len(t))
        sf.write(root / f"v{i}.wav", x.astype(np.float32), SR)
        lines.append(f"v{i} {root / f'v{i}.wav'}\n")
    (root / "wav.scp").write_text("".join(lines))
    config = {
        "mel_conf": MEL, "generator_params": GEN, "discriminator_params": DISC,
        "segment_samples": 512, "batch_size": 2, "max_epoch": 1, "num_workers": 0, "seed": 0,
        "use_matplotlib": False, "use_tensorboard": False,
        "optim": "adam", "optim_conf": {"lr": 2e-4, "betas": [0.8, 0.99]},
        "optim2": "adam", "optim2_conf": {"lr": 2e-4, "betas": [0.8, 0.99]},
        "best_model_criterion": [["valid", "generator_mel_loss", "min"]],
    }
    (root / "train.yaml").write_text(yaml.safe_dump(config))
    args = []
    for mode in ("train", "valid"):
        args += [f"--{mode}_data_path_and_name_and_type", f"{root}/wav.scp,speech,sound",
                 f"--{mode}_shape_file", f"{root}/wav.scp"]
    vocoder_train.main(["--config", str(root / "train.yaml"), "--output_dir", str(root / "exp"), "--ngpu", "0"] + args)
    return root / "exp"


def test_two_optimizers_and_checkpoint(vocoder):
    config = yaml.safe_load((vocoder / "config.yaml").read_text())
    assert config["optim2"] == "adam" and config["mel_conf"]["n_mels"] == 16
    ckpt = torch.load(vocoder / "checkpoint.pth", map_location="cpu", weights_only=False)
    assert len(ckpt["optimizers"]) == 2
    state = torch.load(vocoder / "1epoch.pth", map_location="cpu")
    assert any(k.startswith("generator.") for k in state) and any(k.startswith("discriminator.") for k in state)


def test_load_and_invert(vocoder):
    from espnet2_clip.tasks.vocoder import load_vocoder

    voc = load_vocoder(vocoder / "config.yaml", vocoder / "1epoch.pth")
    wave = voc.inference(torch.zeros(16, 20))
    assert wave.shape == (20 * 64,) and torch.isfinite(wave).all()


def test_generation_with_vocoder_and_mel_mismatch(vocoder, tmp_path, tiny_clip_dir):
    """A model on the same mel config accepts the vocoder; another mel config is refused."""
    from espnet2_clip.bin.clipsonic_inference import TextToAudio
    from espnet2_clip.tasks.clipsonic import CLIPSonicTask

    unet = {"cond_dim": 32, "channels": [8], "attention_levels": [], "emb_dim": 16, "groups": 4}
    for name, mel in (("same", MEL), ("other", dict(MEL, fmax=7600))):
        args = CLIPSonicTask.get_parser().parse_args(["--mel_conf", str(mel), "--unet_conf", str(unet)])
        model = CLIPSonicTask.build_model(args)
        args.clip_samples = 4095
        args.query_encoder = None
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(vars(args)))
        torch.save(model.state_dict(), tmp_path / f"{name}.pth")
    t2a = TextToAudio(tmp_path / "same.yaml", tmp_path / "same.pth", vocoder_config=vocoder / "config.yaml",
                      vocoder_file=vocoder / "1epoch.pth")
    wave = t2a(np.ones(32, dtype=np.float32), num_steps=2, seed=0)
    assert wave.shape == (4095,) and np.all(np.isfinite(wave))
    with pytest.raises(ValueError, match=r"another mel configuration .*fmax: model 7600 vs vocoder 8000"):
        TextToAudio(tmp_path / "other.yaml", tmp_path / "other.pth", vocoder_config=vocoder / "config.yaml",
                    vocoder_file=vocoder / "1epoch.pth")
    with pytest.raises(ValueError, match="records no query encoder"):
        t2a("a dog")
