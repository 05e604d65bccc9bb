"""The :class:`accelerate.Accelerator` a student trains with, and the launch check for data-parallel runs.

:func:`make_accelerator` resolves ``mixed_precision`` for this machine (:mod:`optical_lab.methods.runtime`) and
resets accelerate's process-wide state between trainings of one process; :func:`check_launch` refuses
``accelerate launch --cpu --num_processes N``, which silently starts one process. How a data-parallel step
works: :mod:`optical_lab.methods.trainer`.
"""

from __future__ import annotations

import os

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedDataParallelKwargs

from ..data.errors import DataError
from .runtime import resolve_mixed_precision


def make_accelerator(mixed_precision: str = "auto") -> Accelerator:
    """An Accelerator for ``mixed_precision`` ("auto" resolved for this machine).

    accelerate keeps one process-wide state; a single process that trains with different
    precisions one after another (tests, notebooks) gets it reset instead of an error.
    """
    check_launch()
    precision = resolve_mixed_precision(mixed_precision)
    cpu = not torch.cuda.is_available()
    # DDP must not expect a gradient for every parameter: the backbone's pooler (unused by mean
    # pooling) never gets one
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)]
    try:
        return Accelerator(mixed_precision=precision, cpu=cpu, kwargs_handlers=handlers)
    except ValueError:
        if AcceleratorState().num_processes > 1:
            raise
        AcceleratorState._reset_state(True)
        return Accelerator(mixed_precision=precision, cpu=cpu, kwargs_handlers=handlers)


def check_launch() -> None:
    """Refuse ``accelerate launch --cpu --num_processes N`` (N > 1): accelerate then starts a single
    process (several CPU processes only through ``mpirun``), so the run would silently not be
    data-parallel. Recognised by what that launcher sets: a rendezvous address but no world size."""
    env = os.environ
    mpi = any(k in env for k in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"))
    if (
        env.get("ACCELERATE_USE_CPU", "").lower() in ("true", "1")
        and "MASTER_ADDR" in env
        and "WORLD_SIZE" not in env
        and not mpi
    ):
        raise DataError(
            "`accelerate launch --cpu --num_processes N` starts one process, not N: "
            "this run would not be data-parallel",
            fix="use `accelerate launch --multi_gpu --num_processes N -m optical_lab.cli ...` (CPU too) "
            "or `torchrun --nproc_per_node N -m optical_lab.cli ...`; or drop --num_processes",
        )
