"""The teacher's evaluation encodings are computed once per (model, texts, length) and shared through disk."""

from __future__ import annotations

import torch
from safetensors.torch import save_file

from optical_lab.experiments.encodings import EvalEncoder

TEXTS = [f"An English passage number {i} about rain." for i in range(12)]


def test_a_second_run_loads_the_english_side_instead_of_encoding_it(tmp_path, teacher):
    base = teacher.copy()
    first = EvalEncoder(base, memo=True, cache_dir=tmp_path)
    encoded = first.encode(TEXTS, role="passage")
    assert (first.disk_hits, first.disk_misses) == (0, 1) and len(list(tmp_path.glob("*.safetensors"))) == 1
    later = EvalEncoder(base, memo=True, cache_dir=tmp_path)  # another cell, process or run
    assert torch.equal(later.encode(TEXTS, role="passage"), encoded)
    assert (later.disk_hits, later.disk_misses) == (1, 0)
    # another truncation length is another file, never a stale hit
    base.max_length = 8
    shorter = EvalEncoder(base, memo=True, cache_dir=tmp_path)
    assert not torch.equal(shorter.encode(TEXTS, role="passage"), encoded)
    assert shorter.disk_misses == 1 and len(list(tmp_path.glob("*.safetensors"))) == 2


def test_a_file_that_does_not_match_its_texts_is_recomputed(tmp_path, teacher):
    base = teacher
    encoder = EvalEncoder(base, memo=True, cache_dir=tmp_path)
    path, _ = encoder.cache_path(encoder._with_prefix(TEXTS, "query"), encoder.batch_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"embeddings": torch.zeros(len(TEXTS), 4)}, str(path), metadata={"texts": "something else"})
    encoded = encoder.encode(TEXTS, role="query")
    assert encoder.disk_misses == 1 and encoded.abs().sum() > 0
    assert torch.equal(EvalEncoder(base, memo=True).encode(TEXTS, role="query"), encoded)  # = no cache at all
