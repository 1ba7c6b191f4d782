"""Our VGGish (FAD): frontend values, the published checkpoint's layout, download / local loading, errors.

Nothing is downloaded: the torch.hub download is faked; local checkpoints are small stand-ins with the real
shapes (``save_stand_in``). Parity with torchvggish itself: ``tools/vggish_parity.py``.
"""

import numpy as np
import pytest
import torch

from espnet2_clip.metrics import vggish
from espnet2_clip.metrics.generation import frechet_audio_distance, frechet_distance, load_vggish_embedding
from espnet2_clip.metrics.vggish import (
    VGGISH_URL,
    VGGish,
    VGGishEmbedding,
    load_vggish,
    mel_matrix,
    save_stand_in,
    waveform_to_examples,
)

SR = 16000


def sine(freq, samples=65535, sr=SR, amp=0.5):
    return amp * np.sin(2 * np.pi * freq * np.arange(samples) / sr)


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    return save_stand_in(tmp_path_factory.mktemp("vggish") / "vggish.pth")


def test_frontend():
    weights = mel_matrix()
    assert weights.shape == (257, 64) and not weights[0].any()  # DC bin unused
    ex = waveform_to_examples(sine(1000))
    assert ex.shape == (4, 96, 64) and ex.dtype == np.float32  # 4.1 s: 408 frames -> 4 examples of 0.96 s
    # a 1 kHz sine peaks in the band whose HTK-mel centre is nearest to 1 kHz
    edges = np.linspace(1127 * np.log1p(125 / 700), 1127 * np.log1p(7500 / 700), 66)
    assert ex.mean((0, 1)).argmax() == np.abs(edges[1:-1] - 1127 * np.log1p(1000 / 700)).argmin()
    assert waveform_to_examples(np.zeros(SR)).min() == pytest.approx(np.log(0.01))
    assert waveform_to_examples(sine(1000, 15000)).shape == (0, 96, 64)  # < 0.96 s: no example
    stereo = np.stack([sine(440, 32000), np.zeros(32000)], 1)  # channels averaged
    np.testing.assert_allclose(waveform_to_examples(stereo), waveform_to_examples(sine(440, 32000) / 2))


def test_network_layout_and_fad_convention():
    torch.manual_seed(0)
    net = VGGish().eval()
    names = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert [k for k in names if k.endswith("weight")] == [
        "features.0.weight", "features.3.weight", "features.6.weight", "features.8.weight", "features.11.weight",
        "features.13.weight", "embeddings.0.weight", "embeddings.2.weight", "embeddings.4.weight"]
    assert names["embeddings.0.weight"] == (4096, 512 * 4 * 6) and names["embeddings.4.weight"] == (128, 4096)
    x = torch.from_numpy(waveform_to_examples(sine(300, 32000) + sine(2500, 32000)))
    with torch.no_grad():
        raw = net(x)
        net.final_activation = True
        assert torch.equal(net(x), torch.relu(raw))
    assert raw.shape == (2, 128) and (raw < 0).any()  # FAD: before the final ReLU


def test_download_by_name_goes_through_torch_hub(monkeypatch, tmp_path, stand_in):
    """``vggish``: torch.hub.load_state_dict_from_url of the published URL, cached in the hub dir."""
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, dst))
        torch.save(torch.load(stand_in, weights_only=True), dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    net = load_vggish("vggish")
    vggish.download_state_dict()  # from the cache now
    assert calls == [(VGGISH_URL, str(tmp_path / "hub" / "checkpoints" / "vggish-10086976.pth"))]
    assert not net.training and not net.final_activation


def test_local_checkpoint_and_fad(stand_in):
    model = load_vggish_embedding(str(stand_in))
    assert isinstance(model, VGGishEmbedding)
    ref = [sine(f, 32000) for f in (300, 330)] + [sine(360, 16000)]
    close = [sine(f, 16000) for f in (310, 320, 350)]
    far = [0.3 * np.random.default_rng(i).standard_normal(16000) for i in range(3)]
    emb = model.embed_audio(ref, SR)
    assert emb.shape == (5, 128)  # per-example (0.96 s) embeddings of all clips
    fad_close = frechet_audio_distance(model, close, ref, SR)
    assert 0 <= fad_close < frechet_distance(emb, model.embed_audio(far, SR))
    with pytest.raises(ValueError, match="shorter than 0.96 s"):
        model.embed_audio([sine(300, 8000)], SR)


def test_clear_errors(tmp_path, stand_in):
    with pytest.raises(FileNotFoundError, match="'vggish' to download"):
        load_vggish(tmp_path / "missing.pth")
    state = torch.load(stand_in, weights_only=True)
    state["embeddings.4.weight"] = torch.zeros(10, 4096)
    del state["features.0.bias"]
    state["pproc.x"] = torch.zeros(1)
    torch.save(state, tmp_path / "wrong.pth")
    with pytest.raises(ValueError) as e:
        load_vggish(tmp_path / "wrong.pth")
    msg = str(e.value)
    assert "wrong.pth is not a VGGish state dict" in msg and "missing features.0.bias (64,)" in msg
    assert "unexpected pproc.x" in msg and "embeddings.4.weight: shape (10, 4096), expected (128, 4096)" in msg
    torch.save({"model": state}, tmp_path / "nested.pth")
    with pytest.raises(ValueError, match="missing features.0.weight"):
        load_vggish(tmp_path / "nested.pth")
    assert vggish.VGGISH_URL.endswith("/v0.1/vggish-10086976.pth")
