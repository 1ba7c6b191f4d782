#!/usr/bin/env python3
"""Time one CLIPSonic-PD clip at the paper configuration with random weights (no download).

Builds, in a scratch directory: the 78 M-parameter U-Net of
``egs2/TEMPLATE/clipsonic1/conf/train_clipsonic_paper.yaml`` conditioned on a randomly initialised
OpenAI ViT-L/14 (open_clip ``ViT-L-14``, no weights), its HiFi-GAN vocoder
(``train_vocoder_hifigan.yaml``), and a LAION-size DALL-E 2 prior (the published configuration:
768-d, 24 layers, 32 heads) saved in the published checkpoint format; then runs
``espnet2_clip.bin.clipsonic_benchmark`` on them (CLIP text, text -> condition through the prior,
mel sampling, vocoder, whole call). Random weights time the same arithmetic as trained ones.

    python tools/clipsonic_pd_benchmark.py --scratch_dir /tmp/pd_bench [--num_steps 25] [--threads 2]
    python tools/clipsonic_pd_benchmark.py --scale tiny   # a seconds-long check that the script works
"""

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "egs2" / "TEMPLATE" / "clipsonic1" / "conf"
#: The published prior's network and diffusion settings (reference/clipsonic.md §2.2; prior.md).
LAION_PRIOR = dict(prior=dict(
    net=dict(dim=768, depth=24, dim_head=64, heads=32, normformer=True, attn_dropout=0.05, ff_dropout=0.05,
             num_timesteps=1000, max_text_len=77, ff_mult=4, num_time_embeds=1, num_image_embeds=1,
             num_text_embeds=1, norm_out=True, final_proj=True, rotary_emb=True),
    image_embed_dim=768, image_size=224, timesteps=1000, sample_timesteps=64, cond_drop_prob=0.1, loss_type="l2",
    predict_x_start=True, beta_schedule="cosine", condition_on_text_encodings=True,
    clip=dict(make="openai", model="ViT-L/14")))


def _tiny(conf_prior: dict, train: dict, vocoder: dict):
    """Shrink everything to a size that runs in seconds (same code paths)."""
    net = conf_prior["prior"]["net"]
    net.update(dim=32, depth=1, dim_head=8, heads=2)
    conf_prior["prior"]["image_embed_dim"] = 32
    conf_prior["prior"]["sample_timesteps"] = 2
    train["unet_conf"].update(cond_dim=32, channels=[8, 16], attention_levels=[1], emb_dim=16, groups=4)
    train["query_encoder_conf"] = dict(model_name="espnet2clip-tiny", pretrained=None)
    gen = vocoder.setdefault("generator_params", {})
    gen.update(channels=16)
    return conf_prior, train, vocoder


def write_models(out: Path, scale: str) -> dict:
    """Random-weight model files for TextToAudio: train config + model, vocoder, LAION-format prior."""
    import copy

    import torch

    from espnet2_clip.t2a.laion_prior import LaionPrior, save_published_format
    from espnet2_clip.tasks.clipsonic import CLIPSonicTask
    from espnet2_clip.tasks.vocoder import HiFiGANVocoderTask

    train = yaml.safe_load((CONF / "train_clipsonic_paper.yaml").read_text())
    train["query_encoder_conf"] = dict(train.get("query_encoder_conf") or {}, pretrained=None)
    vocoder = yaml.safe_load((CONF / "train_vocoder_hifigan.yaml").read_text())
    prior_conf = copy.deepcopy(LAION_PRIOR)
    if scale == "tiny":
        prior_conf, train, vocoder = _tiny(prior_conf, train, vocoder)
    torch.manual_seed(0)
    files = {}
    for name, task, conf in (("vocoder", HiFiGANVocoderTask, vocoder), ("clipsonic", CLIPSonicTask, train)):
        d = out / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "conf.yaml").write_text(yaml.safe_dump(conf))
        extra = []
        if name == "clipsonic":
            extra = ["--vocoder_config", str(files["vocoder_config"]), "--vocoder_file", str(files["vocoder_file"])]
        args = task.get_parser().parse_args(["--config", str(d / "conf.yaml"), *extra])
        model = task.build_model(args)
        (d / "config.yaml").write_text(yaml.safe_dump(vars(args)))
        torch.save(model.state_dict(), d / "model.pth")
        files[f"{name}_config"], files[f"{name}_file"] = d / "config.yaml", d / "model.pth"
        used = model.generator if name == "vocoder" else model  # (the vocoder's discriminators only train)
        print(f"{name}: {sum(p.numel() for p in used.parameters()) / 1e6:.1f} M parameters", file=sys.stderr)
    prior = LaionPrior.from_config(prior_conf)
    print(f"prior: {sum(p.numel() for p in prior.parameters()) / 1e6:.1f} M parameters", file=sys.stderr)
    save_published_format(prior, prior_conf, out / "laion_prior")
    files["prior"] = out / "laion_prior"
    return files


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scratch_dir", default=None, help="where the random models are written (default: a temp dir)")
    p.add_argument("--scale", choices=("paper", "tiny"), default="paper")
    p.add_argument("--num_steps", type=int, default=25, help="mel sampler steps")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--output", default=None, help="also write the JSON here")
    args = p.parse_args()
    from espnet2_clip.bin import clipsonic_benchmark

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.scratch_dir or tmp)
        files = write_models(out, args.scale)
        cmd = ["--train_config", str(files["clipsonic_config"]), "--model_file", str(files["clipsonic_file"]),
               "--prior_config", str(files["prior"]), "--query", "a dog barking", "--num_steps", str(args.num_steps),
               "--threads", str(args.threads), "--repeats", str(args.repeats)]
        if args.scale == "tiny":
            cmd += ["--num_samples", "4095"]
        return clipsonic_benchmark.main(cmd + (["--output", args.output] if args.output else []))


if __name__ == "__main__":
    sys.exit(main())
