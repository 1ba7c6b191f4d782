"""Shared pytest fixtures (no network)."""

import os
import shutil
import tempfile
import zipfile

import pytest

_NLTK_DIR = None


def pytest_configure(config):
    """Keep ESPnet's imports offline: g2p_en (imported by ESPnet's task modules) downloads two
    nltk resources when it cannot find them. Empty stand-ins satisfy the lookup; our code never
    uses them. Set in the environment, so subprocesses (CLI and recipe tests) inherit it."""
    global _NLTK_DIR
    _share_cores_between_workers()
    _NLTK_DIR = tempfile.mkdtemp(prefix="espnet2_clip_nltk_")
    for resource in ("taggers/averaged_perceptron_tagger_eng.zip", "corpora/cmudict.zip"):
        path = os.path.join(_NLTK_DIR, resource)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        zipfile.ZipFile(path, "w").close()
    os.environ["NLTK_DATA"] = _NLTK_DIR


def _share_cores_between_workers():
    """Under pytest-xdist (``-n N``), each worker and the recipes it starts get cores/N threads: N workers
    of torch's default (all cores each) would oversubscribe the machine, and OpenMP's spinning waits then
    make small ops many times slower. Set before torch is imported; inherited by subprocesses."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))


def pytest_unconfigure(config):
    if _NLTK_DIR:
        shutil.rmtree(_NLTK_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    """A randomly initialised tiny open_clip CLIP saved like ``train_clip`` output.

    Load it with ``CLIPQueryEncoder(model_name=str(tiny_clip_dir), pretrained=None)``
    (embed_dim 32, 32 px images).
    """
    import open_clip
    import torch

    from espnet2_clip.query.clip_training import save_open_clip_dir
    from espnet2_clip.query.configs import TINY_CLIP_CONFIG, register_builtin_configs

    register_builtin_configs()
    torch.manual_seed(0)
    model = open_clip.create_model("espnet2clip-tiny", pretrained=None)
    out = tmp_path_factory.mktemp("tiny_clip")
    save_open_clip_dir(model.eval(), TINY_CLIP_CONFIG, out)
    return out


@pytest.fixture
def one_torch_thread():
    """Tiny models on one thread: on a busy 2-core machine, OpenMP waits make the many small ops of an
    RNN 100x slower with two."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
