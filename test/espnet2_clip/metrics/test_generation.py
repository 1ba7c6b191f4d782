"""Generation metrics: Fréchet distance, relevance, CLAP score / FAD code paths with stand-ins."""

import sys
import types

import numpy as np
import pytest
import torch

from espnet2_clip.metrics.generation import (
    ClassifierEmbedding,
    DEFAULT_CLAP,
    HFClap,
    LaionCLAP,
    clap_score,
    classifier_relevance,
    frechet_audio_distance,
    frechet_distance,
    load_clap,
)

SR = 16000


def tone(freq, seconds=0.5, amp=0.3):
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


class BandEnergy:
    """Stand-in audio/text embedding model: [low-band, high-band] log energies; texts 'low'/'high'."""

    def embed_audio(self, waves, sample_rate):
        out = []
        for w in waves:
            spec = np.abs(np.fft.rfft(w)) ** 2
            freqs = np.fft.rfftfreq(len(w), 1 / sample_rate)
            out.append([np.log1p(spec[freqs < 1000].sum()), np.log1p(spec[freqs >= 1000].sum())])
        return np.array(out)

    def embed_text(self, texts):
        return np.array([[1.0, 0.0] if "low" in t else [0.0, 1.0] for t in texts])


def test_frechet_distance_closed_form():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((400, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, 0.0, -2.0])
    b = a * 2.0 + shift
    # closed form from the sample statistics: |dmu|^2 + tr(Sa + Sb - 2 (Sa Sb)^1/2) with Sb = 4 Sa
    s_a = np.cov(a, rowvar=False)
    dmu = a.mean(0) + shift
    expected = dmu @ dmu + np.trace(s_a) * (1 + 4 - 2 * 2)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)


def test_frechet_distance_few_clips_and_errors():
    rng = np.random.default_rng(1)
    fd = frechet_distance(rng.standard_normal((5, 16)), rng.standard_normal((6, 16)) + 1)
    assert np.isfinite(fd) and fd > 0  # fewer clips than dimensions: singular covariances still work
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(np.zeros((1, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="sizes differ"):
        frechet_distance(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.full((3, 2), np.nan), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        frechet_distance(np.zeros(3), np.zeros(3))


def test_classifier_relevance():
    rel = classifier_relevance([0, 1, 1, 2, 0, 2], [0, 1, 2, 2, 0, 1], num_classes=3)
    assert rel["accuracy"] == pytest.approx(4 / 6) and rel["chance"] == pytest.approx(1 / 3)
    assert rel["per_class"] == {0: 1.0, 1: 0.5, 2: 0.5}
    assert rel["confusion"][2] == [0, 1, 1] and rel["count"] == 6
    with pytest.raises(ValueError, match="no clips"):
        classifier_relevance([], [], 3)
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        classifier_relevance([3], [0], 3)
    with pytest.raises(ValueError, match="equal-length"):
        classifier_relevance([0, 1], [0], 3)


def test_fad_and_clap_with_stand_in_model():
    model = BandEnergy()
    lows = [tone(200 + 20 * i) for i in range(6)]
    highs = [tone(3000 + 100 * i) for i in range(6)]
    assert frechet_audio_distance(model, lows[:3], lows[3:], SR) < frechet_audio_distance(model, highs, lows, SR)
    matched = clap_score(model, lows + highs, ["low"] * 6 + ["high"] * 6, SR)
    swapped = clap_score(model, lows + highs, ["high"] * 6 + ["low"] * 6, SR)
    assert matched["mean"] > swapped["mean"] and matched["count"] == 12
    with pytest.raises(ValueError, match="2 clips but 1 texts"):
        clap_score(model, lows[:2], ["low"], SR)
    with pytest.raises(ValueError, match="empty text query"):
        clap_score(model, lows[:1], ["  "], SR)


def test_classifier_embedding_resamples():
    from espnet2_clip.metrics.audio_classifier import AudioClassifier

    clf = AudioClassifier(["a", "b"], n_mels=16, channels=(4, 8), embed_dim=8)
    emb = ClassifierEmbedding(clf).embed_audio([tone(300, 0.3), tone(500, 0.5)], 8000)
    assert emb.shape == (2, 8) and np.all(np.isfinite(emb))


def test_missing_packages_and_checkpoints_give_clear_errors(tmp_path, monkeypatch):
    ckpt = tmp_path / "clap.pt"
    ckpt.write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "laion_clap", None)  # import fails as if not installed
    with pytest.raises(ImportError, match="pip install laion-clap"):
        load_clap(ckpt)
    with pytest.raises(FileNotFoundError, match="a local LAION-CLAP .pt file"):
        load_clap(tmp_path / "missing.pt")


def test_laion_clap_code_path_with_a_stand_in_package(tmp_path, monkeypatch):
    """The real package's interface, faked: local checkpoint loaded, audio resampled to 48 kHz."""
    calls = {}

    class FakeCLAP:
        def __init__(self, enable_fusion, amodel, device):
            calls["init"] = (enable_fusion, amodel, device)

        def load_ckpt(self, path):
            calls["ckpt"] = path

        def get_audio_embedding_from_data(self, x, use_tensor):
            calls["audio_shape"] = x.shape
            return BandEnergy().embed_audio(list(x), 48000)

        def get_text_embedding(self, texts, use_tensor):
            calls["texts"] = list(texts)
            return BandEnergy().embed_text(texts)

    monkeypatch.setitem(sys.modules, "laion_clap", types.SimpleNamespace(CLAP_Module=FakeCLAP))
    ckpt = tmp_path / "630k-audioset-best.pt"
    ckpt.write_bytes(b"x")
    model = load_clap(ckpt)
    assert isinstance(model, LaionCLAP) and calls["ckpt"] == str(ckpt) and calls["init"] == (False, "HTSAT-tiny", "cpu")
    score = clap_score(model, [tone(200)], ["low"], SR)
    assert calls["audio_shape"] == (1, 24000)  # 0.5 s at 48 kHz
    assert calls["texts"] == ["low", "low"]  # a batch of one is padded for the package's tokenizer
    assert score["mean"] > 0.9


def test_transformers_clap_from_a_local_directory_and_by_hub_id(tmp_path, monkeypatch):
    """A save_pretrained directory loads offline (48 kHz input: resampled); a hub id goes to from_pretrained."""
    import transformers
    from shared_helpers import save_tiny_clap

    local = save_tiny_clap(tmp_path / "clap")
    model = load_clap(str(local))
    assert isinstance(model, HFClap) and model.sample_rate == 48000
    waves = [tone(300, 1.5), tone(3000, 0.5)]
    emb = model.embed_audio(waves, SR)
    assert emb.shape == (2, 8) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    score = clap_score(model, waves, ["dog barking", "a violin"], SR)
    assert score["count"] == 2 and -1 <= score["mean"] <= 1
    np.random.seed(1)
    assert np.allclose(model.embed_audio(waves, SR), emb, atol=1e-6)  # the random crop of a long clip: seeded

    asked = []
    for cls in (transformers.ClapModel, transformers.AutoTokenizer, transformers.ClapFeatureExtractor):
        real = cls.from_pretrained

        def fake(name, *args, _real=real, **kwargs):
            asked.append(name)
            return _real(str(local), *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", fake)
    assert load_clap().name == DEFAULT_CLAP == "laion/clap-htsat-unfused"
    assert asked == [DEFAULT_CLAP] * 3


def test_audio_classifier_save_load_roundtrip(tmp_path):
    from espnet2_clip.metrics.audio_classifier import AudioClassifier, load_classifier, save_classifier

    torch.manual_seed(0)
    clf = AudioClassifier(["low", "high"], n_mels=16, channels=(4, 8), embed_dim=8).eval()
    save_classifier(clf, tmp_path / "clf")
    loaded = load_classifier(tmp_path / "clf")
    waves = [tone(300), tone(3000, 0.3)]
    p1, e1 = clf.predict(waves)
    p2, e2 = loaded.predict(waves)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_allclose(e1, e2, atol=1e-6)
    with pytest.raises(FileNotFoundError, match="classifier_train"):
        load_classifier(tmp_path / "nothing")
    with pytest.raises(ValueError, match="at least 2 classes"):
        AudioClassifier(["only"])
    with pytest.raises(ValueError, match="empty wave"):
        clf.predict([np.zeros(0, dtype=np.float32)])
