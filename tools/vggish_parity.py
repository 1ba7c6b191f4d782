#!/usr/bin/env python3
"""Check our VGGish (espnet2_clip.metrics.vggish) against torchvggish itself.

torchvggish 0.2 (PyPI; the code ``frechet-audio-distance`` loads through torch.hub) is installed
without its dependencies into a scratch directory (never into the venv, never imported by our
package). ``resampy`` (its import-time dependency, for other sample rates) is replaced by a stub:
every wave here is already 16 kHz. Then:

1. their ``VGG`` with random weights; its state dict saved to a file and loaded with our
   :func:`load_vggish` (the published checkpoint has the same layout);
2. their ``waveform_to_examples`` vs our frontend on random noise and sines;
3. their network (without PCA; with and without the final ReLU, as FAD's ``use_activation``)
   vs ours on their examples;
4. prints the largest differences (float rounding: < 1e-4).

    python tools/vggish_parity.py --scratch_dir /tmp/vggish_scratch
"""

import argparse
import sys
import tempfile
import types
from pathlib import Path

from scratch_install import install_into

PACKAGES = ("torchvggish==0.2",)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scratch_dir", default=str(Path(tempfile.gettempdir()) / "vggish_scratch"))
    args = p.parse_args()
    scratch = Path(args.scratch_dir)
    install_into(scratch, PACKAGES, "torchvggish")
    try:
        import resampy  # noqa: F401
    except ImportError:
        sys.modules["resampy"] = types.ModuleType("resampy")  # only 16 kHz input below
    import numpy as np
    import torch
    from torchvggish import torchvggish as theirs_net
    from torchvggish import vggish_input

    from espnet2_clip.metrics.vggish import load_vggish, waveform_to_examples

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    theirs = theirs_net.VGG(theirs_net.make_layers(), postprocess=False).eval()
    # FAD's use_activation=False: frechet-audio-distance drops the last module of ``embeddings``
    theirs_fad = theirs_net.VGG(theirs_net.make_layers(), postprocess=False).eval()
    theirs_fad.load_state_dict(theirs.state_dict())
    theirs_fad.embeddings = torch.nn.Sequential(*list(theirs_fad.embeddings.children())[:-1])
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(theirs.state_dict(), Path(tmp) / "vggish.pth")
        ours = load_vggish(Path(tmp) / "vggish.pth")
    t = np.arange(65535) / 16000
    waves = {"noise 4.1 s": 0.3 * rng.standard_normal(65535),
             "sine 1 kHz 4.1 s": 0.5 * np.sin(2 * np.pi * 1000 * t),
             "two sines 3.0 s": (0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 3100 * t))[:48000],
             "noise 1.5 s": 0.05 * rng.standard_normal(24000)}
    report = {}
    for name, wave in waves.items():
        want = vggish_input.waveform_to_examples(wave, 16000, return_tensor=False)
        got = waveform_to_examples(wave, 16000)
        if want.shape != got.shape:
            print(f"{name}: examples {want.shape} (torchvggish) vs {got.shape} (ours)")
            return 1
        report[f"frontend, {name} ({len(got)} examples)"] = float(np.abs(want - got).max())
        x = torch.from_numpy(want).float()[:, None]
        with torch.no_grad():
            relu_theirs = theirs(x)
            ours.final_activation = True
            report[f"embedding with final ReLU, {name}"] = (relu_theirs - ours(x)).abs().max().item()
            ours.final_activation = False
            pre = theirs_fad(x)
            report[f"embedding, FAD (no ReLU), {name}"] = (pre - ours(x)).abs().max().item()
            scale = pre.abs().max().item()
    for name, diff in report.items():
        print(f"{name:55s} max |difference| {diff:.2e}")
    print(f"(embedding magnitude: max |value| {scale:.2e})")
    ok = all(v < 1e-4 for v in report.values())
    print("parity:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
