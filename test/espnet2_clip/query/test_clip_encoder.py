import json

import numpy as np
import pytest
import torch
from PIL import Image

from espnet2_clip.query.clip_encoder import (
    PROMPT_ENSEMBLE,
    SINGLE_PROMPT,
    CheckpointNotFoundError,
    CLIPQueryEncoder,
    get_templates,
)
from espnet2_clip.query.configs import TINY_CLIP_CONFIG, resolve_model_config


@pytest.fixture(scope="module")
def enc(tiny_clip_dir):
    return CLIPQueryEncoder(str(tiny_clip_dir), pretrained=None, batch_size=4)


def _images(n, size=40):
    rng = np.random.RandomState(0)
    return [Image.fromarray(rng.randint(0, 255, (size, size + 7, 3), dtype=np.uint8)) for _ in range(n)]


def test_prompt_constants():
    assert PROMPT_ENSEMBLE == (
        "a photo of {}.",
        "a photo of the small {}.",
        "a photo of the small {}.",
        "a low resolution photo of a {}.",
        "a photo of many {}.",
    )
    assert SINGLE_PROMPT == ("a photo of {}",)
    assert get_templates("ensemble") == PROMPT_ENSEMBLE
    with pytest.raises(ValueError):
        get_templates("bogus")


def test_frozen_eval(enc):
    assert not enc.model.training
    enc.train()
    assert not enc.model.training
    assert not any(p.requires_grad for p in enc.parameters())
    assert enc.embed_dim == TINY_CLIP_CONFIG["embed_dim"]


def test_encode_text_shapes_and_ensemble(enc):
    queries = ["violin", "acoustic guitar", "dog", "cat", "a b c"]  # > batch_size: batched
    single = enc.encode_text(queries)
    assert single.shape == (5, 32) and single.dtype == torch.float32
    # unnormalised raw projections
    assert not torch.allclose(single.norm(dim=-1), torch.ones(5))
    ens = enc.encode_text(queries, templates=PROMPT_ENSEMBLE)
    per_template = torch.stack([enc.encode_text(queries, templates=(t,)) for t in PROMPT_ENSEMBLE], 1)
    torch.testing.assert_close(ens, per_template.mean(1), rtol=1e-5, atol=1e-6)
    # the single prompt is literally "a photo of {}"
    raw = enc.encode_text(["a photo of violin"], templates="none")
    torch.testing.assert_close(raw[0], single[0], rtol=1e-5, atol=1e-6)
    # deterministic, and independent of batching
    torch.testing.assert_close(enc.encode_text(queries), single)
    torch.testing.assert_close(enc.encode_text(queries[:1])[0], single[0], rtol=1e-5, atol=1e-5)


def test_empty_query_raises(enc):
    for bad in ["", "   ", "\t\n"]:
        with pytest.raises(ValueError, match="empty"):
            enc.encode_text(["ok", bad])


def test_encode_images_and_frames(enc):
    images = _images(6)
    emb = enc.encode_images(images)
    assert emb.shape == (6, 32) and emb.dtype == torch.float32
    pix = torch.stack([enc.preprocess(im) for im in images])
    torch.testing.assert_close(enc.encode_images(pix), emb, rtol=1e-5, atol=1e-5)
    frames = enc.encode_frames(images[:3])
    assert frames.shape == (32,)
    torch.testing.assert_close(frames, emb[:3].mean(0), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
        enc.encode_frames([])
    with pytest.raises(ValueError):
        enc.encode_images(torch.zeros(2, 32, 32, 3))


def test_load_conventions_agree(tiny_clip_dir, enc):
    ref = enc.encode_text(["violin"])
    weights = tiny_clip_dir / "open_clip_model.safetensors"
    config = tiny_clip_dir / "open_clip_config.json"
    variants = [
        CLIPQueryEncoder(f"local-dir:{tiny_clip_dir}", pretrained="openai"),  # tag ignored for a dir
        CLIPQueryEncoder(str(config), pretrained=str(weights)),  # config JSON + checkpoint
        CLIPQueryEncoder("espnet2clip-tiny", pretrained=str(weights)),  # built-in name + checkpoint
        CLIPQueryEncoder(str(tiny_clip_dir), pretrained=str(weights)),  # dir + explicit weights
    ]
    for v in variants:
        torch.testing.assert_close(v.encode_text(["violin"]), ref)


def test_bare_config_json_and_torch_checkpoint(tmp_path, enc):
    cfg = tmp_path / "my_clip.json"
    cfg.write_text(json.dumps(TINY_CLIP_CONFIG))
    ckpt = tmp_path / "my_clip.pt"
    torch.save({"state_dict": enc.model.state_dict()}, ckpt)
    v = CLIPQueryEncoder(str(cfg), pretrained=str(ckpt))
    torch.testing.assert_close(v.encode_text(["violin"]), enc.encode_text(["violin"]))
    assert resolve_model_config(str(cfg)) == TINY_CLIP_CONFIG


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown open_clip model 'ViT-Q-99'"):
        CLIPQueryEncoder("ViT-Q-99", pretrained=None)
    with pytest.raises(CheckpointNotFoundError, match="not found"):
        CLIPQueryEncoder("espnet2clip-tiny", pretrained=str(tmp_path / "missing.pt"))
    # also a ValueError, as the brief asks
    with pytest.raises(ValueError):
        CLIPQueryEncoder("espnet2clip-tiny", pretrained=str(tmp_path / "missing.safetensors"))
    with pytest.raises(ValueError, match="neither a checkpoint file nor a known tag"):
        CLIPQueryEncoder("espnet2clip-tiny", pretrained="openai")
    with pytest.raises(FileNotFoundError):
        CLIPQueryEncoder(str(tmp_path / "nope.json"), pretrained=None)
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(FileNotFoundError, match="open_clip_config.json"):
        CLIPQueryEncoder(str(empty_dir), pretrained=None)
    (empty_dir / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP_CONFIG}))
    with pytest.raises(FileNotFoundError, match="no weights file"):
        CLIPQueryEncoder(str(empty_dir), pretrained=None)


def test_pretrained_dir_replaces_model_name(tiny_clip_dir, enc):
    v = CLIPQueryEncoder("ViT-B-32", pretrained=str(tiny_clip_dir))
    torch.testing.assert_close(v.encode_text(["violin"]), enc.encode_text(["violin"]))


def test_openai_tag_uses_quick_gelu_without_network(monkeypatch):
    """The real pretrained path is kept: ViT-B-32 + 'openai' asks open_clip for that tag with
    QuickGELU (as the original CLIP); open_clip itself is stubbed so nothing is downloaded."""
    import open_clip

    seen = {}

    def fake_create(name, pretrained=None, device="cpu", **kwargs):
        seen.update(name=name, pretrained=pretrained, **kwargs)
        raise RuntimeError("stop before download")

    monkeypatch.setattr(open_clip, "create_model_and_transforms", fake_create)
    with pytest.raises(RuntimeError, match="stop before download"):
        CLIPQueryEncoder("ViT-B-32", "openai")
    assert seen == {"name": "ViT-B-32", "pretrained": "openai", "force_quick_gelu": True}
