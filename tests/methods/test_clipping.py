"""Gradient clipping (methods/optimizer.py clip_gradients) is accelerate's clip_grad_norm_, bit for bit."""

from __future__ import annotations

import math

import pytest
import torch

from optical_lab.methods.accelerator import make_accelerator
from optical_lab.methods.optimizer import clip_gradients


def _params(scale: float, seed: int = 0) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.zeros(shape)) for shape in ((300, 16), (16,), (7, 7))]
    for p in params:
        p.grad = torch.randn(p.shape, generator=generator) * scale
    return params


@pytest.mark.parametrize("scale", [1e-3, 10.0, float("nan")], ids=["below", "clipped", "nan"])
def test_clip_gradients_is_accelerates_clip_grad_norm(scale):
    accelerator = make_accelerator("no")
    ours, theirs = _params(scale), _params(scale)
    norm = clip_gradients(accelerator, ours, 1.0)
    expected = float(accelerator.clip_grad_norm_(theirs, 1.0))
    assert norm == expected or (math.isnan(norm) and math.isnan(expected))
    for a, b in zip(ours, theirs):
        assert torch.equal(a.grad.nan_to_num(), b.grad.nan_to_num()) and torch.equal(a.grad.isnan(), b.grad.isnan())
    if scale == 10.0:  # the clipped case does change the gradients: the norm is now max_norm
        assert abs(float(torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in ours]))) - 1.0) < 1e-5
