#!/usr/bin/env python3
"""Text-/image-to-audio with a trained CLIPSonic model (Python API and CLI).

Query paths of the one model: a text query is embedded by the frozen CLIP recorded in the
training config and either fed directly (**ZS**) or mapped to an image embedding by a
diffusion prior when one is given (**PD**); an image (or list of frames) is embedded by CLIP
(**IQ**); an array is used as the embedding itself. Mels are turned into audio by the
HiFi-GAN vocoder when given (its mel configuration must match), else by Griffin-Lim.

Python::

    from espnet2_clip.bin.clipsonic_inference import TextToAudio
    t2a = TextToAudio.from_pretrained("user/clipsonic_vggsound")  # HF repo id or local zip
    wave = t2a("dog barking", guidance_scale=3.0, num_steps=25, seed=0)  # (65535,) at 16 kHz

CLI::

    python -m espnet2_clip.bin.clipsonic_inference --train_config exp/x/config.yaml \\
        --model_file exp/x/valid.loss.best.pth --vocoder_config exp/voc/config.yaml \\
        --vocoder_file exp/voc/valid.generator_mel_loss.best.pth \\
        --query_text data/test/text --output_dir exp/x/gen_text
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm
from typeguard import typechecked

from espnet2_clip.query.embedder import QueryEmbedder, infer_query_kind
from espnet2_clip.query.inference_io import QueryLists, add_query_arguments, run_cli
from espnet2_clip.t2a.mel import GriffinLim, check_same_mel_conf, fit_length
from espnet2_clip.t2a.espnet_model import build_clipsonic_model
from espnet2_clip.utils.fileio import atomic_path, read_scp, write_scp
from espnet2_clip.utils.model_files import load_trained_model

Query = Union[str, np.ndarray, torch.Tensor, Any]  # text, embedding, or PIL image(s)
PathOrNone = Optional[Union[Path, str]]
MEL_MAX = 1.5


class TextToAudio:
    """Generate a clip of audio for a text, image or CLIP-embedding query."""

    @typechecked
    def __init__(
        self,
        train_config: Union[Path, str],
        model_file: PathOrNone = None,
        vocoder_config: PathOrNone = None,
        vocoder_file: PathOrNone = None,
        prior_config: PathOrNone = None,
        prior_file: PathOrNone = None,
        device: str = "cpu",
        query_encoder_conf: Optional[Dict] = None,
        text_prompt: Optional[str] = None,
        use_prior: Optional[bool] = None,
        griffin_lim_iters: int = 32,
        prior_steps: Optional[int] = None,
        num_samples: Optional[int] = None,
    ):
        """Initialize TextToAudio.

        Args:
            train_config: config.yaml written by ``clipsonic_train``.
            model_file: Model parameters (.pth).
            vocoder_config: Vocoder config.yaml (default: the training config's
                ``vocoder_config``; None there too: Griffin-Lim).
            vocoder_file: Vocoder parameters (.pth).
            prior_config: The diffusion prior (default: the training config's ``prior_config``):
                a trained prior's config.yaml, or the published LAION prior (``"laion"``,
                ``"hf-hub:<repo>"``, a directory or a prior_config.json; needs the OpenAI ViT-L/14
                CLIP the model was trained with). With a prior, text queries are PD, else ZS.
            prior_file: A trained prior's parameters (default: ``prior.pth`` next to its config).
            device: "cpu" or "cuda".
            query_encoder_conf: Overrides of the recorded CLIP options (e.g. local weights).
            text_prompt: "single", "ensemble" or "none" (default: the training config's).
            use_prior: False ignores a prior recorded in the config (ZS); True requires one.
            griffin_lim_iters: Griffin-Lim iterations of the fallback vocoder.
            prior_steps: Sampling steps of the prior (default: 25 for a trained prior, the
                ``sample_timesteps`` of a LAION prior's config).
            num_samples: Length of the generated clips (default: the training clip length;
                the U-Net is convolutional, so it may differ, e.g. train on 1 s, generate 4.1 s).
        """
        self.model, self.train_args = load_trained_model(build_clipsonic_model, train_config, model_file, device)
        self.model.eval()
        self.device = device
        self.mel_conf = self.model.mel.mel_conf()
        self.sample_rate = int(self.mel_conf["fs"])
        self.clip_samples = int(num_samples or self.train_args.clip_samples)
        if self.clip_samples < int(self.mel_conf["n_fft"]):
            raise ValueError(f"num_samples must be >= n_fft ({self.mel_conf['n_fft']}), got {self.clip_samples}")
        self.num_frames = self.model.mel.num_frames(self.clip_samples)
        self.embedder = QueryEmbedder(
            self.train_args.query_encoder,
            dict(self.train_args.query_encoder_conf or {}, **(query_encoder_conf or {})),
            text_prompt or getattr(self.train_args, "text_prompt", "single"),
            device,
        )
        self.prior_steps = prior_steps

        vocoder_config = vocoder_config or getattr(self.train_args, "vocoder_config", None)
        vocoder_file = vocoder_file or (getattr(self.train_args, "vocoder_file", None) if vocoder_config else None)
        if vocoder_config:
            from espnet2_clip.t2a.vocoder import load_vocoder

            self.vocoder = load_vocoder(vocoder_config, vocoder_file, device)
            check_same_mel_conf(self.mel_conf, self.vocoder.mel.mel_conf(), "vocoder")
        else:
            self.vocoder = None
            self.griffin_lim = GriffinLim(self.model.mel, n_iter=griffin_lim_iters)

        if use_prior is False:
            prior_config = None
        elif not prior_config:  # the recorded prior (its file goes with it, not with a prior given here)
            prior_config = getattr(self.train_args, "prior_config", None)
            prior_file = prior_file or (getattr(self.train_args, "prior_file", None) if prior_config else None)
        if use_prior and not prior_config:
            raise ValueError("use_prior=True but no prior_config is given or recorded")
        self.prior = None
        if prior_config:
            from espnet2_clip.t2a.prior import load_prior

            self.prior = load_prior(prior_config, prior_file, device)
            if self.prior.embed_dim != self.model.cond_dim:
                clip = (self.train_args.query_encoder_conf or {}).get("model_name", self.train_args.query_encoder)
                raise ValueError(
                    f"the prior works on {self.prior.embed_dim}-dim CLIP embeddings but the model is "
                    f"conditioned on {self.model.cond_dim}-dim ones of CLIP '{clip}': use a prior trained for "
                    "the same CLIP (the LAION prior needs OpenAI ViT-L/14)"
                )

    @staticmethod
    def from_pretrained(model_tag: Optional[str] = None, cachedir: Optional[str] = None, **kwargs) -> "TextToAudio":
        """Build from a packed model: a Hugging Face repo id or a local zip (espnet_model_zoo).

        The zip is made by ``python -m espnet2.bin.pack tts --train_config ... --model_file ...``
        with the vocoder / prior files as ``--option`` and their paths written in the
        training config (``vocoder_config`` ...), which unpacking rewrites.
        """
        if model_tag is None:
            return TextToAudio(**kwargs)
        from espnet_model_zoo.downloader import ModelDownloader

        downloader = ModelDownloader(cachedir) if cachedir else ModelDownloader()
        files = downloader.download_and_unpack(model_tag)
        return TextToAudio(train_config=files["train_config"], model_file=files["model_file"], **kwargs)

    @property
    def variant(self) -> str:
        """"PD" when text queries go through the prior, else "ZS"."""
        return "PD" if self.prior is not None else "ZS"

    @property
    def query_encoder(self):
        """The frozen CLIP the training config records, built on first use."""
        return self.embedder.encoder

    def embed_query(self, query: Query, generator: Optional[torch.Generator] = None,
                    query_kind: Optional[str] = None) -> torch.Tensor:
        """(1, D) condition of a "text" (ZS, or PD through the prior), "frames" (IQ: the mean image
        embedding) or "embedding" query (default kind: inferred from the Python type)."""
        if query is None:
            raise ValueError("empty query: give a text, an image or a CLIP embedding")
        kind = query_kind or infer_query_kind(query)
        if kind == "text" and self.prior is not None and self.prior.uses_text_encodings:
            emb, encodings = self._text_tokens(query)  # one CLIP pass gives both conditions of the prior
            return self.prior.sample(emb, num_steps=self.prior_steps, generator=generator, text_encodings=encodings)
        emb = self.embedder(kind, query)
        if kind == "embedding" and (not emb.is_floating_point() or emb.shape[-1] != self.model.cond_dim):
            raise ValueError(f"query embedding must be ({self.model.cond_dim},) floats (or per-frame "
                             f"(n_frames, {self.model.cond_dim})), got {tuple(np.shape(query))}")
        if kind == "text" and self.prior is not None:
            emb = self.prior.sample(emb, num_steps=self.prior_steps, generator=generator)
        return emb

    def _text_tokens(self, text: str):
        """Pooled embedding and token encodings of a text query for a prior that attends to tokens:
        one prompt (the first of the model's templates)."""
        from espnet2_clip.query.clip_encoder import get_templates

        encoder = self.query_encoder
        if not hasattr(encoder, "encode_text_tokens"):
            raise ValueError(f"this prior needs CLIP token encodings; query encoder "
                             f"'{self.train_args.query_encoder}' has none")
        emb, enc = encoder.encode_text_tokens([get_templates(self.embedder.text_prompt)[0].format(text)])
        return emb.to(self.device), enc.to(self.device)

    @torch.no_grad()
    def generate_mels(self, queries: Sequence[Query], guidance_scale: float = 3.0, num_steps: int = 25,
                      seeds: Optional[Sequence[Optional[int]]] = None,
                      query_kinds: Optional[Sequence[Optional[str]]] = None) -> torch.Tensor:
        """(B, n_mels, T) normalised mels for B queries sampled as one batch.

        Item i's prior sample and initial noise come from its own generator seeded with
        ``seeds[i]``, so an item does not depend on what it is batched with. ``query_kinds[i]``:
        "text", "frames" or "embedding" (default: inferred).
        """
        return self.sweep_mels(queries, [guidance_scale], num_steps, seeds, query_kinds)[0]

    @torch.no_grad()
    def sweep_mels(self, queries: Sequence[Query], guidance_scales: Sequence[float], num_steps: int = 25,
                   seeds: Optional[Sequence[Optional[int]]] = None,
                   query_kinds: Optional[Sequence[Optional[str]]] = None) -> torch.Tensor:
        """(S, B, n_mels, T) normalised mels of B queries at each of S guidance scales, in one batch.

        Each query is embedded once (one prior sample for PD) and starts from the same noise at
        every scale, so the scales differ only by guidance; the U-Net runs on S x B items per step.
        Seeds and kinds as in :meth:`generate_mels`.
        """
        from espnet2_clip.t2a.diffusion import check_sampling_args

        scales = [float(w) for w in guidance_scales]
        if not scales:
            raise ValueError("no guidance scales given")
        for w in scales:
            check_sampling_args(w, num_steps, self.model.num_train_timesteps)
        if len(queries) == 0:
            raise ValueError("no queries given")
        seeds = [None] * len(queries) if seeds is None else list(seeds)
        if len(seeds) != len(queries):
            raise ValueError(f"{len(queries)} queries but {len(seeds)} seeds")
        kinds = [None] * len(queries) if query_kinds is None else list(query_kinds)
        embs, noise = [], []
        for query, seed, kind in zip(queries, seeds, kinds):
            gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
            embs.append(self.embed_query(query, gen, kind))
            noise.append(torch.randn((1, 1, self.model.mel.n_mels, self.num_frames), generator=gen))
        num = len(scales)
        emb, noise = torch.cat(embs), torch.cat(noise)
        per_item = scales[0] if num == 1 else [w for w in scales for _ in queries]
        mels = self.model.sample(emb.repeat(num, 1), self.num_frames, per_item, num_steps,
                                 noise=noise.repeat(num, 1, 1, 1))
        return mels.view(num, len(queries), *mels.shape[1:])

    def generate_mel(self, query: Query, guidance_scale: float = 3.0, num_steps: int = 25,
                     seed: Optional[int] = None, query_kind: Optional[str] = None) -> torch.Tensor:
        """(n_mels, T) normalised mel for one query."""
        return self.generate_mels([query], guidance_scale, num_steps, [seed], [query_kind])[0]

    @torch.no_grad()
    def mel_to_wave(self, mel: torch.Tensor) -> np.ndarray:
        """(n_mels, T) normalised mel -> (clip_samples,) wave.

        The mel is first clamped to ``[-1, MEL_MAX]`` (the floor, and a quarter of the range above a
        full-scale sine): values outside never occur in training and would overflow.
        """
        mel = mel.clamp(-1.0, MEL_MAX)
        if self.vocoder is not None:
            wave = self.vocoder.inference(mel.to(self.device)).cpu().numpy()
        else:
            wave = self.griffin_lim(mel, length=self.clip_samples).numpy()
        return fit_length(np.asarray(wave, dtype=np.float32), self.clip_samples)

    def generate(self, queries: Sequence[Query], guidance_scale: float = 3.0, num_steps: int = 25,
                 seeds: Optional[Sequence[Optional[int]]] = None,
                 query_kinds: Optional[Sequence[Optional[str]]] = None) -> List[np.ndarray]:
        """Batched :meth:`__call__`: one (clip_samples,) wave per query (``seeds[i]`` for item i)."""
        mels = self.generate_mels(queries, guidance_scale, num_steps, seeds, query_kinds)
        return [self.mel_to_wave(mel) for mel in mels]

    def __call__(self, query: Query, guidance_scale: float = 3.0, num_steps: int = 25,
                 seed: Optional[int] = None, query_kind: Optional[str] = None) -> np.ndarray:
        """Generate.

        Args:
            query: Text (ZS, or PD with a prior), PIL image / list of frames (IQ), or a CLIP
                embedding (D,) / (n_frames, D).
            guidance_scale: Classifier-free guidance w >= 0 (1: none; eps_u + w (eps_c - eps_u)).
            num_steps: DDIM steps (>= 1).
            seed: Seed of the sampler noise (and the prior); None: random.
            query_kind: "text", "frames" or "embedding" (default: inferred from the Python type).

        Returns:
            (clip_samples,) float32 wave at ``sample_rate`` (16 kHz by default).
        """
        return self.mel_to_wave(self.generate_mel(query, guidance_scale, num_steps, seed, query_kind))


def output_dirs(output_dir: str, guidance_scales: Sequence[str]) -> Dict[str, Path]:
    """The output directory of each guidance scale: ``output_dir`` with ``{w}`` replaced by the scale
    as written (required when several scales are generated in one pass)."""
    if len(guidance_scales) > 1 and "{w}" not in output_dir:
        raise ValueError(f"--output_dir must contain '{{w}}' when several guidance scales are given "
                         f"({' '.join(guidance_scales)}), got '{output_dir}'")
    for w in guidance_scales:
        try:
            float(w)
        except ValueError:
            raise ValueError(f"--guidance_scale: '{w}' is not a number") from None
    dirs = {w: Path(output_dir.replace("{w}", w)) for w in guidance_scales}
    if len(set(dirs.values())) != len(dirs):
        raise ValueError(f"--guidance_scale lists a scale twice: {' '.join(guidance_scales)}")
    return dirs


def selected_keys(keys: Sequence[str], key_file: Optional[str], option: str) -> List[str]:
    """The ids of ``--key_file`` (one per line, first field), all in the query list; all ids without one."""
    if not key_file:
        return list(keys)
    wanted = list(read_scp(key_file, allow_empty_value=True))
    unknown = sorted(set(wanted) - set(keys))
    if unknown:
        raise ValueError(f"--key_file {key_file}: {len(unknown)} ids are not in {option}, e.g. {unknown[:5]}")
    return sorted(wanted)


def inference(args: argparse.Namespace) -> None:
    """Generate one clip per query and guidance scale: ``<output_dir>/wav/<id>.wav`` + ``wav.scp``."""
    dirs = output_dirs(args.output_dir, args.guidance_scale)
    if args.batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1, got {args.batch_size}")
    queries = QueryLists(args)
    table = queries.table
    if not table:
        raise ValueError(f"the query list is empty ({queries.option})")
    all_keys = sorted(table)
    keys = selected_keys(all_keys, args.key_file, queries.option)
    seed_of = {key: args.seed + i for i, key in enumerate(all_keys)}  # a query's seed: its place in the whole list
    t2a = TextToAudio(
        args.train_config, args.model_file, vocoder_config=args.vocoder_config, vocoder_file=args.vocoder_file,
        prior_config=args.prior_config, prior_file=args.prior_file, device=args.device,
        query_encoder_conf=args.query_encoder_conf, text_prompt=args.text_prompt,
        use_prior=False if args.no_prior else None, num_samples=args.num_samples,
    )
    for out_dir in dirs.values():
        (out_dir / "wav").mkdir(parents=True, exist_ok=True)
    logging.info(f"{len(keys)} queries x {len(dirs)} guidance scales; text queries: {t2a.variant}; "
                 f"vocoder: {'HiFi-GAN' if t2a.vocoder is not None else 'Griffin-Lim'}")
    scps: Dict[str, Dict[str, str]] = {w: {} for w in dirs}
    peaks: Dict[str, List[float]] = {w: [] for w in dirs}
    for start in tqdm(range(0, len(keys), args.batch_size), desc="generate"):
        batch = keys[start : start + args.batch_size]
        kinds, items = zip(*(queries[key] for key in batch))
        mels = t2a.sweep_mels(list(items), [float(w) for w in dirs], num_steps=args.num_steps,
                              seeds=[seed_of[key] for key in batch], query_kinds=list(kinds))
        for w, scale_mels in zip(dirs, mels):
            for key, mel in zip(batch, scale_mels):
                path = dirs[w] / "wav" / f"{key}.wav"
                wave = t2a.mel_to_wave(mel)
                peaks[w].append(float(np.abs(wave).max(initial=0.0)))
                with atomic_path(path) as tmp:
                    sf.write(tmp, wave, t2a.sample_rate, format="WAV", subtype="FLOAT")
                scps[w][key] = str(path.resolve())
    for w, out_dir in dirs.items():
        write_scp(out_dir / "wav.scp", scps[w])
        logging.info(f"wrote {len(scps[w])} clips to {out_dir}")
        loud = [p for p in peaks[w] if p > 1.0]
        if loud:
            logging.warning(f"w = {w}: {len(loud)} of {len(peaks[w])} clips in {out_dir} peak above full scale "
                            f"(highest {max(loud):.2f}; guidance raises the level): the float WAVs keep them whole, "
                            "but players and 16-bit conversion clip them; scale them before listening")


def get_parser() -> argparse.ArgumentParser:
    """Argument parser of the generation CLI."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_config", required=True)
    parser.add_argument("--model_file", required=True)
    parser.add_argument("--vocoder_config", default=None, help="HiFi-GAN config.yaml (default: Griffin-Lim)")
    parser.add_argument("--vocoder_file", default=None)
    parser.add_argument("--prior_config", default=None,
                        help="Diffusion prior (text queries -> PD): a trained prior's config.yaml, or the LAION "
                             "prior: 'laion', 'hf-hub:<repo>', a directory or a prior_config.json")
    parser.add_argument("--prior_file", default=None)
    parser.add_argument("--no_prior", action="store_true", help="Ignore a prior recorded in the config (ZS)")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--guidance_scale", nargs="+", default=["3"], metavar="W",
                        help="CFG scale(s) w >= 0 (1: no guidance); several are sampled in one pass, each into "
                             "--output_dir with '{w}' replaced by the scale as written")
    parser.add_argument("--num_steps", type=int, default=25, help="DDIM steps")
    parser.add_argument("--num_samples", type=int, default=None,
                        help="Clip length in samples (default: the training clip length)")
    parser.add_argument("--seed", type=int, default=0,
                        help="Seed of the first query in sorted id order (then +1 per query)")
    parser.add_argument("--key_file", default=None,
                        help="Generate only these query ids (one per line; a job's part of the list): the "
                             "seeds stay those of the whole list, so the parts add up to one run's output")
    parser.add_argument("--batch_size", type=int, default=1,
                        help="Queries sampled together (results do not depend on it beyond float rounding)")
    add_query_arguments(parser, required=True)
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> None:
    """CLI entry point."""
    run_cli(get_parser(), inference, cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
