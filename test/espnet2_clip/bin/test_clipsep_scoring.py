import json

import numpy as np
import pytest
import soundfile as sf

from espnet2_clip.bin.clipsep_scoring import main, run_scoring
from espnet2_clip.metrics.sdr import target_sdr_sir_sar

SR = 8000
N = 4000


def _make(tmp_path, n_utt=3, silent=("u2",), est_rate=SR, stereo_ref=False):
    rng = np.random.default_rng(0)
    scps = {k: [] for k in ("spk1", "spk2", "wav", "est")}
    sigs = {}
    for i in range(n_utt):
        u = f"u{i}"
        t = np.convolve(rng.standard_normal(N + 3), [0.3, 0.2, 0.1, 0.05], "valid")[:N] / 2
        s = 0.2 * np.sin(np.arange(N) * 0.05 * (i + 1)) / 2
        mix = t + s
        est = (0.8 - 0.3 * i) * t + 0.2 * s + 0.01 * rng.standard_normal(N)
        est = est[: N - 255]  # iSTFT output is shorter
        if u in silent:
            est = np.zeros_like(est)
        sigs[u] = (t, s, mix, est)
        for key, x, rate in (("spk1", t, SR), ("spk2", s, SR), ("wav", mix, SR), ("est", est, est_rate)):
            if key == "spk1" and stereo_ref:
                x = np.stack([x, x], axis=1)
            p = tmp_path / key / f"{u}.wav"
            p.parent.mkdir(exist_ok=True)
            sf.write(p, x, rate, subtype="DOUBLE")
            scps[key].append(f"{u} {p}\n")
    files = {}
    for key, lines in scps.items():
        files[key] = tmp_path / f"{key}.scp"
        files[key].write_text("".join(lines))
    return files, sigs


def _args(files, out, *extra):
    return [
        "--ref_scp", str(files["spk1"]), "--interf_scp", str(files["spk2"]),
        "--mix_scp", str(files["wav"]), "--est_scp", str(files["est"]),
        "--output_dir", str(out), *extra,
    ]


def _read(path):
    return {l.split()[0]: float(l.split()[1]) for l in path.read_text().splitlines()}


def test_scoring_outputs(tmp_path):
    files, sigs = _make(tmp_path)
    out = tmp_path / "scoring"
    assert main(_args(files, out, "--backend", "fast", "--name", "sysA")) == 0
    for name in ("SDR_spk1", "SIR_spk1", "SAR_spk1", "SDRi_spk1", "SDR_mix", "skipped",
                 "result.json", "result.md"):
        assert (out / name).is_file(), name
    assert not list(out.glob(".*tmp*"))
    sdr = _read(out / "SDR_spk1")
    assert sorted(sdr) == ["u0", "u1"]
    assert (out / "skipped").read_text().split()[0] == "u2"
    t, s, mix, est = sigs["u0"]
    n = len(est)
    expect = target_sdr_sir_sar(t[:n], s[:n], est, mix[:n] - est, backend="museval")
    assert sdr["u0"] == pytest.approx(expect.sdr, abs=1e-4)
    mix_expect = target_sdr_sir_sar(t[:n], s[:n], mix[:n], mix[:n], backend="museval")
    assert _read(out / "SDR_mix")["u0"] == pytest.approx(mix_expect.sdr, abs=1e-4)
    res = json.loads((out / "result.json").read_text())
    assert res["name"] == "sysA" and res["count"] == 2 and res["skipped"] == 1 and res["total"] == 3
    assert res["estimate"]["SDR"]["mean"] == pytest.approx(np.mean(list(sdr.values())), abs=1e-5)
    sdri = _read(out / "SDRi_spk1")
    assert res["SDRi"]["mean"] == pytest.approx(np.mean(list(sdri.values())), abs=1e-5)
    assert "sysA" in (out / "result.md").read_text()


def test_museval_backend_and_parallel_agree(tmp_path):
    files, _ = _make(tmp_path, n_utt=2, silent=(), stereo_ref=True)
    a = run_scoring(*(str(files[k]) for k in ("spk1", "spk2", "wav", "est")),
                    str(tmp_path / "a"), backend="museval", nj=1)
    b = run_scoring(*(str(files[k]) for k in ("spk1", "spk2", "wav", "est")),
                    str(tmp_path / "b"), backend="fast", nj=2)
    for m in ("SDR", "SIR", "SAR"):
        assert a["estimate"][m]["mean"] == pytest.approx(b["estimate"][m]["mean"], abs=0.01)
    assert a["count"] == b["count"] == 2


def test_missing_ids_are_listed(tmp_path, caplog):
    files, _ = _make(tmp_path, n_utt=3)
    lines = files["est"].read_text().splitlines()
    files["est"].write_text("\n".join(lines[:1]) + "\n")
    with pytest.raises(ValueError, match=r"est\.scp lacks 2 id\(s\): u1 u2"):
        run_scoring(*(str(files[k]) for k in ("spk1", "spk2", "wav", "est")),
                    str(tmp_path / "o"), backend="fast")
    assert main(_args(files, tmp_path / "o2", "--backend", "fast")) == 1
    assert not (tmp_path / "o2" / "result.json").exists()


def test_sample_rate_mismatch(tmp_path):
    files, _ = _make(tmp_path, n_utt=1, silent=(), est_rate=16000)
    with pytest.raises(ValueError, match=r"sample rate mismatch.*est=.*u0\.wav \(16000 Hz\)"):
        run_scoring(*(str(files[k]) for k in ("spk1", "spk2", "wav", "est")),
                    str(tmp_path / "o"), backend="fast")


def test_references_must_add_up_to_the_mixture(tmp_path):
    files, sigs = _make(tmp_path)
    t, _, _, _ = sigs["u0"]
    sf.write(tmp_path / "spk1" / "u0.wav", 2 * t, SR, subtype="DOUBLE")  # full-scale source, not as mixed
    with pytest.raises(ValueError, match="u0: the references do not add up to the mixture"):
        run_scoring(str(files["spk1"]), str(files["spk2"]), str(files["wav"]), str(files["est"]), str(tmp_path / "out"))
    assert not (tmp_path / "out" / "result.json").exists()


def test_oracle_selection_keeps_the_better_estimate(tmp_path):
    """PIT protocol: with two estimate lists, each mixture keeps the one with the best target SDR."""
    files, sigs = _make(tmp_path, n_utt=2, silent=())
    # second list: a worse estimate for u0, a nearly clean target for u1
    lines = []
    for u, (t, s, mix, est) in sigs.items():
        n = len(est)
        other = 0.5 * est + 0.3 * s[:n] if u == "u0" else t[:n] + 0.01 * s[:n]
        path = tmp_path / "est2" / f"{u}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, other, SR, subtype="DOUBLE")
        lines.append(f"{u} {path}\n")
    files["est2"] = tmp_path / "est2.scp"
    files["est2"].write_text("".join(lines))
    single = run_scoring(*(str(files[k]) for k in ("spk1", "spk2", "wav", "est")), str(tmp_path / "one"), "fast")
    out = tmp_path / "oracle"
    args = _args(files, out, "--backend", "fast")
    args.insert(args.index(str(files["est"])) + 1, str(files["est2"]))
    assert main(args) == 0
    chosen = dict(l.split() for l in (out / "selected").read_text().splitlines())
    sdr = _read(out / "SDR_spk1")
    per_list = {}
    for key in ("est", "est2"):
        run_scoring(str(files["spk1"]), str(files["spk2"]), str(files["wav"]), str(files[key]),
                    str(tmp_path / key), "fast")
        per_list[key] = _read(tmp_path / key / "SDR_spk1")
    for u in ("u0", "u1"):
        best = max(per_list["est"][u], per_list["est2"][u])
        assert sdr[u] == pytest.approx(best, abs=1e-9)
        assert chosen[u] == ("spk1" if per_list["est"][u] >= per_list["est2"][u] else "spk2")
    assert chosen == {"u0": "spk1", "u1": "spk2"}
    res = json.loads((out / "result.json").read_text())
    assert res["selection"].startswith("oracle")
    assert res["estimate"]["SDR"]["mean"] > single["estimate"]["SDR"]["mean"]
    assert "oracle" in (out / "result.md").read_text()


def test_official_lengths_and_clipping(tmp_path):
    """As the official scorer: a 65,280-sample estimate (length-free iSTFT of a 65,535-sample clip) is
    scored against the references truncated to it, after clipping the estimate to [-1, 1]."""
    rng = np.random.default_rng(7)
    n, n_est = 65535, 65280
    s1 = 0.4 * np.sin(2 * np.pi * 440 * np.arange(n) / SR)
    s2 = 0.3 * rng.standard_normal(n)
    est = s1[:n_est] + 0.05 * rng.standard_normal(n_est)
    est[1000:1100] = 1.8  # a burst that a 16-bit file could not hold: clipped to 1
    files = {}
    for name, x in (("spk1", s1), ("spk2", s2), ("mix", s1 + s2), ("est", est)):
        sf.write(tmp_path / f"{name}.wav", x, SR, subtype="DOUBLE")
        (tmp_path / f"{name}.scp").write_text(f"u0 {tmp_path / f'{name}.wav'}\n")
        files[name] = str(tmp_path / f"{name}.scp")
    result = run_scoring(files["spk1"], files["spk2"], files["mix"], files["est"], str(tmp_path / "out"), "museval")
    clipped = np.clip(est, -1, 1)
    expected = target_sdr_sir_sar(s1[:n_est], s2[:n_est], clipped, (s1 + s2)[:n_est] - clipped, backend="museval")
    assert result["estimate"]["SDR"]["mean"] == pytest.approx(expected.sdr, abs=1e-9)
    unclipped = target_sdr_sir_sar(s1[:n_est], s2[:n_est], est, backend="museval")
    assert abs(unclipped.sdr - expected.sdr) > 0.1  # the clipping matters on this signal
    assert "clipped to [-1, 1]" in result["protocol"]
