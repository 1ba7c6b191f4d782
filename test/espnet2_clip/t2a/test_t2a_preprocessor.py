"""CLIPSonicTask preprocessing (reuses CLIPSepPreprocessor on speech/query)."""

import numpy as np
import pytest

from espnet2_clip.tasks.clipsonic import CLIPSonicPreprocessor


def test_per_frame_and_per_clip_queries():
    pre = CLIPSonicPreprocessor(train=False, clip_samples=1000, sample_rate=1000)
    wave = np.arange(5000, dtype=np.float32)
    frames = np.stack([np.full(4, i, dtype=np.float32) for i in range(5)])  # 5 frames at 1 fps
    out = pre("u", {"speech": wave, "query": frames})
    assert out["speech"].shape == (1000,) and set(out) == {"speech", "query"}
    # validation: middle frame 2 (1-based) -> window centred at 1.5 s; query = mean of frames 1..3
    assert out["speech"][0] == 1000 and np.allclose(out["query"], 1.0)
    label = pre("u", {"speech": wave, "query": np.ones(4, dtype=np.float64)})
    assert label["query"].dtype == np.float32 and label["query"].shape == (4,)
    with pytest.raises(ValueError, match="needs a 'query'"):
        pre("u", {"speech": wave})
