import argparse

import numpy as np
import pytest
from PIL import Image

from espnet2_clip.query.inference_io import QueryLists, add_query_arguments


def _args(**kw):
    parser = argparse.ArgumentParser()
    add_query_arguments(parser, required=False)
    argv = [x for k, v in kw.items() for x in (f"--{k}", str(v))]
    return parser.parse_args(argv)


def test_image_lists_one_path_with_spaces_or_several_frames(tmp_path):
    folder = tmp_path / "my frames"
    folder.mkdir()
    for i, colour in enumerate(((255, 0, 0), (0, 0, 255))):
        Image.new("RGB", (4, 4), colour).save(folder / f"f {i}.png")
    other = tmp_path / "a.png"
    Image.new("RGB", (4, 4), (0, 255, 0)).save(other)
    scp = tmp_path / "query_image.scp"
    scp.write_text(f"u1 {folder / 'f 0.png'}\nu2 {other} {other}\nu3 {tmp_path / 'missing.png'}\n")
    queries = QueryLists(_args(query_image=scp))
    assert queries.option == "--query_image"
    kind, one = queries["u1"]
    assert kind == "frames" and len(one) == 1 and one[0].getpixel((0, 0)) == (255, 0, 0)  # one frame
    two = queries["u2"][1]
    assert len(two) == 2 and two[1].getpixel((0, 0)) == (0, 255, 0)
    with pytest.raises(ValueError, match="cannot read the query image .*missing.png"):
        queries["u3"]
    with pytest.raises(ValueError, match=r"--query_image has no query for 1 mixtures, e.g. \['u4'\]"):
        queries.check_covers(["u1", "u4"])


def test_text_embedding_and_no_query(tmp_path):
    (tmp_path / "text").write_text("u1 acoustic guitar\n")
    assert QueryLists(_args(query_text=tmp_path / "text"))["u1"] == ("text", "acoustic guitar")
    np.save(tmp_path / "e.npy", np.arange(3, dtype=np.float32))
    (tmp_path / "emb.scp").write_text(f"u1 {tmp_path / 'e.npy'}\n")
    kind, emb = QueryLists(_args(query_embedding=tmp_path / "emb.scp"))["u1"]
    assert kind == "embedding"
    np.testing.assert_array_equal(emb, [0, 1, 2])
    none = QueryLists(_args())
    assert none["u1"] == (None, None) and none.option is None
    none.check_covers(["u1"])  # nothing to cover without a query list (PIT)
