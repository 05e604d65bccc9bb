"""What a student trains and how: the trainable weights, AdamW's parameter groups, the optimizer and schedule,
and gradient clipping.

AdamW (fused where torch has a kernel for the device) with a linear warm-up then linear decay, no weight decay
on biases and LayerNorm weights (the usual BERT fine-tuning recipe), and optionally a frozen word-embedding
table (``TrainConfig.freeze_word_embeddings``).
"""

from __future__ import annotations

from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType
from transformers import get_linear_schedule_with_warmup

from ..models.encoder import Encoder
from .config import TrainConfig


def make_trainable(student: Encoder, config: TrainConfig) -> Encoder:
    """Every weight of the student trains, except the word-embedding table with
    ``config.freeze_word_embeddings`` (no gradient is computed for it; the optimizer never sees it)."""
    student.requires_grad_(True)
    if config.freeze_word_embeddings:
        student.model.get_input_embeddings().requires_grad_(False)
    return student


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases and LayerNorm weights (the usual BERT fine-tuning recipe)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(student: Encoder, config: TrainConfig) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW (fused kernel where torch has one for the device) with the linear warm-up/decay schedule.

    The fused kernel updates all parameters in one pass: measured on 2 CPU cores, 14 ms instead of
    83 ms per MiniLM step (the 30k x 384 word-embedding matrix is half the model and is updated
    every step), which was the whole gap to sentence-transformers' trainer (benchmarks/
    bench_train_step.py). It is element-wise, so 1 and 2 threads give bit-identical weights; it
    differs from the unfused AdamW by float32 rounding (~3e-8 after 3 steps).
    """
    groups = parameter_groups(student, config.weight_decay)
    try:
        optimizer = torch.optim.AdamW(groups, lr=config.lr, fused=True)
    except (RuntimeError, ValueError):  # no fused kernel for this device or dtype
        optimizer = torch.optim.AdamW(groups, lr=config.lr)
    scheduler = get_linear_schedule_with_warmup(optimizer, config.warmup_steps, max(1, config.steps))
    return optimizer, scheduler


# the runs whose accelerator clips as torch.nn.utils does (the others - FSDP, DeepSpeed, XLA - clip their own way)
_PLAIN_CLIPPING = (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU)


def clip_gradients(accelerator: Accelerator, params: list[torch.nn.Parameter], max_norm: float) -> float:
    """``accelerator.clip_grad_norm_(params, max_norm)``: the gradients' total 2-norm, returned, and every
    gradient multiplied by ``min(1, max_norm / (norm + 1e-6))``; the same arithmetic (accelerate's: the
    norm of the stacked per-group norm from :func:`torch.nn.utils.get_total_norm`, then
    :func:`torch.nn.utils.clip_grads_with_norm_`), except that the multiplication is skipped when that
    coefficient is exactly 1, where it changes no bit. Below the threshold (most steps of a run) that
    saves a pass over every gradient, the 30k x 384 word-embedding table's included: 6.5 ms of a
    MiniLM step on one AVX2 core (``benchmarks/profile_step.py``). Returns the norm as a float."""
    if accelerator.distributed_type not in _PLAIN_CLIPPING:
        return float(accelerator.clip_grad_norm_(params, max_norm))
    accelerator.unscale_gradients()
    total = torch.linalg.vector_norm(torch.stack([torch.nn.utils.get_total_norm([p.grad for p in params])]), 2.0)
    if float(torch.clamp(max_norm / (total + 1e-6), max=1.0)) != 1.0:  # NaN too: multiplied, as accelerate does
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
    return float(total)
