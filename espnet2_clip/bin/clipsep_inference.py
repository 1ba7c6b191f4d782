#!/usr/bin/env python3
"""Text-/image-queried separation with a trained CLIPSep model (Python API and CLI).

Python::

    from espnet2_clip.bin.clipsep_inference import TextQueriedSeparation
    sep = TextQueriedSeparation.from_pretrained("user/clipsep_nit_music")  # HF repo or local zip
    violin = sep(mixture, fs=44100, query="violin")  # (N,) at fs

CLI::

    python -m espnet2_clip.bin.clipsep_inference --train_config exp/x/config.yaml \\
        --model_file exp/x/valid.loss.best.pth --mix_scp data/test/wav.scp \\
        --query_text data/test/text --output_dir exp/x/decode_text

Several sets (e.g. each test set with text and with image queries) in one call, one model load: give
``--decode_sets FILE`` whose lines each read ``--mix_scp LIST --output_dir DIR --query_text LIST``.
"""

import argparse
import dataclasses
import functools
import logging
import shlex
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm
from typeguard import typechecked

from espnet2_clip.query.embedder import QueryEmbedder, infer_query_kind
from espnet2_clip.query.inference_io import QueryLists, add_query_arguments, add_query_list_arguments, run_cli
from espnet2_clip.sep.build import build_clipsep_model
from espnet2_clip.utils.chunking import overlap_add
from espnet2_clip.utils.fileio import OWN_OUTPUT_DIR_HELP, atomic_path, read_scp, remove_stale_temps, write_scp
from espnet2_clip.utils.model_files import load_trained_model
from espnet2_clip.utils.precision import set_backbone_precision

Query = Union[str, np.ndarray, torch.Tensor, Any]  # text, embedding, or PIL image(s)
OUTPUT_LENGTHS = ("input", "istft")


def is_query_batch(query: Any, query_kind: Optional[str]) -> bool:
    """Whether ``query`` is a list of queries (one batch) rather than one query that is a list: the
    frames of one image query (a list of images; a batch of frame queries is a list of such lists)."""
    if not isinstance(query, list):
        return False
    if query_kind == "frames":
        return all(isinstance(item, (list, tuple)) for item in query)
    if query_kind is None:  # texts, embeddings or frame lists batch; a list of images is one query
        return all(isinstance(item, (str, list, tuple, np.ndarray, torch.Tensor)) for item in query)
    return True


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
        precision: str = "fp32",
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
            precision: "fp32", or "bf16": the backbone in bfloat16 (several times faster on CPUs
                with AMX / AVX512-BF16; masks differ by ~0.2 %).
        """
        self.model, self.train_args = load_trained_model(build_clipsep_model, train_config, model_file, device)
        set_backbone_precision(self.model.eval(), precision)
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
    def __call__(self, mixture: Union[np.ndarray, torch.Tensor, str, Path], fs: Optional[int] = None,
                 query: Optional[Union[Query, List[Query]]] = None, output_length: str = "input",
                 query_kind: Optional[str] = None, negative: Union[bool, Sequence[bool]] = False) -> np.ndarray:
        """Separate.

        The mask is computed once from the channels' mean and applied to each channel.

        Args:
            mixture: (N,) mono or (N, C) multi-channel wave, or the path of an audio file.
            fs: Sample rate of ``mixture`` (resampled to the model's rate and back); None for a path.
            query: Text, image(s), or an embedding; a list of them is separated as one batch;
                None only for the PIT baseline.
            output_length: "input": N samples; "istft": only the samples that an inverse STFT
                without a length reconstructs from the model's frames, ``hop * (N' // hop)`` at
                the model's rate N' (65,280 of a 65,535-sample clip), as the official evaluation
                scores them.
            query_kind: "text", "frames" or "embedding" (default: a string is text, an array or
                tensor an embedding, anything else images).
            negative: True: everything except the query (the complement of its mask); one flag
                per query for a list.

        Returns:
            (L,) estimate at ``fs`` ((L, C) for C channels); (Q, L[, C]) for a list of Q queries;
            (num_outputs, L[, C]) for non-queried models.
        """
        if output_length not in OUTPUT_LENGTHS:
            raise ValueError(f"output_length must be one of {OUTPUT_LENGTHS}, got {output_length!r}")
        if isinstance(mixture, (str, Path)):
            from espnet2_clip.utils.audio_io import AudioReader

            with AudioReader(mixture) as reader:
                wave, fs = torch.from_numpy(reader.read_all()), reader.samplerate
            multichannel = wave.shape[0] > 1
        else:
            wave = torch.as_tensor(np.asarray(mixture), dtype=torch.float32)
            if wave.dim() not in (1, 2) or wave.numel() == 0:
                raise ValueError(f"mixture must be a non-empty (N,) or (N, C) wave, got shape {tuple(wave.shape)}")
            multichannel = wave.dim() == 2
            wave = wave.T if multichannel else wave[None]  # (C, N)
        if fs is None:
            raise ValueError("fs (the sample rate of the mixture) is required for an array input")
        batched = is_query_batch(query, query_kind)
        queries = query if batched else [query]
        negatives = list(negative) if isinstance(negative, (list, tuple)) else [bool(negative)] * len(queries)
        embs = self.embed_queries(queries, query_kind)
        est = self.separate_wave(wave, fs, embs, negatives, output_length)  # (K, C, L)
        out = est.permute(0, 2, 1).numpy() if multichannel else est[:, 0].numpy()
        return out if batched or out.shape[0] > 1 else out[0]

    def embed_queries(self, queries: Sequence[Optional[Query]], query_kind: Optional[str] = None
                      ) -> Optional[torch.Tensor]:
        """(Q, ...) model queries of Q queries; None for non-queried models."""
        if not self.model.head.needs_query:
            return None
        if not queries or any(q is None for q in queries):
            raise ValueError("this model is query-conditioned: give a text, image or embedding query")
        return torch.cat([self.embed_query(q, query_kind) for q in queries])

    def separate_wave(self, wave: torch.Tensor, fs: int, embs: Optional[torch.Tensor],
                      negatives: Sequence[bool] = (), output_length: str = "input") -> torch.Tensor:
        """(C, N) wave at ``fs`` -> (K, C, L) estimates at ``fs`` (K: queries, or the model's outputs)."""
        resampled = self._resample(wave, fs, self.sample_rate).to(self.device)
        num_channels = wave.shape[0]

        def separate_chunks(chunks: torch.Tensor) -> torch.Tensor:
            return self.separate_windows(chunks, embs, negatives).flatten(1, 2)

        est = overlap_add(separate_chunks, resampled, self.clip_samples, self.hop)  # (K * C, N')
        length = wave.shape[-1]
        if output_length == "istft":
            hop = self.model.frontend.hop_length
            est = est[..., : hop * (est.shape[-1] // hop)]
            length = est.shape[-1] * fs // self.sample_rate
        est = self._resample(est.cpu(), self.sample_rate, fs)[..., :length]
        est = torch.nn.functional.pad(est, (0, length - est.shape[-1]))
        return est.reshape(-1, num_channels, length)

    def separate_windows(self, chunks: torch.Tensor, embs: Optional[torch.Tensor],
                         negatives: Sequence[bool] = (), batch_size: int = 8) -> torch.Tensor:
        """Mask each channel with the masks of the channels' mean.

        Args:
            chunks: (W, C, window) windows.
            embs: (Q, ...) model queries, or None for non-queried models.
            negatives: Per query, whether to use the complement of its mask.
            batch_size: Windows run through the U-Net together.

        Returns:
            (W, K, C, window) estimates (K = Q, or the model's number of outputs).
        """
        outs = [self._separate_batch(chunks[i : i + batch_size], embs, negatives)
                for i in range(0, chunks.shape[0], batch_size)]
        return torch.cat(outs)

    def _separate_batch(self, chunks: torch.Tensor, embs: Optional[torch.Tensor],
                        negatives: Sequence[bool]) -> torch.Tensor:
        model, (num, channels, window) = self.model, chunks.shape
        spec = model.frontend.stft(chunks.mean(1))
        features = model.features(model.frontend.warp(spec.abs()))
        if embs is None:
            masks = model.head.masks(features, None)  # (W, num_outputs, F_warp, T)
        else:
            masks = torch.stack([model.head.masks(features, emb.expand(num, *emb.shape))[:, 0]
                                 for emb in embs], 1)
        linear = model.frontend.unwarp(masks.flatten(0, 1)).reshape(num, masks.shape[1], *spec.shape[1:])
        for k, neg in enumerate(negatives):
            if neg:
                linear[:, k] = 1.0 - linear[:, k]
        specs = spec[:, None] if channels == 1 else model.frontend.stft(chunks.flatten(0, 1)).reshape(
            num, channels, *spec.shape[1:])
        est = specs[:, None] * linear[:, :, None]  # (W, K, C, F, T)
        waves = model.frontend.istft(est.flatten(0, 2), length=window)
        return waves.reshape(num, linear.shape[1], channels, window)

    @torch.no_grad()
    def separate_file(self, path: Union[str, Path], outputs: Sequence[Union[str, Path]],
                      queries: Sequence[Optional[Query]] = (None,), negatives: Sequence[bool] = (),
                      query_kind: Optional[str] = None, segment_seconds: float = 60.0,
                      progress: bool = True) -> float:
        """Separate a recording of any length into files, streamed with bounded memory.

        Args:
            path: Audio file (or video with a soundtrack), any rate and channel count.
            outputs: One output path per query (.wav, .flac, .ogg), written at the input's rate
                and channel count, atomically.
            queries: The queries (separated as one batch); ``(None,)`` for non-queried models.
            negatives: Per query, whether to write everything except it.
            query_kind: Kind of every query (default: inferred).
            segment_seconds: Length of the segments read at once (they overlap by one clip).
            progress: Show a progress bar.

        Returns:
            The input's peak absolute sample (0 for an all-zero input: the outputs are silence).
        """
        from espnet2_clip.utils.audio_io import AudioReader, open_outputs
        from espnet2_clip.utils.chunking import stream_overlap_add

        embs = self.embed_queries(list(queries), query_kind)
        negatives = list(negatives) + [False] * (len(queries) - len(negatives))
        with AudioReader(path) as reader:
            fs, channels = reader.samplerate, reader.channels
            clip = -(-self.clip_samples * fs // self.sample_rate)
            segment = max(int(segment_seconds * fs), 4 * clip)
            peak = [0.0]

            def read(start: int, frames: int) -> torch.Tensor:
                block = reader.read(start, frames)
                peak[0] = max(peak[0], float(np.abs(block).max()))
                return torch.from_numpy(block)

            def process(block: torch.Tensor) -> torch.Tensor:
                return self.separate_wave(block, fs, embs, negatives).flatten(0, 1)  # (K * C, L)

            with open_outputs(outputs, fs, channels) as files, \
                    tqdm(total=reader.frames, unit="sample", unit_scale=True, desc="separate",
                         disable=None if progress else True) as bar:  # None: off without a TTY
                for piece in stream_overlap_add(read, reader.frames, process, segment, clip):
                    piece = piece.reshape(-1, channels, piece.shape[-1]).numpy()
                    if piece.shape[0] != len(files):
                        raise ValueError(f"the model gives {piece.shape[0]} outputs but {len(files)} paths were given")
                    for handle, est in zip(files, piece):
                        handle.write(est.T)
                    bar.update(piece.shape[-1])
        return peak[0]

    @staticmethod
    def _resample(wave: torch.Tensor, orig: int, new: int) -> torch.Tensor:
        return wave if orig == new else _resampler(orig, new)(wave)


@functools.lru_cache(maxsize=8)
def _resampler(orig: int, new: int) -> torch.nn.Module:
    """A resampler whose sinc kernel is computed once per rate pair (torchaudio's defaults)."""
    import torchaudio.transforms as AT

    return AT.Resample(orig, new)


def _read_wave(path: str) -> tuple:
    try:
        wave, fs = sf.read(path, dtype="float32", always_2d=False)
    except Exception as exc:  # soundfile raises several types for unreadable files
        raise ValueError(f"cannot read audio '{path}': {exc}") from exc
    return wave, fs


class _DecodeSetParser(argparse.ArgumentParser):
    """Parses one ``--decode_sets`` line; raises instead of exiting, so the error can name the line."""

    def error(self, message: str):
        raise ValueError(message)


def _decode_set_parser() -> argparse.ArgumentParser:
    parser = _DecodeSetParser(prog="decode set", add_help=False)
    parser.add_argument("--mix_scp", required=True)
    parser.add_argument("--output_dir", required=True)
    add_query_list_arguments(parser, required=False)
    return parser


@dataclasses.dataclass
class DecodeSet:
    """One list of mixtures to separate: ``{uttid: wav}``, their queries and where the estimates go."""

    mixtures: Dict[str, str]
    queries: QueryLists
    output_dir: Path

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "DecodeSet":
        mixtures = read_scp(args.mix_scp)
        queries = QueryLists(args)
        queries.check_covers(list(mixtures))
        return cls(mixtures, queries, Path(args.output_dir))


def decode_sets(args: argparse.Namespace) -> List[DecodeSet]:
    """The sets of one call: ``--mix_scp`` / ``--output_dir`` / a query list, or one per ``--decode_sets``
    line (each read and checked before any separation starts)."""
    single = args.mix_scp is not None or args.output_dir is not None
    if args.decode_sets is None:
        if args.mix_scp is None or args.output_dir is None:
            raise ValueError("give --mix_scp and --output_dir (one set), or --decode_sets (several)")
        return [DecodeSet.from_args(args)]
    if single or any(getattr(args, name) for name in ("query_text", "query_image", "query_embedding")):
        raise ValueError("--decode_sets lists every set's --mix_scp, --output_dir and query list: "
                         "give them on its lines, not on the command line")
    parser = _decode_set_parser()
    sets = []
    lines = Path(args.decode_sets).read_text(encoding="utf-8").splitlines()
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            sets.append(DecodeSet.from_args(parser.parse_args(shlex.split(line))))
        except (ValueError, OSError) as exc:
            raise ValueError(f"--decode_sets {args.decode_sets}, line {lineno}: {exc}") from None
    if not sets:
        raise ValueError(f"--decode_sets {args.decode_sets} lists no set")
    return sets


def separate_set(sep: "TextQueriedSeparation", decode: DecodeSet, output_length: str) -> None:
    """Separate every mixture of ``decode``; write ``<output_dir>/wav/<uttid>_spk<i>.wav`` + ``spk<i>.scp``."""
    wav_dir = decode.output_dir / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(decode.output_dir, wav_dir)  # a killed run's
    num_outputs = sep.model.head.num_outputs
    scps = [dict() for _ in range(num_outputs)]
    for key in tqdm(sorted(decode.mixtures), desc=f"separate -> {decode.output_dir}"):
        wave, fs = _read_wave(decode.mixtures[key])
        kind, query = decode.queries[key]
        est = sep(wave, fs, query, output_length=output_length, query_kind=kind)
        est = est.reshape(num_outputs, -1)
        for i in range(num_outputs):
            path = wav_dir / f"{key}_spk{i + 1}.wav"
            with atomic_path(path) as tmp:
                sf.write(tmp, est[i], fs, format="WAV", subtype="FLOAT")
            scps[i][key] = str(path.resolve())
    for i, scp in enumerate(scps):
        write_scp(decode.output_dir / f"spk{i + 1}.scp", scp)
    logging.info(f"wrote {len(decode.mixtures)} estimates to {decode.output_dir}")


def inference(args: argparse.Namespace) -> None:
    """Load the model once and separate every set (:func:`decode_sets`)."""
    sets = decode_sets(args)
    sep = TextQueriedSeparation(
        args.train_config, args.model_file, device=args.device,
        query_encoder_conf=args.query_encoder_conf, text_prompt=args.text_prompt,
    )
    for decode in sets:
        separate_set(sep, decode, args.output_length)


def get_parser() -> argparse.ArgumentParser:
    """Argument parser of the inference CLI."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_config", required=True)
    parser.add_argument("--model_file", required=True)
    parser.add_argument("--mix_scp", default=None, help="'uttid mixture.wav' list")
    parser.add_argument("--output_dir", default=None, help=OWN_OUTPUT_DIR_HELP)
    parser.add_argument("--decode_sets", default=None,
                        help="Several sets in one call (the model is loaded once): a file whose lines each hold "
                        "one set's options, '--mix_scp LIST --output_dir DIR [--query_text|--query_image|"
                        "--query_embedding LIST]' (instead of giving them on the command line)")
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
