"""Kill-safe checkpoints (espnet2_clip.tasks.checkpoints): a kill while saving leaves the old file whole."""

import multiprocessing
import os
import signal
import time

import pytest
import torch

from espnet2_clip.tasks.checkpoints import GANTrainer, Trainer, atomic_torch_saves, check_checkpoint
from espnet2_clip.utils.fileio import is_stale_temp


def _save_big(path: str) -> None:
    torch.set_num_threads(1)  # a forked child must not enter the parent's OpenMP pool
    with atomic_torch_saves():
        torch.save({"weights": torch.ones(64 * 2 ** 20)}, path)  # 256 MB: a save of a good fraction of a second
    os._exit(0)


def test_a_kill_while_saving_leaves_the_previous_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pth"
    torch.save({"epoch": 1}, path)
    child = multiprocessing.get_context("fork").Process(target=_save_big, args=(str(path),))
    child.start()
    deadline = time.monotonic() + 60

    def temporaries():
        return [p for p in tmp_path.iterdir() if is_stale_temp(p.name) and p.stat().st_size > 0]

    while child.is_alive() and not temporaries() and time.monotonic() < deadline:
        time.sleep(0.001)
    saving = bool(temporaries())
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    assert saving and child.exitcode == -signal.SIGKILL  # killed in the middle of the save
    assert torch.load(path) == {"epoch": 1}
    check_checkpoint(path)
    # the next save replaces it whole; outside the block, torch.save is torch's own again
    with atomic_torch_saves():
        torch.save({"epoch": 2}, path)
        assert torch.save is not torch.serialization.save
    assert torch.save is torch.serialization.save
    assert torch.load(path) == {"epoch": 2}


def test_file_objects_are_saved_as_before(tmp_path):
    with atomic_torch_saves(), open(tmp_path / "x.pth", "wb") as f:
        torch.save([1, 2], f)
    assert torch.load(tmp_path / "x.pth") == [1, 2]


def test_a_broken_checkpoint_is_named(tmp_path):
    (tmp_path / "checkpoint.pth").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(ValueError, match="checkpoint.pth is not a complete checkpoint"):
        check_checkpoint(tmp_path / "checkpoint.pth")


def test_our_tasks_train_with_them():
    from espnet2_clip.tasks.clipsep import CLIPSepTask
    from espnet2_clip.tasks.clipsonic import CLIPSonicTask
    from espnet2_clip.tasks.vocoder import HiFiGANVocoderTask

    assert CLIPSepTask.trainer is CLIPSonicTask.trainer is Trainer
    assert HiFiGANVocoderTask.trainer is GANTrainer
