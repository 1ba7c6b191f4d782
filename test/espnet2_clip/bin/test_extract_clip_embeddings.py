import numpy as np
import pytest
import torch
from PIL import Image

from espnet2_clip.bin.extract_clip_embeddings import get_parser, main, run
from espnet2_clip.query.clip_encoder import PROMPT_ENSEMBLE, CLIPQueryEncoder
from espnet2_clip.utils.fileio import read_scp


def _args(tiny_clip_dir, mode, in_scp, out_dir, *extra):
    return get_parser().parse_args([
        "--mode", mode, "--input_scp", str(in_scp), "--output_dir", str(out_dir),
        "--clip_model", str(tiny_clip_dir), "--clip_pretrained", "none", "--batch_size", "2", *extra,
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


def test_text_mode_prompts(tmp_path, tiny_clip_dir, enc):
    text = tmp_path / "text"
    text.write_text("q1 acoustic guitar\nq2 violin\nq3 dog barking loudly\n")
    out = tmp_path / "out"
    main(["--mode", "text", "--input_scp", str(text), "--output_dir", str(out),
          "--clip_model", str(tiny_clip_dir), "--clip_pretrained", "none", "--prompt", "ensemble",
          "--batch_size", "2"])
    entries = read_scp(out / "text_embed.scp")
    assert sorted(entries) == ["q1", "q2", "q3"]
    e1 = np.load(entries["q1"])
    assert e1.shape == (32,) and e1.dtype == np.float32
    np.testing.assert_allclose(e1, enc.encode_text(["acoustic guitar"], PROMPT_ENSEMBLE)[0].numpy(),
                               rtol=1e-5, atol=1e-5)
    # a different prompt invalidates the cache
    stats = run(_args(tiny_clip_dir, "text", text, out, "--prompt", "single"))
    assert stats["written"] == 3
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
