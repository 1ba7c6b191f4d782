"""espnet2_clip: CLIPSep / CLIPSonic for ESPnet2."""
__version__ = "0.1.0"
