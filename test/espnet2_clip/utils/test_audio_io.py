import logging

import numpy as np
import pytest

from espnet2_clip.utils.audio_io import warn_if_above_full_scale


@pytest.mark.parametrize("name, fate", [("g.wav", "kept whole in the float WAV, but players clip it"),
                                        ("g.flac", "clipped in .flac (PCM_24); write .wav (float) to keep it whole"),
                                        ("g.ogg", "clipped in .ogg (VORBIS)")])
def test_an_output_above_full_scale_is_reported_with_its_fate(caplog, name, fate):
    wave = np.array([0.1, -2.5, 0.3], dtype=np.float32)
    with caplog.at_level(logging.WARNING, logger="espnet2_clip"):
        warn_if_above_full_scale(wave, name)
    assert len(caplog.records) == 1
    assert caplog.records[0].getMessage().startswith(f"output '{name}' peaks at 2.50, above full scale: {fate}")


def test_an_output_within_full_scale_is_not_reported(caplog):
    with caplog.at_level(logging.WARNING, logger="espnet2_clip"):
        warn_if_above_full_scale(np.array([1.0, -1.0, 0.0]), "g.flac")
        warn_if_above_full_scale(np.zeros(0), "g.wav")
    assert caplog.records == []
