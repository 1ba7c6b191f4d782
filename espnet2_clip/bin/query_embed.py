"""Embed queries with a frozen query encoder (CLIP, BERT, a label table, ...) into ``.npy`` files
plus an scp: the training queries of every model (recipes' stage 5).

Modes::

    frames  --input_scp 'uttid frame_dir'  -> <out>/frames/<uttid>.npy (n_frames, D), frames_embed.scp
    image   --input_scp 'uttid image.png'  -> <out>/image/<uttid>.npy  (D,),          image_embed.scp
    text    --input_scp 'uttid query text' -> <out>/text/<hash>.npy    (D,),          text_embed.scp
                                              (one file per distinct text: labels repeat)

The encoder is ``--query_encoder`` with ``--query_encoder_conf`` (an entry of
``espnet2_clip.query.choices.query_encoder_choices``), or the one a training config records
(``--train_config``: its ``query_encoder``, ``query_encoder_conf`` and ``text_prompt``; options given
here override them). CLIP embeddings are raw (unnormalised) fp32; a label table gives int64 ids.

A frame dir holds 1 fps frames ``000001.jpg``, ``000002.jpg``, ... (sorted by name; jpg/png).
Existing valid outputs made with the same encoder (``<out>/<mode>_query_info.json``) are kept
unless ``--overwrite``; a missing or empty frame dir / unreadable image is skipped, counted,
and listed in ``<out>/<mode>_skipped``.

Examples::

    python -m espnet2_clip.bin.query_embed --mode frames --input_scp dump/train/frames.scp \\
        --output_dir dump/train/clip_frames --query_encoder clip \\
        --query_encoder_conf "{model_name: exp/clip, pretrained: none}"
    python -m espnet2_clip.bin.query_embed --mode text --input_scp dump/train/label \\
        --output_dir dump/train/query_bertsep --train_config conf/train_bertsep.yaml
"""

import argparse
import hashlib
import json
import logging
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import yaml
from tqdm import tqdm

from espnet2_clip.utils.cli import CLIP_ENCODER_ALIASES, parse_args
from espnet2_clip.utils.fileio import OWN_OUTPUT_DIR_HELP, atomic_path, read_scp, remove_stale_temps, write_scp, write_text_atomic

logger = logging.getLogger("espnet2_clip.query_embed")

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


def list_frames(frame_dir: Path) -> List[Path]:
    if not frame_dir.is_dir():
        return []
    return sorted(p for p in frame_dir.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and p.is_file())


def _safe_name(uttid: str) -> str:
    return uttid.replace("/", "__").replace("\\", "__")


def _stored_dtype(arr: np.ndarray) -> np.dtype:
    """float32 embeddings, int64 ids (label tables)."""
    return np.dtype(np.float32) if np.issubdtype(arr.dtype, np.floating) else np.dtype(np.int64)


def _valid_npy(path: Path, shape: Tuple[int, ...]) -> bool:
    if not path.is_file():
        return False
    try:
        arr = np.load(path, mmap_mode="r")
    except Exception:  # noqa: BLE001 - any unreadable file is recomputed
        return False
    return arr.dtype in (np.float32, np.int64) and tuple(arr.shape) == tuple(shape)


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(arr, dtype=_stored_dtype(arr)))


def _text_file_name(text: str) -> str:
    return hashlib.sha1(" ".join(text.split()).encode("utf-8")).hexdigest()[:16]


def read_text_queries(path: Path) -> Dict[str, str]:
    """``uttid query text``; an empty query raises ValueError naming file:line."""
    queries = read_scp(path, allow_empty_value=True)
    for key, value in queries.items():
        if not value.strip():
            with open(path, encoding="utf-8") as f:
                lineno = next((i for i, ln in enumerate(f, 1) if ln.split() and ln.split()[0] == key), 0)
            raise ValueError(f"{path}:{lineno}: empty text query for '{key}'")
    return queries


def weights_fingerprint(encoder_conf: Dict[str, Any]) -> Dict[str, List[int]]:
    """Size and mtime of the local files an encoder's options name, so that a retrained encoder (or
    a new label vocabulary) invalidates the cache."""
    files: List[Path] = []
    for name in encoder_conf.values():
        if not isinstance(name, (str, Path)) or not name:
            continue
        p = Path(str(name)[len("local-dir:"):] if str(name).startswith("local-dir:") else str(name))
        if p.is_dir():
            files += sorted(q for q in p.iterdir() if q.suffix in (".safetensors", ".bin", ".pth", ".json"))
        elif p.is_file():
            files.append(p)
    return {str(f): [f.stat().st_size, f.stat().st_mtime_ns] for f in files}


def get_parser() -> argparse.ArgumentParser:
    from espnet2.utils.nested_dict_action import NestedDictAction

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", required=True, choices=["frames", "image", "text"])
    p.add_argument("--input_scp", required=True,
                   help="frames: 'uttid frame_dir'; image: 'uttid path'; text: 'uttid query text'")
    p.add_argument("--output_dir", required=True, help=OWN_OUTPUT_DIR_HELP)
    p.add_argument("--output_scp", default=None, help="default <output_dir>/<mode>_embed.scp")
    p.add_argument("--train_config", default=None,
                   help="take the query encoder, its options and text_prompt from this training config")
    p.add_argument("--query_encoder", default=None,
                   help="registry name of the encoder (clip, bert, label, ...; default: the training config's, "
                        "else clip)")
    p.add_argument("--query_encoder_conf", action=NestedDictAction, default=None,
                   help="encoder options, e.g. CLIP: \"{model_name: ViT-B-32, pretrained: openai}\" (a model dir "
                        "made by clip_train: {model_name: exp/clip, pretrained: none}); over the config's")
    p.add_argument("--text_prompt", default=None,
                   help="text mode: single ('a photo of {}'), ensemble (the official 5 templates) or none "
                        "(raw text); default: the training config's, else single")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--overwrite", action="store_true", help="recompute existing outputs")
    return p


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(get_parser(), argv, dict(CLIP_ENCODER_ALIASES, **{"--prompt": "--text_prompt"}))
    # our INFO, but only WARNING from open_clip's (root logger) messages
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("espnet2_clip").setLevel(logging.INFO)
    run(args)


def resolve_encoder(args: argparse.Namespace) -> Tuple[str, Dict[str, Any], str]:
    """``(query_encoder, query_encoder_conf, text_prompt)``: the options given, over the training config's."""
    config: Dict[str, Any] = {}
    if args.train_config:
        try:
            config = yaml.safe_load(Path(args.train_config).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read the training config {args.train_config}: {exc}") from exc
    name = args.query_encoder or config.get("query_encoder") or "clip"
    conf = dict(config.get("query_encoder_conf") or {}, **(args.query_encoder_conf or {}))
    prompt = args.text_prompt or config.get("text_prompt") or "single"
    return name, conf, prompt


def run(args) -> Dict[str, int]:
    from espnet2_clip.query.choices import build_query_encoder

    mode = args.mode
    in_scp = Path(args.input_scp)
    out_dir = Path(args.output_dir)
    npy_dir = out_dir / mode
    out_scp = Path(args.output_scp) if args.output_scp else out_dir / f"{mode}_embed.scp"
    entries = read_text_queries(in_scp) if mode == "text" else read_scp(in_scp)

    name, conf, prompt = resolve_encoder(args)
    encoder = build_query_encoder(name, conf, args.device, batch_size=args.batch_size)
    needed = "text" if mode == "text" else "image"
    if needed not in encoder.modalities:
        raise ValueError(f"--mode {mode} needs an encoder of {needed}s; the '{name}' encoder takes "
                         f"{', '.join(encoder.modalities)}")
    dim = encoder.embed_dim
    info = {"query_encoder": name, "query_encoder_conf": {k: str(v) for k, v in conf.items()},
            "embed_dim": dim, "normalized": False, "weights": weights_fingerprint(conf)}
    if mode == "text":
        info["text_prompt"] = prompt
    info_path = out_dir / f"{mode}_query_info.json"
    reuse = not args.overwrite
    if reuse and info_path.is_file():
        try:
            old = json.loads(info_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            old = None
        if old != info:
            logger.warning(f"{info_path}: existing outputs came from {old}; recomputing all")
            reuse = False
    npy_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_dir, npy_dir)  # a killed run's
    write_text_atomic(info_path, json.dumps(info, indent=2) + "\n")

    out: Dict[str, str] = {}
    skipped: Dict[str, str] = {}
    n_cached = 0
    todo: List[Tuple[str, Path, object]] = []
    for key, value in entries.items():
        path = npy_dir / f"{_text_file_name(value) if mode == 'text' else _safe_name(key)}.npy"
        if mode == "frames":
            frames = list_frames(Path(value))
            if not frames:
                why = "missing frame dir" if not Path(value).is_dir() else "no frames (jpg/png)"
                skipped[key] = f"{why}: {value}"
                continue
            shape = (len(frames), dim)
            item = frames
        elif mode == "image":
            if not Path(value).is_file():
                skipped[key] = f"missing image: {value}"
                continue
            shape, item = (dim,), value
        else:
            shape, item = (dim,), value
        if reuse and _valid_npy(path, shape):
            out[key] = str(path)
            n_cached += 1
            continue
        todo.append((key, path, item))

    if mode == "text":
        unique = list({path: text for _, path, text in todo}.items())  # one embedding per distinct text
        for s in tqdm(range(0, len(unique), args.batch_size), desc="text", mininterval=5):
            chunk = unique[s : s + args.batch_size]
            emb = encoder.encode("text", [text for _, text in chunk], templates=prompt)
            for (path, _), e in zip(chunk, emb.cpu().numpy()):
                _save_npy(path, e)
        out.update({key: str(path) for key, path, _ in todo})
    elif mode == "image":
        from PIL import Image

        for s in tqdm(range(0, len(todo), args.batch_size), desc="image", mininterval=5):
            chunk, images = [], []
            for key, path, img_path in todo[s : s + args.batch_size]:
                try:
                    with Image.open(img_path) as im:
                        images.append(im.convert("RGB"))
                    chunk.append((key, path))
                except Exception as e:  # noqa: BLE001 - name the file, go on
                    skipped[key] = f"unreadable image {img_path}: {e}"
            if not images:
                continue
            emb = encoder.encode("image", images)
            for (key, path), e in zip(chunk, emb.cpu().numpy()):
                _save_npy(path, e)
                out[key] = str(path)
    else:
        from PIL import Image

        for key, path, frames in tqdm(todo, desc="frames", mininterval=5):
            try:
                images = []
                for fp in frames:
                    with Image.open(fp) as im:
                        images.append(im.convert("RGB"))
            except Exception as e:  # noqa: BLE001 - name the file, go on
                skipped[key] = f"unreadable frame in {frames[0].parent}: {e}"
                continue
            emb = encoder.encode("image", images).cpu().numpy()
            _save_npy(path, emb)
            out[key] = str(path)

    write_scp(out_scp, out)
    skip_file = out_dir / f"{mode}_skipped"
    if skipped:
        write_text_atomic(skip_file, "".join(f"{k} {v}\n" for k, v in sorted(skipped.items())))
        for k, v in list(sorted(skipped.items()))[:5]:
            logger.warning(f"skipped {k}: {v}")
        logger.warning(f"{len(skipped)} of {len(entries)} entries skipped (list: {skip_file})")
    elif skip_file.exists():
        skip_file.unlink()
    logger.info(f"{mode}: {len(out)} embeddings (D={dim}) in {out_scp} "
                 f"({len(out) - n_cached} computed, {n_cached} cached, {len(skipped)} skipped)")
    return {"written": len(out) - n_cached, "cached": n_cached, "skipped": len(skipped)}


if __name__ == "__main__":
    main()
