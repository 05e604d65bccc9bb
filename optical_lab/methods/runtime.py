"""Hardware-dependent settings, resolved once per run and written into the saved config.

* ``mixed_precision="auto"``: bf16 autocast where the hardware does bf16 matrix products natively
  (CPUs with AMX or AVX512-BF16, where it is 2-3x faster than float32; CUDA GPUs with bf16
  support), float32 elsewhere. Weights, optimizer state and the OT solver stay float32.
* ``threads=0`` ("auto"): the cores other jobs leave free (at least 1). On a shared 2-core machine
  two intra-op threads that cannot both get a core wait for each other at every operation
  (measured: one training step 9 s with 2 threads vs 1.4 s with 1 thread while another job ran;
  a zero-shot evaluation 88 s vs 12 s). The comparison runner re-decides before every cell.
  Training steps give bit-identical results with 1 or 2 threads (checked); evaluation encodes can
  differ in the 5th decimal, so each cell records the thread count it used.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import torch


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_mixed_precision(value: str) -> str:
    """``"auto"`` -> ``"bf16"`` or ``"no"`` for this machine; other values unchanged."""
    if value != "auto":
        return value
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if cpu_has_bf16() else "no"


def auto_threads(own: int = 0) -> int:
    """Intra-op threads: the cores the 1-minute load of *other* jobs leaves free (>= 1).

    ``own``: threads this process itself kept busy lately (part of the load average).
    """
    cores = os.cpu_count() or 1
    try:
        others = max(0.0, os.getloadavg()[0] - own)
    except OSError:
        return cores
    return max(1, min(cores, int(cores - others + 0.5)))


def set_threads(threads: int = 0, own: int = 0) -> int:
    """Set torch's intra-op threads (``0`` = :func:`auto_threads`); returns the number used."""
    n = threads or auto_threads(own)
    torch.set_num_threads(n)
    return n
