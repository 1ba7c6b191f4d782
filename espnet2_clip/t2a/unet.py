"""A small 2-D diffusion U-Net over (mel, time), conditioned on the timestep and a CLIP vector.

Conditioning (our choice; the paper does not say): a sinusoidal embedding of the diffusion
step goes through a 2-layer MLP; the (L2-normalised) CLIP embedding goes through its own
2-layer MLP to the same width and is **added** to it. The sum modulates every residual
block (scale/shift after the second GroupNorm). Self-attention is used at the coarsest
levels only (``attention_levels``). Inputs whose height/width are not multiples of
``2 ** (levels - 1)`` are padded and cropped back.

The timestep embedding is diffusers' (``Timesteps`` with cos | sin halves and frequencies
``max_period ** (-i / half)``, then ``TimestepEmbedding``: Linear-SiLU-Linear), bit for bit the
sinusoid and MLP this module had before; checkpoints written before the switch name the MLP's
layers ``time_mlp.0`` / ``time_mlp.2`` and still load (renamed to ``linear_1`` / ``linear_2``).
The rest of the U-Net stays ours: diffusers' ``UNet2DConditionModel`` would change every
parameter name and the conditioning (cross-attention instead of the added CLIP vector), and
judging it needs the CLIPSonic mini recipe trained twice (``library_benchmark`` says so).
"""

import math
from typing import List, Sequence

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import TimestepEmbedding, Timesteps, get_timestep_embedding
from typeguard import typechecked


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) steps -> (B, dim) sinusoidal embedding (cos | sin halves; diffusers' function)."""
    return get_timestep_embedding(t, dim, flip_sin_to_cos=True, downscale_freq_shift=0, max_period=max_period)


def _load_sequential_mlp(module, state_dict, prefix, *args) -> None:
    """Checkpoints from before the switch to diffusers' ``TimestepEmbedding`` hold its two layers
    as ``Sequential`` indices 0 and 2: rename them in place."""
    for old, new in (("0.", "linear_1."), ("2.", "linear_2.")):
        for name in ("weight", "bias"):
            if prefix + old + name in state_dict and prefix + new + name not in state_dict:
                state_dict[prefix + new + name] = state_dict.pop(prefix + old + name)


def _norm(channels: int, groups: int) -> torch.nn.GroupNorm:
    return torch.nn.GroupNorm(math.gcd(groups, channels), channels)


class ResBlock(torch.nn.Module):
    """GN-SiLU-conv, + embedding scale/shift, GN-SiLU-dropout-conv, residual."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = _norm(in_ch, groups)
        self.conv1 = torch.nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = torch.nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = _norm(out_ch, groups)
        self.dropout = torch.nn.Dropout(dropout)
        self.conv2 = torch.nn.Conv2d(out_ch, out_ch, 3, padding=1)
        torch.nn.init.zeros_(self.conv2.weight)
        torch.nn.init.zeros_(self.conv2.bias)
        self.skip = torch.nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else torch.nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class AttnBlock(torch.nn.Module):
    """Multi-head self-attention over all (freq, time) positions, residual."""

    def __init__(self, channels: int, groups: int, heads: int):
        super().__init__()
        self.norm = _norm(channels, groups)
        self.attn = torch.nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        seq = self.norm(x).flatten(2).transpose(1, 2)
        out, _ = self.attn(seq, seq, seq, need_weights=False)
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class DiffusionUNet(torch.nn.Module):
    """ε-predicting U-Net: ``(B, 1, F, T)`` noisy mel, ``(B,)`` steps, ``(B, D)`` condition."""

    @typechecked
    def __init__(
        self,
        cond_dim: int = 512,
        in_channels: int = 1,
        channels: Sequence[int] = (32, 64, 96, 128),
        num_res_blocks: int = 1,
        attention_levels: Sequence[int] = (3,),
        num_heads: int = 4,
        emb_dim: int = 128,
        groups: int = 8,
        dropout: float = 0.0,
    ):
        """Initialize DiffusionUNet.

        Args:
            cond_dim: Size D of the conditioning (CLIP) embedding.
            in_channels: Input channels (1: a mel spectrogram).
            channels: Channels per level; level i works at 1 / 2**i resolution.
            num_res_blocks: Residual blocks per level (encoder side; the decoder has one more).
            attention_levels: Levels (0-based) with self-attention after each block.
            num_heads: Attention heads.
            emb_dim: Width of the timestep (+ condition) embedding.
            groups: GroupNorm groups (reduced to divide the channels).
            dropout: Dropout inside residual blocks.
        """
        super().__init__()
        channels = list(channels)
        if not channels:
            raise ValueError("channels must not be empty")
        self.cond_dim = cond_dim
        self.in_channels = in_channels
        self.levels = len(channels)
        self.emb_dim = emb_dim
        self.time_proj = Timesteps(emb_dim, flip_sin_to_cos=True, downscale_freq_shift=0)  # no parameters
        self.time_mlp = TimestepEmbedding(emb_dim, emb_dim)
        self.time_mlp.register_load_state_dict_pre_hook(_load_sequential_mlp)
        self.cond_mlp = torch.nn.Sequential(
            torch.nn.Linear(cond_dim, emb_dim), torch.nn.SiLU(), torch.nn.Linear(emb_dim, emb_dim)
        )
        self.input_conv = torch.nn.Conv2d(in_channels, channels[0], 3, padding=1)

        def block(cin: int, cout: int, level: int) -> torch.nn.ModuleList:
            mods = [ResBlock(cin, cout, emb_dim, groups, dropout)]
            if level in attention_levels:
                mods.append(AttnBlock(cout, groups, num_heads))
            return torch.nn.ModuleList(mods)

        self.down = torch.nn.ModuleList()
        self.downsample = torch.nn.ModuleList()
        skip_channels: List[int] = [channels[0]]
        cur = channels[0]
        for level, ch in enumerate(channels):
            blocks = torch.nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(block(cur, ch, level))
                cur = ch
                skip_channels.append(cur)
            self.down.append(blocks)
            if level < self.levels - 1:
                self.downsample.append(torch.nn.Conv2d(cur, cur, 3, stride=2, padding=1))
                skip_channels.append(cur)
        self.mid = torch.nn.ModuleList([
            ResBlock(cur, cur, emb_dim, groups, dropout), AttnBlock(cur, groups, num_heads),
            ResBlock(cur, cur, emb_dim, groups, dropout),
        ])
        self.up = torch.nn.ModuleList()
        self.upsample = torch.nn.ModuleList()
        for level in reversed(range(self.levels)):
            ch = channels[level]
            blocks = torch.nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                blocks.append(block(cur + skip_channels.pop(), ch, level))
                cur = ch
            self.up.append(blocks)
            if level > 0:
                self.upsample.append(torch.nn.Conv2d(cur, cur, 3, padding=1))
        self.out = torch.nn.Sequential(
            _norm(cur, groups), torch.nn.SiLU(), torch.nn.Conv2d(cur, in_channels, 3, padding=1)
        )
        torch.nn.init.zeros_(self.out[-1].weight)
        torch.nn.init.zeros_(self.out[-1].bias)

    def embedding(self, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """(B,) steps + (B, D) condition -> (B, emb_dim) block embedding (sum of the two MLPs)."""
        return self.time_mlp(self.time_proj(t)) + self.cond_mlp(cond)

    @staticmethod
    def _run(mods: torch.nn.ModuleList, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for m in mods:
            h = m(h, emb) if isinstance(m, ResBlock) else m(h)
        return h

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Predict the noise.

        Args:
            x: (B, C, F, T) noisy input.
            t: (B,) integer diffusion steps.
            cond: (B, D) conditioning vectors (already normalised / null-substituted).

        Returns:
            (B, C, F, T) ε estimate.
        """
        if cond.shape[-1] != self.cond_dim:
            raise ValueError(f"condition has size {cond.shape[-1]}, the U-Net expects {self.cond_dim}")
        height, width = x.shape[-2:]
        mult = 2 ** (self.levels - 1)
        pad_h, pad_w = (-height) % mult, (-width) % mult
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        emb = self.embedding(t, cond)
        h = self.input_conv(x)
        skips = [h]
        for level, blocks in enumerate(self.down):
            for mods in blocks:
                h = self._run(mods, h, emb)
                skips.append(h)
            if level < self.levels - 1:
                h = self.downsample[level](h)
                skips.append(h)
        h = self._run(self.mid, h, emb)
        for i, blocks in enumerate(self.up):
            for mods in blocks:
                h = self._run(mods, torch.cat([h, skips.pop()], dim=1), emb)
            if i < self.levels - 1:
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out(h)[..., :height, :width]
