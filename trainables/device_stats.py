"""What an epoch cost the device: peak memory and, where NVML answers, GPU utilisation.

Logged per epoch so a user can decide how many trials share a GPU (``resources.gpus: 0.5``)
before launching a long study.
"""

from __future__ import annotations

import resource
import sys

import torch


def start_epoch(device: torch.device) -> None:
    """Reset the CUDA peak so the next reading is this epoch's alone."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """This epoch's peak tensor memory on CUDA; the process's peak resident set elsewhere.

    The resident-set figure is the process's high-water mark since it started (the data set
    included), which is what decides whether trials fit side by side in RAM.
    """
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def gpu_utilisation(device: torch.device) -> float | None:
    """NVML's percentage of time the GPU was busy over the last sample period, if NVML loads."""
    if device.type != "cuda":
        return None
    try:
        return float(torch.cuda.utilization(device))
    except Exception:  # noqa: BLE001 - no pynvml, no NVML library, a MIG slice: not reported
        return None
