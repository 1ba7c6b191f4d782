import json
import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from espnet2_clip.query.clip_encoder import CLIPQueryEncoder
from espnet2_clip.query.clip_training import (
    augment_batch,
    parse_eval_labels,
    read_captioned_images,
    train_clip,
)

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}
SHAPES = ("circle", "square")


def make_shape_world(root, n=24, empty_caption=None):
    """Coloured shapes on dark backgrounds: image.scp, caption, label."""
    rng = np.random.RandomState(0)
    img_dir = root / "img"
    img_dir.mkdir(parents=True)
    scp, cap, lab = [], [], []
    for i in range(n):
        colour = list(COLOURS)[i % 3]
        shape = SHAPES[(i // 3) % 2]
        im = Image.new("RGB", (48, 40), tuple(int(v) for v in rng.randint(0, 60, 3)))
        r = int(rng.randint(8, 14))
        x, y = int(rng.randint(r, 48 - r)), int(rng.randint(r, 40 - r))
        draw = ImageDraw.Draw(im)
        (draw.ellipse if shape == "circle" else draw.rectangle)([x - r, y - r, x + r, y + r], fill=COLOURS[colour])
        path = img_dir / f"utt{i:03d}.png"
        im.save(path)
        key = f"utt{i:03d}"
        scp.append(f"{key} {path}\n")
        cap.append(f"{key}\n" if key == empty_caption else f"{key} a photo of a {colour} {shape}\n")
        lab.append(f"{key} {colour}_{shape}\n")
    (root / "image.scp").write_text("".join(scp))
    (root / "caption").write_text("".join(cap))
    (root / "label").write_text("".join(lab))
    return root


def test_read_captioned_images(tmp_path):
    d = make_shape_world(tmp_path / "d", n=6, empty_caption="utt002")
    ids, paths, caps, n_empty = read_captioned_images(d)
    assert n_empty == 1 and len(ids) == 5 and "utt002" not in ids
    assert caps[0] == "a photo of a red circle"
    # id mismatch names file and line
    with open(d / "caption", "a") as f:
        f.write("extra a photo of nothing\n")
    with pytest.raises(ValueError, match=r"caption:7: id 'extra' has no image"):
        read_captioned_images(d)
    (d / "caption").write_text("utt000 a photo\n")
    with pytest.raises(ValueError, match=r"image.scp:2: id 'utt001' has no caption"):
        read_captioned_images(d)


def test_augment_batch_shapes_and_determinism():
    x = torch.randint(0, 255, (4, 3, 20, 20), dtype=torch.uint8)
    a = augment_batch(x, 16, torch.Generator().manual_seed(1))
    b = augment_batch(x, 16, torch.Generator().manual_seed(1))
    assert a.shape == (4, 3, 16, 16) and a.min() >= 0 and a.max() <= 1
    torch.testing.assert_close(a, b)
    # identity when crop scale is 1 and no flip
    ident = augment_batch(x, 20, torch.Generator().manual_seed(0), min_scale=1.0, hflip_prob=0.0)
    # aspect jitter still applies; with scale 1 the crop is clamped to the full width or height
    assert ident.shape == (4, 3, 20, 20)


def test_parse_eval_labels(tmp_path):
    assert parse_eval_labels("auto", ["b", "a", "b"]) == ["a", "b"]
    assert parse_eval_labels("x, y,z", []) == ["x", "y", "z"]
    f = tmp_path / "classes"
    f.write_text("red circle\nblue square\n")
    assert parse_eval_labels(str(f), []) == ["red circle", "blue square"]
    assert parse_eval_labels(None, []) is None


def test_train_clip_saves_reloadable_model(tmp_path):
    data = make_shape_world(tmp_path / "data", n=24, empty_caption="utt005")
    out = tmp_path / "exp"
    model = train_clip(
        data, out, model_config="espnet2clip-tiny", batch_size=8, lr=1e-3, epochs=2,
        num_workers=1, seed=3, eval_labels="auto", eval_fraction=0.25, log_interval=1,
    )
    for name in ("open_clip_model.safetensors", "open_clip_config.json", "train_info.json", "train_clip.log"):
        assert (out / name).is_file(), name
    info = json.loads((out / "train_info.json").read_text())
    assert info["n_empty_captions"] == 1
    assert info["n_eval"] == 6 and info["n_train"] == 17
    assert info["steps"] == 2 * (17 // 8)
    assert 0.0 <= info["zero_shot_accuracy"] <= 1.0
    assert "zero-shot accuracy" in (out / "train_clip.log").read_text()
    cfg = json.loads((out / "open_clip_config.json").read_text())
    assert cfg["model_cfg"]["embed_dim"] == 32 and cfg["preprocess_cfg"]["size"] == [32, 32]

    enc = CLIPQueryEncoder(str(out), pretrained=None)
    tok = enc.tokenizer(["a photo of red circle"])
    with torch.no_grad():
        ref = model.encode_text(tok)
    torch.testing.assert_close(enc.encode_text(["red circle"]), ref)
    pix = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(enc.encode_images(pix), model.encode_image(pix))

    # fixed seed: same weights again
    model2 = train_clip(data, tmp_path / "exp2", model_config="espnet2clip-tiny", batch_size=8,
                        epochs=2, num_workers=1, seed=3, eval_labels="auto", eval_fraction=0.25)
    with torch.no_grad():
        torch.testing.assert_close(model2.encode_text(tok), ref)


def test_train_clip_errors(tmp_path):
    data = make_shape_world(tmp_path / "data", n=6)
    (data / "label").unlink()
    with pytest.raises(FileNotFoundError, match="label"):  # named classes need the label file
        train_clip(data, tmp_path / "o", model_config="espnet2clip-tiny", epochs=1, eval_labels="red,blue")
    # "auto" without a label file (the README layout): trains, no zero-shot check
    train_clip(data, tmp_path / "auto", model_config="espnet2clip-tiny", epochs=1, eval_labels="auto", batch_size=2)
    info = json.loads((tmp_path / "auto" / "train_info.json").read_text())
    assert info["steps"] > 0 and info["zero_shot_accuracy"] is None and info["n_eval"] == 0
    with pytest.raises(ValueError, match="unknown model config"):
        train_clip(data, tmp_path / "o", model_config="no-such-model", epochs=1)


def test_train_budget_schedule():
    from espnet2_clip.query.clip_training import TrainBudget

    b = TrainBudget.make(n_train=10, batch_size=4, epochs=5, warmup_steps=50)
    assert (b.batch_size, b.steps_per_epoch, b.total_steps, b.warmup) == (4, 2, 10, 1)  # warm-up <= a tenth
    assert TrainBudget.make(n_train=3, batch_size=8, epochs=2).batch_size == 3
    assert TrainBudget.make(n_train=100, batch_size=10, epochs=50, max_steps=7).total_steps == 7
    b = TrainBudget.make(n_train=100, batch_size=10, epochs=100, warmup_steps=20, max_minutes=1.0)
    assert b.lr(1.0, 0, 0.0) == pytest.approx(1 / 20) and b.lr(1.0, 19, 0.0) == pytest.approx(1.0)
    assert b.lr(1.0, 500, 0.0) == pytest.approx(0.5)  # cosine half-way by steps
    assert b.lr(1.0, 500, 45.0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.75)))  # time is further on
    assert not b.spent(999, 59.0) and b.spent(1000, 0.0) and b.spent(1, 60.0)
