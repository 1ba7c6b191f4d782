"""Overlap-add processing of long signals with a fixed-length model, in memory or streamed."""

from typing import Callable, Iterator

import torch


def overlap_add(
    process: Callable[[torch.Tensor], torch.Tensor], wave: torch.Tensor, window: int, hop: int
) -> torch.Tensor:
    """Run ``process`` on windows of ``wave`` and cross-fade the outputs.

    Args:
        process: maps (W, window) chunks (or (W, C, window) for a (C, N) ``wave``) to
            (W, K, window) outputs.
        wave: (N,) or (C, N) signal; shorter signals are zero-padded to one window.
        window: chunk length in samples.
        hop: hop between chunks (``hop < window`` gives sine-squared cross-fades).

    Returns:
        (K, N) outputs. The signal's two ends are covered by one chunk only and keep its output
        as it is (no fade there), so a signal that fits one window gives exactly ``process``'s
        output.
    """
    if not 0 < hop <= window:
        raise ValueError(f"need 0 < hop <= window, got hop={hop}, window={window}")
    length = wave.shape[-1]
    num_chunks = max(1, -(-max(length - window, 0) // hop) + 1)
    padded = torch.nn.functional.pad(wave, (0, (num_chunks - 1) * hop + window - length))
    chunks = padded.unfold(-1, window, hop)  # (W, window) or (C, W, window)
    if chunks.dim() == 3:
        chunks = chunks.transpose(0, 1)  # (W, C, window)
    outputs = process(chunks)  # (W, K, window)
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


def stream_overlap_add(
    read: Callable[[int, int], torch.Tensor],
    length: int,
    process: Callable[[torch.Tensor], torch.Tensor],
    segment: int,
    overlap: int,
) -> Iterator[torch.Tensor]:
    """Process a long signal in segments read one at a time; memory is bounded by ``segment``.

    Consecutive segments share ``overlap`` samples, cross-faded with complementary sine-squared
    ramps (they sum to one), so effects at a segment's edges are faded out.

    Args:
        read: ``read(start, frames)`` -> (C, frames) samples of the signal.
        length: Total length N of the signal.
        process: (C, L) segment -> (K, L) outputs.
        segment: Segment length in samples.
        overlap: Samples shared by consecutive segments (``0 <= overlap < segment``).

    Yields:
        (K, n) consecutive output pieces, N samples in all. A signal that fits one segment gives
        exactly ``process``'s output.
    """
    if not 0 <= overlap < segment:
        raise ValueError(f"need 0 <= overlap < segment, got overlap={overlap}, segment={segment}")
    if length <= segment:
        yield process(read(0, length))
        return
    fade_in = torch.sin(0.5 * torch.pi * (torch.arange(overlap, dtype=torch.float64) + 0.5) / max(overlap, 1)) ** 2
    tail = None
    start = 0
    while True:
        stop = min(start + segment, length)
        out = process(read(start, stop - start))
        if tail is not None and overlap:
            ramp = fade_in.to(out.dtype).to(out.device)
            out[..., :overlap] = tail + out[..., :overlap] * ramp
        if stop == length:
            yield out
            return
        if overlap:
            tail = out[..., -overlap:] * (1 - fade_in).to(out.dtype).to(out.device)
            yield out[..., :-overlap]
        else:
            yield out
        start = stop - overlap
