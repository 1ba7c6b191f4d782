"""The library benchmark runs (a smoke test; its numbers are for people, not asserted)."""

from espnet2_clip.bin import library_benchmark


def test_scp_and_frechet_sections_print_both_columns_and_a_decision(capsys):
    library_benchmark.main(["--sections", "scp", "frechet", "--scp_lines", "200", "--threads", "1"])
    out = capsys.readouterr().out
    assert "espnet2.fileio" in out and "frechet_audio_distance" in out
    assert out.count("decision:") == 2
    assert "read: blank line between entries" in out
