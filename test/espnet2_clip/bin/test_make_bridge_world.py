import json
import subprocess
import sys

import pytest

from espnet2_clip.bin.make_bridge_world import main
from espnet2_clip.utils.fileio import read_scp


def test_cli_tiny(tmp_path):
    out = tmp_path / "w"
    rc = main(["--output_dir", str(out), "--seed", "4", "--preset", "ci", "--videos_per_class", "1",
               "--valid_per_class", "1", "--clip_images_per_class", "2", "--test_mix_per_class", "1",
               "--interference_per_class", "1", "--offscreen_noise_prob", "1.0", "--no_progress"])
    assert rc == 0
    world = json.loads((out / "world.json").read_text())
    assert world["seed"] == 4 and world["config"]["num_classes"] == 6  # from the ci preset
    assert world["counts"]["train_videos_with_offscreen_noise"] == 6
    assert len(read_scp(out / "data/test_mix/wav.scp")) == 6
    # a different seed into the same dir is refused with exit 2
    assert main(["--out", str(out), "--seed", "5", "--preset", "ci", "--no_progress"]) == 2


def test_cli_ci_preset(tmp_path):
    """The CI preset from the command line (its speed is the benchmark's business, not a test's)."""
    proc = subprocess.run(
        [sys.executable, "-m", "espnet2_clip.bin.make_bridge_world", "--output_dir", str(tmp_path / "ci"),
         "--preset", "ci", "--no_progress"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    world = json.loads((tmp_path / "ci" / "world.json").read_text())
    assert world["counts"]["train_videos"] == 60


def test_cli_offscreen_options(tmp_path, capsys):
    """Tuple options are comma-separated; the world records them; a bad value names the option."""
    out = tmp_path / "w"
    rc = main(["--output_dir", str(out), "--preset", "ci", "--videos_per_class", "2", "--valid_per_class", "0",
               "--clip_images_per_class", "1", "--test_mix_per_class", "1", "--interference_per_class", "1",
               "--offscreen_noise_prob", "1.0", "--offscreen_kinds", "wind,hum", "--offscreen_max_sources", "1",
               "--offscreen_snr_db", "0,6", "--no_progress"])
    assert rc == 0
    world = json.loads((out / "world.json").read_text())
    assert world["config"]["offscreen_kinds"] == ["wind", "hum"] and world["config"]["offscreen_snr_db"] == [0, 6]
    assert set(read_scp(out / "data/train/offscreen").values()) <= {"wind", "hum"}
    assert set(read_scp(out / "data/test_offscreen/interference_label").values()) <= {"wind", "hum"}
    with pytest.raises(SystemExit):
        main(["--output_dir", str(tmp_path / "x"), "--offscreen_snr_db", "0,loud"])
    assert "--offscreen_snr_db: expected comma-separated float values, got '0,loud'" in capsys.readouterr().err
    assert main(["--output_dir", str(tmp_path / "y"), "--offscreen_kinds", "rain", "--no_progress"]) == 2
    assert "offscreen_kinds must be some of class, babble, wind, hum, got rain" in capsys.readouterr().err
