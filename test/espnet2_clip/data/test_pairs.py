import os
import random
from pathlib import Path

import pytest

from espnet2_clip.bin.make_eval_pairs import main as make_pairs_main
from espnet2_clip.data.lists import derive_no_music, read_index_csv
from espnet2_clip.data.pairs import (
    PAIR_COLUMNS,
    build_eval_pairs,
    interference_index,
    pairs_to_csv_text,
    read_pairs_csv,
)

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "lists"


def official_lists_dir():
    env = os.environ.get("CLIPSEP_LISTS_DIR")
    d = Path(env) if env else Path(__file__).resolve().parents[3].parent / "shared" / "reference" / "lists"
    return d if (d / "pairs_music_plus.csv").is_file() else None


OFFICIAL = official_lists_dir()
needs_official = pytest.mark.skipif(OFFICIAL is None, reason="official CLIPSep lists not present")


def test_interference_index_matches_global_random():
    state = random.getstate()
    try:
        for idx in range(50):
            random.seed(idx)
            assert interference_index(idx, 75) == random.randint(0, 74)
    finally:
        random.setstate(state)
    before = random.getstate()
    interference_index(3, 10)
    assert random.getstate() == before  # the global RNG is not touched
    with pytest.raises(ValueError):
        interference_index(0, 0)


def test_pairs_on_fixture_lists(tmp_path):
    targets = read_index_csv(FIX / "music_test_small.csv")
    pool = derive_no_music(read_index_csv(FIX / "vggsound_test_small.csv"))
    pairs = build_eval_pairs(targets, pool)
    for p, t in zip(pairs, targets):
        random.seed(p.idx)
        s = pool[random.randint(0, len(pool) - 1)]
        assert (p.target_id, p.interf_id) == (t.clip_id, s.clip_id)
        assert p.target_center_frame == t.n_frames // 2 and p.interf_center_frame == s.n_frames // 2
    golden = (FIX / "pairs_music_plus_small.csv").read_text()
    assert pairs_to_csv_text(pairs) == golden
    # CLI, deriving the no-music pool itself
    out = tmp_path / "pairs.csv"
    rc = make_pairs_main([
        "--targets", str(FIX / "music_test_small.csv"), "--pool", str(FIX / "vggsound_test_small.csv"),
        "--derive_no_music", "--output", str(out), "--pool_output", str(tmp_path / "pool.csv"),
    ])
    assert rc == 0 and out.read_text() == golden
    assert read_pairs_csv(out) == pairs
    assert len(read_index_csv(tmp_path / "pool.csv")) == 6


def test_cli_malformed(tmp_path):
    args = ["--targets", str(FIX / "malformed.csv"), "--pool", str(FIX / "vggsound_test_small.csv"),
            "--output", str(tmp_path / "p.csv")]
    assert make_pairs_main(args) == 1 and not (tmp_path / "p.csv").exists()
    assert make_pairs_main(args + ["--on_error", "skip"]) == 0
    assert len(read_pairs_csv(tmp_path / "p.csv")) == 2


@needs_official
@pytest.mark.parametrize(
    "targets,pool,expected",
    [
        ("music_test.csv", "test-good-no-music.csv", "pairs_music_plus.csv"),
        ("test-good.csv", "test-no-music.csv", "pairs_vggsound_clean_plus.csv"),
    ],
)
def test_reproduces_official_pairs(tmp_path, targets, pool, expected):
    out = tmp_path / expected
    rc = make_pairs_main(["--targets", str(OFFICIAL / targets), "--pool", str(OFFICIAL / pool),
                          "--output", str(out)])
    assert rc == 0
    assert out.read_text() == (OFFICIAL / expected).read_text()
    pairs = read_pairs_csv(out)
    assert len(pairs) == {"pairs_music_plus.csv": 46, "pairs_vggsound_clean_plus.csv": 100}[expected]
    assert all(p.target_id != p.interf_id for p in pairs)


@needs_official
def test_vggsound_clean_plus_from_derived_pool(tmp_path):
    out = tmp_path / "p.csv"
    rc = make_pairs_main(["--targets", str(OFFICIAL / "test-good.csv"), "--pool", str(OFFICIAL / "test.csv"),
                          "--derive_no_music", "--output", str(out)])
    assert rc == 0
    assert out.read_text() == (OFFICIAL / "pairs_vggsound_clean_plus.csv").read_text()
    assert out.read_text().splitlines()[0] == ",".join(PAIR_COLUMNS)


def test_a_target_drawn_as_its_own_interference_is_kept_with_a_warning(caplog):
    from espnet2_clip.data.lists import ClipRecord
    from espnet2_clip.data.pairs import build_eval_pairs, interference_index

    clips = [ClipRecord(f"a/{c}.wav", f"f/{c}", 12, "dog", f"pool.csv:{i + 1}") for i, c in enumerate("wxyz")]
    self_pairs = [i for i in range(4) if interference_index(i, 4) == i]
    assert self_pairs  # the official draw over a 4-clip pool gives one
    with caplog.at_level("WARNING"):
        pairs = build_eval_pairs(clips, clips)
    assert len(pairs) == 4 and [p.idx for p in pairs if p.target_id == p.interf_id] == self_pairs
    assert f"pair {self_pairs[0]}: the interference drawn for" in caplog.text and "measures nothing" in caplog.text
