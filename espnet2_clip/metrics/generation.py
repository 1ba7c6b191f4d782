"""Metrics of generated audio: relevance, Fréchet distance, FAD and CLAP score.

* :func:`frechet_distance` between two sets of embeddings (Gaussian fit, FAD's formula).
* :func:`classifier_relevance`: accuracy of a classifier's predictions on clips generated for
  a class's query (the bridge world's relevance; chance is 1/K).
* Real data (clipsonic.md §5, §8): **FAD** with VGGish embeddings (:mod:`espnet2_clip.metrics.vggish`,
  written here: the published torchvggish weights, FAD's convention) and **CLAP score** (cosine
  similarity of the CLAP text embedding of the query and the audio embedding of the clip) with
  transformers' ``ClapModel`` (default ``laion/clap-htsat-unfused``), or a LAION-CLAP ``.pt``
  through the optional ``laion-clap`` package.
  Names (``vggish``, a Hugging Face hub id) download into the torch hub / Hugging Face caches when
  online; local paths (a ``.pth`` state dict, a ``save_pretrained`` directory) work offline.

Any object with ``embed_audio(waves, sample_rate) -> (N, D)`` (and for the CLAP score
``embed_text(texts) -> (N, D)``) can stand in for VGGish / CLAP, e.g. the bridge world's
:class:`espnet2_clip.metrics.audio_classifier.AudioClassifier` via :class:`ClassifierEmbedding`.
"""

from pathlib import Path
from typing import Dict, List, Optional, Protocol, Sequence, Union

import numpy as np
from scipy import linalg

PathLike = Union[str, Path]


class AudioEmbeddingModel(Protocol):
    def embed_audio(self, waves: Sequence[np.ndarray], sample_rate: int) -> np.ndarray: ...


class TextAudioEmbeddingModel(AudioEmbeddingModel, Protocol):
    def embed_text(self, texts: Sequence[str]) -> np.ndarray: ...


def _check_embeddings(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{what} embeddings must be (N, D), got shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"a Fréchet distance needs at least 2 {what} clips, got {x.shape[0]}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} embeddings contain NaN or inf")
    return x


def frechet_distance(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to ``(N, D)`` and ``(M, D)`` embeddings.

    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` (FAD / FID formula). When the
    product is near-singular (fewer clips than dimensions), ``eps`` is added to the diagonals.

    Ours rather than the FAD package's ``FrechetAudioDistance.calculate_frechet_distance``
    (``python -m espnet2_clip.bin.library_benchmark --sections frechet``): on random Gaussians
    (N = 24..2000, D = 8..128) the two agree to 2e-10 relative, ours is as fast or faster (the
    package takes the square root in complex arithmetic: 13 vs 160 ms at N = 2000, D = 64; 0.4 vs
    0.9 s at N = 200, D = 128; the same time with 24 clips), and the
    package's function is a method of a class whose module imports laion_clap, encodec, resampy
    and torchlibrosa at import time, while the package pins numpy < 2 on Python < 3.13 (our
    stack: numpy 2), so it cannot be a required dependency (nor is it used for the VGGish
    embeddings: :mod:`espnet2_clip.metrics.vggish`).
    """
    a, b = _check_embeddings(a, "first"), _check_embeddings(b, "second")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"embedding sizes differ: {a.shape[1]} vs {b.shape[1]}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean, _ = linalg.sqrtm(s_a @ s_b, disp=False)
    if not np.all(np.isfinite(covmean)):
        offset = np.eye(s_a.shape[0]) * eps
        covmean = linalg.sqrtm((s_a + offset) @ (s_b + offset))
    covmean = np.real(covmean)
    diff = mu_a - mu_b
    fd = float(diff @ diff + np.trace(s_a) + np.trace(s_b) - 2.0 * np.trace(covmean))
    return max(fd, 0.0)


def classifier_relevance(predicted: Sequence[int], target: Sequence[int], num_classes: int) -> Dict:
    """Accuracy of ``predicted`` class ids against the queried ``target`` ids.

    Returns ``accuracy``, ``chance`` (1/K), ``count``, ``per_class`` accuracy (by id) and the
    ``confusion`` matrix (rows: queried class, columns: predicted).
    """
    predicted, target = np.asarray(predicted, dtype=np.int64), np.asarray(target, dtype=np.int64)
    if predicted.shape != target.shape or predicted.ndim != 1:
        raise ValueError(f"predicted and target must be equal-length 1-D, got {predicted.shape}, {target.shape}")
    if len(target) == 0:
        raise ValueError("no clips to score")
    for name, ids in (("predicted", predicted), ("target", target)):
        if ids.min() < 0 or ids.max() >= num_classes:
            raise ValueError(f"{name} class ids must be in [0, {num_classes}), got {ids.min()}..{ids.max()}")
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (target, predicted), 1)
    per_class = {int(k): float(confusion[k, k] / confusion[k].sum()) for k in range(num_classes) if confusion[k].sum()}
    return {
        "accuracy": float((predicted == target).mean()),
        "chance": 1.0 / num_classes,
        "count": int(len(target)),
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }


def frechet_audio_distance(model: AudioEmbeddingModel, generated: Sequence[np.ndarray],
                           reference: Sequence[np.ndarray], sample_rate: int) -> float:
    """FAD-style distance between generated and reference clips in ``model``'s embedding space."""
    return frechet_distance(model.embed_audio(reference, sample_rate), model.embed_audio(generated, sample_rate))


def clap_score(model: TextAudioEmbeddingModel, waves: Sequence[np.ndarray], texts: Sequence[str],
               sample_rate: int) -> Dict:
    """Mean cosine similarity between each clip's audio embedding and its query's text embedding."""
    if len(waves) != len(texts):
        raise ValueError(f"{len(waves)} clips but {len(texts)} texts")
    if not waves:
        raise ValueError("no clips to score")
    if any(not str(t).strip() for t in texts):
        raise ValueError("empty text query in the CLAP score")
    a = np.asarray(model.embed_audio(waves, sample_rate), dtype=np.float64)
    t = np.asarray(model.embed_text(list(texts)), dtype=np.float64)
    if a.shape != t.shape:
        raise ValueError(f"audio and text embeddings differ in shape: {a.shape} vs {t.shape}")
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    t = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    sims = (a * t).sum(1)
    return {"mean": float(sims.mean()), "std": float(sims.std()), "count": int(len(sims)),
            "per_clip": sims.tolist()}


def _resample(waves: Sequence[np.ndarray], sr: int, target_sr: int) -> List[np.ndarray]:
    if sr == target_sr:
        return [np.asarray(w, dtype=np.float32).reshape(-1) for w in waves]
    import librosa

    return [librosa.resample(np.asarray(w, dtype=np.float32).reshape(-1), orig_sr=sr, target_sr=target_sr)
            for w in waves]


def _missing(package: str, pip_name: str, what: str) -> ImportError:
    return ImportError(
        f"{what} needs the '{package}' package, which is not installed: `pip install {pip_name}` "
        f"(it is optional; nothing else in espnet2_clip needs it)"
    )


class ClassifierEmbedding:
    """The bridge world's :class:`AudioClassifier` as an ``embed_audio`` model."""

    def __init__(self, classifier, batch_size: int = 16):
        self.classifier = classifier
        self.batch_size = batch_size

    def embed_audio(self, waves: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        waves = _resample(waves, sample_rate, self.classifier.sample_rate)
        return self.classifier.predict(waves, self.batch_size)[1]


DEFAULT_CLAP = "laion/clap-htsat-unfused"


class LaionCLAP:
    """LAION-CLAP (``pip install laion-clap``, optional) from a local ``.pt`` checkpoint, for the CLAP score.

    Args:
        checkpoint: Path of a CLAP ``.pt`` checkpoint (e.g. ``630k-audioset-best.pt``; state
            which one next to the numbers, clipsonic.md §7.9). Never downloaded here (:class:`HFClap` downloads).
        enable_fusion: True for the fusion checkpoints.
        amodel: Audio encoder of the checkpoint (``HTSAT-tiny`` for 630k-*, ``HTSAT-base`` for music).
        device: torch device.
    """

    sample_rate = 48000  # LAION-CLAP's input rate

    def __init__(self, checkpoint: PathLike, enable_fusion: bool = False, amodel: str = "HTSAT-tiny",
                 device: str = "cpu"):
        if not Path(checkpoint).is_file():
            raise FileNotFoundError(f"CLAP checkpoint not found: {checkpoint} (a local LAION-CLAP .pt file; or "
                                    f"a Hugging Face CLAP such as {DEFAULT_CLAP}, by hub id or local directory)")
        try:
            import laion_clap
        except ImportError as e:
            raise _missing("laion_clap", "laion-clap", "the CLAP score") from e
        self.model = laion_clap.CLAP_Module(enable_fusion=enable_fusion, amodel=amodel, device=device)
        self.model.load_ckpt(str(checkpoint))

    def embed_audio(self, waves: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        waves = _resample(waves, sample_rate, self.sample_rate)
        length = max(len(w) for w in waves)
        x = np.stack([np.pad(w, (0, length - len(w))) for w in waves]).astype(np.float32)
        return np.asarray(self.model.get_audio_embedding_from_data(x=x, use_tensor=False))

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        padded = texts + texts[:1] if len(texts) == 1 else texts  # its tokenizer squeezes a batch of one
        return np.asarray(self.model.get_text_embedding(padded, use_tensor=False))[: len(texts)]



class HFClap:
    """CLAP through transformers' ``ClapModel`` (``from_pretrained``: a hub id or a local directory).

    Args:
        model: Hugging Face hub id (downloaded into the Hugging Face cache, ``$HF_HOME/hub``, when
            online; found there offline) or a local directory written by ``save_pretrained``
            (model, tokenizer and ``ClapFeatureExtractor``).
        device: torch device.
    """

    def __init__(self, model: PathLike = DEFAULT_CLAP, device: str = "cpu", batch_size: int = 16):
        from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel

        self.name = str(model)
        self.model = ClapModel.from_pretrained(self.name).eval().to(device)
        self.tokenizer = AutoTokenizer.from_pretrained(self.name)
        self.feature_extractor = ClapFeatureExtractor.from_pretrained(self.name)
        self.sample_rate = int(self.feature_extractor.sampling_rate)  # 48 kHz
        self.device = device
        self.batch_size = batch_size

    @staticmethod
    def _pooled(out):
        return getattr(out, "pooler_output", out)  # transformers 5: an output object; 4: the tensor

    def embed_audio(self, waves: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        import torch

        waves = _resample(waves, sample_rate, self.sample_rate)
        out = []
        # clips longer than the extractor's max_length_s (10 s) are cropped at random positions drawn from
        # numpy's global generator: seeded here (and restored) so that a score is the same on every run
        rng_state = np.random.get_state()
        np.random.seed(0)
        try:
            with torch.no_grad():
                for i in range(0, len(waves), self.batch_size):
                    inputs = self.feature_extractor(waves[i: i + self.batch_size], sampling_rate=self.sample_rate,
                                                    return_tensors="pt")
                    inputs = {k: v.to(self.device) for k, v in inputs.items()}
                    out.append(self._pooled(self.model.get_audio_features(**inputs)).cpu().numpy())
        finally:
            np.random.set_state(rng_state)
        return np.concatenate(out)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        with torch.no_grad():
            inputs = self.tokenizer(list(texts), padding=True, return_tensors="pt")
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            return self._pooled(self.model.get_text_features(**inputs)).cpu().numpy()


def load_clap(model: PathLike = DEFAULT_CLAP, device: str = "cpu"):
    """A LAION-CLAP ``.pt`` file (laion-clap package), else a transformers CLAP (hub id or local directory)."""
    if str(model).endswith(".pt"):
        return LaionCLAP(model, device=device)
    return HFClap(model, device=device)


def load_vggish_embedding(model: PathLike = "vggish", device: str = "cpu"):
    """VGGish embeddings for FAD: ``vggish`` (torch.hub download / cache) or a local ``.pth`` state dict."""
    from espnet2_clip.metrics.vggish import VGGishEmbedding

    return VGGishEmbedding(model, device=device)
