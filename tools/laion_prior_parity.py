#!/usr/bin/env python3
"""Check our LAION prior (espnet2_clip.t2a.laion_prior) against DALLE2-pytorch itself.

DALLE2-pytorch 1.15.6 cannot be installed beside our pinned stack (it requires open-clip-torch<3),
so this script installs it and the 16 packages it needs to import, without their dependencies,
into a scratch directory (never into the venv, never imported by our package), then:

1. builds a small random ``DiffusionPrior`` with their classes, saves it the way their trainer
   does, and loads the file with our :func:`load_laion_prior`;
2. compares the network outputs (conditioned and null-conditioned, with padded token encodings)
   and whole DDIM and DDPM sampling runs from the same global seed;
3. prints the largest differences (they must be float rounding, < 1e-4).

    python tools/laion_prior_parity.py --scratch_dir /tmp/dalle2_scratch
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

from scratch_install import install_into

#: dalle2-pytorch and what ``import dalle2_pytorch`` needs beyond our stack (found by importing).
PACKAGES = ("dalle2-pytorch==1.15.6", "rotary-embedding-torch", "x-clip", "coca-pytorch", "resize-right",
            "embedding-reader", "ema-pytorch", "vector-quantize-pytorch", "kornia", "kornia-rs", "einx",
            "frozendict", "loguru", "torch-einops-utils", "pytorch-warmup", "accelerate")

NET = dict(dim=64, depth=2, dim_head=16, heads=4, num_timesteps=1000, max_text_len=12, num_time_embeds=1,
           num_image_embeds=1, num_text_embeds=1, ff_mult=4, normformer=True, attn_dropout=0.05, ff_dropout=0.05,
           norm_out=True, final_proj=True, rotary_emb=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scratch_dir", default=str(Path(tempfile.gettempdir()) / "dalle2_scratch"))
    args = p.parse_args()
    scratch = Path(args.scratch_dir)
    install_into(scratch, PACKAGES, "dalle2_pytorch")
    import torch
    from dalle2_pytorch import DiffusionPrior, DiffusionPriorNetwork

    from espnet2_clip.t2a.laion_prior import load_laion_prior

    torch.manual_seed(0)
    conf = dict(prior=dict(net=NET, image_embed_dim=NET["dim"], image_size=224, timesteps=1000, sample_timesteps=16,
                           cond_drop_prob=0.1, loss_type="l2", predict_x_start=True, beta_schedule="cosine",
                           condition_on_text_encodings=True))
    theirs = DiffusionPrior(net=DiffusionPriorNetwork(**NET), image_embed_dim=NET["dim"], timesteps=1000,
                            cond_drop_prob=0.1, condition_on_text_encodings=True).eval()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "prior_config.json").write_text(json.dumps(conf))
        state = theirs.state_dict()
        torch.save(dict(model=state, ema_model=state, version="1.15.6", step=torch.tensor(1)), Path(tmp) / "best.pth")
        ours = load_laion_prior(tmp)
    b, d, n = 3, NET["dim"], 7
    text = torch.nn.functional.normalize(torch.randn(b, d), dim=-1)
    enc = torch.randn(b, n, d)
    enc[0, 4:] = 0  # padding tokens of the first text
    x, t = torch.randn(b, d), torch.tensor([0, 500, 999])
    report = {}
    with torch.no_grad():
        report["network"] = (theirs.net(x, t, text_embed=text, text_encodings=enc)
                             - ours.net(x, t, text, enc)).abs().max().item()
        null = theirs.net(x, t, text_embed=text, text_encodings=enc, text_cond_drop_prob=1.0, image_cond_drop_prob=1.0)
        report["network, null condition"] = (null - ours.net(x, t, text, enc, keep_cond=False)).abs().max().item()
        for steps, scale in ((16, 1.0), (16, 2.0), (1000, 1.0)):
            k = ours.num_candidates
            torch.manual_seed(1)
            cand = theirs.p_sample_loop((b * k, d), text_cond=dict(text_embed=text.repeat_interleave(k, 0),
                                                                   text_encodings=enc.repeat_interleave(k, 0)),
                                        timesteps=steps, cond_scale=scale)
            cand = torch.nn.functional.normalize(cand, dim=-1).view(b, k, d)
            best = (cand * text[:, None]).sum(-1).argmax(1)
            want = cand[torch.arange(b), best]
            torch.manual_seed(1)
            got = ours.sample(text, num_steps=steps, guidance_scale=scale, text_encodings=enc)
            name = f"sample, {'DDIM' if steps < 1000 else 'DDPM'} {steps} steps, cond_scale {scale:g}"
            report[name] = (want - got).abs().max().item()
    for name, diff in report.items():
        print(f"{name:45s} max |difference| {diff:.2e}")
    ok = all(v < 1e-4 for v in report.values())
    print("parity:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
