"""Diffusion prior: shapes, normalisation, errors, save/load, CLI on npy pairs."""

import numpy as np
import pytest
import torch
import yaml

from espnet2_clip.t2a.prior import DiffusionPrior, load_prior, save_prior


def tiny_prior(dim=16):
    torch.manual_seed(0)
    return DiffusionPrior(embed_dim=dim, hidden_dim=32, num_layers=2, time_dim=16)


def test_loss_and_sample_shapes():
    prior = tiny_prior()
    loss = prior(torch.randn(5, 16), torch.randn(5, 16))
    loss.backward()
    assert loss.item() > 0
    out = prior.eval().sample(torch.randn(3, 16), num_steps=3, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 16)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3))
    gen = torch.Generator().manual_seed(0)
    again = prior.sample(torch.randn(3, 16), num_steps=3, guidance_scale=2.0, generator=gen)
    assert again.shape == (3, 16)


def test_errors():
    prior = tiny_prior()
    with pytest.raises(ValueError, match="works on 16-dim CLIP embeddings"):
        prior.sample(torch.randn(1, 32))
    with pytest.raises(ValueError, match="num_steps"):
        prior.sample(torch.randn(1, 16), num_steps=0)
    with pytest.raises(ValueError, match="num_candidates"):
        DiffusionPrior(embed_dim=16, num_candidates=0)


def test_save_load_round_trip(tmp_path):
    prior = tiny_prior().eval()
    paths = save_prior(prior, tmp_path / "p", {"clip": {"model_name": "x"}})
    loaded = load_prior(paths["prior_config"])
    text = torch.randn(2, 16)
    torch.testing.assert_close(prior.sample(text, 2, generator=torch.Generator().manual_seed(1)),
                               loaded.sample(text, 2, generator=torch.Generator().manual_seed(1)))
    (tmp_path / "bad.yaml").write_text("a: 1\n")
    with pytest.raises(ValueError, match="not a prior config"):
        load_prior(tmp_path / "bad.yaml")


def test_prior_train_cli_learns_pairs(tmp_path):
    """Text i -> image i for 4 well-separated pairs: the trained prior maps each text near its image."""
    from espnet2_clip.bin import prior_train

    rng = np.random.default_rng(0)
    text, image = rng.standard_normal((4, 16)), rng.standard_normal((4, 16))
    t_lines, i_lines = [], []
    for k in range(4):
        for j in range(8):  # 8 noisy copies of each pair
            np.save(tmp_path / f"t{k}_{j}.npy", (text[k] + 0.05 * rng.standard_normal(16)).astype(np.float32))
            np.save(tmp_path / f"i{k}_{j}.npy", (image[k] + 0.05 * rng.standard_normal(16)).astype(np.float32))
            t_lines.append(f"u{k}_{j} {tmp_path / f't{k}_{j}.npy'}\n")
            i_lines.append(f"u{k}_{j} {tmp_path / f'i{k}_{j}.npy'}\n")
    (tmp_path / "t.scp").write_text("".join(t_lines))
    (tmp_path / "i.scp").write_text("".join(i_lines))
    prior_train.main(["--text_emb_scp", str(tmp_path / "t.scp"), "--image_emb_scp", str(tmp_path / "i.scp"),
                      "--output_dir", str(tmp_path / "prior"), "--epochs", "100", "--batch_size", "32",
                      "--lr", "3e-3", "--prior_conf", "{hidden_dim: 64, num_layers: 2, time_dim: 16}"])
    conf = yaml.safe_load((tmp_path / "prior" / "config.yaml").read_text())
    assert conf["prior_conf"]["embed_dim"] == 16 and conf["num_pairs"] == 32
    prior = load_prior(tmp_path / "prior" / "config.yaml")
    out = prior.sample(torch.as_tensor(text).float(), num_steps=10, generator=torch.Generator().manual_seed(0))
    img = torch.as_tensor(image).float()
    sims = out @ (img / img.norm(dim=-1, keepdim=True)).T
    assert (sims.argmax(dim=1) == torch.arange(4)).all()
    with pytest.raises(SystemExit):
        prior_train.main(["--text_emb_scp", str(tmp_path / "t.scp"), "--output_dir", str(tmp_path / "x")])


def test_prior_train_cli_from_captioned_images(tmp_path, tiny_clip_dir):
    from PIL import Image

    from espnet2_clip.bin import prior_train

    rng = np.random.default_rng(0)
    img_lines, cap_lines = [], []
    for k in range(4):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / f"im{k}.png")
        img_lines.append(f"im{k} {tmp_path / f'im{k}.png'}\n")
        cap_lines.append(f"im{k} a photo of thing number {k}\n")
    (tmp_path / "image.scp").write_text("".join(img_lines))
    (tmp_path / "caption").write_text("".join(cap_lines))
    prior_train.main(["--image_scp", str(tmp_path / "image.scp"), "--caption", str(tmp_path / "caption"),
                      "--query_encoder_conf", f"model_name={tiny_clip_dir}", "--query_encoder_conf", "pretrained=none",
                      "--output_dir", str(tmp_path / "prior"), "--epochs", "2",
                      "--prior_conf", "{hidden_dim: 16, num_layers: 1, time_dim: 8}"])
    conf = yaml.safe_load((tmp_path / "prior" / "config.yaml").read_text())
    assert conf["prior_conf"]["embed_dim"] == 32
    assert conf["query_encoder"] == {"name": "clip", "conf": {"model_name": str(tiny_clip_dir), "pretrained": "none"}}
