"""Overlap-add processing of long signals with a fixed-length model."""

from typing import Callable

import torch


def overlap_add(
    process: Callable[[torch.Tensor], torch.Tensor], wave: torch.Tensor, window: int, hop: int
) -> torch.Tensor:
    """Run ``process`` on windows of ``wave`` and cross-fade the outputs.

    Args:
        process: maps (W, window) chunks to (W, C, window) outputs.
        wave: (N,) signal; shorter signals are zero-padded to one window.
        window: chunk length in samples.
        hop: hop between chunks (``hop < window`` gives sine-squared cross-fades).

    Returns:
        (C, N) outputs. The signal's two ends are covered by one chunk only and keep its output
        as it is (no fade there), so a signal that fits one window gives exactly ``process``'s
        output.
    """
    if not 0 < hop <= window:
        raise ValueError(f"need 0 < hop <= window, got hop={hop}, window={window}")
    length = wave.shape[-1]
    num_chunks = max(1, -(-max(length - window, 0) // hop) + 1)
    padded = torch.nn.functional.pad(wave, (0, (num_chunks - 1) * hop + window - length))
    chunks = padded.unfold(0, window, hop)  # (W, window)
    outputs = process(chunks)  # (W, C, window)
    if hop < window:
        fade = torch.sin(torch.pi * (torch.arange(window, dtype=wave.dtype) + 0.5) / window) ** 2
    else:
        fade = torch.ones(window, dtype=wave.dtype)
    fade = fade.to(wave.device)
    half = window // 2
    total = padded.new_zeros(outputs.shape[1], padded.shape[-1])
    norm = padded.new_zeros(padded.shape[-1])
    for i in range(num_chunks):
        weight = fade.clone()
        if i == 0:  # nothing before the first chunk to fade into
            weight[:half] = 1.0
        if i == num_chunks - 1:  # nor after the last one
            weight[half:] = 1.0
        span = slice(i * hop, i * hop + window)
        total[:, span] += outputs[i] * weight
        norm[span] += weight
    return (total / norm.clamp_min(1e-8))[:, :length]
