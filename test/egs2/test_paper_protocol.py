"""The corpus recipes' paper configurations against the official code's numbers as
../shared/reference/clipsep.md records them (read from that file, not restated here)."""

import argparse
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO.parent / "shared" / "reference" / "clipsep.md"
CORPORA = ("music", "vggsound")
TRAIN_QUERY = {  # the query each model trains with (reference/clipsep.md section 4)
    "clipsep": "image", "clipsep_nit": "image", "clipsep_text": "text", "bertsep": "text", "labelsep": "label",
    "pit": "none",
}


def _number(text: str) -> float:
    return float(text.replace(",", ""))


@pytest.fixture(scope="module")
def official():
    """The numbers that decide results, parsed from reference/clipsep.md."""
    if not REFERENCE.is_file():
        pytest.skip(f"{REFERENCE} not present")
    ref = REFERENCE.read_text(encoding="utf-8")

    def find(pattern: str) -> re.Match:
        match = re.search(pattern, ref)
        assert match, f"reference/clipsep.md no longer says {pattern!r}"
        return match

    stft = find(r"librosa\.stft\(n_fft=(\d+), hop_length=(\d+)")
    unet = find(r"UNet\(in_dim=1, out_dim=k=(\d+), num_downs=(\d+), ngf=(\d+)\)")
    nit = find(r"λ = `--reg2_coef` ([\d.]+), γ = `--reg2_epsilon` ([\d.]+)")
    optim = find(r"\*\*lr ([\de.-]+)\*\*, \*\*batch (\d+)\*\*, \*\*([\d,]+) steps\*\*")
    sched = find(r"linear warm-up over ([\d,]+) steps .*?linear decay to \*\*([\d.]+)×\*\* \([^)]*\) at step ([\d,]+)")
    return {
        "clip_samples": int(find(r"`audio_len = (\d+)` samples").group(1)),
        "n_fft": int(stft.group(1)), "hop_length": int(stft.group(2)),
        "num_warped_bins": int(find(r"onto \*\*(\d+) rows\*\*").group(1)),
        "warp_base": float(find(r"an exponential \(base-(\d+)\) warp").group(1)),
        "k": int(unet.group(1)), "num_downs": int(unet.group(2)), "base_channels": int(unet.group(3)),
        "clip_dim": int(find(r"`frame_net = Linear\((\d+)→").group(1)),
        "noise_heads": 2 if "Noise heads:** exactly **2**" in ref else None,
        "reg_weight": float(nit.group(1)), "reg_threshold": float(nit.group(2)),
        "warmup_steps": int(find(r"`--pit_warmup_steps` \(default (\d+)\)").group(1)),
        "lr": float(optim.group(1)), "batch_mixtures": int(optim.group(2)), "steps": int(_number(optim.group(3))),
        "warmup": int(_number(sched.group(1))), "decay_to": float(sched.group(2)),
        "decay_step": int(_number(sched.group(3))),
        "grad_clip": float(find(r"Gradient-norm clip (\d+(?:\.\d+)?)").group(1)),
    }


def _configs(corpus):
    return {p.stem[len("train_"):]: yaml.safe_load(p.read_text())
            for p in (REPO / "egs2" / corpus / "clipsep1" / "conf").glob("train_*.yaml")}


@pytest.mark.parametrize("corpus", CORPORA)
def test_paper_configs_follow_the_official_numbers(official, corpus):
    configs = _configs(corpus)
    expected_models = set(TRAIN_QUERY) - ({"labelsep"} if corpus == "music" else set())
    assert set(configs) == expected_models
    for tag, c in configs.items():
        assert c["clip_samples"] == official["clip_samples"], tag
        assert c["frontend_conf"] == {"n_fft": official["n_fft"], "hop_length": official["hop_length"],
                                      "num_warped_bins": official["num_warped_bins"]}, tag
        assert c["unet_conf"] == {"num_downs": official["num_downs"], "base_channels": official["base_channels"],
                                  "out_channels": official["k"]}, tag
        assert c["train_query"] == TRAIN_QUERY[tag], tag
        assert c["batch_size"] == 2 * official["batch_mixtures"], tag  # ESPnet counts clips: 2 per mixture
        assert c["optim"] == "adam" and c["optim_conf"] == {"lr": official["lr"]}, tag
        assert c["grad_clip"] == official["grad_clip"], tag
        assert c["num_iters_per_epoch"] * c["max_epoch"] == official["steps"], tag
        lr, steps = official["lr"], official["steps"]
        assert c["scheduler"] == "piecewiselinearwarmuplr", tag
        assert c["scheduler_conf"] == {
            "warmup_steps_list": [0, official["warmup"], official["decay_step"], steps],
            "warmup_lr_list": [0.0, lr, pytest.approx(lr * official["decay_to"]), pytest.approx(lr * official["decay_to"])],
        }, tag
        assert c.get("unet_init") is None, tag  # the official small initialisation
        if c.get("query") == "embedding" and c.get("query_encoder", "clip") == "clip":
            assert c["query_conf"] == {"input_dim": official["clip_dim"]}, tag
    nit = configs["clipsep_nit"]
    assert nit["head"] == "nit"
    assert nit["head_conf"] == {"reg_weight": official["reg_weight"], "reg_threshold": official["reg_threshold"]}
    assert nit["head_conf"].get("warmup_steps", 0) == official["warmup_steps"] == 0
    assert configs["pit"]["head"] == "pit" and configs["clipsep"]["head"] == "query"


def test_paper_models_as_built(official):
    """Built from the VGGSound configs: the warp base, k, the NIT head's noise heads and parameter count."""
    from espnet2_clip.sep.frontend import WARP_BASE
    from espnet2_clip.tasks.clipsep import CLIPSepTask

    assert WARP_BASE == official["warp_base"]
    conf = REPO / "egs2" / "vggsound" / "clipsep1" / "conf"
    models = {}
    for tag in ("clipsep", "clipsep_nit"):
        args = CLIPSepTask.get_parser().parse_args(["--config", str(conf / f"train_{tag}.yaml")])
        models[tag] = CLIPSepTask.build_model(argparse.Namespace(**vars(args)))
    nit = models["clipsep_nit"]
    assert len(nit.head.noise_proj) == official["noise_heads"]
    assert nit.head.warmup_steps == official["warmup_steps"]
    assert (nit.head.reg_weight, nit.head.reg_threshold) == (official["reg_weight"], official["reg_threshold"])
    assert nit.unet.out_channels == official["k"] and nit.frontend.num_warped_bins == official["num_warped_bins"]
    count = {tag: sum(p.numel() for p in m.parameters()) for tag, m in models.items()}
    assert count["clipsep"] == 30_290_659 and count["clipsep_nit"] - count["clipsep"] == 2_112
