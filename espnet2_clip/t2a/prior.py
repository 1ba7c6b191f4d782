"""Diffusion prior: CLIP text embedding -> CLIP image embedding (CLIPSonic-PD).

Our small stand-in for the DALL-E 2 prior that CLIPSonic-PD uses (clipsonic.md §2.2), trained
here on (caption, image) pairs with the same diffusers schedulers as the audio model:

* works on unit-norm embeddings scaled by ``sqrt(D)`` (unit variance per entry);
* x0-prediction (``prediction_type="sample"``, like the LAION prior), cosine β schedule,
  1000 training steps, DDIM sampling;
* denoiser: an MLP over ``[x_t, text, timestep embedding]`` with pre-norm residual blocks;
* condition dropout (learned null text embedding) for optional guidance (default w = 1);
* sampling draws ``num_candidates`` (2) image embeddings per text and keeps the one with
  the highest cosine similarity to the text; the output is L2-normalised.
"""

from pathlib import Path
from typing import Dict, Optional, Union

import torch
import yaml
from typeguard import typechecked

from espnet2_clip.t2a.abs_prior import AbsPrior
from espnet2_clip.t2a.diffusion import cfg_combine, check_sampling_args, ddim_sample, l2_normalize, training_scheduler
from espnet2_clip.t2a.unet import timestep_embedding


class _Block(torch.nn.Module):
    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.LayerNorm(dim), torch.nn.Linear(dim, 2 * dim), torch.nn.SiLU(),
            torch.nn.Dropout(dropout), torch.nn.Linear(2 * dim, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class DiffusionPrior(AbsPrior):
    """x0-predicting diffusion model over CLIP image embeddings given a CLIP text embedding
    (the ``trained`` prior: the pooled text embedding only, no token encodings)."""

    @typechecked
    def __init__(
        self,
        embed_dim: int = 512,
        hidden_dim: int = 512,
        num_layers: int = 4,
        time_dim: int = 128,
        dropout: float = 0.0,
        cond_drop_prob: float = 0.1,
        num_candidates: int = 2,
        schedule_conf: Optional[Dict] = None,
    ):
        """Initialize DiffusionPrior.

        Args:
            embed_dim: CLIP embedding size D (text and image).
            hidden_dim: Width of the MLP.
            num_layers: Residual blocks.
            time_dim: Sinusoidal timestep embedding size.
            dropout: Dropout in the blocks.
            cond_drop_prob: Probability of training with the null text embedding.
            num_candidates: Samples drawn per text; the one closest to the text is kept.
            schedule_conf: diffusers DDPM schedule (default: 1000 steps, squaredcos_cap_v2).
        """
        super().__init__()
        self._embed_dim = embed_dim
        if num_candidates < 1:
            raise ValueError(f"num_candidates must be >= 1, got {num_candidates}")
        self.time_dim = time_dim
        self.cond_drop_prob = cond_drop_prob
        self.num_candidates = num_candidates
        default_schedule = dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
        self.schedule_conf = dict(default_schedule, **(schedule_conf or {}))
        self.null_text = torch.nn.Parameter(torch.zeros(embed_dim))
        self.input = torch.nn.Linear(2 * embed_dim + time_dim, hidden_dim)
        self.blocks = torch.nn.Sequential(*[_Block(hidden_dim, dropout) for _ in range(num_layers)])
        self.output = torch.nn.Sequential(torch.nn.LayerNorm(hidden_dim), torch.nn.Linear(hidden_dim, embed_dim))
        self._train_sched = training_scheduler(self.schedule_conf, prediction_type="sample")

    @property
    def embed_dim(self) -> int:
        return self._embed_dim

    @property
    def scale(self) -> float:
        return self.embed_dim ** 0.5

    def _check(self, emb: torch.Tensor, what: str) -> torch.Tensor:
        if emb.dim() != 2 or emb.shape[-1] != self.embed_dim:
            raise ValueError(
                f"this prior works on {self.embed_dim}-dim CLIP embeddings; got {what} of shape "
                f"{tuple(emb.shape)} (a prior for another CLIP model?)"
            )
        return l2_normalize(emb.float()) * self.scale

    def denoise(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Predict the clean (scaled) image embedding from ``x`` at step ``t`` given ``text``."""
        h = torch.cat([x, text, timestep_embedding(t, self.time_dim)], dim=-1)
        return self.output(self.blocks(self.input(h)))

    def forward(self, text_emb: torch.Tensor, image_emb: torch.Tensor,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """MSE loss on x0 for (B, D) text / image embedding pairs (raw; normalised here)."""
        text, x0 = self._check(text_emb, "text embeddings"), self._check(image_emb, "image embeddings")
        drop = torch.rand(text.shape[0], generator=generator).to(text.device) < self.cond_drop_prob
        text = torch.where(drop[:, None], self.null_text.expand_as(text), text)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        t = torch.randint(0, int(self.schedule_conf["num_train_timesteps"]), (x0.shape[0],), generator=generator)
        t = t.to(x0.device)
        xt = self._train_sched.add_noise(x0, noise, t)
        return torch.nn.functional.mse_loss(self.denoise(xt, t, text), x0)

    @torch.no_grad()
    def sample(
        self,
        text_emb: torch.Tensor,
        num_steps: Optional[int] = None,
        guidance_scale: float = 1.0,
        generator: Optional[torch.Generator] = None,
        *,
        text_encodings: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """(B, D) text embeddings -> (B, D) unit-norm image embeddings (DDIM, default 25 steps;
        ``text_encodings`` are not used by this prior)."""
        num_steps = 25 if num_steps is None else num_steps
        check_sampling_args(guidance_scale, num_steps, int(self.schedule_conf["num_train_timesteps"]))
        device = self.null_text.device
        text = self._check(text_emb.to(device), "text embeddings")
        k = self.num_candidates
        text_k = text.repeat_interleave(k, dim=0)
        null = self.null_text.expand_as(text_k)

        def denoise(x, t):
            cond = self.denoise(x, t, text_k)
            if guidance_scale == 1.0:
                return cond
            return cfg_combine(self.denoise(x, t, null), cond, guidance_scale)

        x = ddim_sample(denoise, tuple(text_k.shape), self.schedule_conf, num_steps, generator=generator,
                        device=device, prediction_type="sample")
        cand = l2_normalize(x).view(text.shape[0], k, -1)
        best = (cand * l2_normalize(text)[:, None]).sum(-1).argmax(dim=1)
        return cand[torch.arange(text.shape[0], device=device), best]

    # ------------------------------------------------------------------ files
    def config(self) -> Dict:
        """Constructor arguments (what :func:`load_prior` needs)."""
        return dict(embed_dim=self.embed_dim, hidden_dim=self.input.out_features, num_layers=len(self.blocks),
                    time_dim=self.time_dim, cond_drop_prob=self.cond_drop_prob,
                    num_candidates=self.num_candidates, schedule_conf=dict(self.schedule_conf))


def save_prior(prior: DiffusionPrior, output_dir: Union[str, Path], extra: Optional[Dict] = None) -> Dict[str, Path]:
    """Write ``config.yaml`` (``prior_conf`` + ``extra``) and ``prior.pth``; return both paths."""
    from espnet2_clip.utils.fileio import atomic_path, write_text_atomic

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_file = out / "prior.pth"
    with atomic_path(model_file) as tmp:
        torch.save(prior.state_dict(), tmp)
    config = out / "config.yaml"
    write_text_atomic(config, yaml.safe_dump(dict(prior_conf=prior.config(), **(extra or {}))))
    return {"prior_config": config, "prior_file": model_file}


def is_laion_source(source: Union[str, Path]) -> bool:
    """Whether ``source`` names the published LAION prior: ``laion``, ``hf-hub:<repo>``, a
    prior_config.json, or a directory holding one (directly or under ``prior/``)."""
    s, path = str(source), Path(source)
    if s == "laion" or s.startswith("hf-hub:") or path.suffix == ".json":
        return True
    return path.is_dir() and any((path / sub / "prior_config.json").is_file() for sub in (".", "prior"))


def load_prior(config: Union[str, Path], model_file: Optional[Union[str, Path]] = None,
               device: str = "cpu") -> AbsPrior:
    """Build a prior: the ``trained`` one from ``config.yaml`` (+ ``prior.pth``; default: next to the
    config), or the published LAION prior when :func:`is_laion_source` (``model_file``: its best.pth)."""
    if is_laion_source(config):
        from espnet2_clip.t2a.laion_prior import load_laion_prior

        if model_file is not None:
            raise ValueError(f"the LAION prior's checkpoint is best.pth next to its prior_config.json; "
                             f"got prior_file {model_file}")
        return load_laion_prior(str(config), device)
    config = Path(config)
    if not config.is_file():
        raise FileNotFoundError(f"prior config not found: {config}")
    conf = yaml.safe_load(config.read_text())
    if not isinstance(conf, dict) or "prior_conf" not in conf:
        raise ValueError(f"{config}: not a prior config (no 'prior_conf')")
    prior = DiffusionPrior(**conf["prior_conf"])
    model_file = Path(model_file) if model_file else config.parent / "prior.pth"
    prior.load_state_dict(torch.load(model_file, map_location="cpu"))
    return prior.to(device).eval()
