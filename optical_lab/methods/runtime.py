"""Hardware-dependent settings, resolved once per run and written into the saved config.

* ``mixed_precision="auto"``: bf16 autocast where the hardware does bf16 matrix products natively,
  float32 elsewhere; weights, optimizer state and the OT solver stay float32. On CPUs "native"
  means the ``amx_bf16`` or ``avx512_bf16`` flag (rule below); on CUDA, ``is_bf16_supported()``.
  The rule is a fixed function of the CPU flags rather than a start-up micro-benchmark because the
  resolved precision is part of every cell's fingerprint: a timing that flips under load would
  make the same machine refuse its own results folder. Measured (2048x2048 matmul, best of 5):

  ============================================  ============  ============  ============
  CPU (flags)                                    threads       float32       bf16
  ============================================  ============  ============  ============
  AMD EPYC, avx512_bf16 without AMX              1 / 2         109 / 224     484 / 967 GFLOP/s
  x86-64 with AVX2 only (issue #15's machine)    1 / 2         52 / 71       0.3 GFLOP/s
  ============================================  ============  ============  ============

  so AVX512-BF16 counts as native even without AMX (4.4x faster than float32), and an AVX2-only
  CPU gets float32 (bf16 there is emulated, ~200x slower).
* ``threads=0`` ("auto"): the cores other jobs leave free (at least 1). On a shared 2-core machine
  two intra-op threads that cannot both get a core wait for each other at every operation
  (measured: one training step 9 s with 2 threads vs 1.4 s with 1 thread while another job ran;
  a zero-shot evaluation 88 s vs 12 s). The comparison runner re-decides before every cell from
  the CPU time *other processes* used since its previous decision (machine busy time minus this
  process's own CPU time, both measured), so the run's own load never counts against it; the
  1-minute load average minus ``own`` threads is only the fallback (first call, no ``/proc``): it
  lags a minute behind a change of thread count and counts this process's non-torch threads
  (tokenizers) as "others", which could pin a busy run to 1 thread on an idle machine.
  Training steps give bit-identical results with 1 or 2 threads (checked); evaluation encodes can
  differ in the 5th decimal, so each cell records the thread count it used.
* :func:`keep_freed_memory` (called by the ``optical-lab`` command and the benchmarks, the
  applications; a library function does not change the process's allocator by itself): glibc's
  malloc serves every block above a dynamic threshold (128 kB to 32 MB) with a fresh ``mmap`` and
  hands it back to the kernel when freed, so each training step re-faults its activations and the
  47 MB gradient of MiniLM's word-embedding table page by page. Measured on the EPYC (1 thread, bf16,
  MiniLM sentence-KD, batch 16): 260,000-460,000 minor page faults per 12-step round (model set-up
  included) and 38-39 training pairs/s; with freed blocks kept in the process ~0 faults per step once the
  heap has settled and 43-44 pairs/s (+11 % for sentence-transformers' trainer in the same process, +15 %
  for ours). Results are bit-identical; the cost is that freed memory is reused by the process rather
  than returned to the system at once (the peak is unchanged: ``make demo`` 1.84 GiB vs 1.87 GiB
  before); the comparison runner still hands it back between cells (:func:`release_memory`).
"""

from __future__ import annotations

import ctypes
import functools
import gc
import os
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import torch

NATIVE_BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where it does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``platform.processor()`` where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# oneDNN instruction-set caps (``ONEDNN_MAX_CPU_ISA``) below AVX512-BF16: with one of them set, oneDNN
# (torch's CPU bf16 matmul) never uses the bf16 instructions, whatever the flags say
ONEDNN_ISAS_WITHOUT_BF16 = frozenset(
    {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"}
)


SHOWN_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")
ISA_CAPS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")  # environment variables that lower torch's CPU kernels


def shown_flags() -> dict[str, bool]:
    """Which of the flags that decide CPU speed (:data:`SHOWN_FLAGS`) this CPU has."""
    flags = cpu_flags()
    return {flag: flag in flags for flag in SHOWN_FLAGS}


def cpu_description() -> str:
    """One line for every timing: CPU model, cores, the flags that decide speed, any instruction-set cap,
    and whether this process counts the CPU as having native bf16."""
    shown = ", ".join(f"{f} {'yes' if has else 'no'}" for f, has in shown_flags().items())
    caps = [f"{name}={os.environ[name]}" for name in ISA_CAPS if os.environ.get(name)]
    capped = f"; capped by {', '.join(caps)}" if caps else ""
    return (
        f"{cpu_model()}, {os.cpu_count()} logical cores; flags: {shown}{capped}; "
        f"native bf16: {'yes' if cpu_has_bf16() else 'no'}"
    )


def device_description(device: torch.device | str = "cpu") -> str:
    """What a result was computed on, in one line: the GPU's name, or :func:`cpu_description`."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return device_line(gpu=torch.cuda.get_device_name(device))
    if device.type == "cpu":
        return device_line(cpu=cpu_description())
    return device.type


def device_line(gpu: str | None = None, cpu: str | None = None) -> str:
    """The one-line format of :func:`device_description` ("cuda: NAME" or "cpu: DESCRIPTION"), also for
    a device named by a saved environment record (its ``cuda`` and ``cpu`` fields)."""
    return f"cuda: {gpu}" if gpu else f"cpu: {cpu}"


def cpu_has_bf16(flags: frozenset[str] | None = None) -> bool:
    """Native bf16 matrix products: AMX or AVX512-BF16 (see the module doc for the measurement),
    unless ``ONEDNN_MAX_CPU_ISA`` caps oneDNN below them. That cap (with ``ATEN_CPU_CAPABILITY=avx2``)
    makes a bf16 machine behave like an AVX2-only one — bf16 matmul there measured 0.8 GFLOP/s vs
    276 uncapped, fp32 unchanged — which is how ``benchmarks/RESULTS_demo.md`` measures that machine."""
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in ONEDNN_ISAS_WITHOUT_BF16:
        return False
    return bool(NATIVE_BF16_FLAGS & (cpu_flags() if flags is None else flags))


def resolve_mixed_precision(value: str) -> str:
    """``"auto"`` -> ``"bf16"`` or ``"no"`` for this machine; other values unchanged."""
    if value != "auto":
        return value
    import torch

    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if cpu_has_bf16() else "no"


class CpuReading(NamedTuple):
    wall: float  # monotonic seconds
    busy: float  # CPU seconds all cores of the machine spent busy (user, nice, system, irq, steal)
    own: float  # CPU seconds of this process (all its threads)


def cpu_reading() -> CpuReading | None:
    """Machine busy time and this process's CPU time now; None without ``/proc/stat``."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    times = os.times()
    return CpuReading(
        time.monotonic(), (user + nice + system + irq + softirq + steal) / ticks, times.user + times.system
    )


def others_load(before: CpuReading, after: CpuReading, min_seconds: float = 1.0) -> float | None:
    """Cores other processes kept busy on average between two readings (None: too short to tell)."""
    wall = after.wall - before.wall
    if wall < min_seconds:
        return None
    return max(0.0, ((after.busy - before.busy) - (after.own - before.own)) / wall)


def auto_threads(own: int = 0, others: float | None = None) -> int:
    """Intra-op threads: the cores that ``others`` (cores busy with other jobs) leave free (>= 1).

    Without a measured ``others``: the 1-minute load average minus ``own``, the threads this
    process itself kept busy lately (part of the load average).
    """
    cores = os.cpu_count() or 1
    if others is None:
        try:
            others = max(0.0, os.getloadavg()[0] - own)
        except OSError:
            return cores
    return max(1, min(cores, int(cores - others + 0.5)))


_last_reading: list[CpuReading | None] = [None]  # taken by the previous set_threads call


def set_threads(threads: int = 0, own: int = 0) -> int:
    """Set torch's intra-op threads (``0`` = :func:`auto_threads`); returns the number used.

    With ``0``, the other processes' load is measured over the time since the previous call
    (e.g. the previous cell of a comparison); ``own`` is used only by the load-average fallback.
    """
    reading, previous = cpu_reading(), _last_reading[0]
    _last_reading[0] = reading
    others = others_load(previous, reading) if previous is not None and reading is not None else None
    n = threads or auto_threads(own, others)
    import torch

    torch.set_num_threads(n)
    return n


# mallopt(3) parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
KEPT_BLOCK_BYTES = 1 << 30  # blocks up to 1 GiB come from the heap and stay there when freed
OLD_GLIBC_MMAP_MAX = 32 << 20  # older glibc refuses an mmap threshold above HEAP_MAX_SIZE / 2 (32 MiB)
_kept: dict[str, int] = {}  # what keep_freed_memory set: {"mmap_threshold": bytes, "trim_threshold": bytes}


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of unmapping it (see the module doc); True when set.

    Sets ``M_MMAP_THRESHOLD`` (blocks up to 1 GiB come from the heap, not from a fresh ``mmap``; 32 MiB
    where an older glibc refuses more) and ``M_TRIM_THRESHOLD`` (the heap's free top is not handed back to
    the kernel below 1 GiB) through ``mallopt``, once per process: the same as starting Python with
    ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` set. A no-op (False) where the C library is
    not glibc, and when the environment variable ``OPTICAL_LAB_MALLOC=default`` asks for the allocator's
    own behaviour.
    """
    if os.environ.get("OPTICAL_LAB_MALLOC", "").lower() == "default":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    for value in (KEPT_BLOCK_BYTES, OLD_GLIBC_MMAP_MAX):
        if mallopt(M_MMAP_THRESHOLD, value):
            _kept["mmap_threshold"] = value
            break
    if mallopt(M_TRIM_THRESHOLD, KEPT_BLOCK_BYTES):
        _kept["trim_threshold"] = KEPT_BLOCK_BYTES
    return bool(_kept)


def allocator_description() -> str:
    """One line for a timing report: what :func:`keep_freed_memory` set in this process, if anything."""
    if not _kept:
        return "the C library's default malloc settings"
    return (
        "malloc keeps freed memory (keep_freed_memory: "
        + ", ".join(f"{name.replace('_', ' ')} {value >> 20} MiB" for name, value in _kept.items())
        + ")"
    )


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS: between the cells of a comparison, whose
    resident memory would otherwise creep up from fragmentation (glibc keeps freed pages, all the more
    after :func:`keep_freed_memory`)."""
    gc.collect()
    malloc_trim = _libc_function("malloc_trim")
    if malloc_trim is not None:
        malloc_trim(0)


def _libc_function(name: str):
    """A function of the C library (glibc) through ctypes; None where there is none."""
    try:
        return getattr(ctypes.CDLL("libc.so.6"), name)
    except (OSError, AttributeError):
        return None
