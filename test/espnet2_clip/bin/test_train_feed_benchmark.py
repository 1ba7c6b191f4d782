import datetime
import json
import os
import stat
import time

import pytest

from espnet2_clip.bin import train_feed_benchmark as tfb

LOG = """\
[vm] 2026-12-02 11:57:00,691 (trainer:811) INFO: 1epoch:train:1-1batch: iter_time=0.011forward_time=0.163, \
loss=0.524, backward_time=0.133, clip=0.000e+00, optim0_lr0=1.000e-03, train_time=0.316
[vm] 2026-12-02 11:57:00,829 (trainer:811) INFO: 1epoch:train:2-2batch: iter_time=2.500e-04, forward_time=0.060\
loss=0.480, backward_time=0.062, train_time=0.138
[vm] 2026-12-02 11:57:01,000 (trainer:400) INFO: 1epoch results: [train] iter_time=0.011, train_time=0.2
[vm] 2026-12-02 11:57:01,103 (trainer:811) INFO: 2epoch:train:3-3batch: iter_time=0.050, train_time=0.103
"""
TINY_CLIPSEP = ("train_query: image\nhead: query\nquery: embedding\nquery_conf: {input_dim: 8}\n"
                "clip_samples: 4095\nsample_rate: 16000\nframe_rate: 1.0\nbatch_size: 4\n"
                "frontend_conf: {n_fft: 256, hop_length: 64, num_warped_bins: 64}\n"
                "unet_conf: {num_downs: 5, base_channels: 4, out_channels: 4}\n"
                "optim: adam\nbatch_type: unsorted\nbest_model_criterion: [[valid, loss, min]]\n")


def test_trainer_steps_are_read_from_espnet_log_lines():
    steps = tfb.trainer_steps(LOG)
    assert [s["iter_time"] for s in steps] == [0.011, 2.5e-4, 0.05]  # the epoch summary line is not a step
    assert [s["train_time"] for s in steps] == [0.316, 0.138, 0.103]
    assert steps[1]["end"] == datetime.datetime(2026, 12, 2, 11, 57, 0, 829000)


def test_a_log_of_several_steps_per_line_is_refused():
    with pytest.raises(ValueError, match="--log_interval 1"):
        tfb.trainer_steps("[vm] 2026-12-02 11:57:00,691 (trainer:811) INFO: 1epoch:train:1-10batch: "
                          "iter_time=0.1, train_time=0.3")


def test_summary_leaves_out_the_warm_up_and_gpu_samples_outside_the_timed_steps():
    t0 = datetime.datetime(2026, 12, 2, 12, 0, 0)
    steps = [{"end": t0 + datetime.timedelta(seconds=0.5 * (i + 1)), "iter_time": it, "train_time": 0.5}
             for i, it in enumerate([0.4, 0.1, 0.1, 0.2])]
    samples = [(t0 + datetime.timedelta(seconds=0.1), 0.0),  # during the warm-up step: left out
               (t0 + datetime.timedelta(seconds=0.6), 90.0), (t0 + datetime.timedelta(seconds=1.2), 70.0),
               (t0 + datetime.timedelta(seconds=1.9), 50.0),
               (t0 + datetime.timedelta(seconds=2.5), 0.0)]  # after the last step: left out
    result = tfb.summarise(steps, warmup_steps=1, batch_mixtures=32, gpu_samples=samples)
    assert result["timed_steps"] == 3
    assert result["mixtures_per_s"] == pytest.approx(32 * 3 / 1.5)
    assert result["s_per_step"] == pytest.approx(0.5)
    assert result["data_wait"] == pytest.approx(0.4 / 1.5)
    assert (result["gpu_samples"], result["gpu_busy_median"], result["gpu_busy_mean"]) == (3, 0.7, pytest.approx(0.7))
    assert "gpu_busy_median" not in tfb.summarise(steps, 1, 32)
    with pytest.raises(ValueError, match="none after 4 warm-up"):
        tfb.summarise(steps, warmup_steps=4, batch_mixtures=32)


def test_gpu_utilisation_is_sampled_by_nvidia_smi(tmp_path, monkeypatch):
    """A fake nvidia-smi on PATH: it records its arguments and prints samples as the real one until stopped."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "nvidia-smi"
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/args\n"
                    "echo '2026/12/02 12:00:00.100, 85'\necho '2026/12/02 12:00:00.200, 91'\necho 'garbage'\n"
                    "exec sleep 60\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    with tfb.GpuSampler(tmp_path / "gpu.csv", enabled=True) as sampler:
        for _ in range(100):
            if len(sampler.samples()) == 2:
                break
            time.sleep(0.05)
    assert sampler.process.returncode is not None  # stopped with the context
    assert sampler.samples() == [(datetime.datetime(2026, 12, 2, 12, 0, 0, 100000), 85.0),
                                 (datetime.datetime(2026, 12, 2, 12, 0, 0, 200000), 91.0)]
    args = (tmp_path / "args").read_text().split()
    assert "--id=3" in args and "--query-gpu=timestamp,utilization.gpu" in args
    with tfb.GpuSampler(tmp_path / "off.csv", enabled=False) as off:
        pass
    assert off.process is None and off.samples() == []


def test_lists_name_the_file_that_lacks_a_key(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "wav.scp").write_text("a /x/a.wav\nb /x/b.wav\nc /x/c.wav\n")
    (data / "query_image.scp").write_text("a /x/a.npy\nc /x/c.npy\n")
    with pytest.raises(ValueError, match=r"query_image.scp: no entry for 'b'"):
        tfb.write_lists(data, tmp_path / "lists", 3, 1, "query_image.scp")
    with pytest.raises(ValueError, match=r"wav.scp: 3 clips, the run needs 4"):
        tfb.write_lists(data, tmp_path / "lists", 4, 1, None)
    lists = tfb.write_lists(data, tmp_path / "lists", 3, 1, None)
    assert (lists / "train" / "wav.scp").read_text() == "a /x/a.wav\nb /x/b.wav\nc /x/c.wav\n"
    assert (lists / "valid" / "wav.scp").read_text() == "a /x/a.wav\n"


@pytest.mark.parametrize("options, message", [
    (["--steps", "3", "--warmup_steps", "3"], "must be above --warmup_steps"),
    (["--batch_size", "5"], "an even number >= 2"),
    (["--seconds", "0.1"], "shorter than the config's training clips"),
])
def test_bad_options_are_usage_errors(tmp_path, capsys, options, message):
    config = tmp_path / "train.yaml"
    config.write_text(TINY_CLIPSEP)
    with pytest.raises(SystemExit):
        tfb.main(["--config", str(config)] + options)
    assert message in capsys.readouterr().err


def test_a_label_trained_config_is_a_usage_error(tmp_path, capsys):
    config = tmp_path / "train.yaml"
    config.write_text(TINY_CLIPSEP.replace("train_query: image", "train_query: label"))
    with pytest.raises(SystemExit):
        tfb.main(["--config", str(config)])
    assert "train_query 'label'" in capsys.readouterr().err


@pytest.mark.slow
def test_the_trainer_is_timed_per_worker_count(tmp_path, capsys):
    config = tmp_path / "train.yaml"
    config.write_text(TINY_CLIPSEP)
    tfb.main(["--config", str(config), "--num_workers", "0", "1", "--steps", "4", "--warmup_steps", "1",
              "--seconds", "1", "--threads", "1", "--work_dir", str(tmp_path / "work")])
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert (result["batch_mixtures"], result["device"]) == (2, "cpu")
    assert [r["num_workers"] for r in result["rows"]] == [0, 1]
    for row in result["rows"]:
        assert row["timed_steps"] == 3
        assert 0.0 <= row["data_wait"] < 1.0
        assert row["mixtures_per_s"] == pytest.approx(2 / row["s_per_step"])
        assert "gpu_busy_median" not in row
        log = (tmp_path / "work" / f"workers{row['num_workers']}" / "train.log").read_text()
        assert len(tfb.trainer_steps(log)) == 4  # every update logged, read back from the kept log
    assert len((tmp_path / "work" / "lists" / "train" / "wav.scp").read_text().splitlines()) == 16
    assert "| workers | mixtures / s |" in out
