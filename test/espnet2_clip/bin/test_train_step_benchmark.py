import json

import pytest

from espnet2_clip.bin import train_step_benchmark

CLIPSONIC = ("mel_conf: {n_fft: 256, hop_length: 64, n_mels: 16}\nclip_samples: 4095\nbatch_size: 4\n"
             "unet_conf: {cond_dim: 8, channels: [4, 8], attention_levels: [1], num_heads: 2, emb_dim: 8, groups: 2}\n")
CLIPSEP = ("head: query\nquery: embedding\nquery_conf: {input_dim: 8}\nclip_samples: 4095\nbatch_size: 4\n"
           "frontend_conf: {n_fft: 256, hop_length: 64, num_warped_bins: 64}\n"
           "unet_conf: {num_downs: 5, base_channels: 4, out_channels: 4}\n")


@pytest.mark.parametrize("task, config", [("clipsonic", CLIPSONIC), ("clipsep", CLIPSEP)])
def test_setups_are_timed_side_by_side(tmp_path, capsys, task, config):
    path = tmp_path / "train.yaml"
    path.write_text(config)
    setups = [f"--config {path} --model_conf train_precision=fp32", f"--config {path} --model_conf train_precision=bf16"]
    train_step_benchmark.main(["--task", task, "--steps", "2", "--threads", "1"]
                              + [arg for s in setups for arg in ("--train_args", s)])
    out = capsys.readouterr().out
    results = json.loads(out.strip().splitlines()[-1])
    assert [r["setup"] for r in results] == setups
    assert all(r["s_per_step"] >= r["s_per_step_min"] > 0 and r["batch_clips"] == 4 and r["clip_samples"] == 4095
               for r in results)
    assert results[0]["params"] == results[1]["params"] > 1000  # precision does not change the model
    assert results[0]["speed_vs_first"] == 1.0
    assert results[1]["speed_vs_first"] == pytest.approx(results[0]["s_per_step"] / results[1]["s_per_step"])
    assert "| s / step (median, min) |" in out


def test_bad_steps_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        train_step_benchmark.main(["--task", "clipsonic", "--train_args", "--config x.yaml", "--steps", "0"])
    assert "--steps must be >= 1" in capsys.readouterr().err
