"""Throughput and model FLOPs utilisation (MFU).

MFU = achieved model FLOPs / peak FLOPs = ``flops_per_sample * samples_per_s / (world_size * peak)``,
where ``flops_per_sample`` counts one training sample's forward + backward (about 3x the forward FLOPs;
``denoiser.model_info`` reports it) and ``peak`` is the dense (no sparsity) tensor-core peak of one device.
"""

from __future__ import annotations

import torch

# Dense peak FLOP/s per device from the vendors' datasheets (no structured sparsity).
PEAK_FLOPS_BF16 = {
    "B200": 2.25e15,
    "H200": 989e12,
    "H100 SXM": 989e12,
    "H100 NVL": 835e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,  # unspecified variant: assume SXM
    "A100": 312e12,
    "L40S": 362e12,
    "A6000": 155e12,
    "L4": 121e12,
    "A10G": 70e12,
    "A10": 125e12,
    "V100": 125e12,  # fp16 tensor cores (no bf16)
}
PEAK_FLOPS_FP32 = {  # TF32 tensor-core peaks are not used: fp32 autocast-off runs plain FP32
    "B200": 80e12,
    "H200": 67e12,
    "H100 SXM": 67e12,
    "H100 NVL": 60e12,
    "H100 PCIe": 51e12,
    "H100": 67e12,
    "A100": 19.5e12,
    "L40S": 91.6e12,
    "A6000": 38.7e12,
    "L4": 30.3e12,
    "A10G": 31.2e12,
    "A10": 31.2e12,
    "V100": 15.7e12,
}


def peak_flops(device: torch.device, dtype: torch.dtype | None) -> float | None:
    """Peak FLOP/s of ``device`` for ``dtype`` (bf16 or fp32) from the tables, or None if unknown/CPU."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    table = PEAK_FLOPS_BF16 if dtype in (torch.bfloat16, torch.float16) else PEAK_FLOPS_FP32
    for key in sorted(table, key=len, reverse=True):  # most specific name first
        if key in name:
            return table[key]
    return None


def mfu(
    flops_per_sample: float | None, samples_per_s: float, world_size: int, peak: float | None
) -> float | None:
    """Model FLOPs utilisation in [0, 1], or None when the FLOPs or the peak are unknown."""
    if not flops_per_sample or not peak:
        return None
    return flops_per_sample * samples_per_s / (world_size * peak)


def peak_memory_gib(device: torch.device) -> float:
    """Peak allocated CUDA memory, or the process's peak resident set size on CPU, in GiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
