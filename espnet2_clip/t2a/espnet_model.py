"""CLIPSonic as an ESPnet model: CLIP-conditioned diffusion on log-mel spectrograms.

One model serves every variant; they differ in the query it is trained and sampled with:
IQ (image embedding of a frame), ZS (text embedding fed directly), PD (a diffusion prior maps
text -> image embedding first), SD (trained on text embeddings of label text).
"""

import argparse
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from espnet2.train.abs_espnet_model import AbsESPnetModel
from typeguard import typechecked

from espnet2_clip.t2a.diffusion import (
    cfg_combine,
    check_sampling_args,
    ddim_sample,
    default_schedule_conf,
    l2_normalize,
    training_scheduler,
)
from espnet2_clip.t2a.mel import MelFrontend
from espnet2_clip.t2a.unet import DiffusionUNet
from espnet2_clip.utils.backbone_runner import BackboneRunner
from espnet2_clip.utils.device import to_device_async
from espnet2_clip.utils.weight_average import WeightAverage


PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


class ESPnetCLIPSonicModel(AbsESPnetModel):
    """Diffusion on ``(1, n_mels, T)`` mels with classifier-free guidance.

    Training: the clip's CLIP embedding is L2-normalised, replaced by a learned null
    embedding with probability ``cond_drop_prob``, the mel is noised at a uniform random
    step of the DDPM schedule and the U-Net regresses the noise (ε), the velocity (v) or the
    clean mel (MSE, optionally min-SNR-γ weighted per step).

    With ``ema_decay``, a moving average of the U-Net and the null embedding is kept during training
    and used whenever the model is not training: the validation loss (so ``valid.loss.best`` picks
    the best averaged model) and sampling.
    """

    @typechecked
    def __init__(
        self,
        mel: MelFrontend,
        unet: DiffusionUNet,
        cond_drop_prob: float = 0.1,
        schedule_conf: Optional[Dict] = None,
        prediction_type: str = "epsilon",
        snr_gamma: Optional[float] = None,
        train_precision: str = "fp32",
        ema_decay: Optional[float] = None,
    ):
        """Initialize ESPnetCLIPSonicModel.

        Args:
            mel: Log-mel front end.
            unet: ε-predicting U-Net (its ``cond_dim`` is the CLIP embedding size).
            cond_drop_prob: Probability of training with the null condition.
            schedule_conf: DDPM schedule (num_train_timesteps, beta_schedule, beta_start, beta_end).
            prediction_type: What the U-Net predicts: "epsilon" (noise), "v_prediction" or "sample".
            snr_gamma: Min-SNR-γ loss weighting (Hang et al., 2023; e.g. 5.0); None: plain MSE.
            train_precision: ``fp32``, ``bf16`` (the U-Net under bfloat16 autocast in training; float32
                weights, loss and sampling) or ``auto`` (bf16 where the device computes it natively).
                See ``espnet2_clip.utils.backbone_runner``.
            ema_decay: Keep an exponential moving average of the denoiser's weights with this decay
                (e.g. 0.999) and evaluate / sample with it; None: use the trained weights.
        """
        super().__init__()
        if not 0.0 <= cond_drop_prob < 1.0:
            raise ValueError(f"cond_drop_prob must be in [0, 1), got {cond_drop_prob}")
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
        if snr_gamma is not None and not snr_gamma > 0:
            raise ValueError(f"snr_gamma must be > 0 (or None), got {snr_gamma}")
        self.mel = mel
        self.unet = unet
        self.cond_drop_prob = cond_drop_prob
        self.schedule_conf = dict(default_schedule_conf(), **(schedule_conf or {}))
        self.null_embedding = torch.nn.Parameter(torch.randn(unet.cond_dim) / unet.cond_dim ** 0.5)
        self.prediction_type = prediction_type
        self.snr_gamma = snr_gamma
        self._train_sched = training_scheduler(self.schedule_conf, prediction_type)
        self.unet_runner = BackboneRunner(train_precision)
        self.ema = None if ema_decay is None else WeightAverage(_Denoiser(unet, self.null_embedding), ema_decay)

    def denoiser(self) -> "_Denoiser":
        """The weights to use now: the trained ones in training, else their average if one is kept."""
        if self.ema is not None and not self.training:
            return self.ema.average
        return _Denoiser(self.unet, self.null_embedding)

    @property
    def cond_dim(self) -> int:
        return self.unet.cond_dim

    @property
    def num_train_timesteps(self) -> int:
        return int(self.schedule_conf["num_train_timesteps"])

    # ------------------------------------------------------------------ condition
    def condition(self, query: torch.Tensor) -> torch.Tensor:
        """(B, D) raw CLIP embeddings -> (B, D) unit-norm conditions (checks the size)."""
        if query.dim() != 2 or query.shape[-1] != self.cond_dim:
            raise ValueError(
                f"query embeddings must be (B, {self.cond_dim}) (the model's CLIP size), got {tuple(query.shape)}"
            )
        return l2_normalize(query.float())

    def drop_condition(
        self, cond: torch.Tensor, generator: Optional[torch.Generator] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Replace each row by the null embedding with probability ``cond_drop_prob``.

        Returns the conditions and the (B,) boolean mask of dropped rows.
        """
        drop = to_device_async(torch.rand(cond.shape[0], generator=generator), cond.device) < self.cond_drop_prob
        null = self.null_embedding.to(cond.dtype).expand_as(cond)
        return torch.where(drop[:, None], null, cond), drop

    # ------------------------------------------------------------------ training
    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: Optional[torch.Tensor] = None,
        query: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """Diffusion loss.

        Args:
            speech: (B, N) audio clips (fixed length).
            speech_lengths: (B,) unused.
            query: (B, D) CLIP embeddings of the clips' frames (or label text).

        Returns:
            loss, stats, weight (batch size).
        """
        if query is None:
            raise ValueError("CLIPSonic training needs a 'query' (CLIP embedding) for every clip")
        if self.training and self.ema is not None:  # the weights of the previous optimiser step
            self.ema.update(self.denoiser())
        # the validation loss uses fixed noise/steps/drops so that it is comparable across epochs; they are drawn
        # on the host (the same draws on every device) and copied without waiting for the device
        gen = None if self.training else torch.Generator().manual_seed(0)
        x0 = self.mel(speech).unsqueeze(1)
        cond, _ = self.drop_condition(self.condition(query), gen) if self.training else (self.condition(query), None)
        noise = to_device_async(torch.randn(x0.shape, generator=gen), x0.device)
        t_host = torch.randint(0, self.num_train_timesteps, (x0.shape[0],), generator=gen)
        t = to_device_async(t_host, x0.device)
        xt = self._train_sched.add_noise(x0, noise, t)
        prediction = self.unet_runner(self.denoiser().unet, xt, t, cond)
        error = (prediction - self.training_target(x0, noise, t)).pow(2).mean(dim=(1, 2, 3))
        if self.snr_gamma is not None:  # weights from the host's t: no read back from the device
            error = to_device_async(self.loss_weight(t_host), error.device) * error
        loss = error.mean()
        return loss, {"loss": loss.detach()}, torch.full((), x0.shape[0], device=loss.device)

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the U-Net regresses at steps ``t``: ε, v = α ε - σ x0, or x0."""
        if self.prediction_type == "epsilon":
            return noise
        if self.prediction_type == "v_prediction":
            return self._train_sched.get_velocity(x0, noise, t)
        return x0

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        """(B,) CPU steps -> (B,) CPU per-step weights: 1, or min-SNR-γ expressed for the prediction type."""
        if self.snr_gamma is None:
            return torch.ones(t.shape[0])
        alpha_bar = self._train_sched.alphas_cumprod[t].double()
        snr = alpha_bar / (1.0 - alpha_bar)
        clipped = snr.clamp(max=self.snr_gamma)
        weight = {"epsilon": clipped / snr, "v_prediction": clipped / (snr + 1.0), "sample": clipped}
        return weight[self.prediction_type].float()

    def collect_feats(self, speech: torch.Tensor, **kwargs) -> Dict[str, torch.Tensor]:
        """No statistics are needed (the mel is normalised by fixed constants)."""
        return {"feats": speech, "feats_lengths": torch.full((speech.shape[0],), speech.shape[1])}

    # ----------------------------------------------------------------- inference
    def guided_prediction(
        self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, guidance_scale: Union[float, torch.Tensor]
    ) -> torch.Tensor:
        """U-Net output (ε, v or x0) with classifier-free guidance for unit-norm ``cond`` (one batched pass).

        ``guidance_scale``: one w, or a (B,) tensor of scales, one per item (a sweep sampled as one batch).
        """
        denoiser = self.denoiser()
        null = denoiser.null_embedding.to(cond.dtype).expand_as(cond)
        if not isinstance(guidance_scale, torch.Tensor):
            if guidance_scale == 1.0:
                return denoiser.unet(x, t, cond)
            if guidance_scale == 0.0:
                return denoiser.unet(x, t, null)
        eps = denoiser.unet(torch.cat([x, x]), torch.cat([t, t]), torch.cat([null, cond]))
        eps_uncond, eps_cond = eps.chunk(2)
        if isinstance(guidance_scale, torch.Tensor):
            guidance_scale = guidance_scale.to(eps.dtype).view(-1, *([1] * (eps.dim() - 1)))
        return cfg_combine(eps_uncond, eps_cond, guidance_scale)

    @torch.no_grad()
    def sample(
        self,
        query: torch.Tensor,
        num_frames: int,
        guidance_scale: Union[float, Sequence[float]] = 3.0,
        num_steps: int = 25,
        generator: Optional[torch.Generator] = None,
        noise: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Generate normalised mels.

        Args:
            query: (B, D) CLIP embeddings (normalised here).
            num_frames: Frames T to generate.
            guidance_scale: w >= 0 (1: no guidance), or B scales, one per item.
            num_steps: DDIM steps (>= 1).
            generator: CPU generator of the initial noise.
            noise: (B, 1, n_mels, T) initial noise instead (e.g. one seed per item of a batch).

        Returns:
            (B, n_mels, T) normalised log-mel.
        """
        per_item = not isinstance(guidance_scale, (int, float))
        scales = [float(w) for w in guidance_scale] if per_item else [float(guidance_scale)]
        for w in scales:
            check_sampling_args(w, num_steps, self.num_train_timesteps)
        if per_item and len(scales) != query.shape[0]:
            raise ValueError(f"{len(scales)} guidance scales for {query.shape[0]} queries")
        device = self.null_embedding.device
        cond = self.condition(query.to(device))
        # one scale for all: a float; per item: a tensor on the device, made once (no host sync per step)
        w = torch.tensor(scales, device=device) if per_item and len(set(scales)) > 1 else scales[0]
        shape = (cond.shape[0], 1, self.mel.n_mels, int(num_frames))
        x = ddim_sample(lambda x, t: self.guided_prediction(x, t, cond, w), shape, self.schedule_conf,
                        num_steps, generator=generator, device=device, prediction_type=self.prediction_type,
                        noise=noise)
        return x.squeeze(1)


class _Denoiser(torch.nn.Module):
    """What sampling needs of the trained weights: the U-Net and the null (unconditional) embedding."""

    def __init__(self, unet: DiffusionUNet, null_embedding: torch.nn.Parameter):
        super().__init__()
        self.unet = unet
        self.null_embedding = null_embedding


def build_clipsonic_model(args: argparse.Namespace) -> ESPnetCLIPSonicModel:
    """The model of parsed training arguments or a loaded config.yaml (``CLIPSonicTask.build_model``)."""
    return ESPnetCLIPSonicModel(MelFrontend(**(args.mel_conf or {})), DiffusionUNet(**(args.unet_conf or {})),
                                **(args.model_conf or {}))
