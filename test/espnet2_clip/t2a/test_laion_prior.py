"""The LAION DALL-E 2 prior: a tiny random prior in the published checkpoint format, loaded through the
same code path as the real one (nothing downloads). Numerical parity with DALLE2-pytorch itself is
checked by tools/laion_prior_parity.py (it needs a scratch install of that package)."""

import json

import pytest
import torch

from espnet2_clip.t2a.laion_prior import (
    LaionPrior,
    load_laion_prior,
    resolve_laion_files,
    save_published_format,
)
from espnet2_clip.t2a.prior import is_laion_source, load_prior

DIM = 32
NET = dict(dim=DIM, depth=2, dim_head=8, heads=4, num_timesteps=100, max_text_len=16, normformer=True,
           attn_dropout=0.05, ff_dropout=0.05, rotary_emb=True, ff_mult=4)


def prior_conf(**over):
    prior = dict(net=NET, image_embed_dim=DIM, image_size=224, timesteps=100, sample_timesteps=8,
                 cond_drop_prob=0.1, loss_type="l2", predict_x_start=True, beta_schedule="cosine",
                 condition_on_text_encodings=True, clip=dict(make="openai", model="ViT-L/14"))
    prior.update(over)
    return dict(prior=prior, train=dict(lr=1.1e-4))


@pytest.fixture
def published(tmp_path):
    """A random prior saved as DALLE2-pytorch's trainer saves one (prior_config.json + best.pth)."""
    torch.manual_seed(0)
    conf = prior_conf()
    prior = LaionPrior.from_config(conf)
    for p in prior.parameters():  # the fresh null embeddings are random already; make the rest non-trivial
        p.data.add_(0.02 * torch.randn_like(p))
    save_published_format(prior, conf, tmp_path / "prior")
    return tmp_path / "prior", prior


def text_inputs(b=3, n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    enc = torch.randn(b, n, DIM, generator=g)
    enc[0, 3:] = 0  # the first text is shorter: padding rows are zero
    return torch.randn(b, DIM, generator=g), enc


def test_published_format_loads_through_the_real_path(published):
    path, prior = published
    size = sum(f.stat().st_size for f in path.iterdir())
    assert size < 1_000_000  # a few hundred KB
    state = torch.load(path / "best.pth", weights_only=False)
    assert {"model", "ema_model", "version", "step"} <= set(state)
    assert "net.causal_transformer.layers.0.0.to_kv.weight" in state["model"]
    assert "net.causal_transformer.layers.1.0.rotary_emb.freqs" in state["model"]
    for source in (path, path / "prior_config.json", path.parent):  # dir, json, parent with prior/
        assert is_laion_source(source)
        loaded = load_prior(source)
        assert isinstance(loaded, LaionPrior) and not loaded.training
        for k, v in prior.net.state_dict().items():
            torch.testing.assert_close(loaded.net.state_dict()[k], v, rtol=0, atol=0)


def test_sample_shapes_determinism_and_renormalised_output(published):
    prior = load_laion_prior(str(published[0]))
    text, enc = text_inputs()
    out = prior.sample(text, generator=torch.Generator().manual_seed(0), text_encodings=enc)
    assert out.shape == (3, DIM)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3))  # renormalised, not 1/sqrt(D) scaled
    again = prior.sample(text, generator=torch.Generator().manual_seed(0), text_encodings=enc)
    torch.testing.assert_close(out, again, rtol=0, atol=0)
    other = prior.sample(text, generator=torch.Generator().manual_seed(1), text_encodings=enc)
    assert (out - other).abs().max() > 1e-3
    ddpm = prior.sample(text, num_steps=100, generator=torch.Generator().manual_seed(0), text_encodings=enc)
    torch.testing.assert_close(ddpm.norm(dim=-1), torch.ones(3))


def test_token_encodings_are_used_and_padding_is_null(published):
    prior = load_laion_prior(str(published[0]))
    text, enc = text_inputs()
    x, t = torch.randn(3, DIM), torch.tensor([1, 50, 90])
    with torch.no_grad():
        base = prior.net(x, t, torch.nn.functional.normalize(text, dim=-1), enc)
        changed = enc.clone()
        changed[1, 0] = torch.randn(DIM, generator=torch.Generator().manual_seed(5))  # (a constant shift would vanish in the layer norm)
        moved = prior.net(x, t, torch.nn.functional.normalize(text, dim=-1), changed)
        # zero rows are padding (the learned null encodings), so trailing zeros change nothing
        padded = prior.net(x, t, torch.nn.functional.normalize(text, dim=-1),
                           torch.cat([enc, torch.zeros(3, 4, DIM)], dim=1))
    assert (moved[1] - base[1]).abs().max() > 1e-4
    torch.testing.assert_close(moved[[0, 2]], base[[0, 2]])
    torch.testing.assert_close(padded, base)
    s1 = prior.sample(text, generator=torch.Generator().manual_seed(0), text_encodings=enc)
    s2 = prior.sample(text, generator=torch.Generator().manual_seed(0), text_encodings=changed)
    assert (s1[1] - s2[1]).abs().max() > 1e-4


def test_candidates_keep_the_one_closest_to_the_text(published):
    prior = load_laion_prior(str(published[0]))
    text, enc = text_inputs(b=2)
    unit = torch.nn.functional.normalize(text, dim=-1)
    prior.num_candidates = 1
    singles = [prior.sample(text, generator=torch.Generator().manual_seed(s), text_encodings=enc) for s in (0, 1)]
    prior.num_candidates = 4
    best = prior.sample(text, generator=torch.Generator().manual_seed(0), text_encodings=enc)
    assert ((best * unit).sum(-1) >= (singles[0] * unit).sum(-1) - 1e-6).all()


def test_checkpoint_layouts_and_ema_weights(published, tmp_path):
    path, prior = published
    state = {f"net.{k}": v for k, v in prior.net.state_dict().items()}
    shifted = {k: v + 1.0 for k, v in state.items()}
    # a trainer save: its EMA weights are the ones to sample with
    torch.save(dict(model=shifted, ema_model=state), path / "best.pth")
    loaded = load_laion_prior(str(path))
    torch.testing.assert_close(loaded.net.learned_query, prior.net.learned_query)
    # a bare DiffusionPrior state dict, with CLIP weights and no rotary frequencies (older versions)
    bare = {k: v for k, v in state.items() if not k.endswith("rotary_emb.freqs")}
    bare["clip.clip.ln_final.weight"] = torch.ones(DIM)
    torch.save(bare, path / "best.pth")
    loaded = load_laion_prior(str(path))
    torch.testing.assert_close(loaded.net.null_image_embed, prior.net.null_image_embed)


def test_clear_errors(published, tmp_path):
    path, prior = published
    text, enc = text_inputs()
    with pytest.raises(ValueError, match="conditions on the CLIP token encodings"):
        prior.sample(text)
    with pytest.raises(ValueError, match="works on 32-dim CLIP embeddings"):
        prior.sample(torch.randn(1, 512), text_encodings=torch.randn(1, 4, 512))
    with pytest.raises(ValueError, match=r"text_encodings must be \(3, L, 32\)"):
        prior.sample(text, text_encodings=torch.randn(3, 4, 16))
    with pytest.raises(ValueError, match="num_steps must be in 1..100"):
        prior.sample(text, num_steps=0, text_encodings=enc)
    other = tmp_path / "deeper"
    conf = prior_conf(net=dict(NET, depth=3))
    other.mkdir()
    (other / "prior_config.json").write_text(json.dumps(conf))
    (other / "best.pth").write_bytes((path / "best.pth").read_bytes())
    with pytest.raises(ValueError, match=r"does not match its prior_config.json: missing \['causal_transformer.layers.2"):
        load_laion_prior(str(other))
    (other / "prior_config.json").write_text(json.dumps(prior_conf(net=dict(NET, heads=2))))
    with pytest.raises(ValueError, match="parameter shapes differ"):
        load_laion_prior(str(other))
    (other / "best.pth").unlink()
    with pytest.raises(FileNotFoundError, match="best.pth"):
        load_laion_prior(str(other))
    (other / "prior_config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_laion_prior(str(other))
    with pytest.raises(ValueError, match="not supported: blocks"):
        LaionPrior.from_config(prior_conf(net=dict(NET, blocks=2)))
    with pytest.raises(ValueError, match="self-conditioned"):
        LaionPrior.from_config(prior_conf(net=dict(NET, self_cond=True)))
    with pytest.raises(ValueError, match="not a DALLE2-pytorch prior config"):
        LaionPrior.from_config({"decoder": {}})
    with pytest.raises(FileNotFoundError, match="LAION prior not found"):
        resolve_laion_files(str(tmp_path / "nowhere"))


def test_hub_names_resolve_through_huggingface_hub(monkeypatch, tmp_path):
    asked = []

    def fake_download(repo, name):
        asked.append((repo, name))
        return str(tmp_path / name)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    config, ckpt = resolve_laion_files("laion")
    assert asked == [("laion/DALLE2-PyTorch", "prior/prior_config.json"), ("laion/DALLE2-PyTorch", "prior/best.pth")]
    assert (config.name, ckpt.name) == ("prior_config.json", "best.pth")
    resolve_laion_files("hf-hub:me/my-prior")
    assert asked[-1] == ("me/my-prior", "prior/best.pth")


def test_clip_token_encodings(tiny_clip_dir):
    from espnet2_clip.query.clip_encoder import CLIPQueryEncoder

    enc = CLIPQueryEncoder(model_name=str(tiny_clip_dir), pretrained=None)
    emb, tokens = enc.encode_text_tokens(["a dog", "the sound of a big red fire truck"])
    assert emb.shape == (2, enc.embed_dim) and tokens.dim() == 3 and tokens.shape[0] == 2
    torch.testing.assert_close(emb, enc.encode_text(["a dog", "the sound of a big red fire truck"], templates="none"))
    used = (tokens != 0).any(-1)
    ids = enc.tokenizer(["a dog", "the sound of a big red fire truck"])
    ends = ids.argmax(-1)  # the end token: start, words, end; nothing after it
    for i in range(2):
        assert used[i, : ends[i] + 1].all() and not used[i, ends[i] + 1:].any()
    assert ends[1] > ends[0]
