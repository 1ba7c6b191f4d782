import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from espnet2_clip.bin.query_embed import get_parser, main, run
from espnet2_clip.query.abs_query_encoder import AbsQueryEncoder
from espnet2_clip.query.choices import query_encoder_choices
from espnet2_clip.query.clip_encoder import PROMPT_ENSEMBLE, CLIPQueryEncoder, get_templates
from espnet2_clip.utils.fileio import read_scp


def _args(tiny_clip_dir, mode, in_scp, out_dir, *extra):
    return get_parser().parse_args([
        "--mode", mode, "--input_scp", str(in_scp), "--output_dir", str(out_dir),
        "--query_encoder", "clip", "--query_encoder_conf", f"model_name={tiny_clip_dir}",
        "--query_encoder_conf", "pretrained=none", "--batch_size", "2", *extra,
    ])


@pytest.fixture(scope="module")
def enc(tiny_clip_dir):
    return CLIPQueryEncoder(str(tiny_clip_dir), pretrained=None)


def _frame_dir(root, n):
    root.mkdir(parents=True)
    rng = np.random.RandomState(n)
    for i in range(1, n + 1):
        Image.fromarray(rng.randint(0, 255, (30, 40, 3), dtype=np.uint8)).save(root / f"{i:06d}.jpg")
    return root


def test_frames_mode_writes_caches_and_skips(tmp_path, tiny_clip_dir, enc):
    d1 = _frame_dir(tmp_path / "f" / "v1", 3)
    d2 = _frame_dir(tmp_path / "f" / "v2", 5)
    (tmp_path / "f" / "empty").mkdir()
    scp = tmp_path / "frames.scp"
    scp.write_text(f"v1 {d1}\nv2 {d2}\nv3 {tmp_path / 'f' / 'empty'}\nv4 {tmp_path / 'missing'}\n")
    out = tmp_path / "out"
    stats = run(_args(tiny_clip_dir, "frames", scp, out))
    assert stats == {"written": 2, "cached": 0, "skipped": 2}
    entries = read_scp(out / "frames_embed.scp")
    assert sorted(entries) == ["v1", "v2"]
    a1, a2 = np.load(entries["v1"]), np.load(entries["v2"])
    assert a1.shape == (3, 32) and a2.shape == (5, 32) and a1.dtype == np.float32
    frames = [Image.open(p).convert("RGB") for p in sorted(d1.iterdir())]
    np.testing.assert_allclose(a1, enc.encode_images(frames).numpy(), rtol=1e-5, atol=1e-5)
    skipped = (out / "frames_skipped").read_text()
    assert "v3 no frames" in skipped and "v4 missing frame dir" in skipped

    # rerun: everything valid is cached (the file is not rewritten)
    mtime = (out / "frames" / "v1.npy").stat().st_mtime_ns
    assert run(_args(tiny_clip_dir, "frames", scp, out)) == {"written": 0, "cached": 2, "skipped": 2}
    assert (out / "frames" / "v1.npy").stat().st_mtime_ns == mtime
    # a frame more -> recomputed; a corrupt file -> recomputed
    Image.new("RGB", (30, 40)).save(d1 / "000004.jpg")
    (out / "frames" / "v2.npy").write_bytes(b"garbage")
    assert run(_args(tiny_clip_dir, "frames", scp, out)) == {"written": 2, "cached": 0, "skipped": 2}
    assert np.load(entries["v1"]).shape == (4, 32)
    # --overwrite recomputes
    assert run(_args(tiny_clip_dir, "frames", scp, out, "--overwrite"))["written"] == 2


def test_text_mode_prompts(tmp_path, tiny_clip_dir, enc, caplog):
    """Also the deprecated entry point and spellings (extract_clip_embeddings --clip_model --prompt)."""
    from espnet2_clip.bin import extract_clip_embeddings

    text = tmp_path / "text"
    text.write_text("q1 acoustic guitar\nq2 violin\nq3 dog barking loudly\nq4 violin\n")
    out = tmp_path / "out"
    extract_clip_embeddings.main(["--mode", "text", "--input_scp", str(text), "--output_dir", str(out),
                                  "--clip_model", str(tiny_clip_dir), "--clip_pretrained", "none",
                                  "--prompt", "ensemble", "--batch_size", "2"])
    assert "--prompt is deprecated" in caplog.text and "use --text_prompt" in caplog.text
    assert "extract_clip_embeddings is deprecated" in caplog.text
    entries = read_scp(out / "text_embed.scp")
    assert sorted(entries) == ["q1", "q2", "q3", "q4"]
    assert entries["q2"] == entries["q4"] != entries["q1"]  # one embedding per distinct text
    e1 = np.load(entries["q1"])
    assert e1.shape == (32,) and e1.dtype == np.float32
    np.testing.assert_allclose(e1, enc.encode_text(["acoustic guitar"], PROMPT_ENSEMBLE)[0].numpy(),
                               rtol=1e-5, atol=1e-5)
    # a different prompt invalidates the cache
    stats = run(_args(tiny_clip_dir, "text", text, out, "--text_prompt", "single"))
    assert stats["written"] == 4
    np.testing.assert_allclose(np.load(entries["q1"]), enc.encode_text(["acoustic guitar"])[0].numpy(),
                               rtol=1e-5, atol=1e-5)


def test_text_mode_empty_query(tmp_path, tiny_clip_dir):
    text = tmp_path / "text"
    text.write_text("q1 violin\nq2   \n")
    with pytest.raises(ValueError, match=r"text:2: empty text query for 'q2'"):
        run(_args(tiny_clip_dir, "text", text, tmp_path / "out"))


def test_image_mode(tmp_path, tiny_clip_dir, enc):
    p = tmp_path / "q.png"
    Image.new("RGB", (50, 50), (200, 10, 10)).save(p)
    scp = tmp_path / "query_image.scp"
    scp.write_text(f"a {p}\nb {tmp_path / 'missing.png'}\n")
    out = tmp_path / "out"
    assert run(_args(tiny_clip_dir, "image", scp, out)) == {"written": 1, "cached": 0, "skipped": 1}
    e = np.load(read_scp(out / "image_embed.scp")["a"])
    assert e.shape == (32,)
    np.testing.assert_allclose(e, enc.encode_images([Image.open(p)])[0].numpy(), rtol=1e-5, atol=1e-5)


def test_retrained_clip_invalidates_cache(tmp_path, tiny_clip_dir):
    import shutil

    clip = tmp_path / "clip"
    shutil.copytree(tiny_clip_dir, clip)
    text = tmp_path / "text"
    text.write_text("q1 violin\n")
    out = tmp_path / "out"
    assert run(_args(clip, "text", text, out))["written"] == 1
    assert run(_args(clip, "text", text, out))["cached"] == 1
    weights = clip / "open_clip_model.safetensors"
    weights.write_bytes(weights.read_bytes())  # "retrained": new mtime
    import os

    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert run(_args(clip, "text", text, out))["written"] == 1


class ToyEncoder(AbsQueryEncoder):
    """A query encoder of one's own: 4-d text embeddings from character counts (text only)."""

    modalities = ("text",)

    def __init__(self, scale: float = 1.0, device: str = "cpu"):
        super().__init__()
        self.scale = scale

    @property
    def embed_dim(self) -> int:
        return 4

    def encode_text(self, queries, templates=("{}",)):
        texts = [t.format(q) for q in queries for t in get_templates(templates)]
        counts = [[t.count("a"), t.count("e"), t.count("o"), len(t)] for t in texts]
        return self.scale * torch.tensor(counts, dtype=torch.float32).view(len(queries), -1, 4).mean(1)


@pytest.fixture
def toy_registered(monkeypatch):
    """Adding an encoder: its class plus one registry line."""
    monkeypatch.setitem(query_encoder_choices.classes, "toy", ToyEncoder)


def test_an_encoder_of_ones_own_through_the_registry(tmp_path, toy_registered):
    """The toy encoder embeds training queries (query_embed), is recorded by a CLIPSep training config,
    and inference embeds a text query with it exactly as training did."""
    from espnet2_clip.bin.clipsep_inference import TextQueriedSeparation
    from espnet2_clip.tasks.clipsep import CLIPSepTask

    labels = tmp_path / "label"
    labels.write_text("u1 a dog barking\nu2 an oboe\n")
    args = CLIPSepTask.get_parser().parse_args([
        "--query_encoder", "toy", "--query_encoder_conf", "scale=2.0", "--text_prompt", "none",
        "--train_query", "text", "--query_conf", "input_dim=4", "--unet_conf", "num_downs=5",
        "--unet_conf", "base_channels=2", "--unet_conf", "out_channels=2"])
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(vars(args)))
    main(["--mode", "text", "--input_scp", str(labels), "--output_dir", str(tmp_path / "out"),
          "--train_config", str(config)])
    info = json.loads((tmp_path / "out" / "text_query_info.json").read_text())
    assert info["query_encoder"] == "toy" and info["query_encoder_conf"] == {"scale": "2.0"} and info["embed_dim"] == 4
    trained = {k: np.load(v) for k, v in read_scp(tmp_path / "out" / "text_embed.scp").items()}
    np.testing.assert_allclose(trained["u1"], 2.0 * np.array([2, 0, 1, 13]))  # a, e, o, length
    sep = TextQueriedSeparation(config)
    assert isinstance(sep.query_encoder, ToyEncoder)
    np.testing.assert_allclose(sep.embed_query("a dog barking", "text")[0].numpy(), trained["u1"])
    with pytest.raises(ValueError, match="takes text queries, not image queries"):
        sep.embed_query([Image.new("RGB", (8, 8))], "frames")
    with pytest.raises(ValueError, match="--mode frames needs an encoder of images"):
        main(["--mode", "frames", "--input_scp", str(labels), "--output_dir", str(tmp_path / "o2"),
              "--query_encoder", "toy"])


def test_label_table_encoder(tmp_path):
    vocab = tmp_path / "label_vocab"
    vocab.write_text("dog barking\nplaying violin\n")
    labels = tmp_path / "text"
    labels.write_text("m1 playing   violin\nm2 dog barking\n")
    main(["--mode", "text", "--input_scp", str(labels), "--output_dir", str(tmp_path / "out"),
          "--query_encoder", "label", "--query_encoder_conf", f"vocab={vocab}"])
    ids = {k: np.load(v) for k, v in read_scp(tmp_path / "out" / "text_embed.scp").items()}
    assert ids["m1"].dtype == np.int64 and ids["m1"].tolist() == [1] and ids["m2"].tolist() == [0]
    labels.write_text("m3 cello\n")
    with pytest.raises(ValueError, match="'cello' is not a label of .*label_vocab .2 labels: dog barking"):
        main(["--mode", "text", "--input_scp", str(labels), "--output_dir", str(tmp_path / "o2"),
              "--query_encoder", "label", "--query_encoder_conf", f"vocab={vocab}"])


def test_unknown_encoder_and_bad_conf_are_clear(tmp_path):
    from espnet2_clip.query.choices import build_query_encoder

    with pytest.raises(ValueError, match=r"unknown query_encoder 'clap' \(registered: \['bert', 'clip', 'label'"):
        build_query_encoder("clap", {})
    with pytest.raises(ValueError, match="query_encoder_conf {'colour': 'red'} does not fit the 'label' encoder"):
        build_query_encoder("label", {"colour": "red"})
