"""Moving host tensors to the training device without making the host wait for it."""

import torch


def to_device_async(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` (on the host) copied to ``device`` without waiting for the device's queued work.

    A plain ``.to("cuda")`` synchronises the stream after the copy, and even ``non_blocking=True`` may
    synchronise from pageable memory (CUDA stages it through pinned memory, "the driver may synchronize
    with the stream"); from pinned memory the copy is queued like a kernel. Elsewhere (CPU, meta) this is
    ``tensor.to(device)``.
    """
    if torch.device(device).type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
