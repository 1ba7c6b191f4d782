"""The published LAION DALL-E 2 prior (CLIPSonic-PD on real data), in our own module.

CLIPSonic-PD maps a CLIP text query to a CLIP image embedding with the diffusion prior that LAION
trained with lucidrains/DALLE2-pytorch on OpenAI ViT-L/14 embeddings (clipsonic.md §2.2):
``huggingface.co/laion/DALLE2-PyTorch``, files ``prior/best.pth`` and ``prior/prior_config.json``.

We do not depend on ``dalle2-pytorch``: its last release (1.15.6) requires ``open-clip-torch<3``
(we pin 3.3.0) and, installed without its dependencies, still needs 16 more unpinned packages to
import (kornia, x-clip, coca-pytorch, accelerate, ...). Instead this module rebuilds the prior's
network with the **same parameter names**, so the published state dict loads as it is, and
reimplements the sampling the reference describes:

* input tokens ``[text encodings (max_text_len), text embedding, timestep, noisy image embedding,
  learned query]`` through a causal transformer (pre-norm attention with one null key / value,
  cosine-similarity logits x 16, rotary embeddings on the first 32 head dimensions, a T5-style
  relative position bias; SwiGLU feed-forward, NormFormer norms); the last token predicts x0;
* padding text tokens and dropped conditions take learned null embeddings;
* a cosine β schedule; DDIM (η = 1, on ``alphas_cumprod_prev``) when fewer steps than the training
  steps are asked for, else ancestral DDPM; outputs divided by ``sqrt(D)``;
* ``num_candidates`` (2) samples per text; the one closest to the text embedding is kept, then
  renormalised to unit length (what the audio model is conditioned on).

The text condition is what ``OpenAIClipAdapter`` gives the prior: the L2-normalised pooled text
embedding and the per-token outputs of the text tower's final layer norm, zeroed after the end
token (:meth:`espnet2_clip.query.clip_encoder.CLIPQueryEncoder.encode_text_tokens`).
"""

import json
import logging
import math
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import torch
from typeguard import typechecked

from espnet2_clip.t2a.abs_prior import AbsPrior
from espnet2_clip.t2a.diffusion import l2_normalize

HUB_REPO = "laion/DALLE2-PyTorch"
HUB_FILES = ("prior/prior_config.json", "prior/best.pth")
#: The network options of ``prior_config.json``'s ``prior.net`` that we build (others are refused).
NET_OPTIONS = ("dim", "depth", "max_text_len", "num_timesteps", "num_time_embeds", "num_image_embeds",
               "num_text_embeds", "dim_head", "heads", "ff_mult", "norm_in", "norm_out", "attn_dropout",
               "ff_dropout", "final_proj", "normformer", "rotary_emb", "self_cond")
ROTARY_DIM = 32  # rotary embeddings cover min(32, dim_head) dimensions of each head


class PriorLayerNorm(torch.nn.Module):
    """Bias-free layer norm (``g`` only); ``stable`` divides by the row maximum first."""

    def __init__(self, dim: int, stable: bool = False):
        super().__init__()
        self.stable = stable
        self.g = torch.nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eps = 1e-5 if x.dtype == torch.float32 else 1e-3
        if self.stable:
            x = x / x.amax(dim=-1, keepdim=True).detach()
        var, mean = torch.var_mean(x, dim=-1, correction=0, keepdim=True)
        return (x - mean) * (var + eps).rsqrt() * self.g


class Rotary(torch.nn.Module):
    """Rotary position embedding of the first ``dim`` channels, pairs interleaved."""

    def __init__(self, dim: int):
        super().__init__()
        self.freqs = torch.nn.Parameter(1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim)),
                                        requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate (..., N, d) by position along N."""
        n, rot = x.shape[-2], 2 * self.freqs.shape[0]
        angles = torch.arange(n, device=x.device, dtype=self.freqs.dtype)[:, None] * self.freqs
        angles = angles.repeat_interleave(2, dim=-1)  # (N, rot): each frequency for a pair
        head, tail = x[..., :rot], x[..., rot:]
        pairs = head.unflatten(-1, (-1, 2))
        rotated_half = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        return torch.cat((head * angles.cos() + rotated_half * angles.sin(), tail), dim=-1)


class RelativePositionBias(torch.nn.Module):
    """T5-style bucketed bias of (query, key) distances; (heads, I, J)."""

    def __init__(self, heads: int, num_buckets: int = 32, max_distance: int = 128):
        super().__init__()
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.relative_attention_bias = torch.nn.Embedding(num_buckets, heads)

    def buckets(self, i: int, j: int, device) -> torch.Tensor:
        dist = (torch.arange(i, device=device)[:, None] - torch.arange(j, device=device)[None, :]).clamp(min=0)
        exact = self.num_buckets // 2
        far = exact + (torch.log(dist.float().clamp(min=1) / exact) / math.log(self.max_distance / exact)
                       * (self.num_buckets - exact)).long()
        return torch.where(dist < exact, dist, far.clamp(max=self.num_buckets - 1))

    def forward(self, i: int, j: int, device) -> torch.Tensor:
        return self.relative_attention_bias(self.buckets(i, j, device)).permute(2, 0, 1)


class CausalSelfAttention(torch.nn.Module):
    """Multi-query causal attention (one key / value head) with a learned null key / value."""

    def __init__(self, dim: int, dim_head: int, heads: int, dropout: float, rotary: Optional[Rotary],
                 cosine_sim_scale: float = 16.0):
        super().__init__()
        self.heads, self.scale = heads, cosine_sim_scale
        self.norm = PriorLayerNorm(dim)
        self.dropout = torch.nn.Dropout(dropout)
        self.null_kv = torch.nn.Parameter(torch.randn(2, dim_head))
        self.to_q = torch.nn.Linear(dim, dim_head * heads, bias=False)
        self.to_kv = torch.nn.Linear(dim, dim_head * 2, bias=False)
        self.rotary_emb = rotary
        self.to_out = torch.nn.Sequential(torch.nn.Linear(dim_head * heads, dim, bias=False), PriorLayerNorm(dim))

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        x = self.norm(x)
        q = self.to_q(x).unflatten(-1, (self.heads, -1)).transpose(1, 2)  # (B, H, N, d)
        k, v = self.to_kv(x).chunk(2, dim=-1)  # (B, N, d) each
        if self.rotary_emb is not None:
            q, k = self.rotary_emb(q), self.rotary_emb(k)
        null_k, null_v = (t.expand(b, 1, -1) for t in self.null_kv.unbind(0))
        k, v = torch.cat((null_k, k), dim=1), torch.cat((null_v, v), dim=1)
        sim = torch.einsum("bhid,bjd->bhij", l2_unit(q), l2_unit(k)) * self.scale + bias
        future = torch.ones(n, n + 1, dtype=torch.bool, device=x.device).triu(2)  # key 0 is the null key
        sim = sim.masked_fill(future, -torch.finfo(sim.dtype).max)
        attn = self.dropout(sim.softmax(dim=-1, dtype=torch.float32).to(sim.dtype))
        out = torch.einsum("bhij,bjd->bhid", attn, v)
        return self.to_out(out.transpose(1, 2).flatten(2))


def l2_unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=-1)


class SwiGLU(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = x.chunk(2, dim=-1)
        return x * torch.nn.functional.silu(gate)


def feed_forward(dim: int, mult: int, dropout: float, normformer: bool) -> torch.nn.Sequential:
    inner = int(mult * dim)
    return torch.nn.Sequential(
        PriorLayerNorm(dim), torch.nn.Linear(dim, 2 * inner, bias=False), SwiGLU(),
        PriorLayerNorm(inner) if normformer else torch.nn.Identity(), torch.nn.Dropout(dropout),
        torch.nn.Linear(inner, dim, bias=False),
    )


class CausalTransformer(torch.nn.Module):
    def __init__(self, dim: int, depth: int, dim_head: int, heads: int, ff_mult: int, norm_in: bool,
                 norm_out: bool, attn_dropout: float, ff_dropout: float, final_proj: bool, normformer: bool,
                 rotary_emb: bool):
        super().__init__()
        self.init_norm = PriorLayerNorm(dim) if norm_in else torch.nn.Identity()
        self.rel_pos_bias = RelativePositionBias(heads)
        rotary = Rotary(min(ROTARY_DIM, dim_head)) if rotary_emb else None  # one module shared by the layers
        self.layers = torch.nn.ModuleList(
            torch.nn.ModuleList([CausalSelfAttention(dim, dim_head, heads, attn_dropout, rotary),
                                 feed_forward(dim, ff_mult, ff_dropout, normformer)])
            for _ in range(depth)
        )
        self.norm = PriorLayerNorm(dim, stable=True) if norm_out else torch.nn.Identity()
        self.project_out = torch.nn.Linear(dim, dim, bias=False) if final_proj else torch.nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.init_norm(x)
        bias = self.rel_pos_bias(x.shape[1], x.shape[1] + 1, x.device)
        for attn, ff in self.layers:
            x = attn(x, bias) + x
            x = ff(x) + x
        return self.project_out(self.norm(x))


class LaionPriorNetwork(torch.nn.Module):
    """The denoiser: predicts the (scaled) clean image embedding from the noisy one.

    Parameter names follow ``DiffusionPriorNetwork`` of DALLE2-pytorch, so the published state dict
    (without its ``net.`` prefix) loads directly.
    """

    def __init__(self, dim: int, depth: int, num_timesteps: int, max_text_len: int = 256,
                 num_time_embeds: int = 1, num_image_embeds: int = 1, num_text_embeds: int = 1,
                 dim_head: int = 64, heads: int = 8, ff_mult: int = 4, norm_in: bool = False,
                 norm_out: bool = True, attn_dropout: float = 0.0, ff_dropout: float = 0.0,
                 final_proj: bool = True, normformer: bool = False, rotary_emb: bool = True):
        super().__init__()
        self.dim, self.max_text_len = dim, max_text_len
        self.counts = dict(text=num_text_embeds, time=num_time_embeds, image=num_image_embeds)
        self.to_text_embeds = self._expander(dim, num_text_embeds)
        self.to_time_embeds = torch.nn.Sequential(torch.nn.Embedding(num_timesteps, dim * num_time_embeds))
        self.to_image_embeds = self._expander(dim, num_image_embeds)
        self.learned_query = torch.nn.Parameter(torch.randn(dim))
        self.causal_transformer = CausalTransformer(dim, depth, dim_head, heads, ff_mult, norm_in, norm_out,
                                                    attn_dropout, ff_dropout, final_proj, normformer, rotary_emb)
        self.null_text_encodings = torch.nn.Parameter(torch.randn(1, max_text_len, dim))
        self.null_text_embeds = torch.nn.Parameter(torch.randn(1, num_text_embeds, dim))
        self.null_image_embed = torch.nn.Parameter(torch.randn(1, dim))

    @staticmethod
    def _expander(dim: int, n: int) -> torch.nn.Sequential:
        return torch.nn.Sequential(torch.nn.Linear(dim, dim * n) if n > 1 else torch.nn.Identity())

    def forward(self, image_embed: torch.Tensor, t: torch.Tensor, text_embed: torch.Tensor,
                text_encodings: torch.Tensor, keep_cond: bool = True) -> torch.Tensor:
        """(B, D) noisy image embedding at steps t (B,), given (B, D) text embeddings and (B, L, D)
        token encodings (zero rows: padding) -> (B, D); ``keep_cond=False``: the null conditions."""
        b, d = image_embed.shape
        text = self.to_text_embeds(text_embed).view(b, self.counts["text"], d)
        image = self.to_image_embeds(image_embed).view(b, self.counts["image"], d)
        time = self.to_time_embeds(t).view(b, self.counts["time"], d)
        enc = text_encodings[:, : self.max_text_len]
        present = (enc != 0).any(dim=-1)
        pad = self.max_text_len - enc.shape[1]
        enc = torch.nn.functional.pad(enc, (0, 0, 0, pad))
        present = torch.nn.functional.pad(present, (0, pad), value=False) & keep_cond
        enc = torch.where(present[..., None], enc, self.null_text_encodings.to(enc.dtype))
        if not keep_cond:
            text = self.null_text_embeds.to(text.dtype).expand_as(text)
            image = self.null_image_embed.to(image.dtype)[:, None].expand_as(image)
        query = self.learned_query.expand(b, 1, d)
        tokens = torch.cat((enc, text, time, image, query), dim=1)
        return self.causal_transformer(tokens)[:, -1]


def make_betas(name: str, steps: int) -> torch.Tensor:
    """β_t of the prior's training schedule (float64)."""
    if name == "cosine":  # Nichol & Dhariwal, s = 0.008
        x = torch.linspace(0, steps, steps + 1, dtype=torch.float64)
        abar = torch.cos(((x / steps) + 0.008) / 1.008 * math.pi * 0.5) ** 2
        abar = abar / abar[0]
        return (1 - abar[1:] / abar[:-1]).clip(0, 0.999)
    if name == "linear":
        scale = 1000 / steps
        return torch.linspace(scale * 1e-4, scale * 0.02, steps, dtype=torch.float64)
    raise ValueError(f"prior beta_schedule '{name}' is not supported (cosine or linear)")


class LaionPrior(AbsPrior):
    """The LAION DALL-E 2 prior: text (pooled + token encodings) -> CLIP image embedding."""

    uses_text_encodings = True

    @typechecked
    def __init__(self, net_conf: Dict, image_embed_dim: int, timesteps: int = 1000,
                 beta_schedule: str = "cosine", predict_x_start: bool = True, predict_v: bool = False,
                 sample_timesteps: Optional[int] = None, cond_drop_prob: float = 0.0,
                 num_candidates: int = 2, condition_on_text_encodings: bool = True):
        """Initialize LaionPrior.

        Args:
            net_conf: ``prior.net`` of prior_config.json (:data:`NET_OPTIONS`).
            image_embed_dim: CLIP embedding size D (768 for ViT-L/14).
            timesteps: Training diffusion steps.
            beta_schedule: "cosine" (the published prior) or "linear".
            predict_x_start: The network predicts x0 (else ε); ``predict_v`` takes precedence.
            predict_v: The network predicts v.
            sample_timesteps: Default sampling steps (None: ``timesteps``, ancestral DDPM).
            cond_drop_prob: Training condition dropout (guidance other than 1 needs it > 0).
            num_candidates: Samples per text; the one most similar to the text is kept.
            condition_on_text_encodings: The network attends to the token encodings.
        """
        super().__init__()
        unknown = sorted(set(net_conf) - set(NET_OPTIONS))
        if unknown:
            raise ValueError(f"prior net options not supported: {', '.join(unknown)} (known: {', '.join(NET_OPTIONS)})")
        net_conf = {k: v for k, v in net_conf.items() if v is not None}
        if net_conf.pop("self_cond", False):
            raise ValueError("self-conditioned priors (net.self_cond) are not supported")
        if "num_timesteps" not in net_conf:
            raise ValueError("prior net.num_timesteps is required (continuous-time priors are not supported)")
        if net_conf.get("dim") != image_embed_dim:
            raise ValueError(f"prior net.dim ({net_conf.get('dim')}) must equal image_embed_dim ({image_embed_dim})")
        if num_candidates < 1:
            raise ValueError(f"num_candidates must be >= 1, got {num_candidates}")
        self.net = LaionPriorNetwork(**net_conf)
        self.image_embed_dim = image_embed_dim
        self.timesteps = timesteps
        self.predict_x_start, self.predict_v = predict_x_start, predict_v
        self.sample_timesteps = sample_timesteps or timesteps
        self.cond_drop_prob = cond_drop_prob
        self.num_candidates = num_candidates
        self.condition_on_text_encodings = condition_on_text_encodings
        betas = make_betas(beta_schedule, timesteps)
        abar = torch.cumprod(1 - betas, dim=0)
        abar_prev = torch.nn.functional.pad(abar[:-1], (1, 0), value=1.0)
        for name, value in dict(betas=betas, alphas_cumprod=abar, alphas_cumprod_prev=abar_prev).items():
            self.register_buffer(name, value.float(), persistent=False)

    @property
    def embed_dim(self) -> int:
        return self.image_embed_dim

    @property
    def scale(self) -> float:
        return self.image_embed_dim ** 0.5

    @property
    def max_text_len(self) -> int:
        return self.net.max_text_len

    # -------------------------------------------------------------- sampling
    def _x0(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, enc: torch.Tensor,
            guidance_scale: float) -> torch.Tensor:
        out = self.net(x, t, text, enc)
        if guidance_scale != 1.0:
            null = self.net(x, t, text, enc, keep_cond=False)
            out = null + (out - null) * guidance_scale
        abar = self.alphas_cumprod[t][:, None]
        if self.predict_v:
            x0 = abar.sqrt() * x - (1 - abar).sqrt() * out
        elif self.predict_x_start:
            return out
        else:
            x0 = (x - (1 - abar).sqrt() * out) / abar.sqrt()
        return x0 if self.predict_x_start else x0.clamp(-1.0, 1.0)  # as the reference sampler does

    def _eps(self, x: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        abar = self.alphas_cumprod[t][:, None]
        return (x / abar.sqrt() - x0) / (1 / abar - 1).sqrt()

    def _ddim(self, x, cond, steps: int, guidance_scale: float, generator) -> torch.Tensor:
        times = torch.linspace(-1.0, self.timesteps, steps + 1)[:-1].int().tolist()[::-1]
        abars = self.alphas_cumprod_prev
        for now, nxt in zip(times[:-1], times[1:]):
            t = torch.full((x.shape[0],), now, dtype=torch.long, device=x.device)
            x0 = self._x0(x, t, *cond, guidance_scale)
            if nxt < 0:
                return x0
            eps = self._eps(x, t, x0)
            a, a_next = abars[now], abars[nxt]
            c1 = ((1 - a / a_next) * (1 - a_next) / (1 - a)).sqrt()  # η = 1
            c2 = ((1 - a_next) - c1 ** 2).sqrt()
            noise = _randn(x.shape, generator, x.device) if nxt > 0 else 0.0
            x = x0 * a_next.sqrt() + c1 * noise + c2 * eps
        return x

    def _ddpm(self, x, cond, guidance_scale: float, generator) -> torch.Tensor:
        betas, abar, abar_prev = self.betas, self.alphas_cumprod, self.alphas_cumprod_prev
        var = betas * (1 - abar_prev) / (1 - abar)
        for i in reversed(range(self.timesteps)):
            t = torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)
            x0 = self._x0(x, t, *cond, guidance_scale)
            mean = (betas[i] * abar_prev[i].sqrt() * x0 + (1 - abar_prev[i]) * (1 - betas[i]).sqrt() * x) / (1 - abar[i])
            x = mean + (0.5 * var[i].clamp(min=1e-20).log()).exp() * _randn(x.shape, generator, x.device) if i else mean
        return x

    @torch.no_grad()
    def sample(self, text_emb: torch.Tensor, num_steps: Optional[int] = None, guidance_scale: float = 1.0,
               generator: Optional[torch.Generator] = None, *,
               text_encodings: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, D) text embeddings (+ (B, L, D) token encodings) -> (B, D) unit-norm image embeddings.

        ``num_steps`` (default: the config's ``sample_timesteps``) below the training steps samples
        with DDIM, else with ancestral DDPM; ``guidance_scale`` is the prior's cond_scale (1: none,
        what LAION recommends)."""
        steps = self.sample_timesteps if num_steps is None else int(num_steps)
        if not 1 <= steps <= self.timesteps:
            raise ValueError(f"prior num_steps must be in 1..{self.timesteps}, got {steps}")
        if guidance_scale != 1.0 and self.cond_drop_prob <= 0:
            raise ValueError("this prior was trained without condition dropout: guidance_scale must be 1")
        device = self.net.learned_query.device
        text = self._check(text_emb, "text embeddings").to(device)
        b, k = text.shape[0], self.num_candidates
        if not self.condition_on_text_encodings:
            text_encodings = torch.zeros(b, 0, self.image_embed_dim)
        elif text_encodings is None:
            raise ValueError("the LAION prior conditions on the CLIP token encodings: pass text_encodings "
                             "(CLIPQueryEncoder.encode_text_tokens)")
        if text_encodings.dim() != 3 or text_encodings.shape[0] != b or text_encodings.shape[-1] != self.net.dim:
            raise ValueError(f"text_encodings must be ({b}, L, {self.net.dim}), got {tuple(text_encodings.shape)}")
        cond = (text.repeat_interleave(k, 0), text_encodings.float().to(device).repeat_interleave(k, 0))
        x = _randn((b * k, self.image_embed_dim), generator, device)
        if steps < self.timesteps:
            x = self._ddim(x, cond, steps, guidance_scale, generator)
        else:
            x = self._ddpm(x, cond, guidance_scale, generator)
        cand = l2_normalize(x / self.scale).view(b, k, -1)
        best = (cand * text[:, None]).sum(-1).argmax(dim=1)
        return cand[torch.arange(b, device=device), best]

    def _check(self, emb: torch.Tensor, what: str) -> torch.Tensor:
        if emb.dim() != 2 or emb.shape[-1] != self.image_embed_dim:
            raise ValueError(
                f"this prior works on {self.image_embed_dim}-dim CLIP embeddings; got {what} of shape "
                f"{tuple(emb.shape)} (a prior for another CLIP model?)"
            )
        return l2_normalize(emb.float())

    # ----------------------------------------------------------------- files
    @classmethod
    def from_config(cls, conf: Dict, num_candidates: int = 2) -> "LaionPrior":
        """Build from a prior_config.json dict (its ``prior`` section, or the section itself)."""
        prior = conf.get("prior", conf)
        if not isinstance(prior, dict) or "net" not in prior or "image_embed_dim" not in prior:
            raise ValueError("not a DALLE2-pytorch prior config: expected prior.net and prior.image_embed_dim")
        keys = ("timesteps", "beta_schedule", "predict_x_start", "predict_v", "sample_timesteps",
                "cond_drop_prob", "condition_on_text_encodings")
        return cls(dict(prior["net"]), int(prior["image_embed_dim"]), num_candidates=num_candidates,
                   **{key: prior[key] for key in keys if prior.get(key) is not None})

    def load_published_state(self, state: Dict, source: str) -> None:
        """Load a DALLE2-pytorch checkpoint: a trainer save (its EMA weights if present) or a bare
        ``DiffusionPrior`` / network state dict. CLIP weights and schedule buffers in it are ignored."""
        for key in ("ema_model", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
        prefix = "net." if any(k.startswith("net.") for k in state) else ""
        net_state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        # rotary frequencies are fixed (not learned); older rotary-embedding-torch did not save them
        expected = {k: v for k, v in self.net.state_dict().items() if ".rotary_emb." not in k}
        rotary = {k: v for k, v in net_state.items() if k.endswith(".rotary_emb.freqs")}
        missing = sorted(set(expected) - set(net_state))
        unexpected = sorted(k for k in set(net_state) - set(expected) if ".rotary_emb." not in k)
        if missing or unexpected:
            raise ValueError(
                f"{source}: does not match its prior_config.json: missing {missing[:5]}{' ...' if len(missing) > 5 else ''}"
                f", unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}"
            )
        wrong = [f"{k} {tuple(net_state[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items()
                 if net_state[k].shape != v.shape]
        if wrong:
            raise ValueError(f"{source}: parameter shapes differ from its prior_config.json: {'; '.join(wrong[:3])}")
        self.net.load_state_dict({**{k: net_state[k] for k in expected}, **rotary}, strict=False)


def _randn(shape, generator: Optional[torch.Generator], device) -> torch.Tensor:
    return torch.randn(shape, generator=generator).to(device)


def resolve_laion_files(source: str) -> Tuple[Path, Path]:
    """``laion`` / ``hf-hub:<repo>`` (downloaded once into the Hugging Face cache), a directory holding
    ``prior_config.json`` + ``best.pth`` (or ``prior/...``), or the path of a prior_config.json
    (``best.pth`` beside it) -> (config, checkpoint)."""
    if source == "laion" or source.startswith("hf-hub:"):
        from huggingface_hub import hf_hub_download

        repo = HUB_REPO if source == "laion" else source[len("hf-hub:"):]
        return tuple(Path(hf_hub_download(repo, name)) for name in HUB_FILES)
    path = Path(source)
    if path.is_dir():
        for base in (path, path / "prior"):
            if (base / "prior_config.json").is_file():
                return base / "prior_config.json", base / "best.pth"
        raise FileNotFoundError(f"{path}: no prior_config.json (or prior/prior_config.json) in this directory")
    if not path.is_file():
        raise FileNotFoundError(f"LAION prior not found: {source} (give 'laion', 'hf-hub:<repo>', a directory or "
                                "a prior_config.json)")
    return path, path.with_name("best.pth")


def load_laion_prior(source: str = "laion", device: str = "cpu", num_candidates: int = 2) -> LaionPrior:
    """The published prior from :func:`resolve_laion_files`'s ``source``, in eval mode on ``device``."""
    config, checkpoint = resolve_laion_files(source)
    try:
        conf = json.loads(Path(config).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{config}: not valid JSON ({e})") from None
    prior = LaionPrior.from_config(conf, num_candidates=num_candidates)
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"{checkpoint}: the prior checkpoint (best.pth) is missing next to {config}")
    logging.info("loading the LAION prior from %s", checkpoint)
    # trainer checkpoints pickle a packaging Version and the optimiser: not loadable with weights_only
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if not isinstance(state, dict):
        raise ValueError(f"{checkpoint}: not a state dict or DALLE2-pytorch checkpoint")
    prior.load_published_state(state, str(checkpoint))
    return prior.to(device).eval()


def save_published_format(prior: LaionPrior, conf: Dict, output_dir: Union[str, Path]) -> Dict[str, Path]:
    """Write ``prior_config.json`` + ``best.pth`` the way DALLE2-pytorch's trainer lays them out
    (``model`` and ``ema_model`` with ``net.`` keys): tiny stand-ins for tests and benchmarks."""
    from espnet2_clip.utils.fileio import atomic_path, write_text_atomic

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "prior_config.json", json.dumps(conf, indent=1) + "\n")
    state = {f"net.{k}": v for k, v in prior.net.state_dict().items()}
    with atomic_path(out / "best.pth") as tmp:
        torch.save(dict(model=state, ema_model=state, step=torch.tensor(0), version="1.15.6"), tmp)
    return {"prior_config": out / "prior_config.json", "prior_file": out / "best.pth"}
