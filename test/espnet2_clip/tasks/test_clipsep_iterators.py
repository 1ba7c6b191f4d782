"""CLIPSepTask's batch lists: no 1-clip batch (training never crashes), fixed validation pairs."""

from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest
import soundfile as sf
import yaml

SR = 16000
CLIP = 4095  # 64 STFT frames with hop 64
CLASSES = ("bell", "drum", "horn")


def write_clips(root: Path, keys: List[str]) -> Path:
    """One-second clips (a tone per class) with per-clip 8-dim query embeddings."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    wav, query = [], []
    for key in keys:
        cls = CLASSES.index(key.split("_")[0])
        t = np.arange(SR) / SR
        sf.write(root / f"{key}.wav", (0.3 * np.sin(2 * np.pi * 300 * (cls + 1) * t)).astype(np.float32), SR)
        np.save(root / f"{key}.npy", (rng.standard_normal(8) + cls).astype(np.float32))
        wav.append(f"{key} {root / f'{key}.wav'}\n")
        query.append(f"{key} {root / f'{key}.npy'}\n")
    (root / "wav.scp").write_text("".join(wav))
    (root / "query.scp").write_text("".join(query))
    return root


# a CLIPSep small enough to train a few steps in a test
TINY_CONFIG = {
    "frontend_conf": {"n_fft": 256, "hop_length": 64, "num_warped_bins": 64},
    "unet_conf": {"num_downs": 5, "base_channels": 4, "out_channels": 4},
    "head": "query", "query": "embedding", "query_conf": {"input_dim": 8},
    "clip_samples": CLIP, "batch_size": 2, "num_workers": 0, "seed": 0,
    "optim": "adam", "optim_conf": {"lr": 0.001},
}


def class_sorted_keys(per_class: int) -> List[str]:
    """Keys sorted by class, like a real key list."""
    return [f"{cls}_{i}" for cls in CLASSES for i in range(per_class)]


def data_args(train: Path, valid: Path) -> List[str]:
    args = []
    for mode, root in (("train", train), ("valid", valid)):
        args += [
            f"--{mode}_data_path_and_name_and_type", f"{root}/wav.scp,speech_ref1,sound",
            f"--{mode}_data_path_and_name_and_type", f"{root}/query.scp,query,npy",
            f"--{mode}_shape_file", f"{root}/wav.scp",
        ]
    return args


def parse(tmp_path: Path, train: Path, valid: Path, *extra: str):
    from espnet2_clip.tasks.clipsep import CLIPSepTask

    return CLIPSepTask.get_parser().parse_args(
        ["--output_dir", str(tmp_path / "exp"), "--batch_size", "2", *extra] + data_args(train, valid)
    )


def epoch_batches(factory, epoch: int) -> List[Tuple[str, ...]]:
    return [tuple(batch) for batch in factory.build_iter(epoch).batch_sampler]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """7 training clips at batch size 2 (ESPnet's batches end in one clip) and 12 validation clips."""
    root = tmp_path_factory.mktemp("iter")
    return write_clips(root / "train", class_sorted_keys(3)[:7]), write_clips(root / "valid", class_sorted_keys(4))


def test_merge_small_batches_keeps_every_key():
    from espnet2_clip.tasks.clipsep import merge_small_batches

    assert merge_small_batches([("a", "b"), ("c", "d", "e"), ("f",)], 2) == [("a", "b"), ("c", "d", "e", "f")]
    assert merge_small_batches([("a",), ("b", "c")], 2) == [("a", "b", "c")]
    assert merge_small_batches([("a",), ("b",), ("c",)], 2) == [("a", "b", "c")]
    assert merge_small_batches([("a", "b")], 2) == [("a", "b")]


def test_training_batches_never_hold_one_clip(tmp_path, data):
    from espnet2.tasks.abs_task import AbsTask
    from espnet2.train.distributed_utils import DistributedOption

    from espnet2_clip.tasks.clipsep import CLIPSepTask

    train, valid = data
    args = parse(tmp_path, train, valid)
    options = CLIPSepTask.build_iter_options(args, DistributedOption(), "train")
    espnet = AbsTask.build_sequence_iter_factory.__func__(CLIPSepTask, args, options, "train")
    ours = CLIPSepTask.build_iter_factory(args, DistributedOption(), "train")
    # The cause: shuffle_within_batch re-chunks the 7 keys by the first batch's size (2 or 3)
    assert all(len(epoch_batches(espnet, epoch)[-1]) == 1 for epoch in (1, 2, 3))
    for epoch in (1, 2, 3):
        batches = epoch_batches(ours, epoch)
        assert min(map(len, batches)) >= 2
        assert sorted(k for b in batches for k in b) == sorted(k for b in epoch_batches(espnet, epoch) for k in b)
    assert epoch_batches(ours, 1) != epoch_batches(ours, 2)  # training mixtures still redrawn


def test_training_with_num_iters_per_epoch_never_holds_one_clip(tmp_path, data):
    from espnet2.train.distributed_utils import DistributedOption

    from espnet2_clip.tasks.clipsep import CLIPSepTask

    args = parse(tmp_path, *data, "--num_iters_per_epoch", "2")
    factory = CLIPSepTask.build_iter_factory(args, DistributedOption(), "train")
    for epoch in range(1, 6):
        assert min(map(len, epoch_batches(factory, epoch))) >= 2


@pytest.mark.parametrize("rank", [0, 1])
def test_distributed_shards_never_hold_one_clip(tmp_path, data, monkeypatch, rank):
    """ESPnet shards each batch over the ranks (batch[rank::world_size]): a batch of 2 or 3
    clips on 2 ranks leaves a rank one clip."""
    import torch
    from espnet2.train.distributed_utils import DistributedOption

    from espnet2_clip.tasks.clipsep import CLIPSepTask

    monkeypatch.setattr(torch.distributed, "get_world_size", lambda *a, **k: 2)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda *a, **k: rank)
    factory = CLIPSepTask.build_iter_factory(parse(tmp_path, *data), DistributedOption(distributed=True), "train")
    assert min(len(batch) for batch in factory.factory.sampler) == 1  # ESPnet's shards
    for epoch in (1, 2):
        assert min(map(len, epoch_batches(factory, epoch))) >= 2


def test_validation_pairs_are_fixed_and_mostly_cross_class(tmp_path, data):
    from espnet2.train.distributed_utils import DistributedOption

    from espnet2_clip.tasks.clipsep import CLIPSepTask

    args = parse(tmp_path, *data, "--valid_batch_size", "4")
    first = CLIPSepTask.build_iter_factory(args, DistributedOption(), "valid")
    second = CLIPSepTask.build_iter_factory(parse(tmp_path, *data, "--valid_batch_size", "4", "--seed", "3"),
                                            DistributedOption(), "valid")
    batches = epoch_batches(first, 1)
    assert batches == epoch_batches(first, 2) == epoch_batches(first, 7) == epoch_batches(second, 1)
    assert sorted(k for b in batches for k in b) == class_sorted_keys(4)
    # the model pairs evaluation clips in batch order: 0-1, 2-3
    pairs = [(b[i], b[i + 1]) for b in batches for i in range(0, len(b) - 1, 2)]
    same_class = sum(a.split("_")[0] == b.split("_")[0] for a, b in pairs)
    assert same_class < len(pairs) / 2  # sorted keys would make every pair same-class


def test_validation_loss_is_identical_across_builds_and_epochs(tmp_path, data):
    import torch
    from espnet2.train.distributed_utils import DistributedOption

    from espnet2_clip.tasks.clipsep import CLIPSepTask

    args = parse(tmp_path, *data, "--unet_conf", "{num_downs: 5, base_channels: 4, out_channels: 4}",
                 "--frontend_conf", "{n_fft: 256, hop_length: 64, num_warped_bins: 64}",
                 "--query_conf", "{input_dim: 8}", "--clip_samples", str(CLIP))
    torch.manual_seed(0)
    model = CLIPSepTask.build_model(args).eval()

    def valid_loss(factory, epoch: int) -> float:
        with torch.no_grad():
            return sum(model(**batch)[0].item() for _, batch in factory.build_iter(epoch))

    factories = [CLIPSepTask.build_iter_factory(args, DistributedOption(), "valid") for _ in range(2)]
    assert valid_loss(factories[0], 1) == valid_loss(factories[0], 2) == valid_loss(factories[1], 1)


def test_dataparallel_and_single_clip_sets_are_clear_errors(tmp_path, data):
    from espnet2.train.distributed_utils import DistributedOption

    from espnet2_clip.tasks.clipsep import CLIPSepTask

    args = parse(tmp_path, *data, "--ngpu", "2")
    with pytest.raises(ValueError, match="multiprocessing_distributed"):
        CLIPSepTask.build_iter_factory(args, DistributedOption(distributed=False), "train")
    single = write_clips(tmp_path / "single", ["bell_0"])
    with pytest.raises(ValueError, match="at least 2 train clips"):
        CLIPSepTask.build_iter_factory(parse(tmp_path, single, data[1]), DistributedOption(), "train")


def test_training_with_a_leftover_clip_finishes_and_resumes(tmp_path, data):
    """7 clips at batch size 2: ESPnet's batch list ends in one clip every epoch; training (and
    resuming, which replays the same batch lists) must finish and write the checkpoints."""
    from espnet2_clip.tasks.clipsep import CLIPSepTask

    (tmp_path / "train.yaml").write_text(yaml.safe_dump(TINY_CONFIG))
    exp = tmp_path / "exp"
    cmd = ["--config", str(tmp_path / "train.yaml"), "--output_dir", str(exp), "--ngpu", "0"] + data_args(*data)
    CLIPSepTask.main(cmd=cmd + ["--max_epoch", "1"])
    assert (exp / "1epoch.pth").exists()
    # attention plots would forward one clip at a time: they get no batch
    CLIPSepTask.main(cmd=cmd + ["--max_epoch", "2", "--resume", "true", "--num_att_plot", "2"])
    assert (exp / "2epoch.pth").exists() and (exp / "valid.loss.best.pth").exists()


def test_resumed_training_reaches_the_state_of_an_uninterrupted_one(tmp_path, data):
    """Killed after epoch 1 and resumed (ESPnet's --resume): epoch 2's weights equal those of a run that
    was never stopped. wav.scp is read as ``text`` (the preprocessor reads only each crop)."""
    import torch

    from espnet2_clip.tasks.clipsep import CLIPSepTask

    (tmp_path / "train.yaml").write_text(yaml.safe_dump(TINY_CONFIG))
    args = [a.replace("wav.scp,speech_ref1,sound", "wav.scp,speech_ref1,text") for a in data_args(*data)]

    def cmd(exp):
        return ["--config", str(tmp_path / "train.yaml"), "--output_dir", str(exp), "--ngpu", "0", *args]

    CLIPSepTask.main(cmd=cmd(tmp_path / "straight") + ["--max_epoch", "2"])
    CLIPSepTask.main(cmd=cmd(tmp_path / "resumed") + ["--max_epoch", "1"])
    CLIPSepTask.main(cmd=cmd(tmp_path / "resumed") + ["--max_epoch", "2", "--resume", "true"])
    a = torch.load(tmp_path / "straight" / "2epoch.pth", map_location="cpu")
    b = torch.load(tmp_path / "resumed" / "2epoch.pth", map_location="cpu")
    assert a.keys() == b.keys()
    changed = [k for k in a if not torch.equal(a[k], b[k])]
    assert changed == []
    first = torch.load(tmp_path / "resumed" / "1epoch.pth", map_location="cpu")
    assert any(not torch.equal(first[k], a[k]) for k in a)  # epoch 2 did train


def test_resume_from_a_truncated_checkpoint_is_a_clear_error(tmp_path, data):
    """A checkpoint.pth cut short (written by something other than our trainer, which saves atomically:
    test_checkpoints.py) is named in one error, not a failure inside torch.load."""
    from espnet2_clip.tasks.clipsep import CLIPSepTask

    (tmp_path / "train.yaml").write_text(yaml.safe_dump(TINY_CONFIG))
    exp = tmp_path / "exp"
    cmd = ["--config", str(tmp_path / "train.yaml"), "--output_dir", str(exp), "--ngpu", "0"] + data_args(*data)
    CLIPSepTask.main(cmd=cmd + ["--max_epoch", "1"])
    checkpoint = exp / "checkpoint.pth"
    assert not [p.name for p in exp.iterdir() if p.name.startswith(".")]  # no temporaries left
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"checkpoint.pth is not a complete checkpoint .* delete it"):
        CLIPSepTask.main(cmd=cmd + ["--max_epoch", "2", "--resume", "true"])
