"""kill -9 in the middle of the stages that write per-item outputs, then rerun (issue 12, item 2).

Each stage's module (as the recipe calls it) runs in a forked child that is SIGKILLed at a random
moment once part of its outputs exist: stage 5 (CLIP frame embeddings), stage 6 (test-set formatting),
stage 8 (separation) and stage 9 (scoring). Then:

- every output file the killed run left under its real name is complete (byte-identical to an
  uninterrupted run's): a reader never meets a half-written file;
- the rerun finishes, removes the killed writer's temporaries and ends with the files of an
  uninterrupted run, byte for byte.

Stages 1 and 3 are killed the same way through the recipe in ``test/egs2/test_rehearsal_corpus.py``;
training (stage 7: resumed to the state of an uninterrupted run, checkpoints saved atomically) in
``test/espnet2_clip/tasks/test_clipsep_iterators.py`` and ``test/espnet2_clip/tasks/test_checkpoints.py``. Forking keeps the cost at a few seconds: the
child starts with ESPnet and torch already imported.
"""

import multiprocessing
import os
import random
import shutil
import signal
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image
from shared_helpers import tiny_clipsep_config, train_clipsep, write_clips

from espnet2_clip.utils.fileio import is_stale_temp

SR = 16000
CLIP = 4095

# the clean run, the killed child and the rerun on one thread: the same numbers, bit for bit
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _content(path: Path, root: Path) -> bytes:
    """A file's bytes (its dir's own path in scp files made neutral); a wav's rate and samples (a float
    wav's header holds the time it was written)."""
    if path.suffix == ".wav" and not is_stale_temp(path.name):
        samples, rate = sf.read(path, dtype="float32", always_2d=True)
        return f"{rate} {samples.shape}".encode() + samples.tobytes()
    return path.read_bytes().replace(str(root).encode(), b"ROOT")


def _files(root: Path) -> Dict[str, bytes]:
    """Every file under ``root`` by relative path, with its :func:`_content`."""
    return {str(p.relative_to(root)): _content(p, root) for p in sorted(root.rglob("*")) if p.is_file()}


def _count(directory: Path, suffix: str) -> Callable[[], int]:
    """Progress of a stage: the finished outputs (not temporaries) in ``directory``."""
    return lambda: sum(1 for p in directory.glob(f"*{suffix}") if not is_stale_temp(p.name)) if directory.is_dir() else 0


def _child(main: Callable, argv: Sequence[str]) -> None:
    torch.set_num_threads(1)  # a forked child must not enter the parent's OpenMP pool (it would hang)
    main(list(argv))
    os._exit(0)


def kill_midway(main: Callable, argv: List[str], ready: Callable[[], bool], moment: str) -> None:
    """Run ``main(argv)`` in a forked child and SIGKILL it as soon as ``ready()``."""
    child = multiprocessing.get_context("fork").Process(target=_child, args=(main, argv))
    child.start()
    deadline = time.monotonic() + 120
    while child.is_alive() and not ready() and time.monotonic() < deadline:
        time.sleep(0.001)
    alive = child.is_alive()
    if alive:
        os.kill(child.pid, signal.SIGKILL)
    child.join()
    assert alive and child.exitcode == -signal.SIGKILL, f"the stage finished before it could be {moment}"


def after_outputs(progress: Callable[[], int], total: int, duration: float, rnd: random.Random):
    """A random moment: once 1 to ``total - 2`` outputs exist, plus a random part of one output's time
    (``duration``: an uninterrupted run's)."""
    at, extra = rnd.randint(1, total - 2), rnd.uniform(0.0, duration / total)
    reached: List[float] = []

    def ready() -> bool:
        if not reached and progress() >= at:
            reached.append(time.monotonic())
        return bool(reached) and time.monotonic() - reached[0] >= extra
    return ready, f"killed after {at} of {total} outputs + {extra * 1000:.0f} ms"


def after_seconds(duration: float, rnd: random.Random):
    """A random moment within the first 80 % of an uninterrupted run's ``duration``."""
    delay = rnd.uniform(0.02, 0.8) * duration
    start: List[float] = []

    def ready() -> bool:
        start.append(time.monotonic()) if not start else None
        return time.monotonic() - start[0] >= delay
    return ready, f"killed after {delay:.3f} s of a {duration:.3f}-s run"


def check_kill_and_rerun(main: Callable, argv_for: Callable[[Path], List[str]], tmp: Path, moment_for) -> Dict[str, bytes]:
    """An uninterrupted run in ``tmp/clean``; a run in ``tmp/killed`` killed at ``moment_for(killed_dir,
    duration, rnd)``, then rerun: the files left under their real names are complete, and the rerun
    ends with the clean run's files, byte for byte, and no temporaries."""
    clean, killed = tmp / "clean", tmp / "killed"
    start = time.monotonic()
    main(argv_for(clean))
    duration = time.monotonic() - start
    expected = _files(clean)
    seed = random.randrange(10 ** 6)
    ready, moment = moment_for(killed, duration, random.Random(seed))
    moment = f"{moment} (seed {seed})"
    kill_midway(main, argv_for(killed), ready, moment)
    left = _files(killed) if killed.is_dir() else {}
    finished = {k: v for k, v in left.items() if not is_stale_temp(Path(k).name)}
    half_written = [k for k, v in finished.items() if expected.get(k) != v]
    assert half_written == [], f"{moment}: left incomplete or wrong under their real names: {half_written}"
    main(argv_for(killed))
    after = _files(killed)
    assert sorted(after) == sorted(expected), f"{moment}: the rerun left other files than a clean run"
    assert [k for k in expected if after[k] != expected[k]] == [], moment
    return finished


def _frame_dirs(root: Path, num: int) -> Path:
    rng = np.random.default_rng(0)
    lines = []
    for v in range(num):
        d = root / "frames" / f"vid{v:02d}"
        d.mkdir(parents=True)
        for i in range(1, 4):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(d / f"{i:06d}.jpg")
        lines.append(f"vid{v:02d} {d}\n")
    (root / "frames.scp").write_text("".join(lines))
    return root / "frames.scp"


def test_stage5_frame_embeddings(tmp_path, tiny_clip_dir):
    from espnet2_clip.bin.query_embed import main

    scp = _frame_dirs(tmp_path / "in", 40)

    def argv(out: Path) -> List[str]:
        return ["--mode", "frames", "--input_scp", str(scp), "--output_dir", str(out),
                "--output_scp", str(out / "query_image.scp"), "--query_encoder", "clip",
                "--query_encoder_conf", f"{{model_name: {tiny_clip_dir}, pretrained: none}}"]

    finished = check_kill_and_rerun(main, argv, tmp_path,
                                    lambda out, t, rnd: after_outputs(_count(out / "frames", ".npy"), 40, t, rnd))
    assert finished  # killed mid-way: some embeddings were done


def _test_set(root: Path, sources: List[Tuple[np.ndarray, np.ndarray]], fs: int) -> Path:
    """A test set in ``root`` (wav.scp, spk1.scp, spk2.scp, text) of the mixtures of ``sources`` pairs."""
    tables: Dict[str, List[str]] = {"wav.scp": [], "spk1.scp": [], "spk2.scp": [], "text": []}
    (root / "audio").mkdir(parents=True)
    for i, (s1, s2) in enumerate(sources):
        for name, x in (("spk1", s1), ("spk2", s2), ("wav", s1 + s2)):
            path = root / "audio" / f"m{i:02d}_{name}.wav"
            sf.write(path, x.astype(np.float32), fs, subtype="FLOAT")
            tables[f"{name}.scp"].append(f"m{i:02d} {path}\n")
        tables["text"].append(f"m{i:02d} a sound\n")
    for name, lines in tables.items():
        (root / name).write_text("".join(lines))
    return root


def _mixtures(root: Path, num: int) -> Path:
    """Tones in noise at 16 kHz, two clips long."""
    rng = np.random.default_rng(2)
    t = np.arange(2 * CLIP) / SR
    return _test_set(root, [(0.2 * np.sin(2 * np.pi * (300 + 20 * i) * t), 0.1 * rng.standard_normal(2 * CLIP))
                            for i in range(num)], SR)


def test_stage6_test_set_formatting(tmp_path):
    from espnet2_clip.bin.format_test_set import main

    rng = np.random.default_rng(1)  # 22.05-kHz stereo: stage 6 rewrites every file
    data = _test_set(tmp_path / "in", [tuple(0.1 * rng.standard_normal((2, 22050, 2))) for _ in range(30)], 22050)

    def argv(out: Path) -> List[str]:
        return ["--data_dir", str(data), "--output_dir", str(out)]

    finished = check_kill_and_rerun(main, argv, tmp_path,
                                    lambda out, t, rnd: after_outputs(_count(out / "wav", ".wav"), 90, t, rnd))
    assert finished


@pytest.fixture(scope="module")
def tiny_separator(tmp_path_factory, tiny_clip_dir):
    """A tiny CLIPSep after one epoch (the recipe's config.yaml + model file)."""
    root = tmp_path_factory.mktemp("kill_sep")
    (root / "data").mkdir()
    write_clips(root / "data", num=4)
    return train_clipsep(root, root / "data", tiny_clipsep_config(tiny_clip_dir, CLIP))


def test_stage8_separation(tmp_path, tiny_separator):
    from espnet2_clip.bin.clipsep_inference import main

    test = _mixtures(tmp_path / "in", 40)

    def argv(out: Path) -> List[str]:
        return ["--train_config", str(tiny_separator / "config.yaml"),
                "--model_file", str(tiny_separator / "valid.loss.best.pth"), "--mix_scp", str(test / "wav.scp"),
                "--query_text", str(test / "text"), "--output_dir", str(out), "--output_length", "istft"]

    finished = check_kill_and_rerun(main, argv, tmp_path,
                                    lambda out, t, rnd: after_outputs(_count(out / "wav", ".wav"), 40, t, rnd))
    assert finished


def test_stage9_scoring(tmp_path):
    """Scoring writes its tables only at the end: killed at a random moment of an uninterrupted run's
    duration, it leaves either nothing or complete files."""
    from espnet2_clip.bin.clipsep_scoring import main

    test = _mixtures(tmp_path / "in", 12)
    est = tmp_path / "in" / "est.scp"  # an "estimate": the mixture scaled towards the target
    lines = []
    for line in (test / "wav.scp").read_text().splitlines():
        key, path = line.split()
        mix, _ = sf.read(path)
        ref, _ = sf.read(test / "audio" / f"{key}_spk1.wav")
        sf.write(tmp_path / "in" / f"{key}_est.wav", (0.5 * mix + 0.5 * ref).astype(np.float32), SR)
        lines.append(f"{key} {tmp_path / 'in' / f'{key}_est.wav'}\n")
    est.write_text("".join(lines))

    def argv(out: Path) -> List[str]:
        return ["--ref_scp", str(test / "spk1.scp"), "--interf_scp", str(test / "spk2.scp"),
                "--mix_scp", str(test / "wav.scp"), "--est_scp", str(est), "--output_dir", str(out),
                "--backend", "fast", "--nj", "1", "--name", "killed"]

    for attempt in range(2):  # two random moments
        check_kill_and_rerun(main, argv, tmp_path / f"attempt{attempt}",
                             lambda _, duration, rnd: after_seconds(duration, rnd))
