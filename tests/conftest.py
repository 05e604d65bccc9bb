"""Shared fixtures: one teacher per test session (loading it costs seconds)."""
from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def teacher():
    from optical_lab.models import Encoder

    torch.manual_seed(0)
    return Encoder.load("minilm", device="cpu", max_length=128)
