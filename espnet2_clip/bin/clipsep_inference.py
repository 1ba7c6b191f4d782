#!/usr/bin/env python3
"""Text-/image-queried separation with a trained CLIPSep model (Python API and CLI).

Python::

    import espnet2_clip.register  # noqa: F401  (not needed when using this class)
    from espnet2_clip.bin.clipsep_inference import TextQueriedSeparation
    sep = TextQueriedSeparation.from_pretrained("user/clipsep_nit_music")  # HF repo or local zip
    violin = sep(mixture, fs=44100, query="violin")  # (N,) at fs

CLI::

    python -m espnet2_clip.bin.clipsep_inference --train_config exp/x/config.yaml \\
        --model_file exp/x/valid.loss.best.pth --mix_scp data/test/wav.scp \\
        --query_text data/test/text --output_dir exp/x/decode_text
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm
from typeguard import typechecked

from espnet2_clip import register  # noqa: F401
from espnet2_clip.query.embedder import QueryEmbedder, infer_query_kind
from espnet2_clip.query.inference_io import QueryLists, add_query_arguments, run_cli
from espnet2_clip.tasks.clipsep import CLIPSepTask
from espnet2_clip.utils.chunking import overlap_add
from espnet2_clip.utils.fileio import atomic_path, read_scp, write_scp

Query = Union[str, np.ndarray, torch.Tensor, Any]  # text, embedding, or PIL image(s)
OUTPUT_LENGTHS = ("input", "istft")


class TextQueriedSeparation:
    """Separate the source described by a text (or image, or embedding) query from a mixture."""

    @typechecked
    def __init__(
        self,
        train_config: Union[Path, str],
        model_file: Optional[Union[Path, str]] = None,
        device: str = "cpu",
        query_encoder_conf: Optional[Dict] = None,
        text_prompt: Optional[str] = None,
        hop_ratio: float = 0.5,
    ):
        """Initialize TextQueriedSeparation.

        Args:
            train_config: config.yaml written by training.
            model_file: Model parameters (.pth).
            device: "cpu" or "cuda".
            query_encoder_conf: Overrides of the recorded query encoder options (e.g. a local
                CLIP checkpoint: ``{"pretrained": "/path/ViT-B-32.pt"}``).
            text_prompt: "single", "ensemble" (the official 5 templates) or "none"; default:
                the training config's ``text_prompt``.
            hop_ratio: Hop of the overlap-add chunking of long inputs, as a fraction of a clip.
        """
        self.model, self.train_args = CLIPSepTask.build_model_from_file(train_config, model_file, device)
        self.model.eval()
        self.device = device
        self.sample_rate = self.train_args.sample_rate
        self.clip_samples = self.train_args.clip_samples
        self.hop = max(1, int(self.clip_samples * hop_ratio))
        self.embedder = QueryEmbedder(
            self.train_args.query_encoder,
            dict(self.train_args.query_encoder_conf or {}, **(query_encoder_conf or {})),
            text_prompt or getattr(self.train_args, "text_prompt", "single"),
            device,
        )

    @staticmethod
    def from_pretrained(model_tag: Optional[str] = None, cachedir: Optional[str] = None,
                        **kwargs) -> "TextQueriedSeparation":
        """Build from a packed model: a Hugging Face repo id or a local zip (espnet_model_zoo).

        Args:
            model_tag: HF repo id ("user/name[@revision]") or path of a zip made by
                ``python -m espnet2.bin.pack enh``.
            cachedir: Where models are unpacked (default: espnet_model_zoo's cache).
            kwargs: Passed to the constructor (device, query_encoder_conf, ...).
        """
        if model_tag is None:
            return TextQueriedSeparation(**kwargs)
        from espnet_model_zoo.downloader import ModelDownloader

        downloader = ModelDownloader(cachedir) if cachedir else ModelDownloader()
        files = downloader.download_and_unpack(model_tag)
        return TextQueriedSeparation(**files, **kwargs)

    @property
    def query_encoder(self):
        """The frozen query encoder the training config records, built on first use."""
        return self.embedder.encoder

    def embed_query(self, query: Query, query_kind: Optional[str] = None) -> torch.Tensor:
        """(1, ...) model query of a "text", "frames" or "embedding" query (default: inferred)."""
        return self.embedder(query_kind or infer_query_kind(query), query)

    @torch.no_grad()
    def __call__(self, mixture: Union[np.ndarray, torch.Tensor], fs: int, query: Optional[Query] = None,
                 output_length: str = "input", query_kind: Optional[str] = None) -> np.ndarray:
        """Separate.

        Args:
            mixture: (N,) mono or (N, C) multi-channel wave (downmixed).
            fs: Sample rate of ``mixture`` (resampled to the model's rate and back).
            query: Text, image(s), or an embedding; None only for the PIT baseline.
            output_length: "input": N samples; "istft": only the samples that an inverse STFT
                without a length reconstructs from the model's frames, ``hop * (N' // hop)`` at
                the model's rate N' (65,280 of a 65,535-sample clip), as the official evaluation
                scores them.
            query_kind: "text", "frames" or "embedding" (default: a string is text, an array or
                tensor an embedding, anything else images).

        Returns:
            (L,) estimate at ``fs``; (num_outputs, L) for non-queried models.
        """
        if output_length not in OUTPUT_LENGTHS:
            raise ValueError(f"output_length must be one of {OUTPUT_LENGTHS}, got {output_length!r}")
        wave = torch.as_tensor(np.asarray(mixture), dtype=torch.float32)
        if wave.dim() == 2:
            wave = wave.mean(dim=1)
        if wave.dim() != 1 or wave.numel() == 0:
            raise ValueError(f"mixture must be a non-empty (N,) or (N, C) wave, got shape {tuple(wave.shape)}")
        if self.model.head.needs_query and query is None:
            raise ValueError("this model is query-conditioned: give a text, image or embedding query")
        emb = self.embed_query(query, query_kind) if self.model.head.needs_query else None
        resampled = self._resample(wave, fs, self.sample_rate).to(self.device)

        def separate_chunks(chunks: torch.Tensor) -> torch.Tensor:
            q = None if emb is None else emb.expand(chunks.shape[0], *emb.shape[1:])
            return self.model.separate(chunks, q)[0]

        est = overlap_add(separate_chunks, resampled, self.clip_samples, self.hop)
        length = wave.shape[0]
        if output_length == "istft":
            hop = self.model.frontend.hop_length
            est = est[..., : hop * (est.shape[-1] // hop)]
            length = est.shape[-1] * fs // self.sample_rate
        est = self._resample(est.cpu(), self.sample_rate, fs)[..., :length]
        est = torch.nn.functional.pad(est, (0, length - est.shape[-1]))
        out = est.numpy()
        return out[0] if out.shape[0] == 1 else out

    @staticmethod
    def _resample(wave: torch.Tensor, orig: int, new: int) -> torch.Tensor:
        if orig == new:
            return wave
        import torchaudio.functional as AF

        return AF.resample(wave, orig, new)


def _read_wave(path: str) -> tuple:
    try:
        wave, fs = sf.read(path, dtype="float32", always_2d=False)
    except Exception as exc:  # soundfile raises several types for unreadable files
        raise ValueError(f"cannot read audio '{path}': {exc}") from exc
    return wave, fs


def inference(args: argparse.Namespace) -> None:
    """Separate every mixture of ``--mix_scp`` and write wavs + ``spk1.scp``."""
    sep = TextQueriedSeparation(
        args.train_config, args.model_file, device=args.device,
        query_encoder_conf=args.query_encoder_conf, text_prompt=args.text_prompt,
    )
    mixtures = read_scp(args.mix_scp)
    queries = QueryLists(args)
    queries.check_covers(list(mixtures))
    out_dir = Path(args.output_dir)
    wav_dir = out_dir / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    num_outputs = sep.model.head.num_outputs
    scps = [dict() for _ in range(num_outputs)]
    for key in tqdm(sorted(mixtures), desc="separate"):
        wave, fs = _read_wave(mixtures[key])
        kind, query = queries[key]
        est = sep(wave, fs, query, output_length=args.output_length, query_kind=kind)
        est = est.reshape(num_outputs, -1)
        for i in range(num_outputs):
            path = wav_dir / f"{key}_spk{i + 1}.wav"
            with atomic_path(path) as tmp:
                sf.write(tmp, est[i], fs, format="WAV", subtype="FLOAT")
            scps[i][key] = str(path.resolve())
    for i, scp in enumerate(scps):
        write_scp(out_dir / f"spk{i + 1}.scp", scp)
    logging.info(f"wrote {len(mixtures)} estimates to {out_dir}")


def get_parser() -> argparse.ArgumentParser:
    """Argument parser of the inference CLI."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_config", required=True)
    parser.add_argument("--model_file", required=True)
    parser.add_argument("--mix_scp", required=True, help="'uttid mixture.wav' list")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--output_length", default="input", choices=OUTPUT_LENGTHS,
                        help="input: as long as the mixture; istft: the samples a length-free inverse STFT "
                        "reconstructs (65,280 of a 65,535-sample clip), as the official evaluation scores them")
    add_query_arguments(parser, required=False)  # no query: the non-queried PIT baseline
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> None:
    """CLI entry point."""
    run_cli(get_parser(), inference, cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
