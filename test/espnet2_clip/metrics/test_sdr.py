import numpy as np
import pytest

from espnet2_clip.metrics.sdr import (
    BSSResult,
    is_silent,
    load_museval_metrics,
    target_scores,
    target_sdr_sir_sar,
)

N = 6000  # short signals: museval solves 1024x1024 systems per source


def _sources(seed, n=N):
    rng = np.random.default_rng(seed)
    target = np.convolve(rng.standard_normal(n + 7), rng.standard_normal(8), "valid")[:n] * 0.1
    t = np.arange(n)
    interf = 0.3 * np.sin(2 * np.pi * 0.013 * (seed + 1) * t) + 0.05 * rng.standard_normal(n)
    return target / 2, interf / 2


# amount of target in the estimate: 0 = pure interference (a permutation would flip it)
QUALITIES = [0.0, 0.15, 0.5, 0.85, 1.0]


@pytest.mark.parametrize("k,alpha", list(enumerate(QUALITIES)))
def test_fast_matches_museval(k, alpha):
    target, interf = _sources(k)
    rng = np.random.default_rng(100 + k)
    est = alpha * target + (1 - alpha) * interf + 0.003 * rng.standard_normal(N)
    est = np.convolve(est, [1.0, 0.2, -0.1], "same")  # some linear distortion
    mix = target + interf
    ref = target_sdr_sir_sar(target, interf, est, mix - est, backend="museval")
    fast = target_sdr_sir_sar(target, interf, est, mix - est, backend="fast")
    assert isinstance(ref, BSSResult) and isinstance(fast, BSSResult)
    np.testing.assert_allclose(fast.sdr, ref.sdr, atol=0.05)
    np.testing.assert_allclose(fast.sir, ref.sir, atol=0.05)
    np.testing.assert_allclose(fast.sar, ref.sar, atol=0.05)


def test_no_permutation_on_poor_estimate():
    target, interf = _sources(3)
    est = interf.copy()  # the "target" estimate is the interference
    ests = np.stack([est, target + interf - est])[..., None]
    refs = np.stack([target, interf])[..., None]
    m = load_museval_metrics()
    sdr_perm = m.bss_eval(refs, ests, window=np.inf, hop=np.inf, compute_permutation=True)[0]
    ours = target_sdr_sir_sar(target, interf, est, backend="fast")
    ref = target_sdr_sir_sar(target, interf, est, backend="museval")
    assert ours.sdr < 0 and ours.sir < -10
    assert abs(ours.sdr - ref.sdr) < 1e-6
    # the best-permutation score would have been far higher
    assert sdr_perm[:, 0].max() > ours.sdr + 10


def test_sdr_is_snr_for_mono():
    # BSS Eval v4 image SDR of a one-channel signal is the plain SNR.
    target, interf = _sources(1)
    est = 0.8 * target + 0.1 * interf
    res = target_sdr_sir_sar(target, interf, est, backend="fast")
    snr = 10 * np.log10(np.sum(target**2) / np.sum((est - target) ** 2))
    assert res.sdr == pytest.approx(snr, abs=1e-9)


@pytest.mark.parametrize("backend", ["museval", "fast"])
def test_silent_signals_are_skipped(backend):
    target, interf = _sources(2)
    zeros = np.zeros(N)
    assert target_sdr_sir_sar(zeros, interf, interf, backend=backend) is None
    assert target_sdr_sir_sar(target, interf, zeros + 1e-10, backend=backend) is None
    # interference estimate silent (estimate == mixture passed as its own complement)
    assert target_sdr_sir_sar(target, interf, target + interf, np.zeros(N), backend=backend) is None
    assert is_silent(np.full(10, 1e-6)) and not is_silent(np.full(10, 1e-5))


@pytest.mark.parametrize("backend", ["museval", "fast"])
def test_several_estimates_score_as_one_at_a_time(backend):
    """One call for a model's estimates and the mixture (shared Gram solves): the numbers of separate
    calls, a silent estimate gives None in its place, and the others still count."""
    target, interf = _sources(6)
    mix = target + interf
    rng = np.random.default_rng(7)
    ests = [0.8 * target + 0.2 * interf + 0.01 * rng.standard_normal(N), np.zeros(N), 0.3 * target + 0.7 * interf]
    pairs = [(est, mix - est) for est in ests] + [(mix, mix)]
    together = target_scores(target, interf, pairs, backend=backend)
    alone = [target_sdr_sir_sar(target, interf, est, other, backend=backend) for est, other in pairs]
    assert together[1] is None and alone[1] is None
    for a, b in zip(together[:1] + together[2:], alone[:1] + alone[2:]):
        a, b = np.asarray(a), np.asarray(b)
        # an estimate in the references' span (the last two) has no artefacts: its SAR, ~270 dB, is the log of
        # rounding error, whose digits depend on the order of the sums; every other number must agree
        exact = (a < 150) | (b < 150)
        np.testing.assert_allclose(a[exact], b[exact], rtol=0, atol=1e-9)
        assert (a[~exact] > 150).all() and (b[~exact] > 150).all()
    assert together[0].sdr > together[2].sdr + 5  # more target in the estimate, higher SDR
    assert target_scores(np.zeros(N), interf, pairs, backend=backend) == [None] * len(pairs)


def test_references_truncated_to_estimate_length():
    target, interf = _sources(4, n=N + 255)
    est = (0.7 * target + 0.3 * interf)[:N]
    a = target_sdr_sir_sar(target, interf, est, backend="fast")
    b = target_sdr_sir_sar(target[:N], interf[:N], est, backend="fast")
    assert a == b


def test_stereo_is_downmixed_and_bad_backend():
    target, interf = _sources(5)
    est = 0.9 * target + 0.1 * interf
    mono = target_sdr_sir_sar(target, interf, est, backend="fast")
    stereo = target_sdr_sir_sar(np.stack([target, target], 1), interf, est, backend="fast")
    assert mono.sdr == pytest.approx(stereo.sdr)
    with pytest.raises(ValueError, match="backend"):
        target_sdr_sir_sar(target, interf, est, backend="bss")
