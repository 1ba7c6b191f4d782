"""tools/clipsonic_pd_benchmark.py at its tiny scale: the random models it writes load through the real
paths (TextToAudio with a LAION-format prior) and every part is timed."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_tiny_scale_times_every_part(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "clipsonic_pd_benchmark.py"), "--scale", "tiny",
                           "--scratch_dir", str(tmp_path / "models"), "--num_steps", "2", "--threads", "1",
                           "--output", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert (result["variant"], result["prior"], result["vocoder"]) == ("PD", "LaionPrior", "HiFi-GAN")
    for key in ("seconds_clip_text", "seconds_text_to_condition", "seconds_mel_sampling", "seconds_vocoder"):
        assert result[key] > 0, key
    assert (tmp_path / "models" / "laion_prior" / "best.pth").is_file()
    assert "prior: 0.0 M parameters" in proc.stderr and "clipsonic: 0.1 M parameters" in proc.stderr
