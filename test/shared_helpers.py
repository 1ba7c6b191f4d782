"""Small data writers and readers shared by several test files (importable from any test: pytest puts
this directory on sys.path for test/conftest.py)."""

from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import soundfile as sf


def write_clips(root: Path, num: int = 8, seconds: float = 3.0, bursts: bool = True, sr: int = 16000) -> None:
    """Single-source training clips for tiny CLIPSep / CLIPSonic runs: odd items are tones, even items
    noise (in 0.25-s bursts with ``bursts``), each with per-frame (3, 32) query embeddings that tell
    the two kinds apart. Writes ``c<i>.wav``, ``c<i>.npy``, ``wav.scp`` and ``query.scp`` in ``root``."""
    rng = np.random.default_rng(0)
    wav, query = [], []
    for i in range(num):
        t = np.arange(int(seconds * sr)) / sr
        if i % 2:
            x = 0.3 * np.sin(2 * np.pi * (300 + 40 * i) * t)
        else:
            x = 0.3 * rng.standard_normal(len(t))
            if bursts:
                x = x * (np.sin(2 * np.pi * 2 * t) > 0)
        sf.write(root / f"c{i}.wav", x.astype(np.float32), sr)
        np.save(root / f"c{i}.npy", (rng.standard_normal((3, 32)) + (i % 2) * 3).astype(np.float32))
        wav.append(f"c{i} {root / f'c{i}.wav'}\n")
        query.append(f"c{i} {root / f'c{i}.npy'}\n")
    (root / "wav.scp").write_text("".join(wav))
    (root / "query.scp").write_text("".join(query))


def markdown_table(text: str, header_start: str = "| System") -> Tuple[List[str], Dict[str, List[str]]]:
    """The first markdown table of ``text`` whose header line starts with ``header_start``:
    ``(header cells, {first cell of a row: its other cells})``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return header, rows
