"""ESPnet2 tasks of espnet2_clip."""
