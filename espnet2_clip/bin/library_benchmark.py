#!/usr/bin/env python3
"""Our code beside the library that could replace it: quality and speed side by side; prints, asserts nothing.

    python -m espnet2_clip.bin.library_benchmark [--sections scp griffin_lim frechet timestep classifier]
        [--threads 2] [--fad_path DIR]

One section per candidate switch (issue 14, item 6), each printing ours ("before") and the
library's ("after") and the decision taken in the code:

* ``scp``: :mod:`espnet2_clip.utils.fileio` vs ``espnet2.fileio`` (``read_2columns_text``,
  ``DatadirWriter``): speed on a 200k-line list and each guarantee (blank lines, empty values,
  duplicates, missing file, atomic and sorted writes).
* ``griffin_lim``: :class:`espnet2_clip.t2a.mel.GriffinLim` vs ESPnet's ``Spectrogram2Waveform``
  (``espnet2.utils.griffin_lim``): spectral convergence on the mel of known bridge-world sounds,
  seconds per clip, and whether two calls give the same wave.
* ``frechet``: :func:`espnet2_clip.metrics.generation.frechet_distance` vs the FAD package's
  ``FrechetAudioDistance.calculate_frechet_distance`` on random Gaussians. The package is an
  optional extra that does not install beside our pinned numpy; ``--fad_path DIR`` takes it from
  ``pip install --no-deps --target DIR frechet-audio-distance`` and stands in empty modules for
  the model back-ends its module imports (laion_clap, encodec, resampy, torchlibrosa) -- the
  Fréchet function itself uses numpy and scipy only.
* ``timestep``: the U-Net's sinusoidal timestep embedding before (our formula) and after
  (diffusers' ``get_timestep_embedding``).
* ``classifier``: the evaluation classifier (:mod:`espnet2_clip.metrics.audio_classifier`) vs the
  stack of ESPnet's classification task (``espnet2.tasks.cls``: default frontend, utterance MVN,
  transformer encoder, linear decoder), trained the same way on bridge-world sounds in memory.
"""

import argparse
import contextlib
import importlib
import importlib.util
import math
import statistics
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch

SECTIONS = ("scp", "griffin_lim", "frechet", "timestep", "classifier")


def _median_seconds(fn: Callable, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _row(what: str, ours: str, library: str) -> None:
    print(f"  {what:<44} {ours:>24} {library:>24}")


def _header(title: str, library: str) -> None:
    print(f"\n== {title}")
    _row("", "ours (before)", library)


def _outcome(fn: Callable) -> str:
    """What calling ``fn`` gives: its value (shortened) or the exception it raises."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = fn()
        note = f" +{len(caught)} warning(s)" if caught else ""
        return (repr(value)[:22] + note)[:24]
    except Exception as e:  # noqa: BLE001 - the outcome is what we print
        return f"{type(e).__name__}"[:24]


# --------------------------------------------------------------------------- scp
def bench_scp(n_lines: int = 200_000) -> None:
    from espnet2.fileio.datadir_writer import DatadirWriter
    from espnet2.fileio.read_text import read_2columns_text

    from espnet2_clip.utils.fileio import atomic_path, read_scp, write_scp

    _header(f"scp lists ({n_lines} lines)", "espnet2.fileio")
    entries = {f"utt{i:07d}": f"/data/some dir/utt{i:07d}.wav" for i in range(n_lines)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ours_w = _median_seconds(lambda: write_scp(tmp / "ours.scp", entries))

        def espnet_write():
            with DatadirWriter(tmp / "espnet") as w:
                sub = w["wav.scp"]
                for k, v in entries.items():
                    sub[k] = v

        lib_w = _median_seconds(espnet_write)
        _row("write (s)", f"{ours_w:.3f}", f"{lib_w:.3f}")
        ours_r = _median_seconds(lambda: read_scp(tmp / "ours.scp"))
        lib_r = _median_seconds(lambda: read_2columns_text(tmp / "ours.scp"))
        _row("read (s)", f"{ours_r:.3f}", f"{lib_r:.3f}")
        assert read_scp(tmp / "ours.scp") == read_2columns_text(tmp / "ours.scp")

        cases = {
            "blank line between entries": "a x\n\nb y\n",
            "whitespace-only line": "a x\n   \nb y\n",
            "id without a value": "a x\nb\n",
            "duplicated id": "a x\na y\n",
        }
        for what, text in cases.items():
            p = tmp / "case"
            p.write_text(text)
            _row(f"read: {what}", _outcome(lambda: read_scp(p)), _outcome(lambda: read_2columns_text(p)))
        _row("read: missing file", _outcome(lambda: read_scp(tmp / "nope")),
             _outcome(lambda: read_2columns_text(tmp / "nope")))

        def espnet_unsorted():
            with DatadirWriter(tmp / "e2") as w:
                w["t"]["b"], w["t"]["a"] = "1", "2"
            return (tmp / "e2" / "t").read_text().split()[::2]

        def ours_unsorted():
            write_scp(tmp / "o2", {"b": "1", "a": "2"})
            return (tmp / "o2").read_text().split()[::2]

        _row("write order of ids b, a", _outcome(ours_unsorted), _outcome(espnet_unsorted))

        def espnet_dup():
            with DatadirWriter(tmp / "e3") as w:
                w["t"]["a"], w["t"]["a"] = "1", "2"
            return len((tmp / "e3" / "t").read_text().splitlines())

        _row("write a duplicated id (lines written)", "n/a (a dict)", _outcome(espnet_dup))

        def killed(writer: str) -> str:
            target = tmp / f"k_{writer}" / "wav.scp"
            target.parent.mkdir(exist_ok=True)
            target.write_text("a old\n")
            with contextlib.suppress(KeyboardInterrupt):
                if writer == "ours":
                    with atomic_path(target) as t:
                        t.write_text("a new\nb ha")
                        raise KeyboardInterrupt
                else:
                    with DatadirWriter(target.parent) as w:
                        w["wav.scp"]["a"] = "new"
                        raise KeyboardInterrupt
            return repr(target.read_text())

        _row("writer killed mid-file: the file holds", killed("ours"), killed("espnet"))
    print("  decision: keep ours (blank lines, empty values, errors naming file:line, atomic sorted writes)")


# --------------------------------------------------------------------------- Griffin-Lim
def _spectral_convergence(mel_fe, ref: np.ndarray, est: np.ndarray) -> float:
    """||M(est) - M(ref)||_F / ||M(ref)||_F on the linear mel magnitude."""
    with torch.no_grad():
        m_ref, m_est = (10.0 ** mel_fe.log_mel(torch.from_numpy(x).float()[None])[0] for x in (ref, est))
    return float(torch.linalg.norm(m_est - m_ref) / torch.linalg.norm(m_ref))


def bench_griffin_lim(n_iter: int = 32, kinds: Sequence[str] = ("flute", "drum", "chirp", "bell")) -> None:
    from espnet2.utils.griffin_lim import Spectrogram2Waveform

    from espnet2_clip.data import bridge_sound
    from espnet2_clip.t2a.mel import GriffinLim, MelFrontend, fit_length

    _header(f"Griffin-Lim ({n_iter} iterations, 80 mels, 65535 samples)", "espnet2.utils.griffin_lim")
    fe = MelFrontend()
    conf = fe.mel_conf()
    ours = GriffinLim(fe, n_iter=n_iter)
    espnet = Spectrogram2Waveform(n_fft=conf["n_fft"], n_shift=conf["hop_length"], fs=conf["fs"],
                                  n_mels=conf["n_mels"], win_length=conf["win_length"], window="hann",
                                  fmin=conf["fmin"], fmax=conf["fmax"], griffin_lim_iters=n_iter)
    n = 65535
    sc_o, sc_e, t_o, t_e, same_o, same_e = [], [], [], [], True, True
    for k, kind in enumerate(kinds):
        x = bridge_sound.synth(kind, np.random.default_rng(k), n, conf["fs"]).astype(np.float32)
        x = 0.1 * x / (np.sqrt(np.mean(x ** 2)) + 1e-12)
        with torch.no_grad():
            mel = fe(torch.from_numpy(x)[None])[0]
        log_mel = fe.denormalize(mel).T  # (T, n_mels) log10 mel, what ESPnet's converter takes
        y_o = ours(mel, length=n).numpy()
        y_e = fit_length(espnet(log_mel).numpy(), n)
        same_o &= bool(np.array_equal(y_o, ours(mel, length=n).numpy()))
        same_e &= bool(np.array_equal(y_e, fit_length(espnet(log_mel).numpy(), n)))
        sc_o.append(_spectral_convergence(fe, x, y_o))
        sc_e.append(_spectral_convergence(fe, x, y_e))
        t_o.append(_median_seconds(lambda: ours(mel, length=n)))
        t_e.append(_median_seconds(lambda: espnet(log_mel)))
        _row(f"spectral convergence, {kind}", f"{sc_o[-1]:.4f}", f"{sc_e[-1]:.4f}")
    _row("spectral convergence, mean", f"{np.mean(sc_o):.4f}", f"{np.mean(sc_e):.4f}")
    _row("seconds per clip (median)", f"{np.mean(t_o):.3f}", f"{np.mean(t_e):.3f}")
    _row("same wave from two calls", str(same_o), str(same_e))
    _row("output length (samples)", str(n), f"{(fe.num_frames(n) - 1) * conf['hop_length']} (no length)")
    print("  decision: keep ours: it already calls ESPnet's logmel2linear and the same librosa Griffin-Lim;\n"
          "  ESPnet's wrapper cannot seed the initial phase (a new wave every call) nor give the clip length")


# --------------------------------------------------------------------------- Fréchet distance
class _AnyModule(types.ModuleType):
    """An empty stand-in module: any attribute is another stand-in."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _AnyModule(f"{self.__name__}.{name}")


def _import_fad_library(path: Optional[str]):
    """``FrechetAudioDistance`` and how it was imported, or None and why not."""
    try:
        from frechet_audio_distance import FrechetAudioDistance

        return FrechetAudioDistance, "installed"
    except ImportError as e:
        if not path:
            return None, f"not installed ({e}); give --fad_path"
    sys.path.insert(0, str(path))
    stubbed = []
    for name in ("resampy", "laion_clap", "encodec", "torchlibrosa", "torchlibrosa.stft",
                 "torchlibrosa.augmentation"):
        try:
            importlib.import_module(name)
        except ImportError:
            sys.modules[name] = _AnyModule(name)
            stubbed.append(name)
    from frechet_audio_distance import FrechetAudioDistance

    return FrechetAudioDistance, f"from {path}, back-ends stubbed: {', '.join(stubbed) or 'none'}"


def bench_frechet(fad_path: Optional[str]) -> None:
    from espnet2_clip.metrics.generation import frechet_distance

    fad_cls, how = _import_fad_library(fad_path)
    _header(f"Fréchet distance (FAD package: {how})", "frechet_audio_distance")
    if fad_cls is None:
        print("  (library column skipped)")

    def library(a, b):
        mu_a, s_a = fad_cls.calculate_embd_statistics(None, a)
        mu_b, s_b = fad_cls.calculate_embd_statistics(None, b)
        with contextlib.redirect_stdout(None):  # it prints when it regularises
            return float(fad_cls.calculate_frechet_distance(None, mu_a, s_a, mu_b, s_b))

    rng = np.random.default_rng(0)
    for n, d, shift in ((2000, 64, 0.0), (2000, 64, 0.5), (200, 128, 1.0), (24, 64, 0.5), (24, 8, 0.0)):
        a = rng.normal(size=(n, d)) @ (np.eye(d) + 0.3 * rng.normal(size=(d, d)) / math.sqrt(d))
        b = rng.normal(size=(n, d)) @ (np.eye(d) + 0.3 * rng.normal(size=(d, d)) / math.sqrt(d)) + shift
        ours = frechet_distance(a, b)
        t_o = _median_seconds(lambda: frechet_distance(a, b), 5)
        if fad_cls is None:
            _row(f"N={n} D={d} shift={shift}: FD / ms", f"{ours:.6f} / {1e3 * t_o:.1f}", "-")
            continue
        lib = library(a, b)
        t_l = _median_seconds(lambda: library(a, b), 5)
        _row(f"N={n} D={d} shift={shift}: FD / ms", f"{ours:.6f} / {1e3 * t_o:.1f}", f"{lib:.6f} / {1e3 * t_l:.1f}")
        _row("    relative difference", "", f"{abs(ours - lib) / max(abs(lib), 1e-12):.1e}")
    print("  decision: keep ours: same formula and numbers; the package's function is a method of a class\n"
          "  whose module imports laion_clap, encodec, resampy and torchlibrosa, and the package pins\n"
          "  numpy<2 on Python < 3.13 (our stack: numpy 2)")


# --------------------------------------------------------------------------- timestep embedding
def _old_timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Our formula before the switch (kept here as the reference)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.nn.functional.pad(torch.cat([torch.cos(args), torch.sin(args)], dim=-1), (0, dim % 2))


def bench_timestep() -> None:
    from espnet2_clip.t2a.unet import timestep_embedding

    _header("U-Net timestep embedding (1000 steps x 128 dims)", "diffusers")
    t = torch.arange(1000)
    diff = max(float((_old_timestep_embedding(t, d) - timestep_embedding(t, d)).abs().max()) for d in (128, 129))
    _row("max |difference| (dims 128 and 129)", "", f"{diff:.1e}")
    b = torch.randint(0, 1000, (16,))
    t_o, t_l = [], []
    for _ in range(5):  # interleaved, so that both see the same load
        t_o.append(_median_seconds(lambda: [_old_timestep_embedding(b, 128) for _ in range(200)], 1) / 200)
        t_l.append(_median_seconds(lambda: [timestep_embedding(b, 128) for _ in range(200)], 1) / 200)
    _row("microseconds per batch of 16", f"{1e6 * statistics.median(t_o):.1f}", f"{1e6 * statistics.median(t_l):.1f}")
    from espnet2_clip.t2a.unet import DiffusionUNet

    # the mini recipe's U-Net (egs2/mini_bridge/clipsonic1/conf/train_clipsonic_iq.yaml) on a batch of 16 crops
    unet = DiffusionUNet(cond_dim=128, channels=(16, 32, 64, 128), attention_levels=(3,), num_heads=2).eval()
    x, cond = torch.randn(16, 1, 64, 64), torch.randn(16, 128)
    with torch.no_grad():
        t_u = _median_seconds(lambda: unet(x, b, cond))
    _row("for scale: the mini U-Net's forward (us)", "", f"{1e6 * t_u:.0f}")
    print("  decision: switched (Timesteps + TimestepEmbedding; old checkpoints load). The whole U-Net\n"
          "  (UNet2DConditionModel) is not compared: it needs the CLIPSonic mini recipe trained twice")


# --------------------------------------------------------------------------- classifier
class _ESPnetClsStack(torch.nn.Module):
    """The modules ESPnet's classification task builds (its ESPnetClassificationModel itself
    needs torcheval), at the size of our classifier."""

    def __init__(self, num_classes: int, fs: int = 16000):
        super().__init__()
        from espnet2.asr.encoder.transformer_encoder import TransformerEncoder
        from espnet2.asr.frontend.default import DefaultFrontend
        from espnet2.cls.decoder.linear_decoder import LinearDecoder
        from espnet2.layers.utterance_mvn import UtteranceMVN

        self.frontend = DefaultFrontend(fs=fs, n_fft=1024, hop_length=256, n_mels=64)
        self.normalize = UtteranceMVN()
        self.encoder = TransformerEncoder(64, output_size=64, attention_heads=4, linear_units=256, num_blocks=2)
        self.decoder = LinearDecoder(num_classes, 64)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        lengths = torch.full((wave.shape[0],), wave.shape[1], dtype=torch.long)
        feats, flens = self.frontend(wave, lengths)
        feats, flens = self.normalize(feats, flens)
        h, hlens, _ = self.encoder(feats, flens)
        return self.decoder(h, hlens)


def _fit_classifier(model: torch.nn.Module, waves: List[np.ndarray], y: np.ndarray, steps: int,
                    seed: int = 0) -> float:
    """Our trainer's recipe (AdamW, one-cycle, random crops with ±10 dB gain); returns seconds."""
    from espnet2_clip.metrics.audio_classifier import random_crops

    rng = np.random.default_rng(seed)
    optim = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(optim, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    start = time.perf_counter()
    model.train()
    for _ in range(steps):
        idx = rng.choice(len(waves), size=16)
        x = torch.from_numpy(random_crops([waves[i] for i in idx], 16000, rng, 10.0))
        loss = torch.nn.functional.cross_entropy(model(x), torch.from_numpy(y[idx]))
        optim.zero_grad()
        loss.backward()
        optim.step()
        sched.step()
    model.eval()
    return time.perf_counter() - start


def bench_classifier(steps: int = 150, num_classes: int = 8) -> None:
    from espnet2_clip.data import bridge_world
    from espnet2_clip.metrics.audio_classifier import AudioClassifier

    has_task = importlib.util.find_spec("espnet2.tasks.cls") is not None
    has_torcheval = importlib.util.find_spec("torcheval") is not None
    _header(f"evaluation classifier ({num_classes} bridge-world classes, {steps} steps of 16 1-s crops)",
            "espnet2.tasks.cls stack")
    _row("ESPnet task / its model buildable", "", f"{has_task} / {has_torcheval} (torcheval)")
    cfg = bridge_world.WorldConfig(num_classes=num_classes)
    train = [(bridge_world.interference_item(cfg, c, i), c) for c in range(num_classes) for i in range(12)]
    test = [(bridge_world.target_item(cfg, c, i)[0], c) for c in range(num_classes) for i in range(6)]
    waves, y = [w for w, _ in train], np.array([c for _, c in train])
    names = [c[0] for c in bridge_world.CLASSES[:num_classes]]
    results = []
    for build in (lambda: AudioClassifier(names), lambda: _ESPnetClsStack(num_classes)):
        torch.manual_seed(0)
        model = build()
        seconds = _fit_classifier(model, waves, y, steps)
        with torch.no_grad():
            x = torch.from_numpy(np.stack([w for w, _ in test]))
            acc = float((model(x).argmax(-1).numpy() == np.array([c for _, c in test])).mean())
        results.append((sum(p.numel() for p in model.parameters()), seconds / steps, acc))
    (p_o, s_o, a_o), (p_e, s_e, a_e) = results
    _row("parameters", f"{p_o}", f"{p_e}")
    _row("seconds per training step", f"{s_o:.3f}", f"{s_e:.3f}")
    _row("accuracy on held-out targets", f"{a_o:.3f}", f"{a_e:.3f}")
    print("  decision: keep ours (see espnet2_clip/metrics/audio_classifier.py: why ESPnet's task does not fit)")


def main(cmd: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--fad_path", default=None,
                        help="a dir holding frechet_audio_distance (pip install --no-deps --target DIR)")
    parser.add_argument("--scp_lines", type=int, default=200_000)
    parser.add_argument("--classifier_steps", type=int, default=150)
    args = parser.parse_args(cmd)
    torch.set_num_threads(args.threads)
    from espnet2_clip.utils.cpu import flush_denormals

    flush_denormals()
    print(f"library_benchmark: torch {torch.__version__}, numpy {np.__version__}, {args.threads} thread(s)")
    for section in args.sections:
        if section == "scp":
            bench_scp(args.scp_lines)
        elif section == "griffin_lim":
            bench_griffin_lim()
        elif section == "frechet":
            bench_frechet(args.fad_path)
        elif section == "timestep":
            bench_timestep()
        elif section == "classifier":
            bench_classifier(args.classifier_steps)
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
