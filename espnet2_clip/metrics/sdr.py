"""Target-source SDR / SIR / SAR as in the CLIPSep evaluation protocol.

The paper scores each 2-source mixture with BSS Eval v4 (``museval``)::

    museval.metrics.bss_eval(refs=[target, interference], ests=[est, mixture - est],
                             window=inf, hop=inf, compute_permutation=False, filters_len=512)

and keeps only the target's numbers (no permutation, default "images" variant).

Two backends are offered:

* ``"museval"``: calls ``museval.metrics.bss_eval`` exactly as above.
* ``"fast"``: computes the same three numbers for the target only, with the same
  512-tap least-squares projections (one 512x512 and one 1024x1024 solve instead of
  museval's two of each).  For one-channel signals BSS Eval v4's image SDR reduces to
  ``10 log10(|s|^2 / |s_hat - s|^2)``; SIR and SAR use the projections onto the
  target's own delayed copies and onto both references' delayed copies. Several
  estimates of one mixture (:func:`target_scores`: a model's estimate and the mixture, for
  the SDR improvement) share those two solves (one right-hand side each).

``fast_bss_eval`` is not used: its ``bss_eval_sources`` implements the v3 "sources"
SDR (a different number), and version 0.1.3 fails in ``solve`` with numpy 2 and
recent torch.

Signals whose absolute sum is at most ``SILENCE_THRESHOLD`` make the metrics
undefined; such mixtures are skipped (``None`` is returned), as the official code does.
"""

import importlib.util
import os
import sys
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import scipy.linalg
from scipy.signal import fftconvolve

SILENCE_THRESHOLD = 1e-5
FILTERS_LEN = 512
BACKENDS = ("museval", "fast")


class BSSResult(NamedTuple):
    sdr: float
    sir: float
    sar: float


_MUSEVAL_METRICS = None


def load_museval_metrics():
    """Return the ``museval.metrics`` module.

    ``import museval`` also imports musdb/stempeg, which raise at import time when
    ``ffmpeg``/``ffprobe`` are not on PATH.  The metrics module itself only needs
    numpy and scipy, so when the package import fails it is loaded from its file.
    """
    global _MUSEVAL_METRICS
    if _MUSEVAL_METRICS is not None:
        return _MUSEVAL_METRICS
    try:
        import museval.metrics as mod  # noqa: F401
    except Exception:  # RuntimeError from stempeg without ffmpeg
        sys.modules.pop("museval", None)
        spec = importlib.util.find_spec("museval")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(
                "museval is not installed; install museval==0.4.1 or use backend='fast'"
            )
        path = os.path.join(list(spec.submodule_search_locations)[0], "metrics.py")
        mspec = importlib.util.spec_from_file_location("_espnet2_clip_museval_metrics", path)
        mod = importlib.util.module_from_spec(mspec)
        mspec.loader.exec_module(mod)
    _MUSEVAL_METRICS = mod
    return mod


def is_silent(x: np.ndarray, threshold: float = SILENCE_THRESHOLD) -> bool:
    """True if ``sum(|x|) <= threshold`` (the official validity rule)."""
    return float(np.sum(np.abs(x))) <= threshold


def _as_mono(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        # (samples, channels) or (channels, samples): average the shorter axis
        axis = 1 if x.shape[0] >= x.shape[1] else 0
        x = x.mean(axis=axis)
    if x.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D signal, got shape {x.shape}")
    return x


def _db(num: float, den: float) -> float:
    if den == 0:
        return float("inf")
    if num == 0:
        return float("-inf")
    return float(10.0 * np.log10(num / den))


def _solve_gram(G: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve the (symmetric, positive semi-definite) normal equations, as museval does."""
    try:
        return scipy.linalg.solve(G, b, assume_a="pos")
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
        try:
            return scipy.linalg.solve(G, b)
        except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
            return scipy.linalg.lstsq(G, b)[0]


def _fast_target_metrics(target_ref, interf_ref, ests: Sequence[np.ndarray],
                         filters_len: int = FILTERS_LEN) -> List[BSSResult]:
    """BSS Eval v4 (image variant, one channel, no permutation) numbers of the target, for each of
    ``ests`` (same length as the references): the references' Gram matrices are built and solved
    once for all of them (one right-hand side per estimate)."""
    L = filters_len
    n = target_ref.shape[0]
    nfft = int(2 ** np.ceil(np.log2(n + L - 1)))
    refs = (target_ref, interf_ref)
    eps = np.finfo(float).eps

    # Auto/cross-correlations of the references for lags -(L-1) .. L-1:
    # Gram[(i, d1), (j, d2)] = <r_i(. - d1), r_j(. - d2)> = sum_u r_j[u + d1 - d2] r_i[u].
    ffts = [np.fft.rfft(r, nfft) for r in refs]

    def corr(i, j):
        full = np.fft.irfft(ffts[j] * np.conj(ffts[i]), nfft)  # full[m] = sum_u r_j[u+m] r_i[u]
        pos = full[:L]  # m = 0 .. L-1
        neg = full[::-1][: L - 1]  # m = -1 .. -(L-1)
        return pos, neg

    blocks = [[None, None], [None, None]]
    for i in range(2):
        for j in range(2):
            pos, neg = corr(i, j)
            # entry (d1, d2) = c_ij[d1 - d2]: first column is m = 0..L-1, first row m = 0..-(L-1)
            blocks[i][j] = scipy.linalg.toeplitz(pos, np.concatenate([pos[:1], neg]))
    G = np.block(blocks)

    # D[(i, d), k] = <est_k, r_i(. - d)> = sum_u est_k[u + d] r_i[u]
    est_ffts = [np.fft.rfft(est, nfft) for est in ests]
    D = np.stack(
        [np.concatenate([np.fft.irfft(est_fft * np.conj(f), nfft)[:L] for f in ffts]) for est_fft in est_ffts],
        axis=1,
    )

    # projections onto the target's own delayed copies, and onto both references' delayed copies
    c_own = _solve_gram(G[:L, :L] + eps * np.eye(L), D[:L])
    c_all = _solve_gram(G + eps * np.eye(2 * L), D)

    energy = np.sum(target_ref**2)
    results = []
    for k, est in enumerate(ests):
        p_own = fftconvolve(target_ref, c_own[:, k])
        p_all = fftconvolve(target_ref, c_all[:L, k]) + fftconvolve(interf_ref, c_all[L:, k])
        est_pad = np.zeros(n + L - 1)
        est_pad[:n] = est
        sdr = _db(energy, np.sum((est - target_ref) ** 2))
        sir = _db(np.sum(p_own**2), np.sum((p_all - p_own) ** 2))
        sar = _db(np.sum(p_all**2), np.sum((est_pad - p_all) ** 2))
        results.append(BSSResult(sdr, sir, sar))
    return results


def _museval_target_metrics(target_ref, interf_ref, est, interf_est, filters_len=FILTERS_LEN):
    metrics = load_museval_metrics()
    refs = np.stack([target_ref, interf_ref])[..., None]
    ests = np.stack([est, interf_est])[..., None]
    sdr, _isr, sir, sar, _perm = metrics.bss_eval(
        refs,
        ests,
        window=np.inf,
        hop=np.inf,
        compute_permutation=False,
        filters_len=filters_len,
    )
    return BSSResult(float(sdr[0, 0]), float(sir[0, 0]), float(sar[0, 0]))


def target_sdr_sir_sar(
    target_ref,
    interf_ref,
    target_est,
    interf_est=None,
    backend: str = "museval",
    filters_len: int = FILTERS_LEN,
) -> Optional[BSSResult]:
    """SDR, SIR and SAR (dB) of the target estimate, CLIPSep protocol.

    Args:
        target_ref: reference of the queried source (1-D; 2-D is downmixed).
        interf_ref: reference of the interfering source.
        target_est: separated estimate of the target.
        interf_est: estimate of the interference; defaults to
            ``target_ref + interf_ref - target_est`` (mixture minus estimate).
            It does not change the target's numbers, only the silence check.
        backend: ``"museval"`` (the paper's call) or ``"fast"`` (same numbers).

    Longer signals are truncated to the shortest one.

    Returns:
        ``BSSResult(sdr, sir, sar)``, or ``None`` when any reference or estimate is
        silent (``sum|x| <= 1e-5``) and the mixture must be skipped.
    """
    return target_scores(target_ref, interf_ref, [(target_est, interf_est)], backend, filters_len)[0]


def target_scores(
    target_ref,
    interf_ref,
    estimates: Sequence[Tuple[np.ndarray, Optional[np.ndarray]]],
    backend: str = "museval",
    filters_len: int = FILTERS_LEN,
) -> List[Optional[BSSResult]]:
    """:func:`target_sdr_sir_sar` of several ``(target_est, interf_est)`` pairs of one mixture (e.g. a
    model's estimate and the mixture itself, for the SDR improvement). The fast backend builds and
    solves the references' Gram matrices once for all of them; every signal is truncated to the
    shortest one. Returns one result (or ``None``: silent) per pair."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    target_ref = _as_mono(target_ref, "target_ref")
    interf_ref = _as_mono(interf_ref, "interf_ref")
    pairs = []
    for target_est, interf_est in estimates:
        target_est = _as_mono(target_est, "target_est")
        pairs.append((target_est, None if interf_est is None else _as_mono(interf_est, "interf_est")))
    n = min([target_ref.shape[0], interf_ref.shape[0]]
            + [len(x) for pair in pairs for x in pair if x is not None])
    target_ref, interf_ref = target_ref[:n], interf_ref[:n]
    pairs = [(est[:n], target_ref + interf_ref - est[:n] if interf is None else interf[:n]) for est, interf in pairs]
    if n == 0 or is_silent(target_ref) or is_silent(interf_ref):
        return [None] * len(pairs)
    scored = [k for k, (est, interf) in enumerate(pairs) if not (is_silent(est) or is_silent(interf))]
    results: List[Optional[BSSResult]] = [None] * len(pairs)
    if backend == "museval":
        for k in scored:
            results[k] = _museval_target_metrics(target_ref, interf_ref, *pairs[k], filters_len)
    elif scored:
        for k, res in zip(scored, _fast_target_metrics(target_ref, interf_ref, [pairs[k][0] for k in scored],
                                                       filters_len)):
            results[k] = res
    return results
