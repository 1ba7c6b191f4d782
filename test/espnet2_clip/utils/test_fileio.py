"""The guarantees of our scp reader/writer that ESPnet's (read_2columns_text, DatadirWriter) lack;
see the module docstring of espnet2_clip.utils.fileio for why we keep our own."""

import os

import pytest

from espnet2_clip.utils.fileio import atomic_path, read_scp, write_scp


def test_read_scp_values_may_hold_spaces_and_blank_lines_are_skipped(tmp_path):
    p = tmp_path / "text"
    p.write_text("b  a dog  barking \r\n\n   \n  a /x/y z.wav\n")
    assert read_scp(p) == {"b": "a dog  barking", "a": "/x/y z.wav"}
    assert list(read_scp(p)) == ["b", "a"]  # file order


def test_read_scp_errors_name_file_and_line(tmp_path):
    p = tmp_path / "wav.scp"
    with pytest.raises(FileNotFoundError, match="wav.scp: no such file"):
        read_scp(p)
    p.write_text("a x\n\nb\n")
    with pytest.raises(ValueError, match=r"wav.scp:3: 'b' has no value"):
        read_scp(p)
    assert read_scp(p, allow_empty_value=True) == {"a": "x", "b": ""}
    p.write_text("a x\nb y\na z\n")
    with pytest.raises(ValueError, match=r"wav.scp:3: duplicated id 'a'"):
        read_scp(p)


def test_write_scp_sorts_checks_ids_and_round_trips(tmp_path):
    p = tmp_path / "d" / "text"
    entries = {"b": "two words", "A": "x", "a": "/p q.wav"}
    write_scp(p, entries)
    assert p.read_text() == "A x\na /p q.wav\nb two words\n"  # LC_ALL=C order
    assert read_scp(p) == entries
    for bad in ("", "a b"):
        with pytest.raises(ValueError, match="invalid id"):
            write_scp(tmp_path / "bad", {bad: "v"})
    assert not (tmp_path / "bad").exists()


def test_writes_are_atomic(tmp_path):
    p = tmp_path / "wav.scp"
    write_scp(p, {"a": "old"})
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("a half-writ")
            raise RuntimeError("killed")
    assert p.read_text() == "a old\n"  # the old file stays whole
    assert os.listdir(tmp_path) == ["wav.scp"]  # no temporary left
    assert oct(p.stat().st_mode & 0o777) == oct(0o644)
