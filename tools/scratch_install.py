"""Install reference packages into a scratch directory for the parity tools (never into the venv,
never imported by espnet2_clip): ``pip install --no-deps --target DIR``, skipped when DIR already
holds the package."""

import subprocess
import sys
from pathlib import Path
from typing import Sequence


def install_into(scratch: Path, packages: Sequence[str], module: str) -> None:
    """``pip install --no-deps --target scratch packages`` unless ``scratch/module`` exists; then
    ``scratch`` goes first on ``sys.path``."""
    if not (scratch / module).is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(scratch),
                        *packages], check=True)
    sys.path.insert(0, str(scratch))
