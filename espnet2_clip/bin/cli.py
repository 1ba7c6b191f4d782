#!/usr/bin/env python3
"""``espnet2-clip``: use CLIPSep and CLIPSonic models like a tool.

Examples::

    espnet2-clip separate song.flac -q "a violin" -q "a piano" -o est.wav -m clipsep.zip
    espnet2-clip separate walk.mp4 --negative "a dog barking" -o no_dog.wav -m exp/clipsep_nit
    espnet2-clip generate "a dog barking" -n 2 --steps 25 -o dog.wav -m user/clipsonic
    espnet2-clip embed --text "a dog barking" -o dog.npy -m clipsep.zip
    espnet2-clip info clipsep.zip
    espnet2-clip demo -m clipsep.zip --inputs examples/ -q "a violin" -o site/

``--model_tag`` (``-m``) is a packed zip (``espnet2.bin.pack``), an exp dir (config.yaml and a .pth) or a
Hugging Face id (user/name). Every bad input ends with one line ``espnet2-clip <cmd>: error: ...``
on stderr, a non-zero exit, and no partial output file.
"""

import argparse
import logging
import os
import re
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml

from espnet2.utils.nested_dict_action import NestedDictAction

from espnet2_clip.utils.audio_io import (OUTPUT_SUBTYPES, check_input_file, check_output_path, one_line,
                                         warn_if_above_full_scale)
from espnet2_clip.utils.fileio import slug

PROG = "espnet2-clip"
logger = logging.getLogger("espnet2_clip")
CHECKPOINT_PATTERNS = ("valid.*.best.pth", "*.ave*.pth", "latest.pth", "*epoch.pth")
EXPECTED_MODEL = "a packed .zip, an exp dir with config.yaml and a .pth, or a Hugging Face id user/name"
TASKS = {"separate": "CLIPSep (text-queried separation)", "generate": "CLIPSonic (text-to-audio)"}


class CLIError(ValueError):
    """A bad input, reported as one line."""


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (``prog: error: message``), exit 2."""

    def error(self, message: str):
        sys.stderr.write(f"{self.prog}: error: {one_line(message)}\n")
        sys.exit(2)


class _StderrHandler(logging.Handler):
    """Writes to the current ``sys.stderr`` (which tests may replace)."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(f"{PROG}: {record.levelname.lower()}: {one_line(record.getMessage(), 1000)}\n")


# ------------------------------------------------------------------------------------ models
@dataclass
class ModelFiles:
    """A resolved ``--model_tag`` (``-m``): its task ("separate" / "generate"), files and where it came from."""

    spec: str
    task: str
    train_config: Path
    model_file: Path
    config: Dict[str, Any]
    packed: Optional[Path] = None  # the zip, if any


def _cache_dir() -> str:
    return os.environ.get("ESPNET2_CLIP_CACHE", str(Path.home() / ".cache" / "espnet2_clip" / "models"))


def _find_checkpoint(exp: Path) -> Path:
    for pattern in CHECKPOINT_PATTERNS:
        found = sorted(exp.glob(pattern))
        if found:
            return found[0]
    raise CLIError(f"--model_tag '{exp}': no checkpoint (valid.*.best.pth, latest.pth, ...) in the exp dir")


def _task_of(config: Dict[str, Any], spec: str) -> str:
    from espnet2_clip.utils.model_card import task_of

    task = task_of(config)
    if task is not None:
        return task
    raise CLIError(f"--model_tag '{spec}': config.yaml is neither a CLIPSep nor a CLIPSonic training config")


def _read_config(path: Path, spec: str) -> Dict[str, Any]:
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CLIError(f"--model_tag '{spec}': unreadable config {path} ({one_line(exc, 120)})") from exc
    if not isinstance(config, dict):
        raise CLIError(f"--model_tag '{spec}': config {path} is not a YAML mapping")
    return config


def resolve_model(spec: str) -> ModelFiles:
    """Find the config and checkpoint of ``--model_tag`` (``-m``) (unpacking a zip or downloading an HF id)."""
    path = Path(spec)
    if path.is_dir():
        config_path = path / "config.yaml"
        if not config_path.is_file():
            raise CLIError(f"--model_tag '{spec}': no config.yaml in the directory; expected {EXPECTED_MODEL}")
        config = _read_config(config_path, spec)
        return ModelFiles(spec, _task_of(config, spec), config_path, _find_checkpoint(path), config)
    if path.exists() or path.suffix == ".zip" or not re.fullmatch(r"[\w.-]+/[\w.-]+(@[\w.-]+)?", spec):
        check_input_file(path, "--model_tag")
        if not zipfile.is_zipfile(path):
            raise CLIError(f"--model_tag '{spec}': not a zip file; expected {EXPECTED_MODEL}")
    from espnet_model_zoo.downloader import ModelDownloader

    try:
        files = ModelDownloader(_cache_dir()).download_and_unpack(spec)
    except Exception as exc:
        raise CLIError(f"--model_tag '{spec}': cannot unpack or download ({one_line(exc, 150)}); "
                       f"expected {EXPECTED_MODEL}") from exc
    if "train_config" not in files or "model_file" not in files:
        raise CLIError(f"--model_tag '{spec}': the packed model has no train_config / model_file")
    config = _read_config(Path(files["train_config"]), spec)
    return ModelFiles(spec, _task_of(config, spec), Path(files["train_config"]), Path(files["model_file"]),
                      config, packed=path if path.is_file() else None)


def check_device(device: str) -> str:
    """``device`` if it can be used."""
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CLIError(f"--device {device}: no CUDA device available; use --device cpu")
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", device):
        raise CLIError(f"--device '{device}': expected cpu, cuda, cuda:N or mps")
    return device


def load_model(spec: str, task: str, device: str, **options):
    """The ``TextQueriedSeparation`` (task "separate") or ``TextToAudio`` ("generate") of ``spec``
    (``options``: more constructor arguments)."""
    files = resolve_model(spec)
    if files.task != task:
        raise CLIError(f"--model_tag '{spec}': a {TASKS[files.task]} model; `{task}` needs a {TASKS[task]} model")
    if not files.model_file.is_file() or files.model_file.stat().st_size == 0:
        raise CLIError(f"--model_tag '{spec}': checkpoint '{files.model_file}' is missing or empty")
    device = check_device(device)
    if task == "separate":
        from espnet2_clip.bin.clipsep_inference import TextQueriedSeparation as cls
    else:
        from espnet2_clip.bin.clipsonic_inference import TextToAudio as cls
    try:
        if files.packed is not None or not Path(spec).is_dir():
            return cls.from_pretrained(spec, cachedir=_cache_dir(), device=device, **options)
        return cls(files.train_config, files.model_file, device=device, **options)
    except CLIError:
        raise
    except Exception as exc:
        raise CLIError(f"--model_tag '{spec}': cannot load the model from {files.model_file} "
                       f"({type(exc).__name__}: {one_line(exc, 150)})") from exc


# ----------------------------------------------------------------------------------- queries
def check_text(text: str, field: str) -> str:
    """A non-empty text query."""
    if not text or not text.strip():
        raise CLIError(f"{field}: empty or whitespace-only query {text!r}; expected a text such as 'a dog barking'")
    return text


def warn_if_truncated(encoder: Any, text: str, field: str) -> None:
    """Warn when CLIP's tokenizer cuts ``text`` to its context length."""
    tokenizer = getattr(encoder, "tokenizer", None)
    if tokenizer is None:
        return
    tokens = tokenizer([text])
    if int(tokens[0, -1]) != 0:
        logger.warning(f"{field}: query of {len(text)} characters is longer than CLIP's {tokens.shape[-1]}-token "
                       "context: truncated")


def load_image(path: str, field: str = "--image"):
    """The RGB PIL image of ``path``."""
    from PIL import Image, UnidentifiedImageError

    check_input_file(path, field)
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise CLIError(f"{field} '{path}': not an image ({one_line(exc, 100)}); expected a jpg/png image") from exc


def video_frames(path: str, workdir: Path, field: str = "--video", max_frames: int = 32) -> list:
    """1 fps frames of a video (at most ``max_frames``) as PIL images."""
    from espnet2_clip.data.video import VideoError, extract_frames

    check_input_file(path, field)
    try:
        frames = extract_frames(path, workdir / "frames", fps=1, max_frames=max_frames)
    except VideoError as exc:
        raise CLIError(f"{field} '{path}': {one_line(exc, 200)}; expected a video with frames") from exc
    if not frames:
        raise CLIError(f"{field} '{path}': no video frames; expected a video with frames")
    return [load_image(str(f), field) for f in frames]


def output_paths(out: str, labels: Sequence[str]) -> List[Path]:
    """One path per output: ``out`` itself for one output, else ``<stem>_<label><suffix>``; an
    ``out`` without an audio extension is a directory of ``<label>.wav``."""
    out_path = Path(out)
    names, seen = [], {}
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        names.append(label if seen[label] == 1 else f"{label}_{seen[label]}")
    if out_path.suffix.lower() in OUTPUT_SUBTYPES:
        paths = [out_path] if len(names) == 1 else [
            out_path.with_name(f"{out_path.stem}_{n}{out_path.suffix}") for n in names]
    elif out_path.suffix:
        raise CLIError(f"-o '{out}': unsupported extension '{out_path.suffix}'; expected one of "
                       f"{', '.join(OUTPUT_SUBTYPES)} or a directory")
    else:
        if not out_path.is_dir():
            check_output_path(out_path)
            out_path.mkdir()
        paths = [out_path / f"{n}.wav" for n in names]
    return [check_output_path(p) for p in paths]


# ----------------------------------------------------------------------------------- commands
def cmd_separate(args: argparse.Namespace) -> None:
    """Separate IN into one output per query."""
    from espnet2_clip.utils.audio_io import AudioReader, warn_if_silent

    for text in args.query + args.negative:
        check_text(text, "-q" if text in args.query else "--negative")
    check_input_file(args.input, "input")
    with AudioReader(args.input) as reader:  # fails early on unreadable input
        info = f"{reader.frames / reader.samplerate:.1f} s, {reader.samplerate} Hz, {reader.channels} ch"
    sep = load_model(args.model, "separate", args.device, precision=args.precision)
    with tempfile.TemporaryDirectory(prefix="espnet2_clip_") as work:
        items = _separation_queries(args, sep, Path(work))
        labels = [label for label, _, _, _ in items]
        paths = output_paths(args.output, labels)
        if args.plot:
            check_output_path(args.plot)
        if args.hop_ratio is not None:
            if not 0 < args.hop_ratio <= 1:
                raise CLIError(f"--hop_ratio: expected 0 < value <= 1, got {args.hop_ratio}")
            sep.hop = max(1, int(sep.clip_samples * args.hop_ratio))
        queries = [q for _, q, _, _ in items]
        kinds = {k for _, _, k, _ in items}
        negatives = [n for _, _, _, n in items]
        logger.info(f"{args.input}: {info}; {len(paths)} outputs")
        peak = _separate_mixed_kinds(sep, args.input, paths, queries, [k for _, _, k, _ in items], negatives,
                                     args.segment_seconds) if len(kinds) > 1 else sep.separate_file(
            args.input, paths, queries, negatives, query_kind=kinds.pop(), segment_seconds=args.segment_seconds)
        warn_if_silent(peak, args.input, logger)
        if args.plot:
            plot_separation(sep, args.input, queries, [k for _, _, k, _ in items], negatives, labels, args.plot)
    for path in paths:
        print(path)


def _separation_queries(args: argparse.Namespace, sep, work: Path) -> List[Tuple[str, Any, Optional[str], bool]]:
    """(label, query, kind, negative) of every query of ``separate``."""
    items = []
    for text in args.query:
        items.append((slug(text), text, "text", False))
    for text in args.negative:
        items.append(("not_" + slug(text), text, "text", True))
    if args.image:
        items.append(("image_" + slug(Path(args.image).stem), [load_image(args.image)], "frames", False))
    if args.video:
        items.append(("video_" + slug(Path(args.video).stem), video_frames(args.video, work), "frames", False))
    if not sep.model.head.needs_query:
        if items:
            raise CLIError(f"--model_tag '{args.model}': a non-queried (PIT) model takes no -q/--negative/--image/--video")
        return [(f"source{i + 1}", None, None, False) for i in range(sep.model.head.num_outputs)]
    if not items:
        raise CLIError("no query: give -q TEXT, --negative TEXT, --image IMG or --video MP4")
    for label, query, kind, _ in items:
        if kind == "text":
            warn_if_truncated(sep.query_encoder, query, "-q")
    return items


def _separate_mixed_kinds(sep, path, paths, queries, kinds, negatives, segment_seconds) -> float:
    """Text and image queries together: embed each with its kind, then separate as one batch."""
    embs = [sep.embed_query(q, k) for q, k in zip(queries, kinds)]
    return sep.separate_file(path, paths, [e[0].numpy() for e in embs], negatives, query_kind="embedding",
                             segment_seconds=segment_seconds)


def plot_separation(sep, path: str, queries, kinds, negatives, labels, out: str, seconds: float = 10.0) -> None:
    """Mixture, mask and estimate spectrograms of the first ``seconds`` of ``path`` (one row per query)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from espnet2_clip.utils.audio_io import AudioReader
    from espnet2_clip.utils.fileio import atomic_path

    with AudioReader(path) as reader:
        wave = torch.from_numpy(reader.read(0, min(reader.frames, int(seconds * reader.samplerate))).mean(0))
        fs = reader.samplerate
    wave = sep._resample(wave, fs, sep.sample_rate)[: sep.clip_samples]
    wave = torch.nn.functional.pad(wave, (0, sep.clip_samples - wave.shape[-1]))
    model = sep.model
    with torch.no_grad():
        spec = model.frontend.stft(wave[None])
        feats = model.features(model.frontend.warp(spec.abs()))
        rows = []
        for query, kind, neg in zip(queries, kinds, negatives):
            emb = None if query is None else sep.embed_query(query, kind)
            mask = model.frontend.unwarp(model.head.masks(feats, emb)[:, 0])[0]
            rows.append(1 - mask if neg else mask)
    db = lambda x: 20 * torch.log10(x.abs() + 1e-6)  # noqa: E731
    fig, axes = plt.subplots(len(rows) + 1, 2, figsize=(10, 2.5 * (len(rows) + 1)), squeeze=False)
    extent = (0, sep.clip_samples / sep.sample_rate, 0, sep.sample_rate / 2000)
    axes[0, 0].imshow(db(spec[0]), origin="lower", aspect="auto", extent=extent, vmin=-80, vmax=20)
    axes[0, 0].set_title("mixture (dB)")
    axes[0, 1].axis("off")
    for i, (mask, label) in enumerate(zip(rows, labels), 1):
        axes[i, 0].imshow(mask, origin="lower", aspect="auto", extent=extent, vmin=0, vmax=1)
        axes[i, 0].set_title(f"mask: {label}")
        axes[i, 1].imshow(db(spec[0] * mask), origin="lower", aspect="auto", extent=extent, vmin=-80, vmax=20)
        axes[i, 1].set_title(f"estimate: {label} (dB)")
    for ax in axes.flat:
        ax.set_xlabel("time (s)")
        ax.set_ylabel("kHz")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


def check_sampling_args(args: argparse.Namespace, unit: str) -> None:
    """``-n`` (at least one ``unit``), ``--steps`` and ``--guidance`` of a generation command."""
    if args.num < 1:
        raise CLIError(f"-n: expected at least 1 {unit}, got {args.num}")
    if args.steps < 1:
        raise CLIError(f"--steps: expected at least 1 sampling step, got {args.steps}")
    if not args.guidance >= 0:
        raise CLIError(f"--guidance: expected a scale >= 0 (1: no guidance), got {args.guidance}")


def cmd_generate(args: argparse.Namespace) -> None:
    """Generate ``-n`` clips for a text or an image."""
    import soundfile as sf

    check_sampling_args(args, "clip")
    if (args.text is None) == (args.image is None):
        raise CLIError("give either TEXT or --image IMG")
    if args.text is not None:
        query, kind = check_text(args.text, "TEXT"), "text"
    else:
        query, kind = [load_image(args.image)], "frames"
    labels = ["clip"] if args.num == 1 else [str(i) for i in range(args.num)]
    paths = output_paths(args.output, labels)
    t2a = load_model(args.model, "generate", args.device)
    if kind == "text":
        warn_if_truncated(t2a.query_encoder, query, "TEXT")
    waves = t2a.generate([query] * args.num, guidance_scale=args.guidance, num_steps=args.steps,
                         seeds=[args.seed + i for i in range(args.num)], query_kinds=[kind] * args.num)
    with _all_or_nothing(paths) as tmps:
        for tmp, path, wave in zip(tmps, paths, waves):
            warn_if_above_full_scale(wave, path, logger)
            sf.write(tmp, wave, t2a.sample_rate, subtype=OUTPUT_SUBTYPES[path.suffix.lower()],
                     format=path.suffix.lstrip(".").upper())
    for path in paths:
        print(path)


def _all_or_nothing(paths: Sequence[Path]):
    """Temporary paths moved to ``paths`` only if the whole block succeeds."""
    import contextlib

    from espnet2_clip.utils.fileio import atomic_path

    stack = contextlib.ExitStack()

    @contextlib.contextmanager
    def ctx():
        with stack:
            yield [stack.enter_context(atomic_path(p)) for p in paths]

    return ctx()


def cmd_demo(args: argparse.Namespace) -> None:
    """A static demo page (``index.html``, ``audio/``, ``img/``) of a model on a directory of inputs."""
    from espnet2_clip.utils import demo_inputs
    from espnet2_clip.utils.audio_io import AudioReader
    from espnet2_clip.utils.demo_page import check_site_dir, write_site

    check_site_dir(args.output)
    if not args.max_seconds > 0:
        raise CLIError(f"--max_seconds: expected a length > 0, got {args.max_seconds}")
    for text in args.query:
        check_text(text, "-q")
    task = resolve_model(args.model).task
    if task == "separate":
        items = demo_inputs.read_separation_inputs(args.inputs, args.query)
        for item in items:  # unreadable inputs and references fail before the model is loaded
            for path, what in [(item.path, "--inputs")] + [(ref, "reference") for _, ref in item.queries if ref]:
                with AudioReader(path, what):
                    pass
        sep = load_model(args.model, "separate", args.device)
        demo_inputs.check_queries(items, sep.model.head.needs_query, args.model)
        page = _separation_demo(sep, items, args)
    else:
        prompts = demo_inputs.read_prompts(args.inputs, args.query)
        check_sampling_args(args, "clip per prompt")
        t2a = load_model(args.model, "generate", args.device)
        page = _generation_demo(t2a, prompts, args)
    print(write_site(page, args.output, max_seconds=args.max_seconds))


def _separation_demo(sep, items, args: argparse.Namespace):
    """One example per recording: the mixture (its first ``--max_seconds``), then per query the
    estimate and the reference where ``queries.tsv`` names one."""
    from espnet2_clip.utils.audio_io import AudioReader
    from espnet2_clip.utils.demo_page import DemoClip, DemoExample, DemoPage, DemoRow, DemoSection

    examples = []
    for item in items:
        with AudioReader(item.path, "--inputs") as reader:
            frames = min(reader.frames, max(1, int(args.max_seconds * reader.samplerate)))
            wave, fs, total = reader.read(0, frames).T, reader.samplerate, reader.frames / reader.samplerate
        wave = wave[:, 0] if wave.shape[1] == 1 else wave
        texts = [text for text, _ in item.queries]
        for text in texts:
            warn_if_truncated(sep.query_encoder, text, "-q")
        logger.info(f"{item.path}: {len(texts) or 'no'} queries")
        est = sep(wave, fs, texts if texts else None)
        if texts:
            rows = [DemoRow(text, [DemoClip("estimate", e, fs)] + ([DemoClip("reference", ref)] if ref else []))
                    for (text, ref), e in zip(item.queries, est)]
        else:  # non-queried: every output of the model
            rows = [DemoRow(f"output {i + 1}", [DemoClip("estimate", e, fs)]) for i, e in enumerate(est)]
        cut = f"the first {frames / fs:.1f} s of " if frames < reader.frames else ""
        examples.append(DemoExample(item.path.name, clips=[DemoClip("mixture", wave, fs)], rows=rows,
                                    note=f"{cut}{total:.1f} s, {fs} Hz, {1 if wave.ndim == 1 else wave.shape[1]} ch"))
    notes = [f"model: {args.model} (CLIPSep, text-queried separation)",
             "estimates: the model's masks applied to the mixture (at its rate and channels)"]
    return DemoPage(args.title or "Text-queried sound separation", [DemoSection("Examples", examples)], notes)


def _generation_demo(t2a, prompts: Sequence[str], args: argparse.Namespace):
    """One example per prompt: ``-n`` clips (seeds seed, seed+1, ...)."""
    from espnet2_clip.utils.demo_page import DemoClip, DemoExample, DemoPage, DemoRow, DemoSection

    examples = []
    seeds = [args.seed + i for i in range(args.num)]
    for number, prompt in enumerate(prompts, 1):
        warn_if_truncated(t2a.query_encoder, prompt, "-q")
        logger.info(f"prompt {number}/{len(prompts)}: {prompt!r}")
        waves = t2a.generate([prompt] * args.num, guidance_scale=args.guidance, num_steps=args.steps, seeds=seeds,
                             query_kinds=["text"] * args.num)
        row = DemoRow(f"{t2a.variant}, w = {args.guidance:g}",
                      [DemoClip(f"seed {s}", w, t2a.sample_rate) for s, w in zip(seeds, waves)])
        examples.append(DemoExample(f"Prompt {number}", query=prompt, rows=[row]))
    vocoder = "HiFi-GAN" if getattr(t2a, "vocoder", None) is not None else "Griffin-Lim"
    notes = [f"model: {args.model} (CLIPSonic, text-to-audio; text queries: {t2a.variant})",
             f"{args.steps} DDIM steps, guidance scale {args.guidance:g}, vocoder {vocoder}"]
    return DemoPage(args.title or "Text-to-audio generation", [DemoSection("Examples", examples)], notes)


def cmd_embed(args: argparse.Namespace) -> None:
    """Embed a text, an image or a video's frames into .npy (as the recipes store them)."""
    from espnet2_clip.query.choices import build_query_encoder
    from espnet2_clip.utils.fileio import atomic_path

    out = Path(args.output)
    if out.suffix != ".npy":
        raise CLIError(f"-o '{out}': expected a .npy path")
    check_output_path(out)
    given = [x is not None for x in (args.text, args.image, args.video)]
    if sum(given) != 1:
        raise CLIError("give exactly one of --text, --image, --video")
    if args.text is not None:
        check_text(args.text, "--text")
    if (args.model is None) == (args.query_encoder is None):
        raise CLIError("give either --model_tag MODEL or --query_encoder NAME (with --query_encoder_conf)")
    if args.model is not None:
        config = resolve_model(args.model).config
        name, conf = config.get("query_encoder"), dict(config.get("query_encoder_conf") or {})
        prompt = args.text_prompt or config.get("text_prompt", "single")
    else:
        name, conf, prompt = args.query_encoder, dict(args.query_encoder_conf or {}), args.text_prompt or "single"
    with tempfile.TemporaryDirectory(prefix="espnet2_clip_") as work:
        if args.image is not None:
            items = [load_image(args.image)]
        elif args.video is not None:
            items = video_frames(args.video, Path(work))
        try:
            encoder = build_query_encoder(name, conf, check_device(args.device))
        except CLIError:
            raise
        except Exception as exc:
            raise CLIError(f"query encoder '{name}' {conf}: cannot be built ({one_line(exc, 200)})") from exc
        if args.text is not None:
            warn_if_truncated(encoder, args.text, "--text")
            emb = encoder.encode("text", [args.text], templates=prompt)[0]
        else:
            emb = encoder.encode_images(items)
            emb = emb[0] if args.image is not None else emb
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, emb.detach().cpu().numpy().astype(np.float32))
    print(f"{out} {tuple(emb.shape)}")


def cmd_info(args: argparse.Namespace) -> None:
    """Print a model's task, query encoder, sizes, and its model card's key facts and scores."""
    import torch

    from espnet2_clip.utils.model_card import CardError, card_summary

    files = resolve_model(args.model)
    try:
        state = torch.load(files.model_file, map_location="cpu", weights_only=True)
        # a weight average (CLIPSonic's ``ema.*``) is a second copy of some weights, not more parameters
        params = sum(v.numel() for k, v in state.items() if hasattr(v, "numel") and not k.startswith("ema."))
        averaged = any(k.startswith("ema.") for k in state)
    except Exception as exc:
        raise CLIError(f"--model_tag '{args.model}': cannot read checkpoint '{files.model_file}' "
                       f"({type(exc).__name__}: {one_line(exc, 120)})") from exc
    config = files.config
    conf = config.get("query_encoder_conf") or {}
    lines = [
        f"model: {args.model}",
        f"task: {TASKS[files.task]} (`espnet2-clip {files.task}`)",
        f"query encoder: {config.get('query_encoder')} {Path(str(conf.get('model_name', '-'))).name}",
        f"sample rate: {config.get('sample_rate', (config.get('mel_conf') or {}).get('fs'))} Hz, "
        f"clip: {config.get('clip_samples')} samples",
        f"parameters: {params:,} ({files.model_file.stat().st_size / 2**20:.1f} MiB checkpoint"
        f"{', with their moving average' if averaged else ''})",
    ]
    if files.task == "separate":
        lines.append(f"head: {config.get('head')}, train query: {config.get('train_query', config.get('query'))}")
    lines.append("")
    card = _model_card(files)
    if card is None:
        lines.append("model card: none (this model was packed without README.md; the recipes' pack stage writes "
                     "one: python -m espnet2_clip.bin.model_card --exp_dir EXP_DIR)")
        results = _packed_text(files, ("RESULTS.md",))
        lines += ["RESULTS.md packed with the model:", "", results.strip()] if results else [
            "scores: not scored (no RESULTS.md packed with the model)"]
    else:
        source, text = card
        try:
            lines += card_summary(text, source)
        except CardError as exc:
            logger.warning(f"{exc}; printing it as it is")
            lines += [f"model card: {source} (not an espnet2_clip card)", "", text.strip()]
    print("\n".join(lines))


def _model_card(files: ModelFiles) -> Optional[Tuple[str, str]]:
    """``(where, text)`` of the model card: the README.md beside the config (in the zip, or in the exp
    dir / unpacked download), else any README.md in the zip; None without one."""
    if files.packed is not None:
        with zipfile.ZipFile(files.packed) as zf:
            names = zf.namelist()
            try:
                meta = yaml.safe_load(zf.read("meta.yaml")) if "meta.yaml" in names else {}
            except yaml.YAMLError:
                meta = {}
            config_member = ((meta or {}).get("yaml_files") or {}).get("train_config")
            candidates = [str(PurePosixPath(config_member).parent / "README.md")] if config_member else []
            candidates += [n for n in names if PurePosixPath(n).name == "README.md"]
            for member in candidates:
                if member in names:
                    return f"{files.packed}:{member}", zf.read(member).decode("utf-8", errors="replace")
        return None
    for folder in (files.train_config.parent, files.model_file.parent):
        if (folder / "README.md").is_file():
            return str(folder / "README.md"), (folder / "README.md").read_text(encoding="utf-8", errors="replace")
    return None


def _packed_text(files: ModelFiles, names: Sequence[str]) -> Optional[str]:
    """The first of ``names`` found in the zip or next to the config."""
    if files.packed is not None:
        with zipfile.ZipFile(files.packed) as zf:
            for name in names:
                for member in zf.namelist():
                    if Path(member).name == name:
                        return zf.read(member).decode("utf-8", errors="replace")
    for name in names:
        for folder in (files.train_config.parent, files.model_file.parent):
            if (folder / name).is_file():
                return (folder / name).read_text(encoding="utf-8", errors="replace")
    return None


# ------------------------------------------------------------------------------------ parser
def _common(p: argparse.ArgumentParser, model_required: bool = True) -> None:
    p.add_argument("-m", "--model_tag", dest="model", required=model_required, help=f"Model: {EXPECTED_MODEL}")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    p.add_argument("--verbose", action="store_true", help="Log progress")


def get_parser() -> argparse.ArgumentParser:
    """The ``espnet2-clip`` parser with its subcommands."""
    parser = OneLineParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{separate,generate,embed,info,demo}")
    raw = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser("separate", help="Separate what text/image queries describe", formatter_class=raw,
                       description="Separate one output per query from an audio or video file (any rate, any "
                       "channels, any length).\n\nExample:\n  espnet2-clip separate mix.flac -q 'a violin' -q "
                       "'a piano' --negative 'a piano' -o est.wav --plot est.png -m clipsep.zip\n"
                       "  -> est_a_violin.wav est_a_piano.wav est_not_a_piano.wav (the input's rate and channels)")
    p.add_argument("input", help="Audio file (wav, flac, ogg, mp3, ...) or video (mp4, webm, mkv, ...)")
    p.add_argument("-q", "--query", action="append", default=[], help="Text query (repeatable)")
    p.add_argument("--negative", action="append", default=[], help="Everything except this text (repeatable)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--image", help="Image query")
    group.add_argument("--video", help="Video query (its 1 fps frames, averaged)")
    p.add_argument("-o", "--output", required=True,
                   help="Output file (.wav/.flac/.ogg; several queries: <stem>_<query><ext>) or directory")
    p.add_argument("--plot", help="PNG of mixture / mask / estimate spectrograms (the first clip, ~4 s)")
    p.add_argument("--segment_seconds", type=float, default=60.0, help="Audio read at once (memory bound)")
    p.add_argument("--hop_ratio", type=float, default=None, help="Window hop as a fraction of a clip")
    # the choices are utils.precision.PRECISIONS, spelled out so that --help imports no torch
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                   help="bf16: the separator in bfloat16, several times faster on CPUs with AMX/AVX512-BF16")
    _common(p)
    p.set_defaults(func=cmd_separate)

    p = sub.add_parser("generate", help="Generate audio for a text or an image", formatter_class=raw,
                       description="Generate clips with a CLIPSonic model.\n\nExample:\n  espnet2-clip generate "
                       "'a dog barking' -n 2 --guidance 3 --steps 25 --seed 0 -o dog.wav -m clipsonic.zip\n"
                       "  -> dog_0.wav dog_1.wav")
    p.add_argument("text", nargs="?", help="Text query")
    p.add_argument("--image", help="Image query (IQ)")
    p.add_argument("-n", "--num", type=int, default=1, help="Number of clips (seeds seed, seed+1, ...)")
    p.add_argument("--guidance", type=float, default=3.0, help="Classifier-free guidance scale >= 0")
    p.add_argument("--steps", type=int, default=25, help="DDIM steps >= 1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True, help="Output .wav/.flac/.ogg (several: <stem>_<i><ext>)")
    _common(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("embed", help="Embed a text, image or video into .npy", formatter_class=raw,
                       description="Embed a query as the recipes store them: text or image (D,), video "
                       "(n_frames, D) at 1 fps.\n\nExample:\n  espnet2-clip embed --video clip.mp4 -o clip.npy "
                       "-m clipsep.zip\n  espnet2-clip embed --text 'a dog' -o dog.npy --query_encoder clip "
                       "--query_encoder_conf '{model_name: ViT-B-32, pretrained: openai}'")
    p.add_argument("--text")
    p.add_argument("--image")
    p.add_argument("--video")
    p.add_argument("-o", "--output", required=True, help="Output .npy")
    p.add_argument("--query_encoder", default=None, help="Encoder of the registry, e.g. clip (instead of --model_tag)")
    p.add_argument("--query_encoder_conf", action=NestedDictAction, default=None,
                   help="Its options, e.g. \"{model_name: ViT-B-32, pretrained: openai}\"")
    p.add_argument("--text_prompt", default=None, help="single, ensemble or none")
    _common(p, model_required=False)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("info", help="Describe a model", formatter_class=raw,
                       description="Task, query encoder and sizes of a model, and the key facts of its model card (the "
                       "README.md the recipes pack: system, training data and missing videos, licence, scores)."
                       "\n\nExample:\n  espnet2-clip info clipsep.zip")
    p.add_argument("model", help=f"Model: {EXPECTED_MODEL}")
    p.add_argument("--verbose", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", help="Write a static demo page (audio players, spectrograms)", formatter_class=raw,
                       description="A static HTML page like the papers' demo pages: index.html, audio/*.wav and "
                       "img/*.png with relative links only (works offline; a rerun replaces the site).\n"
                       "CLIPSep: every audio/video file in --inputs DIR is an example; its queries are the -q "
                       "texts and DIR/queries.tsv lines 'FILE<TAB>QUERY[<TAB>REFERENCE]' (paths relative to DIR).\n"
                       "CLIPSonic: prompts from -q and DIR/prompts.txt (one per line); -n clips each.\n\n"
                       "Example:\n  espnet2-clip demo -m clipsep.zip --inputs examples/ -q 'a violin' -o site/\n"
                       "  espnet2-clip demo -m clipsonic.zip -q 'a dog barking' -q 'rain' -n 2 -o site/\n"
                       "  -> site/index.html (open it, or serve it: python -m http.server -d site)")
    p.add_argument("--inputs", help="Directory of audio/video files (+ queries.tsv), or of prompts.txt")
    p.add_argument("-q", "--query", action="append", default=[],
                   help="Text query of every input (CLIPSep) or a prompt (CLIPSonic); repeatable")
    p.add_argument("-o", "--output", required=True, help="Site directory (new, empty, or a site to replace)")
    p.add_argument("--title", default=None, help="Page title")
    p.add_argument("--max_seconds", type=float, default=20.0, help="Show (and separate) the first seconds of each input")
    p.add_argument("-n", "--num", type=int, default=2, help="CLIPSonic: clips per prompt (seeds seed, seed+1, ...)")
    p.add_argument("--guidance", type=float, default=3.0, help="CLIPSonic: classifier-free guidance scale >= 0")
    p.add_argument("--steps", type=int, default=25, help="CLIPSonic: DDIM steps >= 1")
    p.add_argument("--seed", type=int, default=0)
    _common(p)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point: returns 0, 1 (bad input / failure: one line on stderr) or 2 (usage)."""
    parser = get_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    handler = _StderrHandler()
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO if args.verbose else logging.WARNING)
    try:
        from espnet2_clip.utils.cpu import flush_denormals

        flush_denormals()
        args.func(args)
        return 0
    except (ValueError, OSError, RuntimeError, TypeError, ImportError) as exc:
        sys.stderr.write(f"{PROG} {args.command}: error: {one_line(exc, 500)}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG} {args.command}: interrupted (no output written)\n")
        return 130
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


if __name__ == "__main__":
    sys.exit(main())
