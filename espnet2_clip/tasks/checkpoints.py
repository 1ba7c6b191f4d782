"""ESPnet's trainers with checkpoints that survive a kill at any moment.

ESPnet's ``Trainer.run`` writes ``checkpoint.pth`` and ``<N>epoch.pth`` with ``torch.save`` straight
to their final names. A run killed while saving (kill -9, out of memory, a job's time limit) leaves a
truncated ``checkpoint.pth``, and the rerun's ``--resume`` fails deep inside ``torch.load``. Our tasks
train with :class:`Trainer` / :class:`GANTrainer`: ESPnet's loop, unchanged, with every ``torch.save``
of a file written to a temporary next to it and renamed into place, so a kill leaves the previous
checkpoint whole and the rerun resumes from it. A checkpoint broken some other way is named in one
clear error instead of a traceback.
"""

import contextlib
import os
import zipfile
from pathlib import Path
from typing import Iterator, Union

import torch
from espnet2.train.gan_trainer import GANTrainer as ESPnetGANTrainer
from espnet2.train.trainer import Trainer as ESPnetTrainer

from espnet2_clip.utils.fileio import atomic_path


@contextlib.contextmanager
def atomic_torch_saves() -> Iterator[None]:
    """Within the block, ``torch.save(obj, path)`` writes ``path`` atomically (file objects as before)."""
    original = torch.save

    def save(obj, f, *args, **kwargs):
        if not isinstance(f, (str, os.PathLike)):
            return original(obj, f, *args, **kwargs)
        with atomic_path(f) as tmp:
            original(obj, tmp, *args, **kwargs)

    torch.save = save
    try:
        yield
    finally:
        torch.save = original


def check_checkpoint(path: Union[str, Path]) -> None:
    """Raise a clear error if ``path`` is not a complete ``torch.save`` archive."""
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a complete checkpoint (truncated or not written by torch.save), so training "
            f"cannot resume from it: delete it to restart training from epoch 1"
        )


class KillSafeCheckpoints:
    """Mixin for an ESPnet trainer class: atomic checkpoint writes, a checked resume."""

    @classmethod
    def run(cls, *args, **kwargs) -> None:
        with atomic_torch_saves():
            super().run(*args, **kwargs)

    @classmethod
    def resume(cls, checkpoint: Union[str, Path], *args, **kwargs) -> None:
        check_checkpoint(checkpoint)
        super().resume(checkpoint, *args, **kwargs)


class Trainer(KillSafeCheckpoints, ESPnetTrainer):
    """ESPnet's ``Trainer`` with kill-safe checkpoints."""


class GANTrainer(KillSafeCheckpoints, ESPnetGANTrainer):
    """ESPnet's ``GANTrainer`` with kill-safe checkpoints."""
