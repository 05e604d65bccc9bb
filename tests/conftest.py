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


# Appended for the methods/trainer/compare tests: on a shared 2-core machine, two intra-op threads
# that cannot both get a core wait for each other at every operation (a training step ~5x slower);
# use the cores the 1-minute load leaves free (all of them on an idle machine).
from optical_lab.methods.runtime import set_threads  # noqa: E402

set_threads(0)
