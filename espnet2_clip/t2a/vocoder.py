"""HiFi-GAN vocoder on CLIPSonic's exact mel representation, as an ESPnet GAN model.

Built only from ``espnet2.gan_tts.hifigan``: ``HiFiGANGenerator``,
``HiFiGANMultiScaleMultiPeriodDiscriminator`` and the generator-adversarial,
discriminator-adversarial, feature-matching and mel (L1 on log10 mel) losses. The generator
input is the *normalised* mel of :class:`espnet2_clip.t2a.mel.MelFrontend` (what the diffusion
model generates), so ``prod(upsample_scales)`` must equal the mel hop.
Trained by ESPnet's ``GANTrainer`` with two optimisers (0: generator, 1: discriminator).
"""

import argparse
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np
import torch
from espnet2.gan_tts.hifigan.hifigan import HiFiGANGenerator, HiFiGANMultiScaleMultiPeriodDiscriminator
from espnet2.gan_tts.hifigan.loss import (
    DiscriminatorAdversarialLoss,
    FeatureMatchLoss,
    GeneratorAdversarialLoss,
    MelSpectrogramLoss,
)
from espnet2.train.abs_gan_espnet_model import AbsGANESPnetModel
from typeguard import typechecked

from espnet2_clip.t2a.mel import MelFrontend


class HiFiGANVocoderModel(AbsGANESPnetModel):
    """Normalised log-mel -> 16 kHz wave."""

    @typechecked
    def __init__(
        self,
        mel: MelFrontend,
        generator_params: Optional[Dict[str, Any]] = None,
        discriminator_params: Optional[Dict[str, Any]] = None,
        lambda_mel: float = 45.0,
        lambda_adv: float = 1.0,
        lambda_feat_match: float = 2.0,
    ):
        """Initialize HiFiGANVocoderModel.

        Args:
            mel: The mel front end (its settings must match the diffusion model's).
            generator_params: ``HiFiGANGenerator`` options (``in_channels`` is set to n_mels).
            discriminator_params: ``HiFiGANMultiScaleMultiPeriodDiscriminator`` options.
            lambda_mel: Weight of the mel L1 loss.
            lambda_adv: Weight of the generator adversarial loss.
            lambda_feat_match: Weight of the feature-matching loss.
        """
        super().__init__()
        self.mel = mel
        gen = dict(generator_params or {})
        gen["in_channels"] = mel.n_mels
        self.generator = HiFiGANGenerator(**gen)
        upsample = int(np.prod(self.generator_upsample_scales(gen)))
        if upsample != mel.hop_length:
            raise ValueError(f"prod(upsample_scales) = {upsample} must equal the mel hop {mel.hop_length}")
        self.discriminator = HiFiGANMultiScaleMultiPeriodDiscriminator(**(discriminator_params or {}))
        conf = mel.mel_conf()
        self.mel_loss = MelSpectrogramLoss(fs=conf["fs"], n_fft=conf["n_fft"], hop_length=conf["hop_length"],
                                           win_length=conf["win_length"], n_mels=conf["n_mels"],
                                           fmin=conf["fmin"], fmax=conf["fmax"], log_base=10.0)
        self.generator_adv_loss = GeneratorAdversarialLoss()
        self.discriminator_adv_loss = DiscriminatorAdversarialLoss()
        self.feat_match_loss = FeatureMatchLoss()
        self.lambda_mel = lambda_mel
        self.lambda_adv = lambda_adv
        self.lambda_feat_match = lambda_feat_match

    @staticmethod
    def generator_upsample_scales(gen: Dict[str, Any]):
        import inspect

        default = inspect.signature(HiFiGANGenerator.__init__).parameters["upsample_scales"].default
        return gen.get("upsample_scales", default)

    def _mel_and_target(self, speech: torch.Tensor):
        """Frames aligned with the wave: ``N // hop`` frames for ``N // hop * hop`` samples."""
        num_frames = speech.shape[1] // self.mel.hop_length
        if num_frames < 1:
            raise ValueError(f"vocoder segments must be at least one hop ({self.mel.hop_length} samples)")
        mel = self.mel(speech)[:, :, :num_frames]
        return mel, speech[:, : num_frames * self.mel.hop_length].unsqueeze(1)

    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: Optional[torch.Tensor] = None,
        forward_generator: bool = True,
        **kwargs,
    ) -> Dict[str, Any]:
        """Generator (optim_idx 0) or discriminator (optim_idx 1) loss on (B, N) segments."""
        mel, y = self._mel_and_target(speech)
        weight = torch.full((), speech.shape[0], device=speech.device)
        if forward_generator:
            y_hat = self.generator(mel)
            p_hat = self.discriminator(y_hat)
            with torch.no_grad():
                p = self.discriminator(y)
            mel_loss = self.mel_loss(y_hat, y)
            adv_loss = self.generator_adv_loss(p_hat)
            fm_loss = self.feat_match_loss(p_hat, p)
            loss = self.lambda_mel * mel_loss + self.lambda_adv * adv_loss + self.lambda_feat_match * fm_loss
            stats = dict(generator_loss=loss.detach(), generator_mel_loss=mel_loss.detach(),
                         generator_adv_loss=adv_loss.detach(), generator_feat_match_loss=fm_loss.detach())
            return dict(loss=loss, stats=stats, weight=weight, optim_idx=0)
        with torch.no_grad():
            y_hat = self.generator(mel)
        real_loss, fake_loss = self.discriminator_adv_loss(self.discriminator(y_hat.detach()), self.discriminator(y))
        loss = real_loss + fake_loss
        stats = dict(discriminator_loss=loss.detach(), discriminator_real_loss=real_loss.detach(),
                     discriminator_fake_loss=fake_loss.detach())
        return dict(loss=loss, stats=stats, weight=weight, optim_idx=1)

    def collect_feats(self, speech: torch.Tensor, **kwargs) -> Dict[str, torch.Tensor]:
        """No statistics are needed."""
        return {"feats": speech, "feats_lengths": torch.full((speech.shape[0],), speech.shape[1])}

    @torch.no_grad()
    def inference(self, mel: torch.Tensor) -> torch.Tensor:
        """(n_mels, T) or (B, n_mels, T) normalised mel -> (T * hop,) or (B, T * hop) wave."""
        single = mel.dim() == 2
        wave = self.generator(mel[None] if single else mel).squeeze(1)
        return wave[0] if single else wave


class VocoderSegmentPreprocessor:
    """Random ``segment_samples`` crop in training, the first segment otherwise (zero-padded)."""

    @typechecked
    def __init__(self, train: bool, segment_samples: int = 8192, seed: int = 0):
        self.train = train
        self.segment_samples = segment_samples
        self.rng = np.random.default_rng(seed)

    def __call__(self, uid: str, data: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        wave = data["speech"]
        if wave.ndim == 2:
            wave = wave.mean(axis=1)
        wave = wave.astype(np.float32)
        n = self.segment_samples
        if len(wave) < n:
            wave = np.pad(wave, (0, n - len(wave)))
        start = int(self.rng.integers(0, len(wave) - n + 1)) if self.train else 0
        data["speech"] = wave[start : start + n]
        return data


def build_vocoder_model(args: argparse.Namespace) -> HiFiGANVocoderModel:
    """The vocoder of parsed training arguments or a loaded config.yaml (``HiFiGANVocoderTask.build_model``)."""
    return HiFiGANVocoderModel(
        MelFrontend(**(args.mel_conf or {})),
        generator_params=args.generator_params or None,
        discriminator_params=args.discriminator_params or None,
        **(args.model_conf or {}),
    )


def load_vocoder(config: Union[str, Path], model_file: Optional[Union[str, Path]] = None,
                 device: str = "cpu") -> HiFiGANVocoderModel:
    """Build a trained vocoder from its ``config.yaml`` (+ ``.pth``), in eval mode."""
    from espnet2_clip.utils.model_files import load_trained_model

    if not Path(config).is_file():
        raise FileNotFoundError(f"vocoder config not found: {config}")
    model, _ = load_trained_model(build_vocoder_model, config, model_file, device)
    model.generator.remove_weight_norm()
    return model.eval()
