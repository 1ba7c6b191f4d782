"""CLIPSep inside ESPnet's own target-speaker-extraction task.

``--extractor clipsep`` with the ``clipsep_bce`` criterion (``clipsep_mask`` wrapper) trains
through ``TargetSpeakerExtractionTask`` (``espnet2_clip.bin.tse_train``) on generated mixtures,
with a query embedding as the enrollment, and decodes with ESPnet's TSE inference.
"""

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

import espnet2_clip.register  # noqa: F401
from espnet2_clip.sep.loss import binary_mask_targets, mask_loss_weight, weighted_bce

SR = 16000
N_FFT = 256
HOP = 64
WARPED = 64
QUERY_DIM = 16
CLASSES = ("tone", "noise")


def make_source(kind: str, rng: np.random.Generator, num: int) -> np.ndarray:
    """A harmonic tone (below 1.5 kHz) or bursts of 3-6 kHz band noise."""
    t = np.arange(num) / SR
    if kind == "tone":
        f0 = rng.uniform(200, 350)
        x = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.3)) / h for h in (1, 2, 3))
        x *= 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(1, 3) * t) ** 2
    else:
        spec = np.fft.rfft(rng.standard_normal(num))
        freqs = np.fft.rfftfreq(num, 1 / SR)
        spec[(freqs < 3000) | (freqs > 6000)] = 0
        x = np.fft.irfft(spec, num) * (np.sin(2 * np.pi * rng.uniform(2, 4) * t) > -0.3)
    return (x / np.abs(x).max() * rng.uniform(0.2, 0.4)).astype(np.float32)


def write_tse_set(root, name: str, num: int, seed: int, embeddings: dict, length: int):
    """ESPnet TSE data dir: wav.scp, spk{1,2}.scp, enroll_spk{1,2}.scp (paths to (D,) .npy),
    utt2spk, and a shape file; spk1 is the tone or the noise at random."""
    rng = np.random.default_rng(seed)
    out = root / name
    (out / "wav").mkdir(parents=True)
    files = {k: [] for k in ("wav", "spk1", "spk2", "enroll_spk1", "enroll_spk2", "utt2spk", "shape")}
    for i in range(num):
        uid = f"{name}{i:03d}"
        kinds = list(CLASSES) if rng.random() < 0.5 else list(reversed(CLASSES))
        sources = [make_source(k, rng, length) for k in kinds]
        for key, x in (("spk1", sources[0]), ("spk2", sources[1]), ("wav", sources[0] + sources[1])):
            sf.write(out / "wav" / f"{uid}_{key}.wav", x, SR)
            files[key].append(f"{uid} {out / 'wav' / f'{uid}_{key}.wav'}")
        for n, kind in enumerate(kinds):
            files[f"enroll_spk{n + 1}"].append(f"{uid} {embeddings[kind]}")
        files["utt2spk"].append(f"{uid} {uid}")
        files["shape"].append(f"{uid} {length}")
    for key, lines in files.items():
        fname = {"wav": "wav.scp", "utt2spk": "utt2spk", "shape": "speech_mix_shape"}.get(key, f"{key}.scp")
        (out / fname).write_text("\n".join(sorted(lines)) + "\n")
    return out


def data_args(prefix: str, data) -> list:
    args = []
    for scp, name, kind in (
        ("wav.scp", "speech_mix", "sound"),
        ("spk1.scp", "speech_ref1", "sound"),
        ("spk2.scp", "speech_ref2", "sound"),
        ("enroll_spk1.scp", "enroll_ref1", "text"),
        ("enroll_spk2.scp", "enroll_ref2", "text"),
    ):
        args += [f"--{prefix}_data_path_and_name_and_type", f"{data / scp},{name},{kind}"]
    return args + [f"--{prefix}_shape_file", str(data / "speech_mix_shape")]


def tse_config(**overrides) -> dict:
    config = {
        "encoder": "stft",
        "encoder_conf": {"n_fft": N_FFT, "hop_length": HOP},
        "extractor": "clipsep",
        "extractor_conf": {
            "num_warped_bins": WARPED,
            "query_dim": QUERY_DIM,
            "unet_conf": {"num_downs": 5, "base_channels": 4, "out_channels": 8},
        },
        "decoder": "stft",
        "decoder_conf": {"n_fft": N_FFT, "hop_length": HOP},
        "criterions": [
            {"name": "clipsep_bce", "conf": {}, "wrapper": "clipsep_mask", "wrapper_conf": {"weight": 1.0}}
        ],
        "model_conf": {"share_encoder": False},
        "load_spk_embedding": True,
        "sample_rate": SR,
        "batch_type": "unsorted",
        "batch_size": 4,
        "max_epoch": 3,
        "num_att_plot": 0,
        "num_workers": 0,
        "seed": 0,
        "optim": "adam",
        "optim_conf": {"lr": 0.01},
        "best_model_criterion": [["valid", "loss", "min"]],
        "keep_nbest_models": 1,
    }
    config.update(overrides)
    return config


TRAIN_LEN = 12000  # 0.75 s
TEST_LEN = 20001  # not a multiple of the hop: the output must still have the input's length


@pytest.fixture(scope="module")
def tse_run(tmp_path_factory):
    """Train ``--extractor clipsep`` through ESPnet's TSE task (our CLI entry point) for 36 steps."""
    from espnet2_clip.bin import tse_train

    root = tmp_path_factory.mktemp("tse")
    rng = np.random.default_rng(0)
    embeddings = {}
    for kind in CLASSES:  # one fixed (D,) vector per sound class stands in for CLIP's embedding
        embeddings[kind] = root / f"{kind}.npy"
        np.save(embeddings[kind], rng.standard_normal(QUERY_DIM).astype(np.float32))
    train = write_tse_set(root, "train", 48, seed=1, embeddings=embeddings, length=TRAIN_LEN)
    valid = write_tse_set(root, "valid", 4, seed=2, embeddings=embeddings, length=TRAIN_LEN)
    test = write_tse_set(root, "test", 4, seed=3, embeddings=embeddings, length=TEST_LEN)
    (root / "train.yaml").write_text(yaml.safe_dump(tse_config()))
    exp = root / "exp"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is several times faster on a busy machine
    try:
        tse_train.main(
            ["--config", str(root / "train.yaml"), "--output_dir", str(exp), "--ngpu", "0"]
            + data_args("train", train) + data_args("valid", valid)
        )
    finally:
        torch.set_num_threads(threads)
    return root, exp, test


def snr(est: np.ndarray, ref: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref**2) / np.sum((ref - est) ** 2)))


def test_training_through_espnet_tse_task(tse_run):
    _, exp, _ = tse_run
    config = yaml.safe_load((exp / "config.yaml").read_text())
    assert config["extractor"] == "clipsep" and config["criterions"][0]["name"] == "clipsep_bce"
    checkpoint = torch.load(exp / "checkpoint.pth", map_location="cpu", weights_only=False)
    valid = checkpoint["reporter"]["stats"]
    assert sorted(valid) == [1, 2, 3]
    assert valid[3]["valid"]["clipsep_bce"] < 0.5 * valid[1]["valid"]["clipsep_bce"]
    state = torch.load(exp / "valid.loss.best.pth", map_location="cpu")
    assert "extractor.head.query.proj.weight" in state


@pytest.fixture(scope="module")
def decoded(tse_run):
    """ESPnet's TSE inference CLI (through our entry point), once per query of each mixture."""
    from espnet2_clip.bin import tse_inference

    root, exp, test = tse_run
    outputs = {}
    for query in (1, 2):  # enroll_spk<q> is the embedding of source q's class
        out = root / f"decode_query{query}"
        tse_inference.main([
            "--train_config", str(exp / "config.yaml"), "--model_file", str(exp / "valid.loss.best.pth"),
            "--output_dir", str(out), "--fs", str(SR),
            "--data_path_and_name_and_type", f"{test}/wav.scp,speech_mix,sound",
            "--data_path_and_name_and_type", f"{test}/enroll_spk{query}.scp,enroll_ref1,text",
        ])
        outputs[query] = out
    return test, outputs


def test_decoding_with_espnet_tse_inference_selects_the_queried_source(decoded):
    test, outputs = decoded
    margins = []
    for query, out in outputs.items():
        lines = dict(line.split(maxsplit=1) for line in (out / "spk1.scp").read_text().splitlines())
        assert sorted(lines) == [f"test{i:03d}" for i in range(4)]
        for uid, path in lines.items():
            est, fs = sf.read(path)
            refs = {n: sf.read(test / "wav" / f"{uid}_spk{n}.wav")[0] for n in (1, 2)}
            assert fs == SR and est.shape == (TEST_LEN,) and np.all(np.isfinite(est))
            target, other = refs[query], refs[3 - query]
            # the estimate is the queried source, not the other one, and better than the mixture
            assert snr(est, target) > snr(est, other) + 10  # measured: 30-45 dB vs -7-(-1) dB
            margins.append(snr(est, target) - snr(target + other, target))
    assert np.mean(margins) > 10, margins  # SNR improvement over the mixture, measured ~36 dB


def test_separate_speech_python_api_matches_the_cli(tse_run, decoded):
    from espnet2.bin.enh_tse_inference import SeparateSpeech

    _, exp, _ = tse_run
    test, outputs = decoded
    separate = SeparateSpeech(exp / "config.yaml", exp / "valid.loss.best.pth")
    mix, _ = sf.read(test / "wav" / "test000_wav.wav", dtype="float32")
    query = np.load(dict(line.split() for line in (test / "enroll_spk2.scp").read_text().splitlines())["test000"])
    (wave,) = separate(mix[None], fs=SR, enroll_ref1=query[None, None])
    expected, _ = sf.read(outputs[2] / "wavs" / "1" / "test000.wav", dtype="float32")
    assert wave.shape == (1, TEST_LEN)
    np.testing.assert_allclose(wave[0], expected, atol=1e-4)  # the CLI writes 16-bit PCM


# ---------------------------------------------------------------- units (no training)
def build_model(**overrides):
    from espnet2.tasks.enh_tse import TargetSpeakerExtractionTask

    args = TargetSpeakerExtractionTask.get_parser().parse_args([])
    for key, value in tse_config(**overrides).items():
        setattr(args, key, value)
    return TargetSpeakerExtractionTask.build_model(args)


def random_batch(batch=2, num=4000, query_dim=QUERY_DIM):
    torch.manual_seed(0)
    return dict(
        speech_mix=torch.randn(batch, num) * 0.1,
        speech_mix_lengths=torch.full((batch,), num),
        speech_ref1=torch.randn(batch, num) * 0.05,
        enroll_ref1=torch.randn(batch, 1, query_dim),
        enroll_ref1_lengths=torch.ones(batch, dtype=torch.long),
    )


def test_registered_names_build_espnet_extraction_model():
    from espnet2.enh.espnet_model_tse import ESPnetExtractionModel

    from espnet2_clip.sep.tse_extractor import CLIPSepExtractor
    from espnet2_clip.sep.tse_loss import CLIPSepMaskBCELoss, ExtractorMaskSolver

    model = build_model()
    assert isinstance(model, ESPnetExtractionModel) and isinstance(model.extractor, CLIPSepExtractor)
    (wrapper,) = model.loss_wrappers
    assert isinstance(wrapper, ExtractorMaskSolver) and isinstance(wrapper.criterion, CLIPSepMaskBCELoss)


def test_criterion_is_clipseps_weighted_bce_on_the_extractors_warped_mask():
    """The loss ESPnet's model computes equals CLIPSep's loss written out with our frontend, and
    its gradient reaches the query projection through the predicted (warped) mask."""
    from espnet2_clip.sep.frontend import LogFreqSTFT

    model = build_model()
    batch = random_batch()
    loss, stats, weight = model(**batch)
    assert torch.allclose(loss, stats["clipsep_bce"]) and int(weight) == 2

    encoder, extractor = model.encoder, model.extractor
    lengths = batch["speech_mix_lengths"]
    mix_spec, flens = encoder(batch["speech_mix"], lengths)
    ref_spec, _ = encoder(batch["speech_ref1"], lengths)
    _, _, others = extractor(mix_spec, flens, batch["enroll_ref1"], batch["enroll_ref1_lengths"], "_spk1")
    warp = LogFreqSTFT(n_fft=N_FFT, num_warped_bins=WARPED)
    mix_w = warp.warp(mix_spec.abs().transpose(1, 2))
    ref_w = warp.warp(ref_spec.abs().transpose(1, 2))
    expected = weighted_bce(
        others["warped_mask_spk1"].transpose(1, 2),
        binary_mask_targets(ref_w.unsqueeze(1), mix_w)[:, 0],
        mask_loss_weight(mix_w),
    ).mean()
    torch.testing.assert_close(loss.reshape(()), expected)
    loss.backward()
    assert extractor.head.query.proj.weight.grad.abs().sum() > 0


def test_espnet_time_domain_criteria_combine_with_clipsep_bce():
    criterions = tse_config()["criterions"] + [
        {"name": "si_snr", "conf": {}, "wrapper": "fixed_order", "wrapper_conf": {"weight": 0.1}}
    ]
    model = build_model(criterions=criterions)
    loss, stats, _ = model(**random_batch())
    torch.testing.assert_close(loss.reshape(()), (stats["clipsep_bce"] + 0.1 * stats["si_snr_loss"]).reshape(()))


def test_extractor_outputs_follow_espnet_conventions():
    model = build_model()
    batch = random_batch()
    spec, flens = model.encoder(batch["speech_mix"], batch["speech_mix_lengths"])
    masked, lens, others = model.extractor(spec, flens, batch["enroll_ref1"][:, 0], None, suffix_tag="_spk2")
    assert torch.is_tensor(masked) and masked.shape == spec.shape and torch.equal(lens, flens)
    assert others["mask_spk2"].shape == spec.shape
    assert others["warped_mask_spk2"].shape == (*spec.shape[:2], WARPED)
    torch.testing.assert_close(masked, spec * others["mask_spk2"])
    for mask in others.values():
        assert 0 <= mask.min() and mask.max() <= 1
    with pytest.raises(ValueError, match="encoder: stft"):  # e.g. a real-valued conv encoder output
        model.extractor(spec.abs(), flens, batch["enroll_ref1"], None)


def test_wrong_enrollment_is_a_clear_error():
    model = build_model()
    with pytest.raises(ValueError, match="extractor_conf.query_dim=16"):
        model(**random_batch(query_dim=12))
    waveform_enrollment = dict(random_batch(), enroll_ref1=torch.randn(2, 8000))
    with pytest.raises(ValueError, match="load_spk_embedding: true"):
        model(**waveform_enrollment)


def test_bad_configs_are_clear_errors():
    with pytest.raises(ValueError, match="num_warped_bins=48 must be divisible by 2\\*\\*unet_conf.num_downs=32"):
        build_model(extractor_conf={"num_warped_bins": 48, "unet_conf": {"num_downs": 5, "base_channels": 4}})
    with pytest.raises(ValueError, match="must compute on masks"):
        build_model(criterions=[{"name": "si_snr", "conf": {}, "wrapper": "clipsep_mask", "wrapper_conf": {}}])


def test_mask_wrapper_needs_the_extractors_mask():
    from espnet2_clip.sep.tse_loss import CLIPSepMaskBCELoss, ExtractorMaskSolver

    wrapper = ExtractorMaskSolver(CLIPSepMaskBCELoss())
    label = wrapper.criterion.create_mask_label(torch.randn(2, 10, 129, dtype=torch.cfloat),
                                                [torch.randn(2, 10, 129, dtype=torch.cfloat)])
    with pytest.raises(ValueError, match="warped_mask_spk1"):
        wrapper(label, [], {"mask_spk1": torch.rand(2, 10, 129)})
    loss, stats, others = wrapper(label, [], {"warped_mask_spk1": torch.rand(2, 10, 64)})
    assert loss.dim() == 0 and torch.equal(others["perm"], torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="wrapper: clipsep_mask"):  # e.g. a linear-frequency mask
        wrapper.criterion(label[0], torch.rand(2, 10, 129))
